//! The arithmetic of a real-traffic report, apart from any call: the rollout window and its
//! baseline in whole minutes, the series read for them, and each series' sum, peak minute,
//! extreme and baseline per minute, the minutes CloudWatch has not published yet, and the
//! threshold verdicts. Timestamps are Unix seconds.

use serde::Serialize;

/// CloudWatch's period for ALB metrics: one minute.
pub const MINUTE: i64 = 60;

/// Which statistic a series is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Stat {
    Sum,
    Minimum,
    Maximum,
}

impl Stat {
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Sum => "Sum",
            Stat::Minimum => "Minimum",
            Stat::Maximum => "Maximum",
        }
    }
}

/// The dimensions a series is published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `LoadBalancer`
    LoadBalancer,
    /// `TargetGroup,LoadBalancer`
    TargetGroup,
}

/// One series of `AWS/ApplicationELB`.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    /// The key in JSON and the query id's stem.
    pub key: &'static str,
    pub metric: &'static str,
    pub stat: Stat,
    pub scope: Scope,
    /// How the text report names it.
    pub label: &'static str,
}

const fn s(
    key: &'static str,
    metric: &'static str,
    stat: Stat,
    scope: Scope,
    label: &'static str,
) -> Series {
    Series {
        key,
        metric,
        stat,
        scope,
        label,
    }
}

/// Every series a report reads, per load balancer and per target group on it.
pub const SERIES: [Series; 14] = [
    s(
        "new_connections",
        "NewConnectionCount",
        Stat::Sum,
        Scope::LoadBalancer,
        "new connections",
    ),
    s(
        "active_connections",
        "ActiveConnectionCount",
        Stat::Sum,
        Scope::LoadBalancer,
        "active connections",
    ),
    s(
        "rejected_connections",
        "RejectedConnectionCount",
        Stat::Sum,
        Scope::LoadBalancer,
        "rejected connections",
    ),
    s(
        "elb_5xx",
        "HTTPCode_ELB_5XX_Count",
        Stat::Sum,
        Scope::LoadBalancer,
        "ELB 5XX",
    ),
    s(
        "elb_502",
        "HTTPCode_ELB_502_Count",
        Stat::Sum,
        Scope::LoadBalancer,
        "ELB 502",
    ),
    s(
        "elb_503",
        "HTTPCode_ELB_503_Count",
        Stat::Sum,
        Scope::LoadBalancer,
        "ELB 503",
    ),
    s(
        "elb_504",
        "HTTPCode_ELB_504_Count",
        Stat::Sum,
        Scope::LoadBalancer,
        "ELB 504",
    ),
    s(
        "target_connection_errors",
        "TargetConnectionErrorCount",
        Stat::Sum,
        Scope::TargetGroup,
        "target connection errors",
    ),
    s(
        "target_5xx",
        "HTTPCode_Target_5XX_Count",
        Stat::Sum,
        Scope::TargetGroup,
        "target 5XX",
    ),
    s(
        "healthy_hosts_min",
        "HealthyHostCount",
        Stat::Minimum,
        Scope::TargetGroup,
        "healthy hosts min",
    ),
    s(
        "healthy_hosts_max",
        "HealthyHostCount",
        Stat::Maximum,
        Scope::TargetGroup,
        "healthy hosts max",
    ),
    s(
        "unhealthy_hosts_min",
        "UnHealthyHostCount",
        Stat::Minimum,
        Scope::TargetGroup,
        "unhealthy hosts min",
    ),
    s(
        "unhealthy_hosts_max",
        "UnHealthyHostCount",
        Stat::Maximum,
        Scope::TargetGroup,
        "unhealthy hosts max",
    ),
    s(
        "non_sticky_requests",
        "NonStickyRequestCount",
        Stat::Sum,
        Scope::TargetGroup,
        "non-sticky requests",
    ),
];

/// The rollout window and the baseline of the same length just before it, in whole minutes:
/// `[baseline_start, start)` and `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub baseline_start: i64,
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// From the rollout's first and last second: the start rounded down to its minute, the
    /// end up to the next (at least one minute).
    pub fn around(started: i64, ended: i64) -> Window {
        let start = started.div_euclid(MINUTE) * MINUTE;
        let end = (ended.max(started) + MINUTE - 1).div_euclid(MINUTE) * MINUTE;
        let end = end.max(start + MINUTE);
        Window {
            baseline_start: start - (end - start),
            start,
            end,
        }
    }
    pub fn minutes(&self) -> i64 {
        (self.end - self.start) / MINUTE
    }
    /// The first second of the window's last minute.
    pub fn last_minute(&self) -> i64 {
        self.end - MINUTE
    }
}

