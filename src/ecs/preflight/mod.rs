//! Preflight checks on the task definition revision about to be registered (issue 13): the
//! failures ECS would otherwise report 5 to 15 minutes into a rollout, found in seconds and
//! before any mutating call. Four checks, one file each:
//!
//! - `image`: an ECR image's repository exists and holds the tag or digest (ECR DescribeImages);
//! - `roles`: the task and execution roles exist and trust `ecs-tasks.amazonaws.com` (IAM GetRole);
//! - `logs`: every `awslogs` log group exists, or `awslogs-create-group` is `true`
//!   (CloudWatch Logs DescribeLogGroups);
//! - `secrets`: every `valueFrom` resolves (SSM GetParameters, names only; Secrets Manager
//!   DescribeSecret). Secret values are never requested: no GetSecretValue, no WithDecryption.
//!
//! Each file has the pure part (parsing, verdicts; unit-tested here) and a thin async part
//! that makes the calls and returns [`Finding`]s; [`check_revision`] turns them into one
//! [`Check`] per name, run concurrently. Denied permission is a warning naming the
//! permission, never a failure; text from AWS is cut to one short line.

pub mod image;
pub mod logs;
pub mod roles;
pub mod secrets;

use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use super::taskdef::{self, ContainerChange};
use crate::report::{Check, CheckStatus};

use crate::report::{skipped_containers, skips_whole};
/// The check names live in the shared base (the command line parses them).
pub use crate::report::{CheckName, PreflightSkip};

/// The clients the checks use, built from the same loaded `SdkConfig` as [`crate::aws::Aws`]
/// (same credentials, retries, timeouts and endpoint overrides). Resources in another region
/// (an ECR image, a log group's `awslogs-region`, a parameter or secret ARN) get a client
/// for that region, built on demand from the same config.
#[derive(Clone, Debug)]
pub struct Clients {
    sdk: SdkConfig,
    pub region: String,
    ecr: aws_sdk_ecr::Client,
    iam: aws_sdk_iam::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

/// A client of `$krate` from the shared config, with the `-vv` call log.
macro_rules! logged {
    ($krate:ident, $sdk:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .interceptor(crate::aws::CallLog)
                .build(),
        )
    };
}

macro_rules! regional {
    ($fn:ident, $field:ident, $krate:ident) => {
        pub(crate) fn $fn(&self, region: &str) -> $krate::Client {
            if region.is_empty() || region == self.region {
                self.$field.clone()
            } else {
                let conf = $krate::config::Builder::from(&self.sdk)
                    .region(Region::new(region.to_string()))
                    .interceptor(crate::aws::CallLog)
                    .build();
                $krate::Client::from_conf(conf)
            }
        }
    };
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Clients {
        Clients {
            sdk: sdk.clone(),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            ecr: logged!(aws_sdk_ecr, sdk),
            iam: logged!(aws_sdk_iam, sdk),
            logs: logged!(aws_sdk_cloudwatchlogs, sdk),
            ssm: logged!(aws_sdk_ssm, sdk),
            secrets: logged!(aws_sdk_secretsmanager, sdk),
        }
    }

    regional!(ecr, ecr, aws_sdk_ecr);
    regional!(logs, logs, aws_sdk_cloudwatchlogs);
    regional!(ssm, ssm, aws_sdk_ssm);
    regional!(secrets, secrets, aws_sdk_secretsmanager);

    /// The same clients with another ECR client (tests: a mocked one).
    pub fn with_ecr(mut self, ecr: aws_sdk_ecr::Client) -> Clients {
        self.ecr = ecr;
        self
    }

    pub(crate) fn iam(&self) -> &aws_sdk_iam::Client {
        &self.iam
    }
}

/// The preflight clients for a connected `Aws` (`None` on mock clients, which have no
/// config to build them from).
pub fn clients_for(aws: &crate::aws::Aws) -> Option<Clients> {
    aws.sdk.as_ref().map(Clients::new)
}

