//! The probe's verdicts: the checks its report gives, in report order, one function per
//! check in [`VERDICTS`], with their unit tests.

use std::time::Duration;

use super::report::ProbeReport;
use crate::gateway::fmt_duration;
use crate::report::{Check, CheckStatus};

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.2}%")
    }
}

pub(super) fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// Pass when there is nothing to report, else Warn while the error gate holds, Fail past it.
fn phase_status(failures: u64, gate_ok: bool) -> CheckStatus {
    match (failures, gate_ok) {
        (0, _) => CheckStatus::Pass,
        (_, true) => CheckStatus::Warn,
        (_, false) => CheckStatus::Fail,
    }
}

/// The verdicts, in report order. `--max-error-rate` (default 0) and `--max-p99` gate; a
/// heartbeat delivery under half of the expected fails; the rest warns.
const VERDICTS: [fn(&ProbeReport) -> Check; 8] = [
    open, latency, hold, heartbeat, spread, cookies, close, errors,
];

/// The checks, in report order: open, latency, hold, heartbeat, spread, cookies, close,
/// errors (one per `VERDICTS` entry), then with `--reconnect` disruption and reconnect.
pub fn checks(r: &ProbeReport) -> Vec<Check> {
    let mut c: Vec<Check> = VERDICTS.iter().map(|verdict| verdict(r)).collect();
    if let Some(d) = &r.disruption {
        c.extend(super::disruption::checks(d));
    }
    c
}

/// The error gate: the share of failed sessions is within `--max-error-rate`.
fn gate_ok(r: &ProbeReport) -> bool {
    r.error_rate <= r.max_error_rate
}

