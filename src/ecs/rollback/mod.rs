//! `rollback`: back to the revision before the current one (by revision number, across every
//! page of ListTaskDefinitions) or a named one, watched like a deploy. Before it changes
//! anything it shows the diff to that revision and runs the deploy preflight checks on it;
//! `--list` shows the revisions to choose from.

mod diff;
mod list;

use serde::Serialize;

use super::deploy::{update_service, watch_options, UpdateRequest};
use super::rollout::rollout_refusal;
use super::taskdef::{self, revision_label};
use super::watch;
use super::{describe_service, describe_task_definition, preflight};
use crate::aws::{sdk_error, Aws};
use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::exit::{Code, Failure};
use crate::report::Check;
use crate::ui::Ui;

/// The revision before `current_revision` among `arns` of `family`: the highest lower number.
pub fn previous_revision<'a>(
    arns: impl IntoIterator<Item = &'a str>,
    family: &str,
    current_revision: i32,
) -> Option<&'a str> {
    arns.into_iter()
        .filter(|a| revision_label(a).rsplit_once(':').map(|(f, _)| f) == Some(family))
        .filter_map(|a| Some((taskdef::revision_number(a)?, a)))
        .filter(|(n, _)| *n < current_revision)
        .max_by_key(|(n, _)| *n)
        .map(|(_, a)| a)
}

/// The revision `--to` names ("42", "bosar-api:42" or an ARN), or a usage error.
fn named_revision(family: &str, to: &str) -> anyhow::Result<String> {
    if to.starts_with("arn:") || to.contains(':') {
        Ok(to.to_string())
    } else if to.parse::<u32>().is_ok() {
        Ok(format!("{family}:{to}"))
    } else {
        Err(Failure::usage(format!(
            "--to {to}: give a revision number, FAMILY:REVISION or an ARN"
        ))
        .hint("`bosar-deploy rollback --list` lists the revisions")
        .into())
    }
}

/// `--to`'s revision: ECS's answer for one that does not exist (a ClientException) becomes a
/// failure that lists the recent revisions and points at `--list`.
async fn describe_named(
    aws: &Aws,
    family: &str,
    id: &str,
) -> anyhow::Result<aws_sdk_ecs::types::TaskDefinition> {
    let resp = aws
        .ecs
        .describe_task_definition()
        .task_definition(id)
        .send()
        .await;
    match resp {
        Ok(o) => o
            .task_definition()
            .cloned()
            .ok_or_else(|| Failure::failed(format!("revision {id} not found")).into()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_client_exception()) =>
        {
            let recent = list::recent(aws, family, list::LIST_MAX)
                .await
                .unwrap_or_default();
            let names: Vec<String> = recent.iter().map(|(n, _)| n.to_string()).collect();
            let known = if names.is_empty() {
                format!("no revision of {family} was found")
            } else {
                format!("recent revisions of {family}: {}", names.join(", "))
            };
            Err(Failure::failed(format!(
                "revision {} does not exist ({known})",
                crate::outside::Outside::new(id)
            ))
            .hint("`bosar-deploy rollback --list` lists them with their images and which one runs")
            .into())
        }
        Err(e) => Err(sdk_error("DescribeTaskDefinition", e)),
    }
}

/// The revision before `current`, or `None` when there is none (ACTIVE revisions only: a
/// deregistered one is not a default to go back to).
async fn previous_of(aws: &Aws, family: &str, current: &str) -> anyhow::Result<Option<String>> {
    let cur = taskdef::revision_number(current).unwrap_or(i32::MAX);
    let mut arns: Vec<String> = Vec::new();
    let mut pages = aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListTaskDefinitions", e))?;
        arns.extend(page.task_definition_arns().iter().cloned());
    }
    Ok(previous_revision(arns.iter().map(String::as_str), family, cur).map(str::to_string))
}

/// Resolves `--to` or the revision before the current one, described.
async fn rollback_target(
    aws: &Aws,
    current: &str,
    to: Option<&str>,
) -> anyhow::Result<aws_sdk_ecs::types::TaskDefinition> {
    let family = list::family_of(current);
    let id = match to {
        Some(to) => named_revision(&family, to)?,
        None => previous_of(aws, &family, current).await?.ok_or_else(|| {
            Failure::failed(format!(
                "no active revision of {family} before {}",
                revision_label(current)
            ))
            .hint("name one with --to REVISION; `bosar-deploy rollback --list` lists them")
        })?,
    };
    describe_named(aws, &family, &id).await
}

/// `rollback`'s payload in the JSON envelope.
#[derive(Serialize)]
struct RollbackPlan<'a> {
    dry_run: bool,
    /// `no_changes` (the service runs it already), `changes_pending` (dry run), `started`
    /// (`--no-wait`), `interrupted`, or the watch's end as `outcome` (`watched`).
    result: &'static str,
    from: &'a str,
    to: &'a str,
    deployment_id: Option<&'a str>,
    /// Image, environment, CPU and memory from the running revision to `to`.
    changes: Vec<serde_json::Value>,
    /// The deploy preflight checks on `to`.
    #[serde(skip_serializing_if = "<[Check]>::is_empty")]
    preflight: &'a [Check],
}

