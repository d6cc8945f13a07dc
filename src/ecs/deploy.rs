//! `deploy`, `wait` and `rollback`: plan the new revision, start the rollout, watch it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use console::style;
use serde::Serialize;

use super::preflight::{self, Clients};
use super::rollout::ServiceView;
use super::taskdef::{self, revision_label, ContainerChange, DesiredContainer};
use super::watch::{self, WatchOptions, WatchOutcome, WatchTarget};
use super::{describe_service, describe_task_definition};
use crate::aws::{sdk_error, Aws};
use crate::cli::{DeployArgs, RollbackArgs, WaitArgs};
use crate::config::{Config, EcsSection};
use crate::exit::{Code, Failure};
use crate::ui::Ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    /// Register a new revision and point the service at it.
    NewRevision,
    /// Redeploy the current revision (fresh tasks, same definition).
    ForceNewDeployment,
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
    #[serde(skip)]
    pub(crate) td: aws_sdk_ecs::types::TaskDefinition,
    #[serde(skip)]
    pub(crate) tags: Vec<aws_sdk_ecs::types::Tag>,
    #[serde(skip)]
    pub(crate) seen_events: HashSet<String>,
}

impl DeployPlan {
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
                    "  ~ service {}: force a new deployment of {} ({} task(s))",
                    self.service, self.current_revision, self.desired_count
                );
            }
        }
        out
    }
}

/// Reads the service and its task definition and computes the plan. Read calls only.
pub async fn plan(aws: &Aws, ecs: &EcsSection, image: Option<&str>) -> anyhow::Result<DeployPlan> {
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    let (td, tags) = describe_task_definition(aws, &svc.task_definition).await?;
    let want = DesiredContainer {
        name: &ecs.container,
        image: image.or(ecs.image.as_deref()),
        environment: &ecs.environment,
        managed_prefix: &ecs.managed_env_prefix,
    };
    let changes = taskdef::diff_container(&td, &want)
        .map_err(|m| Failure::failed(m).hint("check [ecs] container in deploy.toml"))?;
    Ok(DeployPlan {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        container: ecs.container.clone(),
        current_revision: revision_label(&svc.task_definition),
        current_task_definition: svc.task_definition.clone(),
        action: if changes.is_empty() {
            RolloutAction::ForceNewDeployment
        } else {
            RolloutAction::NewRevision
        },
        changes,
        desired_count: svc.desired,
        target_group_arns: svc.target_group_arns.clone(),
        td,
        tags,
        seen_events: svc.events.iter().map(|e| e.id.clone()).collect(),
    })
}

/// Registers the new revision (if any) and updates the service; returns what to watch.
pub async fn start(aws: &Aws, plan: &DeployPlan, ui: &Ui) -> anyhow::Result<WatchTarget> {
    let task_definition = match plan.action {
        RolloutAction::NewRevision => {
            let containers = taskdef::apply_changes(&plan.td, &plan.container, &plan.changes);
            let req = taskdef::register_input(
                aws.ecs.register_task_definition(),
                &plan.td,
                &plan.tags,
                containers,
            );
            let out = req
                .send()
                .await
                .map_err(|e| sdk_error("RegisterTaskDefinition", e))?;
            let arn = out
                .task_definition()
                .and_then(|t| t.task_definition_arn())
                .ok_or_else(|| Failure::failed("RegisterTaskDefinition returned no ARN"))?
                .to_string();
            ui.line(format!("Registered {}", revision_label(&arn)));
            arn
        }
        RolloutAction::ForceNewDeployment => plan.current_task_definition.clone(),
    };
    update_service(
        aws,
        &plan.cluster,
        &plan.service,
        &task_definition,
        plan.action == RolloutAction::ForceNewDeployment,
        ui,
    )
    .await
}

async fn update_service(
    aws: &Aws,
    cluster: &str,
    service: &str,
    task_definition: &str,
    force: bool,
    ui: &Ui,
) -> anyhow::Result<WatchTarget> {
    let mut req = aws
        .ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition);
    if force {
        req = req.force_new_deployment(true);
    }
    let out = req
        .send()
        .await
        .map_err(|e| sdk_error("UpdateService", e))?;
    // UpdateService returns the service with the new deployment as PRIMARY.
    let deployment_id = out
        .service()
        .and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"))
        })
        .and_then(|d| d.id())
        .ok_or_else(|| Failure::failed("UpdateService returned no primary deployment"))?
        .to_string();
    ui.line(format!(
        "Started deployment {deployment_id} of {}",
        revision_label(task_definition)
    ));
    let target = WatchTarget {
        cluster: cluster.to_string(),
        service: service.to_string(),
        deployment_id,
        task_definition: task_definition.to_string(),
    };
    ui.set_resume_hint(watch::resume_command(&target));
    Ok(target)
}

