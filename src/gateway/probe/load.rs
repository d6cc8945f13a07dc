//! The probe with reconnects: its settings ([`ReconnectSettings`], from `--reconnect-delay`
//! and the thresholds), the hold a caller ends itself ([`Control`]: `deploy --under-load`
//! opens the sessions, starts the rollout, and ends the hold once it is over and has
//! settled), and the disruption report built from the sessions' timelines, their targets
//! named by heartbeat or by the cookie look-up ([`super::disruption`] holds the arithmetic).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::backoff::Backoff;
use super::disruption::series::{self, Lived};
use super::disruption::{self, DisruptionReport, DropLine, Limits, SessionLine, Window};
use super::session::Record;
use super::shared::Shared;
use super::timeline::{Timeline, NO_TARGET};
use crate::cli::{ReconnectFlags, ReconnectLike};
use crate::exit::Failure;
use crate::gateway::fmt_duration;
use crate::outside::Outside;

/// What the sessions left behind when the probe ended, for the report.
pub(super) struct Gathered {
    pub(super) records: Vec<Record>,
    pub(super) not_started: u64,
    pub(super) cut: u64,
    pub(super) window: (Duration, Duration),
    pub(super) cookie_instances: Vec<Option<Outside>>,
    pub(super) duration: Duration,
    /// With a caller's [`Controls`]: when it said the rollout started (from the probe's
    /// start), and whether the rollout succeeded.
    pub(super) since: Option<Duration>,
    pub(super) succeeded: Option<bool>,
    /// `--until-stopped` and the stop came during the hold: the planned end, no interrupt.
    pub(super) planned_stop: bool,
}

/// Largest `--max-reconnect-p99`.
const MAX_P99_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// How dropped sessions come back and what that may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectSettings {
    pub backoff: Backoff,
    pub limits: Limits,
    /// `--reconnect-like`: whose reconnect rules the sessions follow.
    pub like: ReconnectLike,
}