/// The revision `deploy` would register: the current one with the changes applied to the
/// named container, exactly as `start()` builds it, so the checks see what ECS will see.
pub fn revision_after(
    td: &TaskDefinition,
    container: &str,
    changes: &[ContainerChange],
) -> TaskDefinition {
    let mut rev = td.clone();
    rev.container_definitions = Some(taskdef::apply_changes(td, container, changes));
    rev
}

/// One observation of a check: what was looked at, what was found, how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub status: CheckStatus,
    /// Which container (or role) it is about, e.g. "bosar-api".
    pub subject: String,
    pub message: String,
    /// What was observed: names, ARNs, regions, digests. Never a secret value.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub evidence: serde_json::Value,
}

impl Finding {
    pub fn new(
        status: CheckStatus,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            status,
            subject: subject.into(),
            message: message.into(),
            evidence: serde_json::Value::Null,
        }
    }
    pub fn pass(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CheckStatus::Pass, subject, message)
    }
    pub fn fail(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CheckStatus::Fail, subject, message)
    }
    pub fn warn(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CheckStatus::Warn, subject, message)
    }
    /// Information: looked at, deliberately not checked (and why).
    pub fn info(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CheckStatus::Skip, subject, message)
    }
    pub fn with(mut self, evidence: serde_json::Value) -> Self {
        self.evidence = evidence;
        self
    }
    fn line(&self) -> String {
        if self.subject.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.subject, self.message)
        }
    }
}

/// The check's status: the worst finding; "not checked" alone is Skip, none at all is Skip.
pub fn status_of(findings: &[Finding]) -> CheckStatus {
    let has = |s| findings.iter().any(|f| f.status == s);
    if has(CheckStatus::Fail) {
        CheckStatus::Fail
    } else if has(CheckStatus::Warn) {
        CheckStatus::Warn
    } else if has(CheckStatus::Pass) {
        CheckStatus::Pass
    } else {
        CheckStatus::Skip
    }
}

/// Longest message of a check, in characters (the findings are all in the evidence).
const MESSAGE_MAX: usize = 1500;
/// Findings named in a passing check's message; the rest are counted.
const SHOWN_MAX: usize = 4;

/// One [`Check`] from a check's findings: the message leads with what is wrong (failures,
/// then warnings), else lists everything; the evidence carries every finding.
pub fn to_check(name: CheckName, elapsed: Duration, findings: Vec<Finding>) -> Check {
    let status = status_of(&findings);
    let shown: Vec<String> = match status {
        CheckStatus::Fail | CheckStatus::Warn => findings
            .iter()
            .filter(|f| f.status == status)
            .map(Finding::line)
            .collect(),
        _ => findings.iter().map(Finding::line).collect(),
    };
    let message = match shown.len() {
        0 => "nothing to check".to_string(),
        n if n > SHOWN_MAX && !matches!(status, CheckStatus::Fail | CheckStatus::Warn) => clip(
            &format!(
                "{}; and {} more (see the evidence)",
                shown[..SHOWN_MAX].join("; "),
                n - SHOWN_MAX
            ),
            MESSAGE_MAX,
        ),
        _ => clip(&shown.join("; "), MESSAGE_MAX),
    };
    Check::new(name.as_str(), status, elapsed, message)
        .with_evidence(serde_json::json!({ "findings": findings }))
}

/// The check for a name given to `--skip-preflight`: a warning (so every report shows it:
/// text, JSON, JUnit, the GitHub summary), saying what was not checked.
pub fn skipped(name: CheckName) -> Check {
    Check::new(
        name.as_str(),
        CheckStatus::Warn,
        Duration::ZERO,
        format!("skipped (--skip-preflight {name}): not checked before deploying"),
    )
}

/// The warning every report carries for a skipped check.
pub fn skip_warning(name: CheckName) -> String {
    format!(
        "preflight check {name} skipped (--skip-preflight {name}): a broken {} is found only by the rollout",
        match name {
            CheckName::Image => "image reference",
            CheckName::Roles => "task or execution role",
            CheckName::Logs => "awslogs log group",
            CheckName::Secrets => "secret reference",
        }
    )
}

