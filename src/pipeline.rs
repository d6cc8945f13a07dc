//! `full` and `plan`: preflight, alb-update, deploy (watched), verify, as one CI step
//! with one report. `plan` is `full --dry-run`: every read, no write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use console::style;
use serde::Serialize;

use crate::alb::{self, plan::AttributeChange, AlbPlan};
use crate::aws::Aws;
use crate::cli::{DeployArgs, FullArgs, GlobalArgs};
use crate::config::{Config, GatewaySection};
use crate::ecs::deploy::{self as ecs_deploy, DeployPlan, RolloutAction};
use crate::ecs::watch::WatchOutcome;
use crate::exit::{Code, Failure};
use crate::gateway::verify::{self, VerifySettings};
use crate::report::{self, Check, CheckStatus, Step};
use crate::ui::Ui;

/// The run's report: one document for people (text) and machines (JSON, JUnit).
#[derive(Debug, Serialize)]
pub struct PipelineReport {
    pub tool: &'static str,
    pub version: &'static str,
    pub command: &'static str,
    pub dry_run: bool,
    pub config: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub status: CheckStatus,
    pub exit_code: i32,
    pub duration_ms: u64,
    /// With a dry run: attribute and task definition changes `full` would make.
    pub changes_pending: usize,
    /// Warnings printed during the run (also `::warning::` under GitHub Actions).
    pub warnings: Vec<String>,
    pub steps: Vec<Step>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn step(
    name: &str,
    status: CheckStatus,
    started: Instant,
    message: impl Into<String>,
    checks: Vec<Check>,
    detail: serde_json::Value,
) -> Step {
    Step {
        name: name.into(),
        status,
        duration_ms: ms(started.elapsed()),
        message: message.into(),
        checks,
        detail,
    }
}

/// Config-only consistency rules no anchor checks: the container's WEBSOCKET_* environment
/// must announce what verify expects, or the deploy ships a gateway verify will reject.
pub fn config_consistency(cfg: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let (Some(ecs), Some(gw)) = (&cfg.ecs, &cfg.gateway) else {
        return checks;
    };
    let t = Instant::now();
    let pairs = [
        (
            "WEBSOCKET_PING_INTERVAL",
            gw.ping_interval,
            "gateway.ping_interval",
        ),
        (
            "WEBSOCKET_PING_TIMEOUT",
            gw.ping_timeout,
            "gateway.ping_timeout",
        ),
        (
            "WEBSOCKET_HEARTBEAT_INTERVAL",
            gw.heartbeat_interval,
            "gateway.heartbeat_interval",
        ),
    ];
    let mut problems = Vec::new();
    for (var, expected, key) in pairs {
        let want = expected.as_millis().to_string();
        match ecs.environment.get(var) {
            Some(v) if v.trim() == want => {}
            Some(v) => problems.push(format!(
                "[ecs.environment] {var} = \"{v}\" but {key} = \"{}\" ({want} ms)",
                crate::duration::format(expected)
            )),
            None => {}
        }
    }
    checks.push(if problems.is_empty() {
        Check::new(
            "environment",
            CheckStatus::Pass,
            t.elapsed(),
            "[ecs.environment] WEBSOCKET_* matches [gateway]",
        )
    } else {
        Check::new(
            "environment",
            CheckStatus::Fail,
            t.elapsed(),
            format!(
                "{}; verify would reject the deployed gateway",
                problems.join("; ")
            ),
        )
    });
    checks
}

fn idle_timeout_check(idle_secs: u64, gw: &GatewaySection) -> Check {
    let t = Instant::now();
    let longest = gw.ping_interval.max(gw.heartbeat_interval);
    let idle = Duration::from_secs(idle_secs);
    if idle <= longest {
        Check::new(
            "idle_timeout",
            CheckStatus::Fail,
            t.elapsed(),
            format!(
                "load balancer idle timeout {idle_secs}s is not above the longest gateway interval ({}): idle WebSockets will be cut; set [load_balancer] idle_timeout",
                crate::duration::format(longest)
            ),
        )
    } else if let Some(w) = alb::plan::idle_timeout_warning(idle, gw) {
        Check::new("idle_timeout", CheckStatus::Warn, t.elapsed(), w)
    } else {
        Check::new(
            "idle_timeout",
            CheckStatus::Pass,
            t.elapsed(),
            format!("idle timeout {idle_secs}s is above ping and heartbeat intervals"),
        )
    }
}

/// Everything the pipeline read in preflight, reused by later steps (no second round of reads).
struct Preflight {
    alb: AlbPlan,
    deploy: DeployPlan,
}

async fn preflight(
    cfg: &Config,
    aws: &Aws,
    image: Option<&str>,
    checks: &mut Vec<Check>,
) -> anyhow::Result<Option<Preflight>> {
    let ecs = cfg.ecs("full")?;
    let t = Instant::now();
    let alb_plan = match alb::plan(aws, cfg).await {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::new(
                "target_group",
                CheckStatus::Fail,
                t.elapsed(),
                e.to_string(),
            ));
            return Ok(None);
        }
    };
    let tg = &alb_plan.target_group;
    checks.push(
        Check::new(
            "target_group",
            CheckStatus::Pass,
            t.elapsed(),
            format!("{} found", tg.name),
        )
        .with_evidence(serde_json::json!({"arn": tg.arn})),
    );
    for lb in &alb_plan.load_balancers {
        let attached = tg.load_balancer_arns.contains(&lb.arn);
        checks.push(Check::new(
            "load_balancer",
            if attached {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            Duration::ZERO,
            if attached {
                format!("{} ({}) forwards to {}", lb.name, lb.lb_type, tg.name)
            } else {
                format!("{} does not forward to target group {}", lb.name, tg.name)
            },
        ));
    }
    if tg.load_balancer_arns.is_empty() {
        checks.push(Check::new(
            "load_balancer",
            CheckStatus::Fail,
            Duration::ZERO,
            format!("target group {} is attached to no load balancer", tg.name),
        ));
    }
    let t = Instant::now();
    let deploy_plan = match ecs_deploy::plan(aws, ecs, image).await {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::new(
                "service",
                CheckStatus::Fail,
                t.elapsed(),
                e.to_string(),
            ));
            return Ok(None);
        }
    };
    checks.push(Check::new(
        "service",
        CheckStatus::Pass,
        t.elapsed(),
        format!(
            "{}/{} runs {} with container {}",
            ecs.cluster, ecs.service, deploy_plan.current_revision, ecs.container
        ),
    ));
    // The service must send its traffic to this target group.
    let registered = &deploy_plan.target_group_arns;
    if registered.contains(&tg.arn) {
        checks.push(Check::new(
            "wiring",
            CheckStatus::Pass,
            Duration::ZERO,
            format!("service {} registers its tasks in {}", ecs.service, tg.name),
        ));
    } else {
        let actual = if registered.is_empty() {
            "no target group".to_string()
        } else {
            registered.join(", ")
        };
        checks.push(Check::new(
            "wiring",
            CheckStatus::Fail,
            Duration::ZERO,
            format!(
                "service {} registers its tasks in {actual}, not in target group {}: its stickiness settings would not apply",
                ecs.service, tg.name
            ),
        ));
    }
    if let Some(gw) = &cfg.gateway {
        let idle = cfg
            .load_balancer
            .as_ref()
            .and_then(|l| l.idle_timeout)
            .map(|d| d.as_secs())
            .or_else(|| {
                alb_plan
                    .load_balancers
                    .iter()
                    .map(|l| l.idle_timeout_seconds)
                    .min()
            });
        if let Some(idle) = idle {
            checks.push(idle_timeout_check(idle, gw));
        }
        let hc = tg.health_check_path.clone().unwrap_or_default();
        checks.push(if hc == gw.health_path {
            Check::new(
                "health_check",
                CheckStatus::Pass,
                Duration::ZERO,
                format!("target group health check is {hc}"),
            )
        } else {
            Check::new(
                "health_check",
                CheckStatus::Warn,
                Duration::ZERO,
                format!(
                    "target group health check path is {hc:?}, the gateway's is {}",
                    gw.health_path
                ),
            )
        });
    }
    Ok(Some(Preflight {
        alb: alb_plan,
        deploy: deploy_plan,
    }))
}

