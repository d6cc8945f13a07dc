//! `-vv`: one line per AWS call (service, operation, HTTP status, duration, request id,
//! attempts); `-vvv` adds a line per failed attempt. An SDK interceptor on every client, so no
//! call site can forget it. Never logs a request or response body.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::ui;

/// Verbosity at which each call is logged.
const CALLS: u8 = 2;
/// Verbosity at which each failed attempt is logged.
const ATTEMPTS: u8 = 3;

#[derive(Debug, Clone)]
struct CallState {
    started: Instant,
    attempts: u32,
}

impl Storable for CallState {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Default)]
pub struct CallLog;

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| format!("{} {}", m.service(), m.name()))
        .unwrap_or_else(|| "AWS call".into())
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "bosar-deploy call log"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if ui::log_enabled(CALLS) {
            cfg.interceptor_state().store_put(CallState {
                started: Instant::now(),
                attempts: 0,
            });
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(state) = cfg.load::<CallState>().cloned() {
            cfg.interceptor_state().store_put(CallState {
                attempts: state.attempts + 1,
                ..state
            });
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let failed = ctx.output_or_error().is_some_and(|r| r.is_err());
        if failed && ui::log_enabled(ATTEMPTS) {
            let status = ctx
                .response()
                .map(|r| format!("HTTP {}", r.status().as_u16()))
                .unwrap_or_else(|| "no response".into());
            let attempt = cfg.load::<CallState>().map(|s| s.attempts).unwrap_or(0);
            ui::log_line(&format!(
                "aws: {} attempt {attempt} failed ({status})",
                operation(cfg)
            ));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(state) = cfg.load::<CallState>() else {
            return Ok(());
        };
        let resp = ctx.response();
        let status = resp
            .map(|r| format!("HTTP {}", r.status().as_u16()))
            .unwrap_or_else(|| "no response".into());
        let request_id = resp
            .and_then(|r| {
                ["x-amzn-requestid", "x-amz-request-id", "x-amzn-request-id"]
                    .iter()
                    .find_map(|h| r.headers().get(*h))
            })
            .map(|id| format!(", request id {}", id.chars().take(64).collect::<String>()))
            .unwrap_or_default();
        let retries = match state.attempts {
            0 | 1 => String::new(),
            n => format!(", {} retries", n - 1),
        };
        ui::log_line(&format!(
            "aws: {} {status} in {} ms{request_id}{retries}",
            operation(cfg),
            state.started.elapsed().as_millis()
        ));
        Ok(())
    }
}
