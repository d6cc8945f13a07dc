//! `bosar-deploy verify`: proves from outside that the deployed gateway works, on every
//! healthy target behind the load balancer. Nine checks per target, in the order they are
//! reported ([`NAMES`]): health, handshake, cookies, stickiness, auth, upgrade, heartbeat, ping,
//! disconnect; before them `targets`, whether every healthy target was reached; after them the
//! checks the config asks for ([`OPTIONAL`]): `eio3` (`[gateway] eio3`: socket.io 2.x
//! clients) and `cors` (`[gateway] origins`: browsers on the web app's origins).
//!
//! `targets` finds the targets from outside (health GETs with fresh cookie jars, bounded) and
//! keeps each one's stickiness cookie; the checks then run on every target at once, each
//! pinned by its cookie, and `fleet` merges them into "n of m targets" verdicts naming the
//! targets that failed; `table` shapes the per-target table.
//!
//! `runner` runs one target's checks: one main session carries the story a browser lives
//! through (handshake over polling with the load balancer's cookies, polling round trips,
//! upgrade to websocket, joining the namespace with the token, heartbeats and pings,
//! disconnect). Side sessions do the controls: one without cookies (stickiness) and three
//! websocket-only ones (auth with the token, without, forged), which need no stickiness and so
//! test auth apart from it. One file per check family (`health`, `handshake`, `cookies`,
//! `stickiness`, `auth`, `heartbeat` with ping); upgrade and disconnect are single session
//! calls, in `runner`. The decisions are pure functions ([`stickiness_verdict`],
//! [`cookies_verdict`], [`auth_verdict`], [`merge`], [`targets_verdict`], …) with their unit
//! tests beside them; the I/O only gathers facts.
//!
//! This module imports the gateway base, never the load probe (`verify --connections` is
//! chosen by the caller, `crate::verify_cmd`). Here are [`verify`] (one target's checks,
//! ordered, redacted, panic-proof), [`verify_targets`] (every target's) and [`run`] (its
//! output: text, JSON, JUnit, exit code).

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
mod cors;
mod eio3;
mod fleet;
mod handshake;
mod health;
mod heartbeat;
mod recovery;
mod revisions;
mod runner;
mod stickiness;
mod table;
mod targets;

pub use crate::gateway::token::Secret;
pub use crate::gateway::VerifySettings;
pub use auth::{auth_verdict, AuthTry};
pub use cookies::{cookies_verdict, AlbCookies, CookieFacts};
pub use cors::{cors_verdict, site_of, Allow, OriginFacts};
pub use eio3::{eio3_verdict, Eio3Facts, V3Open};
pub use fleet::{merge, targets_verdict, TargetRun};
pub use recovery::{recovery_verdict, RecoveryFacts};
pub use revisions::{by_revision, verify_revisions, Blue, Previous};
pub use runner::{run_all, status_word, Sink};
pub use stickiness::{stickiness_verdict, Control, Rounds};
pub use table::FleetReport;
pub use targets::{attempts_for, Expected, Search, SEARCH_TIME};

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

/// Runs every check on one target (the one the load balancer picks for an empty cookie jar);
/// never panics; every step is time-bounded and the whole run has a hard deadline
/// ([`crate::gateway::verify_deadline`]). An interrupt (Ctrl-C, SIGTERM) stops it too. The
/// result has one check per name in [`NAMES`], in that order: those not run are skipped
/// (interrupted) or failed (the deadline passed, an internal error).
pub async fn verify(settings: &VerifySettings, ui: &Ui) -> Vec<Check> {
    let one = [(None, crate::gateway::polling::new_jar())];
    let deadline = verify_deadline(settings);
    run_targets(settings, &one, 0, deadline, ui)
        .await
        .pop()
        .unwrap_or_default()
}

