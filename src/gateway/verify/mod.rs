//! `bosar-deploy verify`: proves from outside that the deployed gateway works. Nine checks, in
//! the order they are reported ([`NAMES`]): health, handshake, cookies, stickiness, auth,
//! upgrade, heartbeat, ping, disconnect.
//!
//! `runner` runs them: one main session carries the story a browser lives through (handshake
//! over polling with the load balancer's cookies, polling round trips, upgrade to websocket,
//! joining the namespace with the token, heartbeats and pings, disconnect). Side sessions do
//! the controls: one without cookies (stickiness) and three websocket-only ones (auth with the
//! token, without, forged), which need no stickiness and so test auth apart from it. One file
//! per check family (`health`, `handshake`, `cookies`, `stickiness`, `auth`, `heartbeat` with
//! ping); upgrade and disconnect are single session calls, in `runner`. The decisions are pure
//! functions ([`stickiness_verdict`], [`cookies_verdict`], [`auth_verdict`], …) with their unit
//! tests beside them; the I/O only gathers facts.
//!
//! This module is the single check run only: it imports the gateway base, never the load
//! probe (`verify --connections` is chosen by the caller, `crate::verify_cmd`). Here are
//! [`verify`] (every check, ordered, redacted, panic-proof) and [`run`] (its output: text,
//! JSON, JUnit, exit code).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;

use crate::cli::VerifyArgs;
use crate::config::GatewaySection;
use crate::exit::Code;
use crate::gateway::redact;
use crate::report::{self, Check, CheckStatus, Step};
use crate::ui::Ui;

mod auth;
mod cookies;
mod handshake;
mod health;
mod heartbeat;
mod runner;
mod stickiness;

pub use crate::gateway::token::Secret;
pub use crate::gateway::VerifySettings;
pub use auth::{auth_verdict, AuthTry};
pub use cookies::{cookies_verdict, AlbCookies, CookieFacts};
pub use runner::{run_all, status_word, Sink};
pub use stickiness::{stickiness_verdict, Control, Rounds};

/// The checks, in report order.
pub const NAMES: [&str; 9] = [
    "health",
    "handshake",
    "cookies",
    "stickiness",
    "auth",
    "upgrade",
    "heartbeat",
    "ping",
    "disconnect",
];

/// A check whose duration runs from `started` to now.
fn check(name: &str, status: CheckStatus, started: Instant, msg: impl Into<String>) -> Check {
    Check::new(name, status, started.elapsed(), msg)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs every check; never panics; every step is time-bounded. The result has one check per
/// name in [`NAMES`], in that order.
pub async fn verify(settings: &VerifySettings, ui: &Ui) -> Vec<Check> {
    let out = Mutex::new(Vec::new());
    let sink = Sink { ui, out: &out };
    let outcome = std::panic::AssertUnwindSafe(run_all(settings, &sink))
        .catch_unwind()
        .await;
    let internal = outcome.err().map(|p| panic_message(p.as_ref()));
    let mut got = out.into_inner().unwrap_or_else(|e| e.into_inner());
    NAMES
        .iter()
        .map(|name| {
            let c = match got.iter().position(|c| c.name == *name) {
                Some(i) => got.remove(i),
                None => match &internal {
                    Some(m) => Check::new(
                        name,
                        CheckStatus::Fail,
                        Duration::ZERO,
                        format!("not run: internal error: {m}"),
                    ),
                    None => Check::new(name, CheckStatus::Skip, Duration::ZERO, "not run"),
                },
            };
            redact(c, settings.token.as_ref())
        })
        .collect()
}

/// `verify` without `--connections`: the checks, then text or JSON, JUnit and the GitHub step
/// summary. Exit 1 when a check fails. `gw` only says where the token came from.
pub async fn run(
    args: &VerifyArgs,
    settings: &VerifySettings,
    gw: &GatewaySection,
    ui: &Ui,
) -> anyhow::Result<Code> {
    ui.line(format!(
        "Verifying the gateway at {} (namespace {}, token {})",
        settings.url,
        settings.namespace,
        settings.token_source(gw)
    ));
    let started = Instant::now();
    let checks = verify(settings, ui).await;
    let elapsed = started.elapsed();
    let status = report::worst(&checks);
    let summary = report::summary(&checks);

    if ui.json() {
        crate::ui::print_json(&serde_json::json!({
            "command": "verify",
            "url": settings.url,
            "status": status,
            "duration_ms": elapsed.as_millis() as u64,
            "checks": checks,
        }));
    } else {
        for c in &checks {
            println!("{}", c.line());
            if ui.verbose > 0 && !c.evidence.is_null() {
                println!("{:>24}{}", "", c.evidence);
            }
        }
        println!("verify {}: {summary}", settings.url);
    }
    if let Some(path) = &args.junit {
        let step = Step {
            name: "verify".into(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: summary.clone(),
            checks: checks.clone(),
            detail: Value::Null,
        };
        report::write_junit(path, &[step])?;
        ui.detail(format!("JUnit report written to {}", path.display()));
    }
    report::github_step_summary(
        "bosar-deploy verify",
        &[Step {
            name: "verify".into(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: summary,
            checks: checks.clone(),
            detail: Value::Null,
        }],
    );
    Ok(if status == CheckStatus::Fail {
        Code::Failed
    } else {
        Code::Success
    })
}