fn account_of(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// Runs `full` (or `plan` with `args.dry_run`). Returns the report and its exit code.
pub async fn run_pipeline(
    args: &FullArgs,
    cfg: &Config,
    g: &GlobalArgs,
    ui: &Ui,
    command: &'static str,
) -> anyhow::Result<PipelineReport> {
    let started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut report = PipelineReport {
        tool: "bosar-deploy",
        version: env!("CARGO_PKG_VERSION"),
        command,
        dry_run: args.dry_run,
        config: cfg.path.display().to_string(),
        region: String::new(),
        account: None,
        status: CheckStatus::Pass,
        exit_code: 0,
        duration_ms: 0,
        changes_pending: 0,
        warnings: Vec::new(),
        steps: Vec::new(),
    };
    let finish = |mut report: PipelineReport, steps: Vec<Step>, code: Code| {
        report.status = if code == Code::Success || code == Code::ChangesPending {
            report::worst_step(&steps)
        } else {
            CheckStatus::Fail
        };
        report.exit_code = code.as_i32();
        report.duration_ms = ms(started.elapsed());
        report.steps = steps;
        report.warnings = ui.warnings();
        Ok(report)
    };

    // --- preflight -------------------------------------------------------------------
    ui.line(format!("{} preflight", style("==>").cyan().bold()));
    let t = Instant::now();
    let mut checks = vec![Check::new(
        "config",
        CheckStatus::Pass,
        Duration::ZERO,
        format!("{} is valid", cfg.path.display()),
    )];
    checks.extend(config_consistency(cfg));
    // Resolve the verify token early: a missing secret is a usage error before any change.
    let verify_settings = match (&cfg.gateway, args.skip_verify) {
        (Some(gw), false) if !args.dry_run => {
            Some(VerifySettings::from_config(gw, args.url.as_deref())?)
        }
        _ => None,
    };
    if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        let msg = "deploy.toml is inconsistent; nothing was called on AWS".to_string();
        steps.push(step(
            "preflight",
            CheckStatus::Fail,
            t,
            msg,
            checks,
            serde_json::Value::Null,
        ));
        return finish(report, steps, Code::Usage);
    }
    let (aws, clients) = match crate::ecs::preflight::connect(cfg, g).await {
        Ok(a) => a,
        Err(e) => {
            checks.push(Check::new(
                "credentials",
                CheckStatus::Fail,
                t.elapsed(),
                e.to_string(),
            ));
            steps.push(step(
                "preflight",
                CheckStatus::Fail,
                t,
                "no usable AWS credentials",
                checks,
                serde_json::Value::Null,
            ));
            return finish(report, steps, crate::exit::code_of(&e));
        }
    };
    report.region = aws.region.clone();
    let image = args.image.as_deref();
    crate::ecs::preflight::warn_skipped(ui, &args.skip_preflight);
    let pre = preflight(cfg, &aws, image, &mut checks).await?;
    if let Some(p) = &pre {
        checks.extend(
            crate::ecs::preflight::check_plan(&clients, &p.deploy, &args.skip_preflight).await,
        );
    }
    if let Some(p) = &pre {
        report.account = account_of(&p.alb.target_group.arn);
        checks.insert(
            1,
            Check::new(
                "credentials",
                CheckStatus::Pass,
                Duration::ZERO,
                format!(
                    "AWS access works: region {}, account {}",
                    aws.region,
                    report.account.as_deref().unwrap_or("?")
                ),
            ),
        );
    }
    let failed = pre.is_none() || checks.iter().any(|c| c.status == CheckStatus::Fail);
    let status = if failed {
        CheckStatus::Fail
    } else {
        report::worst(&checks)
    };
    let msg = if failed {
        "preflight failed; nothing was changed".to_string()
    } else {
        "config, credentials and resources check out".to_string()
    };
    steps.push(step(
        "preflight",
        status,
        t,
        msg,
        checks,
        serde_json::Value::Null,
    ));
    let Some(pre) = pre.filter(|_| !failed) else {
        return finish(report, steps, Code::Failed);
    };

    // --- plan view ---------------------------------------------------------------------
    let attr_changes = pre.alb.change_count();
    let td_changes = pre.deploy.changes.len();
    report.changes_pending = attr_changes + td_changes;
    if !ui.json() {
        println!();
        print!("{}", pre.alb.render(&cfg.path));
        print!("{}", pre.deploy.render());
        println!();
    }
    for w in &pre.alb.warnings {
        ui.warn(w);
    }

    if args.dry_run {
        let alb_detail = serde_json::to_value(&pre.alb).unwrap_or_default();
        steps.push(Step {
            name: "alb-update".into(),
            status: CheckStatus::Pass,
            duration_ms: 0,
            message: format!("{attr_changes} attribute change(s) pending"),
            checks: vec![],
            detail: alb_detail,
        });
        steps.push(Step {
            name: "deploy".into(),
            status: CheckStatus::Pass,
            duration_ms: 0,
            message: match pre.deploy.action {
                RolloutAction::NewRevision => format!("would register a new revision of {} ({td_changes} change(s)) and roll the service", pre.deploy.current_revision),
                RolloutAction::ForceNewDeployment => format!("would force a new deployment of {}", pre.deploy.current_revision),
            },
            checks: vec![],
            detail: serde_json::to_value(&pre.deploy).unwrap_or_default(),
        });
        steps.push(Step {
            name: "verify".into(),
            status: CheckStatus::Skip,
            duration_ms: 0,
            message: "dry run: not verified".into(),
            checks: vec![],
            detail: serde_json::Value::Null,
        });
        let code = if args.detailed_exitcode && report.changes_pending > 0 {
            Code::ChangesPending
        } else {
            Code::Success
        };
        return finish(report, steps, code);
    }

    // --- alb-update ----------------------------------------------------------------------
    ui.line(format!("{} alb-update", style("==>").cyan().bold()));
    let t = Instant::now();
    if let Err(e) = alb::apply(&aws, &pre.alb).await {
        steps.push(step(
            "alb-update",
            CheckStatus::Fail,
            t,
            e.to_string(),
            vec![],
            serde_json::to_value(&pre.alb).unwrap_or_default(),
        ));
        skip_rest(&mut steps, &["deploy", "verify"]);
        return finish(report, steps, crate::exit::code_of(&e));
    }
    let msg = if attr_changes == 0 {
        "in sync; nothing changed".to_string()
    } else {
        format!("applied {attr_changes} change(s); read back and confirmed")
    };
    let applied: Vec<&AttributeChange> = pre
        .alb
        .target_group_changes
        .iter()
        .chain(pre.alb.load_balancers.iter().flat_map(|l| l.changes.iter()))
        .collect();
    steps.push(step(
        "alb-update",
        CheckStatus::Pass,
        t,
        msg,
        vec![],
        serde_json::json!({"applied": applied}),
    ));

    // --- deploy --------------------------------------------------------------------------
    ui.line(format!("{} deploy", style("==>").cyan().bold()));
    let t = Instant::now();
    let ecs = cfg.ecs("full")?;
    let dargs = DeployArgs {
        image: args.image.clone(),
        timeout: args.timeout,
        rollback_on_failure: args.rollback_on_failure,
        ..Default::default()
    };
    let result = match ecs_deploy::execute(&aws, ecs, pre.deploy, &dargs, ui).await {
        Ok(r) => r,
        Err(e) => {
            steps.push(step(
                "deploy",
                CheckStatus::Fail,
                t,
                e.to_string(),
                vec![],
                serde_json::Value::Null,
            ));
            skip_rest(&mut steps, &["verify"]);
            return finish(report, steps, crate::exit::code_of(&e));
        }
    };
    let outcome = result.outcome.clone().expect("watched");
    let dstatus = if matches!(outcome, WatchOutcome::Succeeded { .. }) {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    if dstatus == CheckStatus::Fail {
        crate::ecs::watch::print_outcome(ui, &outcome);
    }
    let mut message = outcome.message();
    if let Some(back) = &result.rollback {
        message.push_str(&format!(
            "; rollback to {}: {}",
            result.plan.current_revision,
            back.message()
        ));
    }
    steps.push(step(
        "deploy",
        dstatus,
        t,
        message,
        vec![],
        serde_json::to_value(&result).unwrap_or_default(),
    ));
    if dstatus == CheckStatus::Fail {
        skip_rest(&mut steps, &["verify"]);
        return finish(report, steps, outcome.code());
    }

    // --- verify --------------------------------------------------------------------------
    let Some(settings) = verify_settings else {
        steps.push(Step {
            name: "verify".into(),
            status: CheckStatus::Skip,
            duration_ms: 0,
            message: "skipped (--skip-verify or no [gateway])".into(),
            checks: vec![],
            detail: serde_json::Value::Null,
        });
        return finish(report, steps, Code::Success);
    };
    ui.line(format!(
        "{} verify {}",
        style("==>").cyan().bold(),
        settings.url
    ));
    let t = Instant::now();
    let mut checks = verify::verify(&settings, ui).await;
    checks.push(stickiness_duration_check(&aws, cfg).await);
    let vstatus = report::worst(&checks);
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    let msg = if failed == 0 {
        format!("{} checks passed against {}", checks.len(), settings.url)
    } else {
        format!(
            "{failed} of {} checks failed against {}",
            checks.len(),
            settings.url
        )
    };
    steps.push(step(
        "verify",
        vstatus,
        t,
        msg,
        checks,
        serde_json::Value::Null,
    ));
    finish(
        report,
        steps,
        if failed == 0 {
            Code::Success
        } else {
            Code::Failed
        },
    )
}

/// After verify: the target group's stickiness duration, read back, against the config
/// (the AWSALB Expires is not evidence of it; the attribute is).
async fn stickiness_duration_check(aws: &Aws, cfg: &Config) -> Check {
    let t = Instant::now();
    let want = cfg.target_group.cookie_duration.as_secs().to_string();
    match alb::describe_target_group(aws, &cfg.target_group.id).await {
        Err(e) => Check::new(
            "stickiness_duration",
            CheckStatus::Fail,
            t.elapsed(),
            e.to_string(),
        ),
        Ok(tg) => {
            let attrs: BTreeMap<String, String> = tg.attributes;
            let key = match cfg.target_group.stickiness {
                crate::config::Stickiness::AppCookie { .. } => alb::plan::APP_COOKIE_DURATION,
                crate::config::Stickiness::LbCookie => alb::plan::LB_COOKIE_DURATION,
                crate::config::Stickiness::Off => {
                    return Check::new(
                        "stickiness_duration",
                        CheckStatus::Skip,
                        t.elapsed(),
                        "stickiness is off in deploy.toml",
                    );
                }
            };
            match attrs.get(key) {
                Some(v) if *v == want => Check::new(
                    "stickiness_duration",
                    CheckStatus::Pass,
                    t.elapsed(),
                    format!("{key} = {v} s, as configured"),
                ),
                other => Check::new(
                    "stickiness_duration",
                    CheckStatus::Fail,
                    t.elapsed(),
                    format!("{key} is {other:?}, deploy.toml wants {want}"),
                ),
            }
        }
    }
}

fn skip_rest(steps: &mut Vec<Step>, names: &[&str]) {
    for n in names {
        steps.push(Step {
            name: n.to_string(),
            status: CheckStatus::Skip,
            duration_ms: 0,
            message: "not run: an earlier step failed".into(),
            checks: vec![],
            detail: serde_json::Value::Null,
        });
    }
}

/// The summary printed at the end of a text run.
pub fn render_summary(r: &PipelineReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{}\n",
        style(format!("bosar-deploy {} summary", r.command)).bold()
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

/// The `full` and `plan` verbs: run, then render text/JSON/JUnit/GitHub summary.
pub async fn run(
    args: &FullArgs,
    cfg: &Config,
    g: &GlobalArgs,
    ui: &Ui,
    command: &'static str,
) -> anyhow::Result<Code> {
    if let Some(img) = &args.image {
        if img.trim().is_empty() || img.contains(char::is_whitespace) {
            return Err(
                Failure::usage(format!("--image: \"{img}\" is not an image reference")).into(),
            );
        }
    }
    let report = run_pipeline(args, cfg, g, ui, command).await?;
    if let Some(path) = &args.junit {
        report::write_junit(path, &report.steps)?;
    }
    report::github_step_summary(&format!("bosar-deploy {command}"), &report.steps);
    if ui.github && !ui.json() {
        for s in &report.steps {
            for c in s.checks.iter().filter(|c| c.status == CheckStatus::Fail) {
                println!(
                    "::error title={} {}::{}",
                    s.name,
                    c.name,
                    c.message.replace('\n', "%0A")
                );
            }
            if s.checks.is_empty() && s.status == CheckStatus::Fail {
                println!(
                    "::error title={}::{}",
                    s.name,
                    s.message.replace('\n', "%0A")
                );
            }
        }
    }
    if ui.json() {
        crate::ui::print_json(&report);
    } else {
        print!("{}", render_summary(&report));
    }
    Ok(match report.exit_code {
        0 => Code::Success,
        2 => Code::Usage,
        3 => Code::ChangesPending,
        4 => Code::TimedOut,
        130 => Code::Interrupted,
        _ => Code::Failed,
    })
}
