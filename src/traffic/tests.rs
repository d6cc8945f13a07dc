//! The report built from CloudWatch answers, without calls.

use super::fetch::{queries, Answer};
use super::window::{Thresholds, Window};
use super::*;

const T0: i64 = 1_764_900_000;
const LB: &str = "app/bosar-alb/1";
const TG: &str = "targetgroup/bosar-api-tg/2";

fn answer(points: &[(&str, &[(i64, f64)])]) -> Answer {
    let mut a = Answer::default();
    for (id, p) in points {
        a.points.insert(id.to_string(), p.to_vec());
    }
    a
}

fn lbs() -> Vec<String> {
    vec![LB.to_string()]
}

#[test]
fn a_full_window_reads_as_a_headline_and_a_line_per_series() {
    let w = Window::around(T0, T0 + 120);
    let a = answer(&[
        (
            "l0_new_connections",
            &[
                (T0 - 120, 60.0),
                (T0 - 60, 60.0),
                (T0, 1840.0),
                (T0 + 60, 100.0),
            ],
        ),
        ("l0_elb_502", &[(T0, 14.0)]),
        ("l0_elb_5xx", &[(T0, 14.0)]),
        ("t0_non_sticky_requests", &[(T0 + 60, 512.0)]),
        (
            "t0_healthy_hosts_min",
            &[(T0 - 60, 2.0), (T0, 2.0), (T0 + 60, 2.0)],
        ),
    ]);
    let r = build(&w, &lbs(), TG, &a, &Thresholds::default());
    assert_eq!(r.status, CheckStatus::Pass, "{:?}", r.warnings);
    assert!(r.minutes_not_in.is_empty());
    assert!(
        r.message.contains("new connections 1,840 in the peak minute, baseline 60/min; ELB 502: 14; ELB 5XX: 14; non-sticky requests: 512; healthy hosts min 2"),
        "{}",
        r.message
    );
    let text = r.text();
    assert!(
        text.contains("new connections: 1,940 in the window, peak 1,840/min at"),
        "{text}"
    );
    assert!(text.contains("healthy hosts min: 2 (baseline 2)"), "{text}");
    assert!(
        text.contains("rejected connections: none in the window, baseline 0/min"),
        "{text}"
    );
    assert_eq!(r.load_balancers[0].series.len(), SERIES.len());
    let json = r.json();
    assert_eq!(json["window"]["minutes"], 2);
    assert_eq!(json["load_balancers"][0]["series"][0]["peak"], 1840.0);
    assert_eq!(r.code(), Code::Success);
}

#[test]
fn minutes_not_in_yet_are_a_warning_never_a_failure() {
    let w = Window::around(T0, T0 + 180);
    let baseline = [
        (T0 - 180, 10.0),
        (T0 - 120, 10.0),
        (T0 - 60, 10.0),
        (T0, 10.0),
    ];
    let a = answer(&[("l0_new_connections", &baseline)]);
    let t = Thresholds {
        max_elb_5xx: Some(0),
        max_new_connections_ratio: Some(2.0),
    };
    let r = build(&w, &lbs(), TG, &a, &t);
    assert_eq!(r.status, CheckStatus::Warn);
    assert_eq!(r.minutes_not_in.len(), 2);
    assert!(
        r.warnings[0].starts_with("2 of the window's 3 minute(s) not in CloudWatch yet"),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.code(), Code::Success);
    // Nothing of the window in: the thresholds say they were not checked.
    let r = build(&w, &lbs(), TG, &Answer::default(), &t);
    assert_eq!(r.status, CheckStatus::Warn);
    assert!(
        r.checks.iter().all(|c| c.status == CheckStatus::Warn),
        "{:?}",
        r.checks
    );
    assert_eq!(r.code(), Code::Success);
}

#[test]
fn a_threshold_crossed_fails_the_run_and_says_which() {
    let w = Window::around(T0, T0 + 60);
    let a = answer(&[
        ("l0_new_connections", &[(T0 - 60, 10.0), (T0, 500.0)]),
        ("l0_elb_5xx", &[(T0, 3.0)]),
    ]);
    let t = Thresholds {
        max_elb_5xx: Some(2),
        max_new_connections_ratio: Some(100.0),
    };
    let r = build(&w, &lbs(), TG, &a, &t);
    assert_eq!(r.status, CheckStatus::Fail);
    assert_eq!(r.code(), Code::Failed);
    assert_eq!(
        r.error().as_deref(),
        Some("real traffic: ELB 5XX: 3 in the window, more than --max-elb-5xx 2")
    );
    assert_eq!(r.checks[1].status, CheckStatus::Pass, "{:?}", r.checks[1]);
    // Absent 5XX datapoints with the window in are 0: within any threshold.
    let a = answer(&[("l0_new_connections", &[(T0, 5.0)])]);
    let r = build(
        &w,
        &lbs(),
        TG,
        &a,
        &Thresholds {
            max_elb_5xx: Some(0),
            ..t
        },
    );
    assert_eq!(r.checks[0].status, CheckStatus::Pass, "{:?}", r.checks);
}

#[test]
fn cloudwatch_notes_are_warnings_and_steps_carry_the_report() {
    let w = Window::around(T0, T0 + 60);
    let mut a = answer(&[("l0_new_connections", &[(T0, 5.0)])]);
    a.notes.push("MaxMetricsExceeded: too many".into());
    let r = build(&w, &lbs(), TG, &a, &Thresholds::default());
    assert_eq!(r.status, CheckStatus::Warn);
    let step = r.step();
    assert_eq!(step.name, STEP);
    assert_eq!(step.detail["warnings"][0], "MaxMetricsExceeded: too many");
    assert_eq!(queries(&lbs()).len(), SERIES.len());
}

#[test]
fn options_follow_the_flags() {
    let o = TrafficOptions::from_flags(&MetricsFlags::default());
    assert!(o.enabled);
    assert_eq!(o.wait, DEFAULT_WAIT);
    assert_eq!(o.thresholds, Thresholds::default());
    let o = TrafficOptions::from_flags(&MetricsFlags {
        no_metrics: true,
        ..Default::default()
    });
    assert!(!o.enabled);
    let r = RealTraffic::skipped("not read (--no-metrics)");
    assert_eq!((r.status, r.code()), (CheckStatus::Skip, Code::Success));
}
