//! The `deploy` verb around the rollout: reads and shows the plan, runs the preflight checks,
//! and reports the result (text, the JSON envelope with what ran beside it, JUnit, the exit
//! code). The rollout itself (plan, register, UpdateService, watch) is `super`.

use std::time::Duration;

use super::{execute, plan, DeployPlan, DeployResult, RolloutAction, RolloutOptions};
use crate::aws::Aws;
use crate::cli::DeployArgs;
use crate::config::{Config, EcsSection};
use crate::ecs::preflight;
use crate::ecs::watch::{self, WatchOutcome};
use crate::exit::Code;
use crate::ui::Ui;
use serde::Serialize;

fn print_result(ui: &Ui, result: &DeployResult) {
    if let Some(o) = &result.outcome {
        if o.succeeded() {
            if !ui.json() {
                ui.out(o.message());
            }
        } else {
            ui.error(o.message(), None);
            watch::print_outcome(ui, o);
        }
    }
    if let Some(n) = result.native.as_ref().filter(|_| !ui.json()) {
        for line in n.lines() {
            ui.out(line);
        }
    }
    if let Some(rb) = &result.rollback {
        let msg = format!(
            "rollback to {}: {}",
            result.plan.current_revision,
            rb.message()
        );
        if rb.succeeded() {
            ui.line(msg);
        } else {
            ui.error(msg, None);
            watch::print_outcome(ui, rb);
        }
    }
}

/// `deploy`'s payload in the JSON envelope (printed on every path; the envelope carries the
/// error).
#[derive(Serialize)]
struct DeployReport<'a> {
    dry_run: bool,
    /// `no_changes`, `changes_pending` (dry run), `started` (`--no-wait`), `succeeded`,
    /// `failed`, `superseded`, `timed_out`, `refused`, `interrupted` (Ctrl-C, SIGTERM).
    result: &'static str,
    #[serde(flatten)]
    deploy: &'a DeployResult,
    /// What ran beside the rollout (`under_load`), next to it.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    beside: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// What ran beside the rollout and is reported with it (`deploy --under-load`, the real
/// traffic read after it; from `crate::deploy_cmd`): its JSON under `key` in the payload, its JUnit testsuite, and its exit
/// code and error when the rollout's code is 0.
pub struct Beside {
    pub key: &'static str,
    pub json: serde_json::Value,
    pub step: crate::report::Step,
    pub code: Code,
    /// Why `code` is not 0 (the envelope's error when the rollout itself succeeded).
    pub error: Option<String>,
}

fn result_of(result: &DeployResult, dry_run: bool, error: bool) -> &'static str {
    if result.plan.refused.is_some() {
        return "refused";
    }
    match (&result.outcome, result.plan.action) {
        (Some(WatchOutcome::Succeeded { .. }), _) => "succeeded",
        (Some(WatchOutcome::Failed { .. }), _) => "failed",
        (Some(WatchOutcome::Superseded { .. }), _) => "superseded",
        (Some(WatchOutcome::TimedOut { .. }), _) => "timed_out",
        _ if error => "failed",
        (None, RolloutAction::None) if result.configuration_updated => "succeeded",
        (None, RolloutAction::None) if !dry_run || result.plan.changes_nothing() => "no_changes",
        (None, RolloutAction::None) => "changes_pending",
        (None, _) if dry_run => "changes_pending",
        (None, _) => "started",
    }
}

fn emit_json(
    ui: &Ui,
    dry_run: bool,
    result: &DeployResult,
    err: Option<&anyhow::Error>,
    code: Code,
    beside: &[Beside],
) {
    let word = if code == Code::Interrupted {
        "interrupted"
    } else {
        result_of(result, dry_run, err.is_some())
    };
    let mut extra = serde_json::Map::new();
    for b in beside {
        extra.insert(b.key.to_string(), b.json.clone());
    }
    let report = DeployReport {
        dry_run,
        result: word,
        deploy: result,
        beside: (!beside.is_empty()).then_some(&extra),
    };
    // A rollout that ended badly is the run's error when nothing else was; then what ran
    // beside it, when that failed.
    let from_outcome = result
        .outcome
        .as_ref()
        .filter(|o| !o.succeeded())
        .map(|o| anyhow::anyhow!(o.message()));
    let from_beside = beside
        .iter()
        .filter(|b| b.code != Code::Success)
        .find_map(|b| b.error.as_ref())
        .map(|m| anyhow::anyhow!(m.clone()));
    ui.emit(
        "deploy",
        &report,
        code,
        err.or(from_outcome.as_ref()).or(from_beside.as_ref()),
    );
}