/// Runs the four checks on `revision` (the task definition after the changes are applied)
/// concurrently; those named in `skip` are reported as skipped, and a container named with
/// `CHECK:CONTAINER` is left out of that check (an information finding says so). Read
/// calls only.
pub async fn check_revision(
    clients: &Clients,
    revision: &TaskDefinition,
    skip: &[PreflightSkip],
) -> Vec<Check> {
    let image_td = without_containers(revision, &skipped_containers(skip, CheckName::Image));
    let logs_td = without_containers(revision, &skipped_containers(skip, CheckName::Logs));
    let secrets_td = without_containers(revision, &skipped_containers(skip, CheckName::Secrets));
    let (a, b, c, d) = tokio::join!(
        timed(CheckName::Image, skip, image::check(clients, &image_td)),
        timed(CheckName::Roles, skip, roles::check(clients, revision)),
        timed(CheckName::Logs, skip, logs::check(clients, &logs_td)),
        timed(
            CheckName::Secrets,
            skip,
            secrets::check(clients, &secrets_td)
        ),
    );
    vec![a, b, c, d]
}

/// The revision without the named containers (for one check's look at it).
fn without_containers(td: &TaskDefinition, names: &[&str]) -> TaskDefinition {
    let mut td = td.clone();
    if !names.is_empty() {
        if let Some(cs) = td.container_definitions.as_mut() {
            cs.retain(|c| !names.contains(&c.name().unwrap_or_default()));
        }
    }
    td
}

/// Information findings for the containers `CHECK:CONTAINER` took out of a check.
fn skipped_findings(name: CheckName, skip: &[PreflightSkip]) -> Vec<Finding> {
    skipped_containers(skip, name)
        .into_iter()
        .map(|c| {
            Finding::info(
                c,
                format!("not checked (--skip-preflight {name}:{})", clip(c, 100)),
            )
        })
        .collect()
}

/// The checks on the revision `deploy` would register for `plan` (for a forced redeploy,
/// the current revision: its tasks start again too).
pub async fn check_plan(
    clients: &Clients,
    plan: &super::deploy::DeployPlan,
    skip: &[PreflightSkip],
) -> Vec<Check> {
    let revision = revision_after(&plan.td, &plan.container, &plan.changes);
    check_revision(clients, &revision, skip).await
}

/// One warning per check named by `--skip-preflight` (stderr, the JSON report's warnings,
/// GitHub annotations).
pub fn warn_skipped(ui: &crate::ui::Ui, skip: &[PreflightSkip]) {
    for name in CheckName::ALL {
        if skips_whole(skip, name) {
            ui.warn(skip_warning(name));
            continue;
        }
        for c in skipped_containers(skip, name) {
            ui.warn(format!(
                "preflight check {name} skips container {} (--skip-preflight {name}:{}): the other containers are checked",
                crate::outside::Outside::new(c),
                crate::outside::Outside::new(c)
            ));
        }
    }
}

/// The checks as text, for `deploy`'s output.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::from("Preflight checks on the revision to register:\n");
    for c in checks {
        out.push_str(&format!("  {}\n", c.line()));
    }
    out
}

/// The error that stops a deploy when a check failed (exit 1), naming the checks.
pub fn stop(checks: &[Check]) -> Option<anyhow::Error> {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.name.as_str())
        .collect();
    if failed.is_empty() {
        return None;
    }
    Some(
        crate::exit::Failure::failed(format!(
            "preflight failed ({}); nothing was registered",
            failed.join(", ")
        ))
        .hint("fix what the failed check says, or pass --skip-preflight CHECK to deploy anyway")
        .into(),
    )
}

/// Runs one check unless skipped (futures are lazy: a skipped check makes no call).
async fn timed(
    name: CheckName,
    skip: &[PreflightSkip],
    findings: impl std::future::Future<Output = Vec<Finding>>,
) -> Check {
    if skips_whole(skip, name) {
        return skipped(name);
    }
    let t = Instant::now();
    let mut findings = findings.await;
    findings.extend(skipped_findings(name, skip));
    to_check(name, t.elapsed(), findings)
}

/// The containers of a task definition.
pub(crate) fn containers(td: &TaskDefinition) -> &[ContainerDefinition] {
    td.container_definitions()
}