fn to_map(doc: &RollbackPlan) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(doc) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// The `rollback` verb.
pub async fn run(args: &RollbackArgs, cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("rollback")?;
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    if args.list {
        return run_list(aws, &svc.task_definition, &ecs.container, ui).await;
    }
    if let Some(r) = rollout_refusal(&svc) {
        return Err(Failure::failed(format!("refused, nothing was changed: {r}")).into());
    }
    if svc.strategy.as_deref().is_some_and(|s| s != "ROLLING") && args.to.is_none() {
        if let Some(code) = stop_running(args, ecs, aws, ui, &svc).await? {
            return Ok(code);
        }
    }
    let target_td = rollback_target(aws, &svc.task_definition, args.to.as_deref()).await?;
    let to = target_td
        .task_definition_arn()
        .unwrap_or_default()
        .to_string();
    let (current_td, _) = describe_task_definition(aws, &svc.task_definition).await?;
    let diff = diff::diff(&current_td, &target_td, &ecs.container, &ecs.show_values)
        .map_err(|m| Failure::failed(m).hint("check [ecs] container in deploy.toml"))?;
    let same = to == svc.task_definition;
    ui.out(
        diff::render(
            &ecs.service,
            &ecs.cluster,
            &ecs.container,
            &svc.task_definition,
            &to,
            &diff,
        )
        .trim_end(),
    );
    let checks = if same {
        Vec::new()
    } else {
        check_target(aws, &target_td, &args.skip_preflight, ui).await
    };
    let doc = |result, deployment_id| RollbackPlan {
        dry_run: args.dry_run,
        result,
        from: &svc.task_definition,
        to: &to,
        deployment_id,
        changes: diff.to_json(),
        preflight: &checks,
    };
    if let Some(stop) = preflight::stop(&checks) {
        ui.emit(
            "rollback",
            &doc("refused", None),
            crate::exit::code_of(&stop),
            Some(&stop),
        );
        return Err(stop);
    }
    if same || args.dry_run {
        return Ok(finish_dry(
            args,
            ui,
            same,
            &doc(
                if same {
                    "no_changes"
                } else {
                    "changes_pending"
                },
                None,
            ),
        ));
    }
    let known: Vec<String> = svc.deployments.iter().map(|d| d.id.clone()).collect();
    let update = UpdateRequest {
        cluster: &ecs.cluster,
        service: &ecs.service,
        task_definition: &to,
        previous: Some(&svc.task_definition),
        force: false,
        known_deployments: &known,
        deployment_configuration: None,
    };
    let target = update_service(aws, &update, ui).await?;
    if args.no_wait {
        let d = doc("started", Some(&target.deployment_id));
        ui.emit("rollback", &d, Code::Success, None);
        return Ok(Code::Success);
    }
    let seen = svc.events.iter().map(|e| e.id.clone()).collect();
    let watched = watch::watch(aws, &target, watch_options(ecs, args.timeout), ui, seen).await;
    // `result` becomes the watch's outcome (`succeeded`, `failed`, …) once it ends.
    let payload = to_map(&doc("started", Some(&target.deployment_id)));
    match watched {
        Ok(outcome) => watch::finish_outcome(ui, "rollback", payload, &outcome),
        Err(e) => Err(super::wait::emit_interrupted(
            ui, "rollback", payload, &target, e,
        )),
    }
}

/// The deploy preflight checks on the revision to go back to (its image may be gone, its
/// roles or secrets deleted since it last ran), shown.
async fn check_target(
    aws: &Aws,
    target: &aws_sdk_ecs::types::TaskDefinition,
    skip: &[preflight::CheckName],
    ui: &Ui,
) -> Vec<Check> {
    let Some(clients) = preflight::clients_for(aws) else {
        return Vec::new();
    };
    preflight::warn_skipped(ui, skip);
    let checks = preflight::check_revision(&clients, target, skip).await;
    ui.out(
        preflight::render(&checks)
            .replacen("the revision to register", "the revision to go back to", 1)
            .trim_end(),
    );
    checks
}

/// The end of a dry run (or of a rollback to what already runs): the closing line, the
/// envelope, the exit code (3 with `--detailed-exitcode` when the service would change).
fn finish_dry(args: &RollbackArgs, ui: &Ui, same: bool, doc: &RollbackPlan) -> Code {
    let code = if args.detailed_exitcode && !same {
        Code::ChangesPending
    } else {
        Code::Success
    };
    ui.out(if same {
        "nothing to roll back, nothing was changed"
    } else {
        "dry run: nothing was changed (run without --dry-run to roll back)"
    });
    ui.emit("rollback", doc, code, None);
    code
}

