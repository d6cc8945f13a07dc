//! Task definition diff and the new revision's input: a copy of the current revision with
//! every field kept, only the named container's image and environment changed.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, Tag, TaskDefinition};
use serde::Serialize;

/// One line of the task definition diff. Values of variables whose names look like
/// secrets (SECRET, TOKEN, PASSWORD, KEY, CREDENTIAL) are shown and serialised as
/// "(sensitive)": plaintext environment is the wrong place for them, but if one is
/// there, the tool's output must not repeat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerChange {
    Image {
        from: Option<String>,
        to: String,
    },
    EnvAdded {
        name: String,
        value: String,
    },
    EnvChanged {
        name: String,
        from: String,
        to: String,
    },
    EnvRemoved {
        name: String,
        value: String,
    },
}

/// Whether an environment variable's name suggests its value is a secret.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "PRIVATE",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive(name) {
        "(sensitive)"
    } else {
        value
    }
}

impl Serialize for ContainerChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            ContainerChange::Image { from, to } => {
                m.serialize_entry("change", "image")?;
                m.serialize_entry("from", from)?;
                m.serialize_entry("to", to)?;
            }
            ContainerChange::EnvAdded { name, value } => {
                m.serialize_entry("change", "env_added")?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("value", shown(name, value))?;
            }
            ContainerChange::EnvChanged { name, from, to } => {
                m.serialize_entry("change", "env_changed")?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("from", shown(name, from))?;
                m.serialize_entry("to", shown(name, to))?;
            }
            ContainerChange::EnvRemoved { name, value } => {
                m.serialize_entry("change", "env_removed")?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("value", shown(name, value))?;
            }
        }
        m.end()
    }
}

impl fmt::Display for ContainerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerChange::Image { from, to } => {
                write!(
                    f,
                    "~ image: {} -> {to}",
                    from.as_deref().unwrap_or("(none)")
                )
            }
            ContainerChange::EnvAdded { name, value } => {
                write!(f, "+ environment.{name}: {}", shown(name, value))
            }
            ContainerChange::EnvChanged { name, from, to } => {
                write!(
                    f,
                    "~ environment.{name}: {} -> {}",
                    shown(name, from),
                    shown(name, to)
                )
            }
            ContainerChange::EnvRemoved { name, value } => {
                write!(f, "- environment.{name}: {}", shown(name, value))
            }
        }
    }
}

impl ContainerChange {
    pub fn marker(&self) -> char {
        match self {
            ContainerChange::EnvAdded { .. } => '+',
            ContainerChange::EnvRemoved { .. } => '-',
            _ => '~',
        }
    }
}

/// What the container should look like. Variables named in `environment` are set;
/// variables with `managed_prefix` not named there are removed; all others are kept.
#[derive(Debug, Clone)]
pub struct DesiredContainer<'a> {
    pub name: &'a str,
    pub image: Option<&'a str>,
    pub environment: &'a BTreeMap<String, String>,
    pub managed_prefix: &'a str,
}

/// The diff for the named container, or an error listing the containers that exist.
pub fn diff_container(
    td: &TaskDefinition,
    want: &DesiredContainer,
) -> Result<Vec<ContainerChange>, String> {
    let c = find_container(td, want.name)?;
    let mut changes = Vec::new();
    if let Some(img) = want.image {
        if c.image.as_deref() != Some(img) {
            changes.push(ContainerChange::Image {
                from: c.image.clone(),
                to: img.to_string(),
            });
        }
    }
    let current: BTreeMap<&str, &str> = c
        .environment
        .iter()
        .flatten()
        .filter_map(|kv| Some((kv.name.as_deref()?, kv.value.as_deref().unwrap_or(""))))
        .collect();
    for (name, value) in want.environment {
        match current.get(name.as_str()) {
            None => changes.push(ContainerChange::EnvAdded {
                name: name.clone(),
                value: value.clone(),
            }),
            Some(v) if v != value => changes.push(ContainerChange::EnvChanged {
                name: name.clone(),
                from: v.to_string(),
                to: value.clone(),
            }),
            _ => {}
        }
    }
    if !want.managed_prefix.is_empty() {
        for (name, value) in &current {
            if name.starts_with(want.managed_prefix) && !want.environment.contains_key(*name) {
                changes.push(ContainerChange::EnvRemoved {
                    name: name.to_string(),
                    value: value.to_string(),
                });
            }
        }
    }
    Ok(changes)
}

