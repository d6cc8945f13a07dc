//! What real users saw during a rollout: the load balancer's and the target group's
//! CloudWatch metrics (`AWS/ApplicationELB`) for the rollout window beside a baseline of the
//! same length just before it, read with one GetMetricData (every page) once the window's
//! last minute is published or `--metrics-wait` runs out. Late metrics and a missing
//! `cloudwatch:GetMetricData` are warnings; only a threshold the user set can fail the run.
//!
//! `window` is the arithmetic, `fetch` the calls; this file is the report in every format.

pub mod fetch;
pub mod recent;
pub mod window;

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cli::MetricsFlags;
use crate::exit::Code;
use crate::report::{Check, CheckStatus, Step};
use crate::ui::Ui;
use fetch::Miss;
use window::{Summary, Thresholds, Window, SERIES};

/// `--metrics-wait`'s default: a minute shows up some 2-3 minutes after it ends.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(180);
/// The step's name in JUnit and the summary; the payload's key.
pub const STEP: &str = "real-traffic";
pub const KEY: &str = "real_traffic";

/// How the report is read, from the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficOptions {
    pub enabled: bool,
    pub wait: Duration,
    pub thresholds: Thresholds,
}

impl TrafficOptions {
    pub fn from_flags(f: &MetricsFlags) -> TrafficOptions {
        TrafficOptions {
            enabled: !f.no_metrics,
            wait: f.metrics_wait.unwrap_or(DEFAULT_WAIT),
            thresholds: Thresholds {
                max_elb_5xx: f.max_elb_5xx,
                max_new_connections_ratio: f.max_new_connections_ratio,
            },
        }
    }
}

/// Seconds since the epoch now (the rollout window's ends).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rfc3339(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `HH:MM` (UTC) for text.
fn hhmm(secs: i64) -> String {
    rfc3339(secs)[11..16].to_string()
}

/// The windows, as the payload shows them.
#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    pub start: String,
    pub end: String,
    pub minutes: i64,
    pub baseline_start: String,
}

/// One series on one load balancer.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    pub key: &'static str,
    pub metric: &'static str,
    pub stat: &'static str,
    #[serde(flatten)]
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_minute: Option<String>,
    /// The datapoints as CloudWatch answered them (minute start in Unix seconds, value), for
    /// the picture (`--html`); not in the JSON, whose summary is the contract.
    #[serde(skip)]
    pub points: window::Points,
}

/// The series of one load balancer and the target group on it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerTraffic {
    pub load_balancer: String,
    pub target_group: String,
    pub series: Vec<SeriesView>,
}

/// The real-traffic report (the payload's `real_traffic`, the step `real-traffic`).
#[derive(Debug, Clone, Serialize)]
pub struct RealTraffic {
    pub status: CheckStatus,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowView>,
    /// Minutes of the window with no datapoint yet in any series (`HH:MM` starts, RFC 3339).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub minutes_not_in: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<LoadBalancerTraffic>,
    /// The thresholds set (`--max-elb-5xx`, `--max-new-connections-ratio`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Why some or all of it is missing (a permission, throttling, CloudWatch's notes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub duration: Duration,
}

