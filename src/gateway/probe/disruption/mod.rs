//! The disruption report of a reconnecting probe (`verify --connections --reconnect`, `deploy
//! --under-load`): which sessions dropped and why, which came back and how fast, which never
//! did, where they went (the from→to table, the spread of the reconnects over the targets
//! that took them), the longest heartbeat gap, and for a rollout which targets are old and
//! which new. Pure: it takes the sessions' timelines with their targets already named, so every
//! rule is unit-tested here; the verdicts `disruption` and `reconnect` and the text table are
//! in `verdicts.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::timeline::{AttemptCause, DropCause, LostCause, ATTEMPT_CAUSES};
use crate::cli::ReconnectLike;
use crate::gateway::stats::percentile;
use crate::outside::Outside;

/// Where a session's target is not known (no heartbeat named it, no cookie look-up did).
pub const UNKNOWN: &str = "(unknown)";
/// The "to" of a session that never came back.
pub const LOST: &str = "(lost)";

fn marker(text: &str) -> Outside {
    Outside::new(text)
}

/// One drop of a session, its targets named.
#[derive(Debug, Clone, PartialEq)]
pub struct DropLine<'a> {
    /// Milliseconds from the probe's start.
    pub at_ms: u64,
    pub cause: DropCause,
    /// Target names are the servers' words (heartbeat instance ids): outside text.
    pub from: Option<&'a Outside>,
    pub to: Option<&'a Outside>,
    /// From the drop to the CONNECT answer of the new session; `None`: never back.
    pub back_ms: Option<u32>,
    pub attempts: u16,
    pub failed: [u16; ATTEMPT_CAUSES],
    /// Why it never came back (`None`: back, or not known: counted as still trying).
    pub lost: Option<LostCause>,
}

impl DropLine<'_> {
    fn back_at(&self) -> Option<u64> {
        self.back_ms.map(|b| self.at_ms + b as u64)
    }
}

/// One session that opened: the target of its first connection, its drops in order, the
/// longest gap between two of its heartbeats.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLine<'a> {
    pub first: Option<&'a Outside>,
    pub drops: Vec<DropLine<'a>>,
    pub max_gap_ms: u32,
    /// The heartbeat spacing on the connection it ended on.
    pub spacing_ms: Option<u32>,
}

impl<'a> SessionLine<'a> {
    /// Lost: its last drop never came back.
    fn lost(&self) -> bool {
        self.drops.last().is_some_and(|d| d.back_ms.is_none())
    }
    /// The target it ended on (while not lost): the last new connection's, else the first.
    fn last_target(&self) -> Option<&'a Outside> {
        match self.drops.last() {
            Some(d) => d.to,
            None => self.first,
        }
    }
}

/// The part of the run the report is about, in milliseconds from the probe's start; drops
/// before `since_ms` are not counted (a deploy counts from the start of its rollout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since_ms: u64,
    pub until_ms: u64,
    /// Sort the targets into old (serving before `since_ms`) and new (first reached after).
    pub old_and_new: bool,
    /// The rollout succeeded (a session still on an old target then warns).
    pub rollout_succeeded: Option<bool>,
}

/// The thresholds (exit 1 when one is exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Limits {
    /// `--max-lost`.
    pub max_lost: u64,
    /// `--max-drop-rate`, a fraction of the sessions.
    pub max_drop_rate: Option<f64>,
    /// `--max-reconnect-p99`.
    pub max_reconnect_p99_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CauseCount {
    pub cause: String,
    pub text: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dropped {
    /// Sessions that dropped at least once in the window.
    pub sessions: u64,
    /// Of the sessions opened (N when all opened).
    pub percent: f64,
    /// Drops in all (a session can drop more than once).
    pub events: u64,
    pub by_cause: Vec<CauseCount>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReconnectTimes {
    pub count: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptReport {
    pub made: u64,
    pub failed: u64,
    pub failed_by_cause: Vec<CauseCount>,
}

/// Sessions that dropped on `from` and ended on `to` ([`LOST`] when they never came back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub from: Outside,
    pub to: Outside,
    pub sessions: u64,
}

/// The reconnects one target took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Landing {
    pub target: Outside,
    pub reconnects: u64,
    pub percent: f64,
    /// Most reconnects it took within one second.
    pub peak_per_s: u64,
}

/// The sessions open at the end on one target, and the heartbeat spacing they saw there (the
/// interval that target runs: a rollout that changes it shows here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndedOn {
    pub target: Outside,
    pub sessions: u64,
    /// Median over its sessions of their last heartbeat spacing.
    pub heartbeat_spacing_ms: Option<u64>,
}

