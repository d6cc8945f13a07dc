//! The real-traffic report read from CloudWatch on the SDK's mock layer (moto cannot answer
//! the Rust client: it speaks RPC v2 CBOR), on tokio's paused clock: every page is read,
//! partial and late minutes are waited for up to `--metrics-wait` and then named, and a
//! missing permission or throttling is a warning, never a failure; only a threshold the user
//! set fails the run.

use std::time::Duration;

use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataError, GetMetricDataOutput};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MessageData, MetricDataResult, StatusCode};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::exit::Code;
use bosar_deploy::report::CheckStatus;
use bosar_deploy::traffic::window::{Thresholds, Window};
use bosar_deploy::traffic::{collect, RealTraffic, Targets, TrafficOptions};
use bosar_deploy::ui::Ui;

/// A whole minute; the rollout runs T0..T0+3m, the baseline T0-3m..T0.
const T0: i64 = 1_764_900_000;
const LB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/bosar-alb/50dc6c495c0c9188";
const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bosar-api-tg/73e2d6bc24d8a067";

fn window() -> Window {
    Window::around(T0 + 5, T0 + 170)
}

fn targets() -> Targets {
    Targets {
        load_balancer_arns: vec![LB.into()],
        target_group_arn: TG.into(),
    }
}

fn opts(wait: Duration, t: Thresholds) -> TrafficOptions {
    TrafficOptions {
        enabled: true,
        wait,
        thresholds: t,
    }
}

fn result(id: &str, points: &[(i64, f64)], status: StatusCode) -> MetricDataResult {
    let mut r = MetricDataResult::builder().id(id).status_code(status);
    for (t, v) in points {
        r = r.timestamps(DateTime::from_secs(*t)).values(*v);
    }
    r.build()
}

/// New connections: 60/min in the baseline, a storm of 1,840 in the rollout's first minute.
fn new_connections(upto: i64) -> Vec<(i64, f64)> {
    let all = [
        (T0 - 180, 60.0),
        (T0 - 120, 60.0),
        (T0 - 60, 60.0),
        (T0, 1840.0),
        (T0 + 60, 200.0),
        (T0 + 120, 80.0),
    ];
    all.into_iter().filter(|(t, _)| *t <= upto).collect()
}

fn full_answer(elb_5xx: f64) -> GetMetricDataOutput {
    GetMetricDataOutput::builder()
        .metric_data_results(result(
            "l0_new_connections",
            &new_connections(T0 + 120),
            StatusCode::Complete,
        ))
        .metric_data_results(result(
            "l0_elb_5xx",
            &[(T0 + 60, elb_5xx)],
            StatusCode::Complete,
        ))
        .metric_data_results(result(
            "t0_healthy_hosts_min",
            &[(T0 - 60, 2.0), (T0, 2.0), (T0 + 60, 1.0), (T0 + 120, 2.0)],
            StatusCode::Complete,
        ))
        .build()
}

fn client(rules: &[&Rule]) -> aws_sdk_cloudwatch::Client {
    mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, rules)
}

async fn read(rules: &[&Rule], wait: Duration, t: Thresholds) -> (RealTraffic, Ui) {
    let ui = Ui::capturing();
    let r = collect(&client(rules), &targets(), window(), &opts(wait, t), &ui).await;
    (r, ui)
}

fn series(r: &RealTraffic, key: &str) -> serde_json::Value {
    r.json()["load_balancers"][0]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .cloned()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_page_is_read_and_a_series_split_over_pages_is_merged() {
    let first = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(result(
                    "l0_new_connections",
                    &new_connections(T0 - 60),
                    StatusCode::PartialData,
                ))
                .next_token("page-2")
                .build()
        });
    let second = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| {
            r.next_token() == Some("page-2")
                && r.metric_data_queries().len() == 14
                && r.start_time() == Some(&DateTime::from_secs(T0 - 180))
                && r.end_time() == Some(&DateTime::from_secs(T0 + 180))
        })
        .then_output(|| {
            let rest: Vec<_> = new_connections(T0 + 120)
                .into_iter()
                .filter(|(t, _)| *t >= T0)
                .collect();
            GetMetricDataOutput::builder()
                .metric_data_results(result("l0_new_connections", &rest, StatusCode::Complete))
                .build()
        });
    let (r, _) = read(
        &[&first, &second],
        Duration::from_secs(180),
        Thresholds::default(),
    )
    .await;
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(r.status, CheckStatus::Pass, "{:?}", r.warnings);
    let nc = series(&r, "new_connections");
    assert_eq!(nc["sum"], 2120.0);
    assert_eq!(nc["peak"], 1840.0);
    assert_eq!(nc["baseline_per_minute"], 60.0);
    assert!(
        r.message
            .contains("new connections 1,840 in the peak minute, baseline 60/min"),
        "{}",
        r.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_last_minute_is_waited_for_with_progress_shown() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(result(
                    "l0_new_connections",
                    &new_connections(T0 + 60),
                    StatusCode::Complete,
                ))
                .build()
        })
        .output(|| full_answer(0.0))
        .build();
    let started = tokio::time::Instant::now();
    let (r, ui) = read(&[&rule], Duration::from_secs(180), Thresholds::default()).await;
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "one poll interval"
    );
    assert!(r.minutes_not_in.is_empty(), "{:?}", r.minutes_not_in);
    assert_eq!(r.status, CheckStatus::Pass, "{:?}", r.warnings);
    let lines = ui.captured();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("waiting for CloudWatch to publish minute")
                && l.contains("0s of --metrics-wait 180s")),
        "{lines:?}"
    );
    let healthy = series(&r, "healthy_hosts_min");
    assert_eq!(
        (
            healthy["extreme"].as_f64(),
            healthy["baseline_extreme"].as_f64()
        ),
        (Some(1.0), Some(2.0))
    );
}

