//! Task definition diff and the new revision's input: a copy of the current revision with
//! every field kept, only the named container's image and environment changed.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, Tag, TaskDefinition};
use serde::Serialize;

pub use super::masking::{has_url_credentials, is_sensitive, mask_url_credentials, masked};
use super::masking::{serialised, shown};
use crate::outside::Outside;

/// One line of the task definition diff. A variable's values are `masked` (shown and
/// serialised as "(sensitive)") when its name looks like a credential or a value carries
/// credentials in a URL, unless `[ecs] show_values` names it ([`masked`]); plaintext
/// environment is the wrong place for secrets, but if one is there, the tool's output must
/// not repeat it. Values shown are AWS's (or deploy.toml's) text: escaped and capped, and a
/// URL's user info is always `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerChange {
    Image {
        from: Option<String>,
        to: String,
    },
    EnvAdded {
        name: String,
        value: String,
        masked: bool,
    },
    EnvChanged {
        name: String,
        from: String,
        to: String,
        masked: bool,
    },
    EnvRemoved {
        name: String,
        value: String,
        masked: bool,
    },
}

impl Serialize for ContainerChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            ContainerChange::Image { from, to } => {
                m.serialize_entry("change", "image")?;
                m.serialize_entry("from", &from.as_deref().map(Outside::new))?;
                m.serialize_entry("to", &Outside::new(to))?;
            }
            ContainerChange::EnvAdded {
                name,
                value,
                masked,
            } => {
                m.serialize_entry("change", "env_added")?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("value", &serialised(value, *masked))?;
            }
            ContainerChange::EnvChanged {
                name,
                from,
                to,
                masked,
            } => {
                m.serialize_entry("change", "env_changed")?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("from", &serialised(from, *masked))?;
                m.serialize_entry("to", &serialised(to, *masked))?;
            }
            ContainerChange::EnvRemoved {
                name,
                value,
                masked,
            } => {
                m.serialize_entry("change", "env_removed")?;
                m.serialize_entry("name", &Outside::new(name))?;
                m.serialize_entry("value", &serialised(value, *masked))?;
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
                    "~ image: {} -> {}",
                    from.as_deref()
                        .map_or_else(|| "(none)".to_string(), |v| Outside::new(v).to_string()),
                    Outside::new(to)
                )
            }
            ContainerChange::EnvAdded {
                name,
                value,
                masked,
            } => {
                write!(f, "+ environment.{name}: {}", shown(value, *masked))
            }
            ContainerChange::EnvChanged {
                name,
                from,
                to,
                masked,
            } => {
                write!(
                    f,
                    "~ environment.{name}: {} -> {}",
                    shown(from, *masked),
                    shown(to, *masked)
                )
            }
            ContainerChange::EnvRemoved {
                name,
                value,
                masked,
            } => {
                write!(
                    f,
                    "- environment.{}: {}",
                    Outside::new(name),
                    shown(value, *masked)
                )
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

/// What the container should look like. With `environment` (`[ecs.environment]` present),
/// variables named there are set, variables with `managed_prefix` not named there are removed
/// and all others are kept; without it the environment is not touched.
#[derive(Debug, Clone)]
pub struct DesiredContainer<'a> {
    pub name: &'a str,
    pub image: Option<&'a str>,
    pub environment: Option<&'a BTreeMap<String, String>>,
    pub managed_prefix: &'a str,
    /// `[ecs] show_values`: variables whose values are shown even if they look like secrets.
    pub show_values: &'a [String],
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
    let Some(environment) = want.environment else {
        return Ok(changes);
    };
    let current: BTreeMap<&str, &str> = c
        .environment
        .iter()
        .flatten()
        .filter_map(|kv| Some((kv.name.as_deref()?, kv.value.as_deref().unwrap_or(""))))
        .collect();
    let show = want.show_values;
    for (name, value) in environment {
        match current.get(name.as_str()) {
            None => changes.push(ContainerChange::EnvAdded {
                name: name.clone(),
                value: value.clone(),
                masked: masked(name, &[value], show),
            }),
            Some(v) if v != value => changes.push(ContainerChange::EnvChanged {
                name: name.clone(),
                from: v.to_string(),
                to: value.clone(),
                masked: masked(name, &[v, value], show),
            }),
            _ => {}
        }
    }
    if !want.managed_prefix.is_empty() {
        for (name, value) in &current {
            if name.starts_with(want.managed_prefix) && !environment.contains_key(*name) {
                changes.push(ContainerChange::EnvRemoved {
                    name: name.to_string(),
                    value: value.to_string(),
                    masked: masked(name, &[value], show),
                });
            }
        }
    }
    Ok(changes)
}