/// Old targets served before the window, new ones were first reached in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldNew {
    pub old: Vec<Outside>,
    pub new: Vec<Outside>,
    /// Sessions open at the end (not lost), by the kind of target they ended on.
    pub open_at_end: u64,
    pub ended_on_new: u64,
    pub ended_on_old: u64,
    pub ended_unknown: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_succeeded: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisruptionReport {
    /// Sessions asked for, and those that opened (the base of the percentages).
    pub connections: u32,
    pub opened: u64,
    pub since_ms: u64,
    pub until_ms: u64,
    pub dropped: Dropped,
    /// Dropped sessions that were back at the end.
    pub reconnected: u64,
    /// Dropped sessions that were not.
    pub lost: u64,
    /// The lost sessions by why they never came back: still trying at the end, told to leave
    /// (namespace DISCONNECT), refused on a reconnect (CONNECT_ERROR).
    pub lost_by_cause: Vec<CauseCount>,
    /// Whose reconnect rules the sessions followed (`--reconnect-like`).
    pub reconnect_like: ReconnectLike,
    /// From each drop to the namespace CONNECT answer of the new session.
    pub reconnect: Option<ReconnectTimes>,
    pub attempts: AttemptReport,
    /// Dropped sessions that ended on another target than the one they dropped from.
    pub moved: u64,
    /// The from→to table of the dropped sessions.
    pub moves: Vec<Move>,
    /// The longest time between two heartbeats of one session, across its reconnects.
    pub longest_heartbeat_gap_ms: Option<u64>,
    /// How the reconnects spread over the targets that took them.
    pub landed: Vec<Landing>,
    /// How the drops were spread in time, and whether their reconnects were a storm (not in
    /// reports merged from shards: a shard carries no drop times).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_shape: Option<DropShape>,
    /// Where the sessions open at the end are, with the heartbeat spacing seen there.
    pub ended_on: Vec<EndedOn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<OldNew>,
    /// Sessions that dropped before the window (not counted above).
    pub dropped_before_window: u64,
    pub limits: Limits,
    /// The reconnect times (ms), mergeable (a shard report carries them).
    #[serde(skip)]
    pub back_ms: crate::gateway::histogram::LogHistogram,
    /// The sessions over time, for `--html` (`None`: a report merged from shards).
    #[serde(skip)]
    pub series: Option<series::SessionSeries>,
}

/// The words of a drop or attempt cause given as its JSON key (`close_frame`…), for a report
/// rebuilt from shard documents; `None` for a key this version does not know.
pub fn cause_text(key: &str) -> Option<&'static str> {
    DropCause::ALL
        .iter()
        .find(|c| snake(**c) == key)
        .map(|c| c.text())
        .or_else(|| {
            AttemptCause::ALL
                .iter()
                .find(|c| snake(**c) == key)
                .map(|c| c.text())
        })
}

/// The text of a lost-session cause by its JSON key (for `report merge`).
pub fn lost_cause_text(key: &str) -> Option<&'static str> {
    LostCause::ALL
        .iter()
        .find(|c| snake(**c) == key)
        .map(|c| c.text())
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