/// A series' datapoints as CloudWatch answered: (minute, value), any order.
pub type Points = Vec<(i64, f64)>;

/// The newest minute that has a datapoint in any series (`None`: nothing at all).
pub fn newest_minute<'a>(all: impl IntoIterator<Item = &'a Points>) -> Option<i64> {
    all.into_iter().flatten().map(|(t, _)| *t).max()
}

/// The minutes of the window after the newest datapoint of any series: not published yet
/// (or no requests flowed then; ALB metrics exist only while they do).
pub fn minutes_not_in(w: &Window, newest: Option<i64>) -> Vec<i64> {
    let from = match newest {
        Some(t) if t >= w.start => t - t.rem_euclid(MINUTE) + MINUTE,
        _ => w.start,
    };
    (from..w.end).step_by(MINUTE as usize).collect()
}

/// One series over the window and its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Datapoints in the window.
    pub datapoints: usize,
    /// Sum series: the window's total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Sum series: the largest minute and when it began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_at: Option<i64>,
    /// Sum series: the baseline's total over its length in minutes (a missing minute is 0:
    /// ALB counts are published only while requests flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_per_minute: Option<f64>,
    /// Minimum series: the lowest value in the window; Maximum series: the highest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extreme: Option<f64>,
    /// The same extreme over the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_extreme: Option<f64>,
}

fn within(points: &Points, from: i64, to: i64) -> impl Iterator<Item = &(i64, f64)> {
    points
        .iter()
        .filter(move |(t, v)| *t >= from && *t < to && v.is_finite())
}

fn extreme(stat: Stat, values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |acc, v| {
        Some(match (acc, stat) {
            (None, _) => v,
            (Some(a), Stat::Minimum) => a.min(v),
            (Some(a), _) => a.max(v),
        })
    })
}

/// The summary of one series.
pub fn summarize(stat: Stat, w: &Window, points: &Points) -> Summary {
    let inside: Vec<(i64, f64)> = within(points, w.start, w.end).copied().collect();
    let mut out = Summary {
        datapoints: inside.len(),
        sum: None,
        peak: None,
        peak_at: None,
        baseline_per_minute: None,
        extreme: None,
        baseline_extreme: None,
    };
    let base = within(points, w.baseline_start, w.start).map(|(_, v)| *v);
    match stat {
        Stat::Sum => {
            out.sum = Some(inside.iter().map(|(_, v)| v).sum());
            // The earliest of equal peaks: when the storm began.
            let peak = inside
                .iter()
                .fold(None::<(i64, f64)>, |best, &(t, v)| match best {
                    Some((bt, bv)) if bv > v || (bv == v && bt <= t) => Some((bt, bv)),
                    _ => Some((t, v)),
                });
            out.peak_at = peak.map(|(t, _)| t);
            out.peak = peak.map(|(_, v)| v);
            let minutes = ((w.start - w.baseline_start) / MINUTE).max(1) as f64;
            out.baseline_per_minute = Some(base.sum::<f64>() / minutes);
        }
        Stat::Minimum | Stat::Maximum => {
            out.extreme = extreme(stat, inside.iter().map(|(_, v)| *v));
            out.baseline_extreme = extreme(stat, base);
        }
    }
    out
}

/// The thresholds on real traffic (both off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// `--max-elb-5xx N`: ELB 5XX answers over the window, all load balancers together.
    pub max_elb_5xx: Option<u64>,
    /// `--max-new-connections-ratio F`: the peak minute of new connections over the
    /// baseline per minute.
    pub max_new_connections_ratio: Option<f64>,
}

/// A threshold's verdict: `Some(true)` crossed, `Some(false)` within, `None` no data.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: &'static str,
    pub crossed: Option<bool>,
    pub message: String,
}

