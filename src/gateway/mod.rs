//! The Socket.IO gateway client, the checks of `verify` and the load probe.
//!
//! The base, which imports nothing of `verify` or `probe`: `codec` is the pure Engine.IO v4 /
//! Socket.IO v5 wire format. `polling` (HTTP long-polling over reqwest, with a cookie jar that
//! keeps each cookie's attributes) and `ws` (tokio-tungstenite, carrying the same cookies) are
//! the transports; `session` is one Engine.IO session over either, answering pings and acking
//! the heartbeat as they arrive. `token` mints the HS256 JWT; `upgrade` is a lean websocket
//! upgrade and `stats` pure arithmetic (percentiles, budgets), both for the probe. `error` says
//! why a network step failed; `settings` is what to verify ([`VerifySettings`]) and the time
//! bounds derived from it ([`request_timeout`], [`slack`]). This file holds the limits and
//! helpers both siblings share: [`BODY_LIMIT`], [`fmt_duration`], `snippet` (server text for a
//! message, through [`crate::outside`]), [`instance_of`], `redact`.
//!
//! Two siblings on the base, which import only the base and never each other: `verify`, the
//! nine checks of a single run (one file per check family), and `probe`, `verify
//! --connections N`, the load probe. Which one runs is chosen above both, in
//! `crate::verify_cmd`; a unit test here keeps that rule.
//!
//! Every network step has a time bound and every response a size bound, so a hostile server
//! gives a failed check, never a hang.

use std::time::Duration;

use serde_json::Value;

use crate::outside::{self, Outside};
use crate::report::Check;

pub mod codec;
pub mod codec_v3;
mod error;
pub mod histogram;
pub mod polling;
pub mod probe;
pub mod reconnect_rules;
pub mod session;
mod settings;
pub mod stats;
pub mod token;
pub mod upgrade;
pub mod verify;
pub mod ws;

pub(crate) use error::error_chain;
pub use error::Error;
pub use settings::{
    request_timeout, shown_url, slack, verify_deadline, VerifySettings, MIN_TOKEN_LEN,
};

/// Largest response body (polling payload, health JSON) or websocket message accepted.
/// Engine.IO's default maxPayload is 1,000,000 bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// `1.5 s`, `250 ms`, `2 min`: short human durations for messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        let s = ms as f64 / 1000.0;
        if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{s:.1} s")
        }
    } else if ms < 2 * 3_600_000 {
        format!("{} min", ms / 60_000)
    } else if ms < 2 * 86_400_000 {
        format!("{} h", ms / 3_600_000)
    } else {
        format!("{} d", ms / 86_400_000)
    }
}

/// Text from a server for a message: redacted whole, then escaped and cut to `max` characters
/// (see [`Outside`]).
pub(crate) fn snippet(bytes: &[u8], max: usize) -> String {
    Outside::from_bytes(bytes).shown(max)
}

/// [`snippet`] in double quotes.
pub(crate) fn quoted(bytes: &[u8], max: usize) -> String {
    Outside::from_bytes(bytes).quoted(max)
}

/// The instance id in a health body or heartbeat payload.
pub fn instance_of(v: &Value) -> Option<Outside> {
    ["instanceId", "instance_id", "instance"]
        .iter()
        .find_map(|k| match v.get(*k)? {
            Value::String(s) if !s.is_empty() => Some(Outside::new(s)),
            Value::Number(n) => Some(Outside::new(&n.to_string())),
            _ => None,
        })
}

/// A value a server sent, for evidence: numbers, booleans and null as they are; anything else
/// as outside text (bounded, redacted).
pub(crate) fn bounded(v: Option<&Value>) -> Value {
    match v {
        None => Value::Null,
        Some(v @ (Value::Null | Value::Bool(_) | Value::Number(_))) => v.clone(),
        Some(Value::String(s)) => serde_json::to_value(Outside::new(s)).unwrap_or_default(),
        Some(other) => serde_json::to_value(Outside::new(&other.to_string())).unwrap_or_default(),
    }
}

/// Whatever a server echoed, no secret leaves in a check: its message and evidence are
/// redacted again (outside text already was, when it arrived).
pub(crate) fn redact(mut c: Check) -> Check {
    c.message = outside::redact(&c.message).into_owned();
    if !c.evidence.is_null() {
        let text = c.evidence.to_string();
        if let std::borrow::Cow::Owned(clean) = outside::redact(&text) {
            c.evidence = serde_json::from_str(&clean).unwrap_or(Value::Null);
        }
    }
    c
}

/// `-vv`: one line per gateway request: method, path and query, status, time. The URL's user
/// info is dropped; no header or body is logged, so neither the token nor a cookie value is.
pub(crate) fn log_request(
    method: &str,
    url: &url::Url,
    result: &Result<polling::Reply, Error>,
    started: std::time::Instant,
) {
    if !crate::ui::log_enabled(2) {
        return;
    }
    let status = match result {
        Ok(r) => format!("HTTP {}", r.status),
        Err(e) => e.to_string(),
    };
    log_line(method, url, &status, started);
}

