//! Applying the plan: only the planned keys, then the attributes read back. Also after a call
//! that failed or whose answer was lost: each change is then reported as applied, not applied
//! or unknown (the read-back failed too), never "all or nothing" by guess.

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancerAttribute, TargetGroupAttribute};
use serde::Serialize;

use super::plan::AttributeChange;
use super::read::{read_with_retry, CompleteAnswer};
use super::{attributes_map, AlbPlan};
use crate::aws::{is_transient, sdk_error, Aws};
use crate::exit::{message_of, Failure};
use crate::outside::Outside;

/// Where one change stands after `alb-update` tried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    Applied,
    NotApplied,
    /// Neither the call's answer nor the read-back says.
    Unknown,
}

/// One planned change after the apply.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeResult {
    /// The target group's or load balancer's name.
    pub resource: String,
    pub key: String,
    pub desired: String,
    pub status: ChangeStatus,
    /// The value read back after the call (`None`: absent, or not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_back: Option<Outside>,
}

impl fmt::Display for ChangeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            ChangeStatus::Applied => "applied",
            ChangeStatus::NotApplied => "not applied",
            ChangeStatus::Unknown => "unknown",
        };
        write!(
            f,
            "{status:<11} {} {} = {}",
            self.resource, self.key, self.desired
        )?;
        match (&self.read_back, self.status) {
            (_, ChangeStatus::Unknown) => write!(f, " (could not be read back)"),
            (Some(v), ChangeStatus::NotApplied) => write!(f, " (reads back {v})"),
            (None, ChangeStatus::NotApplied) => write!(f, " (absent when read back)"),
            _ => Ok(()),
        }
    }
}

/// Every planned change with its status, and the first error (a failed call, a read-back
/// that did not confirm).
pub struct ApplyReport {
    pub changes: Vec<ChangeResult>,
    pub error: Option<anyhow::Error>,
}

/// The statuses of `changes` on one resource from what was read back (`None`: not read).
fn statuses(
    resource: &str,
    changes: &[AttributeChange],
    back: Option<&BTreeMap<String, String>>,
) -> Vec<ChangeResult> {
    changes
        .iter()
        .map(|c| {
            let read_back = back.and_then(|b| b.get(&c.key));
            let status = match (back, read_back) {
                (None, _) => ChangeStatus::Unknown,
                (Some(_), Some(v)) if v.eq_ignore_ascii_case(&c.desired) => ChangeStatus::Applied,
                (Some(_), _) => ChangeStatus::NotApplied,
            };
            ChangeResult {
                resource: resource.to_string(),
                key: c.key.clone(),
                desired: c.desired.clone(),
                status,
                read_back: read_back.map(|v| Outside::new(v)),
            }
        })
        .collect()
}

/// What a modify call and the read after it came to, on one resource.
async fn settle(
    resource: &str,
    changes: &[AttributeChange],
    sent: anyhow::Result<()>,
    back: anyhow::Result<BTreeMap<String, String>>,
) -> (Vec<ChangeResult>, Option<anyhow::Error>) {
    let results = statuses(resource, changes, back.as_ref().ok());
    let error = match (sent, back) {
        (Ok(()), Ok(_)) => unconfirmed(resource, &results),
        (Ok(()), Err(e)) => Some(
            Failure::failed(format!(
                "{resource}: AWS accepted the change but reading it back failed ({}): whether it holds is unknown",
                message_of(&e)
            ))
            .into(),
        ),
        (Err(e), _) => Some(e),
    };
    (results, error)
}

fn unconfirmed(resource: &str, results: &[ChangeResult]) -> Option<anyhow::Error> {
    let wrong: Vec<String> = results
        .iter()
        .filter(|r| r.status != ChangeStatus::Applied)
        .map(|r| match &r.read_back {
            Some(v) => format!("{} reads back {v}, expected {}", r.key, r.desired),
            None => format!("{} is absent when read back, expected {}", r.key, r.desired),
        })
        .collect();
    (!wrong.is_empty()).then(|| {
        Failure::failed(format!(
            "{resource}: AWS accepted the change but {}",
            wrong.join("; ")
        ))
        .into()
    })
}

/// A modify call's error; a lost answer says that the change may have been made.
fn modify_error<E>(
    operation: &str,
    e: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> anyhow::Error
where
    E: aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let lost = is_transient(&e);
    let err = sdk_error(operation, e);
    if !lost {
        return err;
    }
    let mut f = Failure::failed(format!(
        "{}: the change may have been applied",
        message_of(&err)
    ));
    f.hint = crate::exit::hint_of(&err).map(str::to_string);
    f.into()
}

