//! `secrets`: every reference the execution role resolves at task start exists:
//! `secrets[].valueFrom`, `logConfiguration.secretOptions[].valueFrom` and
//! `repositoryCredentials.credentialsParameter`, in every container.
//!
//! A `valueFrom` is (see [`classify`]):
//! - an SSM parameter name (`/bosar/jwt`, `jwt`, `jwt:3`, `jwt:label`): this region;
//! - an SSM parameter ARN (`arn:aws:ssm:REGION:ACCT:parameter/…`): its region, as is
//!   (a parameter shared from another account is read by ARN);
//! - a Secrets Manager ARN, optionally with `:json-key:version-stage:version-id`;
//! - `/aws/reference/secretsmanager/NAME`: an SSM name that reads a secret. GetParameters
//!   answers it only with WithDecryption, which this tool never sends: it is checked with
//!   DescribeSecret instead.
//!
//! SSM: GetParameters with names only (never WithDecryption), at most 10 names per call, one
//! call per region; what comes back in `InvalidParameters` does not exist. The values in
//! the answer are never read. Secrets Manager: DescribeSecret (metadata; never
//! GetSecretValue), which also shows a secret scheduled for deletion and its version
//! stages and ids. A JSON key cannot be checked without the value: it is noted, not checked.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types::TaskDefinition;
use serde_json::json;

use super::{
    call_error, clip, containers, home_region, unanswered, Arn, CallError, CheckName, Clients,
    Finding,
};

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An SSM parameter; `name` is what GetParameters is sent (a name or an ARN).
    Ssm { name: String, region: String },
    /// A Secrets Manager secret; `id` is the ARN up to the secret name (or a name).
    Secret {
        id: String,
        region: String,
        json_key: Option<String>,
        version_stage: Option<String>,
        version_id: Option<String>,
    },
    /// Not something ECS can resolve.
    Invalid(String),
}

/// Where a reference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Secrets,
    LogSecretOptions,
    RepositoryCredentials,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Secrets => "secrets",
            Source::LogSecretOptions => "logConfiguration.secretOptions",
            Source::RepositoryCredentials => "repositoryCredentials",
        }
    }
}

const SSM_SECRETS_MANAGER_REFERENCE: &str = "/aws/reference/secretsmanager/";

/// Classifies a `valueFrom` (`home` is the task's region). A bare name is an SSM parameter,
/// except for private registry credentials, which are always a Secrets Manager secret.
pub fn classify(value_from: &str, home: &str, source: Source) -> Reference {
    let v = value_from.trim();
    if v.is_empty() {
        return Reference::Invalid("empty valueFrom".into());
    }
    let secret = |id: &str, region: &str| Reference::Secret {
        id: id.to_string(),
        region: region.to_string(),
        json_key: None,
        version_stage: None,
        version_id: None,
    };
    let Some(arn) = Arn::parse(v) else {
        if source == Source::RepositoryCredentials {
            return secret(v, home);
        }
        if let Some(name) = v.strip_prefix(SSM_SECRETS_MANAGER_REFERENCE) {
            return secret(name, home);
        }
        return Reference::Ssm {
            name: v.to_string(),
            region: home.to_string(),
        };
    };
    let region = if arn.region.is_empty() {
        home
    } else {
        arn.region
    };
    match arn.service {
        "ssm" if arn.resource.starts_with("parameter/") => {
            let param = &arn.resource["parameter".len()..];
            if let Some(name) = param.strip_prefix(SSM_SECRETS_MANAGER_REFERENCE) {
                return secret(name, region);
            }
            Reference::Ssm {
                name: v.to_string(),
                region: region.to_string(),
            }
        }
        "secretsmanager" if arn.resource.starts_with("secret:") => {
            // secret:NAME[:json-key[:version-stage[:version-id]]]; names have no colons.
            let mut parts = arn.resource["secret:".len()..].splitn(4, ':');
            let name = parts.next().unwrap_or_default();
            if name.is_empty() {
                return Reference::Invalid(format!("{} names no secret", clip(v, 200)));
            }
            let mut next = || parts.next().filter(|s| !s.is_empty()).map(str::to_string);
            let (json_key, version_stage, version_id) = (next(), next(), next());
            if version_stage.is_some() && version_id.is_some() {
                return Reference::Invalid(format!(
                    "{} gives both a version stage and a version id; ECS takes one",
                    clip(v, 200)
                ));
            }
            Reference::Secret {
                id: format!(
                    "arn:{}:secretsmanager:{}:{}:secret:{name}",
                    arn.partition, arn.region, arn.account
                ),
                region: region.to_string(),
                json_key,
                version_stage,
                version_id,
            }
        }
        other => Reference::Invalid(format!(
            "{} is an ARN of {other}, not an SSM parameter or a Secrets Manager secret",
            clip(v, 200)
        )),
    }
}

