//! `deploy`: plan the new revision, start the rollout, watch it.
//!
//! Only what deploy.toml names changes: the named container's image (`--image` / `[ecs] image`)
//! and, when `[ecs.environment]` is present, its environment. With nothing to change nothing
//! happens (`--force-new-deployment` restarts the tasks of the current revision). Services this
//! tool cannot roll (CODE_DEPLOY or EXTERNAL controller, blue/green, linear and canary
//! strategies) are refused before any call that changes something, and anything that fails
//! after a revision was registered names that revision and whether the service points at it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use console::style;
use serde::Serialize;

use super::native;
use super::rollout::{
    controller_refusal, rollout_in_progress, strategy_refusal, CircuitBreaker, DeploymentView,
};
use super::strategy::{self, ConfigurationChange};
use super::taskdef::{self, revision_label, ContainerChange, DesiredContainer};
use super::watch::{self, WatchOptions, WatchOutcome, WatchTarget};
use super::{describe_service, describe_service_full, describe_task_definition};
use crate::aws::Aws;
use crate::cli::RolloutFlags;
use crate::config::EcsSection;
use crate::exit::{Code, Failure};
use crate::report::PreflightSkip;
use crate::ui::Ui;
mod result;
use register::{register, Registration};
use result::now_text;
pub use result::DeployResult;
use traffic_shift::{follow_native, gate_of, gate_refusal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    /// Register a new revision and point the service at it.
    NewRevision,
    /// Redeploy the current revision (fresh tasks, same definition): `--force-new-deployment`.
    ForceNewDeployment,
    /// Nothing to change; the service is not touched.
    None,
}

/// How to roll, from the command line (not a clap struct, so `full` passes its own).
#[derive(Debug, Clone, Default)]
pub struct RolloutOptions {
    pub image: Option<String>,
    pub timeout: Option<Duration>,
    pub rollback_on_failure: bool,
    pub force_new_deployment: bool,
    pub no_wait: bool,
    pub skip_preflight: Vec<PreflightSkip>,
    /// What judges a gated deployment (`[ecs.deployment] gate`): the verify checks, given by
    /// the verb that knows the gateway. `None` with a gate refuses before any change.
    pub judge: Option<native::gate::GateJudge>,
}

impl RolloutOptions {
    pub fn from_flags(f: &RolloutFlags, no_wait: bool) -> Self {
        RolloutOptions {
            image: f.image.clone(),
            timeout: f.timeout,
            rollback_on_failure: f.rollback_on_failure,
            force_new_deployment: f.force_new_deployment,
            no_wait,
            skip_preflight: f.skip_preflight.clone(),
            judge: None,
        }
    }
}

/// What `deploy` will do.
#[derive(Debug, Clone, Serialize)]
pub struct DeployPlan {
    pub cluster: String,
    pub service: String,
    pub container: String,
    pub current_task_definition: String,
    pub current_revision: String,
    pub action: RolloutAction,
    pub changes: Vec<ContainerChange>,
    pub desired_count: i32,
    /// The target groups the service registers its tasks in.
    pub target_group_arns: Vec<String>,
    /// The service's deployment circuit breaker (`None`: off).
    pub circuit_breaker: Option<CircuitBreaker>,
    /// `[ecs.deployment]` members whose value differs from the service's (empty without the
    /// section): sent with UpdateService, merged over what the service has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployment_configuration: Vec<ConfigurationChange>,
    /// Why this service cannot be rolled by this tool; a refused plan is never started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// With nothing to change, the deployment rolling out on the service (someone else's, or
    /// an earlier run's): `deploy` watches it instead of ending on "No changes".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<DeploymentView>,
    /// This run's id: the value of the [`RUN_TAG`] tag on the revision it registers.
    pub run_id: String,
    /// The strategy ECS shifts traffic with (`BLUE_GREEN`, `CANARY`, `LINEAR`): followed by
    /// the ECS-native watch. `None`: ROLLING.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Where bosar-deploy's gate pauses the deployment (`[ecs.deployment] gate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::ecs::native::stages::GateStage>,
    /// What UpdateService's deploymentConfiguration would be (`None`: not sent at all).
    #[serde(skip)]
    pub(crate) send_configuration: Option<aws_sdk_ecs::types::DeploymentConfiguration>,
    #[serde(skip)]
    pub(crate) td: aws_sdk_ecs::types::TaskDefinition,
    #[serde(skip)]
    pub(crate) tags: Vec<aws_sdk_ecs::types::Tag>,
    #[serde(skip)]
    pub(crate) seen_events: HashSet<String>,
    /// The service's deployments when the plan was made.
    #[serde(skip)]
    pub(crate) deployment_ids: Vec<String>,
}

