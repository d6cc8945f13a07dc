//! `report merge` for `--reconnect` shards: their disruption parts summed into one, and the
//! disruption report of the whole run rebuilt from it for the verdicts and the from→to table.

use std::collections::BTreeMap;

use super::disruption::{
    self, seconds, AttemptReport, CauseCount, DisruptionReport, Dropped, Move, ReconnectTimes,
};
use super::shard::DisruptionPart;
use crate::gateway::histogram::LogHistogram;
use crate::outside::Outside;

/// The shards' disruption parts as one: counts and tables summed, the reconnect times'
/// histograms merged, the longest heartbeat gap the longest of all.
pub(super) fn merge_disruption<'a>(
    parts: impl Iterator<Item = &'a DisruptionPart>,
) -> DisruptionPart {
    let parts: Vec<&DisruptionPart> = parts.collect();
    let sum = |f: fn(&DisruptionPart) -> u64| parts.iter().map(|p| f(p)).sum::<u64>();
    let causes = |f: fn(&DisruptionPart) -> &Vec<(String, u64)>| {
        sum_by(parts.iter().flat_map(|p| f(p).iter().cloned()))
    };
    let moves = sum_by(
        parts
            .iter()
            .flat_map(|p| p.moves.iter().map(|(a, b, n)| ((a.clone(), b.clone()), *n))),
    );
    DisruptionPart {
        opened: sum(|p| p.opened),
        dropped_sessions: sum(|p| p.dropped_sessions),
        drop_events: sum(|p| p.drop_events),
        dropped_by_cause: causes(|p| &p.dropped_by_cause),
        reconnected: sum(|p| p.reconnected),
        lost: sum(|p| p.lost),
        recovered: sum(|p| p.recovered),
        recovery_offered: parts.iter().any(|p| p.recovery_offered),
        lost_by_cause: causes(|p| &p.lost_by_cause),
        reconnect_like: parts[0].reconnect_like,
        moved: sum(|p| p.moved),
        moves: moves.into_iter().map(|((a, b), n)| (a, b, n)).collect(),
        attempts_made: sum(|p| p.attempts_made),
        attempts_failed: sum(|p| p.attempts_failed),
        attempts_failed_by_cause: causes(|p| &p.attempts_failed_by_cause),
        longest_heartbeat_gap_ms: parts
            .iter()
            .filter_map(|p| p.longest_heartbeat_gap_ms)
            .max(),
        dropped_before_window: sum(|p| p.dropped_before_window),
        limits: parts[0].limits,
        back_ms: parts
            .iter()
            .fold(LogHistogram::default(), |h, p| h.merge(&p.back_ms)),
        started_unix_ms: parts
            .iter()
            .map(|p| p.started_unix_ms)
            .filter(|s| *s > 0)
            .min()
            .unwrap_or(0),
        seconds: seconds::merge(parts.iter().map(|p| p.seconds.as_slice())),
    }
}

/// The disruption report of the whole run, for its verdicts and the from→to table. Not
/// carried by a shard: the reconnects per target with their busiest second, where sessions
/// ended, old and new targets; those tables are empty.
pub(super) fn disruption_report(d: &DisruptionPart, connections: u32) -> DisruptionReport {
    let causes = |c: &[(String, u64)]| {
        c.iter()
            .map(|(cause, count)| CauseCount {
                cause: cause.clone(),
                text: disruption::cause_text(cause).unwrap_or("other"),
                count: *count,
            })
            .collect()
    };
    let percent = if d.opened == 0 {
        0.0
    } else {
        (d.dropped_sessions as f64 * 1000.0 / d.opened as f64).round() / 10.0
    };
    let b = &d.back_ms;
    DisruptionReport {
        connections,
        opened: d.opened,
        since_ms: 0,
        until_ms: 0,
        dropped: Dropped {
            sessions: d.dropped_sessions,
            percent,
            events: d.drop_events,
            by_cause: causes(&d.dropped_by_cause),
        },
        reconnected: d.reconnected,
        recovered: d.recovered,
        recovery_offered: d.recovery_offered,
        lost: d.lost,
        lost_by_cause: d
            .lost_by_cause
            .iter()
            .map(|(cause, count)| CauseCount {
                cause: cause.clone(),
                text: disruption::lost_cause_text(cause).unwrap_or("other"),
                count: *count,
            })
            .collect(),
        reconnect_like: d.reconnect_like,
        reconnect: (b.count > 0).then(|| ReconnectTimes {
            count: b.count,
            p50_ms: b.percentile(50.0).unwrap_or(0),
            p99_ms: b.percentile(99.0).unwrap_or(0),
            max_ms: b.max,
        }),
        attempts: AttemptReport {
            made: d.attempts_made,
            failed: d.attempts_failed,
            failed_by_cause: causes(&d.attempts_failed_by_cause),
        },
        moved: d.moved,
        moves: d
            .moves
            .iter()
            .map(|(from, to, n)| Move {
                from: Outside::new(from),
                to: Outside::new(to),
                sessions: *n,
            })
            .collect(),
        longest_heartbeat_gap_ms: d.longest_heartbeat_gap_ms,
        landed: Vec::new(),
        drop_shape: None,
        ended_on: Vec::new(),
        targets: None,
        dropped_before_window: d.dropped_before_window,
        limits: d.limits,
        back_ms: d.back_ms.clone(),
        series: None,
        seconds: Vec::new(),
    }
}

/// Sums equal keys; most first, ties by key (as `stats::group` orders them).
pub(super) fn sum_by<K: Ord + Clone>(rows: impl IntoIterator<Item = (K, u64)>) -> Vec<(K, u64)> {
    let mut m: BTreeMap<K, u64> = BTreeMap::new();
    for (k, n) in rows {
        *m.entry(k).or_default() += n;
    }
    let mut v: Vec<(K, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}
