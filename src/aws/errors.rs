//! SDK errors as sentences: what failed, why (AWS's code and message, or the transport cause:
//! connection refused, DNS, TLS, timeout, with the endpoint and whether it came from
//! `AWS_ENDPOINT_URL`), and what to do. Never a `Debug` dump, never an empty message. Also
//! which errors are transient (waited out by the watch loop).

use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::exit::Failure;

/// An SDK error as a `Failure` (exit 1) naming the operation, the cause and what to do.
pub fn sdk_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (detail, hint) = match &err {
        SdkError::ServiceError(se) => {
            let (code, msg) = service_error_code(se.err(), se.raw());
            let hint = service_hint(operation, &code, se.raw().status().as_u16());
            (format!("{code}: {msg}"), hint)
        }
        SdkError::TimeoutError(_) => (
            format!("no answer from {} in time", endpoint_note()),
            Some(network_hint()),
        ),
        SdkError::DispatchFailure(df) => {
            let cause = match df.as_connector_error() {
                Some(ce) if ce.is_timeout() => "the connection timed out".to_string(),
                Some(ce) => transport_cause(ce),
                None => transport_cause(&err),
            };
            // A reset can come after the request went out: not "could not connect".
            let detail = if cause == "the connection was reset" {
                format!(
                    "the connection to {} was reset (the request may have reached AWS)",
                    endpoint_note()
                )
            } else {
                format!("could not connect to {}: {cause}", endpoint_note())
            };
            (detail, Some(transport_hint(&cause)))
        }
        SdkError::ResponseError(re) => (
            format!(
                "HTTP {} with a body that is not a {operation} answer",
                re.raw().status().as_u16()
            ),
            Some(format!(
                "a proxy or an emulator may stand between this machine and AWS: {}",
                network_hint()
            )),
        ),
        SdkError::ConstructionFailure(_) => (
            format!("the request could not be built: {}", transport_cause(&err)),
            Some("check the region and the values in deploy.toml".to_string()),
        ),
        _ => (transport_cause(&err), None),
    };
    let mut f = Failure::failed(format!("{operation} failed: {detail}"));
    if let Some(h) = hint {
        f = f.hint(h);
    }
    f.into()
}

fn service_hint(operation: &str, code: &str, status: u16) -> Option<String> {
    Some(match code {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => format!(
            "the credentials in use lack permission for {operation}; the IAM policy in docs/ci.md lists every action bosar-deploy calls"
        ),
        "ExpiredToken" | "ExpiredTokenException" | "UnrecognizedClientException"
        | "InvalidClientTokenId" | "InvalidSignatureException" => {
            "the AWS credentials are invalid or expired; log in again (`aws sso login`)".to_string()
        }
        "Throttling" | "ThrottlingException" => {
            "AWS throttled the call; try again in a moment".to_string()
        }
        _ if status >= 500 => format!(
            "AWS answered {operation} with a server error; if it persists, check the region (--region, [aws] region) and {}",
            endpoint_note()
        ),
        _ => return None,
    })
}

/// Where calls go: the override and the variable it came from, or AWS itself.
pub fn endpoint_note() -> String {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        if !url.is_empty() {
            return format!("{url} (from AWS_ENDPOINT_URL)");
        }
    }
    let per_service: Vec<String> = std::env::vars()
        .filter(|(k, v)| k.starts_with("AWS_ENDPOINT_URL_") && !v.is_empty())
        .map(|(k, v)| format!("{v} (from {k})"))
        .collect();
    if per_service.is_empty() {
        "the AWS endpoint".to_string()
    } else {
        format!("the AWS endpoint or {}", per_service.join(", "))
    }
}

fn overridden() -> bool {
    std::env::vars().any(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && !v.is_empty())
}

fn network_hint() -> String {
    if overridden() {
        "check that the endpoint in AWS_ENDPOINT_URL is up, or unset it to reach AWS".to_string()
    } else {
        "check network access to AWS from this machine (a proxy needs HTTPS_PROXY)".to_string()
    }
}

fn transport_hint(cause: &str) -> String {
    if cause.starts_with("connection refused") {
        if overridden() {
            "nothing listens at the endpoint in AWS_ENDPOINT_URL: start it, or unset the variable to reach AWS".to_string()
        } else {
            network_hint()
        }
    } else if cause.starts_with("the host name does not resolve") {
        "check the region (--region, [aws] region) and this machine's DNS".to_string()
    } else if cause.starts_with("TLS") {
        "the endpoint's certificate is not trusted here: check the system CA store or SSL_CERT_FILE (a TLS-intercepting proxy needs its CA installed)".to_string()
    } else {
        network_hint()
    }
}

/// The innermost useful cause of a transport error, as a short phrase.
fn transport_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::TimedOut => return "the connection timed out".into(),
                std::io::ErrorKind::ConnectionReset => return "the connection was reset".into(),
                _ => {}
            }
        }
        messages.push(err.to_string());
        cur = err.source();
    }
    let all = messages.join(": ").to_ascii_lowercase();
    if all.contains("connection refused") {
        "connection refused".into()
    } else if all.contains("dns error") || all.contains("failed to lookup address") {
        "the host name does not resolve (DNS)".into()
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        format!(
            "TLS failed: {}",
            messages.last().cloned().unwrap_or_default()
        )
    } else {
        // The deepest message is the cause; the outer ones repeat it with wrappers.
        messages
            .iter()
            .rev()
            .find(|m| !m.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| "unknown transport error".into())
    }
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
        Some(body[start..end].trim().to_string()).filter(|s| !s.is_empty())
    };
    let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(|s| s.rsplit('#').next().unwrap_or(s).to_string())
            .filter(|s| !s.is_empty())
    };
    let code = tag("Code")
        .or_else(|| field("__type"))
        .or_else(|| field("code"))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = tag("Message")
        .or_else(|| field("message"))
        .or_else(|| field("Message"))
        .unwrap_or_else(|| "AWS sent no error code or message".to_string());
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
