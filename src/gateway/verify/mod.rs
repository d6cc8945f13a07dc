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

use crate::cli::VerifyArgs;
use crate::config::GatewaySection;
use crate::exit::Code;
use crate::gateway::{fmt_duration, redact, verify_deadline};
use crate::outside::Outside;
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

/// Characters of a check's evidence shown with `-v`.
const EVIDENCE_CAP: usize = 2000;

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

/// Runs every check; never panics; every step is time-bounded and the whole run has a hard
/// deadline ([`crate::gateway::verify_deadline`]). An interrupt (Ctrl-C, SIGTERM) stops it too.
/// The result has one check per name in [`NAMES`], in that order: those not run are skipped
/// (interrupted) or failed (the deadline passed, an internal error).
pub async fn verify(settings: &VerifySettings, ui: &Ui) -> Vec<Check> {
    let out = Mutex::new(Vec::new());
    let sink = Sink { ui, out: &out };
    let deadline = verify_deadline(settings);
    let run = std::panic::AssertUnwindSafe(run_all(settings, &sink)).catch_unwind();
    let stopped = tokio::select! {
        outcome = tokio::time::timeout(deadline, run) => match outcome {
            Ok(Ok(())) => None,
            Ok(Err(p)) => Some((CheckStatus::Fail, format!("not run: internal error: {}", panic_message(p.as_ref())))),
            Err(_) => Some((CheckStatus::Fail, format!(
                "not run: verify's deadline of {} passed (the server answered too slowly)",
                fmt_duration(deadline)
            ))),
        },
        () = ui.interrupted() => Some((CheckStatus::Skip, "not run: interrupted".to_string())),
    };
    let mut got = out.into_inner().unwrap_or_else(|e| e.into_inner());
    NAMES
        .iter()
        .map(|name| {
            let c = match got.iter().position(|c| c.name == *name) {
                Some(i) => got.remove(i),
                None => match &stopped {
                    Some((status, why)) => Check::new(name, *status, Duration::ZERO, why.clone()),
                    None => Check::new(name, CheckStatus::Skip, Duration::ZERO, "not run"),
                },
            };
            redact(c)
        })
        .collect()
}

/// `verify` without `--connections`: the checks, then text or JSON, and last the reports
/// (annotations, JUnit, the GitHub step summary). Exit 1 when a check fails, 130 when
/// interrupted. `gw` only says where the token came from.
pub async fn run(
    args: &VerifyArgs,
    settings: &VerifySettings,
    gw: &GatewaySection,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let _wrap_up = ui.wrap_up_on_interrupt();
    let url = settings.shown_url();
    ui.line(format!(
        "Verifying the gateway at {url} (namespace {}, token {}; deadline {})",
        settings.namespace,
        settings.token_source(gw),
        fmt_duration(verify_deadline(settings))
    ));
    let started = Instant::now();
    let checks = verify(settings, ui).await;
    let elapsed = started.elapsed();
    let status = report::worst(&checks);
    let mut summary = report::summary(&checks);
    if ui.is_interrupted() {
        summary = format!("interrupted; {summary}");
    }

    for c in &checks {
        ui.out(c.line());
        if ui.verbose > 0 && !c.evidence.is_null() {
            let evidence = Outside::new(&c.evidence.to_string()).shown(EVIDENCE_CAP);
            ui.out(format!("{:>24}{evidence}", ""));
        }
    }
    ui.out(format!("verify {url}: {summary}"));
    let payload = serde_json::json!({
        "url": url,
        "result": status,
        "duration_ms": elapsed.as_millis() as u64,
        "checks": checks,
    });
    let error = (status == CheckStatus::Fail || ui.is_interrupted())
        .then(|| anyhow::anyhow!("verify {url}: {summary}"));
    let step = Step::new("verify", status, elapsed, summary).with_checks(checks);
    // Reports first: a report that cannot be written is a warning the document carries.
    report::publish(
        ui,
        "bosar-deploy verify",
        std::slice::from_ref(&step),
        args.junit.as_deref(),
    );
    let code = if ui.is_interrupted() {
        Code::Interrupted
    } else if status == CheckStatus::Fail {
        Code::Failed
    } else {
        Code::Success
    };
    ui.emit("verify", &payload, code, error.as_ref());
    Ok(code)
}
