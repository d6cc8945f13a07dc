//! `status`'s real traffic: the last 15 minutes of the deploy report's series (same
//! GetMetricData, same series, same words), beside the 15 minutes before them. One read, no
//! wait: the newest two or three minutes are usually not published yet, and the report names
//! them. Never an error: a missing `cloudwatch:GetMetricData`, throttling or late minutes are
//! warnings, and `--no-metrics` skips the read.

use std::time::Duration;

use super::window::{Thresholds, Window, MINUTE};
use super::{collect, headline_for, hhmm, reader, RealTraffic, Targets, TrafficOptions};
use crate::ecs::status::Section;
use crate::report::CheckStatus;
use crate::ui::Ui;

/// How far back `status` looks.
pub const MINUTES: i64 = 15;

/// The last [`MINUTES`] whole minutes up to the minute `now` is in (that one included: it is
/// named as not in yet rather than left out), and as many before them as the baseline.
pub fn window(now: i64) -> Window {
    let end = (now.div_euclid(MINUTE) + 1) * MINUTE;
    let start = end - MINUTES * MINUTE;
    Window {
        baseline_start: start - MINUTES * MINUTE,
        start,
        end,
    }
}

/// Reads `w` once and words the report for `status`.
pub async fn read(
    client: &aws_sdk_cloudwatch::Client,
    targets: &Targets,
    w: Window,
    ui: &Ui,
) -> RealTraffic {
    let opts = TrafficOptions {
        enabled: true,
        wait: Duration::ZERO,
        thresholds: Thresholds::default(),
    };
    let mut r = collect(client, targets, w, &opts, ui).await;
    if !r.load_balancers.is_empty() {
        let lead = format!(
            "last {} min ({}-{} UTC)",
            w.minutes(),
            hhmm(w.start),
            hhmm(w.end)
        );
        r.message = headline_for(&lead, &w, &r.load_balancers);
    }
    r
}

/// The report for `status`: skipped with `--no-metrics` (`enabled` false), else one read of
/// the last 15 minutes of the target group's load balancers.
pub async fn report(
    aws: &crate::aws::Aws,
    tg: &crate::config::ResourceRef,
    enabled: bool,
    ui: &Ui,
) -> RealTraffic {
    if !enabled {
        return RealTraffic::skipped("not read (--no-metrics)");
    }
    let (client, targets) = match reader(aws, tg).await {
        Ok(r) => r,
        Err(skipped) => return skipped,
    };
    read(&client, &targets, window(super::unix_now()), ui).await
}

/// [`report`] as `status`'s section: its warnings on `ui` (the envelope's `warnings` in
/// JSON), the text under a heading, the payload member `real_traffic`.
pub async fn section(
    aws: &crate::aws::Aws,
    tg: &crate::config::ResourceRef,
    enabled: bool,
    ui: &Ui,
) -> Option<Section> {
    let r = report(aws, tg, enabled, ui).await;
    for w in &r.warnings {
        ui.warn(w);
    }
    Some(to_section(&r))
}

/// The text and payload of a report.
pub fn to_section(r: &RealTraffic) -> Section {
    let text = match r.status {
        CheckStatus::Skip => format!("Real traffic (AWS/ApplicationELB): {}", r.message),
        _ => format!(
            "Real traffic (AWS/ApplicationELB, last {MINUTES} min):\n{}",
            indent(&r.text())
        ),
    };
    Section {
        text,
        json: r.json(),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_last_15_whole_minutes_with_the_current_one_and_a_baseline() {
        let t0 = 1_764_900_000; // a whole minute
        let w = window(t0 + 30);
        assert_eq!((w.start, w.end), (t0 + 60 - 900, t0 + 60));
        assert_eq!(w.minutes(), 15);
        assert_eq!(w.start - w.baseline_start, 900);
        // On the minute: that minute is the last one.
        assert_eq!(window(t0).end, t0 + 60);
    }

    #[test]
    fn a_skipped_read_is_one_line_and_a_read_is_indented_under_a_heading() {
        let s = to_section(&RealTraffic::skipped("not read (--no-metrics)"));
        assert_eq!(
            s.text,
            "Real traffic (AWS/ApplicationELB): not read (--no-metrics)"
        );
        assert_eq!(s.json["status"], "skip");
        let mut r = RealTraffic::skipped("x");
        r.status = CheckStatus::Warn;
        let s = to_section(&r);
        assert!(s
            .text
            .starts_with("Real traffic (AWS/ApplicationELB, last 15 min):\n  "));
    }
}
