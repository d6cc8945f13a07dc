//! A `--reconnect` shard's drops by wall-clock second, so `report merge --deploy` can count
//! them from the start of a rollout that ran somewhere else and whose start the shards never
//! knew. Sparse: one row per second in which something dropped, a few dozen for a deploy.
//!
//! Exact at the second: a session dropped at or after a moment exactly when its *last* drop
//! was, so the rows count sessions by their last drop's second, and the drops and their
//! causes by their own. A drop in the very second a rollout started counts as the rollout's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{snake, LostCause, SessionLine};

/// What dropped in one second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropSecond {
    /// Unix seconds.
    pub at: i64,
    /// Drops noticed in this second.
    pub drops: u64,
    /// `(cause, drops)`, causes as JSON keys.
    pub by_cause: Vec<(String, u64)>,
    /// Sessions whose last drop was in this second.
    pub sessions: u64,
    /// Of those, the ones that never came back, by why (`(cause, sessions)`).
    pub lost_by_cause: Vec<(String, u64)>,
}

impl DropSecond {
    pub fn lost(&self) -> u64 {
        self.lost_by_cause
            .iter()
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }
}

/// Drops, dropped sessions and lost sessions counted over some seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub drops: u64,
    pub sessions: u64,
    pub lost: u64,
    #[serde(skip)]
    pub by_cause: Vec<(String, u64)>,
    #[serde(skip)]
    pub lost_by_cause: Vec<(String, u64)>,
}

fn add_to(map: &mut BTreeMap<String, u64>, rows: &[(String, u64)]) {
    for (k, n) in rows {
        let v = map.entry(k.clone()).or_default();
        *v = v.saturating_add(*n);
    }
}

/// Row of the second `unix_ms` falls in.
fn row(rows: &mut BTreeMap<i64, DropSecond>, unix_ms: i64) -> &mut DropSecond {
    let at = unix_ms.div_euclid(1000);
    rows.entry(at).or_insert_with(|| DropSecond {
        at,
        ..DropSecond::default()
    })
}

/// The rows of `sessions`, whose drop times count from `started_unix_ms`.
pub fn of_sessions(sessions: &[SessionLine], started_unix_ms: i64) -> Vec<DropSecond> {
    let mut rows = BTreeMap::new();
    let mut causes: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut lost: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    for s in sessions {
        for d in &s.drops {
            let at = started_unix_ms + d.at_ms as i64;
            row(&mut rows, at).drops += 1;
            *causes
                .entry(at.div_euclid(1000))
                .or_default()
                .entry(snake(d.cause))
                .or_default() += 1;
        }
        if let Some(last) = s.drops.last() {
            let at = started_unix_ms + last.at_ms as i64;
            row(&mut rows, at).sessions += 1;
            if s.lost() {
                let why = last.lost.unwrap_or(LostCause::StillTrying);
                *lost
                    .entry(at.div_euclid(1000))
                    .or_default()
                    .entry(snake(why))
                    .or_default() += 1;
            }
        }
    }
    rows.into_values()
        .map(|mut r| {
            r.by_cause = causes
                .remove(&r.at)
                .unwrap_or_default()
                .into_iter()
                .collect();
            r.lost_by_cause = lost.remove(&r.at).unwrap_or_default().into_iter().collect();
            r
        })
        .collect()
}

/// The rows of several shards as one: summed by second.
pub fn merge<'a>(parts: impl Iterator<Item = &'a [DropSecond]>) -> Vec<DropSecond> {
    /// A second's row, its drops' causes and its lost sessions' causes, summed.
    type Sums = (DropSecond, BTreeMap<String, u64>, BTreeMap<String, u64>);
    let mut rows: BTreeMap<i64, Sums> = BTreeMap::new();
    for r in parts.flatten() {
        let (sum, causes, lost) = rows.entry(r.at).or_insert_with(|| {
            (
                DropSecond {
                    at: r.at,
                    ..DropSecond::default()
                },
                BTreeMap::new(),
                BTreeMap::new(),
            )
        });
        sum.drops = sum.drops.saturating_add(r.drops);
        sum.sessions = sum.sessions.saturating_add(r.sessions);
        add_to(causes, &r.by_cause);
        add_to(lost, &r.lost_by_cause);
    }
    rows.into_values()
        .map(|(mut r, causes, lost)| {
            r.by_cause = causes.into_iter().collect();
            r.lost_by_cause = lost.into_iter().collect();
            r
        })
        .collect()
}

