//! `health`: `GET health_path` answers 200 with a JSON body; the instance id it names, if any,
//! lets the stickiness check see which target answered.

use std::time::Instant;

use serde_json::{json, Value};

use super::{check, ms};
use crate::gateway::polling::Polling;
use crate::gateway::{fmt_duration, instance_of, quoted, snippet, Error};
use crate::outside::Outside;
use crate::report::{Check, CheckStatus};

pub(super) async fn health(http: &Polling, path: &str) -> (Check, Option<Outside>) {
    let started = Instant::now();
    let fail = |msg: String| (check("health", CheckStatus::Fail, started, msg), None);
    let url = match http.url(path) {
        Ok(u) => u,
        Err(e) => return fail(e.to_string()),
    };
    let r = match http.get(url, http.request_timeout).await {
        Ok(r) => r,
        Err(Error::Timeout { after, .. }) => {
            return fail(format!(
                "GET {path}: no answer within {}",
                fmt_duration(after)
            ))
        }
        Err(e) => return fail(format!("GET {path}: {e}")),
    };
    if r.status != 200 {
        return fail(format!(
            "GET {path} answered HTTP {}: {}",
            r.status,
            snippet(&r.body, 160)
        ));
    }
    if !r.content_type.to_ascii_lowercase().contains("json") {
        return fail(format!(
            "GET {path}: content type {}, expected application/json",
            if r.content_type.is_empty() {
                "\"(none)\"".to_string()
            } else {
                Outside::new(&r.content_type).quoted(80)
            }
        ));
    }
    let body: Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => {
            return fail(format!(
                "GET {path}: the body is not valid JSON: {} (got {})",
                Outside::new(&e.to_string()),
                quoted(&r.body, 60)
            ))
        }
    };
    let instance = instance_of(&body);
    let mut evidence = json!({"status": r.status, "content_type": Outside::new(&r.content_type)});
    if let Some(i) = &instance {
        evidence["instanceId"] = json!(i);
    }
    if r.body.len() <= 2048 {
        evidence["body"] = body;
    }
    let msg = match &instance {
        Some(i) => format!("GET {path}: 200 JSON in {} ms, instance {i}", ms(r.elapsed)),
        None => format!(
            "GET {path}: 200 JSON in {} ms (no instance id in the body)",
            ms(r.elapsed)
        ),
    };
    (
        check("health", CheckStatus::Pass, started, msg).with_evidence(evidence),
        instance,
    )
}