/// `--max-elb-5xx`: `sums` are the window totals of `HTTPCode_ELB_5XX_Count` per load
/// balancer (`None`: no datapoint).
pub fn elb_5xx_verdict(max: u64, sums: &[Option<f64>]) -> Verdict {
    let name = "elb-5xx";
    if sums.iter().all(Option::is_none) {
        return Verdict {
            name,
            crossed: None,
            message: format!(
                "no ELB 5XX datapoint in the window yet (ALB publishes the count only when there is one): --max-elb-5xx {max} was not checked"
            ),
        };
    }
    let total: f64 = sums.iter().flatten().sum();
    let crossed = total > max as f64;
    let rel = if crossed { "more than" } else { "within" };
    Verdict {
        name,
        crossed: Some(crossed),
        message: format!(
            "ELB 5XX: {} in the window, {rel} --max-elb-5xx {max}",
            count(total)
        ),
    }
}

/// `--max-new-connections-ratio`: the largest peak minute over its baseline per minute, one
/// (peak, baseline) pair per load balancer. A baseline of 0 with a peak is an infinite ratio.
pub fn new_connections_verdict(max: f64, pairs: &[(Option<f64>, Option<f64>)]) -> Verdict {
    let name = "new-connections";
    let ratios: Vec<(f64, f64, f64)> = pairs
        .iter()
        .filter_map(|&(peak, base)| {
            let (p, b) = (peak?, base.unwrap_or(0.0));
            let r = match (p, b) {
                (p, b) if b > 0.0 => p / b,
                (p, _) if p > 0.0 => f64::INFINITY,
                _ => 0.0,
            };
            Some((r, p, b))
        })
        .collect();
    let Some(&(ratio, peak, base)) = ratios.iter().max_by(|a, b| a.0.total_cmp(&b.0)) else {
        return Verdict {
            name,
            crossed: None,
            message: format!(
                "no new-connection datapoint in the window yet: --max-new-connections-ratio {max} was not checked"
            ),
        };
    };
    let crossed = ratio > max;
    let shown = if ratio.is_infinite() {
        "no baseline".to_string()
    } else {
        format!("{ratio:.1}x")
    };
    let rel = if crossed { "more than" } else { "within" };
    Verdict {
        name,
        crossed: Some(crossed),
        message: format!(
            "new connections: {} in the peak minute, baseline {}/min ({shown}), {rel} --max-new-connections-ratio {max}",
            count(peak),
            count(base)
        ),
    }
}