impl DeployPlan {
    /// Nothing to send: no new revision, no forced deployment, no deploymentConfiguration.
    pub fn changes_nothing(&self) -> bool {
        self.action == RolloutAction::None && self.send_configuration.is_none()
    }

    /// The deploymentConfiguration lines of the plan.
    fn render_configuration(&self, out: &mut String) {
        if self.deployment_configuration.is_empty() {
            return;
        }
        let how = match self.action {
            RolloutAction::None => "no new deployment",
            _ => "with the deployment",
        };
        let _ = writeln!(
            out,
            "  ~ service {}: deploymentConfiguration ([ecs.deployment], {how}):",
            self.service
        );
        for c in &self.deployment_configuration {
            let _ = writeln!(out, "    {}", style(c.to_string()).yellow());
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ECS service {} in {} (running {})",
            style(&self.service).bold(),
            self.cluster,
            self.current_revision
        );
        match self.action {
            RolloutAction::NewRevision => {
                let _ = writeln!(
                    out,
                    "  task definition {} -> new revision, container {}:",
                    self.current_revision, self.container
                );
                for c in &self.changes {
                    let line = format!("    {c}");
                    let styled = match c.marker() {
                        '+' => style(line).green(),
                        '-' => style(line).red(),
                        _ => style(line).yellow(),
                    };
                    let _ = writeln!(out, "{styled}");
                }
                let _ = writeln!(
                    out,
                    "  ~ service {}: update to the new revision ({} task(s))",
                    self.service, self.desired_count
                );
            }
            RolloutAction::ForceNewDeployment => {
                let _ = writeln!(out, "    {}", style("(task definition in sync)").dim());
                let _ = writeln!(
                    out,
                    "  ~ service {}: force a new deployment of {} ({} task(s), --force-new-deployment)",
                    self.service, self.current_revision, self.desired_count
                );
            }
            RolloutAction::None => {
                let _ = writeln!(
                    out,
                    "    {}",
                    style("(task definition in sync: nothing to deploy)").dim()
                );
                if let Some(d) = &self.in_progress {
                    let _ = writeln!(
                        out,
                        "  deployment {} of {}{} is in progress on the service: deploy watches it",
                        d.id,
                        d.revision(),
                        started(d)
                    );
                }
            }
        }
        self.render_configuration(&mut out);
        if let Some(r) = &self.refused {
            let _ = writeln!(out, "{} {r}", style("refused:").red().bold());
        }
        out
    }

    /// The warning for a service whose circuit breaker is off.
    pub fn breaker_warning(&self, bound: Option<u32>) -> Option<String> {
        if self.circuit_breaker.is_some_and(|b| b.enable) {
            return None;
        }
        let bound = bound.unwrap_or((self.desired_count.max(1) as u32).saturating_mul(2));
        Some(format!(
            "service {} has the deployment circuit breaker off: ECS keeps replacing failing tasks instead of failing the deployment; the watch fails once {bound} task(s) of the new revision failed ([ecs] max_failed_tasks). Turn the breaker on (deploymentConfiguration.deploymentCircuitBreaker) for automatic rollbacks, or silence this advice with [ecs] acknowledge = [\"circuit_breaker_off\"]",
            self.service
        ))
    }