/// The named container, or an error naming the ones there (AWS's names, as outside text: a
/// name with a line break cannot start a line of its own in the log).
fn find_container<'t>(
    td: &'t TaskDefinition,
    name: &str,
) -> Result<&'t ContainerDefinition, String> {
    td.container_definitions()
        .iter()
        .find(|c| c.name.as_deref() == Some(name))
        .ok_or_else(|| {
            let names: Vec<String> = td
                .container_definitions()
                .iter()
                .filter_map(|c| c.name.as_deref())
                .map(|n| Outside::new(n).to_string())
                .collect();
            format!(
                "container {name} is not in task definition {}; it has: {}",
                Outside::new(&revision_label(td.task_definition_arn().unwrap_or("?"))),
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
                    ContainerChange::EnvAdded { name, value, .. } => {
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
/// compatibilities, requiresAttributes, registeredAt/By) are not inputs and are not sent;
/// neither are tags with the reserved `aws:` prefix, which RegisterTaskDefinition rejects.
/// The test `copy_is_complete` fails when the SDK gains a member this does not copy.
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
    let tags: Vec<Tag> = tags
        .iter()
        .filter(|t| !t.key().unwrap_or_default().starts_with("aws:"))
        .cloned()
        .collect();
    req = req
        .set_volumes(non_empty(td.volumes().to_vec()))
        .set_placement_constraints(non_empty(td.placement_constraints().to_vec()))
        .set_requires_compatibilities(non_empty(td.requires_compatibilities().to_vec()))
        .set_tags(non_empty(tags));
    // Elastic Inference is retired and the SDK marks the member deprecated, but a revision
    // that has accelerators must not silently lose them: AWS, not this copy, decides.
    #[allow(deprecated)]
    let req = req.set_inference_accelerators(non_empty(td.inference_accelerators().to_vec()));
    req
}

/// The field holding a bare `Unknown` in a pretty `Debug`, if any.
fn unknown_variant_field(debug: &str) -> Option<&str> {
    let lines: Vec<&str> = debug.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim().trim_end_matches(',') == "Unknown")?;
    Some(
        lines[..at]
            .iter()
            .rev()
            .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
            .find(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .unwrap_or("a field"),
    )
}

/// A value AWS sent that this build of the SDK cannot send back: an unknown variant of a
/// union (a newer API member). Copying the revision would drop or fail on it, so the deploy
/// stops before registering. Returns where it was found.
pub fn unknown_union_variant(td: &TaskDefinition) -> Option<String> {
    // Every union in the SDK prints its unknown variant as a bare `Unknown` (enums print
    // `Unknown(UnknownVariantValue(..))` and round-trip as strings, so they are fine). The
    // pretty Debug output has one field per line, so the field above it names the place.
    let debug = format!("{td:#?}");
    let field = unknown_variant_field(&debug)?;
    Some(format!(
        "the task definition {} has a value in `{field}` that this version of bosar-deploy does not know (a newer AWS API member); copying it would lose it, so nothing was registered. Upgrade bosar-deploy (its AWS SDK), or deploy this revision with the AWS CLI",
        revision_label(td.task_definition_arn().unwrap_or("?"))
    ))
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
            environment: Some(&e),
            managed_prefix: "WEBSOCKET_",
            show_values: &[],
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
            environment: Some(&e),
            managed_prefix: "WEBSOCKET_",
            show_values: &[],
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
            environment: Some(&e),
            managed_prefix: "",
            show_values: &[],
        };
        let err = diff_container(&td(), &want).unwrap_err();
        assert!(err.contains("container api is not in task definition bosar-api:41; it has: bosar-api, log-router"), "{err}");
        // AWS's names are outside text: a line break in one stays on the line, escaped.
        let mut hostile = td();
        hostile.container_definitions = Some(vec![ContainerDefinition::builder()
            .name("x\n2026-01-01T00:00:00Z error: forged")
            .build()]);
        let err = diff_container(&hostile, &want).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.ends_with(r"it has: x\n2026-01-01T00:00:00Z error: forged"),
            "{err}"
        );
    }

    #[test]
    fn sensitive_values_are_never_shown_or_serialised() {
        let c = ContainerChange::EnvChanged {
            name: "JWT_SECRET".into(),
            from: "old-s3cret".into(),
            to: "new-s3cret".into(),
            masked: masked("JWT_SECRET", &["old-s3cret", "new-s3cret"], &[]),
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
            masked: masked("WEBSOCKET_PING_INTERVAL", &["25000"], &[]),
        };
        assert_eq!(serde_json::to_value(&plain).unwrap()["value"], "25000");
        assert!(is_sensitive("api_key") && !is_sensitive("WEBSOCKET_PING_TIMEOUT"));
    }

    #[test]
    fn credential_names_and_url_credentials_are_masked_unless_shown() {
        let redis = "redis://:hunter2@redis.internal:6379";
        let e: BTreeMap<String, String> = [
            ("WEBSOCKET_AUTH_PASS", "s3cr3t-pass"),
            ("WEBSOCKET_REDIS_URL", redis),
            ("WEBSOCKET_PING_INTERVAL", "25000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let want = |show: &'static [String]| DesiredContainer {
            name: "bosar-api",
            image: None,
            environment: Some(&e),
            managed_prefix: "WEBSOCKET_",
            show_values: show,
        };
        let changes = diff_container(&td(), &want(&[])).unwrap();
        let text: String = changes.iter().map(|c| format!("{c}\n")).collect();
        let json = serde_json::to_string(&changes).unwrap();
        for out in [&text, &json] {
            assert!(!out.contains("s3cr3t") && !out.contains("hunter2"), "{out}");
        }
        assert!(
            text.contains("+ environment.WEBSOCKET_REDIS_URL: (sensitive)"),
            "{text}"
        );
        assert!(text.contains("25000"), "{text}");
        // Named in show_values: in clear, but a URL's user info stays hidden.
        static SHOW: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let show = SHOW.get_or_init(|| vec!["WEBSOCKET_REDIS_URL".to_string()]);
        let changes = diff_container(&td(), &want(show)).unwrap();
        let text: String = changes.iter().map(|c| format!("{c}\n")).collect();
        assert!(
            text.contains("+ environment.WEBSOCKET_REDIS_URL: redis://***@redis.internal:6379"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
    }

    /// Every member of `TaskDefinition` set to something.
    #[allow(deprecated)]
    fn complete_td() -> TaskDefinition {
        use aws_sdk_ecs::types::*;
        let dt = aws_smithy_types::DateTime::from_secs(1_800_000_000);
        TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:41")
            .container_definitions(td().container_definitions()[0].clone())
            .family("bosar-api")
            .task_role_arn("arn:aws:iam::123456789012:role/task")
            .execution_role_arn("arn:aws:iam::123456789012:role/exec")
            .network_mode(NetworkMode::Awsvpc)
            .revision(41)
            .volumes(Volume::builder().name("data").build())
            .status(TaskDefinitionStatus::Active)
            .requires_attributes(
                Attribute::builder()
                    .name("ecs.capability.x")
                    .build()
                    .unwrap(),
            )
            .placement_constraints(
                TaskDefinitionPlacementConstraint::builder()
                    .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression("attribute:ecs.os-type == linux")
                    .build(),
            )
            .compatibilities(Compatibility::Fargate)
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::Arm64)
                    .build(),
            )
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .inference_accelerators(
                InferenceAccelerator::builder()
                    .device_name("device_1")
                    .device_type("eia2.medium")
                    .build()
                    .unwrap(),
            )
            .pid_mode(PidMode::Task)
            .ipc_mode(IpcMode::Task)
            .proxy_configuration(
                ProxyConfiguration::builder()
                    .container_name("envoy")
                    .build()
                    .unwrap(),
            )
            .registered_at(dt)
            .deregistered_at(dt)
            .delete_requested_at(dt)
            .registered_by("arn:aws:iam::123456789012:user/ci")
            .ephemeral_storage(EphemeralStorage::builder().size_in_gib(30).build())
            .enable_fault_injection(true)
            .build()
    }

    /// Top-level fields of a pretty `Debug`, each with its whole value text.
    fn fields(debug: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in debug.lines().skip(1) {
            let top = line.starts_with("    ") && !line.starts_with("     ");
            match line.trim().split_once(": ") {
                Some((k, v)) if top => out.push((k.to_string(), v.to_string())),
                _ => {
                    if let Some(last) = out.last_mut() {
                        last.1.push_str(line.trim());
                    }
                }
            }
        }
        out
    }

    /// Fields ECS computes; RegisterTaskDefinition does not take them.
    const COMPUTED: [&str; 9] = [
        "task_definition_arn",
        "revision",
        "status",
        "requires_attributes",
        "compatibilities",
        "registered_at",
        "deregistered_at",
        "delete_requested_at",
        "registered_by",
    ];

    #[test]
    fn copy_is_complete() {
        let td = complete_td();
        let td_fields = fields(&format!("{td:#?}"));
        let unset: Vec<&str> = td_fields
            .iter()
            .filter(|(_, v)| v.starts_with("None"))
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(
            unset.is_empty(),
            "the SDK's TaskDefinition has members this test does not fill: {unset:?}. Fill them in complete_td(), and make register_input copy each one RegisterTaskDefinition takes"
        );
        let config = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("us-east-1"))
            .build();
        let client = aws_sdk_ecs::Client::from_conf(config);
        let tags = [
            Tag::builder().key("team").value("chat").build(),
            Tag::builder()
                .key("aws:cloudformation:stack-name")
                .value("x")
                .build(),
        ];
        let req = register_input(
            client.register_task_definition(),
            &td,
            &tags,
            td.container_definitions().to_vec(),
        );
        let input = req.as_input().clone().build().unwrap();
        assert_eq!(input.tags().len(), 1, "aws: tags are not sent");
        let input_fields = fields(&format!("{input:#?}"));
        let missing: Vec<&str> = input_fields
            .iter()
            .filter(|(_, v)| v.starts_with("None"))
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "register_input does not copy these RegisterTaskDefinition members: {missing:?}"
        );
        for (k, v) in &input_fields {
            if k == "tags" {
                continue;
            }
            let from = td_fields.iter().find(|(tk, _)| tk == k);
            assert_eq!(
                from.map(|(_, tv)| tv),
                Some(v),
                "input member {k} is not the task definition's"
            );
        }
        // Every member of TaskDefinition is either copied or computed by ECS.
        for (k, _) in &td_fields {
            assert!(
                COMPUTED.contains(&k.as_str()) || input_fields.iter().any(|(ik, _)| ik == k),
                "TaskDefinition member {k} is neither copied nor known to be computed by ECS"
            );
        }
    }

    #[test]
    fn an_unknown_union_variant_is_found_before_registering() {
        assert_eq!(unknown_union_variant(&complete_td()), None);
        // An unknown enum value round-trips as its string: not a problem.
        let mut td = complete_td();
        td.network_mode = Some(aws_sdk_ecs::types::NetworkMode::from("future-mode"));
        assert_eq!(unknown_union_variant(&td), None);
        // A union's unknown variant cannot be built outside the SDK (tests/deploy_mocks.rs
        // gets one from a raw AWS response); here the scan on its Debug shape.
        let text = "TaskDefinition {\n    container_definitions: Some(\n        [\n            ContainerDefinition {\n                resource_requirements: Some(\n                    [\n                        ResourceRequirement {\n                            sharing_strategy: Some(\n                                Unknown,\n                            ),\n";
        assert_eq!(unknown_variant_field(text), Some("sharing_strategy"));
        assert_eq!(
            unknown_variant_field("value: Some(\n    \"Unknown\",\n)"),
            None
        );
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