impl ReconnectSettings {
    /// Validates the flags (usage errors, exit 2). `--reconnect-delay` is range-checked when
    /// parsed.
    pub fn from_flags(f: &ReconnectFlags) -> anyhow::Result<ReconnectSettings> {
        let usage = |m: String, h: &str| -> anyhow::Error { Failure::usage(m).hint(h).into() };
        if let Some(r) = f.max_drop_rate {
            if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
                return Err(usage(
                    format!("--max-drop-rate {r} is not a fraction"),
                    "give a fraction of the sessions, 0.0 to 1.0, like 0.5 for half of them",
                ));
            }
        }
        if let Some(p) = f.max_reconnect_p99 {
            if p > MAX_P99_LIMIT || p.is_zero() {
                return Err(usage(
                    format!("--max-reconnect-p99 {} is out of range", fmt_duration(p)),
                    "give a duration from 1ms to 24h, like 5s",
                ));
            }
        }
        let backoff = match f.reconnect_delay {
            Some((min, max)) => Backoff {
                min,
                max,
                ..Backoff::default()
            },
            None => Backoff::default(),
        };
        Ok(ReconnectSettings {
            like: f.reconnect_like.unwrap_or_default(),
            backoff,
            limits: Limits {
                max_lost: f.max_lost.unwrap_or(0),
                max_drop_rate: f.max_drop_rate,
                max_reconnect_p99_ms: f.max_reconnect_p99.map(|d| d.as_millis() as u64),
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The hold a caller ends

/// What the open phase gave, told to the caller when it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub opened: u64,
    pub failed: u64,
    /// From the probe's start.
    pub took: Duration,
}

/// The caller's side: waits for the sessions to be open, marks the start of the rollout,
/// ends the hold.
pub struct Control {
    opened: watch::Receiver<Option<Opened>>,
    end: watch::Sender<Option<Duration>>,
    mark: Arc<Mutex<Mark>>,
}

/// The probe's side, given to [`super::probe_controlled`].
pub struct Controls {
    /// Attached to the probe's counters when it starts (the gate reads it during bake times).
    pub(super) live: super::LiveLoad,
    pub(super) opened: watch::Sender<Option<Opened>>,
    pub(super) end: watch::Receiver<Option<Duration>>,
    pub(super) mark: Arc<Mutex<Mark>>,
}

/// When the rollout started and how it ended, as the caller said.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Mark {
    pub(super) since: Option<Instant>,
    pub(super) succeeded: Option<bool>,
}

/// A connected pair.
pub fn control() -> (Control, Controls) {
    control_with(super::LiveLoad::default())
}

/// A connected pair whose probe attaches its live numbers to `live`.
pub fn control_with(live: super::LiveLoad) -> (Control, Controls) {
    let (opened_tx, opened_rx) = watch::channel(None);
    let (end_tx, end_rx) = watch::channel(None);
    let mark = Arc::new(Mutex::new(Mark::default()));
    (
        Control {
            opened: opened_rx,
            end: end_tx,
            mark: mark.clone(),
        },
        Controls {
            live,
            opened: opened_tx,
            end: end_rx,
            mark,
        },
    )
}

impl Control {
    /// Once every session is open (or given up): how many. `None` when the probe ended first.
    pub async fn opened(&mut self) -> Option<Opened> {
        self.opened
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| *v)
    }

    /// The rollout starts now: the disruption counts from here, and targets serving before
    /// are the old ones.
    pub fn rollout_started(&self) {
        if let Ok(mut m) = self.mark.lock() {
            m.since = Some(Instant::now());
        }
    }

    /// Ends the hold `after` from now (the settle time; zero: at once), noting how the rollout
    /// ended (`None`: it did not end, it was interrupted or not watched).
    pub fn end(&self, after: Duration, succeeded: Option<bool>) {
        if let Ok(mut m) = self.mark.lock() {
            m.succeeded = succeeded;
        }
        let _ = self.end.send(Some(after));
    }
}

impl Controls {
    /// Waits until the caller ends the hold, then for the time it asked (a later call, like
    /// an interrupt during the settle time, replaces it); returns the end.
    pub(super) async fn hold(&mut self) -> Instant {
        let mut after = match self.end.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or_default(),
            // The caller is gone: end now.
            Err(_) => return Instant::now(),
        };
        let mut from = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(from + after) => return Instant::now(),
                changed = self.end.changed() => match changed {
                    Ok(()) => {
                        after = self.end.borrow_and_update().unwrap_or_default();
                        from = tokio::time::Instant::now();
                    }
                    Err(_) => return Instant::now(),
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report

/// A target index's name: the heartbeat's, else what the health endpoint said for the
/// connection's cookie.
fn name_of<'a>(
    target: u16,
    cookie: u16,
    targets: &'a [Outside],
    cookie_instances: &'a [Option<Outside>],
) -> Option<&'a Outside> {
    if target != NO_TARGET {
        if let Some(t) = targets.get(target as usize) {
            return Some(t);
        }
    }
    if cookie != NO_TARGET {
        return cookie_instances
            .get(cookie as usize)
            .and_then(|o| o.as_ref());
    }
    None
}

fn line_of<'a>(
    r: &Record,
    tl: &Timeline,
    targets: &'a [Outside],
    cookie_instances: &'a [Option<Outside>],
) -> SessionLine<'a> {
    // A session that never dropped ends on its first connection, whose target is the record's.
    let first_target = if tl.first_target != NO_TARGET || !tl.drops.is_empty() {
        tl.first_target
    } else {
        r.target
    };
    SessionLine {
        first: name_of(first_target, tl.first_cookie, targets, cookie_instances),
        drops: tl
            .drops
            .iter()
            .map(|d| DropLine {
                at_ms: d.at_ms as u64,
                cause: d.cause,
                from: name_of(d.from, d.from_cookie, targets, cookie_instances),
                to: name_of(d.to, NO_TARGET, targets, cookie_instances),
                back_ms: d.back(),
                attempts: d.attempts,
                failed: d.failed,
                lost: d.lost,
                recovered: d.recovered,
            })
            .collect(),
        max_gap_ms: tl.max_gap_ms,
        spacing_ms: (tl.spacing_ms > 0).then_some(tl.spacing_ms),
    }
}

/// The disruption over the sessions that opened, from `since` (the rollout's start when a
/// caller marked it, else the probe's start) to the end of the run.
pub(super) fn disruption_of(
    sh: &Shared,
    g: &Gathered,
    connections: u32,
    limits: Limits,
) -> DisruptionReport {
    let targets = sh.targets.all();
    let opened: Vec<&Record> = g
        .records
        .iter()
        .filter(|r| r.connect_us.is_some())
        .collect();
    let lines: Vec<SessionLine> = opened
        .iter()
        .map(|r| line_of(r, &r.timeline, &targets, &g.cookie_instances))
        .collect();
    let window = Window {
        since_ms: g.since.map_or(0, |d| d.as_millis() as u64),
        until_ms: g.duration.as_millis() as u64,
        old_and_new: g.since.is_some(),
        rollout_succeeded: g.succeeded,
    };
    let mut report = disruption::disruption(&lines, connections, window, limits, sh.reconnect_like);
    report.recovery_offered = sh.counters.pids.load(std::sync::atomic::Ordering::Relaxed) > 0;
    let lived: Vec<Lived> = opened
        .iter()
        .zip(&lines)
        .map(|(r, line)| Lived {
            opened_ms: r.opened_at.as_millis() as u64,
            gone_ms: r.gone_at.as_millis() as u64,
            line,
        })
        .collect();
    let started = started_unix_ms(g.duration);
    report.series = Some(series::series(
        &lived,
        window.until_ms,
        series::step_for(window.until_ms),
        started,
    ));
    report.seconds = disruption::seconds::of_sessions(&lines, started);
    report
}