/// What `deploy` read and showed before it changes anything.
pub enum Prepared<'a> {
    /// The run is over (a dry run, or preflight stopped it; already reported): its code.
    Done(Code),
    Ready(Box<Ready<'a>>),
}

/// A plan to start, shown and checked, with how to roll it.
pub struct Ready<'a> {
    pub ecs: &'a EcsSection,
    pub opts: RolloutOptions,
    pub plan: DeployPlan,
    /// The preflight checks run on the revision to register (they go into the result).
    pub preflight: Vec<crate::report::Check>,
    pub started: std::time::Instant,
}

/// The `deploy` verb.
pub async fn run(
    args: &DeployArgs,
    cfg: &Config,
    aws: &Aws,
    ui: &Ui,
    judge: Option<crate::ecs::native::gate::GateJudge>,
) -> anyhow::Result<Code> {
    let ready = match prepare(args, cfg, aws, ui, judge).await? {
        Prepared::Done(code) => return Ok(code),
        Prepared::Ready(r) => r,
    };
    let (mut result, err) = execute(aws, ready.ecs, ready.plan, &ready.opts, ui).await;
    result.preflight = ready.preflight;
    finish(
        args,
        cfg,
        ui,
        &ready.opts,
        ready.started,
        result,
        err,
        vec![],
    )
}

/// Reads the service, shows the plan (and the breaker warning), runs the preflight checks on
/// the revision to register; a dry run, or a preflight failure, ends here.
pub async fn prepare<'a>(
    args: &DeployArgs,
    cfg: &'a Config,
    aws: &Aws,
    ui: &Ui,
    judge: Option<crate::ecs::native::gate::GateJudge>,
) -> anyhow::Result<Prepared<'a>> {
    let started = std::time::Instant::now();
    let ecs = cfg.ecs("deploy")?;
    let mut opts = RolloutOptions::from_flags(&args.rollout, args.no_wait);
    opts.judge = judge;
    ui.line(format!(
        "Reading service {} in cluster {}",
        ecs.service, ecs.cluster
    ));
    // A failure before there is a plan: `main` prints the envelope with the error.
    let plan = plan(aws, ecs, &opts).await?;
    ui.out(plan.render().trim_end());
    let mut checks = Vec::new();
    if plan.refused.is_none() && plan.action != RolloutAction::None {
        if let Some(w) = plan.breaker_warning(ecs.max_failed_tasks) {
            if !ecs.acknowledges("circuit_breaker_off") {
                ui.warn(w);
            }
        }
        if let Some(clients) = preflight::clients_for(aws) {
            preflight::warn_skipped(ui, &opts.skip_preflight);
            checks = preflight::check_plan(&clients, &plan, &opts.skip_preflight).await;
            ui.out(preflight::render(&checks).trim_end());
        }
    }
    let stopped = preflight::stop(&checks);
    if args.plan.dry_run || stopped.is_some() {
        let mut result = DeployResult::new(plan);
        result.preflight = checks;
        let err = result.plan.refusal().map(anyhow::Error::from).or(stopped);
        let code = match &err {
            Some(e) => crate::exit::code_of(e),
            None if args.plan.detailed_exitcode && !result.plan.changes_nothing() => {
                Code::ChangesPending
            }
            None => Code::Success,
        };
        if args.plan.dry_run && err.is_none() {
            ui.out(if result.plan.changes_nothing() {
                "dry run: nothing to deploy, nothing was changed"
            } else {
                "dry run: nothing was changed (run without --dry-run to deploy)"
            });
        }
        emit_json(ui, args.plan.dry_run, &result, err.as_ref(), code, &[]);
        return match err {
            Some(e) => Err(e),
            None => Ok(Prepared::Done(code)),
        };
    }
    Ok(Prepared::Ready(Box::new(Ready {
        ecs,
        opts,
        plan,
        preflight: checks,
        started,
    })))
}