/// What the rows of seconds `from..until` (Unix seconds; `None`: unbounded) count.
pub fn count(rows: &[DropSecond], from: Option<i64>, until: Option<i64>) -> Counted {
    let mut c = Counted::default();
    let (mut causes, mut lost) = (BTreeMap::new(), BTreeMap::new());
    let inside = |at: i64| from.is_none_or(|f| at >= f) && until.is_none_or(|u| at < u);
    for r in rows.iter().filter(|r| inside(r.at)) {
        c.drops = c.drops.saturating_add(r.drops);
        c.sessions = c.sessions.saturating_add(r.sessions);
        c.lost = c.lost.saturating_add(r.lost());
        add_to(&mut causes, &r.by_cause);
        add_to(&mut lost, &r.lost_by_cause);
    }
    c.by_cause = causes.into_iter().collect();
    c.lost_by_cause = lost.into_iter().collect();
    c
}

#[cfg(test)]
mod tests {
    use super::super::{DropLine, SessionLine};
    use super::*;
    use crate::gateway::probe::timeline::{DropCause, ATTEMPT_CAUSES};
    use proptest::prelude::*;

    fn drop(at_ms: u64, back: Option<u32>) -> DropLine<'static> {
        DropLine {
            at_ms,
            cause: DropCause::CloseFrame,
            from: None,
            to: None,
            back_ms: back,
            attempts: 1,
            failed: [0; ATTEMPT_CAUSES],
            lost: None,
            recovered: false,
        }
    }

    fn session(drops: Vec<DropLine<'static>>) -> SessionLine<'static> {
        SessionLine {
            first: None,
            drops,
            max_gap_ms: 0,
            spacing_ms: None,
        }
    }

    #[test]
    fn sessions_count_at_their_last_drop() {
        // Started at 10.5 s: a drop at 0.4 s is in second 10, at 0.6 s in second 11.
        let s = [
            session(vec![drop(400, Some(100)), drop(2_600, Some(50))]),
            session(vec![drop(600, None)]),
            session(vec![]),
        ];
        let rows = of_sessions(&s, 10_500);
        let at: Vec<(i64, u64, u64, u64)> = rows
            .iter()
            .map(|r| (r.at, r.drops, r.sessions, r.lost()))
            .collect();
        assert_eq!(at, [(10, 1, 0, 0), (11, 1, 1, 1), (13, 1, 1, 0)]);
        assert_eq!(rows[1].lost_by_cause, [("still_trying".to_string(), 1)]);
        assert_eq!(rows[0].by_cause, [("close_frame".to_string(), 1)]);
        // From second 11: the first session's second drop (it dropped in the window), the lost one.
        let c = count(&rows, Some(11), None);
        assert_eq!((c.drops, c.sessions, c.lost), (2, 2, 1));
        // From second 12: only the first session, once.
        let c = count(&rows, Some(12), None);
        assert_eq!((c.drops, c.sessions, c.lost), (1, 1, 0));
        // Before second 11 (until is exclusive).
        let c = count(&rows, None, Some(11));
        assert_eq!((c.drops, c.sessions), (1, 0));
        assert_eq!(count(&rows, Some(14), None), Counted::default());
    }

    proptest! {
        /// Any split of the same sessions into shards merges to the same rows, and the counts
        /// from any second equal the sessions' own.
        #[test]
        fn any_split_merges_to_the_same_rows(
            sessions in proptest::collection::vec(
                proptest::collection::vec((0u64..20_000, proptest::option::of(0u32..3_000)), 0..4),
                0..40,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..5),
            since in 0i64..25,
        ) {
            let lines: Vec<SessionLine> = sessions
                .iter()
                .map(|ds| {
                    let mut at: Vec<(u64, Option<u32>)> = ds.clone();
                    at.sort();
                    session(at.into_iter().map(|(a, b)| drop(a, b)).collect())
                })
                .collect();
            let whole = of_sessions(&lines, 0);
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(lines.len())).collect();
            bounds.push(0);
            bounds.push(lines.len());
            bounds.sort();
            let parts: Vec<Vec<DropSecond>> = bounds
                .windows(2)
                .map(|w| of_sessions(&lines[w[0]..w[1]], 0))
                .collect();
            let merged = merge(parts.iter().map(|p| p.as_slice()));
            prop_assert_eq!(&merged, &whole);
            let c = count(&merged, Some(since), None);
            let from_ms = since as u64 * 1000;
            let dropped = lines.iter().filter(|s| s.drops.iter().any(|d| d.at_ms >= from_ms)).count();
            let lost = lines
                .iter()
                .filter(|s| s.lost() && s.drops.iter().any(|d| d.at_ms >= from_ms))
                .count();
            let drops: usize = lines.iter().map(|s| s.drops.iter().filter(|d| d.at_ms >= from_ms).count()).sum();
            prop_assert_eq!(c.sessions, dropped as u64);
            prop_assert_eq!(c.lost, lost as u64);
            prop_assert_eq!(c.drops, drops as u64);
        }
    }
}