/// Every check on every target ([`fleet`]): first the search for the targets through the load
/// balancer ([`targets::search`], bounded), then the checks on each, in parallel, each pinned
/// by its target's cookie, so the wall time is that of one target. No target found: the
/// checks run once with an empty jar and say why they fail.
pub async fn verify_targets(settings: &VerifySettings, expected: Expected, ui: &Ui) -> FleetReport {
    let request = crate::gateway::request_timeout(settings);
    let mut search = match url::Url::parse(&settings.url) {
        Ok(base) => {
            ui.line(format!(
                "verify: reaching {} through the load balancer, a fresh cookie jar per GET {} (at most {} GETs, {})",
                match expected.count {
                    Some(n) => format!("each of the {n} healthy targets ({})", expected.source),
                    None => "the targets".to_string(),
                },
                settings.health_path,
                targets::attempts_for(expected.count),
                fmt_duration(targets::SEARCH_TIME)
            ));
            tokio::select! {
                s = targets::search(&base, request, &settings.health_path, expected.count) => s,
                () = ui.interrupted() => Search::default(),
            }
        }
        Err(_) => Search::default(),
    };
    // In the order of their ids, so that runs print alike.
    search
        .found
        .sort_by_key(|f| f.instance.as_ref().map(|i| i.shown(200)));
    let labels: Vec<String> = search
        .found
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.instance {
            Some(id) => id.shown(60),
            None => format!("target {}", i + 1),
        })
        .collect();
    let mut pinned: Vec<(Option<&str>, crate::gateway::polling::Jar)> = labels
        .iter()
        .zip(&search.found)
        .map(|(l, f)| (Some(l.as_str()), f.jar.clone()))
        .collect();
    if pinned.is_empty() {
        pinned.push((None, crate::gateway::polling::new_jar()));
    }
    let spread = search.found.len();
    let all = run_targets(settings, &pinned, spread, verify_deadline(settings), ui).await;
    let runs: Vec<TargetRun> = all
        .into_iter()
        .enumerate()
        .map(|(i, checks)| {
            let found = search.found.get(i);
            let instance = found
                .and_then(|f| f.instance.clone())
                .or_else(|| heartbeat_instance(&checks));
            let label = match (found.and_then(|f| f.instance.as_ref()), &instance) {
                (Some(_), _) => labels[i].clone(),
                (None, Some(hb)) => hb.shown(60),
                (None, None) if found.is_some() => labels[i].clone(),
                (None, None) => "the URL (no target answered the search)".to_string(),
            };
            TargetRun {
                label,
                instance,
                checks,
            }
        })
        .collect();
    FleetReport::new(expected, search, runs)
}

/// The instance id a heartbeat named, from the check's evidence.
fn heartbeat_instance(checks: &[Check]) -> Option<Outside> {
    let c = checks.iter().find(|c| c.name == "heartbeat")?;
    c.evidence
        .get("instanceId")
        .and_then(|v| v.as_str())
        .map(Outside::new)
}

/// The checks on each `(label, jar)` at once, within `deadline`; per target, one check per
/// name in [`NAMES`], in that order, redacted. `spread`: the targets the search reached
/// without cookies (see [`run_all`]).
async fn run_targets(
    settings: &VerifySettings,
    targets: &[(Option<&str>, crate::gateway::polling::Jar)],
    spread: usize,
    deadline: Duration,
    ui: &Ui,
) -> Vec<Vec<Check>> {
    let outs: Vec<Mutex<Vec<Check>>> = targets.iter().map(|_| Mutex::new(Vec::new())).collect();
    let sinks: Vec<Sink> = targets
        .iter()
        .zip(&outs)
        .map(|((label, _), out)| Sink {
            ui,
            out,
            target: *label,
        })
        .collect();
    let n = targets.len();
    let runs = sinks
        .iter()
        .zip(targets)
        .enumerate()
        .map(|(i, (sink, (_, jar)))| {
            // The recovery check's other task: the next target found, when there are two.
            let other = (n >= 2).then(|| targets[(i + 1) % n].1.clone());
            std::panic::AssertUnwindSafe(run_all(settings, sink, jar.clone(), spread, other))
                .catch_unwind()
        });
    let all = futures_util::future::join_all(runs);
    let stopped = tokio::select! {
        outcome = tokio::time::timeout(deadline, all) => match outcome {
            Ok(results) => results.into_iter().find_map(|r| r.err()).map(|p| {
                (CheckStatus::Fail, format!("not run: internal error: {}", panic_message(p.as_ref())))
            }),
            Err(_) => Some((CheckStatus::Fail, format!(
                "not run: verify's deadline of {} passed (the server answered too slowly)",
                fmt_duration(deadline)
            ))),
        },
        () = ui.interrupted() => Some((CheckStatus::Skip, "not run: interrupted".to_string())),
    };
    drop(sinks);
    outs.into_iter()
        .map(|out| {
            settle(
                &names(settings),
                out.into_inner().unwrap_or_else(|e| e.into_inner()),
                &stopped,
            )
        })
        .collect()
}