    fn refusal(&self) -> Option<Failure> {
        self.refused.as_ref().map(|r| {
            Failure::failed(format!("refused, nothing was changed: {r}"))
                .hint("`bosar-deploy status` shows the service")
        })
    }
}

/// Reads the service and its task definition and computes the plan. Read calls only.
pub async fn plan(
    aws: &Aws,
    ecs: &EcsSection,
    opts: &RolloutOptions,
) -> anyhow::Result<DeployPlan> {
    let (svc, raw) = describe_service_full(aws, &ecs.cluster, &ecs.service).await?;
    let (td, tags) = describe_task_definition(aws, &svc.task_definition).await?;
    let want = DesiredContainer {
        name: &ecs.container,
        image: opts.image.as_deref().or(ecs.image.as_deref()),
        environment: ecs.environment.as_ref(),
        managed_prefix: &ecs.managed_env_prefix,
        show_values: &ecs.show_values,
    };
    let changes = taskdef::diff_container(&td, &want)
        .map_err(|m| Failure::failed(m).hint("check [ecs] container in deploy.toml"))?;
    let action = match (changes.is_empty(), opts.force_new_deployment) {
        (false, _) => RolloutAction::NewRevision,
        (true, true) => RolloutAction::ForceNewDeployment,
        (true, false) => RolloutAction::None,
    };
    let section = ecs.deployment.as_ref();
    let current = raw.deployment_configuration();
    let send_configuration = section.and_then(|s| strategy::merged_configuration(s, current));
    let mut deployment_configuration = match (section, &send_configuration) {
        (Some(s), Some(_)) => strategy::plan_changes(s, current),
        _ => Vec::new(),
    };
    let effective = strategy::effective_strategy(section, current);
    let gate = gate_of(section, effective, &raw);
    let (send_configuration, hook_refusal) =
        match native::hook::with_gate(send_configuration, current, gate) {
            Ok(c) => (c, None),
            Err(e) => (None, Some(format!("service {}: {e}", svc.name))),
        };
    if let Some(c) = native::hook::plan_line(current, send_configuration.as_ref()) {
        deployment_configuration.push(c);
    }
    let controller = svc.deployment_controller.as_deref();
    let refused = strategy::controller_refusal(section, &svc.name, controller)
        .or_else(|| controller_refusal(&svc))
        .or_else(|| strategy_refusal_of(&svc, section, current))
        .or(hook_refusal)
        .or_else(|| {
            (action == RolloutAction::NewRevision)
                .then(|| taskdef::unknown_union_variant(&td))
                .flatten()
        });
    Ok(DeployPlan {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        container: ecs.container.clone(),
        current_revision: revision_label(&svc.task_definition),
        current_task_definition: svc.task_definition.clone(),
        action,
        changes,
        desired_count: svc.desired,
        target_group_arns: svc.target_group_arns.clone(),
        circuit_breaker: svc.circuit_breaker,
        deployment_configuration,
        strategy: effective
            .shifts_traffic()
            .then(|| effective.as_aws().to_string()),
        gate: gate.map(|(stage, _)| stage),
        send_configuration,
        refused,
        in_progress: (action == RolloutAction::None)
            .then(|| rollout_in_progress(&svc).cloned())
            .flatten(),
        run_id: register::new_run_id(),
        td,
        tags,
        seen_events: svc.events.iter().map(|e| e.id.clone()).collect(),
        deployment_ids: svc.deployments.iter().map(|d| d.id.clone()).collect(),
    })
}

/// [`strategy_refusal`] for the strategy the next deployment would use: `[ecs.deployment]`'s
/// when it names one, else the service's.
fn strategy_refusal_of(
    svc: &super::rollout::ServiceView,
    section: Option<&crate::config::DeploymentSection>,
    current: Option<&aws_sdk_ecs::types::DeploymentConfiguration>,
) -> Option<String> {
    let named = section.and_then(|s| s.strategy).is_some();
    let effective = strategy::effective_strategy(section, current);
    let aws_name = match (named, svc.strategy.as_deref()) {
        // A strategy ECS reports that this tool does not know is refused as ECS spells it.
        (false, Some(s)) if crate::config::Strategy::from_aws(s).is_none() => s,
        _ => effective.as_aws(),
    };
    strategy_refusal(&svc.name, Some(aws_name), named)
}