/// Result of `deploy` for reports.
#[derive(Debug, Clone, Serialize)]
pub struct DeployResult {
    pub plan: DeployPlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<WatchOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<WatchOutcome>,
    /// The preflight checks run on the revision before it was registered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<crate::report::Check>,
}

impl DeployResult {
    pub fn code(&self) -> Code {
        self.outcome
            .as_ref()
            .map(|o| o.code())
            .unwrap_or(Code::Success)
    }
}

pub fn watch_options(ecs: &EcsSection, timeout: Option<Duration>) -> WatchOptions {
    WatchOptions {
        poll_interval: ecs.poll_interval,
        timeout: timeout.unwrap_or(ecs.timeout),
    }
}

/// Start and (unless `no_wait`) watch; with `rollback_on_failure`, go back and watch that too.
pub async fn execute(
    aws: &Aws,
    ecs: &EcsSection,
    plan: DeployPlan,
    args: &DeployArgs,
    ui: &Ui,
) -> anyhow::Result<DeployResult> {
    let target = start(aws, &plan, ui).await?;
    let mut result = DeployResult {
        deployment_id: Some(target.deployment_id.clone()),
        task_definition: Some(target.task_definition.clone()),
        outcome: None,
        rollback: None,
        preflight: Vec::new(),
        plan,
    };
    if args.no_wait {
        return Ok(result);
    }
    let opts = watch_options(ecs, args.timeout);
    let outcome = watch::watch(aws, &target, opts, ui, result.plan.seen_events.clone()).await?;
    if matches!(outcome, WatchOutcome::Failed { .. }) && args.rollback_on_failure {
        ui.warn(format!(
            "{}; rolling back to {}",
            outcome.message(),
            result.plan.current_revision
        ));
        watch::print_outcome(ui, &outcome);
        let back = update_service(
            aws,
            &ecs.cluster,
            &ecs.service,
            &result.plan.current_task_definition,
            false,
            ui,
        )
        .await?;
        let seen = match describe_service(aws, &ecs.cluster, &ecs.service).await {
            Ok(s) => s.events.iter().map(|e| e.id.clone()).collect(),
            Err(_) => HashSet::new(),
        };
        result.rollback = Some(watch::watch(aws, &back, opts, ui, seen).await?);
    }
    result.outcome = Some(outcome);
    Ok(result)
}

fn print_result(ui: &Ui, result: &DeployResult) {
    if let Some(o) = &result.outcome {
        match o {
            WatchOutcome::Succeeded { .. } => {
                if !ui.json() {
                    println!("{}", o.message());
                }
            }
            _ => {
                ui.error(o.message(), None);
                watch::print_outcome(ui, o);
            }
        }
    }
    if let Some(rb) = &result.rollback {
        let msg = format!(
            "rollback to {}: {}",
            result.plan.current_revision,
            rb.message()
        );
        if matches!(rb, WatchOutcome::Succeeded { .. }) {
            ui.line(msg);
        } else {
            ui.error(msg, None);
            watch::print_outcome(ui, rb);
        }
    }
}

#[derive(Serialize)]
struct Report<'a, T: Serialize> {
    command: &'static str,
    dry_run: bool,
    #[serde(flatten)]
    body: &'a T,
}

/// The `deploy` verb.
pub async fn run(
    args: &DeployArgs,
    cfg: &Config,
    aws: &Aws,
    pre: &Clients,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("deploy")?;
    if let Some(img) = &args.image {
        if img.trim().is_empty() || img.contains(char::is_whitespace) {
            return Err(
                Failure::usage(format!("--image: \"{img}\" is not an image reference")).into(),
            );
        }
    }
    ui.line(format!(
        "Reading service {} in cluster {}",
        ecs.service, ecs.cluster
    ));
    let plan = plan(aws, ecs, args.image.as_deref()).await?;
    if !ui.json() {
        print!("{}", plan.render());
    }
    preflight::warn_skipped(ui, &args.skip_preflight);
    let checks = preflight::check_plan(pre, &plan, &args.skip_preflight).await;
    if !ui.json() {
        print!("{}", preflight::render(&checks));
    }
    let stop = preflight::stop(&checks);
    if args.dry_run || stop.is_some() {
        if ui.json() {
            crate::ui::print_json(&Report {
                command: "deploy",
                dry_run: args.dry_run,
                body: &DeployResult {
                    plan,
                    deployment_id: None,
                    task_definition: None,
                    outcome: None,
                    rollback: None,
                    preflight: checks,
                },
            });
        }
        if let Some(err) = stop {
            return Err(err);
        }
        // A dry run always has a rollout to start (at least a forced redeploy).
        return Ok(if args.detailed_exitcode {
            Code::ChangesPending
        } else {
            Code::Success
        });
    }
    let mut result = execute(aws, ecs, plan, args, ui).await?;
    result.preflight = checks;
    if args.no_wait && !ui.json() {
        println!(
            "Deployment {} started; not watching. Follow it with: bosar-deploy wait --deployment {}",
            result.deployment_id.as_deref().unwrap_or("?"),
            result.deployment_id.as_deref().unwrap_or("?")
        );
    }
    print_result(ui, &result);
    if ui.json() {
        crate::ui::print_json(&Report {
            command: "deploy",
            dry_run: false,
            body: &result,
        });
    }
    Ok(result.code())
}

