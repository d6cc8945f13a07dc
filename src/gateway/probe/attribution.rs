//! `report merge --deploy`: the drops of shards that held sessions while a rollout ran
//! somewhere else (a CI matrix beside the deploy job, or tasks on ECS), placed against that
//! rollout as `deploy --under-load` places its own: the disruption is counted from the
//! rollout's start, and every drop is put in the phase it happened in (before the rollout,
//! each stage of a native deployment, after the rollout ended). Pure: the caller reads the
//! deploy's document into a [`RolloutWindow`].
//!
//! Exact at the second for the drops, the dropped and lost sessions and their causes (from
//! the shards' [`DropSecond`] rows); the reconnect times, attempts and the from→to table are
//! the whole hold's (a shard keeps no per-second histograms), which the report says when
//! anything dropped before the rollout.

use std::time::Duration;

use serde::Serialize;

use super::disruption::seconds::{self, DropSecond};
use super::shard::{DisruptionPart, ShardPart};
use crate::duration::rfc3339_of_ms as text_at;
use crate::report::{Check, CheckStatus};

/// The rollout the drops are placed against, from the deploy's JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutWindow {
    /// What names it (the deployment id).
    pub name: String,
    pub started_unix_ms: i64,
    /// `None`: the document says it never ended (interrupted).
    pub ended_unix_ms: Option<i64>,
    /// Moments that open a phase inside the rollout (a native stage's start), any order.
    pub moments: Vec<(i64, String)>,
}

/// The drops of one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseCount {
    pub phase: String,
    /// Unix ms (`None`: open-ended).
    pub from_unix_ms: Option<i64>,
    pub until_unix_ms: Option<i64>,
    /// Counted in the disruption (from the rollout's start on).
    pub counted: bool,
    pub drops: u64,
    /// Sessions whose last drop was in this phase, and the lost among them.
    pub sessions: u64,
    pub lost: u64,
}

/// Where the merged shards' drops fell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub deployment: String,
    pub rollout_started_unix_ms: i64,
    pub rollout_ended_unix_ms: Option<i64>,
    pub phases: Vec<PhaseCount>,
    /// Shards whose hold did not cover the rollout (`I/K: why`).
    pub uncovered: Vec<String>,
}

const BEFORE: &str = "before the rollout (not counted)";

/// The phases of `w`: before it, from its start (and each moment inside it), after its end.
pub fn phases(rows: &[DropSecond], w: &RolloutWindow) -> Vec<PhaseCount> {
    let sec = |ms: i64| ms.div_euclid(1000);
    let mut bounds: Vec<(i64, String)> = vec![(w.started_unix_ms, "rollout started".into())];
    let inside = |ms: i64| ms > w.started_unix_ms && w.ended_unix_ms.is_none_or(|e| ms < e);
    let mut moments: Vec<(i64, String)> = w
        .moments
        .iter()
        .filter(|(at, _)| inside(*at))
        .cloned()
        .collect();
    moments.sort();
    bounds.extend(moments);
    if let Some(e) = w.ended_unix_ms {
        bounds.push((e.max(w.started_unix_ms), "after the rollout ended".into()));
    }
    let mut out = vec![phase(
        rows,
        BEFORE.into(),
        None,
        Some(w.started_unix_ms),
        false,
    )];
    for (i, (at, label)) in bounds.iter().enumerate() {
        let until = bounds.get(i + 1).map(|b| b.0);
        let p = phase(rows, label.clone(), Some(*at), until, true);
        // Seconds: a phase shorter than one second shares its rows with the next; keep it, so
        // the stages read in order, but only the first of equal seconds counts them.
        let same = until.is_some_and(|u| sec(u) == sec(*at));
        out.push(if same {
            PhaseCount {
                drops: 0,
                sessions: 0,
                lost: 0,
                ..p
            }
        } else {
            p
        });
    }
    out
}

fn phase(
    rows: &[DropSecond],
    name: String,
    from: Option<i64>,
    until: Option<i64>,
    counted: bool,
) -> PhaseCount {
    let c = seconds::count(
        rows,
        from.map(|f| f.div_euclid(1000)),
        until.map(|u| u.div_euclid(1000)),
    );
    PhaseCount {
        phase: name,
        from_unix_ms: from,
        until_unix_ms: until,
        counted,
        drops: c.drops,
        sessions: c.sessions,
        lost: c.lost,
    }
}