impl RealTraffic {
    /// Not read, and why (`--no-metrics`, nothing rolled out).
    pub fn skipped(why: impl Into<String>) -> RealTraffic {
        RealTraffic {
            status: CheckStatus::Skip,
            message: why.into(),
            window: None,
            minutes_not_in: Vec::new(),
            load_balancers: Vec::new(),
            checks: Vec::new(),
            warnings: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Only a threshold crossed fails the run.
    pub fn code(&self) -> Code {
        match self.status {
            CheckStatus::Fail => Code::Failed,
            _ => Code::Success,
        }
    }

    /// Why the run failed, when a threshold was crossed.
    pub fn error(&self) -> Option<String> {
        (self.status == CheckStatus::Fail).then(|| {
            let crossed: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| c.message.as_str())
                .collect();
            format!("real traffic: {}", crossed.join("; "))
        })
    }

    pub fn step(&self) -> Step {
        Step::new(STEP, self.status, self.duration, self.message.clone())
            .with_checks(self.checks.clone())
            .with_detail(self)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The text report.
    pub fn text(&self) -> String {
        let mut out = format!("{} real traffic: {}\n", self.status.label(), self.message);
        for lb in &self.load_balancers {
            let _ = writeln!(out, "  {} · {}", lb.load_balancer, lb.target_group);
            for s in &lb.series {
                let _ = writeln!(out, "    {}", series_line(s));
            }
        }
        for c in &self.checks {
            let _ = writeln!(out, "  {}", c.line());
        }
        out
    }
}

/// `new connections: 3,780 in the window, peak 1,840/min at 06:12, baseline 60/min` or
/// `healthy hosts min: 2 (baseline 2)`.
fn series_line(s: &SeriesView) -> String {
    let label = SERIES
        .iter()
        .find(|x| x.key == s.key)
        .map_or(s.key, |x| x.label);
    let n = |v: Option<f64>| v.map_or("none".to_string(), window::count);
    let sm = &s.summary;
    match sm.peak {
        _ if sm.sum.is_none() => format!(
            "{label}: {} (baseline {})",
            n(sm.extreme),
            n(sm.baseline_extreme)
        ),
        Some(peak) => format!(
            "{label}: {} in the window, peak {}/min at {}, baseline {}/min",
            n(sm.sum),
            window::count(peak),
            sm.peak_at.map(hhmm).unwrap_or_default(),
            n(sm.baseline_per_minute)
        ),
        None => format!(
            "{label}: none in the window, baseline {}/min",
            n(sm.baseline_per_minute)
        ),
    }
}

/// What to read: the ALB ARNs and the target group ARN (dimension values come from them).
#[derive(Debug, Clone)]
pub struct Targets {
    pub load_balancer_arns: Vec<String>,
    pub target_group_arn: String,
}

/// The real traffic of a rollout that started at `from` (Unix seconds) and ended now:
/// `None` when nothing rolled out; skipped when it was not watched to its end.
pub async fn after_deploy(
    aws: &crate::aws::Aws,
    tg: &crate::config::ResourceRef,
    ui: &Ui,
    opts: &TrafficOptions,
    from: i64,
    result: &crate::ecs::deploy::DeployResult,
    err: Option<&anyhow::Error>,
) -> Option<RealTraffic> {
    result.deployment_id.as_ref()?;
    let to = unix_now();
    if err.is_some_and(|e| crate::exit::code_of(e) == Code::Interrupted) {
        return Some(RealTraffic::skipped("not read: the run was interrupted"));
    }
    if result.outcome.is_none() && err.is_none() {
        return Some(RealTraffic::skipped(
            "not read: the rollout was not watched (--no-wait)",
        ));
    }
    Some(after_rollout(aws, tg, Window::around(from, to), opts, ui).await)
}

/// After a rollout: the load balancers of the target group deploy.toml names, then
/// [`collect`]. `--no-metrics`, or no way to read, is a skipped report; never an error.
pub async fn after_rollout(
    aws: &crate::aws::Aws,
    tg: &crate::config::ResourceRef,
    w: Window,
    opts: &TrafficOptions,
    ui: &Ui,
) -> RealTraffic {
    if !opts.enabled {
        return RealTraffic::skipped("not read (--no-metrics)");
    }
    let (client, targets) = match reader(aws, tg).await {
        Ok(r) => r,
        Err(skipped) => return skipped,
    };
    ui.line(format!(
        "Reading CloudWatch (AWS/ApplicationELB) for the rollout, {}-{} UTC, and the {} min before",
        hhmm(w.start),
        hhmm(w.end),
        w.minutes()
    ));
    let report = collect(&client, &targets, w, opts, ui).await;
    for warning in &report.warnings {
        ui.warn(warning);
    }
    if report.status == CheckStatus::Skip {
        ui.line(format!("real traffic: {}", report.message));
    }
    report
}

/// A CloudWatch client and what to read: the load balancers of the target group deploy.toml
/// names. `Err` is the report when there is no way to read (skipped, or a warning).
pub async fn reader(
    aws: &crate::aws::Aws,
    tg: &crate::config::ResourceRef,
) -> Result<(aws_sdk_cloudwatch::Client, Targets), RealTraffic> {
    let Some(sdk) = aws.sdk.as_ref() else {
        return Err(RealTraffic::skipped(
            "no AWS configuration to build a CloudWatch client from",
        ));
    };
    let info = match crate::alb::describe_target_group(aws, tg).await {
        Ok(i) => i,
        Err(e) => {
            let mut r = RealTraffic::skipped(format!(
                "the target group's load balancers could not be read: {}",
                crate::exit::message_of(&e)
            ));
            r.status = CheckStatus::Warn;
            r.warnings.push(r.message.clone());
            return Err(r);
        }
    };
    let client = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(sdk)
            .interceptor(crate::aws::CallLog)
            .build(),
    );
    let targets = Targets {
        load_balancer_arns: info.load_balancer_arns,
        target_group_arn: info.arn,
    };
    Ok((client, targets))
}

/// Reads the window's metrics (waiting for its last minute up to `opts.wait`, with progress
/// on `ui`) and builds the report. Never an error: what is missing is a warning.
pub async fn collect(
    client: &aws_sdk_cloudwatch::Client,
    targets: &Targets,
    w: Window,
    opts: &TrafficOptions,
    ui: &Ui,
) -> RealTraffic {
    let started = tokio::time::Instant::now();
    let Some(tg) = fetch::target_group_dimension(&targets.target_group_arn) else {
        return RealTraffic::skipped(format!(
            "{} is not a target group ARN: no metrics to read",
            crate::outside::Outside::new(&targets.target_group_arn).shown(120)
        ));
    };
    let lbs: Vec<String> = targets
        .load_balancer_arns
        .iter()
        .filter_map(|a| fetch::load_balancer_dimension(a))
        .collect();
    if lbs.is_empty() {
        return RealTraffic::skipped(
            "the target group is on no Application Load Balancer: no AWS/ApplicationELB metrics",
        );
    }
    let last = hhmm(w.last_minute());
    let read = fetch::read_until_in(client, &w, &lbs, &tg, opts.wait, |waited, of| {
        ui.line(format!(
            "waiting for CloudWatch to publish minute {last} UTC ({}s of --metrics-wait {}s)",
            waited.as_secs(),
            of.as_secs()
        ));
    })
    .await;
    let mut report = match read {
        Ok(answer) => build(&w, &lbs, &tg, &answer, &opts.thresholds),
        Err(miss) => missed(&w, &miss),
    };
    report.duration = started.elapsed();
    report
}

/// The report when nothing could be read.
fn missed(w: &Window, miss: &Miss) -> RealTraffic {
    let mut r = RealTraffic::skipped(miss.message());
    r.window = Some(view(w));
    // An emulator (moto) answers CloudWatch's RPC v2 CBOR with an error: the sandbox has no
    // real traffic to show, and says so (skipped); against AWS it is a warning.
    if let (Miss::Failed(_), Some(endpoint)) = (miss, endpoint_override()) {
        r.message.push_str(&format!(
            "; CloudWatch was called at {endpoint}: an emulator such as moto does not serve the Rust SDK's CloudWatch protocol (RPC v2 CBOR), so a sandbox report has no real traffic"
        ));
        return r;
    }
    r.status = CheckStatus::Warn;
    r.warnings.push(r.message.clone());
    r
}

/// The endpoint CloudWatch was sent to when it is not AWS's (`AWS_ENDPOINT_URL[_CLOUDWATCH]`).
fn endpoint_override() -> Option<String> {
    ["AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find_map(|k| {
            let v = std::env::var(k).ok().filter(|v| !v.is_empty())?;
            Some(format!(
                "{} (from {k})",
                crate::outside::Outside::new(&v).shown(120)
            ))
        })
}

