//! `full` and `plan`: preflight, alb-update, deploy (watched), verify, as one CI step
//! with one report. `plan` is `full --dry-run`: every read, no write. Each step is a named
//! function; the report collects them.

pub(crate) mod preflight;
mod steps;
mod under_load_step;

use steps::{alb_step, deploy_step, keep_picture, rollout_step, traffic_step, verify_step};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use console::style;
use serde::Serialize;

use crate::alb::{self, plan::AttributeChange};
use crate::aws::{self, Aws};
use crate::cli::{FullArgs, GlobalArgs};
use crate::config::{Config, Stickiness};
use crate::ecs::deploy::{self as ecs_deploy, RolloutAction, RolloutOptions};
use crate::exit::Code;
use crate::gateway::verify::{self, VerifySettings};
use crate::report::{self, Check, CheckStatus, Step};
use crate::traffic;
use crate::ui::Ui;
use crate::under_load::LoadSettings;
use preflight::Preflight;

/// The run's report: one document for people (text) and machines (JSON, JUnit). In the JSON
/// envelope it is the `pipeline` payload; the fields the envelope carries itself (tool,
/// version, command, config, environment, region, account, exit code, warnings) are not
/// repeated there.
#[derive(Debug, Serialize)]
pub struct PipelineReport {
    #[serde(skip)]
    pub tool: &'static str,
    #[serde(skip)]
    pub version: &'static str,
    #[serde(skip)]
    pub command: &'static str,
    pub dry_run: bool,
    #[serde(skip)]
    pub config: String,
    /// The `[environments.NAME]` overlaid on the config, if any.
    #[serde(skip)]
    pub environment: Option<String>,
    #[serde(skip)]
    pub region: String,
    /// The account of the credentials (STS GetCallerIdentity).
    #[serde(skip)]
    pub account: Option<String>,
    /// The principal of the credentials (STS GetCallerIdentity).
    pub caller: Option<String>,
    /// The worst step: `pass`, `warn` or `fail` (the summary's verdict).
    #[serde(skip)]
    pub status: CheckStatus,
    /// What the run concluded, in the one vocabulary of every payload (schema
    /// `$defs/result`): a plan says `no_changes` or `changes_pending`, `full` how it ended.
    pub result: &'static str,
    #[serde(skip)]
    pub exit_code: i32,
    pub duration_ms: u64,
    /// With a dry run: attribute and task definition changes `full` would make (a forced
    /// redeploy counts as one).
    pub changes_pending: usize,
    /// Warnings printed during the run (also `::warning::` under GitHub Actions); in the
    /// envelope's `warnings`.
    #[serde(skip)]
    pub warnings: Vec<String>,
    pub steps: Vec<Step>,
    /// The verify step's targets, one JUnit suite each (`verify gw-a`), after the steps.
    #[serde(skip)]
    pub target_suites: Vec<Step>,
    /// The run's timeline with `--html`, drawn once the reports are written.
    #[serde(skip)]
    pub picture: Option<crate::picture::Timeline>,
}

/// The report under construction.
struct Run<'a> {
    ui: &'a Ui,
    started: Instant,
    report: PipelineReport,
    /// `--html` was given: the deploy step keeps the run's timeline.
    html: bool,
}

impl Run<'_> {
    fn push(&mut self, step: Step) {
        self.report.steps.push(step);
    }

    fn skip_rest(&mut self, names: &[&str]) {
        let why = if self.ui.is_interrupted() {
            "not run: interrupted"
        } else {
            "not run: an earlier step failed"
        };
        for n in names {
            self.push(Step::skipped(n, why));
        }
    }

    /// Interrupted (Ctrl-C, SIGTERM): the steps `names` are skipped and the run stops here.
    fn stopped(&mut self, names: &[&str]) -> bool {
        if !self.ui.is_interrupted() {
            return false;
        }
        self.skip_rest(names);
        true
    }

    fn finish(mut self, code: Code) -> PipelineReport {
        let r = &mut self.report;
        r.status = if code == Code::Success || code == Code::ChangesPending {
            report::worst_step(&r.steps)
        } else {
            CheckStatus::Fail
        };
        r.exit_code = code.as_i32();
        r.result = pipeline_result(r.dry_run, r.changes_pending, r.status, code);
        r.duration_ms = self.started.elapsed().as_millis() as u64;
        r.warnings = self.ui.warnings();
        self.report
    }
}

