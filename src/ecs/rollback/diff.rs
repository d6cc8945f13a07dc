//! What going back changes: the running revision against the one `rollback` returns to, in
//! the deploy plan's terms (image and environment of the configured container, as
//! [`ContainerChange`] lines) plus the task's CPU and memory. Pure: no AWS calls.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aws_sdk_ecs::types::TaskDefinition;
use console::style;
use serde::Serialize;

use crate::ecs::taskdef::{self, masked, revision_label, ContainerChange, DesiredContainer};
use crate::outside::Outside;

/// A task-level size change (`cpu`, `memory`), as ECS spells the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizeChange {
    pub change: &'static str,
    pub from: Option<Outside>,
    pub to: Option<Outside>,
}

/// The diff from the running revision to the rollback target.
#[derive(Debug, Clone, Default)]
pub struct RollbackDiff {
    pub container: Vec<ContainerChange>,
    pub size: Vec<SizeChange>,
}

impl RollbackDiff {
    pub fn is_empty(&self) -> bool {
        self.container.is_empty() && self.size.is_empty()
    }

    /// Every change as one JSON list (`change`: image, env_added, env_changed, env_removed,
    /// cpu, memory).
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        let c = self.container.iter().map(serde_json::to_value);
        let s = self.size.iter().map(serde_json::to_value);
        c.chain(s).filter_map(Result::ok).collect()
    }
}

/// The environment of `container` in `td` (name to value).
fn environment(td: &TaskDefinition, container: &str) -> Option<BTreeMap<String, String>> {
    let c = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))?;
    Some(
        c.environment()
            .iter()
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value().unwrap_or("").to_string())))
            .collect(),
    )
}

fn image(td: &TaskDefinition, container: &str) -> Option<String> {
    td.container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .and_then(|c| c.image())
        .map(str::to_string)
}

/// The changes from `current` to `target` for `container`; an error when the target
/// revision has no such container (it could not run what deploy.toml manages).
pub fn diff(
    current: &TaskDefinition,
    target: &TaskDefinition,
    container: &str,
    show_values: &[String],
) -> Result<RollbackDiff, String> {
    let Some(target_env) = environment(target, container) else {
        return Err(format!(
            "container {container} is not in {}, the revision to go back to",
            Outside::new(&revision_label(target.task_definition_arn().unwrap_or("?")))
        ));
    };
    let target_image = image(target, container);
    let want = DesiredContainer {
        name: container,
        image: target_image.as_deref(),
        environment: Some(&target_env),
        managed_prefix: "",
        show_values,
    };
    let mut changes = taskdef::diff_container(current, &want)?;
    // Everything the target lacks goes: a rollback returns to that revision as a whole.
    for (name, value) in environment(current, container).unwrap_or_default() {
        if !target_env.contains_key(&name) {
            changes.push(ContainerChange::EnvRemoved {
                masked: masked(&name, &[&value], show_values),
                name,
                value,
            });
        }
    }
    let mut size = Vec::new();
    for (change, from, to) in [
        ("cpu", current.cpu(), target.cpu()),
        ("memory", current.memory(), target.memory()),
    ] {
        if from != to {
            size.push(SizeChange {
                change,
                from: from.map(Outside::new),
                to: to.map(Outside::new),
            });
        }
    }
    Ok(RollbackDiff {
        container: changes,
        size,
    })
}

/// The plan as text, in `deploy --dry-run`'s layout.
pub fn render(
    service: &str,
    cluster: &str,
    container: &str,
    from: &str,
    to: &str,
    diff: &RollbackDiff,
) -> String {
    let (from, to) = (revision_label(from), revision_label(to));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ECS service {} in {cluster} (running {from})",
        style(service).bold()
    );
    if from == to {
        let _ = writeln!(
            out,
            "    {}",
            style(format!(
                "(the service already runs {to}: nothing to roll back)"
            ))
            .dim()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "  task definition {from} -> {to} (an existing revision), container {container}:"
    );
    if diff.is_empty() {
        let _ = writeln!(
            out,
            "    {}",
            style("(same image, environment, CPU and memory)").dim()
        );
    }
    for c in &diff.container {
        let line = format!("    {c}");
        let styled = match c.marker() {
            '+' => style(line).green(),
            '-' => style(line).red(),
            _ => style(line).yellow(),
        };
        let _ = writeln!(out, "{styled}");
    }
    for s in &diff.size {
        let shown =
            |v: &Option<Outside>| v.as_ref().map_or("(none)".to_string(), |v| v.to_string());
        let line = format!("    ~ {}: {} -> {}", s.change, shown(&s.from), shown(&s.to));
        let _ = writeln!(out, "{}", style(line).yellow());
    }
    let _ = writeln!(out, "  ~ service {service}: {from} -> {to}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair};

    fn td(rev: u32, image: &str, cpu: &str, env: &[(&str, &str)]) -> TaskDefinition {
        let env = env
            .iter()
            .map(|(k, v)| KeyValuePair::builder().name(*k).value(*v).build());
        TaskDefinition::builder()
            .task_definition_arn(format!(
                "arn:aws:ecs:us-east-1:1:task-definition/bosar-api:{rev}"
            ))
            .cpu(cpu)
            .memory("1024")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("bosar-api")
                    .image(image)
                    .set_environment(Some(env.collect()))
                    .build(),
            )
            .build()
    }

    #[test]
    fn going_back_shows_image_cpu_and_every_variable_that_differs() {
        let cur = td(
            3,
            "repo:2",
            "512",
            &[("A", "1"), ("API_TOKEN", "s3cret"), ("NEW", "x")],
        );
        let old = td(2, "repo:1", "256", &[("A", "0"), ("API_TOKEN", "old")]);
        let d = diff(&cur, &old, "bosar-api", &[]).unwrap();
        let text = render(
            "svc",
            "c",
            "bosar-api",
            "x/bosar-api:3",
            "x/bosar-api:2",
            &d,
        );
        let text = console::strip_ansi_codes(&text);
        assert!(text.contains("~ image: repo:2 -> repo:1"), "{text}");
        assert!(text.contains("~ environment.A: 1 -> 0"), "{text}");
        assert!(text.contains("- environment.NEW: x"), "{text}");
        assert!(text.contains("~ cpu: 512 -> 256"), "{text}");
        assert!(!text.contains("memory"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("old"), "{text}");
        assert!(
            text.contains("~ service svc: bosar-api:3 -> bosar-api:2"),
            "{text}"
        );
        let json = serde_json::to_string(&d.to_json()).unwrap();
        assert!(
            json.contains(r#""change":"cpu""#) && !json.contains("s3cret"),
            "{json}"
        );
    }

    #[test]
    fn a_target_without_the_container_is_refused() {
        let cur = td(3, "repo:2", "512", &[]);
        let old = td(2, "repo:1", "256", &[]);
        let e = diff(&cur, &old, "other", &[]).unwrap_err();
        assert!(e.contains("container other is not in bosar-api:2"), "{e}");
    }
}
