//! The sessions over time, for the picture of the run (`--html`): how many each target held
//! at every step, and the drops and reconnects in each. Pure: built from the same timelines
//! as the report (each session's open and end, its drops with their targets), at most
//! [`MAX_STEPS`] steps, so a long deploy costs a few kilobytes.

use std::collections::BTreeMap;

use super::{marker, SessionLine, UNKNOWN};
use crate::outside::Outside;

/// Steps in a series at most: a step is one second, or more on a long run.
pub const MAX_STEPS: u64 = 600;

/// The series, steps of `step_ms` from the probe's start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionSeries {
    pub step_ms: u64,
    pub duration_ms: u64,
    /// The probe's start on the wall clock (ms since the Unix epoch), to place the rollout's
    /// moments and CloudWatch's minutes beside it.
    pub started_unix_ms: i64,
    /// Sessions open on each target at the middle of each step, targets in name order.
    pub held: Vec<(Outside, Vec<u32>)>,
    pub drops: Vec<u32>,
    pub reconnects: Vec<u32>,
}

/// One session that opened: when (ms from the probe's start), when it ended, its timeline.
pub struct Lived<'a> {
    pub opened_ms: u64,
    pub gone_ms: u64,
    pub line: &'a SessionLine<'a>,
}

/// Step lengths a reader counts in, in milliseconds.
const STEPS_MS: [u64; 12] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
];

/// The shortest step of [`STEPS_MS`] that keeps the run within [`MAX_STEPS`] (a tenth of a
/// second for a one-minute probe, a second for a ten-minute deploy), else whole minutes.
pub fn step_for(duration_ms: u64) -> u64 {
    STEPS_MS
        .iter()
        .copied()
        .find(|s| duration_ms.div_ceil(*s) <= MAX_STEPS)
        .unwrap_or_else(|| duration_ms.div_ceil(MAX_STEPS * 60_000) * 60_000)
}

/// The series of `sessions` over a run of `duration_ms`, in steps of `step` ms (from
/// [`step_for`]).
pub fn series(
    sessions: &[Lived],
    duration_ms: u64,
    step: u64,
    started_unix_ms: i64,
) -> SessionSeries {
    let step = step.max(1);
    let steps = duration_ms.div_ceil(step).max(1) as usize;
    let at = |ms: u64| ((ms / step) as usize).min(steps - 1);
    let mut drops = vec![0u32; steps];
    let mut reconnects = vec![0u32; steps];
    // Per target, +1 where a stretch begins to count and -1 where it stops.
    let mut diff: BTreeMap<Outside, Vec<i64>> = BTreeMap::new();
    let mut hold = |target: Option<&Outside>, from: u64, to: u64| {
        let (first, end) = (covered(from, step), covered(to, step));
        let (first, end) = (first.min(steps), end.min(steps));
        if first < end {
            let name = target.cloned().unwrap_or_else(|| marker(UNKNOWN));
            let d = diff.entry(name).or_insert_with(|| vec![0; steps + 1]);
            d[first] += 1;
            d[end] -= 1;
        }
    };
    for s in sessions {
        let mut on = s.line.first;
        let mut since = Some(s.opened_ms);
        for d in &s.line.drops {
            if let Some(from) = since {
                hold(on, from, d.at_ms);
            }
            drops[at(d.at_ms)] = drops[at(d.at_ms)].saturating_add(1);
            since = d.back_ms.map(|b| d.at_ms + b as u64);
            if let Some(back) = since {
                reconnects[at(back)] = reconnects[at(back)].saturating_add(1);
            }
            on = d.to;
        }
        if let Some(from) = since {
            hold(on, from, s.gone_ms.max(from));
        }
    }
    let held = diff
        .into_iter()
        .map(|(target, d)| {
            let mut n = 0i64;
            let counts = d[..steps]
                .iter()
                .map(|x| {
                    n += x;
                    n.clamp(0, u32::MAX as i64) as u32
                })
                .collect();
            (target, counts)
        })
        .collect();
    SessionSeries {
        step_ms: step,
        duration_ms,
        started_unix_ms,
        held,
        drops,
        reconnects,
    }
}

