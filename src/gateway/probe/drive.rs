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

use super::load::{self, Controls, Gathered, Opened};
use super::session::{Outcome, Record};
use super::shared::{CookieSeen, Phase, Shared};
use super::spawn::spawn_sessions;
use super::{
    CookieReport, CookieValue, FailureGroup, HeartbeatReport, Lateness, OpenFiles, ProbeReport,
    ProbeSettings, TargetCount, CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT,
};
use crate::gateway::fmt_duration;
use crate::gateway::histogram::LogHistogram;
use crate::gateway::instance_of;
use crate::gateway::polling::read_body;
use crate::gateway::stats::{self, Budget};
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

/// The report: the records tallied, the failures grouped by cause, the cookies and the
/// heartbeats summed up, next to the settings of the run.
pub(super) fn build_report(
    sh: &Shared,
    ps: &ProbeSettings,
    url: &str,
    namespace: &str,
    g: &Gathered,
    open_files: Option<OpenFiles>,
    interrupted: bool,
) -> ProbeReport {
    let targets = sh.targets.all();
    let distinct_cookies = sh.cookies.all().len();
    let mut t = tally(g, &targets, distinct_cookies, ps);
    let failures = failure_groups(&t.causes);
    let errors = t.open_failed + t.dropped + t.close_failed;
    let last_open = Duration::from_micros(sh.counters.last_open_us.load(Relaxed));
    let cookies = cookie_report(sh, g, &t, distinct_cookies);
    let heartbeats = heartbeat_report(sh, ps, &t);
    let disruption = ps
        .reconnect
        .map(|r| load::disruption_of(sh, g, ps.connections, r.limits));
    let samples = super::report::Samples {
        connect_us: LogHistogram::of(t.connect_us.iter().map(|&us| us as u64)),
        lateness_ms: sh.lateness.lock().map(|h| h.to_log()).unwrap_or_default(),
    };
    ProbeReport {
        url: url.to_string(),
        interrupted,
        namespace: namespace.to_string(),
        transport: "websocket",
        connections: ps.connections,
        concurrency: ps.concurrency,
        rate_limit: ps.rate,
        // `--until-stopped`: what was held until the stop, not the cap.
        hold_ms: if g.planned_stop {
            g.window.1.saturating_sub(g.window.0).as_millis() as u64
        } else {
            ps.hold.as_millis() as u64
        },
        max_error_rate: ps.max_error_rate,
        max_p99_ms: ps.max_p99.map(|d| d.as_millis() as u64),
        open_files,
        duration_ms: g.duration.as_millis() as u64,
        opened: t.opened,
        open_failed: t.open_failed,
        dropped: t.dropped,
        closed: t.closed,
        close_failed: t.close_failed,
        errors,
        error_rate: errors as f64 / ps.connections.max(1) as f64,
        open_phase_ms: last_open.as_millis() as u64,
        handshakes_per_s: stats::per_second(t.opened, last_open),
        connect: stats::summarize_us(&mut t.connect_us),
        targets: stats::group(t.per_target)
            .into_iter()
            .map(|(instance, sessions)| TargetCount {
                instance: instance.clone(),
                sessions,
            })
            .collect(),
        open_failed_by_target: stats::group(t.open_failed_per_target)
            .into_iter()
            .map(|(instance, sessions)| TargetCount {
                instance: instance.clone(),
                sessions,
            })
            .collect(),
        unknown_target: t.unknown_target,
        cookies,
        heartbeats,
        failures,
        disruption,
        samples,
    }
}

/// What the records add up to.
#[derive(Default)]
struct Tally<'a> {
    connect_us: Vec<u32>,
    /// `(phase, cause)` of every failed session, redacted.
    causes: Vec<(String, String)>,
    opened: u64,
    open_failed: u64,
    dropped: u64,
    closed: u64,
    close_failed: u64,
    received_in_hold: u64,
    due_in_hold: u64,
    /// The target of every open session whose target is known.
    per_target: Vec<&'a Outside>,
    /// The target of every session that failed to open after the handshake set its cookie.
    open_failed_per_target: Vec<&'a Outside>,
    unknown_target: u64,
    cookie_set: u64,
    /// Per cookie value: its sessions, and the instances their heartbeats named.
    per_cookie: Vec<(u64, Vec<&'a Outside>)>,
}

/// Counts the records, then the sessions that never started (the open budget ran out) and
/// those cut at the deadline.
fn tally<'a>(
    g: &'a Gathered,
    targets: &'a [Outside],
    distinct_cookies: usize,
    ps: &ProbeSettings,
) -> Tally<'a> {
    let mut t = Tally {
        connect_us: Vec::with_capacity(g.records.len()),
        per_cookie: vec![(0, Vec::new()); distinct_cookies],
        ..Tally::default()
    };
    for r in &g.records {
        if let Some(us) = r.connect_us {
            t.opened_session(r, us, g, targets, ps);
        } else if let CookieSeen::Value(i) = r.cookie {
            // Refused after the handshake: its cookie names the target that refused it.
            if let Some(Some(target)) = g.cookie_instances.get(i as usize) {
                t.open_failed_per_target.push(target);
            }
        }
        t.outcome(&r.outcome);
    }
    for _ in 0..g.not_started {
        t.open_failed += 1;
        t.causes.push((
            "open".into(),
            "not started: the open budget ran out (the server answered too slowly)".into(),
        ));
    }
    for _ in 0..g.cut {
        t.close_failed += 1;
        t.causes.push((
            "close".into(),
            "still running at the probe's deadline; stopped".into(),
        ));
    }
    t
}

