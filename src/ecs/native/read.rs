//! The calls of an ECS-native deployment: which service deployment is ours
//! (ListServiceDeployments), what it does now (DescribeServiceDeployments), and the gate's
//! answers (ContinueServiceDeployment, StopServiceDeployment). Errors are classified like the
//! rolling watch's: throttling, 5xx and lost connections are transient and waited out.

use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, ServiceDeployment, ServiceDeploymentStatus,
    StopServiceDeploymentStopType,
};

use super::stages::{HookView, Observation};
use crate::aws::Aws;
use crate::ecs::{classify, date, DescribeError};
use crate::exit::Failure;
use crate::outside::Outside;

/// Pages of ListServiceDeployments read at most (20 a page, newest first).
const LIST_PAGES: usize = 5;

/// One entry of ListServiceDeployments.
#[derive(Debug, Clone, PartialEq)]
pub struct Brief {
    pub arn: String,
    pub status: String,
    pub created_secs: i64,
}

/// The service's deployments, newest first, at most [`LIST_PAGES`] pages.
pub async fn list(aws: &Aws, cluster: &str, service: &str) -> Result<Vec<Brief>, DescribeError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..LIST_PAGES {
        let page = aws
            .ecs
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify("ListServiceDeployments", e))?;
        out.extend(page.service_deployments().iter().map(|b| {
            Brief {
                arn: b.service_deployment_arn().unwrap_or_default().to_string(),
                status: b
                    .status()
                    .map(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string(),
                created_secs: b.created_at().map(|d| d.secs()).unwrap_or_default(),
            }
        }));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.created_secs));
    Ok(out)
}

/// Ours among `briefs`: the one whose ARN ends with the deployment id UpdateService returned
/// (`ecs-svc/1234` → `…/1234`), else the newest created since `since_secs` (a minute of clock
/// skew allowed).
pub fn ours(briefs: &[Brief], deployment_id: &str, since_secs: i64) -> Option<Brief> {
    let tail = deployment_id.rsplit('/').next().unwrap_or(deployment_id);
    briefs
        .iter()
        .find(|b| !tail.is_empty() && b.arn.rsplit('/').next() == Some(tail))
        .or_else(|| briefs.iter().find(|b| b.created_secs >= since_secs - 60))
        .cloned()
}

/// A deployment of the service created after ours: the one that superseded it.
pub fn newer(briefs: &[Brief], ours: &Brief) -> Option<String> {
    briefs
        .iter()
        .find(|b| b.arn != ours.arn && b.created_secs > ours.created_secs)
        .map(|b| b.arn.clone())
}

/// DescribeServiceDeployments of one ARN, as an [`Observation`].
pub async fn describe(aws: &Aws, arn: &str) -> Result<Observation, DescribeError> {
    let out = aws
        .ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .map_err(|e| classify("DescribeServiceDeployments", e))?;
    match out.service_deployments().first() {
        Some(d) => Ok(observation(d)),
        None => {
            let reason = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("MISSING");
            Err(DescribeError::Fatal(
                Failure::failed(format!(
                    "service deployment {arn} not found ({})",
                    Outside::new(reason)
                ))
                .hint("`bosar-deploy status` shows the service and its deployments")
                .into(),
            ))
        }
    }
}

/// What the tool reads of a service deployment.
pub fn observation(d: &ServiceDeployment) -> Observation {
    let target = d.target_service_revision();
    Observation {
        status: d
            .status()
            .map(|s| s.as_str())
            .unwrap_or_default()
            .to_string(),
        status_reason: d.status_reason().map(Outside::new),
        stage: d.lifecycle_stage().map(|s| s.as_str().to_string()),
        hooks: d
            .lifecycle_hook_details()
            .iter()
            .map(|h| HookView {
                hook_id: h.hook_id().unwrap_or_default().to_string(),
                target_type: h
                    .target_type()
                    .map(|t| t.as_str())
                    .unwrap_or_default()
                    .to_string(),
                status: h
                    .status()
                    .map(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string(),
                expires_at: date(h.expires_at()),
                timeout_action: h.timeout_action().map(|a| a.as_str().to_string()),
            })
            .collect(),
        production_weight: target.and_then(|t| t.requested_production_traffic_weight()),
        running: target.map(|t| t.running_task_count()),
        rollback_reason: d.rollback().and_then(|r| r.reason()).map(Outside::new),
        newer: None,
    }
}

/// The hook's answer: CONTINUE or ROLLBACK.
pub async fn continue_deployment(
    aws: &Aws,
    arn: &str,
    hook_id: &str,
    rollback: bool,
) -> Result<(), DescribeError> {
    let action = if rollback {
        DeploymentLifecycleHookAction::Rollback
    } else {
        DeploymentLifecycleHookAction::Continue
    };
    aws.ecs
        .continue_service_deployment()
        .service_deployment_arn(arn)
        .hook_id(hook_id)
        .action(action)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify("ContinueServiceDeployment", e))
}

/// StopServiceDeployment with stopType ROLLBACK: traffic back to blue while it still runs.
pub async fn stop_rollback(aws: &Aws, arn: &str) -> Result<(), DescribeError> {
    aws.ecs
        .stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify("StopServiceDeployment", e))
}

/// Whether a status still moves (a rollback can be asked for).
pub fn running(status: &str) -> bool {
    let s = ServiceDeploymentStatus::from(status);
    matches!(
        s,
        ServiceDeploymentStatus::Pending | ServiceDeploymentStatus::InProgress
    )
}