/// One reference in the revision.
#[derive(Debug, Clone)]
struct Usage {
    container: String,
    /// The variable (or option) it sets; empty for registry credentials.
    name: String,
    source: Source,
    value_from: String,
    reference: Reference,
}

impl Usage {
    fn subject(&self) -> String {
        if self.name.is_empty() {
            format!("{} {}", self.container, self.source.as_str())
        } else {
            format!("{} {}", self.container, self.name)
        }
    }
}

fn usages(td: &TaskDefinition, home: &str) -> Vec<Usage> {
    let mut out = Vec::new();
    for c in containers(td) {
        let container = c.name().unwrap_or("?").to_string();
        let mut push = |name: &str, source: Source, value_from: &str| {
            out.push(Usage {
                container: container.clone(),
                name: name.to_string(),
                source,
                value_from: value_from.to_string(),
                reference: classify(value_from, home, source),
            })
        };
        for s in c.secrets() {
            push(s.name(), Source::Secrets, s.value_from());
        }
        for s in c
            .log_configuration()
            .map(|l| l.secret_options())
            .unwrap_or_default()
        {
            push(s.name(), Source::LogSecretOptions, s.value_from());
        }
        if let Some(rc) = c.repository_credentials() {
            push(
                "",
                Source::RepositoryCredentials,
                rc.credentials_parameter(),
            );
        }
    }
    out
}

/// What the calls found for one parameter or secret.
#[derive(Debug, Clone)]
enum Found {
    Yes {
        versions: Option<BTreeMap<String, Vec<String>>>,
        deleted: Option<String>,
    },
    No(String),
    Unanswered(CallError),
}

/// GetParameters' limit on names per call.
pub const GET_PARAMETERS_MAX: usize = 10;

/// The secret findings of the revision.
pub async fn check(clients: &Clients, td: &TaskDefinition) -> Vec<Finding> {
    let home_region = home_region(td, clients);
    let uses = usages(td, &home_region);
    if uses.is_empty() {
        return vec![Finding::info(
            "",
            "no secrets, secretOptions or repositoryCredentials",
        )];
    }
    let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut secret_ids: BTreeSet<(String, String)> = BTreeSet::new();
    for u in &uses {
        match &u.reference {
            Reference::Ssm { name, region } => {
                params
                    .entry(region.clone())
                    .or_default()
                    .insert(name.clone());
            }
            Reference::Secret { id, region, .. } => {
                secret_ids.insert((region.clone(), id.clone()));
            }
            Reference::Invalid(_) => {}
        }
    }
    let ssm = futures_util::future::join_all(
        params
            .into_iter()
            .map(|(region, names)| parameters(clients, region, names.into_iter().collect())),
    );
    let sm =
        futures_util::future::join_all(secret_ids.into_iter().map(|(region, id)| async move {
            (
                (region.clone(), id.clone()),
                describe_secret(clients, &region, &id).await,
            )
        }));
    let (ssm, sm) = tokio::join!(ssm, sm);
    let ssm: BTreeMap<(String, String), Found> = ssm.into_iter().flatten().collect();
    let sm: BTreeMap<(String, String), Found> = sm.into_iter().collect();
    uses.iter().map(|u| finding(u, &ssm, &sm)).collect()
}