fn d(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// `: 3 × cause; 1 × other` for the first three failure groups of a phase, or nothing.
fn causes_of(r: &ProbeReport, phase: &str) -> String {
    let parts: Vec<String> = r
        .failures
        .iter()
        .filter(|f| f.phase == phase)
        .take(3)
        .map(|f| format!("{} × {}", f.count, f.cause))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// Sessions opened, the handshake rate; failures gate.
fn open(r: &ProbeReport) -> Check {
    let rate = r
        .handshakes_per_s
        .map(|h| format!("{h:.0} handshakes/s"))
        .unwrap_or_else(|| "no handshake completed".into());
    let limit = r
        .rate_limit
        .map(|l| format!(", at most {l}/s"))
        .unwrap_or_default();
    let mut msg = format!(
        "{}/{} sessions opened in {}: {rate} ({} through the load balancer, concurrency {}{limit})",
        r.opened,
        r.connections,
        fmt_duration(d(r.open_phase_ms)),
        r.transport,
        r.concurrency
    );
    if r.open_failed > 0 {
        msg += &format!(
            "; {} failed{}{}",
            r.open_failed,
            causes_of(r, "open"),
            refusing_targets(r)
        );
    }
    Check::new(
        "open",
        phase_status(r.open_failed, gate_ok(r)),
        d(r.open_phase_ms),
        msg,
    )
}

/// `; failed per target: gw-b 20 of 20, gw-a 1 of 21` (failures over the sessions the target
/// was given), or nothing when no failure could be placed.
fn refusing_targets(r: &ProbeReport) -> String {
    let opened_on = |instance| {
        r.targets
            .iter()
            .find(|t| &t.instance == instance)
            .map_or(0, |t| t.sessions)
    };
    let parts: Vec<String> = r
        .open_failed_by_target
        .iter()
        .map(|t| {
            format!(
                "{} {} of {}",
                t.instance.shown(80),
                t.sessions,
                t.sessions + opened_on(&t.instance)
            )
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("; failed per target: {}", parts.join(", "))
    }
}

/// Connect latency percentiles, against `--max-p99` when given.
fn latency(r: &ProbeReport) -> Check {
    match &r.connect {
        None => Check::new(
            "latency",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        ),
        Some(c) => {
            let text = format!(
                "connect p50 {}, p90 {}, p99 {}, max {} (TCP connect to the namespace CONNECT answer)",
                ms_text(c.p50_ms),
                ms_text(c.p90_ms),
                ms_text(c.p99_ms),
                ms_text(c.max_ms)
            );
            match r.max_p99_ms {
                Some(max) if c.p99_ms > max as f64 => Check::new(
                    "latency",
                    CheckStatus::Fail,
                    Duration::ZERO,
                    format!("{text}: p99 is above --max-p99 {}", ms_text(max as f64)),
                ),
                Some(max) => Check::new(
                    "latency",
                    CheckStatus::Pass,
                    Duration::ZERO,
                    format!("{text}; within --max-p99 {}", ms_text(max as f64)),
                ),
                None => Check::new("latency", CheckStatus::Pass, Duration::ZERO, text),
            }
        }
    }
}

/// Open sessions still there after the hold; drops gate.
fn hold(r: &ProbeReport) -> Check {
    let held = r.opened.saturating_sub(r.dropped);
    let mut msg = format!(
        "{held}/{} open sessions held for {}",
        r.opened,
        fmt_duration(d(r.hold_ms))
    );
    if r.dropped > 0 {
        msg += &format!("; {} dropped{}", r.dropped, causes_of(r, "hold"));
    }
    if r.opened == 0 {
        Check::new(
            "hold",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        )
    } else {
        Check::new(
            "hold",
            phase_status(r.dropped, gate_ok(r)),
            d(r.hold_ms),
            msg,
        )
    }
}

/// Heartbeat delivery during the hold: under half of the expected fails (unless the hold is
/// short against the interval), off by more than 5% warns.
fn heartbeat(r: &ProbeReport) -> Check {
    let hb = &r.heartbeats;
    match hb.delivery_ratio {
        _ if r.opened == 0 => Check::new(
            "heartbeat",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        ),
        None => Check::new(
            "heartbeat",
            CheckStatus::Warn,
            Duration::ZERO,
            format!(
                "delivery not measured: no session was open during the hold (hold {}, heartbeat interval {})",
                fmt_duration(d(r.hold_ms)),
                fmt_duration(d(hb.interval_ms))
            ),
        ),
        Some(ratio) => {
            let lat = &hb.lateness;
            let lateness = match (lat.p50_ms, lat.p99_ms, lat.max_ms) {
                (Some(a), Some(b), Some(c)) => format!(
                    "; lateness p50 {a} ms, p99 {b} ms, max {c} ms, {} later than {}",
                    lat.late,
                    fmt_duration(d(lat.slack_ms))
                ),
                _ => String::new(),
            };
            let msg = format!(
                "{} of {:.0} expected heartbeats arrived during the hold (delivery {ratio:.3}); {} acked in all{lateness}",
                hb.received_in_hold, hb.expected_in_hold, hb.acked
            );
            let short_hold = hb.expected_in_hold < 2.0 * r.opened as f64;
            let status = if ratio < 0.5 && !short_hold {
                CheckStatus::Fail
            } else if !(0.95..=1.05).contains(&ratio) {
                CheckStatus::Warn
            } else {
                CheckStatus::Pass
            };
            let note = match status {
                CheckStatus::Fail => {
                    " — heartbeats are not flowing: is [gateway] heartbeat_interval right?"
                }
                CheckStatus::Warn if ratio > 1.05 => {
                    " — more than expected: the gateway's interval is shorter than [gateway] heartbeat_interval"
                }
                CheckStatus::Warn if short_hold => {
                    " — the hold is short against the interval; a longer --hold gives a steadier ratio"
                }
                CheckStatus::Warn => " — some heartbeats were missing or late",
                _ => "",
            };
            Check::new("heartbeat", status, d(r.hold_ms), format!("{msg}{note}"))
        }
    }
}

/// Sessions per target (from heartbeats, else the cookie's health look-up); one target warns.
fn spread(r: &ProbeReport) -> Check {
    let known: u64 = r.targets.iter().map(|t| t.sessions).sum();
    let listing = r
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} {} ({:.0}%)",
                t.instance.shown(80),
                t.sessions,
                t.sessions as f64 * 100.0 / (known + r.unknown_target).max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let unknown = if r.unknown_target > 0 {
        format!(", unknown {}", r.unknown_target)
    } else {
        String::new()
    };
    if r.opened == 0 {
        Check::new(
            "spread",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        )
    } else if r.targets.len() <= 1 && r.opened >= 2 {
        Check::new(
            "spread",
            CheckStatus::Warn,
            Duration::ZERO,
            if r.targets.is_empty() {
                format!("the target of no session is known (no heartbeat during the hold, no cookie to look up){unknown}")
            } else {
                format!("every session is on one target ({listing}{unknown}): balancing not exercised; is only one target healthy?")
            },
        )
    } else {
        Check::new(
            "spread",
            CheckStatus::Pass,
            Duration::ZERO,
            format!("sessions per target: {listing}{unknown}"),
        )
    }
}

/// The stickiness cookie: set on the handshakes, and each looked-up value pins the target its
/// sessions are on.
fn cookies(r: &ProbeReport) -> Check {
    let c = &r.cookies;
    let name = c
        .name
        .as_ref()
        .map(|n| n.shown(40))
        .unwrap_or_else(|| "AWSALB".into());
    if r.opened == 0 {
        Check::new(
            "cookies",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        )
    } else if c.set == 0 {
        Check::new(
            "cookies",
            CheckStatus::Warn,
            Duration::ZERO,
            "no handshake response set a stickiness cookie (AWSALB): the load balancer does not \
             stick sessions; polling clients will lose theirs",
        )
    } else if c.consistent == Some(false) {
        let bad = c
            .values
            .iter()
            .filter(|v| {
                v.health_instance.is_some()
                    && v.heartbeat_instances
                        .iter()
                        .any(|h| Some(h) != v.health_instance.as_ref())
            })
            .map(|v| {
                format!(
                    "cookie {} leads to {} but its sessions are on {}",
                    v.value,
                    v.health_instance
                        .as_ref()
                        .map_or_else(|| "?".into(), |i| i.shown(80)),
                    v.heartbeat_instances
                        .iter()
                        .map(|i| i.shown(80))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Check::new(
            "cookies",
            CheckStatus::Fail,
            Duration::ZERO,
            format!("{name} does not pin the target its sessions are on: {bad}"),
        )
    } else {
        let pins = match c.consistent {
            Some(true) => {
                let mapped = c
                    .values
                    .iter()
                    .filter_map(|v| v.health_instance.as_ref().map(|i| i.shown(80)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(", each pins the target its sessions are on ({mapped})")
            }
            _ => String::new(),
        };
        let status = if c.set < r.opened {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        };
        Check::new(
            "cookies",
            status,
            Duration::ZERO,
            format!(
                "{name} set on {}/{} handshakes; {} distinct value(s){pins}",
                c.set, r.opened, c.distinct_values
            ),
        )
    }
}

/// Sessions that left cleanly; close failures gate.
fn close(r: &ProbeReport) -> Check {
    let reached = r.closed + r.close_failed;
    let mut msg = format!(
        "{}/{reached} sessions left cleanly (DISCONNECT, then the websocket close answered)",
        r.closed
    );
    if r.close_failed > 0 {
        msg += &format!("; {} failed{}", r.close_failed, causes_of(r, "close"));
    }
    if reached == 0 {
        Check::new(
            "close",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session reached the close",
        )
    } else {
        Check::new(
            "close",
            phase_status(r.close_failed, gate_ok(r)),
            Duration::ZERO,
            msg,
        )
    }
}

/// The gate: failed sessions (open, drop or close) against `--max-error-rate`.
fn errors(r: &ProbeReport) -> Check {
    let mut msg = format!(
        "{} of {} sessions failed ({}; allowed {})",
        r.errors,
        r.connections,
        pct(r.error_rate),
        pct(r.max_error_rate)
    );
    if r.errors > 0 {
        let top = r
            .failures
            .iter()
            .take(4)
            .map(|f| format!("{} × {}: {}", f.count, f.phase, f.cause))
            .collect::<Vec<_>>()
            .join("; ");
        msg += &format!(": {top}");
    }
    Check::new(
        "errors",
        if gate_ok(r) {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        Duration::from_millis(r.duration_ms),
        msg,
    )
}

#[cfg(test)]
mod tests {
    use super::super::report::{
        CookieReport, CookieValue, FailureGroup, HeartbeatReport, Lateness, TargetCount,
    };
    use super::*;
    use crate::gateway::stats::Summary;

    fn report() -> ProbeReport {
        ProbeReport {
            interrupted: false,
            url: "http://127.0.0.1:1".into(),
            namespace: "/chat".into(),
            transport: "websocket",
            connections: 100,
            concurrency: 50,
            rate_limit: None,
            hold_ms: 5000,
            max_error_rate: 0.0,
            max_p99_ms: None,
            open_files: None,
            duration_ms: 8000,
            opened: 100,
            open_failed: 0,
            dropped: 0,
            closed: 100,
            close_failed: 0,
            errors: 0,
            error_rate: 0.0,
            open_phase_ms: 100,
            handshakes_per_s: Some(1000.0),
            connect: Some(Summary {
                count: 100,
                min_ms: 1.0,
                p50_ms: 2.0,
                p90_ms: 3.0,
                p99_ms: 4.0,
                max_ms: 5.0,
                mean_ms: 2.1,
            }),
            targets: vec![
                TargetCount {
                    instance: "gw-1".into(),
                    sessions: 50,
                },
                TargetCount {
                    instance: "gw-2".into(),
                    sessions: 50,
                },
            ],
            open_failed_by_target: vec![],
            unknown_target: 0,
            cookies: CookieReport {
                name: Some("AWSALB".into()),
                set: 100,
                distinct_values: 2,
                values: vec![],
                consistent: Some(true),
            },
            heartbeats: HeartbeatReport {
                interval_ms: 1000,
                received: 600,
                acked: 600,
                received_in_hold: 500,
                expected_in_hold: 500.0,
                delivery_ratio: Some(1.0),
                lateness: Lateness {
                    p50_ms: Some(1),
                    p99_ms: Some(5),
                    max_ms: Some(9),
                    late: 0,
                    slack_ms: 1000,
                },
            },
            failures: vec![],
            disruption: None,
            samples: Default::default(),
        }
    }

    fn status(checks: &[Check], name: &str) -> CheckStatus {
        checks.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn a_clean_run_passes_every_check_in_order() {
        let c = checks(&report());
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "open",
                "latency",
                "hold",
                "heartbeat",
                "spread",
                "cookies",
                "close",
                "errors"
            ]
        );
        for check in &c {
            assert_eq!(check.status, CheckStatus::Pass, "{}", check.line());
        }
        assert!(
            c[0].message.contains("1000 handshakes/s"),
            "{}",
            c[0].message
        );
        assert!(c[4].message.contains("gw-1 50 (50%)"), "{}", c[4].message);
    }

    #[test]
    fn error_rate_gates_and_phases_warn_or_fail() {
        let mut r = report();
        r.open_failed = 2;
        r.opened = 98;
        r.closed = 98;
        r.errors = 2;
        r.error_rate = 0.02;
        r.failures = vec![FailureGroup {
            phase: "open".into(),
            cause: "cannot connect: refused".into(),
            count: 2,
        }];
        let c = checks(&r);
        assert_eq!(status(&c, "errors"), CheckStatus::Fail);
        assert_eq!(status(&c, "open"), CheckStatus::Fail);
        let errors = c.iter().find(|c| c.name == "errors").unwrap();
        assert!(
            errors.message.contains("2 × open: cannot connect: refused"),
            "{}",
            errors.message
        );
        r.max_error_rate = 0.05;
        let c = checks(&r);
        assert_eq!(status(&c, "errors"), CheckStatus::Pass);
        assert_eq!(status(&c, "open"), CheckStatus::Warn);
    }

    /// The open check names the targets that refused sessions, with their share.
    #[test]
    fn open_names_the_targets_that_refused_sessions() {
        let mut r = report();
        r.open_failed = 20;
        r.opened = 80;
        r.targets[1].sessions = 30;
        r.open_failed_by_target = vec![TargetCount {
            instance: "gw-2".into(),
            sessions: 20,
        }];
        let open = &checks(&r)[0];
        assert!(
            open.message.ends_with("; failed per target: gw-2 20 of 50"),
            "{}",
            open.message
        );
        r.open_failed_by_target.clear();
        let open = &checks(&r)[0];
        assert!(!open.message.contains("per target"), "{}", open.message);
    }

    #[test]
    fn p99_threshold() {
        let mut r = report();
        r.max_p99_ms = Some(3);
        assert_eq!(status(&checks(&r), "latency"), CheckStatus::Fail);
        r.max_p99_ms = Some(4);
        assert_eq!(status(&checks(&r), "latency"), CheckStatus::Pass);
    }

    #[test]
    fn heartbeat_spread_and_cookie_verdicts() {
        let mut r = report();
        r.heartbeats.delivery_ratio = Some(0.9);
        assert_eq!(status(&checks(&r), "heartbeat"), CheckStatus::Warn);
        r.heartbeats.delivery_ratio = Some(0.1);
        assert_eq!(status(&checks(&r), "heartbeat"), CheckStatus::Fail);
        r.heartbeats.delivery_ratio = None;
        assert_eq!(status(&checks(&r), "heartbeat"), CheckStatus::Warn);

        let mut r = report();
        r.targets.truncate(1);
        r.targets[0].sessions = 100;
        assert_eq!(status(&checks(&r), "spread"), CheckStatus::Warn);

        let mut r = report();
        r.cookies.consistent = Some(false);
        r.cookies.values = vec![CookieValue {
            value: "#1".into(),
            sessions: 50,
            health_instance: Some("gw-2".into()),
            heartbeat_instances: vec!["gw-1".into()],
        }];
        let c = checks(&r);
        assert_eq!(status(&c, "cookies"), CheckStatus::Fail);
        r.cookies.consistent = None;
        r.cookies.set = 0;
        assert_eq!(status(&checks(&r), "cookies"), CheckStatus::Warn);
    }

    #[test]
    fn nothing_opened_skips_the_session_checks() {
        let mut r = report();
        r.opened = 0;
        r.closed = 0;
        r.open_failed = 100;
        r.errors = 100;
        r.error_rate = 1.0;
        r.connect = None;
        r.handshakes_per_s = None;
        let c = checks(&r);
        for name in ["latency", "hold", "heartbeat", "spread", "cookies", "close"] {
            assert_eq!(status(&c, name), CheckStatus::Skip, "{name}");
        }
        assert_eq!(status(&c, "errors"), CheckStatus::Fail);
        assert_eq!(status(&c, "open"), CheckStatus::Fail);
    }
}