/// Checks run only when the config asks for them, in report order after [`NAMES`].
pub const OPTIONAL: [&str; 3] = ["eio3", "cors", "recovery"];

/// The checks of a run: [`NAMES`], then `eio3` when `[gateway] eio3` is set and `cors` when
/// `[gateway] origins` is.
pub fn names(s: &VerifySettings) -> Vec<&'static str> {
    let mut v = NAMES.to_vec();
    if s.eio3.is_some() {
        v.push("eio3");
    }
    if !s.origins.is_empty() {
        v.push("cors");
    }
    if s.recovery.is_some() {
        v.push("recovery");
    }
    v
}

/// The checks in [`names`] order, those missing filled in as `stopped` says (or skipped).
fn settle(
    names: &[&str],
    mut got: Vec<Check>,
    stopped: &Option<(CheckStatus, String)>,
) -> Vec<Check> {
    names
        .iter()
        .map(|name| {
            let c = match got.iter().position(|c| c.name == *name) {
                Some(i) => got.remove(i),
                None => match stopped {
                    Some((status, why)) => Check::new(name, *status, Duration::ZERO, why.clone()),
                    None => Check::new(name, CheckStatus::Skip, Duration::ZERO, "not run"),
                },
            };
            redact(c)
        })
        .collect()
}

/// `verify` without `--connections`: the checks on every target, then text or JSON, and last
/// the reports (annotations, JUnit with a suite per target, the GitHub step summary). Exit 1
/// when a check fails, 130 when interrupted. `gw` only says where the token came from.
pub async fn run(
    args: &VerifyArgs,
    settings: &VerifySettings,
    gw: &GatewaySection,
    expected: Expected,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let _wrap_up = ui.wrap_up_on_interrupt();
    let url = settings.shown_url();
    ui.line(format!(
        "Verifying the gateway at {url} (namespace {}, token {}; deadline {} after the search for the targets)",
        settings.namespace,
        settings.token_source(gw),
        fmt_duration(verify_deadline(settings))
    ));
    let started = Instant::now();
    let fleet = verify_targets(settings, expected, ui).await;
    let checks = fleet.checks.clone();
    let elapsed = started.elapsed();
    let status = report::worst(&checks);
    let mut summary = format!("{}; {}", report::summary(&checks), fleet.summary());
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
    for line in fleet.lines() {
        ui.out(line);
    }
    ui.out(format!("verify {url}: {summary}"));
    let payload = serde_json::json!({
        "url": url,
        "result": crate::report::result_of_checks(status),
        "duration_ms": elapsed.as_millis() as u64,
        "checks": checks,
        "targets": fleet.table(),
    });
    let error = (status == CheckStatus::Fail || ui.is_interrupted())
        .then(|| anyhow::anyhow!("verify {url}: {summary}"));
    let step = Step::new("verify", status, elapsed, summary).with_checks(checks);
    // Reports first: a report that cannot be written is a warning the document carries.
    report::publish(ui, "bosar-deploy verify", std::slice::from_ref(&step), None);
    if let Some(path) = args.junit.as_deref() {
        let mut steps = vec![step];
        steps.extend(fleet.target_steps());
        match report::write_junit(path, &steps) {
            Ok(()) => ui.detail(format!("JUnit report written to {}", path.display())),
            Err(e) => ui.warn(format!(
                "the JUnit report was not written to {}: {e}",
                path.display()
            )),
        }
    }
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
