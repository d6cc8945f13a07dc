//! The disruption report's unit tests: sessions' timelines in, counts and tables out.
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
        recovered: false,
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