fn view(w: &Window) -> WindowView {
    WindowView {
        start: rfc3339(w.start),
        end: rfc3339(w.end),
        minutes: w.minutes(),
        baseline_start: rfc3339(w.baseline_start),
    }
}

/// The report from what CloudWatch answered (pure; tested without calls).
pub fn build(
    w: &Window,
    lbs: &[String],
    tg: &str,
    answer: &fetch::Answer,
    t: &Thresholds,
) -> RealTraffic {
    let empty = Vec::new();
    let mut load_balancers = Vec::new();
    for q in fetch::queries(lbs) {
        if load_balancers.len() <= q.lb {
            load_balancers.push(LoadBalancerTraffic {
                load_balancer: lbs[q.lb].clone(),
                target_group: tg.to_string(),
                series: Vec::new(),
            });
        }
        let points = answer.points.get(&q.id).unwrap_or(&empty);
        let summary = window::summarize(q.series.stat, w, points);
        load_balancers[q.lb].series.push(SeriesView {
            key: q.series.key,
            metric: q.series.metric,
            stat: q.series.stat.as_str(),
            peak_minute: summary.peak_at.map(rfc3339),
            summary,
            points: points.clone(),
        });
    }
    let newest = window::newest_minute(answer.points.values());
    let not_in = window::minutes_not_in(w, newest);
    // ALB publishes a count only when it is not 0: once any minute of the window is in, a
    // count with no datapoint was 0.
    let any_in = newest.is_some_and(|n| n >= w.start);
    let checks = threshold_checks(&load_balancers, t, any_in);
    let mut warnings = answer.notes.clone();
    if !not_in.is_empty() {
        warnings.push(format!(
            "{} of the window's {} minute(s) not in CloudWatch yet (from {} UTC): a minute shows up 2-3 minutes after it ends, and ALB metrics exist only while requests flow",
            not_in.len(),
            w.minutes(),
            hhmm(not_in[0])
        ));
    }
    let status = match crate::report::worst(&checks) {
        CheckStatus::Fail => CheckStatus::Fail,
        _ if !warnings.is_empty() => CheckStatus::Warn,
        s => s,
    };
    RealTraffic {
        status,
        message: headline(w, &load_balancers),
        window: Some(view(w)),
        minutes_not_in: not_in.into_iter().map(rfc3339).collect(),
        load_balancers,
        checks,
        warnings,
        duration: Duration::ZERO,
    }
}