fn find_container<'t>(
    td: &'t TaskDefinition,
    name: &str,
) -> Result<&'t ContainerDefinition, String> {
    td.container_definitions()
        .iter()
        .find(|c| c.name.as_deref() == Some(name))
        .ok_or_else(|| {
            let names: Vec<&str> = td
                .container_definitions()
                .iter()
                .filter_map(|c| c.name.as_deref())
                .collect();
            format!(
                "container {name} is not in task definition {}; it has: {}",
                revision_label(td.task_definition_arn().unwrap_or("?")),
                names.join(", ")
            )
        })
}

/// The container definitions with the changes applied to the named container only.
pub fn apply_changes(
    td: &TaskDefinition,
    container: &str,
    changes: &[ContainerChange],
) -> Vec<ContainerDefinition> {
    td.container_definitions()
        .iter()
        .map(|c| {
            if c.name.as_deref() != Some(container) {
                return c.clone();
            }
            let mut c = c.clone();
            let mut env: Vec<KeyValuePair> = c.environment.take().unwrap_or_default();
            for ch in changes {
                match ch {
                    ContainerChange::Image { to, .. } => c.image = Some(to.clone()),
                    ContainerChange::EnvAdded { name, value } => {
                        env.push(KeyValuePair::builder().name(name).value(value).build())
                    }
                    ContainerChange::EnvChanged { name, to, .. } => {
                        for kv in env.iter_mut().filter(|kv| kv.name.as_deref() == Some(name)) {
                            kv.value = Some(to.clone());
                        }
                    }
                    ContainerChange::EnvRemoved { name, .. } => {
                        env.retain(|kv| kv.name.as_deref() != Some(name))
                    }
                }
            }
            c.environment = Some(env);
            c
        })
        .collect()
}

/// Fills a RegisterTaskDefinition call with every field of `td` (and its tags), the
/// containers replaced by `containers`. Fields ECS computes (revision, status,
/// compatibilities, requiresAttributes, registeredAt/By) are not inputs and are not sent.
pub fn register_input(
    mut req: RegisterTaskDefinitionFluentBuilder,
    td: &TaskDefinition,
    tags: &[Tag],
    containers: Vec<ContainerDefinition>,
) -> RegisterTaskDefinitionFluentBuilder {
    req = req
        .set_family(td.family().map(str::to_string))
        .set_task_role_arn(td.task_role_arn().map(str::to_string))
        .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
        .set_network_mode(td.network_mode().cloned())
        .set_container_definitions(Some(containers))
        .set_cpu(td.cpu().map(str::to_string))
        .set_memory(td.memory().map(str::to_string))
        .set_pid_mode(td.pid_mode().cloned())
        .set_ipc_mode(td.ipc_mode().cloned())
        .set_proxy_configuration(td.proxy_configuration().cloned())
        .set_ephemeral_storage(td.ephemeral_storage().cloned())
        .set_runtime_platform(td.runtime_platform().cloned())
        .set_enable_fault_injection(td.enable_fault_injection());
    req = req
        .set_volumes(non_empty(td.volumes().to_vec()))
        .set_placement_constraints(non_empty(td.placement_constraints().to_vec()))
        .set_requires_compatibilities(non_empty(td.requires_compatibilities().to_vec()))
        .set_tags(non_empty(tags.to_vec()));
    req
}

/// "arn:aws:ecs:...:task-definition/bosar-api:42" -> "bosar-api:42".
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