/// The pipeline's `result`: a dry run (plan) says whether anything would change; a real run
/// says how it ended.
fn pipeline_result(
    dry_run: bool,
    changes_pending: usize,
    status: CheckStatus,
    code: Code,
) -> &'static str {
    match code {
        Code::Interrupted => "interrupted",
        Code::TimedOut => "timed_out",
        Code::Failed | Code::Usage => "failed",
        _ if status == CheckStatus::Fail => "failed",
        _ if dry_run && changes_pending > 0 => "changes_pending",
        _ if dry_run => "no_changes",
        _ if status == CheckStatus::Warn => "warned",
        _ => "succeeded",
    }
}

fn heading(ui: &Ui, what: &str) {
    ui.line(format!("{} {what}", style("==>").cyan().bold()));
}

/// Runs `full` (or `plan` with `--dry-run`) and returns its report (exit code inside).
pub async fn run_pipeline(
    args: &FullArgs,
    cfg: &Config,
    g: &GlobalArgs,
    ui: &Ui,
    command: &'static str,
) -> anyhow::Result<PipelineReport> {
    // Every step stops at an interrupt without starting anything new in AWS (a call already
    // sent completes), so an interrupted run still writes its reports.
    let _wrap_up = ui.wrap_up_on_interrupt();
    let mut run = Run {
        ui,
        started: Instant::now(),
        report: PipelineReport {
            tool: "bosar-deploy",
            version: env!("CARGO_PKG_VERSION"),
            command,
            dry_run: args.plan.dry_run,
            config: cfg.path.display().to_string(),
            environment: cfg.environment.clone(),
            region: String::new(),
            account: None,
            caller: None,
            status: CheckStatus::Pass,
            result: "started",
            exit_code: 0,
            duration_ms: 0,
            changes_pending: 0,
            warnings: Vec::new(),
            steps: Vec::new(),
            target_suites: Vec::new(),
            picture: None,
        },
        html: args.html.is_some(),
    };
    if let Some(path) = &args.html {
        crate::picture::check_path(path)?;
    }
    let mut opts = RolloutOptions::from_flags(&args.rollout, false);
    // Resolve the verify token early: a missing secret is a usage error before any change.
    // `full` verifies: without [gateway] (or --url) it refuses, rather than pass unverified.
    let gateway = match args.skip_verify {
        false => Some(cfg.gateway_or_url(command, args.url.as_deref())?),
        true => None,
    };
    let verify_settings = match gateway {
        Some(gw) if !args.plan.dry_run => Some(VerifySettings::from_config(
            &gw,
            args.url.as_deref(),
            args.allow_insecure_token,
        )?),
        _ => None,
    };
    if !args.plan.dry_run {
        opts.judge = crate::gate_judge::for_config(
            cfg,
            command,
            args.url.as_deref(),
            args.allow_insecure_token,
        )?;
    }
    let load = under_load_step::load_settings(args, cfg)?;
    // Under load, production judgements also weigh the held sessions' thresholds.
    if let Some(l) = &load {
        opts.judge = opts.judge.take().map(|j| l.gate(j));
    }
    let (aws, pre) = match preflight_step(&mut run, cfg, g, &opts).await? {
        Ok(x) => x,
        Err(code) => return Ok(run.finish(code)),
    };
    show_plan(&mut run, cfg, &pre);
    if args.plan.dry_run {
        let code = dry_run_steps(&mut run, &pre, args.plan.detailed_exitcode);
        return Ok(run.finish(code));
    }
    if run.stopped(&["alb-update", "deploy", "verify"]) {
        return Ok(run.finish(Code::Interrupted));
    }
    if let Err(code) = alb_step(&mut run, &aws, &pre).await {
        run.skip_rest(&["deploy", "verify"]);
        return Ok(run.finish(code));
    }
    if run.stopped(&["deploy", "verify"]) {
        return Ok(run.finish(Code::Interrupted));
    }
    let metrics = traffic::TrafficOptions::from_flags(&args.metrics);
    if let Err(code) = deploy_step(&mut run, &aws, cfg, pre, &opts, load.as_ref(), &metrics).await {
        run.skip_rest(&["verify"]);
        return Ok(run.finish(code));
    }
    if run.stopped(&["verify"]) {
        return Ok(run.finish(Code::Interrupted));
    }
    let code = verify_step(&mut run, &aws, cfg, verify_settings).await;
    Ok(run.finish(code))
}