#[tokio::test(start_paused = true)]
async fn minutes_still_missing_after_the_wait_are_named_and_never_fail() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| {
        GetMetricDataOutput::builder()
            .metric_data_results(result(
                "l0_new_connections",
                &new_connections(T0),
                StatusCode::Complete,
            ))
            .build()
    });
    let started = tokio::time::Instant::now();
    let t = Thresholds {
        max_elb_5xx: Some(0),
        max_new_connections_ratio: Some(100.0),
    };
    let (r, _) = read(&[&rule], Duration::from_secs(60), t).await;
    // Reads at 0, 30 and 60 s: then the wait is over.
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert_eq!(r.status, CheckStatus::Warn);
    assert_eq!(r.code(), Code::Success);
    assert_eq!(
        r.minutes_not_in,
        vec!["2025-12-05T02:01:00Z", "2025-12-05T02:02:00Z"]
    );
    assert!(
        r.warnings.iter().any(|w| w
            .starts_with("2 of the window's 3 minute(s) not in CloudWatch yet (from 02:01 UTC)")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test(start_paused = true)]
async fn access_denied_is_a_warning_naming_the_permission_and_is_not_retried() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_error(|| {
        GetMetricDataError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::123456789012:user/ci is not authorized to perform: cloudwatch:GetMetricData")
                .build(),
        )
    });
    let (r, _) = read(&[&rule], Duration::from_secs(180), Thresholds::default()).await;
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(r.status, CheckStatus::Warn);
    assert_eq!(r.code(), Code::Success);
    assert!(
        r.warnings[0].contains("(cloudwatch:GetMetricData)")
            && r.warnings[0].contains("grant cloudwatch:GetMetricData"),
        "{:?}",
        r.warnings
    );
    // A result marked Forbidden says the same.
    let forbidden = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| {
        GetMetricDataOutput::builder()
            .metric_data_results(result("l0_new_connections", &[], StatusCode::Forbidden))
            .build()
    });
    let (r, _) = read(
        &[&forbidden],
        Duration::from_secs(180),
        Thresholds::default(),
    )
    .await;
    assert_eq!((forbidden.num_calls(), r.status), (1, CheckStatus::Warn));
    assert!(
        r.warnings[0].contains("cloudwatch:GetMetricData"),
        "{:?}",
        r.warnings
    );
}

fn throttled() -> GetMetricDataError {
    GetMetricDataError::generic(
        ErrorMetadata::builder()
            .code("Throttling")
            .message("Rate exceeded")
            .build(),
    )
}

#[tokio::test(start_paused = true)]
async fn throttling_is_read_again_until_the_wait_runs_out() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .sequence()
        .error(throttled)
        .output(|| full_answer(0.0))
        .build();
    let (r, _) = read(&[&rule], Duration::from_secs(180), Thresholds::default()).await;
    assert_eq!(r.status, CheckStatus::Pass, "{:?}", r.warnings);
    assert!(rule.num_calls() >= 2);
    // Throttled to the end: a warning, not a failure.
    let always = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_error(throttled);
    let (r, _) = read(&[&always], Duration::from_secs(45), Thresholds::default()).await;
    assert_eq!((r.status, r.code()), (CheckStatus::Warn, Code::Success));
    assert!(
        r.warnings[0].starts_with("CloudWatch throttled GetMetricData"),
        "{:?}",
        r.warnings
    );
}

#[tokio::test(start_paused = true)]
async fn thresholds_fail_the_run_only_when_crossed() {
    let answer =
        mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| full_answer(14.0));
    let crossed = Thresholds {
        max_elb_5xx: Some(10),
        max_new_connections_ratio: Some(20.0),
    };
    let (r, _) = read(&[&answer], Duration::ZERO, crossed).await;
    assert_eq!((r.status, r.code()), (CheckStatus::Fail, Code::Failed));
    let error = r.error().unwrap();
    assert!(
        error.contains("ELB 5XX: 14 in the window, more than --max-elb-5xx 10"),
        "{error}"
    );
    assert!(
        error.contains("new connections: 1,840 in the peak minute, baseline 60/min (30.7x), more than --max-new-connections-ratio 20"),
        "{error}"
    );
    let within = Thresholds {
        max_elb_5xx: Some(14),
        max_new_connections_ratio: Some(31.0),
    };
    let (r, _) = read(&[&answer], Duration::ZERO, within).await;
    assert_eq!(
        (r.status, r.code()),
        (CheckStatus::Pass, Code::Success),
        "{:?}",
        r.checks
    );
    assert_eq!(r.checks.len(), 2);
    assert!(r.error().is_none());
}

#[tokio::test(start_paused = true)]
async fn cloudwatch_messages_are_kept_escaped() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| {
        GetMetricDataOutput::builder()
            .set_metric_data_results(Some(full_answer(0.0).metric_data_results().to_vec()))
            .messages(
                MessageData::builder()
                    .code("MaxMetricsExceeded")
                    .value("\u{1b}[31mred\u{1b}[0m")
                    .build(),
            )
            .build()
    });
    let (r, _) = read(&[&rule], Duration::ZERO, Thresholds::default()).await;
    assert_eq!(r.status, CheckStatus::Warn);
    assert!(
        r.warnings[0].starts_with("MaxMetricsExceeded: "),
        "{:?}",
        r.warnings
    );
    assert!(!r.warnings[0].contains('\u{1b}'), "{:?}", r.warnings);
}
