//! The run of a probe: the phases (open, hold, close) over the sessions, the live progress, the
//! cookie look-ups on the health endpoint, and the records gathered into the report.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::http::header::COOKIE;
use url::Url;

use super::load::{Controls, Gathered, Opened};
use super::session::Record;
use super::shared::{Phase, Shared};
use super::spawn::spawn_sessions;
use super::{ProbeSettings, CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT};
use crate::gateway::fmt_duration;
use crate::gateway::instance_of;
use crate::gateway::polling::read_body;
use crate::gateway::stats::Budget;
use crate::outside::Outside;
use crate::ui::Ui;

/// Largest health body read by a cookie look-up: the health endpoint answers a small JSON.
const LOOKUP_BODY_LIMIT: usize = 64 * 1024;

/// Asks the health endpoint, with `cookie`, which instance answers. The body is streamed up to
/// [`LOOKUP_BODY_LIMIT`] and the whole look-up is bounded by `timeout`; when it runs out the
/// request is dropped, and its connection with it.
async fn instance_for_cookie(
    client: &reqwest::Client,
    url: &Url,
    cookie: String,
    timeout: Duration,
) -> Option<Outside> {
    let lookup = async {
        let mut resp = client
            .get(url.clone())
            .header(COOKIE.as_str(), cookie)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = read_body(&mut resp, LOOKUP_BODY_LIMIT, "health look-up", timeout)
            .await
            .ok()?;
        let v: Value = serde_json::from_slice(&body).ok()?;
        instance_of(&v)
    };
    tokio::time::timeout(timeout, lookup).await.ok().flatten()
}

/// The live numbers the ticker shows: sessions open now and the handshake rate over the
/// window. Counters are read one at a time, so a later one can be ahead: saturating.
fn live_numbers(opened: u64, dropped: u64, window_start: Option<(u64, f64)>) -> (u64, f64) {
    let alive = opened.saturating_sub(dropped);
    let rate = match window_start {
        Some((o, secs)) if secs > 0.0 => opened.saturating_sub(o) as f64 / secs,
        _ => 0.0,
    };
    (alive, rate)
}

/// Live progress: a bar on a terminal; else a timestamped line once a second when it changed.
pub(super) async fn ticker(
    ui: &Ui,
    sh: &Shared,
    n: u32,
    hold: Duration,
    phase: watch::Receiver<Phase>,
) -> std::convert::Infallible {
    /// Clears the bar when the ticker is dropped (the probe is done) before the report prints.
    struct Clear(indicatif::ProgressBar);
    impl Drop for Clear {
        fn drop(&mut self) {
            self.0.finish_and_clear();
        }
    }
    let bar = Clear(ui.bar(n as u64));
    let bar = &bar.0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_line = String::new();
    let mut last_print = Instant::now();
    let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
    loop {
        tick.tick().await;
        let c = &sh.counters;
        let now = Instant::now();
        let opened = c.opened.load(Relaxed);
        window.push_back((now, opened));
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            window.pop_front();
        }
        let front = window
            .front()
            .filter(|(t, _)| now.duration_since(*t) >= Duration::from_millis(400))
            .map(|(t, o)| (*o, now.duration_since(*t).as_secs_f64()));
        let (alive, rate) = live_numbers(opened, c.dropped.load(Relaxed), front);
        let errors = c.errors();
        let text = match *phase.borrow() {
            Phase::Opening => {
                format!("{opened}/{n} open, {rate:.0} handshakes/s, {errors} error(s)")
            }
            // A hold the caller ends (`--under-load`): a line when something changes.
            Phase::Holding { .. } if hold.is_zero() => format!(
                "holding {} session(s){}",
                alive.saturating_sub(c.reconnecting.load(Relaxed)),
                comeback(c)
            ),
            Phase::Holding { start, .. } => format!(
                "holding {} session(s), {} s of {}, {} heartbeat(s) acked, {errors} error(s){}",
                alive.saturating_sub(c.reconnecting.load(Relaxed)),
                now.duration_since(start).as_secs(),
                fmt_duration(hold),
                c.acks.load(Relaxed),
                comeback(c)
            ),
            Phase::Closing { .. } => format!(
                "closing: {}/{alive} closed, {errors} error(s)",
                c.closed.load(Relaxed) + c.close_failed.load(Relaxed)
            ),
        };
        bar.set_position(opened);
        bar.set_message(text.clone());
        if !ui.interactive
            && now.duration_since(last_print) >= Duration::from_secs(1)
            && text != last_line
        {
            ui.line(format!("probe: {text}"));
            last_line = text;
            last_print = now;
        }
    }
}

