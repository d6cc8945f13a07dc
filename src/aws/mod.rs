//! AWS SDK wiring: region and profile precedence, timeouts, credentials proven with STS, and
//! every client logging its calls at `-vv` (`trace`). SDK errors become sentences that say
//! what to do (`errors`). `AWS_ENDPOINT_URL` (and the per-service variants) point the SDK at
//! an emulator; aws-config reads them itself.

mod errors;
mod profile;
mod trace;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;

pub use errors::{endpoint_note, is_throttling, is_transient, sdk_error, service_error_code};
/// The `-vv` call log, for clients built outside this module (the preflight checks').
pub use trace::CallLog;

use crate::cli::GlobalArgs;
use crate::config::AwsSection;
pub use crate::envelope::CredentialSource;
use crate::exit::Failure;
use crate::ui::Ui;

pub struct Aws {
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub region: String,
    /// Who the credentials belong to (STS GetCallerIdentity); `None` only in tests.
    pub identity: Option<Identity>,
    /// The loaded config, for clients a verb needs besides ECS and ELB (the preflight
    /// checks'); `None` only in tests on mock clients.
    pub sdk: Option<SdkConfig>,
}

/// The account and principal behind the credentials in use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// A profile the user named, and where: `--profile` > `[aws] profile` > `AWS_PROFILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedProfile {
    pub name: String,
    pub from: &'static str,
}

pub fn named_profile(cfg: &AwsSection, g: &GlobalArgs) -> Option<NamedProfile> {
    let (name, from) = match (&g.profile, &cfg.profile) {
        (Some(p), _) => (p.clone(), "--profile"),
        (None, Some(p)) => (p.clone(), "[aws] profile"),
        (None, None) => (
            std::env::var("AWS_PROFILE")
                .ok()
                .filter(|p| !p.is_empty())?,
            "AWS_PROFILE",
        ),
    };
    Some(NamedProfile { name, from })
}

/// Environment credentials a named profile overrides (names only, never values).
fn ignored_environment_keys() -> Vec<&'static str> {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .into_iter()
    .filter(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
    .collect()
}

/// Loads the SDK config: `--region` > `[aws] region` > AWS chain; a named profile (see
/// [`named_profile`]) is the credential source, environment keys notwithstanding.
pub async fn sdk_config(cfg: &AwsSection, g: &GlobalArgs) -> anyhow::Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(4));
    if let Some(NamedProfile { name, from }) = named_profile(cfg, g) {
        profile::ensure_exists(&name, from)?;
        // The profile is the credential source, as in the AWS CLI: the SDK's default chain
        // would read environment keys first, which may belong to another account.
        let credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_name(&name)
            .build();
        loader = loader.profile_name(&name).credentials_provider(credentials);
    }
    if let Some(r) = g.region.as_ref().filter(|r| !crate::config::is_region(r)) {
        return Err(
            Failure::usage(format!("--region: \"{r}\" is not an AWS region"))
                .hint("a region code such as us-east-1 or eu-central-1")
                .into(),
        );
    }
    if let Some(r) = g.region.as_ref().or(cfg.region.as_ref()) {
        loader = loader.region(Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Failure::usage("no AWS region configured")
            .hint("set [aws] region in deploy.toml, pass --region, or set AWS_REGION")
            .into());
    }
    Ok(sdk)
}

/// Resolves credentials once, bounded in time, so a missing or expired login is a clear
/// message in seconds rather than a hang on the instance metadata endpoint.
/// Returns where they came from (the provider's name).
pub async fn check_credentials(
    sdk: &SdkConfig,
    profile: Option<&NamedProfile>,
) -> anyhow::Result<String> {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(no_credentials("no credentials provider", profile));
    };
    match tokio::time::timeout(Duration::from_secs(15), provider.provide_credentials()).await {
        Ok(Ok(c)) => Ok(provider_name(&c)),
        Ok(Err(e)) => Err(no_credentials(
            e.to_string().lines().next().unwrap_or("none found"),
            profile,
        )),
        Err(_) => Err(no_credentials(
            "resolving credentials took longer than 15 s",
            profile,
        )),
    }
}

/// The provider that gave the credentials ("Environment", "ProfileFile", "WebIdentityToken",
/// …). The SDK keeps it private and shows it only in `Debug`, which also holds the access key
/// id: only the provider's name is taken from it.
fn provider_name(c: &aws_credential_types::Credentials) -> String {
    let debug = format!("{c:?}");
    debug
        .split("provider_name: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|n| {
            n.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        })
        .unwrap_or("the credential chain")
        .to_string()
}