/// A failure after RegisterTaskDefinition: the revision exists, the service may not use it.
struct Orphan {
    registered: Option<Registration>,
    points_at_it: Option<bool>,
    error: anyhow::Error,
}

/// Registers the new revision (if any) and updates the service; returns what to watch and
/// the revision registered.
async fn start(
    aws: &Aws,
    plan: &DeployPlan,
    ui: &Ui,
) -> Result<(WatchTarget, Option<Registration>), Orphan> {
    let no_orphan = |error| Orphan {
        registered: None,
        points_at_it: None,
        error,
    };
    let (task_definition, registered) = match plan.action {
        RolloutAction::NewRevision => {
            let reg = register(aws, plan, ui).await.map_err(no_orphan)?;
            let label = revision_label(&reg.arn);
            if reg.adopted {
                ui.line(format!(
                    "Adopted {label}: RegisterTaskDefinition's answer was lost, and {label} carries this run's tag {RUN_TAG}={}, so it was not registered again",
                    plan.run_id
                ));
            } else {
                ui.line(format!("Registered {label}"));
            }
            (reg.arn.clone(), Some(reg))
        }
        RolloutAction::ForceNewDeployment => (plan.current_task_definition.clone(), None),
        RolloutAction::None => {
            return Err(no_orphan(
                Failure::failed("nothing to deploy: the plan has no change").into(),
            ))
        }
    };
    let force = plan.action == RolloutAction::ForceNewDeployment;
    let update = UpdateRequest {
        cluster: &plan.cluster,
        service: &plan.service,
        task_definition: &task_definition,
        previous: Some(&plan.current_task_definition),
        force,
        known_deployments: &plan.deployment_ids,
        deployment_configuration: plan.send_configuration.as_ref(),
    };
    // Once a revision exists, an interrupt lets the run report it (not drop it unsaid).
    let _wrap_up = registered.as_ref().map(|reg| {
        let label = revision_label(&reg.arn);
        ui.set_interrupt_note(
            format!("interrupted after {label} was registered; whether the service points at it is unknown"),
            format!("`{}` shows what the service runs; deploy again, or remove {label}: aws ecs deregister-task-definition --task-definition {label}", ui.command("status")),
        );
        ui.wrap_up_on_interrupt()
    });
    let updated = tokio::select! {
        r = update_service(aws, &update, ui) => r,
        () = ui.interrupted(), if registered.is_some() => Err(Failure::new(
            Code::Interrupted,
            "interrupted during UpdateService",
        )
        .into()),
    };
    match updated {
        Ok(target) => {
            if let Some(reg) = &registered {
                ui.set_interrupt_note(
                    format!(
                        "interrupted after {} was registered and deployment {} started; the rollout goes on in AWS",
                        revision_label(&reg.arn),
                        target.deployment_id
                    ),
                    format!("follow it with: {}", watch::resume_command(ui, &target)),
                );
            }
            Ok((target, registered))
        }
        Err(error) => match registered {
            None => Err(no_orphan(error)),
            Some(reg) => {
                let interrupted = crate::exit::code_of(&error) == Code::Interrupted;
                let points_at_it = match interrupted {
                    true => None,
                    false => describe_service(aws, &plan.cluster, &plan.service)
                        .await
                        .ok()
                        .map(|s| s.task_definition == reg.arn),
                };
                Err(Orphan {
                    registered: Some(reg),
                    points_at_it,
                    error,
                })
            }
        },
    }
}

pub fn watch_options(ecs: &EcsSection, timeout: Option<Duration>) -> WatchOptions {
    WatchOptions {
        poll_interval: ecs.poll_interval,
        timeout: timeout.unwrap_or(ecs.timeout),
        max_failed_tasks: ecs.max_failed_tasks,
    }
}

