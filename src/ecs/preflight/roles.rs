//! `roles`: the task role and the execution role exist (IAM GetRole) and their trust policy
//! lets `ecs-tasks.amazonaws.com` assume them. No execution role is a failure only when the
//! revision needs one (private ECR images or `awslogs` on Fargate; secrets anywhere).
//!
//! GetRole returns the trust policy URL-encoded; [`trust`] decodes it and evaluates the
//! statements: `Statement` and `Action` may be one value or a list, `Principal` may be `"*"`
//! or `{"Service": "…" | ["…"]}`. An explicit Deny wins; an Allow with a `Condition` passes
//! with a note (conditions such as `aws:SourceAccount` are not evaluated here).

use aws_sdk_ecs::types::{Compatibility, TaskDefinition};
use serde_json::{json, Value};

use super::image::{self, ImageRef};
use super::{call_error, clip, containers, home, unanswered, Arn, CheckName, Clients, Finding};

/// The service principal ECS tasks assume their roles as.
pub const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";

/// A role named by the task definition (a short name or an ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef {
    pub name: String,
    /// The account in the ARN; None for a short name.
    pub account: Option<String>,
}

/// `arn:aws:iam::123456789012:role/service-role/bosar-api-task` -> bosar-api-task (GetRole
/// takes the name without the path); a short name as is.
pub fn role_ref(value: &str) -> Result<RoleRef, String> {
    let value = value.trim();
    if let Some(arn) = Arn::parse(value) {
        let name = arn
            .resource
            .strip_prefix("role/")
            .and_then(|r| r.rsplit('/').next())
            .filter(|n| !n.is_empty());
        return match (arn.service, name) {
            ("iam", Some(n)) => Ok(RoleRef {
                name: n.to_string(),
                account: Some(arn.account.to_string()).filter(|a| !a.is_empty()),
            }),
            _ => Err(format!("{} is not an IAM role ARN", clip(value, 200))),
        };
    }
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(RoleRef {
            name: value.to_string(),
            account: None,
        })
    } else {
        Err(format!(
            "\"{}\" is not an IAM role name or ARN",
            clip(value, 200)
        ))
    }
}

/// Why the revision needs an execution role, if it does.
pub fn execution_role_needs(td: &TaskDefinition) -> Vec<&'static str> {
    let fargate = td
        .requires_compatibilities()
        .iter()
        .chain(td.compatibilities())
        .any(|c| *c == Compatibility::Fargate);
    let mut needs = Vec::new();
    let cs = containers(td);
    if fargate
        && cs.iter().any(|c| {
            matches!(
                image::parse(c.image().unwrap_or_default()),
                ImageRef::Ecr(_)
            )
        })
    {
        needs.push("pulls from private ECR");
    }
    if fargate
        && cs.iter().any(|c| {
            c.log_configuration()
                .is_some_and(|l| l.log_driver().as_str() == "awslogs")
        })
    {
        needs.push("logs with awslogs");
    }
    if cs.iter().any(|c| {
        !c.secrets().is_empty()
            || c.log_configuration()
                .is_some_and(|l| !l.secret_options().is_empty())
    }) {
        needs.push("has secrets");
    }
    if cs.iter().any(|c| c.repository_credentials().is_some()) {
        needs.push("uses private registry credentials");
    }
    // ECS reads `environmentFiles` from S3 with the execution role, on Fargate and EC2 alike.
    if cs.iter().any(|c| !c.environment_files().is_empty()) {
        needs.push("reads environment files from S3");
    }
    needs
}

/// What a trust policy says about `ecs-tasks.amazonaws.com` assuming the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Allowed; `conditions` lists condition keys not evaluated here (empty: unconditional).
    Allowed { conditions: Vec<String> },
    /// Not allowed: no Allow statement names ECS tasks (`principals` lists the ones named),
    /// or an unconditional Deny does.
    NotAllowed {
        principals: Vec<String>,
        denied: bool,
    },
    /// The document could not be read.
    Unreadable(String),
}

/// Decodes `%XX` escapes (GetRole's AssumeRolePolicyDocument is RFC 3986 URL-encoded).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn strings(v: &Value) -> Vec<String> {
    one_or_many(v)
        .into_iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// IAM wildcard match (`*` any run, `?` one character), case-insensitive as actions are.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn covers_assume_role(stmt: &Value) -> bool {
    if let Some(a) = stmt.get("Action") {
        strings(a).iter().any(|p| wildcard(p, "sts:AssumeRole"))
    } else if let Some(na) = stmt.get("NotAction") {
        !strings(na).iter().any(|p| wildcard(p, "sts:AssumeRole"))
    } else {
        false
    }
}