/// The probe's start on the wall clock: now, less how long it ran.
fn started_unix_ms(ran: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(ran).as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_validated() {
        let ok = ReconnectSettings::from_flags(&ReconnectFlags::default()).unwrap();
        assert_eq!(ok.backoff, Backoff::default());
        assert_eq!(ok.limits.max_lost, 0);
        assert_eq!(ok.limits.max_drop_rate, None);
        assert_eq!(
            ok.like,
            ReconnectLike::Browser,
            "the default is the browser's rules"
        );
        let f = ReconnectFlags {
            reconnect_delay: Some((Duration::from_millis(200), Duration::from_secs(2))),
            max_lost: Some(5),
            max_drop_rate: Some(0.5),
            max_reconnect_p99: Some(Duration::from_secs(3)),
            reconnect_like: Some(ReconnectLike::Always),
        };
        let s = ReconnectSettings::from_flags(&f).unwrap();
        assert_eq!(s.backoff.min, Duration::from_millis(200));
        assert_eq!(s.backoff.max, Duration::from_secs(2));
        assert_eq!(s.backoff.jitter, 0.5);
        assert_eq!(s.limits.max_reconnect_p99_ms, Some(3000));
        assert_eq!(s.like, ReconnectLike::Always);
        for bad in [
            ReconnectFlags {
                max_drop_rate: Some(1.5),
                ..Default::default()
            },
            ReconnectFlags {
                max_drop_rate: Some(f64::NAN),
                ..Default::default()
            },
            ReconnectFlags {
                max_reconnect_p99: Some(Duration::from_secs(100_000)),
                ..Default::default()
            },
            ReconnectFlags {
                max_reconnect_p99: Some(Duration::ZERO),
                ..Default::default()
            },
        ] {
            let e = ReconnectSettings::from_flags(&bad).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage, "{e}");
        }
    }

    #[test]
    fn targets_by_heartbeat_then_by_cookie() {
        let targets = vec![Outside::new("gw-a"), Outside::new("gw-b")];
        let cookies = vec![Some(Outside::new("gw-b")), None];
        assert_eq!(name_of(0, 0, &targets, &cookies), Some(&targets[0]));
        assert_eq!(name_of(NO_TARGET, 0, &targets, &cookies), Some(&targets[1]));
        assert_eq!(name_of(NO_TARGET, 1, &targets, &cookies), None);
        assert_eq!(name_of(NO_TARGET, NO_TARGET, &targets, &cookies), None);
        assert_eq!(name_of(7, NO_TARGET, &targets, &cookies), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_caller_ends_the_hold() {
        let (mut c, mut ctl) = control();
        ctl.opened
            .send(Some(Opened {
                opened: 3,
                failed: 1,
                took: Duration::from_secs(1),
            }))
            .unwrap();
        assert_eq!(c.opened().await.unwrap().opened, 3);
        c.rollout_started();
        let t0 = tokio::time::Instant::now();
        let held = tokio::spawn(async move {
            ctl.hold().await;
            (t0.elapsed(), ctl.mark.lock().unwrap().succeeded)
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        c.end(Duration::from_secs(7), Some(true));
        let (took, succeeded) = held.await.unwrap();
        assert_eq!(took, Duration::from_secs(37));
        assert_eq!(succeeded, Some(true));
        // A second call during the wait replaces the first (an interrupt ends the settle).
        let (c2, mut ctl2) = control();
        let t0 = tokio::time::Instant::now();
        let held = tokio::spawn(async move {
            ctl2.hold().await;
            t0.elapsed()
        });
        c2.end(Duration::from_secs(60), Some(true));
        tokio::time::sleep(Duration::from_secs(5)).await;
        c2.end(Duration::ZERO, Some(true));
        assert_eq!(held.await.unwrap(), Duration::from_secs(5));
        assert!(c.mark.lock().unwrap().since.is_some());
        // A caller that goes away ends the hold at once.
        let (c, mut ctl) = control();
        drop(c);
        let t0 = tokio::time::Instant::now();
        ctl.hold().await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
