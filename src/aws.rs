//! AWS SDK wiring: region and profile precedence, timeouts, a fast credentials check, and
//! SDK errors turned into messages that say what to do. `AWS_ENDPOINT_URL` (and the
//! per-service variants) point the SDK at an emulator; aws-config reads them itself.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::exit::Failure;

pub struct Aws {
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub region: String,
    /// Who the credentials belong to (STS GetCallerIdentity); `None` only in tests.
    pub identity: Option<Identity>,
}

/// The account and principal behind the credentials in use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// Loads the SDK config: `--region` > `[aws] region` > AWS chain; `--profile` > `[aws] profile`.
pub async fn sdk_config(cfg: &Config, g: &GlobalArgs) -> anyhow::Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(4));
    if let Some(p) = g.profile.as_ref().or(cfg.aws.profile.as_ref()) {
        loader = loader.profile_name(p);
    }
    if let Some(r) = g.region.as_ref().filter(|r| !crate::config::is_region(r)) {
        return Err(
            Failure::usage(format!("--region: \"{r}\" is not an AWS region"))
                .hint("a region code such as us-east-1 or eu-central-1")
                .into(),
        );
    }
    if let Some(r) = g.region.as_ref().or(cfg.aws.region.as_ref()) {
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
pub async fn check_credentials(sdk: &SdkConfig) -> anyhow::Result<()> {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(no_credentials("no credentials provider"));
    };
    match tokio::time::timeout(Duration::from_secs(15), provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(no_credentials(
            e.to_string().lines().next().unwrap_or("none found"),
        )),
        Err(_) => Err(no_credentials(
            "resolving credentials took longer than 15 s",
        )),
    }
}

fn no_credentials(detail: &str) -> anyhow::Error {
    Failure::usage(format!("no usable AWS credentials ({detail})"))
        .hint("set AWS_PROFILE (then `aws sso login` if it uses SSO), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) in CI")
        .into()
}

/// The clients from one loaded config whose credentials AWS accepted (STS knows them).
pub async fn connect(cfg: &Config, g: &GlobalArgs) -> anyhow::Result<Aws> {
    let sdk = sdk_config(cfg, g).await?;
    check_credentials(&sdk).await?;
    let identity = caller_identity(&sdk).await?;
    let mut aws = from_sdk(&sdk);
    aws.identity = Some(identity);
    Ok(aws)
}

pub fn from_sdk(sdk: &SdkConfig) -> Aws {
    Aws {
        elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
        ecs: aws_sdk_ecs::Client::new(sdk),
        region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        identity: None,
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
    let sts = aws_sdk_sts::Client::new(sdk);
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

/// An SDK error as a `Failure` (exit 1) naming the operation, AWS's code and message, and a hint.
pub fn sdk_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (detail, hint) = match &err {
        SdkError::ServiceError(se) => {
            let (code, msg) = service_error_code(se.err(), se.raw());
            let code = code.as_str();
            let hint = match code {
                "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
                    Some(format!("the credentials in use lack permission for {operation}; see the README's IAM policy"))
                }
                "ExpiredToken" | "ExpiredTokenException" | "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException" => {
                    Some("the AWS credentials are invalid or expired; log in again (`aws sso login`)".to_string())
                }
                "Throttling" | "ThrottlingException" => Some("AWS throttled the call; try again in a moment".to_string()),
                _ => None,
            };
            (format!("{code}: {msg}"), hint)
        }
        SdkError::TimeoutError(_) => (
            "timed out".to_string(),
            Some("check network access to AWS (or AWS_ENDPOINT_URL)".to_string()),
        ),
        SdkError::DispatchFailure(_) => (
            format!("could not reach AWS ({})", DisplayErrorContext(&err)),
            Some(
                "check network access to AWS (or AWS_ENDPOINT_URL if you use an emulator)"
                    .to_string(),
            ),
        ),
        SdkError::ResponseError(re) => (
            format!(
                "HTTP {} with a body that is not a {operation} answer",
                re.raw().status().as_u16()
            ),
            Some("a proxy or an emulator may stand between this machine and AWS (check AWS_ENDPOINT_URL and the region)".to_string()),
        ),
        _ => (DisplayErrorContext(&err).to_string(), None),
    };
    let mut f = Failure::failed(format!("{operation} failed: {detail}"));
    if let Some(h) = hint {
        f = f.hint(h);
    }
    f.into()
}

/// AWS's error code and message. When the SDK could not read them (an emulator's or a
/// proxy's error body in another shape), they are taken from the body's `<Code>`/`<Message>`
/// (XML) or `__type`/`code`/`message` (JSON), else named by the HTTP status: never empty.
pub fn service_error_code<E: ProvideErrorMetadata>(e: &E, raw: &HttpResponse) -> (String, String) {
    if let Some(code) = e.code() {
        return (
            code.to_string(),
            e.message().unwrap_or("(no message)").to_string(),
        );
    }
    let status = raw.status().as_u16();
    let body = raw
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned())
        .unwrap_or_default();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find("</")? + start;
        Some(body[start..end].trim().to_string())
    };
    let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(|s| s.rsplit('#').next().unwrap_or(s).to_string())
    };
    let code = tag("Code")
        .or_else(|| field("__type"))
        .or_else(|| field("code"))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = tag("Message")
        .or_else(|| field("message"))
        .or_else(|| field("Message"))
        .unwrap_or_else(|| format!("HTTP {status} with no error message in the response"));
    (code, message)
}

/// Whether an SDK error is throttling (worth waiting out in a watch loop).
pub fn is_throttling<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err, SdkError::ServiceError(se) if matches!(se.err().code(), Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException")))
}

/// Errors worth waiting out (after the SDK's own retries): throttling, a 5xx answer or a
/// server-side error code, a timeout, a connection that failed or broke mid-response.
pub fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(se) => {
            is_throttling(err)
                || se.raw().status().is_server_error()
                || matches!(
                    se.err().code(),
                    Some(
                        "ServerException"
                            | "InternalFailure"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "ServiceUnavailableException"
                            | "RequestTimeout"
                            | "RequestTimeoutException"
                    )
                )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}