fn is_ecs_tasks(service: &str) -> bool {
    service == ECS_TASKS || service == "ecs-tasks.amazonaws.com.cn"
}

/// Whether a statement's principal covers ECS tasks, and the principals it names.
fn principal(stmt: &Value) -> (bool, Vec<String>) {
    if let Some(p) = stmt.get("Principal") {
        if p.as_str() == Some("*") {
            return (true, vec!["*".into()]);
        }
        let services = p.get("Service").map(strings).unwrap_or_default();
        let aws = p.get("AWS").map(strings).unwrap_or_default();
        let fed = p.get("Federated").map(strings).unwrap_or_default();
        let matches = services.iter().any(|s| is_ecs_tasks(s)) || aws.iter().any(|a| a == "*");
        let named = services.into_iter().chain(aws).chain(fed).collect();
        (matches, named)
    } else if let Some(np) = stmt.get("NotPrincipal") {
        let services = np.get("Service").map(strings).unwrap_or_default();
        (!services.iter().any(|s| is_ecs_tasks(s)), Vec::new())
    } else {
        (false, Vec::new())
    }
}

/// Evaluates a trust policy (URL-encoded as GetRole returns it, or plain JSON).
pub fn trust(document: &str) -> Trust {
    let text = if document.trim_start().starts_with('{') {
        document.to_string()
    } else {
        url_decode(document)
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Trust::Unreadable(clip(&e.to_string(), 120)),
    };
    let (mut unconditional, mut conditional, mut denied) = (false, None::<Vec<String>>, false);
    let mut named = Vec::new();
    for stmt in one_or_many(doc.get("Statement").unwrap_or(&Value::Null)) {
        let effect = stmt.get("Effect").and_then(Value::as_str).unwrap_or("");
        let (covers, names) = principal(stmt);
        let conditions: Vec<String> = stmt
            .get("Condition")
            .and_then(Value::as_object)
            .map(|ops| {
                ops.values()
                    .filter_map(Value::as_object)
                    .flat_map(|keys| keys.keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let allow = effect.eq_ignore_ascii_case("Allow");
        if allow {
            named.extend(names);
        }
        if !covers || !covers_assume_role(stmt) {
            continue;
        }
        if allow && conditions.is_empty() {
            unconditional = true;
        } else if allow {
            conditional.get_or_insert_with(Vec::new).extend(conditions);
        } else if effect.eq_ignore_ascii_case("Deny") {
            // A conditional Deny may not apply; only an unconditional one decides.
            denied |= conditions.is_empty();
        }
    }
    named.sort();
    named.dedup();
    if !denied && unconditional {
        Trust::Allowed {
            conditions: Vec::new(),
        }
    } else if let (false, Some(conditions)) = (denied, conditional) {
        Trust::Allowed { conditions }
    } else {
        Trust::NotAllowed {
            principals: named,
            denied,
        }
    }
}

/// The role findings of the revision.
pub async fn check(clients: &Clients, td: &TaskDefinition) -> Vec<Finding> {
    let (account, _) = home(td);
    let needs = execution_role_needs(td);
    let mut findings = Vec::new();
    // (label, value) per role; one GetRole per distinct role.
    let mut wanted: Vec<(Vec<&str>, String)> = Vec::new();
    for (label, value) in [
        ("task role", td.task_role_arn()),
        ("execution role", td.execution_role_arn()),
    ] {
        match value.filter(|v| !v.trim().is_empty()) {
            Some(v) => match wanted.iter_mut().find(|(_, w)| w.as_str() == v) {
                Some((labels, _)) => labels.push(label),
                None => wanted.push((vec![label], v.to_string())),
            },
            None if label == "task role" => findings.push(Finding::info(
                "task role",
                "none: the containers get no AWS credentials from ECS",
            )),
            None if needs.is_empty() => findings.push(Finding::info(
                "execution role",
                "none, and none needed (no private ECR image on Fargate, no awslogs, no secrets)",
            )),
            None => findings.push(Finding::fail(
                "execution role",
                format!(
                    "none, but the task {}: ECS cannot start it; set executionRoleArn in the task definition",
                    needs.join(", ")
                ),
            )),
        }
    }
    let futs = wanted.into_iter().map(|(labels, value)| {
        let account = account.clone();
        async move { check_role(clients, &labels.join(" and "), &value, &account).await }
    });
    findings.extend(futures_util::future::join_all(futs).await);
    findings
}

async fn check_role(clients: &Clients, label: &str, value: &str, account: &str) -> Finding {
    let role = match role_ref(value) {
        Ok(r) => r,
        Err(why) => return Finding::fail(label, why),
    };
    let subject = format!("{label} {}", role.name);
    let evidence = json!({"role": value, "name": role.name});
    if let Some(other) = role
        .account
        .as_deref()
        .filter(|a| !account.is_empty() && *a != account)
    {
        return Finding::warn(
            subject,
            format!("is in account {other}, the task definition in {account}: GetRole reads only this account's roles, not checked"),
        )
        .with(evidence);
    }
    let out = match clients.iam().get_role().role_name(&role.name).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => {
            return Finding::fail(
                subject,
                "does not exist (IAM NoSuchEntity); create it, or register a task definition revision that names an existing role",
            )
            .with(evidence)
        }
        Err(e) => {
            return unanswered(
                CheckName::Roles,
                "iam:GetRole",
                subject,
                "existence and trust policy",
                call_error(&e),
            )
        }
    };
    let doc = out
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .unwrap_or_default();
    let mut evidence = evidence;
    evidence["arn"] = json!(out.role().map(|r| r.arn()));
    match trust(doc) {
        Trust::Allowed { conditions } if conditions.is_empty() => {
            Finding::pass(subject, format!("exists and trusts {ECS_TASKS}")).with(evidence)
        }
        Trust::Allowed { conditions } => {
            evidence["conditions"] = json!(conditions);
            Finding::pass(
                subject,
                format!(
                    "exists and trusts {ECS_TASKS} under conditions not evaluated here ({})",
                    clip(&conditions.join(", "), 120)
                ),
            )
            .with(evidence)
        }
        Trust::NotAllowed { principals, denied } => {
            evidence["trusted_principals"] = json!(principals);
            let trusted = if principals.is_empty() {
                "no service".to_string()
            } else {
                clip(&principals.join(", "), 160)
            };
            let why = if denied {
                format!("its trust policy denies {ECS_TASKS} sts:AssumeRole")
            } else {
                format!("its trust policy does not let {ECS_TASKS} assume it (it trusts {trusted})")
            };
            Finding::fail(
                subject,
                format!("{why}; add {{\"Effect\": \"Allow\", \"Principal\": {{\"Service\": \"{ECS_TASKS}\"}}, \"Action\": \"sts:AssumeRole\"}} to its trust policy"),
            )
            .with(evidence)
        }
        Trust::Unreadable(why) => Finding::warn(
            subject,
            format!("exists, but its trust policy could not be read ({why}); trust not checked"),
        )
        .with(evidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver, Secret};

    fn enc(s: &str) -> String {
        // What IAM sends: every reserved character percent-encoded.
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn role_names_from_arns_and_short_names() {
        assert_eq!(
            role_ref("arn:aws:iam::123456789012:role/service-role/bosar-api-task").unwrap(),
            RoleRef {
                name: "bosar-api-task".into(),
                account: Some("123456789012".into())
            }
        );
        assert_eq!(
            role_ref("ecsTaskExecutionRole").unwrap(),
            RoleRef {
                name: "ecsTaskExecutionRole".into(),
                account: None
            }
        );
        assert_eq!(
            role_ref("arn:aws-cn:iam::210987654321:role/x")
                .unwrap()
                .name,
            "x"
        );
        assert!(role_ref("arn:aws:iam::123456789012:user/bob").is_err());
        assert!(role_ref("arn:aws:s3:::bucket").is_err());
        assert!(role_ref("no spaces please").is_err());
    }

    #[test]
    fn url_decoding_as_iam_encodes() {
        let doc = r#"{"Statement":[{"Principal":{"Service":"ecs-tasks.amazonaws.com"}}]}"#;
        assert_eq!(url_decode(&enc(doc)), doc);
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(url_decode("a+b%2Bc"), "a+b+c");
    }

    #[test]
    fn trust_for_ecs_tasks_as_string_list_wildcard_and_encoded() {
        let plain = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(trust(plain), Trust::Allowed { conditions: vec![] });
        assert_eq!(trust(&enc(plain)), Trust::Allowed { conditions: vec![] });
        let list = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com","ecs-tasks.amazonaws.com"]},"Action":["sts:TagSession","sts:Assume*"]}}"#;
        assert_eq!(trust(list), Trust::Allowed { conditions: vec![] });
        let star = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:*"}]}"#;
        assert_eq!(trust(star), Trust::Allowed { conditions: vec![] });
    }

    #[test]
    fn trust_naming_another_service_or_denying_fails() {
        let lambda = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(
            trust(lambda),
            Trust::NotAllowed {
                principals: vec!["lambda.amazonaws.com".into()],
                denied: false
            }
        );
        // The right principal, the wrong action.
        let wrong_action = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
        assert!(matches!(trust(wrong_action), Trust::NotAllowed { .. }));
        let denied = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}"#;
        assert_eq!(
            trust(denied),
            Trust::NotAllowed {
                principals: vec!["ecs-tasks.amazonaws.com".into()],
                denied: true
            }
        );
        assert!(matches!(trust("%7Bnot json"), Trust::Unreadable(_)));
    }

    /// Only the tasks' principal counts: ECS's own (`ecs.amazonaws.com`, which runs the
    /// service) and names that merely contain or resemble `ecs-tasks.amazonaws.com` do not.
    #[test]
    fn trust_for_another_ecs_principal_fails() {
        for service in [
            "ecs.amazonaws.com",
            "\"ecs.amazonaws.com\", \"ecs-task.amazonaws.com\"",
            "ecs-tasks.amazonaws.com.evil.example",
            "xecs-tasks.amazonaws.com",
            "ecs-tasks.*",
            "ecs-tasks.amazonaws.com ",
        ] {
            let list = if service.starts_with('"') {
                format!("[{service}]")
            } else {
                format!("\"{service}\"")
            };
            let doc = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"Service":{list}}},"Action":"sts:AssumeRole"}}]}}"#
            );
            assert!(
                matches!(trust(&doc), Trust::NotAllowed { denied: false, .. }),
                "{doc}: {:?}",
                trust(&doc)
            );
            assert!(
                matches!(trust(&enc(&doc)), Trust::NotAllowed { .. }),
                "{doc}"
            );
        }
    }

    #[test]
    fn conditions_are_reported_not_evaluated() {
        let cond = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole",
            "Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"},"ArnLike":{"aws:SourceArn":"arn:aws:ecs:*"}}}]}"#;
        let Trust::Allowed { mut conditions } = trust(cond) else {
            panic!()
        };
        conditions.sort();
        assert_eq!(conditions, ["aws:SourceAccount", "aws:SourceArn"]);
        // A conditional Deny does not decide.
        let cdeny = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
        assert_eq!(trust(cdeny), Trust::Allowed { conditions: vec![] });
    }

    #[test]
    fn execution_role_is_needed_for_ecr_on_fargate_awslogs_and_secrets() {
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1";
        let td = |c: ContainerDefinition, fargate: bool| {
            let b = TaskDefinition::builder().container_definitions(c);
            if fargate {
                b.requires_compatibilities(Compatibility::Fargate).build()
            } else {
                b.build()
            }
        };
        let plain = ContainerDefinition::builder()
            .name("a")
            .image("node:20")
            .build();
        assert!(execution_role_needs(&td(plain.clone(), true)).is_empty());
        let from_ecr = ContainerDefinition::builder().name("a").image(ecr).build();
        assert_eq!(
            execution_role_needs(&td(from_ecr.clone(), true)),
            ["pulls from private ECR"]
        );
        assert!(
            execution_role_needs(&td(from_ecr, false)).is_empty(),
            "EC2: the instance role pulls"
        );
        let logs = ContainerDefinition::builder()
            .name("a")
            .image("node:20")
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(execution_role_needs(&td(logs, true)), ["logs with awslogs"]);
        let secrets = ContainerDefinition::builder()
            .name("a")
            .image("node:20")
            .secrets(
                Secret::builder()
                    .name("X")
                    .value_from("/x")
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(execution_role_needs(&td(secrets, false)), ["has secrets"]);
        // Issue 17 point 10: S3 environment files are read with the execution role.
        let files = ContainerDefinition::builder()
            .name("a")
            .image("node:20")
            .environment_files(
                aws_sdk_ecs::types::EnvironmentFile::builder()
                    .value("arn:aws:s3:::bucket/app.env")
                    .r#type(aws_sdk_ecs::types::EnvironmentFileType::S3)
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(
            execution_role_needs(&td(files, false)),
            ["reads environment files from S3"]
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("sts:*", "sts:AssumeRole"));
        assert!(wildcard("STS:assumerole", "sts:AssumeRole"));
        assert!(wildcard("*", "sts:AssumeRole"));
        assert!(wildcard("sts:Assume?ole", "sts:AssumeRole"));
        assert!(!wildcard("sts:AssumeRoleWith*", "sts:AssumeRole"));
        assert!(!wildcard("iam:*", "sts:AssumeRole"));
    }
}