/// `, 3 dropped, 2 back, 1 reconnecting` once a session dropped (`--reconnect`).
fn comeback(c: &super::shared::Counters) -> String {
    let drops = c.drops.load(Relaxed);
    if drops == 0 {
        return String::new();
    }
    format!(
        ", {drops} drop(s), {} back, {} reconnecting",
        c.reconnects.load(Relaxed),
        c.reconnecting.load(Relaxed)
    )
}

/// How long sessions get to close after an interrupt (the CI runner kills soon after).
const INTERRUPTED_CLOSE: Duration = Duration::from_secs(1);

/// The phases over the sessions: open, hold, close. An interrupt (`ui`) ends the open and the
/// hold at once and gives the close [`INTERRUPTED_CLOSE`]; what ran is gathered as usual.
pub(super) async fn drive(
    sh: Arc<Shared>,
    ps: &ProbeSettings,
    budget: Budget,
    phase_tx: watch::Sender<Phase>,
    health: (reqwest::Client, Url, Duration),
    ui: &Ui,
    mut control: Option<Controls>,
) -> Gathered {
    let spawner = open(&sh, ps, budget, &phase_tx, ui).await;
    if let Some(c) = &control {
        let c_ = &sh.counters;
        let _ = c.opened.send(Some(Opened {
            opened: c_.opened.load(Relaxed),
            failed: c_.open_failed.load(Relaxed),
            took: sh.start.elapsed(),
        }));
    }
    let mut lookups = look_up_cookies(&sh, health);
    let stopped_before = ui.is_interrupted();
    let (start, end) = hold(&sh, ps, &phase_tx, ui, control.as_mut()).await;
    // `--until-stopped`: a stop during the hold ends it as planned; the sessions close as
    // after a full hold.
    let planned_stop = ps.until_stopped && !stopped_before && ui.is_interrupted();
    let interrupted = ui.is_interrupted() && !planned_stop;
    let (records, not_started, cut) = close(ps, &phase_tx, interrupted, spawner).await;
    // Started with the hold, each bounded by the request timeout: normally done by now. Those
    // still running are stopped, not left behind.
    let wait = if interrupted {
        Duration::ZERO
    } else {
        Duration::from_secs(2)
    };
    let cookie_instances = match tokio::time::timeout(wait, &mut lookups).await {
        Ok(Ok(found)) => found,
        _ => {
            lookups.abort();
            Vec::new()
        }
    };
    let mark = control
        .and_then(|c| c.mark.lock().ok().map(|m| *m))
        .unwrap_or_default();
    Gathered {
        records,
        not_started,
        cut,
        window: (sh.since_start(start), sh.since_start(end)),
        cookie_instances,
        duration: sh.start.elapsed(),
        since: mark.since.map(|t| sh.since_start(t)),
        succeeded: mark.succeeded,
        planned_stop,
    }
}

/// Open: starts the sessions and waits until every started one opened or failed and nothing
/// more will start (or the open budget ran out, or an interrupt). Returns the spawner, whose
/// output is the sessions' handles.
async fn open(
    sh: &Arc<Shared>,
    ps: &ProbeSettings,
    budget: Budget,
    phase_tx: &watch::Sender<Phase>,
    ui: &Ui,
) -> JoinHandle<Vec<JoinHandle<Record>>> {
    let open_deadline = sh.start + budget.open;
    let spawner = tokio::spawn(spawn_sessions(
        sh.clone(),
        ps.connections,
        ps.concurrency,
        ps.rate,
        phase_tx.subscribe(),
        open_deadline - HANDSHAKE_TIMEOUT,
    ));
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c = &sh.counters;
        let settled = c.opened.load(Relaxed) + c.open_failed.load(Relaxed);
        if (spawner.is_finished() && settled >= c.started.load(Relaxed))
            || Instant::now() >= open_deadline
            || ui.is_interrupted()
        {
            return spawner;
        }
    }
}

