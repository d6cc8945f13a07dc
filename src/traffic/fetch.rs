//! GetMetricData for a real-traffic report: the queries (dimension values from the ARNs),
//! every page of the answer (NextToken), and the wait for the window's last minute. Errors
//! become a [`Miss`] that the report turns into a warning: late metrics or a missing
//! permission never fail a deploy.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_runtime_api::client::result::SdkError;

use super::window::{self, Points, Scope, Series, Window, SERIES};
use crate::outside::Outside;

/// GetMetricData takes at most 500 queries a call (its API model).
pub const MAX_QUERIES: usize = 500;
/// Pages followed before giving up on a NextToken that never ends.
const MAX_PAGES: usize = 200;
/// How long between two reads while the last minute is not in.
pub const POLL: Duration = Duration::from_secs(30);

/// The `LoadBalancer` dimension of an ALB ARN (`app/<name>/<id>`); `None` for anything else
/// (a network load balancer publishes under `AWS/NetworkELB`).
pub fn load_balancer_dimension(arn: &str) -> Option<String> {
    let (_, rest) = arn.split_once(":loadbalancer/")?;
    (rest.starts_with("app/") && rest.split('/').count() == 3).then(|| rest.to_string())
}

/// The `TargetGroup` dimension of a target group ARN (`targetgroup/<name>/<id>`).
pub fn target_group_dimension(arn: &str) -> Option<String> {
    let (_, rest) = arn.split_once(":targetgroup/")?;
    (rest.split('/').count() == 2).then(|| format!("targetgroup/{rest}"))
}

/// One query: a series on one load balancer (and the target group, for its scope).
#[derive(Debug, Clone)]
pub struct Query {
    pub id: String,
    pub series: Series,
    /// Index into the load balancers.
    pub lb: usize,
}

/// Every query for the load balancers (dimension values) and the target group on them.
pub fn queries(lbs: &[String]) -> Vec<Query> {
    let mut out = Vec::new();
    for lb in 0..lbs.len() {
        for series in SERIES {
            let stem = match series.scope {
                Scope::LoadBalancer => "l",
                Scope::TargetGroup => "t",
            };
            out.push(Query {
                id: format!("{stem}{lb}_{}", series.key),
                series,
                lb,
            });
        }
    }
    out
}

fn metric_query(q: &Query, lbs: &[String], tg: &str) -> MetricDataQuery {
    let mut metric = Metric::builder()
        .namespace("AWS/ApplicationELB")
        .metric_name(q.series.metric);
    if q.series.scope == Scope::TargetGroup {
        metric = metric.dimensions(Dimension::builder().name("TargetGroup").value(tg).build());
    }
    metric = metric.dimensions(
        Dimension::builder()
            .name("LoadBalancer")
            .value(&lbs[q.lb])
            .build(),
    );
    MetricDataQuery::builder()
        .id(&q.id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(window::MINUTE as i32)
                .stat(q.series.stat.as_str())
                .build(),
        )
        .return_data(true)
        .build()
}

/// Why a read gave nothing (or less than asked).
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// No `cloudwatch:GetMetricData` (AccessDenied, or results marked Forbidden).
    Denied(String),
    /// Throttled after the SDK's own retries.
    Throttled(String),
    /// Anything else CloudWatch (or the network) said.
    Failed(String),
}

impl Miss {
    pub fn message(&self) -> String {
        match self {
            Miss::Denied(m) => format!(
                "the caller may not read CloudWatch metrics (cloudwatch:GetMetricData): {m}; grant cloudwatch:GetMetricData to see real traffic in the report"
            ),
            Miss::Throttled(m) => format!("CloudWatch throttled GetMetricData: {m}"),
            Miss::Failed(m) => m.clone(),
        }
    }
}

/// What one read returned: each query's datapoints, and CloudWatch's notes.
#[derive(Debug, Default, Clone)]
pub struct Answer {
    pub points: BTreeMap<String, Points>,
    /// Messages and result status codes other than Complete (outside text, shown escaped).
    pub notes: Vec<String>,
}

fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    e: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Miss {
    let code = e.code().unwrap_or_default().to_string();
    let throttled = crate::aws::is_throttling(&e);
    // "GetMetricData failed: …", with AWS's code and message.
    let text = crate::exit::message_of(&crate::aws::sdk_error("GetMetricData", e));
    if matches!(
        code.as_str(),
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
    ) {
        Miss::Denied(text)
    } else if throttled {
        Miss::Throttled(text)
    } else {
        Miss::Failed(text)
    }
}