/// Applies every planned change (the target group and each load balancer concurrently) and
/// reads each resource back, also after a failed call.
pub async fn apply_reporting(aws: &Aws, plan: &AlbPlan) -> ApplyReport {
    if let Err(f) = plan.ensure_not_refused() {
        return ApplyReport {
            changes: Vec::new(),
            error: Some(f.into()),
        };
    }
    let tg = apply_target_group(aws, &plan.target_group, &plan.target_group_changes);
    let alt = async {
        match &plan.alternate {
            Some(a) => apply_target_group(aws, &a.target_group, &a.changes).await,
            None => (Vec::new(), None),
        }
    };
    let lbs = plan
        .load_balancers
        .iter()
        .filter(|lb| !lb.changes.is_empty())
        .map(|lb| async move {
            let attrs: Vec<LoadBalancerAttribute> = lb
                .changes
                .iter()
                .map(|c| {
                    LoadBalancerAttribute::builder()
                        .key(&c.key)
                        .value(&c.desired)
                        .build()
                })
                .collect();
            let sent = aws
                .elb
                .modify_load_balancer_attributes()
                .load_balancer_arn(&lb.arn)
                .set_attributes(Some(attrs))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| modify_error("ModifyLoadBalancerAttributes", e));
            let back = read_with_retry("DescribeLoadBalancerAttributes", || {
                aws.elb
                    .describe_load_balancer_attributes()
                    .load_balancer_arn(&lb.arn)
                    .customize()
                    .interceptor(CompleteAnswer("DescribeLoadBalancerAttributesResponse"))
                    .send()
            })
            .await
            .map(|out| attributes_map(out.attributes().iter().map(|a| (a.key(), a.value()))));
            settle(&lb.name, &lb.changes, sent, back).await
        });
    let (tg, alt, lbs) = tokio::join!(tg, alt, futures_util::future::join_all(lbs));
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for (c, e) in [tg, alt].into_iter().chain(lbs) {
        changes.extend(c);
        errors.extend(e);
    }
    ApplyReport {
        error: combined(errors, &changes),
        changes,
    }
}

/// One target group's changes, then its attributes read back.
async fn apply_target_group(
    aws: &Aws,
    tg: &super::TargetGroupInfo,
    changes: &[AttributeChange],
) -> (Vec<ChangeResult>, Option<anyhow::Error>) {
    if changes.is_empty() {
        return (Vec::new(), None);
    }
    let attrs: Vec<TargetGroupAttribute> = changes
        .iter()
        .map(|c| {
            TargetGroupAttribute::builder()
                .key(&c.key)
                .value(&c.desired)
                .build()
        })
        .collect();
    let sent = aws
        .elb
        .modify_target_group_attributes()
        .target_group_arn(&tg.arn)
        .set_attributes(Some(attrs))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| modify_error("ModifyTargetGroupAttributes", e));
    let back = read_with_retry("DescribeTargetGroupAttributes", || {
        aws.elb
            .describe_target_group_attributes()
            .target_group_arn(&tg.arn)
            .customize()
            .interceptor(CompleteAnswer("DescribeTargetGroupAttributesResponse"))
            .send()
    })
    .await
    .map(|out| attributes_map(out.attributes().iter().map(|a| (a.key(), a.value()))));
    settle(&tg.name, changes, sent, back).await
}

/// One error for every failure, with the count of each status when not all were applied.
fn combined(errors: Vec<anyhow::Error>, changes: &[ChangeResult]) -> Option<anyhow::Error> {
    if errors.is_empty() {
        return None;
    }
    let hint = errors
        .iter()
        .find_map(|e| crate::exit::hint_of(e).map(str::to_string));
    let messages: Vec<String> = errors.iter().map(message_of).collect();
    let count = |s| changes.iter().filter(|c| c.status == s).count();
    let mut f = Failure::failed(format!(
        "{}; of {} change(s): {} applied, {} not applied, {} unknown",
        messages.join("; "),
        changes.len(),
        count(ChangeStatus::Applied),
        count(ChangeStatus::NotApplied),
        count(ChangeStatus::Unknown)
    ));
    f.hint = Some(hint.unwrap_or_else(|| {
        "run `bosar-deploy alb-update` again once AWS answers: it plans only what is still different"
            .to_string()
    }));
    Some(f.into())
}

/// Applies the plan; an error names what was and was not applied.
pub async fn apply(aws: &Aws, plan: &AlbPlan) -> anyhow::Result<()> {
    match apply_reporting(aws, plan).await.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
