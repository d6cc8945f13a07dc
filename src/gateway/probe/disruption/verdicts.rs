//! The verdicts `disruption` and `reconnect` on a disruption report, and its from→to text table.
//! Pure, like the report: thresholds in, checks out.

use std::time::Duration;

use super::{CauseCount, DisruptionReport};
use crate::gateway::fmt_duration;
use crate::outside::Outside;
use crate::report::{Check, CheckStatus};

fn ms(v: u64) -> String {
    fmt_duration(Duration::from_millis(v))
}

fn percent_text(p: f64) -> String {
    if p == 0.0 || p >= 10.0 || p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn cause_list(c: &[CauseCount], take: usize) -> String {
    c.iter()
        .take(take)
        .map(|c| format!("{} × {}", c.count, c.text))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the drop rate is above `--max-drop-rate`.
fn drop_rate_exceeded(r: &DisruptionReport) -> Option<f64> {
    let max = r.limits.max_drop_rate?;
    let rate = if r.opened == 0 {
        0.0
    } else {
        r.dropped.sessions as f64 / r.opened as f64
    };
    (rate > max).then_some(max)
}

/// For sessions the server sent away: what it means for their users and what to change in
/// the gateway (empty when none was).
fn what_lost_means(r: &DisruptionReport) -> String {
    let count = |cause: &str| {
        r.lost_by_cause
            .iter()
            .find(|c| c.cause == cause)
            .map_or(0, |c| c.count)
    };
    let mut out = String::new();
    let told = count("server_disconnect");
    if told > 0 {
        out += &format!(
            "; {told} told to leave by the server (namespace DISCONNECT, \"io server disconnect\"): socket.io-client does not reconnect, so these users stay offline until they reload the page; close the server on SIGTERM (io.close()) instead of calling disconnectSockets(), so clients see a transport close and come back"
        );
    }
    let refused = count("connect_error");
    if refused > 0 {
        out += &format!(
            "; {refused} refused on reconnect (CONNECT_ERROR from the namespace): socket.io-client gives up, so these users stay offline until they reload the page; make the new tasks accept the tokens the old ones did"
        );
    }
    out
}

/// `disruption`: drops, reconnected, lost, moved, the longest heartbeat gap, and for a rollout
/// where the sessions ended. Fails past `--max-lost` (default 0) or `--max-drop-rate`; warns
/// when sessions sit on an old target after a rollout that succeeded.
pub fn disruption_check(r: &DisruptionReport) -> Check {
    let d = &r.dropped;
    let mut msg = if d.sessions == 0 {
        format!("no session of {} dropped", r.opened)
    } else {
        format!(
            "{} of {} sessions dropped ({}: {}); {} reconnected, {} lost{}; {} moved to another target",
            d.sessions,
            r.opened,
            percent_text(d.percent),
            cause_list(&d.by_cause, 3),
            r.reconnected,
            r.lost,
            if r.lost_by_cause.is_empty() {
                String::new()
            } else {
                format!(" ({})", cause_list(&r.lost_by_cause, 3))
            },
            r.moved
        )
    };
    msg += &what_lost_means(r);
    if let Some(g) = r.longest_heartbeat_gap_ms {
        msg += &format!("; longest heartbeat gap {}", ms(g));
    }
    let mut status = CheckStatus::Pass;
    if let Some(t) = &r.targets {
        msg += &format!(
            "; {} of {} open sessions ended on new targets",
            t.ended_on_new, t.open_at_end
        );
        if t.ended_on_old > 0 {
            msg += &format!(", {} still on an old one", t.ended_on_old);
            if t.rollout_succeeded == Some(true) {
                status = CheckStatus::Warn;
            }
        } else {
            msg += ", none on an old one";
        }
        if t.ended_unknown > 0 {
            msg += &format!(", {} on a target not known", t.ended_unknown);
        }
    }
    let mut over = Vec::new();
    if r.lost > r.limits.max_lost {
        over.push(format!(
            "{} lost, more than --max-lost {}",
            r.lost, r.limits.max_lost
        ));
    }
    if let Some(max) = drop_rate_exceeded(r) {
        over.push(format!(
            "{} dropped, above --max-drop-rate {}",
            percent_text(d.percent),
            percent_text(max * 100.0)
        ));
    }
    if !over.is_empty() {
        status = CheckStatus::Fail;
        msg += &format!(": {}", over.join("; "));
    }
    Check::new(
        "disruption",
        status,
        Duration::from_millis(r.until_ms.saturating_sub(r.since_ms)),
        msg,
    )
}

/// `reconnect`: how fast the dropped sessions came back (p50/p99/max), the attempts that
/// failed by cause, where the reconnects landed. Fails past `--max-reconnect-p99`; warns when
/// sessions dropped and none came back.
pub fn reconnect_check(r: &DisruptionReport) -> Check {
    let landed = r
        .landed
        .iter()
        .take(6)
        .map(|l| {
            format!(
                "{} {} ({}, peak {}/s)",
                l.target,
                l.reconnects,
                percent_text(l.percent),
                l.peak_per_s
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let attempts = if r.attempts.failed == 0 {
        format!("{} attempt(s), none failed", r.attempts.made)
    } else {
        format!(
            "{} attempt(s), {} failed ({})",
            r.attempts.made,
            r.attempts.failed,
            cause_list(&r.attempts.failed_by_cause, 4)
        )
    };
    match &r.reconnect {
        None if r.dropped.sessions == 0 => Check::new(
            "reconnect",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session dropped: nothing to reconnect",
        ),
        None => Check::new(
            "reconnect",
            if r.limits.max_reconnect_p99_ms.is_some() {
                CheckStatus::Fail
            } else {
                CheckStatus::Warn
            },
            Duration::ZERO,
            format!(
                "none of the {} dropped session(s) came back; {attempts}",
                r.dropped.sessions
            ),
        ),
        Some(t) => {
            let mut msg = format!(
                "reconnect p50 {}, p99 {}, max {} over {} reconnect(s) (drop to the namespace CONNECT answer); {attempts}; landed on {landed}",
                ms(t.p50_ms),
                ms(t.p99_ms),
                ms(t.max_ms),
                t.count
            );
            let status = match r.limits.max_reconnect_p99_ms {
                Some(max) if t.p99_ms > max => {
                    msg += &format!(": p99 is above --max-reconnect-p99 {}", ms(max));
                    CheckStatus::Fail
                }
                Some(max) => {
                    msg += &format!("; within --max-reconnect-p99 {}", ms(max));
                    CheckStatus::Pass
                }
                None => CheckStatus::Pass,
            };
            if r.recovery_offered {
                msg += &format!(
                    "; {} of {} reconnect(s) resumed their session (connection state recovery), {} started fresh",
                    r.recovered,
                    t.count,
                    t.count.saturating_sub(r.recovered)
                );
            }
            if let Some(advice) = r.drop_shape.as_ref().and_then(|s| s.advice.as_deref()) {
                msg += &format!("; {advice}");
            }
            Check::new("reconnect", status, Duration::from_millis(t.p99_ms), msg)
        }
    }
}

/// The two verdicts, in report order.
pub fn checks(r: &DisruptionReport) -> Vec<Check> {
    vec![disruption_check(r), reconnect_check(r)]
}

/// The from→to table and the spread of the reconnects, for text output (empty when nothing
/// dropped).
pub fn render_table(r: &DisruptionReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if r.moves.is_empty() {
        return out;
    }
    // Target names are shown escaped (outside text), padded by their shown width.
    let cell = |o: &Outside| o.to_string();
    let width = r
        .moves
        .iter()
        .flat_map(|m| [cell(&m.from), cell(&m.to)])
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(out, "dropped sessions, from → to:");
    for m in &r.moves {
        let _ = writeln!(
            out,
            "  {:<width$} → {:<width$} {:>7}",
            cell(&m.from),
            cell(&m.to),
            m.sessions
        );
    }
    if !r.landed.is_empty() {
        let _ = writeln!(out, "reconnects per target:");
        for l in &r.landed {
            let _ = writeln!(
                out,
                "  {:<width$} {:>7} ({}, peak {}/s)",
                cell(&l.target),
                l.reconnects,
                percent_text(l.percent),
                l.peak_per_s
            );
        }
    }
    if let Some(s) = &r.drop_shape {
        let _ = writeln!(out, "drop shape: {}", s.text());
        if let Some(advice) = &s.advice {
            let _ = writeln!(out, "  {advice}");
        }
    }
    if let Some(t) = &r.targets {
        let list = |v: &[Outside]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(cell).collect::<Vec<_>>().join(", ")
            }
        };
        let _ = writeln!(out, "old targets: {}", list(&t.old));
        let _ = writeln!(out, "new targets: {}", list(&t.new));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{disruption, DropLine, Limits, SessionLine, Window};
    use super::*;
    use crate::cli::ReconnectLike;
    use crate::gateway::probe::timeline::{AttemptCause, DropCause, LostCause, ATTEMPT_CAUSES};
    use crate::report::CheckStatus;

    fn o(name: &str) -> &'static Outside {
        Box::leak(Box::new(Outside::new(name)))
    }

    /// A session that dropped once from `gw-a` for `cause` and ended `lost` (or back on gw-c).
    fn one(cause: DropCause, lost: Option<LostCause>) -> SessionLine<'static> {
        let mut failed = [0; ATTEMPT_CAUSES];
        if lost == Some(LostCause::ConnectError) {
            failed[AttemptCause::ConnectError as usize] = 1;
        }
        SessionLine {
            first: Some(o("gw-a")),
            drops: vec![DropLine {
                recovered: false,
                at_ms: 1_000,
                cause,
                from: Some(o("gw-a")),
                to: lost.is_none().then(|| o("gw-c")),
                back_ms: lost.is_none().then_some(400),
                attempts: match lost {
                    Some(LostCause::ServerDisconnect) => 0,
                    _ => 1,
                },
                failed,
                lost,
            }],
            max_gap_ms: 0,
            spacing_ms: None,
        }
    }

    const WINDOW: Window = Window {
        since_ms: 0,
        until_ms: 10_000,
        old_and_new: false,
        rollout_succeeded: None,
    };

    fn limits(max_lost: u64) -> Limits {
        Limits {
            max_lost,
            max_drop_rate: None,
            max_reconnect_p99_ms: None,
        }
    }

    #[test]
    fn lost_sessions_are_counted_by_why_and_the_check_says_what_to_change() {
        let s = vec![
            one(
                DropCause::ServerDisconnect,
                Some(LostCause::ServerDisconnect),
            ),
            one(
                DropCause::ServerDisconnect,
                Some(LostCause::ServerDisconnect),
            ),
            one(DropCause::CloseFrame, Some(LostCause::ConnectError)),
            one(DropCause::Eof, Some(LostCause::StillTrying)),
            // Not known why (an older record): counted as still trying.
            one(DropCause::Reset, None),
            one(DropCause::ServerClose, None),
        ];
        let mut s = s;
        s[4].drops[0].back_ms = None;
        s[4].drops[0].to = None;
        let r = disruption(&s, 6, WINDOW, limits(0), ReconnectLike::Browser);
        assert_eq!((r.reconnected, r.lost), (1, 5));
        let by: Vec<(String, u64)> = r
            .lost_by_cause
            .iter()
            .map(|c| (c.cause.clone(), c.count))
            .collect();
        assert_eq!(
            by,
            [
                ("server_disconnect".to_string(), 2),
                ("still_trying".to_string(), 2),
                ("connect_error".to_string(), 1)
            ]
        );
        assert_eq!(r.reconnect_like, ReconnectLike::Browser);
        let c = disruption_check(&r);
        assert_eq!(c.status, CheckStatus::Fail);
        for part in [
            "1 reconnected, 5 lost (2 × told to leave (io server disconnect), 2 × still trying at the end, 1 × refused on reconnect (CONNECT_ERROR))",
            "2 told to leave by the server (namespace DISCONNECT, \"io server disconnect\"): socket.io-client does not reconnect, so these users stay offline until they reload the page; close the server on SIGTERM (io.close()) instead of calling disconnectSockets()",
            "1 refused on reconnect (CONNECT_ERROR from the namespace): socket.io-client gives up",
            "5 lost, more than --max-lost 0",
        ] {
            assert!(c.message.contains(part), "{part}\n{}", c.message);
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["reconnect_like"], "browser");
        assert_eq!(json["lost_by_cause"][0]["cause"], "server_disconnect");
    }

    #[test]
    fn no_advice_when_nobody_was_sent_away() {
        let s = vec![
            one(DropCause::ServerClose, None),
            one(DropCause::Eof, Some(LostCause::StillTrying)),
        ];
        let r = disruption(&s, 2, WINDOW, limits(1), ReconnectLike::Always);
        let c = disruption_check(&r);
        assert_eq!(c.status, CheckStatus::Pass, "{}", c.message);
        assert!(c
            .message
            .contains("1 reconnected, 1 lost (1 × still trying at the end)"));
        assert!(!c.message.contains("reload"), "{}", c.message);
        assert_eq!(
            serde_json::to_value(&r).unwrap()["reconnect_like"],
            "always"
        );
    }

    /// Reconnects that resumed their session are counted apart from fresh ones, and said only
    /// when the gateway offered recovery.
    #[test]
    fn recovered_reconnects_are_counted_apart() {
        let mut back = one(DropCause::CloseFrame, None);
        back.drops[0].recovered = true;
        let s = vec![back, one(DropCause::CloseFrame, None)];
        let mut r = disruption(&s, 2, WINDOW, limits(0), ReconnectLike::Browser);
        assert_eq!(r.recovered, 1);
        assert!(!reconnect_check(&r).message.contains("resumed"));
        r.recovery_offered = true;
        let m = reconnect_check(&r).message;
        assert!(
            m.contains("1 of 2 reconnect(s) resumed their session (connection state recovery), 1 started fresh"),
            "{m}"
        );
    }
}