impl<'a> Tally<'a> {
    /// A session that opened: its latency, its heartbeats in the hold, its target (from its
    /// heartbeats, else from its cookie's health look-up) and its cookie.
    fn opened_session(
        &mut self,
        r: &Record,
        us: u32,
        g: &'a Gathered,
        targets: &'a [Outside],
        ps: &ProbeSettings,
    ) {
        self.opened += 1;
        self.connect_us.push(us);
        self.received_in_hold += r.hb_in_hold as u64;
        // Each connection of a session that reconnected has its heartbeats due from its own
        // open.
        self.due_in_hold += r
            .timeline
            .segments(r.opened_at, r.gone_at)
            .into_iter()
            .map(|(from, to)| stats::heartbeats_due(from, g.window, to, ps.heartbeat_interval))
            .sum::<u64>();
        if r.cookie != CookieSeen::None {
            self.cookie_set += 1;
        }
        let from_cookie = match r.cookie {
            CookieSeen::Value(i) => g.cookie_instances.get(i as usize).and_then(|o| o.as_ref()),
            _ => None,
        };
        let from_heartbeat = targets.get(r.target as usize);
        match from_heartbeat.or(from_cookie) {
            Some(t) => self.per_target.push(t),
            None => self.unknown_target += 1,
        }
        if let CookieSeen::Value(i) = r.cookie {
            if let Some(slot) = self.per_cookie.get_mut(i as usize) {
                slot.0 += 1;
                if let Some(h) = from_heartbeat {
                    if !slot.1.contains(&h) {
                        slot.1.push(h);
                    }
                }
            }
        }
    }

    /// How a session ended; the cause of a failure (made of outside text already redacted when
    /// it arrived; redacted again here).
    fn outcome(&mut self, outcome: &Outcome) {
        let redact = |c: &str| crate::outside::redact(c).into_owned();
        match outcome {
            Outcome::Closed => self.closed += 1,
            Outcome::OpenFailed(c) => {
                self.open_failed += 1;
                self.causes.push(("open".into(), redact(c)));
            }
            Outcome::Dropped(c) => {
                self.dropped += 1;
                self.causes.push(("hold".into(), redact(c)));
            }
            Outcome::CloseFailed(c) => {
                self.close_failed += 1;
                self.causes.push(("close".into(), redact(c)));
            }
        }
    }
}

/// The failures grouped by phase and cause, most frequent first.
fn failure_groups(causes: &[(String, String)]) -> Vec<FailureGroup> {
    let keyed: Vec<String> = causes
        .iter()
        .map(|(p, c)| format!("{p}\u{1f}{c}"))
        .collect();
    stats::group(keyed.iter().map(String::as_str))
        .into_iter()
        .map(|(k, count)| {
            let (phase, cause) = k.split_once('\u{1f}').unwrap_or(("open", k));
            FailureGroup {
                phase: phase.to_string(),
                cause: cause.to_string(),
                count,
            }
        })
        .collect()
}

/// The cookie values (numbered, never printed), each with the instance its health look-up
/// named and the instances its sessions' heartbeats named; consistent when they agree.
fn cookie_report(sh: &Shared, g: &Gathered, t: &Tally, distinct_cookies: usize) -> CookieReport {
    let values: Vec<CookieValue> = t
        .per_cookie
        .iter()
        .enumerate()
        .map(|(i, (sessions, hb))| CookieValue {
            value: format!("#{}", i + 1),
            sessions: *sessions,
            health_instance: g.cookie_instances.get(i).cloned().flatten(),
            heartbeat_instances: hb.iter().map(|s| (*s).clone()).collect(),
        })
        .collect();
    let comparable: Vec<&CookieValue> = values
        .iter()
        .filter(|v| v.health_instance.is_some() && !v.heartbeat_instances.is_empty())
        .collect();
    let consistent = (!comparable.is_empty()).then(|| {
        comparable.iter().all(|v| {
            v.heartbeat_instances
                .iter()
                .all(|h| Some(h) == v.health_instance.as_ref())
        })
    });
    CookieReport {
        name: sh.cookie_name.get().map(|n| Outside::new(n)),
        set: t.cookie_set,
        distinct_values: distinct_cookies,
        values,
        consistent,
    }
}

/// Heartbeats received and acked, the delivery during the hold against what was due, and
/// their lateness.
fn heartbeat_report(sh: &Shared, ps: &ProbeSettings, t: &Tally) -> HeartbeatReport {
    let lateness = sh.lateness.lock().map(|h| h.clone()).unwrap_or_default();
    let slack = crate::gateway::slack(ps.heartbeat_interval);
    let expected = t.due_in_hold as f64;
    HeartbeatReport {
        interval_ms: ps.heartbeat_interval.as_millis() as u64,
        received: sh.counters.heartbeats.load(Relaxed),
        acked: sh.counters.acks.load(Relaxed),
        received_in_hold: t.received_in_hold,
        expected_in_hold: (expected * 10.0).round() / 10.0,
        delivery_ratio: stats::ratio(t.received_in_hold as f64, expected)
            .map(|r| (r * 1000.0).round() / 1000.0),
        lateness: Lateness {
            p50_ms: lateness.percentile(50.0),
            p99_ms: lateness.percentile(99.0),
            max_ms: lateness.max(),
            late: lateness.count_above(slack.as_millis() as u64),
            slack_ms: slack.as_millis() as u64,
        },
    }
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