/// The account and region of the task definition (from its ARN; empty when unknown).
pub(crate) fn home(td: &TaskDefinition) -> (String, String) {
    match td.task_definition_arn().map(Arn::parse) {
        Some(Some(a)) => (a.account.to_string(), a.region.to_string()),
        _ => (String::new(), String::new()),
    }
}

/// The region the revision's ARN names, else the clients' (where its logs and secrets live
/// when their references do not say).
pub(crate) fn home_region(td: &TaskDefinition, clients: &Clients) -> String {
    let (_, region) = home(td);
    if region.is_empty() {
        clients.region.clone()
    } else {
        region
    }
}

/// An ARN split into its parts: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the fifth colon (may itself contain colons).
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut it = s.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: it.next()?,
            service: it.next()?,
            region: it.next()?,
            account: it.next()?,
            resource: it.next()?,
        };
        (!arn.partition.is_empty() && !arn.service.is_empty()).then_some(arn)
    }
}

/// Text from AWS (or from the task definition) as one short line: control characters and
/// runs of whitespace become one space, and it is cut to `max` characters.
pub fn clip(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let clean: String = one_line.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Longest piece of AWS's own error text quoted in a message.
const AWS_TEXT_MAX: usize = 160;

/// What went wrong with a call, for the cases every check treats alike.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallError {
    /// The credentials in use may not make the call: a warning naming the permission.
    Denied(String),
    /// Anything else (throttled past the retries, unreachable, a server error): a warning,
    /// since it says nothing about the resource.
    Other(String),
}

/// Classifies an SDK error not handled by the caller ("not found" is the caller's).
pub(crate) fn call_error<E>(err: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let status = se.raw().status().as_u16();
            let text = match e.code() {
                Some(code) => clip(
                    &format!("{code}: {}", e.message().unwrap_or_default()),
                    AWS_TEXT_MAX,
                ),
                None => format!("HTTP {status}"),
            };
            // A 403 whose body names no code is a refusal too (moto answers JSON-protocol
            // services with an XML AccessDenied body).
            if e.code().map_or(status == 403, is_denied_code) {
                CallError::Denied(text)
            } else {
                CallError::Other(text)
            }
        }
        // A 403 whose body could not be read at all is a refusal too.
        SdkError::ResponseError(re) if re.raw().status().as_u16() == 403 => {
            CallError::Denied("HTTP 403 with an unreadable body".into())
        }
        SdkError::TimeoutError(_) => CallError::Other("timed out".into()),
        SdkError::DispatchFailure(_) => CallError::Other(clip(
            &format!(
                "could not reach AWS ({})",
                aws_smithy_types::error::display::DisplayErrorContext(err)
            ),
            AWS_TEXT_MAX,
        )),
        other => CallError::Other(clip(
            &aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
            AWS_TEXT_MAX,
        )),
    }
}

pub(crate) fn is_denied_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnauthorizedException"
    )
}

