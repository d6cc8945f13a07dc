//! Deploying a blue/green, canary or linear service: where bosar-deploy's gate pauses, the
//! refusal of a gate nobody would answer, and the ECS-native watch (with the judge) in place
//! of the rolling one.

use super::{native, with_note, DeployPlan, DeployResult, RolloutOptions};
use crate::aws::Aws;
use crate::config::EcsSection;
use crate::ecs::watch::{self, WatchTarget};
use crate::exit::Failure;
use crate::ui::Ui;

/// Where the gate pauses, and its settings: only with `[ecs.deployment] gate` and a strategy
/// that shifts traffic (after the test traffic shift when a test listener rule exists).
pub(super) fn gate_of(
    section: Option<&crate::config::DeploymentSection>,
    effective: crate::config::Strategy,
    raw: &aws_sdk_ecs::types::Service,
) -> Option<(native::stages::GateStage, native::gate::GateSettings)> {
    let g = section?.gate.as_ref()?;
    effective.shifts_traffic().then(|| {
        (
            native::stages::GateStage::for_service(native::hook::has_test_listener_rule(raw)),
            native::gate::GateSettings::from(g),
        )
    })
}

/// A gate nobody would answer is refused before any change: without a judge (no
/// `[gateway]`) or with `--no-wait`, the pause would end only at its timeout.
pub(super) fn gate_refusal(plan: &DeployPlan, opts: &RolloutOptions) -> Option<anyhow::Error> {
    let stage = plan.gate?;
    let why = match (&opts.judge, opts.no_wait) {
        (_, true) => "--no-wait leaves nobody to answer it",
        (None, _) => "this command has no gateway to judge green with",
        (Some(_), false) => return None,
    };
    Some(
        Failure::usage(format!(
            "[ecs.deployment] gate pauses the deployment at {} for bosar-deploy's verdict, and {why}; nothing was changed",
            stage.as_str()
        ))
        .hint("run it with [gateway] url (or --url) in deploy.toml and without --no-wait, or remove gate from [ecs.deployment]")
        .into(),
    )
}

/// Follows an ECS-native deployment (and, with a gate, judges it); ECS rolls it back itself,
/// so `--rollback-on-failure` starts nothing here.
#[allow(clippy::too_many_arguments)]
pub(super) async fn follow_native(
    aws: &Aws,
    ecs: &EcsSection,
    mut result: DeployResult,
    target: &WatchTarget,
    strategy: String,
    since_secs: i64,
    opts: &RolloutOptions,
    ui: &Ui,
) -> (DeployResult, Option<anyhow::Error>) {
    let no = native::watch::NativeOptions {
        poll_interval: ecs.poll_interval,
        timeout: opts.timeout.unwrap_or(ecs.timeout),
        gate: result.plan.gate,
        strategy,
        since_secs,
    };
    let judge = opts
        .judge
        .as_ref()
        .map(|j| &*j.0 as &dyn native::gate::Judge);
    if let Some(j) = judge {
        j.serving_before(&changed_before(&result.plan.changes));
    }
    match native::watch::watch(aws, target, &no, judge, ui).await {
        Ok((outcome, report)) => {
            result.native = Some(report);
            result.outcome = Some(outcome);
            (result, None)
        }
        Err(e) => {
            let note = Some(format!(
                "deployment {} goes on in AWS; follow it with: {}",
                target.deployment_id,
                watch::resume_command(ui, target)
            ));
            (result, Some(with_note(e, note)))
        }
    }
}

/// The environment variables the plan changes, with their values before (empty for one it
/// adds): what blue runs with.
fn changed_before(changes: &[crate::ecs::taskdef::ContainerChange]) -> Vec<(String, String)> {
    use crate::ecs::taskdef::ContainerChange;
    changes
        .iter()
        .filter_map(|c| match c {
            ContainerChange::EnvChanged { name, from, .. } => Some((name.clone(), from.clone())),
            ContainerChange::EnvAdded { name, .. } => Some((name.clone(), String::new())),
            _ => None,
        })
        .collect()
}
