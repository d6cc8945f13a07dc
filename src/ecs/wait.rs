//! `wait`: resume watching a deployment (default: the service's primary one).

use std::collections::HashSet;

use super::describe_service;
use super::rollout::ServiceView;
use super::watch::{self, WatchTarget};
use crate::aws::Aws;
use crate::cli::WaitArgs;
use crate::config::Config;
use crate::exit::{Code, Failure};
use crate::ui::Ui;

/// The `wait` verb.
pub async fn run(args: &WaitArgs, cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("wait")?;
    let svc: ServiceView = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    if let Some(strategy) = svc.strategy.clone().filter(|s| s != "ROLLING") {
        return wait_native(args, ecs, aws, ui, strategy).await;
    }
    let dep = match &args.deployment {
        Some(id) => svc.deployment(id).cloned().ok_or_else(|| {
            Failure::failed(format!("deployment {id} is not on service {}", ecs.service))
                .hint("`bosar-deploy status` lists the service's deployments")
        })?,
        None => svc.primary().cloned().ok_or_else(|| {
            Failure::failed(format!("service {} has no primary deployment", ecs.service))
        })?,
    };
    // The revision before it is not known here: any circuit-breaker rollback counts as one.
    let target = WatchTarget {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        deployment_id: dep.id.clone(),
        task_definition: dep.task_definition.clone(),
        previous_task_definition: None,
    };
    ui.set_resume_hint(watch::resume_command(ui, &target));
    ui.line(format!(
        "Watching deployment {} of {}",
        dep.id,
        dep.revision()
    ));
    // Show the latest few events for context, then only new ones.
    let seen: HashSet<String> = svc.events.iter().skip(3).map(|e| e.id.clone()).collect();
    let opts = super::deploy::watch_options(ecs, args.timeout);
    let watched = watch::watch(aws, &target, opts, ui, seen).await;
    let mut payload = serde_json::Map::new();
    payload.insert("deployment_id".into(), dep.id.clone().into());
    payload.insert("task_definition".into(), dep.task_definition.clone().into());
    match watched {
        Ok(outcome) => watch::finish_outcome(ui, "wait", payload, &outcome),
        Err(e) => Err(emit_interrupted(ui, "wait", payload, &target, e)),
    }
}

/// A watch that ended in an error: when it was interrupted (Ctrl-C, SIGTERM), the payload
/// still goes out with the deployment and the command that resumes it (the rollout goes on
/// in AWS, so what to follow must not be lost); other errors are `main`'s to report.
pub(crate) fn emit_interrupted(
    ui: &Ui,
    key: &str,
    mut payload: serde_json::Map<String, serde_json::Value>,
    target: &WatchTarget,
    e: anyhow::Error,
) -> anyhow::Error {
    if crate::exit::code_of(&e) == Code::Interrupted {
        payload.insert("result".into(), "interrupted".into());
        payload.insert("resume".into(), watch::resume_command(ui, target).into());
        ui.emit(key, &payload, Code::Interrupted, Some(&e));
    }
    e
}

/// `wait` on a blue/green, canary or linear service: the deployment named (its id or service
/// deployment ARN), else the newest, followed through its stages (no gate: watching only).
async fn wait_native(
    args: &WaitArgs,
    ecs: &crate::config::EcsSection,
    aws: &Aws,
    ui: &Ui,
    strategy: String,
) -> anyhow::Result<Code> {
    let target = WatchTarget {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        deployment_id: args.deployment.clone().unwrap_or_default(),
        task_definition: String::new(),
        previous_task_definition: None,
    };
    ui.line(format!(
        "Watching the {} deployment of service {} ({strategy})",
        if target.deployment_id.is_empty() {
            "newest"
        } else {
            target.deployment_id.as_str()
        },
        ecs.service
    ));
    let opts = super::native::watch::NativeOptions {
        poll_interval: ecs.poll_interval,
        timeout: args.timeout.unwrap_or(ecs.timeout),
        gate: None,
        strategy,
        since_secs: 0,
    };
    let watched = super::native::watch::watch(aws, &target, &opts, None, ui).await;
    let mut payload = serde_json::Map::new();
    match watched {
        Ok((outcome, report)) => {
            payload.insert("deployment_id".into(), report.deployment_arn.clone().into());
            // ECS-native deployments name a service revision, not a task definition.
            payload.insert("task_definition".into(), "".into());
            if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&report) {
                payload.extend(m);
            }
            watch::finish_outcome(ui, "wait", payload, &outcome)
        }
        Err(e) => Err(emit_interrupted(ui, "wait", payload, &target, e)),
    }
}
