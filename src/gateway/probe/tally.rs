//! The probe's report from what its sessions recorded: the records tallied (opened, failed,
//! dropped, closed, connect times, targets), the failures grouped by cause, the cookies and
//! the heartbeats summed up, next to the settings of the run. Split from `drive` (which runs
//! the phases) so each holds one idea.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::load::{self, Gathered};
use super::session::{Outcome, Record};
use super::shared::{CookieSeen, Shared};
use super::{
    CookieReport, CookieValue, FailureGroup, HeartbeatReport, Lateness, OpenFiles, ProbeReport,
    ProbeSettings, TargetCount,
};
use crate::gateway::histogram::LogHistogram;
use crate::gateway::stats;
use crate::outside::Outside;

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
