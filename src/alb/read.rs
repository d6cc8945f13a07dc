//! Read calls whose answer must be whole before anything is planned from it: sent again when
//! the error is transient, and an ELB answer cut short is an error (the SDK's XML reader
//! takes a body that stops after some `<member>`s for a complete list, which would plan a
//! phantom change).

use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::aws::{is_transient, sdk_error};

/// Pause before a read is sent again (doubled for the third).
const READ_RETRY: Duration = Duration::from_secs(1);
/// Sends of a read call in all.
const READ_SENDS: u32 = 3;

/// A read call, sent again (1 s, then 2 s later) when its error is transient: a throttled,
/// failed or unreadable answer is never taken for the state.
pub(crate) async fn read_with_retry<T, E, F, Fut>(operation: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let mut wait = READ_RETRY;
    let mut sent = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if sent < READ_SENDS && is_transient(&e) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                sent += 1;
            }
            Err(e) => return Err(sdk_error(operation, e)),
        }
    }
}

/// Refuses a successful ELB (XML) answer whose body does not end with its root element's
/// closing tag, named here (`DescribeTargetGroupAttributesResponse`): the answer is then an
/// error of the call (transient, so read again), never a shorter list.
#[derive(Debug)]
pub(crate) struct CompleteAnswer(pub &'static str);

impl Intercept for CompleteAnswer {
    fn name(&self) -> &'static str {
        "CompleteAnswer"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        if !response.status().is_success() || context.output_or_error().is_err() {
            return Ok(());
        }
        let Some(body) = response.body().bytes() else {
            return Ok(());
        };
        let end = format!("</{}>", self.0);
        if String::from_utf8_lossy(body).trim_end().ends_with(&end) {
            Ok(())
        } else {
            Err(format!("the answer was cut short: it does not end with {end}").into())
        }
    }
}
