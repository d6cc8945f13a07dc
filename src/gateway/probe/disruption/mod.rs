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
    /// The reconnect resumed the session (connection state recovery).
    pub recovered: bool,
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
    /// Reconnects that resumed their session (connection state recovery: the CONNECT answer
    /// named the pid the session had); the other reconnects started fresh.
    pub recovered: u64,
    /// The gateway offered recovery: some CONNECT answer carried a pid.
    pub recovery_offered: bool,
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
    /// The drops by wall-clock second, for a shard's document (`report merge --deploy`).
    #[serde(skip)]
    pub seconds: Vec<seconds::DropSecond>,
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
    recovered: u64,
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
            self.recovered += u64::from(d.recovered);
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
        recovered: t.recovered,
        recovery_offered: false,
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
        seconds: Vec::new(),
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

pub mod seconds;
pub mod series;
mod shape;
mod verdicts;
pub use shape::DropShape;
pub use verdicts::{checks, render_table};

#[cfg(test)]
mod tests;