/// A count for people: `1,840`; fractions keep one decimal (`0.5`).
pub fn count(v: f64) -> String {
    if v.fract() != 0.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{}", v.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_764_900_000; // a whole minute

    #[test]
    fn the_window_is_whole_minutes_and_the_baseline_as_long_just_before() {
        let w = Window::around(T0 + 10, T0 + 190);
        assert_eq!(w.start, T0);
        assert_eq!(w.end, T0 + 240);
        assert_eq!(w.minutes(), 4);
        assert_eq!(w.baseline_start, T0 - 240);
        assert_eq!(w.last_minute(), T0 + 180);
        // A rollout inside one minute still has one.
        let w = Window::around(T0, T0);
        assert_eq!((w.start, w.end, w.baseline_start), (T0, T0 + 60, T0 - 60));
        // An end before the start (a clock step) is treated as the start.
        assert_eq!(Window::around(T0 + 5, T0 - 100).minutes(), 1);
    }

    #[test]
    fn sums_peaks_and_the_baseline_per_minute() {
        let w = Window::around(T0, T0 + 180); // 3 minutes, baseline 3 minutes
        let points = vec![
            (T0 - 180, 60.0),
            (T0 - 120, 60.0),
            // T0 - 60 missing: no requests, counts as 0
            (T0, 100.0),
            (T0 + 60, 1840.0),
            (T0 + 120, 1840.0),
            (T0 + 180, 9999.0), // after the window
        ];
        let s = summarize(Stat::Sum, &w, &points);
        assert_eq!(s.datapoints, 3);
        assert_eq!(s.sum, Some(3780.0));
        assert_eq!(s.peak, Some(1840.0));
        assert_eq!(s.peak_at, Some(T0 + 60), "the earliest of equal peaks");
        assert_eq!(s.baseline_per_minute, Some(40.0));
        assert_eq!(s.extreme, None);
    }

    #[test]
    fn extremes_for_minimum_and_maximum_series() {
        let w = Window::around(T0, T0 + 120);
        let points = vec![(T0 - 60, 2.0), (T0, 1.0), (T0 + 60, 2.0), (T0 - 120, 3.0)];
        let min = summarize(Stat::Minimum, &w, &points);
        assert_eq!((min.extreme, min.baseline_extreme), (Some(1.0), Some(2.0)));
        let max = summarize(Stat::Maximum, &w, &points);
        assert_eq!((max.extreme, max.baseline_extreme), (Some(2.0), Some(3.0)));
        assert_eq!(max.sum, None);
        let none = summarize(Stat::Minimum, &w, &vec![(T0, f64::NAN)]);
        assert_eq!((none.datapoints, none.extreme), (0, None));
    }

    #[test]
    fn no_datapoint_is_no_peak_and_a_zero_baseline() {
        let w = Window::around(T0, T0 + 60);
        let s = summarize(Stat::Sum, &w, &vec![]);
        assert_eq!((s.sum, s.peak, s.peak_at), (Some(0.0), None, None));
        assert_eq!(s.baseline_per_minute, Some(0.0));
    }

    #[test]
    fn the_minutes_not_in_yet_are_those_after_the_newest_datapoint() {
        let w = Window::around(T0, T0 + 240); // minutes T0..T0+180
        assert_eq!(minutes_not_in(&w, Some(T0 + 60)), vec![T0 + 120, T0 + 180]);
        assert_eq!(minutes_not_in(&w, Some(T0 + 180)), Vec::<i64>::new());
        assert_eq!(minutes_not_in(&w, None).len(), 4);
        // Only baseline data: the whole window is missing.
        assert_eq!(minutes_not_in(&w, Some(T0 - 60)).len(), 4);
        let a = vec![(T0, 1.0)];
        let b = vec![(T0 + 120, 1.0), (T0 - 60, 1.0)];
        assert_eq!(newest_minute([&a, &b]), Some(T0 + 120));
        assert_eq!(newest_minute([&vec![]]), None);
    }

    #[test]
    fn elb_5xx_over_the_threshold_fails_and_within_passes() {
        let v = elb_5xx_verdict(10, &[Some(8.0), Some(6.0)]);
        assert_eq!(v.crossed, Some(true));
        assert_eq!(
            v.message,
            "ELB 5XX: 14 in the window, more than --max-elb-5xx 10"
        );
        let v = elb_5xx_verdict(14, &[Some(8.0), Some(6.0)]);
        assert_eq!(v.crossed, Some(false), "{}", v.message);
        let v = elb_5xx_verdict(0, &[None]);
        assert_eq!(v.crossed, None);
        assert!(v.message.contains("not checked"), "{}", v.message);
    }

    #[test]
    fn the_new_connections_ratio_is_peak_over_baseline() {
        let v = new_connections_verdict(10.0, &[(Some(1840.0), Some(60.0))]);
        assert_eq!(v.crossed, Some(true));
        assert!(
            v.message
                .contains("1,840 in the peak minute, baseline 60/min (30.7x)"),
            "{}",
            v.message
        );
        let v = new_connections_verdict(40.0, &[(Some(1840.0), Some(60.0))]);
        assert_eq!(v.crossed, Some(false));
        // No baseline at all: any peak is infinitely above it.
        let v = new_connections_verdict(1000.0, &[(Some(5.0), Some(0.0))]);
        assert_eq!(v.crossed, Some(true));
        assert!(v.message.contains("no baseline"), "{}", v.message);
        let v = new_connections_verdict(1.0, &[(None, Some(3.0))]);
        assert_eq!(v.crossed, None);
        // The worst load balancer decides.
        let v =
            new_connections_verdict(5.0, &[(Some(10.0), Some(10.0)), (Some(100.0), Some(10.0))]);
        assert_eq!(v.crossed, Some(true));
    }

    #[test]
    fn counts_read_like_numbers() {
        assert_eq!(count(1840.0), "1,840");
        assert_eq!(count(1_234_567.0), "1,234,567");
        assert_eq!(count(60.0), "60");
        assert_eq!(count(0.5), "0.5");
        assert_eq!(count(0.0), "0");
    }

    #[test]
    fn every_series_has_a_unique_key() {
        let mut keys: Vec<_> = SERIES.iter().map(|s| s.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), SERIES.len());
    }
}