fn counts<K: Ord + Copy>(
    items: impl IntoIterator<Item = (K, u64)>,
    name: impl Fn(K) -> (String, &'static str),
) -> Vec<CauseCount> {
    let mut m: BTreeMap<K, u64> = BTreeMap::new();
    for (k, n) in items {
        if n > 0 {
            *m.entry(k).or_default() += n;
        }
    }
    let mut v: Vec<CauseCount> = m
        .into_iter()
        .map(|(k, count)| {
            let (cause, text) = name(k);
            CauseCount { cause, text, count }
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
    v
}

fn snake(v: impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Most of `times` (ms, any order) within any one second.
pub fn peak_per_second(times: &mut [u64]) -> u64 {
    times.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= 1000 {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as u64
}

/// What the sessions' drops in the window add up to, before it is shaped into the report.
#[derive(Default)]
struct Tally {
    dropped_sessions: u64,
    dropped_before: u64,
    reconnected: u64,
    lost: u64,
    lost_by: Vec<(LostCause, u64)>,
    events: u64,
    causes: Vec<(DropCause, u64)>,
    back_ms: Vec<u32>,
    made: u64,
    failed: [u64; ATTEMPT_CAUSES],
    /// (from, to) of each dropped session: its first drop in the window, where it ended.
    moves: BTreeMap<(Outside, Outside), u64>,
    moved: u64,
    /// When each target took a reconnect (ms since the start).
    landings: BTreeMap<Outside, Vec<u64>>,
    /// When each drop in the window happened (ms since the start).
    drops_at: Vec<u64>,
}

impl Tally {
    /// Adds one session: nothing when it did not drop in the window (counted apart when it
    /// dropped only before it).
    fn add(&mut self, s: &SessionLine, window: Window) {
        let Some(first_in) = s.drops.iter().position(|d| d.at_ms >= window.since_ms) else {
            if !s.drops.is_empty() {
                self.dropped_before += 1;
            }
            return;
        };
        self.dropped_sessions += 1;
        for d in &s.drops[first_in..] {
            self.add_drop(d);
        }
        let from = s.drops[first_in].from;
        let to = if s.lost() {
            self.lost += 1;
            let why = s.drops.last().and_then(|d| d.lost);
            self.lost_by
                .push((why.unwrap_or(LostCause::StillTrying), 1));
            marker(LOST)
        } else {
            self.reconnected += 1;
            let to = s.last_target();
            if matches!((from, to), (Some(f), Some(t)) if f != t) {
                self.moved += 1;
            }
            to.cloned().unwrap_or_else(|| marker(UNKNOWN))
        };
        let from = from.cloned().unwrap_or_else(|| marker(UNKNOWN));
        *self.moves.entry((from, to)).or_default() += 1;
    }

    fn add_drop(&mut self, d: &DropLine) {
        self.events += 1;
        self.drops_at.push(d.at_ms);
        self.causes.push((d.cause, 1));
        self.made += d.attempts as u64;
        for (i, n) in d.failed.iter().enumerate() {
            self.failed[i] += *n as u64;
        }
        if let (Some(b), Some(at)) = (d.back_ms, d.back_at()) {
            self.back_ms.push(b);
            let to = d.to.cloned().unwrap_or_else(|| marker(UNKNOWN));
            self.landings.entry(to).or_default().push(at);
        }
    }
}

fn reconnect_times(mut back_ms: Vec<u32>) -> Option<ReconnectTimes> {
    back_ms.sort_unstable();
    (!back_ms.is_empty()).then(|| ReconnectTimes {
        count: back_ms.len() as u64,
        p50_ms: percentile(&back_ms, 50.0).unwrap_or(0) as u64,
        p99_ms: percentile(&back_ms, 99.0).unwrap_or(0) as u64,
        max_ms: *back_ms.last().unwrap_or(&0) as u64,
    })
}

/// The targets that took reconnects, most first, with their share and busiest second.
fn landed(landings: BTreeMap<Outside, Vec<u64>>) -> Vec<Landing> {
    let total: u64 = landings.values().map(|v| v.len() as u64).sum();
    let mut landed: Vec<Landing> = landings
        .into_iter()
        .map(|(t, mut times)| Landing {
            target: t,
            reconnects: times.len() as u64,
            percent: pct(times.len() as u64, total),
            peak_per_s: peak_per_second(&mut times),
        })
        .collect();
    landed.sort_by(|a, b| {
        b.reconnects
            .cmp(&a.reconnects)
            .then_with(|| a.target.cmp(&b.target))
    });
    landed
}

/// The from→to table: by source target, the biggest move first.
fn moves(moves: BTreeMap<(Outside, Outside), u64>) -> Vec<Move> {
    let mut moves: Vec<Move> = moves
        .into_iter()
        .map(|((from, to), sessions)| Move { from, to, sessions })
        .collect();
    moves.sort_by(|a, b| {
        a.from
            .cmp(&b.from)
            .then_with(|| b.sessions.cmp(&a.sessions))
            .then_with(|| a.to.cmp(&b.to))
    });
    moves
}

/// The report over `sessions` (every session that opened) in `window`.
pub fn disruption(
    sessions: &[SessionLine],
    connections: u32,
    window: Window,
    limits: Limits,
    like: ReconnectLike,
) -> DisruptionReport {
    let mut t = Tally::default();
    for s in sessions {
        t.add(s, window);
    }
    let opened = sessions.len() as u64;
    let back_ms = crate::gateway::histogram::LogHistogram::of(t.back_ms.iter().map(|&b| b as u64));
    let mut drops_at = std::mem::take(&mut t.drops_at);
    let mut report = DisruptionReport {
        connections,
        opened,
        since_ms: window.since_ms,
        until_ms: window.until_ms,
        dropped: Dropped {
            sessions: t.dropped_sessions,
            percent: pct(t.dropped_sessions, opened),
            events: t.events,
            by_cause: counts(t.causes, |c| (snake(c), c.text())),
        },
        reconnected: t.reconnected,
        lost: t.lost,
        lost_by_cause: counts(t.lost_by, |c| (snake(c), c.text())),
        reconnect_like: like,
        reconnect: reconnect_times(t.back_ms),
        attempts: AttemptReport {
            made: t.made,
            failed: t.failed.iter().sum(),
            failed_by_cause: counts(
                AttemptCause::ALL.iter().zip(t.failed).map(|(c, n)| (*c, n)),
                |c| (snake(c), c.text()),
            ),
        },
        moved: t.moved,
        moves: moves(t.moves),
        longest_heartbeat_gap_ms: sessions
            .iter()
            .map(|s| s.max_gap_ms)
            .filter(|g| *g > 0)
            .max()
            .map(u64::from),
        landed: landed(t.landings),
        drop_shape: None,
        ended_on: ended_on(sessions),
        targets: window.old_and_new.then(|| old_and_new(sessions, window)),
        dropped_before_window: t.dropped_before,
        limits,
        back_ms,
        series: None,
    };
    let peak_landing = report
        .landed
        .iter()
        .map(|l| l.peak_per_s)
        .max()
        .unwrap_or(0);
    report.drop_shape = shape::of(&mut drops_at, peak_landing);
    report
}

/// The sessions not lost, by the target they ended on, with their median heartbeat spacing.
fn ended_on(sessions: &[SessionLine]) -> Vec<EndedOn> {
    let mut by: BTreeMap<Outside, (u64, Vec<u32>)> = BTreeMap::new();
    for s in sessions.iter().filter(|s| !s.lost()) {
        let t = s.last_target().cloned().unwrap_or_else(|| marker(UNKNOWN));
        let e = by.entry(t).or_default();
        e.0 += 1;
        e.1.extend(s.spacing_ms);
    }
    let mut v: Vec<EndedOn> = by
        .into_iter()
        .map(|(t, (sessions, mut spacing))| {
            spacing.sort_unstable();
            EndedOn {
                target: t,
                sessions,
                heartbeat_spacing_ms: percentile(&spacing, 50.0).map(u64::from),
            }
        })
        .collect();
    v.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then_with(|| a.target.cmp(&b.target))
    });
    v
}

/// Old targets: those of every first connection and of reconnects done before the window.
/// New: every other target a reconnect reached. Then where the open sessions ended.
fn old_and_new(sessions: &[SessionLine], window: Window) -> OldNew {
    let mut old: BTreeSet<&Outside> = BTreeSet::new();
    let mut new: BTreeSet<&Outside> = BTreeSet::new();
    for s in sessions {
        old.extend(s.first);
        for d in &s.drops {
            if d.back_at().is_some_and(|t| t < window.since_ms) {
                old.extend(d.to);
            }
        }
    }
    for s in sessions {
        for d in &s.drops {
            if let Some(t) = d.to {
                if !old.contains(t) {
                    new.insert(t);
                }
            }
        }
    }
    let (mut open, mut on_new, mut on_old, mut unknown) = (0, 0, 0, 0);
    for s in sessions.iter().filter(|s| !s.lost()) {
        open += 1;
        match s.last_target() {
            Some(t) if new.contains(t) => on_new += 1,
            Some(t) if old.contains(t) => on_old += 1,
            _ => unknown += 1,
        }
    }
    OldNew {
        old: old.into_iter().cloned().collect(),
        new: new.into_iter().cloned().collect(),
        open_at_end: open,
        ended_on_new: on_new,
        ended_on_old: on_old,
        ended_unknown: unknown,
        rollout_succeeded: window.rollout_succeeded,
    }
}

pub mod series;
mod shape;
mod verdicts;
pub use shape::DropShape;
pub use verdicts::{checks, render_table};

#[cfg(test)]
mod tests {
    use super::verdicts::{disruption_check, reconnect_check};
    use super::*;
    use crate::report::CheckStatus;

    const NO_FAIL: [u16; ATTEMPT_CAUSES] = [0; ATTEMPT_CAUSES];

    /// A target name as a server would send it (leaked: test data lives for the test run).
    fn o(name: &str) -> &'static Outside {
        Box::leak(Box::new(Outside::new(name)))
    }

    fn drop_at(at_ms: u64, from: &str, to: Option<&str>, back: Option<u32>) -> DropLine<'static> {
        DropLine {
            at_ms,
            cause: DropCause::CloseFrame,
            from: Some(o(from)),
            to: to.map(o),
            back_ms: back,
            attempts: if back.is_some() { 1 } else { 3 },
            failed: if back.is_some() {
                NO_FAIL
            } else {
                let mut f = NO_FAIL;
                f[AttemptCause::Http503 as usize] = 3;
                f
            },
            lost: back.is_none().then_some(LostCause::StillTrying),
        }
    }

    fn session(first: &str, drops: Vec<DropLine<'static>>) -> SessionLine<'static> {
        let spacing = if drops_back_on(&drops) { 1500 } else { 30_000 };
        SessionLine {
            first: Some(o(first)),
            drops,
            max_gap_ms: 0,
            spacing_ms: Some(spacing),
        }
    }

    /// Test sessions that came back run the new 1.5 s heartbeat, the others the old 30 s.
    fn drops_back_on(drops: &[DropLine]) -> bool {
        drops.last().is_some_and(|d| d.back_ms.is_some())
    }

    const LIMITS: Limits = Limits {
        max_lost: 0,
        max_drop_rate: None,
        max_reconnect_p99_ms: None,
    };

    fn window(since_ms: u64) -> Window {
        Window {
            since_ms,
            until_ms: 60_000,
            old_and_new: false,
            rollout_succeeded: None,
        }
    }

    #[test]
    fn a_replica_stop_counted_exactly() {
        // 10 sessions: 4 on gw-a (stopped at 5 s), 6 on gw-b. Three of gw-a's came back on
        // gw-b, one never did.
        let mut s = Vec::new();
        for (i, back) in [(0, Some(600)), (1, Some(900)), (2, Some(1400)), (3, None)] {
            let mut d = drop_at(5_000 + i, "gw-a", back.map(|_| "gw-b"), back);
            if i == 1 {
                d.cause = DropCause::Eof;
                d.attempts = 3;
                d.failed[AttemptCause::Http503 as usize] = 1;
                d.failed[AttemptCause::Refused as usize] = 1;
            }
            s.push(session("gw-a", vec![d]));
        }
        for _ in 0..6 {
            s.push(session("gw-b", vec![]));
        }
        s[4].max_gap_ms = 1_000;
        s[0].max_gap_ms = 2_700;
        let r = disruption(&s, 10, window(0), LIMITS, ReconnectLike::Browser);
        assert_eq!(r.opened, 10);
        assert_eq!(r.dropped.sessions, 4);
        assert_eq!(r.dropped.events, 4);
        assert_eq!(r.dropped.percent, 40.0);
        assert_eq!(r.reconnected, 3);
        assert_eq!(r.lost, 1);
        assert_eq!(r.reconnected + r.lost, r.dropped.sessions);
        assert_eq!(
            r.dropped.by_cause,
            vec![
                CauseCount {
                    cause: "close_frame".into(),
                    text: "close frame",
                    count: 3
                },
                CauseCount {
                    cause: "eof".into(),
                    text: "EOF",
                    count: 1
                }
            ]
        );
        let t = r.reconnect.unwrap();
        assert_eq!(
            (t.count, t.p50_ms, t.p99_ms, t.max_ms),
            (3, 900, 1400, 1400)
        );
        assert_eq!(r.attempts.made, 1 + 3 + 1 + 3);
        assert_eq!(r.attempts.failed, 2 + 3);
        assert_eq!(r.attempts.failed_by_cause[0].cause, "http503");
        assert_eq!(r.attempts.failed_by_cause[0].count, 4);
        assert_eq!(r.moved, 3);
        assert_eq!(
            r.moves,
            vec![
                Move {
                    from: "gw-a".into(),
                    to: "gw-b".into(),
                    sessions: 3
                },
                Move {
                    from: "gw-a".into(),
                    to: LOST.into(),
                    sessions: 1
                },
            ]
        );
        assert_eq!(r.longest_heartbeat_gap_ms, Some(2_700));
        assert_eq!(r.landed.len(), 1);
        assert_eq!(r.landed[0].target, Outside::new("gw-b"));
        assert_eq!(r.landed[0].reconnects, 3);
        assert_eq!(r.landed[0].percent, 100.0);
        // Back at 5.6, 5.901 and 6.402 s: all three within one second.
        assert_eq!(r.landed[0].peak_per_s, 3);
        assert!(r.targets.is_none());

        // The verdicts: one lost fails at --max-lost 0, passes at 1.
        let c = disruption_check(&r);
        assert_eq!(c.status, CheckStatus::Fail, "{}", c.message);
        assert!(
            c.message.starts_with(
                "4 of 10 sessions dropped (40%: 3 × close frame, 1 × EOF); 3 reconnected, 1 lost (1 × still trying at the end); 3 moved"
            ),
            "{}",
            c.message
        );
        assert!(
            c.message.contains("1 lost, more than --max-lost 0"),
            "{}",
            c.message
        );
        let r1 = disruption(
            &s,
            10,
            window(0),
            Limits {
                max_lost: 1,
                ..LIMITS
            },
            ReconnectLike::Browser,
        );
        assert_eq!(disruption_check(&r1).status, CheckStatus::Pass);
        let rc = reconnect_check(&r1);
        assert_eq!(rc.status, CheckStatus::Pass);
        assert!(
            rc.message
                .starts_with("reconnect p50 900 ms, p99 1.4 s, max 1.4 s over 3 reconnect(s)"),
            "{}",
            rc.message
        );
        assert!(
            rc.message
                .contains("8 attempt(s), 5 failed (4 × HTTP 503, 1 × connection refused)"),
            "{}",
            rc.message
        );
        assert!(
            rc.message.contains("landed on gw-b 3 (100%, peak 3/s)"),
            "{}",
            rc.message
        );
        // Thresholds on the drop rate and the reconnect p99.
        let strict = Limits {
            max_lost: 1,
            max_drop_rate: Some(0.3),
            max_reconnect_p99_ms: Some(1_000),
        };
        let r2 = disruption(&s, 10, window(0), strict, ReconnectLike::Browser);
        let c = disruption_check(&r2);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.message.contains("40% dropped, above --max-drop-rate 30%"),
            "{}",
            c.message
        );
        let rc = reconnect_check(&r2);
        assert_eq!(rc.status, CheckStatus::Fail);
        assert!(
            rc.message.contains("above --max-reconnect-p99 1 s"),
            "{}",
            rc.message
        );
        let table = render_table(&r2);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(rows.contains(&vec!["gw-a", "→", "gw-b", "3"]), "{table}");
        assert!(rows.contains(&vec!["gw-a", "→", "(lost)", "1"]), "{table}");
        assert!(
            rows.contains(&vec!["gw-b", "3", "(100%,", "peak", "3/s)"]),
            "{table}"
        );
    }

    #[test]
    fn nothing_dropped_and_everything_lost() {
        let s = vec![session("gw-a", vec![]), session("gw-b", vec![])];
        let r = disruption(&s, 2, window(0), LIMITS, ReconnectLike::Browser);
        assert_eq!(r.dropped.sessions, 0);
        assert_eq!(r.dropped.percent, 0.0);
        assert!(r.reconnect.is_none());
        assert!(r.moves.is_empty());
        assert_eq!(disruption_check(&r).status, CheckStatus::Pass);
        assert_eq!(disruption_check(&r).message, "no session of 2 dropped");
        assert_eq!(reconnect_check(&r).status, CheckStatus::Skip);
        assert_eq!(render_table(&r), "");

        let s = vec![
            session("gw-a", vec![drop_at(100, "gw-a", None, None)]),
            session("gw-b", vec![drop_at(120, "gw-b", None, None)]),
        ];
        let r = disruption(&s, 2, window(0), LIMITS, ReconnectLike::Browser);
        assert_eq!((r.dropped.sessions, r.reconnected, r.lost), (2, 0, 2));
        assert_eq!(r.moved, 0);
        assert_eq!(disruption_check(&r).status, CheckStatus::Fail);
        let rc = reconnect_check(&r);
        assert_eq!(rc.status, CheckStatus::Warn);
        assert!(
            rc.message.starts_with(
                "none of the 2 dropped session(s) came back; 6 attempt(s), 6 failed (6 × HTTP 503)"
            ),
            "{}",
            rc.message
        );
        // Empty run.
        let r = disruption(&[], 5, window(0), LIMITS, ReconnectLike::Browser);
        assert_eq!(r.opened, 0);
        assert_eq!(r.dropped.percent, 0.0);
    }

    #[test]
    fn a_rollout_old_and_new_targets_and_the_window() {
        // Rollout from 10 s: old-1 and old-2 are replaced by new-1 and new-2.
        let s = vec![
            // Dropped before the rollout and reconnected onto old-2 then: not counted, old-2 old.
            session(
                "old-1",
                vec![
                    drop_at(2_000, "old-1", Some("old-2"), Some(800)),
                    drop_at(15_000, "old-2", Some("new-1"), Some(1_100)),
                ],
            ),
            session(
                "old-1",
                vec![drop_at(14_000, "old-1", Some("new-1"), Some(700))],
            ),
            session(
                "old-2",
                vec![drop_at(15_000, "old-2", Some("new-2"), Some(900))],
            ),
            // Landed on old-2 first (still serving), dropped again at the end of its drain.
            session(
                "old-1",
                vec![
                    drop_at(14_000, "old-1", Some("old-2"), Some(500)),
                    drop_at(15_000, "old-2", Some("new-2"), Some(1_300)),
                ],
            ),
            // Never dropped: still on an old target at the end.
            session("old-2", vec![]),
            // Dropped before the window, never back.
            session("old-1", vec![drop_at(1_000, "old-1", None, None)]),
        ];
        let w = Window {
            since_ms: 10_000,
            until_ms: 30_000,
            old_and_new: true,
            rollout_succeeded: Some(true),
        };
        let r = disruption(&s, 6, w, LIMITS, ReconnectLike::Browser);
        assert_eq!(r.dropped.sessions, 4);
        assert_eq!(r.dropped.events, 5);
        assert_eq!(r.dropped_before_window, 1);
        assert_eq!((r.reconnected, r.lost), (4, 0));
        assert_eq!(r.moved, 4);
        let t = r.targets.as_ref().unwrap();
        assert_eq!(t.old, [Outside::new("old-1"), Outside::new("old-2")]);
        assert_eq!(t.new, [Outside::new("new-1"), Outside::new("new-2")]);
        // The session lost before the window is not open at the end.
        assert_eq!(t.open_at_end, 5);
        // Where they ended, with the spacing each target runs.
        let ended: Vec<(String, u64, Option<u64>)> = r
            .ended_on
            .iter()
            .map(|e| (e.target.to_string(), e.sessions, e.heartbeat_spacing_ms))
            .collect();
        assert_eq!(
            ended,
            [
                ("new-1".to_string(), 2, Some(1500)),
                ("new-2".to_string(), 2, Some(1500)),
                ("old-2".to_string(), 1, Some(30_000))
            ]
        );
        assert_eq!((t.ended_on_new, t.ended_on_old, t.ended_unknown), (4, 1, 0));
        // The table is by the target each session dropped from first in the window.
        assert_eq!(
            r.moves,
            vec![
                Move {
                    from: "old-1".into(),
                    to: "new-1".into(),
                    sessions: 1
                },
                Move {
                    from: "old-1".into(),
                    to: "new-2".into(),
                    sessions: 1
                },
                Move {
                    from: "old-2".into(),
                    to: "new-1".into(),
                    sessions: 1
                },
                Move {
                    from: "old-2".into(),
                    to: "new-2".into(),
                    sessions: 1
                },
            ]
        );
        // Reconnects in the window: new-1 took 2, new-2 2, old-2 1.
        let landed: Vec<(String, u64)> = r
            .landed
            .iter()
            .map(|l| (l.target.to_string(), l.reconnects))
            .collect();
        assert_eq!(
            landed,
            [
                ("new-1".to_string(), 2),
                ("new-2".to_string(), 2),
                ("old-2".to_string(), 1)
            ]
        );
        let c = disruption_check(&r);
        assert_eq!(c.status, CheckStatus::Warn, "{}", c.message);
        assert!(
            c.message
                .contains("4 of 5 open sessions ended on new targets, 1 still on an old one"),
            "{}",
            c.message
        );
        let table = render_table(&r);
        assert!(table.contains("old targets: old-1, old-2"), "{table}");
        assert!(table.contains("new targets: new-1, new-2"), "{table}");
        // After a failed rollout, sessions on old targets are expected.
        let r = disruption(
            &s,
            6,
            Window {
                rollout_succeeded: Some(false),
                ..w
            },
            LIMITS,
            ReconnectLike::Browser,
        );
        assert_eq!(disruption_check(&r).status, CheckStatus::Pass);
    }

    #[test]
    fn peaks_per_second() {
        assert_eq!(peak_per_second(&mut []), 0);
        assert_eq!(peak_per_second(&mut [5]), 1);
        assert_eq!(peak_per_second(&mut [0, 999, 1000, 1999, 2000]), 2);
        assert_eq!(peak_per_second(&mut [3000, 100, 200, 300, 2500]), 3);
    }
}