pub(crate) fn log_line(method: &str, url: &url::Url, status: &str, started: std::time::Instant) {
    if !crate::ui::log_enabled(2) {
        return;
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    crate::ui::log_line(&format!(
        "gateway: {method} {path} {status} in {} ms",
        started.elapsed().as_millis()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CheckStatus;

    /// The first code line (comments aside) of `src` that names the module `name`: in a path
    /// (`name::`, `::name`) or as a word in a `use` declaration, which may span lines.
    fn names_module(src: &str, name: &str) -> Option<String> {
        let is_word = |text: &str| {
            text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == name)
        };
        let mut in_use = false;
        for line in src.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            in_use = in_use
                || line.starts_with("use ")
                || (line.starts_with("pub") && line.contains(" use "));
            let path = line.contains(&format!("{name}::")) || line.contains(&format!("::{name}"));
            if path || (in_use && is_word(line)) {
                return Some(line.to_string());
            }
            if line.contains(';') {
                in_use = false;
            }
        }
        None
    }

    /// The layout's rule: `verify/` and `probe/` import only the base, never each other, and
    /// the base imports neither (the caller above both, `crate::verify_cmd`, chooses).
    #[test]
    fn verify_and_probe_import_only_the_base() {
        let verify = [
            ("verify/mod.rs", include_str!("verify/mod.rs")),
            ("verify/runner.rs", include_str!("verify/runner.rs")),
            ("verify/health.rs", include_str!("verify/health.rs")),
            ("verify/handshake.rs", include_str!("verify/handshake.rs")),
            ("verify/cookies.rs", include_str!("verify/cookies.rs")),
            ("verify/stickiness.rs", include_str!("verify/stickiness.rs")),
            ("verify/auth.rs", include_str!("verify/auth.rs")),
            ("verify/heartbeat.rs", include_str!("verify/heartbeat.rs")),
            ("verify/targets.rs", include_str!("verify/targets.rs")),
            ("verify/fleet.rs", include_str!("verify/fleet.rs")),
            ("verify/table.rs", include_str!("verify/table.rs")),
            ("verify/eio3.rs", include_str!("verify/eio3.rs")),
            ("verify/cors.rs", include_str!("verify/cors.rs")),
        ];
        let probe = [
            ("probe/mod.rs", include_str!("probe/mod.rs")),
            ("probe/drive.rs", include_str!("probe/drive.rs")),
            ("probe/session.rs", include_str!("probe/session.rs")),
            ("probe/shared.rs", include_str!("probe/shared.rs")),
            ("probe/report.rs", include_str!("probe/report.rs")),
            ("probe/verdicts.rs", include_str!("probe/verdicts.rs")),
            ("probe/limits.rs", include_str!("probe/limits.rs")),
            ("probe/backoff.rs", include_str!("probe/backoff.rs")),
            ("probe/timeline.rs", include_str!("probe/timeline.rs")),
            ("probe/reconnect.rs", include_str!("probe/reconnect.rs")),
            (
                "probe/disruption/mod.rs",
                include_str!("probe/disruption/mod.rs"),
            ),
            (
                "probe/disruption/verdicts.rs",
                include_str!("probe/disruption/verdicts.rs"),
            ),
            ("probe/load.rs", include_str!("probe/load.rs")),
            ("probe/spawn.rs", include_str!("probe/spawn.rs")),
        ];
        let base = [
            ("error.rs", include_str!("error.rs")),
            ("settings.rs", include_str!("settings.rs")),
            ("codec.rs", include_str!("codec.rs")),
            ("codec_v3.rs", include_str!("codec_v3.rs")),
            ("polling.rs", include_str!("polling.rs")),
            ("ws.rs", include_str!("ws.rs")),
            ("session.rs", include_str!("session.rs")),
            ("token.rs", include_str!("token.rs")),
            ("upgrade.rs", include_str!("upgrade.rs")),
            ("stats.rs", include_str!("stats.rs")),
            ("reconnect_rules.rs", include_str!("reconnect_rules.rs")),
        ];
        let rules = [
            (&verify[..], &["probe", "verify_cmd"][..]),
            (&probe[..], &["verify", "verify_cmd"][..]),
            (&base[..], &["verify", "probe", "verify_cmd"][..]),
        ];
        for (files, forbidden) in rules {
            for (file, src) in files {
                for name in forbidden {
                    if let Some(line) = names_module(src, name) {
                        panic!("gateway/{file} names `{name}`: {line}");
                    }
                }
            }
        }
        // The rule catches what it is meant to, and not the words in messages.
        assert!(names_module("use super::{\n    probe,\n    codec,\n};", "probe").is_some());
        assert!(names_module("let x = crate::gateway::probe::run;", "probe").is_some());
        assert!(names_module("// see probe::run\nlet s = \"2probe\";", "probe").is_none());
        assert!(names_module("use super::codec;\nlet v = \"verify\";", "verify").is_none());
    }

    #[test]
    fn redaction() {
        let _t = token::Secret::new("tok.en.value.0123456789");
        let c = Check::new(
            "auth",
            CheckStatus::Fail,
            Duration::ZERO,
            "server said tok.en.value.0123456789",
        )
        .with_evidence(serde_json::json!({"echo": "x tok.en.value.0123456789 y"}));
        let c = redact(c);
        assert_eq!(c.message, "server said ***");
        assert_eq!(c.evidence["echo"], "x *** y");
        // Server text is redacted before it is cut: no prefix of the token survives.
        let echoed = format!("{}tok.en.value.0123456789", "a".repeat(70));
        assert_eq!(
            snippet(echoed.as_bytes(), 80),
            format!("{}***", "a".repeat(70))
        );
    }
}