/// An error after a change was made, with where the service stands appended.
fn with_note(e: anyhow::Error, note: Option<String>) -> anyhow::Error {
    let Some(note) = note else { return e };
    let code = crate::exit::code_of(&e);
    let hint = crate::exit::hint_of(&e).map(str::to_string);
    let mut f = Failure::new(code, format!("{}; {note}", crate::exit::message_of(&e)));
    f.hint = hint;
    f.into()
}

/// Starts and (unless `no_wait`) watches the rollout; with `rollback_on_failure`, goes back
/// after a failure of ours (never after a superseding deploy; after a circuit-breaker
/// rollback it watches the breaker's rollback instead of starting another). The result is
/// complete on every path; the error, if any, is what ended the run.
pub async fn execute(
    aws: &Aws,
    ecs: &EcsSection,
    plan: DeployPlan,
    opts: &RolloutOptions,
    ui: &Ui,
) -> (DeployResult, Option<anyhow::Error>) {
    let (mut result, error) = execute_plan(aws, ecs, plan, opts, ui).await;
    if result.rollout_started_at.is_some() && !opts.no_wait {
        result.rollout_ended_at = Some(now_text());
    }
    (result, error)
}

async fn execute_plan(
    aws: &Aws,
    ecs: &EcsSection,
    plan: DeployPlan,
    opts: &RolloutOptions,
    ui: &Ui,
) -> (DeployResult, Option<anyhow::Error>) {
    let mut result = DeployResult::new(plan);
    if let Some(f) = result.plan.refusal() {
        return (result, Some(f.into()));
    }
    if result.plan.action == RolloutAction::None {
        match apply_configuration(aws, &result.plan, ui).await {
            Ok(updated) => result.configuration_updated = updated,
            Err(e) => return (result, Some(e)),
        }
        return match result.plan.in_progress.clone() {
            Some(d) => follow_in_progress(aws, ecs, result, d, opts, ui).await,
            None => (result, None),
        };
    }
    if let Some(e) = gate_refusal(&result.plan, opts) {
        return (result, Some(e));
    }
    let since_secs = native::watch::wall_secs();
    result.rollout_started_at = Some(now_text());
    let target = match start(aws, &result.plan, ui).await {
        Ok((target, registered)) => {
            result.service_uses_registered = registered.as_ref().map(|_| true);
            result.note_registration(registered);
            result.deployment_id = Some(target.deployment_id.clone());
            result.task_definition = Some(target.task_definition.clone());
            target
        }
        Err(o) => {
            result.rollout_started_at = None;
            if o.registered.is_some() {
                result.service_uses_registered = o.points_at_it;
            }
            result.note_registration(o.registered);
            let note = result.orphan_note(ui);
            return (result, Some(with_note(o.error, note)));
        }
    };
    if opts.no_wait {
        return (result, None);
    }
    if let Some(strategy) = result.plan.strategy.clone() {
        return follow_native(aws, ecs, result, &target, strategy, since_secs, opts, ui).await;
    }
    let wo = watch_options(ecs, opts.timeout);
    let outcome = match watch::watch(aws, &target, wo, ui, result.plan.seen_events.clone()).await {
        Ok(o) => o,
        Err(e) => {
            let note = result.orphan_note(ui).or_else(|| {
                Some(format!(
                    "deployment {} goes on in AWS; follow it with: {}",
                    target.deployment_id,
                    watch::resume_command(ui, &target)
                ))
            });
            return (result, Some(with_note(e, note)));
        }
    };
    let error = if opts.rollback_on_failure {
        roll_back_after(aws, ecs, &mut result, &outcome, wo, ui)
            .await
            .err()
    } else {
        None
    };
    result.outcome = Some(outcome);
    (result, error)
}