fn finding(
    u: &Usage,
    ssm: &BTreeMap<(String, String), Found>,
    sm: &BTreeMap<(String, String), Found>,
) -> Finding {
    let subject = u.subject();
    let mut evidence = json!({
        "container": u.container,
        "name": u.name,
        "source": u.source.as_str(),
        "value_from": u.value_from,
    });
    match &u.reference {
        Reference::Invalid(why) => {
            Finding::fail(subject, format!("{why}; fix the valueFrom")).with(evidence)
        }
        Reference::Ssm { name, region } => {
            evidence["kind"] = json!("ssm");
            evidence["region"] = json!(region);
            let what = format!("SSM parameter {} ({region})", clip(name, 200));
            match ssm.get(&(region.clone(), name.clone())) {
                Some(Found::Yes { .. }) => Finding::pass(subject, format!("{what} exists")).with(evidence),
                Some(Found::No(why)) => Finding::fail(
                    subject,
                    format!("{what} {why}; create it (names are case-sensitive; another region needs the full ARN) or fix the valueFrom"),
                )
                .with(evidence),
                Some(Found::Unanswered(e)) => unanswered(CheckName::Secrets, "ssm:GetParameters", subject, &what, e.clone()),
                None => Finding::warn(subject, format!("{what}: no answer; not checked")).with(evidence),
            }
        }
        Reference::Secret {
            id,
            region,
            json_key,
            version_stage,
            version_id,
        } => {
            evidence["kind"] = json!("secretsmanager");
            evidence["region"] = json!(region);
            let what = format!("Secrets Manager secret {} ({region})", clip(id, 200));
            match sm.get(&(region.clone(), id.clone())) {
                Some(Found::Yes { versions, deleted }) => {
                    if let Some(when) = deleted {
                        return Finding::fail(
                            subject,
                            format!("{what} is scheduled for deletion ({when}) and cannot be read; restore it (aws secretsmanager restore-secret --secret-id …) or fix the valueFrom"),
                        )
                        .with(evidence);
                    }
                    let versions = versions.clone().unwrap_or_default();
                    if let Some(v) = version_id {
                        if !versions.contains_key(v) {
                            return Finding::fail(subject, format!("{what} has no version id {}; fix the valueFrom", clip(v, 80))).with(evidence);
                        }
                    }
                    if let Some(s) = version_stage {
                        if !versions.values().any(|stages| stages.contains(s)) {
                            return Finding::fail(subject, format!("{what} has no version labelled {}; fix the valueFrom", clip(s, 80))).with(evidence);
                        }
                    }
                    let mut msg = format!("{what} exists");
                    if let Some(k) = json_key {
                        evidence["json_key"] = json!(k);
                        msg.push_str(&format!("; JSON key {} not checked (that needs the value, which preflight never reads)", clip(k, 80)));
                    }
                    Finding::pass(subject, msg).with(evidence)
                }
                Some(Found::No(why)) => Finding::fail(
                    subject,
                    format!("{what} {why}; create it or fix the valueFrom (a secret in another region or account needs its full ARN)"),
                )
                .with(evidence),
                Some(Found::Unanswered(e)) => unanswered(CheckName::Secrets, "secretsmanager:DescribeSecret", subject, &what, e.clone()),
                None => Finding::warn(subject, format!("{what}: no answer; not checked")).with(evidence),
            }
        }
    }
}

/// GetParameters for `names` in `region`, 10 at a time. A batch refused as a whole (a
/// malformed name, access denied on one parameter) is asked again name by name, so one bad
/// reference does not hide the others.
async fn parameters(
    clients: &Clients,
    region: String,
    names: Vec<String>,
) -> Vec<((String, String), Found)> {
    let client = clients.ssm(&region);
    let mut out = Vec::new();
    for chunk in names.chunks(GET_PARAMETERS_MAX) {
        match get_parameters(&client, chunk).await {
            Ok(found) => out.extend(found),
            Err(_) if chunk.len() > 1 => {
                for name in chunk {
                    match get_parameters(&client, std::slice::from_ref(name)).await {
                        Ok(found) => out.extend(found),
                        Err(e) => out.push((name.clone(), e)),
                    }
                }
            }
            Err(e) => out.push((chunk[0].clone(), e)),
        }
    }
    out.into_iter()
        .map(|(n, f)| ((region.clone(), n), f))
        .collect()
}

