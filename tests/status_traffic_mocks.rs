//! `status`'s real traffic (the last 15 minutes of the deploy report's series) read from
//! CloudWatch on the SDK's mock layer (moto cannot answer the Rust client's RPC v2 CBOR), on
//! tokio's paused clock: one read and no wait, the minutes not published yet named, and a
//! missing permission, throttling or a partial answer a warning that never fails `status`.

use std::time::Duration;

use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataError, GetMetricDataOutput};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MetricDataResult, StatusCode};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::report::CheckStatus;
use bosar_deploy::traffic::recent::{self, to_section};
use bosar_deploy::traffic::{RealTraffic, Targets};
use bosar_deploy::ui::Ui;

/// A whole minute; `status` runs 30 s into the minute after NOW's.
const NOW: i64 = 1_764_900_000;
const LB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/bosar-alb/50dc6c495c0c9188";
const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bosar-api-tg/73e2d6bc24d8a067";

fn targets() -> Targets {
    Targets {
        load_balancer_arns: vec![LB.into()],
        target_group_arn: TG.into(),
    }
}

fn result(id: &str, points: &[(i64, f64)], status: StatusCode) -> MetricDataResult {
    let mut r = MetricDataResult::builder().id(id).status_code(status);
    for (t, v) in points {
        r = r.timestamps(DateTime::from_secs(*t)).values(*v);
    }
    r.build()
}

/// 50 new connections a minute for the half hour before, 400 in the minute 5 minutes ago,
/// CloudWatch published up to 3 minutes ago.
fn new_connections() -> Vec<(i64, f64)> {
    (-29..=-3)
        .map(|m| (NOW + m * 60, if m == -5 { 400.0 } else { 50.0 }))
        .collect()
}

async fn read(rules: &[&Rule]) -> (RealTraffic, Ui, Duration) {
    let ui = Ui::capturing();
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, rules);
    let started = tokio::time::Instant::now();
    let r = recent::read(&client, &targets(), recent::window(NOW + 30), &ui).await;
    (r, ui, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn the_last_15_minutes_are_read_once_without_waiting_and_the_late_minutes_named() {
    let w = recent::window(NOW + 30);
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(move |r| {
            r.metric_data_queries().len() == 14
                && r.start_time() == Some(&DateTime::from_secs(w.baseline_start))
                && r.end_time() == Some(&DateTime::from_secs(w.end))
        })
        .then_output(|| {
            GetMetricDataOutput::builder()
                .metric_data_results(result(
                    "l0_new_connections",
                    &new_connections(),
                    StatusCode::Complete,
                ))
                .metric_data_results(result(
                    "l0_elb_502",
                    &[(NOW - 300, 7.0)],
                    StatusCode::Complete,
                ))
                .metric_data_results(result(
                    "t0_healthy_hosts_min",
                    &[(NOW - 600, 2.0), (NOW - 300, 1.0)],
                    StatusCode::Complete,
                ))
                .build()
        });
    let (r, _, took) = read(&[&rule]).await;
    assert_eq!(rule.num_calls(), 1, "one GetMetricData");
    assert_eq!(took, Duration::ZERO, "no --metrics-wait for status");
    assert!(
        r.message.starts_with("last 15 min (") && r.message.contains(" UTC) vs the 15 min before: new connections 400 in the peak minute, baseline 50/min; ELB 502: 7"),
        "{}",
        r.message
    );
    assert!(r.message.contains("healthy hosts min 1"), "{}", r.message);
    // NOW-2m, NOW-1m, NOW: three minutes CloudWatch has not published yet, named.
    assert_eq!(r.minutes_not_in.len(), 3, "{:?}", r.minutes_not_in);
    assert_eq!(r.status, CheckStatus::Warn);
    assert!(r.warnings[0].contains("3 of the window's 15 minute(s) not in CloudWatch yet"));
    let s = to_section(&r);
    assert!(
        s.text.starts_with(
            "Real traffic (AWS/ApplicationELB, last 15 min):\n  WARN real traffic: last 15 min"
        ) && s.text.contains(
            "\n    app/bosar-alb/50dc6c495c0c9188 · targetgroup/bosar-api-tg/73e2d6bc24d8a067\n"
        ),
        "{}",
        s.text
    );
    assert!(
        s.text.contains("new connections: "),
        "the deploy report's words: {}",
        s.text
    );
    assert_eq!(
        s.json["load_balancers"][0]["series"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
    assert_eq!(s.json["window"]["minutes"], 15);
}

#[tokio::test(start_paused = true)]
async fn access_denied_is_a_warning_naming_the_permission() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_error(|| {
        GetMetricDataError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::123456789012:user/ci is not authorized to perform: cloudwatch:GetMetricData")
                .build(),
        )
    });
    let (r, _, _) = read(&[&rule]).await;
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(r.status, CheckStatus::Warn);
    assert!(
        r.warnings[0].contains("grant cloudwatch:GetMetricData"),
        "{:?}",
        r.warnings
    );
    let s = to_section(&r);
    assert_eq!(s.json["status"], "warn");
    assert!(s.text.contains("cloudwatch:GetMetricData"), "{}", s.text);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_a_warning_after_one_read() {
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_error(|| {
        GetMetricDataError::generic(
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let (r, _, _) = read(&[&rule]).await;
    assert_eq!(r.status, CheckStatus::Warn);
    assert!(r.warnings[0].contains("throttled"), "{:?}", r.warnings);
    assert!(r.load_balancers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_partial_answer_is_shown_with_what_is_missing() {
    // Page 1 is PartialData with a NextToken, page 2 has the rest of the series and an
    // InternalError for another; older minutes only: the newest 6 minutes are not in.
    let first = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            let early: Vec<_> = new_connections()
                .into_iter()
                .filter(|(t, _)| *t < NOW - 900)
                .collect();
            GetMetricDataOutput::builder()
                .metric_data_results(result(
                    "l0_new_connections",
                    &early,
                    StatusCode::PartialData,
                ))
                .next_token("more")
                .build()
        });
    let second = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
        .match_requests(|r| r.next_token() == Some("more"))
        .then_output(|| {
            let late: Vec<_> = new_connections()
                .into_iter()
                .filter(|(t, _)| (NOW - 900..=NOW - 360).contains(t))
                .collect();
            GetMetricDataOutput::builder()
                .metric_data_results(result("l0_new_connections", &late, StatusCode::Complete))
                .metric_data_results(result("t0_target_5xx", &[], StatusCode::InternalError))
                .build()
        });
    let (r, _, took) = read(&[&first, &second]).await;
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(took, Duration::ZERO);
    assert_eq!(r.status, CheckStatus::Warn);
    assert_eq!(r.minutes_not_in.len(), 6, "{:?}", r.minutes_not_in);
    let nc = r.json()["load_balancers"][0]["series"][0].clone();
    assert_eq!(nc["key"], "new_connections");
    // 9 minutes of the window are in (NOW-14m..NOW-6m): 9 x 50; the 400 of NOW-5m is not in.
    assert_eq!(nc["sum"], 450.0, "{nc}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("t0_target_5xx: CloudWatch answered InternalError")),
        "{:?}",
        r.warnings
    );
}