fn no_credentials(detail: &str, profile: Option<&NamedProfile>) -> anyhow::Error {
    match profile {
        Some(p) => Failure::usage(format!(
            "no usable AWS credentials in profile \"{}\" (named by {}): {detail}",
            p.name, p.from
        ))
        .hint(format!(
            "give the profile credentials (`aws configure --profile {0}` for keys, `aws configure sso --profile {0}` then `aws sso login --profile {0}`, or role_arn with source_profile), or name another profile; environment keys are not used while a profile is named",
            p.name
        ))
        .into(),
        None => Failure::usage(format!("no usable AWS credentials ({detail})"))
            .hint("name a profile (--profile, [aws] profile or AWS_PROFILE; then `aws sso login` if it uses SSO), or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) in CI")
            .into(),
    }
}

/// The clients from one loaded config whose credentials AWS accepted (STS knows them).
/// `-v` shows the region and where it came from, the credential source, the caller and the
/// endpoint when it is overridden.
pub async fn connect(cfg: &AwsSection, g: &GlobalArgs, ui: &Ui) -> anyhow::Result<Aws> {
    let sdk = sdk_config(cfg, g).await?;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    ui.context().update(|c| c.region = Some(region.clone()));
    let region_from = if g.region.is_some() {
        "--region"
    } else if cfg.region.is_some() {
        "[aws] region"
    } else {
        "the AWS environment or profile"
    };
    ui.detail(format!("region {region} (from {region_from})"));
    if std::env::vars().any(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && !v.is_empty()) {
        ui.detail(format!("endpoint {}", endpoint_note()));
    }
    let named = named_profile(cfg, g);
    let provider = check_credentials(&sdk, named.as_ref()).await?;
    let source = match named {
        Some(p) => {
            let ignored = ignored_environment_keys();
            if !ignored.is_empty() {
                ui.warn(format!(
                    "{} {} set in the environment and ignored: profile \"{}\" ({}) supplies the credentials, as in the AWS CLI",
                    ignored.join(", "),
                    if ignored.len() == 1 { "is" } else { "are" },
                    p.name,
                    p.from
                ));
            }
            CredentialSource {
                source: format!("profile {} ({provider})", p.name),
                chosen_by: p.from.to_string(),
                ignored: ignored.into_iter().map(str::to_string).collect(),
            }
        }
        None => CredentialSource {
            source: provider,
            chosen_by: "the default chain (no profile named)".to_string(),
            ignored: Vec::new(),
        },
    };
    let identity = caller_identity(&sdk).await?;
    ui.detail(format!(
        "credentials from {}: account {}, caller {}",
        source.describe(),
        identity.account,
        identity.arn
    ));
    ui.context().update(|c| {
        c.account = Some(identity.account.clone());
        c.credentials = Some(source.clone());
    });
    let mut aws = from_sdk(&sdk);
    aws.identity = Some(identity);
    Ok(aws)
}

pub fn from_sdk(sdk: &SdkConfig) -> Aws {
    let ecs = aws_sdk_ecs::config::Builder::from(sdk)
        .interceptor(trace::CallLog)
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(sdk)
        .interceptor(trace::CallLog)
        .build();
    Aws {
        elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
        ecs: aws_sdk_ecs::Client::from_conf(ecs),
        region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        identity: None,
        sdk: Some(sdk.clone()),
    }
}

/// Error codes with which AWS rejects the credentials themselves.
const REJECTED_CREDENTIALS: [&str; 7] = [
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "AccessDenied",
];

/// STS GetCallerIdentity (no IAM permission needed): proves AWS accepts the credentials,
/// which resolving them does not (revoked keys resolve fine), and names the account.
pub async fn caller_identity(sdk: &SdkConfig) -> anyhow::Result<Identity> {
    // The first call of a run: an unreachable endpoint fails after one retry, not four.
    let conf = aws_sdk_sts::config::Builder::from(sdk)
        .interceptor(trace::CallLog)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .build();
    let sts = aws_sdk_sts::Client::from_conf(conf);
    match sts.get_caller_identity().send().await {
        Ok(out) => Ok(Identity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
        }),
        Err(SdkError::ServiceError(se))
            if se.raw().status().as_u16() == 403
                || REJECTED_CREDENTIALS
                    .contains(&service_error_code(se.err(), se.raw()).0.as_str()) =>
        {
            let (code, message) = service_error_code(se.err(), se.raw());
            Err(Failure::usage(format!(
                "AWS rejected the credentials: {code}: {message}"
            ))
            .hint("they are invalid, expired or revoked: log in again (`aws sso login`), refresh AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, or check the CI role (OIDC trust, session duration); nothing was changed")
            .into())
        }
        Err(e) => Err(sdk_error("GetCallerIdentity", e)),
    }
}