async fn get_parameters(
    client: &aws_sdk_ssm::Client,
    names: &[String],
) -> Result<Vec<(String, Found)>, Found> {
    // Names only: WithDecryption is never set, and the values in the answer are not read.
    let out = client
        .get_parameters()
        .set_names(Some(names.to_vec()))
        .send()
        .await;
    match out {
        Ok(o) => {
            let invalid: BTreeSet<&str> =
                o.invalid_parameters().iter().map(String::as_str).collect();
            // Each returned parameter by the identifiers it answers to: name, ARN, and both
            // with the selector (`:3`, `:label`) it was asked with. Values are not read.
            let returned: BTreeSet<String> = o
                .parameters()
                .iter()
                .flat_map(|p| {
                    let sel = p.selector().unwrap_or_default();
                    [p.name(), p.arn()]
                        .into_iter()
                        .flatten()
                        .flat_map(move |id| [id.to_string(), format!("{id}{sel}")])
                })
                .collect();
            Ok(names
                .iter()
                .map(|n| (n.clone(), parameter_verdict(n, &invalid, &returned)))
                .collect())
        }
        Err(e) => {
            let invalid_name = e.as_service_error().and_then(|s| {
                use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                (s.code() == Some("ValidationException"))
                    .then(|| s.message().unwrap_or_default().to_string())
            });
            Err(match invalid_name {
                Some(m) => Found::No(format!("is not a valid parameter name ({})", clip(&m, 120))),
                None => Found::Unanswered(call_error(&e)),
            })
        }
    }
}

/// A name is missing when GetParameters lists it in InvalidParameters, found when a returned
/// parameter answers to it; neither is not taken as found.
fn parameter_verdict(name: &str, invalid: &BTreeSet<&str>, returned: &BTreeSet<String>) -> Found {
    if invalid.contains(name) {
        Found::No("does not exist".into())
    } else if returned.contains(name) {
        Found::Yes {
            versions: None,
            deleted: None,
        }
    } else {
        Found::Unanswered(CallError::Other(
            "GetParameters neither returned it nor listed it as invalid".into(),
        ))
    }
}