/// The first step whose middle (`i * step + step / 2`) is at or after `ms`.
fn covered(ms: u64, step: u64) -> usize {
    let half = step / 2;
    if ms <= half {
        0
    } else {
        (ms - half).div_ceil(step) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::super::DropLine;
    use super::*;
    use crate::gateway::probe::DropCause;

    fn drop_at<'a>(
        at_ms: u64,
        from: &'a Outside,
        to: Option<&'a Outside>,
        back: Option<u32>,
    ) -> DropLine<'a> {
        DropLine {
            recovered: false,
            at_ms,
            cause: DropCause::CloseFrame,
            from: Some(from),
            to,
            back_ms: back,
            attempts: 1,
            failed: Default::default(),
            lost: None,
        }
    }

    #[test]
    fn steps_are_seconds_and_stay_few() {
        assert_eq!(step_for(0), 100);
        assert_eq!(step_for(5_000), 100);
        assert_eq!(step_for(60_000), 100);
        assert_eq!(step_for(60_001), 200);
        assert_eq!(step_for(600_000), 1000, "a ten-minute deploy: per second");
        assert_eq!(step_for(600_001), 2000);
        assert_eq!(step_for(3_600_000), 10_000);
        assert_eq!(
            step_for(1_000 * 3_600_000),
            6_000_000,
            "whole minutes beyond"
        );
        // The middle of step i is at i * step + step / 2.
        assert_eq!(covered(0, 1000), 0);
        assert_eq!(covered(499, 1000), 0);
        assert_eq!(covered(500, 1000), 0, "the middle itself counts");
        assert_eq!(covered(501, 1000), 1);
        assert_eq!(covered(1500, 1000), 1);
        assert_eq!(covered(1501, 1000), 2);
    }

    #[test]
    fn sessions_move_from_target_to_target() {
        let (a, b) = (Outside::new("gw-a"), Outside::new("gw-b"));
        // Two sessions on a from 0 s; one drops at 2.2 s and is back on b at 2.7 s; the other
        // drops at 2.2 s and is lost. The run ends at 5 s.
        let moved = SessionLine {
            first: Some(&a),
            drops: vec![drop_at(2_200, &a, Some(&b), Some(500))],
            max_gap_ms: 0,
            spacing_ms: None,
        };
        let lost = SessionLine {
            first: Some(&a),
            drops: vec![drop_at(2_200, &a, None, None)],
            max_gap_ms: 0,
            spacing_ms: None,
        };
        let calm = SessionLine {
            first: None,
            drops: vec![],
            max_gap_ms: 0,
            spacing_ms: None,
        };
        let lived = [
            Lived {
                opened_ms: 100,
                gone_ms: 5_000,
                line: &moved,
            },
            Lived {
                opened_ms: 100,
                gone_ms: 5_000,
                line: &lost,
            },
            Lived {
                opened_ms: 1_600,
                gone_ms: 5_000,
                line: &calm,
            },
        ];
        let s = series(&lived, 5_000, 1_000, 1_700_000_000_000);
        assert_eq!(s.step_ms, 1000);
        assert_eq!(s.drops, vec![0, 0, 2, 0, 0]);
        assert_eq!(s.reconnects, vec![0, 0, 1, 0, 0]);
        let by: BTreeMap<String, Vec<u32>> = s
            .held
            .iter()
            .map(|(t, c)| (t.shown(50), c.clone()))
            .collect();
        assert_eq!(by["gw-a"], vec![2, 2, 0, 0, 0]);
        assert_eq!(
            by["gw-b"],
            vec![0, 0, 0, 1, 1],
            "back at 2.7 s: held from step 3"
        );
        assert_eq!(
            by[UNKNOWN],
            vec![0, 0, 1, 1, 1],
            "opened at 1.6 s: from step 2"
        );
    }

    #[test]
    fn nothing_opened_gives_empty_series() {
        let s = series(&[], 0, step_for(0), 0);
        assert!(s.held.is_empty());
        assert_eq!(s.drops, vec![0]);
        // A drop after the end is counted in the last step.
        let a = Outside::new("a");
        let late = SessionLine {
            first: Some(&a),
            drops: vec![drop_at(9_000, &a, Some(&a), Some(5_000))],
            max_gap_ms: 0,
            spacing_ms: None,
        };
        let s = series(
            &[Lived {
                opened_ms: 0,
                gone_ms: 3_000,
                line: &late,
            }],
            3_000,
            1_000,
            0,
        );
        assert_eq!(s.drops, vec![0, 0, 1]);
        assert_eq!(s.reconnects, vec![0, 0, 1]);
        assert_eq!(s.held[0].1, vec![1, 1, 1]);
    }
}