/// Which target each stickiness cookie value names (the health endpoint asked with it), looked
/// up during the hold.
fn look_up_cookies(
    sh: &Shared,
    (client, url, timeout): (reqwest::Client, Url, Duration),
) -> JoinHandle<Vec<Option<Outside>>> {
    let cookie_values = sh.cookies.all();
    let name = sh
        .cookie_name
        .get()
        .cloned()
        .unwrap_or_else(|| "AWSALB".into());
    tokio::spawn(async move {
        let all = cookie_values
            .into_iter()
            .map(|v| instance_for_cookie(&client, &url, format!("{name}={v}"), timeout));
        futures_util::future::join_all(all).await
    })
}

/// Hold: for `--hold`, or until the caller ends it (with [`Controls`]); an interrupt ends it
/// at once. Returns when it started and ended.
async fn hold(
    sh: &Shared,
    ps: &ProbeSettings,
    phase_tx: &watch::Sender<Phase>,
    ui: &Ui,
    control: Option<&mut Controls>,
) -> (Instant, Instant) {
    let start = Instant::now();
    let end = match control {
        None => start + ps.hold,
        Some(_) => start + Duration::from_secs(24 * 3600),
    };
    let _ = phase_tx.send(Phase::Holding { start, end });
    let alive = sh.counters.opened.load(Relaxed) > 0;
    let end = match control {
        // The caller ends the hold (an interrupt ends it at once).
        Some(c) => tokio::select! {
            at = c.hold() => at,
            () = ui.interrupted() => Instant::now(),
        },
        None => {
            if alive && !ui.is_interrupted() {
                tokio::select! {
                    _ = tokio::time::sleep_until(end.into()) => {}
                    () = ui.interrupted() => {}
                }
            }
            end
        }
    };
    (start, Instant::now().min(end).max(start))
}

/// Close: tells the sessions to leave and gathers their records by a deadline (a short one
/// after an interrupt); a session not done by then is stopped and counted as cut. Returns the
/// records, the sessions never started, and the cut ones.
async fn close(
    ps: &ProbeSettings,
    phase_tx: &watch::Sender<Phase>,
    interrupted: bool,
    mut spawner: JoinHandle<Vec<JoinHandle<Record>>>,
) -> (Vec<Record>, u64, u64) {
    let (until, close_deadline) = if interrupted {
        let now = Instant::now();
        (now, now + INTERRUPTED_CLOSE)
    } else {
        let until = Instant::now() + ps.close_grace;
        (until, until + CLOSE_TIMEOUT + Duration::from_secs(1))
    };
    let _ = phase_tx.send(Phase::Closing { until });
    let handles = match tokio::time::timeout_at(close_deadline.into(), &mut spawner).await {
        Ok(Ok(h)) => h,
        _ => {
            spawner.abort();
            Vec::new()
        }
    };
    let not_started = ps.connections as u64 - handles.len() as u64;
    let mut records = Vec::with_capacity(handles.len());
    let mut cut = 0;
    for mut h in handles {
        match tokio::time::timeout_at(close_deadline.into(), &mut h).await {
            Ok(Ok(r)) => records.push(r),
            _ => {
                h.abort();
                cut += 1;
            }
        }
    }
    (records, not_started, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters read one at a time: `dropped` (read later) can pass `opened`, and the window's
    /// start can be ahead of a stale `opened`; neither may underflow.
    #[test]
    fn live_numbers_saturate() {
        assert_eq!(live_numbers(5, 7, Some((9, 1.0))), (0, 0.0));
        assert_eq!(live_numbers(10, 4, Some((6, 2.0))), (6, 2.0));
        assert_eq!(live_numbers(10, 0, None), (10, 0.0));
        assert_eq!(live_numbers(10, 0, Some((1, 0.0))), (10, 0.0));
    }
}