/// Config checks, credentials (STS), then every read. `Err(code)` when the run stops here.
async fn preflight_step(
    run: &mut Run<'_>,
    cfg: &Config,
    g: &GlobalArgs,
    opts: &RolloutOptions,
) -> anyhow::Result<Result<(Aws, Preflight), Code>> {
    heading(run.ui, "preflight");
    let t = Instant::now();
    crate::ecs::preflight::warn_skipped(run.ui, &opts.skip_preflight);
    let mut checks = preflight::config_checks(cfg);
    let stop = |run: &mut Run, checks: Vec<Check>, msg: &str| {
        run.push(Step::new("preflight", CheckStatus::Fail, t.elapsed(), msg).with_checks(checks));
    };
    if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        stop(
            run,
            checks,
            "deploy.toml is inconsistent; nothing was called on AWS",
        );
        return Ok(Err(Code::Usage));
    }
    let aws = match aws::connect(&cfg.aws, g, run.ui).await {
        Ok(a) => a,
        Err(e) => {
            checks.push(Check::new(
                "credentials",
                CheckStatus::Fail,
                t.elapsed(),
                crate::exit::message_of(&e),
            ));
            stop(
                run,
                checks,
                "no usable AWS credentials; nothing was changed",
            );
            return Ok(Err(crate::exit::code_of(&e)));
        }
    };
    run.report.region = aws.region.clone();
    if let Some(id) = &aws.identity {
        run.report.account = Some(id.account.clone());
        run.report.caller = Some(id.arn.clone());
    }
    let pre = preflight::aws_checks(cfg, &aws, opts, &mut checks).await?;
    let failed = pre.is_none() || checks.iter().any(|c| c.status == CheckStatus::Fail);
    if failed {
        stop(run, checks, "preflight failed; nothing was changed");
        return Ok(Err(Code::Failed));
    }
    let status = report::worst(&checks);
    run.push(
        Step::new(
            "preflight",
            status,
            t.elapsed(),
            "config, credentials and resources check out",
        )
        .with_checks(checks),
    );
    Ok(Ok((aws, pre.expect("checked above"))))
}

/// The plan in one view (text), and its warnings.
fn show_plan(run: &mut Run<'_>, cfg: &Config, pre: &Preflight) {
    let forced = usize::from(pre.deploy.action == RolloutAction::ForceNewDeployment);
    run.report.changes_pending = pre.alb.change_count()
        + pre.deploy.changes.len()
        + pre.deploy.deployment_configuration.len()
        + forced;
    for w in &pre.alb.warnings {
        run.ui.warn(w);
    }
    if quiet(run.ui, &run.report) {
        return;
    }
    // The plan is the first thing on stdout (no blank line before it).
    run.ui.out(format!(
        "{}\n{}",
        pre.alb.render(&cfg.path),
        pre.deploy.render()
    ));
}