/// `rollback --list`.
async fn run_list(aws: &Aws, running: &str, container: &str, ui: &Ui) -> anyhow::Result<Code> {
    let family = list::family_of(running);
    let recent = list::recent(aws, &family, list::LIST_MAX).await?;
    let target = previous_of(aws, &family, running).await?;
    let revs = list::revisions(aws, &recent, container, running, target.as_deref()).await?;
    ui.out(list::render(&family, &revs).trim_end());
    #[derive(Serialize)]
    struct Listed<'a> {
        result: &'static str,
        family: &'a str,
        container: &'a str,
        revisions: &'a [list::Revision],
    }
    let doc = Listed {
        result: "listed",
        family: &family,
        container,
        revisions: &revs,
    };
    ui.emit("rollback", &doc, Code::Success, None);
    Ok(Code::Success)
}

/// On a blue/green, canary or linear service with a deployment still running, the way back
/// is StopServiceDeployment ROLLBACK (traffic returns to blue, which still runs), not a new
/// deployment; then it is followed to its end. `None`: nothing runs, roll back as usual.
async fn stop_running(
    args: &RollbackArgs,
    ecs: &crate::config::EcsSection,
    aws: &Aws,
    ui: &Ui,
    svc: &super::rollout::ServiceView,
) -> anyhow::Result<Option<Code>> {
    use super::native::{read, watch as native_watch};
    use super::watch::{WatchOutcome, WatchTarget};
    let briefs = read::list(aws, &ecs.cluster, &ecs.service).await?;
    let Some(running) = briefs.iter().find(|b| read::running(&b.status)) else {
        return Ok(None);
    };
    let mut payload = serde_json::Map::new();
    payload.insert("dry_run".into(), args.dry_run.into());
    payload.insert("from".into(), svc.task_definition.clone().into());
    payload.insert(
        "to".into(),
        "the service revision before the running deployment".into(),
    );
    payload.insert("deployment_id".into(), running.arn.clone().into());
    payload.insert("stop_type".into(), "ROLLBACK".into());
    ui.out(format!(
        "service {}: deployment {} is {}: the way back is StopServiceDeployment ROLLBACK (traffic returns to the tasks that still run the previous revision)",
        ecs.service, running.arn, running.status
    ));
    if args.dry_run {
        payload.insert("result".into(), "changes_pending".into());
        ui.emit("rollback", &payload, Code::Success, None);
        return Ok(Some(Code::Success));
    }
    read::stop_rollback(aws, &running.arn).await?;
    ui.line(format!(
        "Sent StopServiceDeployment ROLLBACK for {}",
        running.arn
    ));
    let target = WatchTarget {
        cluster: ecs.cluster.clone(),
        service: ecs.service.clone(),
        deployment_id: running.arn.clone(),
        task_definition: svc.task_definition.clone(),
        previous_task_definition: None,
    };
    if args.no_wait {
        payload.insert("result".into(), "started".into());
        ui.emit("rollback", &payload, Code::Success, None);
        return Ok(Some(Code::Success));
    }
    let opts = native_watch::NativeOptions {
        poll_interval: ecs.poll_interval,
        timeout: args.timeout.unwrap_or(ecs.timeout),
        gate: None,
        strategy: svc.strategy.clone().unwrap_or_default(),
        since_secs: 0,
    };
    let (outcome, report) = native_watch::watch(aws, &target, &opts, None, ui).await?;
    // The deployment stopped is ours to undo: ROLLBACK_SUCCESSFUL is this verb's success.
    let outcome = match (&outcome, &report.rollback) {
        (WatchOutcome::Failed { .. }, Some(rb)) if rb.succeeded => WatchOutcome::Succeeded {
            revision: "the previous service revision".into(),
            elapsed_ms: rb.took_ms.unwrap_or_default(),
            healthy_targets: 0,
        },
        _ => outcome,
    };
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&report) {
        payload.extend(m);
    }
    watch::finish_outcome(ui, "rollback", payload, &outcome).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_is_by_number_not_by_order() {
        let arn = |r: u32| format!("arn:aws:ecs:us-east-1:1:task-definition/bosar-api:{r}");
        let other = "arn:aws:ecs:us-east-1:1:task-definition/bosar-api-worker:9".to_string();
        // Out of order, across what were two pages, another family mixed in.
        let arns = [arn(1), arn(3), other, arn(2), arn(10)];
        let it = || arns.iter().map(String::as_str);
        assert_eq!(
            previous_revision(it(), "bosar-api", 3),
            Some(arn(2).as_str())
        );
        assert_eq!(
            previous_revision(it(), "bosar-api", 10),
            Some(arn(3).as_str())
        );
        assert_eq!(previous_revision(it(), "bosar-api", 1), None);
    }

    #[test]
    fn to_takes_a_number_a_label_or_an_arn() {
        assert_eq!(named_revision("f", "7").unwrap(), "f:7");
        assert_eq!(named_revision("f", "g:7").unwrap(), "g:7");
        let e = named_revision("f", "latest").unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Code::Usage);
    }
}
