//! `rollback --list`: the family's recent revisions, newest first (kubectl's `rollout
//! history`), with the configured container's image, when each was registered, its status,
//! and which one runs and which one `rollback` would go back to.

use std::fmt::Write as _;

use aws_sdk_ecs::types::{SortOrder, TaskDefinitionStatus};
use serde::Serialize;

use crate::aws::{sdk_error, Aws};
use crate::ecs::taskdef::{revision_label, revision_number};
use crate::outside::Outside;

/// Revisions listed by `--list` (and named in the hint for a revision that does not exist).
pub const LIST_MAX: usize = 10;
/// Pages of ListTaskDefinitions read at most per status: other families sharing the prefix
/// (`bosar-api-worker` for `bosar-api`) can fill pages.
const PAGES_MAX: usize = 5;

/// One revision of the family.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub revision: i32,
    pub task_definition: String,
    /// The configured container's image (`null`: no such container, or not read).
    pub image: Option<Outside>,
    /// RFC 3339, as ECS recorded it.
    pub registered_at: Option<String>,
    /// `ACTIVE` or `INACTIVE` (deregistered: still runnable by a service that uses it).
    pub status: String,
    pub running: bool,
    /// The revision `rollback` without `--to` returns to.
    pub rollback_target: bool,
}

/// The newest ARNs of `family` with `status`, newest first, at most `max`.
async fn newest(
    aws: &Aws,
    family: &str,
    status: TaskDefinitionStatus,
    max: usize,
) -> anyhow::Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut pages = aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(status)
        .sort(SortOrder::Desc)
        .max_results(max as i32)
        .into_paginator()
        .send();
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error("ListTaskDefinitions", e))?;
        arns.extend(
            page.task_definition_arns()
                .iter()
                .filter(|a| family_of(a) == family)
                .cloned(),
        );
        read += 1;
        if arns.len() >= max || read >= PAGES_MAX {
            break;
        }
    }
    Ok(arns)
}

pub fn family_of(arn: &str) -> String {
    revision_label(arn)
        .rsplit_once(':')
        .map(|(f, _)| f.to_string())
        .unwrap_or_default()
}

/// The newest revision numbers with their ARNs, ACTIVE and INACTIVE merged, newest first.
pub async fn recent(aws: &Aws, family: &str, max: usize) -> anyhow::Result<Vec<(i32, String)>> {
    let (active, inactive) = tokio::join!(
        newest(aws, family, TaskDefinitionStatus::Active, max),
        newest(aws, family, TaskDefinitionStatus::Inactive, max),
    );
    let mut all: Vec<(i32, String)> = active?
        .into_iter()
        .chain(inactive?)
        .filter_map(|a| Some((revision_number(&a)?, a)))
        .collect();
    all.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    all.dedup_by_key(|(n, _)| *n);
    all.truncate(max);
    Ok(all)
}

/// Describes each of `recent` (image, registration time, status) and marks the running one
/// and the rollback target.
pub async fn revisions(
    aws: &Aws,
    recent: &[(i32, String)],
    container: &str,
    running: &str,
    target: Option<&str>,
) -> anyhow::Result<Vec<Revision>> {
    let mut out = Vec::new();
    for (n, arn) in recent {
        let td = aws
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTaskDefinition", e))?;
        let td = td.task_definition();
        let image = td
            .and_then(|t| {
                t.container_definitions()
                    .iter()
                    .find(|c| c.name() == Some(container))
            })
            .and_then(|c| c.image())
            .map(Outside::new);
        out.push(Revision {
            revision: *n,
            task_definition: arn.clone(),
            image,
            registered_at: td
                .and_then(|t| t.registered_at())
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
            status: td
                .and_then(|t| t.status())
                .map_or("?", |s| s.as_str())
                .to_string(),
            running: arn == running,
            rollback_target: Some(arn.as_str()) == target,
        });
    }
    Ok(out)
}

/// The list as text: one line a revision, newest first.
pub fn render(family: &str, revisions: &[Revision]) -> String {
    let mut out = format!("Revisions of {family} (newest first, at most {LIST_MAX}):\n");
    if revisions.is_empty() {
        out.push_str("  (none)\n");
    }
    for r in revisions {
        let mark = match (r.running, r.rollback_target) {
            (true, _) => "  <- running",
            (_, true) => "  <- rollback target",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {:>5}  {:<8}  {}  {}{mark}",
            r.revision,
            r.status,
            r.registered_at.as_deref().unwrap_or("?"),
            r.image
                .as_ref()
                .map_or_else(|| "(no such container)".to_string(), |i| i.to_string()),
        );
    }
    out
}