/// The finding for a call that could not answer: denied names the permission to grant;
/// anything else says the check could not be made. Both are warnings.
pub(crate) fn unanswered(
    name: CheckName,
    permission: &str,
    subject: impl Into<String>,
    what: &str,
    err: CallError,
) -> Finding {
    match err {
        CallError::Denied(text) => Finding::warn(
            subject,
            format!(
                "{permission} denied, {what} not checked ({text}); grant {permission} to the deploying identity or pass --skip-preflight {name}"
            ),
        )
        .with(serde_json::json!({ "denied": permission })),
        CallError::Other(text) => {
            Finding::warn(subject, format!("{what} could not be checked: {text}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts_keep_colons_in_the_resource() {
        let a =
            Arn::parse("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf:password::")
                .unwrap();
        assert_eq!(a.service, "secretsmanager");
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.account, "123456789012");
        assert_eq!(a.resource, "secret:db-AbCdEf:password::");
        assert_eq!(Arn::parse("bosar/jwt"), None);
        assert_eq!(Arn::parse("arn:aws"), None);
    }

    #[test]
    fn clip_makes_one_short_line() {
        assert_eq!(clip("a\n  b\tc\r\n", 100), "a b c");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("héllo wörld", 5), "héll…");
        assert_eq!(clip("bell\u{7}", 10), "bell");
    }

    #[test]
    fn status_is_the_worst_finding_and_info_alone_is_skip() {
        let info = Finding::info("log-router", "not in ECR");
        let pass = Finding::pass("bosar-api", "found");
        let warn = Finding::warn("bosar-api", "denied");
        let fail = Finding::fail("bosar-api", "missing");
        assert_eq!(status_of(&[]), CheckStatus::Skip);
        assert_eq!(status_of(std::slice::from_ref(&info)), CheckStatus::Skip);
        assert_eq!(status_of(&[info.clone(), pass.clone()]), CheckStatus::Pass);
        assert_eq!(status_of(&[pass.clone(), warn.clone()]), CheckStatus::Warn);
        assert_eq!(status_of(&[warn, fail, pass, info]), CheckStatus::Fail);
    }

    #[test]
    fn check_message_leads_with_what_is_wrong_and_evidence_has_everything() {
        let c = to_check(
            CheckName::Image,
            Duration::from_millis(3),
            vec![
                Finding::pass("log-router", "found"),
                Finding::fail("bosar-api", "tag 2 is not in repository bosar-api"),
            ],
        );
        assert_eq!(c.status, CheckStatus::Fail);
        assert_eq!(c.name, "image");
        assert_eq!(c.message, "bosar-api: tag 2 is not in repository bosar-api");
        assert_eq!(c.evidence["findings"].as_array().unwrap().len(), 2);
        let ok = to_check(
            CheckName::Logs,
            Duration::ZERO,
            vec![Finding::pass("a", "x"), Finding::info("b", "y")],
        );
        assert_eq!(ok.status, CheckStatus::Pass);
        assert_eq!(ok.message, "a: x; b: y");
        let long = to_check(
            CheckName::Logs,
            Duration::ZERO,
            vec![Finding::fail("a", "x".repeat(2000))],
        );
        assert!(long.message.chars().count() <= MESSAGE_MAX);
        let many = to_check(
            CheckName::Secrets,
            Duration::ZERO,
            (0..6)
                .map(|i| Finding::pass(format!("c{i}"), "ok"))
                .collect(),
        );
        assert_eq!(
            many.message,
            "c0: ok; c1: ok; c2: ok; c3: ok; and 2 more (see the evidence)"
        );
    }

    #[test]
    fn skipping_names_the_check_everywhere() {
        let c = skipped(CheckName::Secrets);
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.message.contains("--skip-preflight secrets"),
            "{}",
            c.message
        );
        assert!(skip_warning(CheckName::Image).contains("--skip-preflight image"));
        let names: Vec<&str> = CheckName::ALL.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["image", "roles", "logs", "secrets"]);
    }

    #[test]
    fn a_failed_check_stops_the_deploy_and_says_which() {
        let pass = Check::new("image", CheckStatus::Pass, Duration::ZERO, "ok");
        let warn = Check::new("roles", CheckStatus::Warn, Duration::ZERO, "denied");
        assert!(stop(&[pass.clone(), warn.clone()]).is_none());
        let fail = Check::new("logs", CheckStatus::Fail, Duration::ZERO, "missing");
        let err = stop(&[pass, warn, fail]).unwrap();
        assert_eq!(
            err.to_string(),
            "preflight failed (logs); nothing was registered"
        );
        assert_eq!(crate::exit::code_of(&err), crate::exit::Code::Failed);
    }

    #[test]
    fn denied_names_the_permission_and_is_a_warning() {
        let f = unanswered(
            CheckName::Roles,
            "iam:GetRole",
            "execution role x",
            "existence and trust",
            CallError::Denied("AccessDenied: not authorized".into()),
        );
        assert_eq!(f.status, CheckStatus::Warn);
        assert!(f.message.contains("iam:GetRole denied"), "{}", f.message);
        assert!(
            f.message.contains("--skip-preflight roles"),
            "{}",
            f.message
        );
        assert!(is_denied_code("AccessDeniedException") && !is_denied_code("NoSuchEntity"));
    }
}