/// The end of `deploy`: the result in text or JSON (with what ran `beside` it), JUnit, the
/// exit code (the rollout's; else the one beside it).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    args: &DeployArgs,
    cfg: &Config,
    ui: &Ui,
    opts: &RolloutOptions,
    started: std::time::Instant,
    result: DeployResult,
    err: Option<anyhow::Error>,
    beside: Vec<Beside>,
) -> anyhow::Result<Code> {
    let in_progress = result.plan.in_progress.as_ref();
    if let (Some(d), true, None) = (in_progress, opts.no_wait, &err) {
        ui.out(format!(
            "No changes to deploy; deployment {} is in progress; not watching. Follow it with: {}",
            d.id,
            ui.command(&format!(
                "wait --deployment {}",
                crate::ui::shell_quote(&d.id)
            ))
        ));
    } else if in_progress.is_some() {
        // The watched deployment's outcome is printed below.
    } else if result.plan.changes_nothing() && result.plan.refused.is_none() {
        ui.out(format!(
            "No changes: the service already runs what {} describes; nothing was deployed (--force-new-deployment restarts its tasks).",
            cfg.path.display()
        ));
    } else if opts.no_wait && err.is_none() {
        if let Some(d) = &result.deployment_id {
            ui.out(format!(
                "Deployment {d} started; not watching. Follow it with: {}",
                ui.command(&format!("wait --deployment {}", crate::ui::shell_quote(d)))
            ));
        }
    }
    print_result(ui, &result);
    let mut code = match &err {
        Some(e) => crate::exit::code_of(e),
        None => result.code(),
    };
    // `main` prints only the interrupt's own message: the registered revision is named here.
    if let (Code::Interrupted, Some(e)) = (code, &err) {
        if result.registered_task_definition.is_some() {
            ui.err(crate::exit::message_of(e));
        }
    }
    if code == Code::Success {
        if let Some(b) = beside.iter().find(|b| b.code != Code::Success) {
            code = b.code;
        }
    }
    emit_json(ui, false, &result, err.as_ref(), code, &beside);
    let mut steps = vec![deploy_step(&result, err.as_ref(), started.elapsed())];
    steps.extend(beside.into_iter().map(|b| b.step));
    // Under GitHub Actions, the rollout and what ran beside it in the step summary.
    if let Err(e) = crate::report::github_step_summary("bosar-deploy deploy", &steps) {
        ui.warn(format!("the step summary was not written: {e}"));
    }
    if let Some(path) = &args.junit {
        match crate::report::write_junit(path, &steps) {
            Ok(()) => ui.detail(format!("JUnit report written to {}", path.display())),
            Err(e) => ui.warn(format!(
                "the JUnit report was not written to {}: {e}",
                path.display()
            )),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(code),
    }
}

/// The rollout as a report step (JUnit).
fn deploy_step(
    result: &DeployResult,
    err: Option<&anyhow::Error>,
    took: Duration,
) -> crate::report::Step {
    use crate::report::{CheckStatus, Step};
    let (status, message) = match (err, &result.outcome) {
        (Some(e), _) => (CheckStatus::Fail, crate::exit::message_of(e)),
        (None, Some(o)) if o.succeeded() => (CheckStatus::Pass, o.message()),
        (None, Some(o)) => (CheckStatus::Fail, o.message()),
        (None, None) if result.configuration_updated => (
            CheckStatus::Pass,
            "deploymentConfiguration updated; no deployment was started".into(),
        ),
        (None, None) if result.plan.action == RolloutAction::None => {
            (CheckStatus::Pass, "no changes: nothing was deployed".into())
        }
        (None, None) => (CheckStatus::Pass, "rollout started; not watched".into()),
    };
    match &result.native {
        Some(n) => {
            // JUnit and the step summary show the stages, the gate and the way back.
            let checks = crate::ecs::native::checks::checks(status, &message, n);
            let message = format!("{message}; {}", n.summary());
            Step::new("deploy", status, took, message)
                .with_checks(checks)
                .with_detail(result)
        }
        None => Step::new("deploy", status, took, message).with_detail(result),
    }
}