/// One read of `[from, to)`: every page of every batch of at most [`MAX_QUERIES`] queries.
pub async fn read(
    client: &aws_sdk_cloudwatch::Client,
    queries: &[Query],
    lbs: &[String],
    tg: &str,
    from: i64,
    to: i64,
) -> Result<Answer, Miss> {
    let mut answer = Answer::default();
    for batch in queries.chunks(MAX_QUERIES) {
        let mut token: Option<String> = None;
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(Miss::Failed(format!(
                    "more than {MAX_PAGES} pages of datapoints; the report stops reading"
                )));
            }
            let out = client
                .get_metric_data()
                .set_metric_data_queries(Some(
                    batch.iter().map(|q| metric_query(q, lbs, tg)).collect(),
                ))
                .start_time(DateTime::from_secs(from))
                .end_time(DateTime::from_secs(to))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(classify)?;
            merge(&mut answer, &out)?;
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(answer)
}

/// Adds one page to the answer. A result marked Forbidden is a missing permission.
fn merge(
    answer: &mut Answer,
    out: &aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput,
) -> Result<(), Miss> {
    for m in out.messages() {
        answer.notes.push(format!(
            "{}: {}",
            Outside::new(m.code().unwrap_or("message")).shown(60),
            Outside::new(m.value().unwrap_or_default()).shown(200)
        ));
    }
    for r in out.metric_data_results() {
        let id = r.id().unwrap_or_default().to_string();
        match r.status_code().map(|s| s.as_str()) {
            Some("Forbidden") => {
                return Err(Miss::Denied(format!(
                    "result {} is Forbidden",
                    Outside::new(&id).shown(60)
                )))
            }
            Some("InternalError") => answer.notes.push(format!(
                "{}: CloudWatch answered InternalError",
                Outside::new(&id).shown(60)
            )),
            _ => {}
        }
        let points = answer.points.entry(id).or_default();
        for (t, v) in r.timestamps().iter().zip(r.values()) {
            points.push((t.secs(), *v));
        }
    }
    Ok(())
}

/// Whether the window's last minute is in: a datapoint at or after it in any series.
pub fn last_minute_in(w: &Window, answer: &Answer) -> bool {
    window::newest_minute(answer.points.values()).is_some_and(|t| t >= w.last_minute())
}

/// Reads until the window's last minute is in or `wait` is over (then reports what is in).
/// Throttling is tried again at the next read while time is left; a missing permission or
/// any other error ends at once. `progress` hears each wait.
pub async fn read_until_in(
    client: &aws_sdk_cloudwatch::Client,
    w: &Window,
    lbs: &[String],
    tg: &str,
    wait: Duration,
    mut progress: impl FnMut(Duration, Duration),
) -> Result<Answer, Miss> {
    let queries = queries(lbs);
    let started = tokio::time::Instant::now();
    loop {
        let read = read(client, &queries, lbs, tg, w.baseline_start, w.end).await;
        let waited = started.elapsed();
        let left = wait.saturating_sub(waited);
        match read {
            Ok(a) if last_minute_in(w, &a) || left.is_zero() => return Ok(a),
            Err(m @ Miss::Throttled(_)) if left.is_zero() => return Err(m),
            // The SDK already retried: only throttling is worth another read.
            Err(m @ (Miss::Denied(_) | Miss::Failed(_))) => return Err(m),
            _ => {}
        }
        progress(waited, wait);
        tokio::time::sleep(POLL.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_values_come_from_the_arns() {
        let lb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/bosar-alb/50dc6c495c0c9188";
        assert_eq!(
            load_balancer_dimension(lb).as_deref(),
            Some("app/bosar-alb/50dc6c495c0c9188")
        );
        let nlb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/n/1";
        assert_eq!(load_balancer_dimension(nlb), None);
        assert_eq!(load_balancer_dimension("app/x/y"), None);
        let tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bosar-api-tg/73e2d6bc24d8a067";
        assert_eq!(
            target_group_dimension(tg).as_deref(),
            Some("targetgroup/bosar-api-tg/73e2d6bc24d8a067")
        );
        assert_eq!(target_group_dimension("bosar-api-tg"), None);
    }

    #[test]
    fn query_ids_are_unique_and_valid_for_cloudwatch() {
        let lbs = vec!["app/a/1".to_string(), "app/b/2".to_string()];
        let q = queries(&lbs);
        assert_eq!(q.len(), 2 * SERIES.len());
        let mut ids: Vec<_> = q.iter().map(|q| q.id.clone()).collect();
        for id in &ids {
            // First a lowercase letter, then letters, digits, underscores.
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
            assert!(
                id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{id}"
            );
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), q.len());
        let m = metric_query(&q[SERIES.len() - 1], &lbs, "targetgroup/t/1");
        let dims = m.metric_stat().unwrap().metric().unwrap().dimensions();
        assert_eq!(dims.len(), 2, "a target group series has both dimensions");
    }
}