/// With no deployment to start, the plan's deploymentConfiguration alone (UpdateService
/// without a task definition); `Ok(false)` when there is none to send.
pub async fn apply_configuration(aws: &Aws, plan: &DeployPlan, ui: &Ui) -> anyhow::Result<bool> {
    match plan.send_configuration.clone() {
        None => Ok(false),
        Some(c) => update::update_configuration(aws, plan, c, ui)
            .await
            .map(|()| true),
    }
}

/// ", started T" when ECS says when the deployment was created.
fn started(d: &DeploymentView) -> String {
    if d.created_at.is_empty() {
        String::new()
    } else {
        format!(", started {}", d.created_at)
    }
}

/// Nothing to change, but a deployment is rolling out: say so and watch it (unless
/// `no_wait`), so a rerun after a lost UpdateService answer never ends on "No changes" while
/// the rollout it started runs unobserved.
async fn follow_in_progress(
    aws: &Aws,
    ecs: &EcsSection,
    mut result: DeployResult,
    d: DeploymentView,
    opts: &RolloutOptions,
    ui: &Ui,
) -> (DeployResult, Option<anyhow::Error>) {
    let target = WatchTarget {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        deployment_id: d.id.clone(),
        task_definition: d.task_definition.clone(),
        previous_task_definition: None,
    };
    result.deployment_id = Some(d.id.clone());
    result.task_definition = Some(d.task_definition.clone());
    ui.line(format!(
        "Nothing to change, but deployment {} of {}{} is in progress on the service (ECS does not say who started it; CloudTrail's UpdateService events do)",
        d.id,
        d.revision(),
        started(&d)
    ));
    if opts.no_wait {
        return (result, None);
    }
    ui.set_resume_hint(watch::resume_command(ui, &target));
    let seen = result.plan.seen_events.clone();
    match watch::watch(aws, &target, watch_options(ecs, opts.timeout), ui, seen).await {
        Ok(o) => result.outcome = Some(o),
        Err(e) => return (result, Some(e)),
    }
    (result, None)
}

/// `--rollback-on-failure` after `outcome`.
async fn roll_back_after(
    aws: &Aws,
    ecs: &EcsSection,
    result: &mut DeployResult,
    outcome: &WatchOutcome,
    wo: WatchOptions,
    ui: &Ui,
) -> anyhow::Result<()> {
    let WatchOutcome::Failed { rolled_back_to, .. } = outcome else {
        if let WatchOutcome::Superseded { .. } = outcome {
            ui.warn("--rollback-on-failure: not rolling back: another deployment superseded this one, and undoing it is not this run's call");
        }
        return Ok(());
    };
    watch::print_outcome(ui, outcome);
    let back = match rolled_back_to {
        Some(rb) => {
            ui.warn(format!(
                "--rollback-on-failure: the circuit breaker is already rolling back to {}; watching its deployment {} instead of starting another",
                rb.revision, rb.id
            ));
            WatchTarget {
                cluster: ecs.cluster.clone(),
                service: ecs.service.clone(),
                deployment_id: rb.id.clone(),
                task_definition: rb.task_definition.clone(),
                previous_task_definition: None,
            }
        }
        None => {
            ui.warn(format!(
                "{}; rolling back to {}",
                outcome.message(),
                result.plan.current_revision
            ));
            let update = UpdateRequest {
                cluster: &ecs.cluster,
                service: &ecs.service,
                task_definition: &result.plan.current_task_definition,
                previous: None,
                force: false,
                known_deployments: &result.plan.deployment_ids,
                deployment_configuration: None,
            };
            update_service(aws, &update, ui).await?
        }
    };
    let seen = match describe_service(aws, &ecs.cluster, &ecs.service).await {
        Ok(s) => s.events.iter().map(|e| e.id.clone()).collect(),
        Err(_) => HashSet::new(),
    };
    result.rollback = Some(watch::watch(aws, &back, wo, ui, seen).await?);
    Ok(())
}

mod register;
mod traffic_shift;
mod update;
mod verb;
pub use register::RUN_TAG;
pub(crate) use update::{update_service, UpdateRequest};
pub use verb::{finish, prepare, run, Beside, Prepared, Ready};