/// `plan` with nothing to change says so in one line, as terraform does ("No changes."):
/// the whole plan and summary only with -v, or when there is something to show.
fn quiet(ui: &Ui, r: &PipelineReport) -> bool {
    r.command == "plan"
        && r.changes_pending == 0
        && !ui.verbose()
        && r.status != CheckStatus::Fail
        && r.steps.iter().all(|s| s.status != CheckStatus::Fail)
}

/// The one line of a quiet plan, with every check that warned (advice not acknowledged).
fn no_changes_line(r: &PipelineReport, pre_checks: &[&Check]) -> String {
    let mut out = format!(
        "No changes. AWS matches {}{}.",
        r.config,
        r.environment
            .as_deref()
            .map(|e| format!(" (environment {e})"))
            .unwrap_or_default()
    );
    for c in pre_checks {
        out.push_str(&format!("\n{} {}: {}", c.status.label(), c.name, c.message));
    }
    out
}

fn deploy_summary(pre: &Preflight, config: &str) -> String {
    let d = &pre.deploy;
    match d.action {
        RolloutAction::NewRevision => format!(
            "would register a new revision of {} ({} change(s)) and roll the service",
            d.current_revision,
            d.changes.len()
        ),
        RolloutAction::ForceNewDeployment => format!(
            "would force a new deployment of {} (--force-new-deployment)",
            d.current_revision
        ),
        RolloutAction::None if !d.deployment_configuration.is_empty() => format!(
            "would update the service's deploymentConfiguration ({} change(s)); {} matches {config}, no new deployment",
            d.deployment_configuration.len(),
            d.current_revision
        ),
        RolloutAction::None => {
            format!("nothing to deploy: {} matches {config}", d.current_revision)
        }
    }
}

fn dry_run_steps(run: &mut Run<'_>, pre: &Preflight, detailed_exitcode: bool) -> Code {
    let attr_changes = pre.alb.change_count();
    run.push(
        Step::new(
            "alb-update",
            CheckStatus::Pass,
            Duration::ZERO,
            format!("{attr_changes} attribute change(s) pending"),
        )
        .with_detail(&pre.alb),
    );
    run.push(
        Step::new(
            "deploy",
            CheckStatus::Pass,
            Duration::ZERO,
            deploy_summary(pre, &run.report.config),
        )
        .with_detail(&pre.deploy),
    );
    run.push(Step::skipped("verify", "dry run: not verified"));
    if detailed_exitcode && run.report.changes_pending > 0 {
        Code::ChangesPending
    } else {
        Code::Success
    }
}

/// The summary printed at the end of a text run.
pub fn render_summary(r: &PipelineReport) -> String {
    let mut out = String::new();
    let env = r
        .environment
        .as_deref()
        .map(|e| format!(" (environment {e})"))
        .unwrap_or_default();
    out.push_str(&format!(
        "{}\n",
        style(format!("bosar-deploy {} summary{env}", r.command)).bold()
    ));
    for s in &r.steps {
        out.push_str(&format!(
            "{} {:<12} {:>7.1}s  {}\n",
            s.status.label(),
            s.name,
            s.duration_ms as f64 / 1000.0,
            s.message
        ));
        for c in &s.checks {
            out.push_str(&format!(
                "    {} {:<20} {:>6} ms  {}\n",
                c.status.label(),
                c.name,
                c.duration_ms,
                c.message
            ));
        }
    }
    let verdict = match r.exit_code {
        0 if r.dry_run => "dry run: nothing was changed".to_string(),
        0 => "pipeline succeeded".to_string(),
        3 => format!("dry run: {} change(s) pending", r.changes_pending),
        c => format!("pipeline failed (exit {c})"),
    };
    out.push_str(&format!(
        "{} in {:.1}s\n",
        verdict,
        r.duration_ms as f64 / 1000.0
    ));
    out
}