fn find<'a>(lb: &'a LoadBalancerTraffic, key: &str) -> Option<&'a Summary> {
    lb.series.iter().find(|s| s.key == key).map(|s| &s.summary)
}

/// "rollout 06:10-06:14 UTC (4 min) vs the 4 min before: new connections 1,840 in the peak
/// minute, baseline 60/min; ELB 502: 14; non-sticky requests: 512; healthy hosts min 2"
fn headline(w: &Window, lbs: &[LoadBalancerTraffic]) -> String {
    let lead = format!(
        "rollout {}-{} UTC ({} min)",
        hhmm(w.start),
        hhmm(w.end),
        w.minutes()
    );
    headline_for(&lead, w, lbs)
}

/// The headline after `lead` (which names the window): "… vs the N min before: …".
fn headline_for(lead: &str, w: &Window, lbs: &[LoadBalancerTraffic]) -> String {
    let total = |key: &str| -> f64 { lbs.iter().filter_map(|lb| find(lb, key)?.sum).sum::<f64>() };
    let peak = lbs
        .iter()
        .filter_map(|lb| find(lb, "new_connections"))
        .filter_map(|s| Some((s.peak?, s.baseline_per_minute.unwrap_or(0.0))))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let mut parts = vec![match peak {
        Some((p, b)) => format!(
            "new connections {} in the peak minute, baseline {}/min",
            window::count(p),
            window::count(b)
        ),
        None => "no new connections recorded".to_string(),
    }];
    for (key, label) in [
        ("elb_502", "ELB 502"),
        ("elb_5xx", "ELB 5XX"),
        ("non_sticky_requests", "non-sticky requests"),
    ] {
        parts.push(format!("{label}: {}", window::count(total(key))));
    }
    let healthy = lbs
        .iter()
        .filter_map(|lb| find(lb, "healthy_hosts_min")?.extreme)
        .reduce(f64::min);
    if let Some(h) = healthy {
        parts.push(format!("healthy hosts min {}", window::count(h)));
    }
    format!(
        "{lead} vs the {} min before: {}",
        w.minutes(),
        parts.join("; ")
    )
}

/// The thresholds' checks; with nothing of the window in (`any_in` false) they say so.
fn threshold_checks(lbs: &[LoadBalancerTraffic], t: &Thresholds, any_in: bool) -> Vec<Check> {
    let mut verdicts = Vec::new();
    if let Some(max) = t.max_elb_5xx {
        let sums: Vec<Option<f64>> = lbs
            .iter()
            .map(|lb| find(lb, "elb_5xx").filter(|_| any_in)?.sum)
            .collect();
        verdicts.push(window::elb_5xx_verdict(max, &sums));
    }
    if let Some(max) = t.max_new_connections_ratio {
        let pairs: Vec<(Option<f64>, Option<f64>)> = lbs
            .iter()
            .map(|lb| match find(lb, "new_connections").filter(|_| any_in) {
                Some(s) => (Some(s.peak.unwrap_or(0.0)), s.baseline_per_minute),
                None => (None, None),
            })
            .collect();
        verdicts.push(window::new_connections_verdict(max, &pairs));
    }
    verdicts
        .into_iter()
        .map(|v| {
            let status = match v.crossed {
                Some(true) => CheckStatus::Fail,
                Some(false) => CheckStatus::Pass,
                None => CheckStatus::Warn,
            };
            Check::new(v.name, status, Duration::ZERO, v.message)
        })
        .collect()
}

#[cfg(test)]
mod tests;