pub fn revision_label(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// The revision number of a task definition ARN or label.
pub fn revision_number(arn: &str) -> Option<i32> {
    arn.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td() -> TaskDefinition {
        TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:41")
            .family("bosar-api")
            .cpu("512")
            .memory("1024")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("bosar-api")
                    .image("repo/bosar-api:1.4.0")
                    .environment(
                        KeyValuePair::builder()
                            .name("NODE_ENV")
                            .value("production")
                            .build(),
                    )
                    .environment(
                        KeyValuePair::builder()
                            .name("WEBSOCKET_PING_INTERVAL")
                            .value("20000")
                            .build(),
                    )
                    .environment(
                        KeyValuePair::builder()
                            .name("WEBSOCKET_LEGACY")
                            .value("1")
                            .build(),
                    )
                    .build(),
            )
            .container_definitions(
                ContainerDefinition::builder()
                    .name("log-router")
                    .image("fluent-bit")
                    .build(),
            )
            .build()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn diff_adds_changes_removes_managed_and_keeps_others() {
        let e = env(&[
            ("WEBSOCKET_PING_INTERVAL", "25000"),
            ("WEBSOCKET_HEARTBEAT_INTERVAL", "30000"),
        ]);
        let want = DesiredContainer {
            name: "bosar-api",
            image: Some("repo/bosar-api:1.5.0"),
            environment: &e,
            managed_prefix: "WEBSOCKET_",
        };
        let lines: Vec<String> = diff_container(&td(), &want)
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            lines,
            vec![
                "~ image: repo/bosar-api:1.4.0 -> repo/bosar-api:1.5.0",
                "+ environment.WEBSOCKET_HEARTBEAT_INTERVAL: 30000",
                "~ environment.WEBSOCKET_PING_INTERVAL: 20000 -> 25000",
                "- environment.WEBSOCKET_LEGACY: 1",
            ]
        );
    }

    #[test]
    fn apply_changes_touches_only_the_named_container() {
        let e = env(&[("WEBSOCKET_PING_INTERVAL", "25000")]);
        let want = DesiredContainer {
            name: "bosar-api",
            image: Some("img:2"),
            environment: &e,
            managed_prefix: "WEBSOCKET_",
        };
        let t = td();
        let changes = diff_container(&t, &want).unwrap();
        let cs = apply_changes(&t, "bosar-api", &changes);
        assert_eq!(cs[0].image.as_deref(), Some("img:2"));
        let names: Vec<&str> = cs[0]
            .environment
            .iter()
            .flatten()
            .filter_map(|kv| kv.name.as_deref())
            .collect();
        assert_eq!(names, vec!["NODE_ENV", "WEBSOCKET_PING_INTERVAL"]);
        assert_eq!(cs[1], t.container_definitions()[1]);
        // Applying the changes leaves nothing to change.
        let mut t2 = t.clone();
        t2.container_definitions = Some(cs);
        assert!(diff_container(&t2, &want).unwrap().is_empty());
    }

    #[test]
    fn missing_container_lists_the_ones_there() {
        let e = BTreeMap::new();
        let want = DesiredContainer {
            name: "api",
            image: None,
            environment: &e,
            managed_prefix: "",
        };
        let err = diff_container(&td(), &want).unwrap_err();
        assert!(err.contains("container api is not in task definition bosar-api:41; it has: bosar-api, log-router"), "{err}");
    }

    #[test]
    fn sensitive_values_are_never_shown_or_serialised() {
        let c = ContainerChange::EnvChanged {
            name: "JWT_SECRET".into(),
            from: "old-s3cret".into(),
            to: "new-s3cret".into(),
        };
        assert_eq!(
            c.to_string(),
            "~ environment.JWT_SECRET: (sensitive) -> (sensitive)"
        );
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        let plain = ContainerChange::EnvAdded {
            name: "WEBSOCKET_PING_INTERVAL".into(),
            value: "25000".into(),
        };
        assert_eq!(serde_json::to_value(&plain).unwrap()["value"], "25000");
        assert!(is_sensitive("api_key") && !is_sensitive("WEBSOCKET_PING_TIMEOUT"));
    }

    #[test]
    fn labels() {
        assert_eq!(
            revision_label("arn:aws:ecs:us-east-1:1:task-definition/bosar-api:41"),
            "bosar-api:41"
        );
        assert_eq!(
            revision_number("arn:aws:ecs:us-east-1:1:task-definition/bosar-api:41"),
            Some(41)
        );
    }
}
