//! Transport faults under the SDK's mock layer: an HTTP client for mock clients that, per
//! operation, hangs, breaks the connection after the request went out, or answers late, before
//! the mocked answer (aws-smithy-mocks' own client only returns responses). Time is tokio's,
//! so on the paused clock a hang lasts until a deadline cancels it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_mocks::{mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use bosar_deploy::aws::Aws;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// No answer, ever.
    Hang,
    /// The connection is reset after the request was sent.
    Reset,
    /// The mocked answer, this much later.
    Delay(Duration),
}

/// Faults to inject, per operation name (`RegisterTaskDefinition`, `ModifyTargetGroupAttributes`),
/// in order; an operation with none left gets the mocked answer.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<Queue>>>);

/// An operation's faults still to come.
type Queue = (String, VecDeque<Fault>);

impl Faults {
    pub fn new() -> Faults {
        Faults::default()
    }

    pub fn on(self, operation: &str, faults: &[Fault]) -> Faults {
        self.0
            .lock()
            .unwrap()
            .push((operation.to_string(), faults.iter().copied().collect()));
        self
    }

    fn next(&self, operation: &str) -> Option<Fault> {
        let mut all = self.0.lock().unwrap();
        all.iter_mut()
            .find(|(op, _)| op == operation)
            .and_then(|(_, q)| q.pop_front())
    }

    pub fn client(&self) -> SharedHttpClient {
        SharedHttpClient::new(FaultClient {
            faults: self.clone(),
            inner: aws_smithy_mocks::create_mock_http_client(),
        })
    }
}

/// The operation a request calls: ECS names it in `X-Amz-Target`, ELBv2 as `Action=` in the
/// form body.
fn operation_of(req: &HttpRequest) -> String {
    if let Some(target) = req.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or_default().to_string();
    }
    let body = req
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    body.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or_default()
        .to_string()
}

#[derive(Debug)]
struct FaultClient {
    faults: Faults,
    inner: SharedHttpClient,
}

impl HttpClient for FaultClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultConnector {
            faults: self.faults.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct FaultConnector {
    faults: Faults,
    inner: SharedHttpConnector,
}

impl HttpConnector for FaultConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        match self.faults.next(&operation_of(&request)) {
            None => self.inner.call(request),
            Some(Fault::Hang) => HttpConnectorFuture::new(std::future::pending()),
            Some(Fault::Reset) => HttpConnectorFuture::ready(Err(ConnectorError::io(
                std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
            ))),
            Some(Fault::Delay(d)) => {
                let answer = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    tokio::time::sleep(d).await;
                    answer.await
                })
            }
        }
    }
}

/// An `Aws` over mock clients whose transport injects `faults`, with the tool's retries
/// (standard, 4 attempts) and attempt timeout (20 s).
pub fn aws_with_faults(ecs_rules: &[&Rule], elb_rules: &[&Rule], faults: &Faults) -> Aws {
    use aws_smithy_types::retry::RetryConfig;
    use aws_smithy_types::timeout::TimeoutConfig;
    let timeouts = || {
        TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(20))
            .build()
    };
    let (f1, f2) = (faults.clone(), faults.clone());
    Aws {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules, move |c| c
            .http_client(f1.client())
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .timeout_config(timeouts())),
        elb: mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            elb_rules,
            move |c| c
                .http_client(f2.client())
                .retry_config(RetryConfig::standard().with_max_attempts(4))
                .timeout_config(timeouts())
        ),
        region: "us-east-1".into(),
        identity: None,
        sdk: None,
    }
}

/// The fault-injecting proxy (`fault_proxy.py`) in front of a moto server: `faults` as
/// `OPERATION:FAULT:COUNT` (`reset`: moto acts, the answer is lost; `503`: moto never sees it).
pub struct FaultProxy {
    pub endpoint: String,
    _peer: super::Peer,
}

impl FaultProxy {
    pub fn start(moto: &super::Moto, faults: &[&str]) -> FaultProxy {
        let py = super::require(&super::repo().join(".venv/bin/python"), "the venv's python");
        let port = super::free_port();
        let child = std::process::Command::new(py)
            .arg(super::repo().join("tests/support/fault_proxy.py"))
            .args([port.to_string(), moto.port.to_string()])
            .args(faults)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn fault_proxy.py");
        let peer = super::Peer {
            child,
            name: "fault proxy".into(),
        };
        super::wait_listening(port, "fault_proxy.py", 15);
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            _peer: peer,
        }
    }
}