async fn describe_secret(clients: &Clients, region: &str, id: &str) -> Found {
    match clients
        .secrets(region)
        .describe_secret()
        .secret_id(id)
        .send()
        .await
    {
        Ok(o) => Found::Yes {
            versions: o
                .version_ids_to_stages()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            deleted: o.deleted_date().map(|d| {
                d.fmt(aws_smithy_types::date_time::Format::DateTime)
                    .unwrap_or_default()
            }),
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Found::No("does not exist (ResourceNotFoundException)".into())
        }
        Err(e) => Found::Unanswered(call_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssm(name: &str, region: &str) -> Reference {
        Reference::Ssm {
            name: name.into(),
            region: region.into(),
        }
    }

    #[test]
    fn ssm_names_and_arns() {
        for name in ["/bosar/jwt", "jwt", "jwt:3", "/bosar/jwt:prod"] {
            assert_eq!(
                classify(name, "us-east-1", Source::Secrets),
                ssm(name, "us-east-1")
            );
        }
        let arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/bosar/jwt";
        assert_eq!(
            classify(arn, "us-east-1", Source::Secrets),
            ssm(arn, "eu-west-1")
        );
        let shared = "arn:aws:ssm:us-east-1:210987654321:parameter/shared/db";
        assert_eq!(
            classify(shared, "us-east-1", Source::Secrets),
            ssm(shared, "us-east-1")
        );
    }

    #[test]
    fn secrets_manager_arns_with_json_key_stage_and_id() {
        let base = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bosar/db-AbCdEf";
        assert_eq!(
            classify(base, "us-east-1", Source::Secrets),
            Reference::Secret {
                id: base.into(),
                region: "eu-west-1".into(),
                json_key: None,
                version_stage: None,
                version_id: None
            }
        );
        assert_eq!(
            classify(
                &format!("{base}:password:AWSPREVIOUS:"),
                "us-east-1",
                Source::Secrets
            ),
            Reference::Secret {
                id: base.into(),
                region: "eu-west-1".into(),
                json_key: Some("password".into()),
                version_stage: Some("AWSPREVIOUS".into()),
                version_id: None
            }
        );
        let Reference::Secret {
            id,
            json_key,
            version_id,
            ..
        } = classify(
            &format!("{base}:::9d3c1b2a-0000-4000-8000-000000000000"),
            "us-east-1",
            Source::Secrets,
        )
        else {
            panic!()
        };
        assert_eq!((id.as_str(), json_key), (base, None));
        assert_eq!(
            version_id.as_deref(),
            Some("9d3c1b2a-0000-4000-8000-000000000000")
        );
        assert!(matches!(
            classify(
                &format!("{base}::AWSCURRENT:some-id"),
                "us-east-1",
                Source::Secrets
            ),
            Reference::Invalid(_)
        ));
        // China partition kept in the id.
        let Reference::Secret { id, region, .. } = classify(
            "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbCdEf:k::",
            "us-east-1",
            Source::Secrets,
        ) else {
            panic!()
        };
        assert_eq!(
            (id.as_str(), region.as_str()),
            (
                "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbCdEf",
                "cn-north-1"
            )
        );
    }

    #[test]
    fn secrets_manager_through_ssm_and_registry_credentials_are_secrets() {
        assert_eq!(
            classify(
                "/aws/reference/secretsmanager/bosar/db",
                "us-east-1",
                Source::Secrets
            ),
            Reference::Secret {
                id: "bosar/db".into(),
                region: "us-east-1".into(),
                json_key: None,
                version_stage: None,
                version_id: None
            }
        );
        assert!(matches!(
            classify("arn:aws:ssm:eu-west-1:123456789012:parameter/aws/reference/secretsmanager/bosar/db", "us-east-1", Source::Secrets),
            Reference::Secret { ref id, ref region, .. } if id == "bosar/db" && region == "eu-west-1"
        ));
        assert!(matches!(
            classify("dockerhub-creds", "us-east-1", Source::RepositoryCredentials),
            Reference::Secret { ref id, .. } if id == "dockerhub-creds"
        ));
    }

    #[test]
    fn get_parameters_answers_by_name_arn_and_selector() {
        let invalid: BTreeSet<&str> = ["/bosar/nope"].into();
        let returned: BTreeSet<String> = [
            "/bosar/jwt",
            "arn:aws:ssm:us-east-1:123456789012:parameter/bosar/jwt",
            "/bosar/db",
            "/bosar/db:3",
        ]
        .map(String::from)
        .into();
        let v = |n: &str| parameter_verdict(n, &invalid, &returned);
        assert!(matches!(v("/bosar/jwt"), Found::Yes { .. }));
        assert!(matches!(
            v("arn:aws:ssm:us-east-1:123456789012:parameter/bosar/jwt"),
            Found::Yes { .. }
        ));
        assert!(matches!(v("/bosar/db:3"), Found::Yes { .. }));
        assert!(matches!(v("/bosar/nope"), Found::No(_)));
        assert!(matches!(v("/bosar/other"), Found::Unanswered(_)));
    }

    #[test]
    fn other_arns_and_empty_values_are_invalid() {
        for v in [
            "arn:aws:s3:::bucket/key",
            "arn:aws:kms:us-east-1:1:key/abc",
            "",
            "arn:aws:secretsmanager:us-east-1:1:secret:",
        ] {
            assert!(
                matches!(
                    classify(v, "us-east-1", Source::Secrets),
                    Reference::Invalid(_)
                ),
                "{v}"
            );
        }
    }
}