/// The merged disruption counted from the rollout's start (`since_unix_ms`), as a
/// `deploy --under-load` counts its own: drops, dropped and lost sessions and their causes
/// from the rows; the sessions that dropped only before move to `dropped_before_window`.
pub fn rewindow(d: &DisruptionPart, since_unix_ms: i64) -> DisruptionPart {
    let c = seconds::count(&d.seconds, Some(since_unix_ms.div_euclid(1000)), None);
    let mut out = d.clone();
    let all = seconds::count(&d.seconds, None, None).sessions;
    out.dropped_sessions = c.sessions;
    out.drop_events = c.drops;
    out.lost = c.lost;
    out.reconnected = c.sessions.saturating_sub(c.lost);
    out.dropped_by_cause = super::merge_disruption::sum_by(c.by_cause);
    out.lost_by_cause = super::merge_disruption::sum_by(c.lost_by_cause);
    out.dropped_before_window = d.dropped_before_window + all.saturating_sub(c.sessions);
    out
}

/// The shards whose sessions were not all open when the rollout started or that stopped
/// holding before it ended, with why: their drops in the rollout are not all seen.
pub fn uncovered(parts: &[ShardPart], w: &RolloutWindow) -> Vec<String> {
    let text = text_at;
    let mut out = Vec::new();
    for p in parts {
        let name = format!("{}/{}", p.shard.index, p.shard.count);
        let start = p.disruption.as_ref().map_or(0, |d| d.started_unix_ms);
        if start <= 0 {
            out.push(format!("{name}: its report has no start time"));
            continue;
        }
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let open = start.saturating_add(ms(p.open_phase_ms));
        // The hold's end: after the opening, what it held (the run's end, which adds the
        // close, when an older shard did not say).
        let end = match p.held_ms {
            0 => start.saturating_add(ms(p.duration_ms)),
            held => open.saturating_add(ms(held)),
        };
        if open > w.started_unix_ms {
            out.push(format!(
                "{name}: its sessions were open at {}, after the rollout started at {}",
                text(open),
                text(w.started_unix_ms)
            ));
        } else if let Some(e) = w.ended_unix_ms.filter(|e| end < *e) {
            out.push(format!(
                "{name}: it stopped holding at {}, before the rollout ended at {}",
                text(end),
                text(e)
            ));
        } else if w.ended_unix_ms.is_none() && end <= w.started_unix_ms {
            out.push(format!(
                "{name}: it stopped holding before the rollout started"
            ));
        }
    }
    out
}

/// `rollout window`: fails when a shard did not hold through the whole rollout (its drops
/// there were not all seen); passes with where the drops fell.
pub fn check(a: &Attribution) -> Check {
    let before: u64 = a
        .phases
        .iter()
        .filter(|p| !p.counted)
        .map(|p| p.drops)
        .sum();
    let during: u64 = a.phases.iter().filter(|p| p.counted).map(|p| p.drops).sum();
    let Some(end) = a.rollout_ended_unix_ms else {
        // Fail closed: a rollout not followed to its end (--no-wait, an interrupt) cannot be
        // shown to lie within the shards' hold.
        return Check::new(
            "rollout window",
            CheckStatus::Fail,
            Duration::ZERO,
            format!(
                "rollout {} from {} was not followed to its end (deploy --no-wait, or interrupted), so the shards cannot be shown to have held through it; {during} drop(s) from its start, {before} before it",
                a.deployment,
                text_at(a.rollout_started_unix_ms)
            ),
        );
    };
    let span = format!(
        "{} from {} to {}",
        a.deployment,
        text_at(a.rollout_started_unix_ms),
        text_at(end)
    );
    if !a.uncovered.is_empty() {
        return Check::new(
            "rollout window",
            CheckStatus::Fail,
            Duration::ZERO,
            format!(
                "{} shard(s) did not hold through rollout {span}, so drops in it were not all seen: {}",
                a.uncovered.len(),
                a.uncovered.join("; ")
            ),
        );
    }
    let mut message = format!(
        "every shard held through rollout {span}: {during} drop(s) from its start, {before} before it (not counted)"
    );
    if before > 0 {
        message.push_str("; reconnect times, attempts and the from→to table cover the whole hold");
    }
    Check::new("rollout window", CheckStatus::Pass, Duration::ZERO, message)
}