/// The `wait` verb: resume watching a deployment (default: the primary one).
pub async fn run_wait(args: &WaitArgs, cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("wait")?;
    let svc: ServiceView = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    let dep = match &args.deployment {
        Some(id) => svc.deployment(id).cloned().ok_or_else(|| {
            Failure::failed(format!("deployment {id} is not on service {}", ecs.service))
                .hint("`bosar-deploy status` lists the service's deployments")
        })?,
        None => svc.primary().cloned().ok_or_else(|| {
            Failure::failed(format!("service {} has no primary deployment", ecs.service))
        })?,
    };
    let target = WatchTarget {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        deployment_id: dep.id.clone(),
        task_definition: dep.task_definition.clone(),
    };
    ui.set_resume_hint(watch::resume_command(&target));
    ui.line(format!(
        "Watching deployment {} of {}",
        dep.id,
        dep.revision()
    ));
    // Show the latest few events for context, then only new ones.
    let seen: HashSet<String> = svc.events.iter().skip(3).map(|e| e.id.clone()).collect();
    let outcome = watch::watch(aws, &target, watch_options(ecs, args.timeout), ui, seen).await?;
    finish_outcome(ui, "wait", &outcome)
}

fn finish_outcome(ui: &Ui, command: &'static str, outcome: &WatchOutcome) -> anyhow::Result<Code> {
    if ui.json() {
        crate::ui::print_json(&Report {
            command,
            dry_run: false,
            body: outcome,
        });
    } else if matches!(outcome, WatchOutcome::Succeeded { .. }) {
        println!("{}", outcome.message());
    }
    if !matches!(outcome, WatchOutcome::Succeeded { .. }) {
        ui.error(outcome.message(), None);
        watch::print_outcome(ui, outcome);
    }
    Ok(outcome.code())
}

/// Resolves `--to` ("42", "bosar-api:42" or an ARN) or the revision before the current one.
async fn rollback_target(aws: &Aws, current: &str, to: Option<&str>) -> anyhow::Result<String> {
    let family = revision_label(current)
        .rsplit_once(':')
        .map(|(f, _)| f.to_string())
        .unwrap_or_default();
    if let Some(to) = to {
        let id = if to.starts_with("arn:") || to.contains(':') {
            to.to_string()
        } else if to.parse::<u32>().is_ok() {
            format!("{family}:{to}")
        } else {
            return Err(Failure::usage(format!(
                "--to {to}: give a revision number, FAMILY:REVISION or an ARN"
            ))
            .into());
        };
        let (td, _) = describe_task_definition(aws, &id).await.map_err(|e| {
            anyhow::Error::from(Failure::failed(format!("revision {id} not found: {e}")))
        })?;
        return Ok(td.task_definition_arn().unwrap_or(&id).to_string());
    }
    let cur = taskdef::revision_number(current).unwrap_or(i32::MAX);
    let list = aws
        .ecs
        .list_task_definitions()
        .family_prefix(&family)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .send()
        .await
        .map_err(|e| sdk_error("ListTaskDefinitions", e))?;
    list.task_definition_arns()
        .iter()
        .filter(|a| revision_label(a).rsplit_once(':').map(|(f, _)| f) == Some(family.as_str()))
        .find(|a| taskdef::revision_number(a).is_some_and(|n| n < cur))
        .cloned()
        .ok_or_else(|| {
            Failure::failed(format!(
                "no revision of {family} before {}",
                revision_label(current)
            ))
            .hint("name one with --to REVISION")
            .into()
        })
}

/// The `rollback` verb.
pub async fn run_rollback(
    args: &RollbackArgs,
    cfg: &Config,
    aws: &Aws,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("rollback")?;
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    let to = rollback_target(aws, &svc.task_definition, args.to.as_deref()).await?;
    let msg = format!(
        "~ service {}: {} -> {}",
        ecs.service,
        revision_label(&svc.task_definition),
        revision_label(&to)
    );
    if !ui.json() {
        println!("{msg}");
    }
    if args.dry_run {
        return Ok(Code::Success);
    }
    let target = update_service(aws, &ecs.cluster, &ecs.service, &to, false, ui).await?;
    if args.no_wait {
        return Ok(Code::Success);
    }
    let seen = svc.events.iter().map(|e| e.id.clone()).collect();
    let outcome = watch::watch(aws, &target, watch_options(ecs, args.timeout), ui, seen).await?;
    finish_outcome(ui, "rollback", &outcome)
}