/// The `full` and `plan` verbs: run, print the result (text or JSON), then the reports last
/// (annotations, JUnit, the GitHub step summary); a report that cannot be written is a warning,
/// and the run's exit code stands.
pub async fn run(
    args: &FullArgs,
    cfg: &Config,
    g: &GlobalArgs,
    ui: &Ui,
    command: &'static str,
) -> anyhow::Result<Code> {
    let report = run_pipeline(args, cfg, g, ui, command).await?;
    if quiet(ui, &report) && report.exit_code == 0 {
        let warned: Vec<&Check> = report
            .steps
            .iter()
            .flat_map(|s| s.checks.iter())
            .filter(|c| c.status == CheckStatus::Warn)
            .collect();
        ui.out(no_changes_line(&report, &warned));
    } else {
        ui.out(render_summary(&report).trim_end());
    }
    report::publish(ui, &format!("bosar-deploy {command}"), &report.steps, None);
    if let Some(path) = args.junit.as_deref() {
        let mut steps = report.steps.clone();
        steps.extend(report.target_suites.iter().cloned());
        match report::write_junit(path, &steps) {
            Ok(()) => ui.detail(format!("JUnit report written to {}", path.display())),
            Err(e) => ui.warn(format!(
                "the JUnit report was not written to {}: {e}",
                path.display()
            )),
        }
    }
    let code = match report.exit_code {
        0 => Code::Success,
        2 => Code::Usage,
        3 => Code::ChangesPending,
        4 => Code::TimedOut,
        130 => Code::Interrupted,
        _ => Code::Failed,
    };
    // The first failed step's message is the envelope's error.
    let error = report
        .steps
        .iter()
        .find(|s| s.status == CheckStatus::Fail)
        .filter(|_| !matches!(code, Code::Success | Code::ChangesPending))
        .map(step_error);
    if let (Some(path), Some(t)) = (&args.html, &report.picture) {
        crate::picture_of::publish(ui, path, t);
    }
    // After the reports: a report that cannot be written is a warning the document carries.
    ui.emit("pipeline", &report, code, error.as_ref());
    Ok(code)
}

/// A failed step as the envelope's error: "NAME failed: " and why, which is its first failed
/// check when it has one (a step's own message may already say "NAME failed").
fn step_error(s: &Step) -> anyhow::Error {
    let check = s
        .checks
        .iter()
        .find(|c| c.status == CheckStatus::Fail)
        .map(|c| format!("{}: {}", c.name, c.message));
    match check {
        Some(why) => anyhow::anyhow!("{} failed: {why}", s.name),
        None if s.message.starts_with(&format!("{} failed", s.name)) => {
            anyhow::anyhow!("{}", s.message)
        }
        None => anyhow::anyhow!("{} failed: {}", s.name, s.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_steps_error_says_why_once() {
        let checks = vec![
            Check::new("config", CheckStatus::Pass, Duration::ZERO, "ok"),
            Check::new(
                "service",
                CheckStatus::Fail,
                Duration::ZERO,
                "ECS service bosar-api not found in cluster c (MISSING)",
            ),
        ];
        let step = Step::new(
            "preflight",
            CheckStatus::Fail,
            Duration::ZERO,
            "preflight failed; nothing was changed",
        )
        .with_checks(checks);
        assert_eq!(
            step_error(&step).to_string(),
            "preflight failed: service: ECS service bosar-api not found in cluster c (MISSING)"
        );
        let bare = Step::new(
            "preflight",
            CheckStatus::Fail,
            Duration::ZERO,
            "preflight failed; nothing was changed",
        );
        assert_eq!(
            step_error(&bare).to_string(),
            "preflight failed; nothing was changed"
        );
        let deploy = Step::new("deploy", CheckStatus::Fail, Duration::ZERO, "timed out");
        assert_eq!(step_error(&deploy).to_string(), "deploy failed: timed out");
    }
}
