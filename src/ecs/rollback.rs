//! `rollback`: back to the revision before the current one (by revision number, across every
//! page of ListTaskDefinitions) or a named one, watched like a deploy.

use serde::Serialize;

use super::deploy::{update_service, watch_options, UpdateRequest};
use super::rollout::rollout_refusal;
use super::taskdef::{self, revision_label};
use super::watch;
use super::{describe_service, describe_task_definition};
use crate::aws::{sdk_error, Aws};
use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::exit::{Code, Failure};
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
    let mut arns: Vec<String> = Vec::new();
    let mut pages = aws
        .ecs
        .list_task_definitions()
        .family_prefix(&family)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListTaskDefinitions", e))?;
        arns.extend(page.task_definition_arns().iter().cloned());
    }
    previous_revision(arns.iter().map(String::as_str), &family, cur)
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::failed(format!(
                "no active revision of {family} before {}",
                revision_label(current)
            ))
            .hint("name one with --to REVISION")
            .into()
        })
}

/// `rollback`'s payload in the JSON envelope.
#[derive(Serialize)]
struct RollbackPlan<'a> {
    dry_run: bool,
    /// `changes_pending` (dry run), `started` (`--no-wait`), or the watch's end as `outcome`.
    result: &'static str,
    from: &'a str,
    to: &'a str,
    deployment_id: Option<&'a str>,
}

/// The `rollback` verb.
pub async fn run(args: &RollbackArgs, cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("rollback")?;
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    if let Some(r) = rollout_refusal(&svc) {
        return Err(Failure::failed(format!("refused, nothing was changed: {r}")).into());
    }
    let to = rollback_target(aws, &svc.task_definition, args.to.as_deref()).await?;
    ui.out(format!(
        "~ service {}: {} -> {}",
        ecs.service,
        revision_label(&svc.task_definition),
        revision_label(&to)
    ));
    let plan_doc = |result, deployment_id| RollbackPlan {
        dry_run: args.dry_run,
        result,
        from: &svc.task_definition,
        to: &to,
        deployment_id,
    };
    if args.dry_run {
        ui.emit(
            "rollback",
            &plan_doc("changes_pending", None),
            Code::Success,
            None,
        );
        return Ok(Code::Success);
    }
    let known: Vec<String> = svc.deployments.iter().map(|d| d.id.clone()).collect();
    let update = UpdateRequest {
        cluster: &ecs.cluster,
        service: &ecs.service,
        task_definition: &to,
        previous: Some(&svc.task_definition),
        force: false,
        known_deployments: &known,
    };
    let target = update_service(aws, &update, ui).await?;
    if args.no_wait {
        let doc = plan_doc("started", Some(&target.deployment_id));
        ui.emit("rollback", &doc, Code::Success, None);
        return Ok(Code::Success);
    }
    let seen = svc.events.iter().map(|e| e.id.clone()).collect();
    let outcome = watch::watch(aws, &target, watch_options(ecs, args.timeout), ui, seen).await?;
    let doc = plan_doc("watched", Some(&target.deployment_id));
    let payload = match serde_json::to_value(&doc) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    watch::finish_outcome(ui, "rollback", payload, &outcome)
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
}