/// The drops by phase, as the text output shows them.
pub fn table(a: &Attribution) -> String {
    let mut out = format!("drops by phase of {}:\n", a.deployment);
    for p in &a.phases {
        let from = p.from_unix_ms.map(text_at).unwrap_or_default();
        out.push_str(&format!(
            "  {:<20} {:<44} {:>7} drop(s) {:>7} session(s) {:>5} lost\n",
            from, p.phase, p.drops, p.sessions, p.lost
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64, drops: u64, sessions: u64, lost: u64) -> DropSecond {
        DropSecond {
            at,
            drops,
            by_cause: vec![("close_frame".into(), drops)],
            sessions,
            lost_by_cause: if lost > 0 {
                vec![("still_trying".into(), lost)]
            } else {
                vec![]
            },
        }
    }

    fn window() -> RolloutWindow {
        RolloutWindow {
            name: "ecs-svc/1".into(),
            started_unix_ms: 100_000,
            ended_unix_ms: Some(160_000),
            moments: vec![
                (130_000, "stage BAKE_TIME".into()),
                (110_000, "stage TEST_TRAFFIC_SHIFT".into()),
                (200_000, "outside, ignored".into()),
            ],
        }
    }

    #[test]
    fn drops_fall_in_their_phase() {
        let rows = [
            row(90, 2, 2, 0),
            row(100, 1, 1, 0),
            row(120, 5, 5, 1),
            row(165, 40, 40, 0),
        ];
        let p = phases(&rows, &window());
        let got: Vec<(&str, bool, u64, u64)> = p
            .iter()
            .map(|p| (p.phase.as_str(), p.counted, p.drops, p.lost))
            .collect();
        assert_eq!(
            got,
            [
                (BEFORE, false, 2, 0),
                ("rollout started", true, 1, 0),
                ("stage TEST_TRAFFIC_SHIFT", true, 5, 1),
                ("stage BAKE_TIME", true, 0, 0),
                ("after the rollout ended", true, 40, 0),
            ]
        );
        // Every drop is in exactly one phase.
        assert_eq!(p.iter().map(|p| p.drops).sum::<u64>(), 48);
    }

    #[test]
    fn a_phase_within_one_second_does_not_count_twice() {
        let mut w = window();
        w.moments = vec![(100_400, "stage A".into())];
        let p = phases(&[row(100, 3, 3, 0)], &w);
        assert_eq!(p.iter().map(|p| p.drops).sum::<u64>(), 3);
        assert_eq!(p[1].drops, 0, "{p:?}");
        assert_eq!(p[2].drops, 3);
    }

    fn part(rows: Vec<DropSecond>) -> DisruptionPart {
        let c = seconds::count(&rows, None, None);
        DisruptionPart {
            opened: 100,
            dropped_sessions: c.sessions,
            drop_events: c.drops,
            dropped_by_cause: vec![("close_frame".into(), c.drops)],
            reconnected: c.sessions - c.lost,
            lost: c.lost,
            recovered: 0,
            recovery_offered: false,
            lost_by_cause: vec![("still_trying".into(), c.lost)],
            reconnect_like: Default::default(),
            moved: 0,
            moves: vec![],
            attempts_made: 0,
            attempts_failed: 0,
            attempts_failed_by_cause: vec![],
            longest_heartbeat_gap_ms: None,
            dropped_before_window: 0,
            limits: super::super::disruption::Limits {
                max_lost: 0,
                max_drop_rate: None,
                max_reconnect_p99_ms: None,
            },
            back_ms: Default::default(),
            started_unix_ms: 1,
            seconds: rows,
        }
    }

    #[test]
    fn rewindow_counts_from_the_rollout() {
        let d = part(vec![row(90, 2, 2, 1), row(120, 5, 4, 1)]);
        let r = rewindow(&d, 100_000);
        assert_eq!(
            (
                r.dropped_sessions,
                r.drop_events,
                r.lost,
                r.reconnected,
                r.dropped_before_window
            ),
            (4, 5, 1, 3, 2)
        );
        assert_eq!(r.lost_by_cause, [("still_trying".to_string(), 1)]);
        // From before every drop: unchanged.
        assert_eq!(rewindow(&d, 0), d);
        // After every drop: nothing counted.
        let r = rewindow(&d, 121_000);
        assert_eq!(
            (r.dropped_sessions, r.lost, r.dropped_before_window),
            (0, 0, 6)
        );
    }

    #[test]
    fn shards_that_did_not_hold_through_are_named() {
        use super::super::shard::Shard;
        let w = window();
        let shard = |i: u32, start: i64, open: u64, dur: u64| {
            let mut p: ShardPart = serde_json::from_value(serde_json::json!({
                "run_id": "r", "version": "v", "shard": {"index": i, "count": 4},
                "total_connections": 8, "interrupted": false,
                "settings": {"url": "u", "namespace": "/", "concurrency": 1, "rate_limit": null,
                  "hold_ms": 0, "max_error_rate": 0.0, "max_p99_ms": null,
                  "heartbeat_interval_ms": 0, "slack_ms": 0},
                "counts": {"connections": 2, "opened": 2, "open_failed": 0, "dropped": 0,
                  "closed": 0, "close_failed": 0, "unknown_target": 0, "cookie_set": 0,
                  "heartbeats_received": 0, "heartbeats_acked": 0, "received_in_hold": 0,
                  "due_in_hold": 0},
                "open_phase_ms": open, "duration_ms": dur, "cookies_consistent": null,
                "connect_us": {"count": 0, "min": 0, "max": 0, "sum": 0, "buckets": []},
                "lateness_ms": {"count": 0, "min": 0, "max": 0, "sum": 0, "buckets": []},
                "targets": [], "failures": []
            }))
            .unwrap();
            assert_eq!(p.shard, Shard { index: i, count: 4 });
            let mut d = part(vec![]);
            d.started_unix_ms = start;
            p.disruption = Some(d);
            p
        };
        let parts = [
            shard(1, 90_000, 5_000, 80_000), // open at 95 s, held to 170 s: covers
            shard(2, 90_000, 15_000, 80_000), // open at 105 s: late
            shard(3, 90_000, 5_000, 60_000), // held to 150 s: short
            shard(4, 0, 0, 0),               // no start time
        ];
        let u = uncovered(&parts, &w);
        assert_eq!(u.len(), 3, "{u:?}");
        assert!(u[0].starts_with("2/4: its sessions were open at"), "{u:?}");
        assert!(u[1].starts_with("3/4: it stopped holding at"), "{u:?}");
        assert!(
            u[2].starts_with("4/4: its report has no start time"),
            "{u:?}"
        );
        // The hold's end, not the run's: opened at 95 s and held 50 s, it ended at 145 s, before
        // the rollout's 160 s, though the run (its close) went on to 170 s.
        let mut closing = shard(1, 90_000, 5_000, 80_000);
        closing.held_ms = 50_000;
        let u = uncovered(&[closing], &w);
        assert!(u.len() == 1 && u[0].contains("it stopped holding"), "{u:?}");
        // Hostile numbers: no overflow, the shard named.
        let mut huge = shard(1, 90_000, u64::MAX, 80_000);
        huge.held_ms = u64::MAX;
        assert_eq!(uncovered(&[huge], &w).len(), 1);
        // Exactly at the edges: covered.
        assert!(uncovered(&[shard(1, 90_000, 10_000, 70_000)], &w).is_empty());
    }

    fn attribution(uncovered: Vec<String>, before: u64) -> Attribution {
        let phase = |name: &str, counted, drops| PhaseCount {
            phase: name.into(),
            from_unix_ms: None,
            until_unix_ms: None,
            counted,
            drops,
            sessions: drops,
            lost: 0,
        };
        Attribution {
            deployment: "ecs-svc/1".into(),
            rollout_started_unix_ms: 1_000,
            rollout_ended_unix_ms: Some(61_000),
            phases: vec![
                phase("before", false, before),
                phase("rollout started", true, 7),
            ],
            uncovered,
        }
    }

    #[test]
    fn the_check_fails_when_a_shard_did_not_hold_through() {
        let c = check(&attribution(
            vec!["2/4: it stopped holding early".into()],
            0,
        ));
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.message.contains("2/4: it stopped"), "{}", c.message);
        let c = check(&attribution(vec![], 0));
        assert_eq!(c.status, CheckStatus::Pass);
        assert!(
            c.message.contains("7 drop(s) from its start, 0 before"),
            "{}",
            c.message
        );
        assert!(!c.message.contains("whole hold"));
        let c = check(&attribution(vec![], 3));
        assert!(c.message.contains("whole hold"), "{}", c.message);
        // A rollout not followed to its end fails closed, whatever the shards did.
        let mut open_ended = attribution(vec![], 0);
        open_ended.rollout_ended_unix_ms = None;
        let c = check(&open_ended);
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.message.contains("not followed to its end"),
            "{}",
            c.message
        );
        // A hostile time is shown as a number, never a panic.
        assert_eq!(text_at(i64::MAX), format!("{} ms after 1970", i64::MAX));
        assert_eq!(text_at(-5), "-5 ms after 1970");
        assert!(table(&attribution(vec![], 3)).contains("rollout started"));
    }
}
