//! ECS: roll the service (`deploy`), follow the deployment by id (`watch`, `wait`), report
//! (`status`), go back (`rollback`): one file per verb. `rollout`, `taskdef` and `masking`
//! (which task definition values are shown) are pure; this module does the reading.

pub mod deploy;
pub mod masking;
pub mod native;
mod polls;
pub mod preflight;
pub mod rollback;
pub mod rollout;
pub mod status;
pub mod strategy;
pub mod taskdef;
pub mod wait;
pub mod watch;

use aws_sdk_ecs::types::{DesiredStatus, TaskDefinitionField};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::aws::{is_transient, sdk_error, Aws};
use crate::exit::Failure;
use crate::outside::Outside;
use rollout::{CircuitBreaker, DeploymentView, EventView, ServiceView};

/// RFC 3339 to the second: ECS sends fractional epoch seconds, whose float digits are noise.
fn date(d: Option<&aws_smithy_types::DateTime>) -> String {
    d.map(|d| aws_smithy_types::DateTime::from_secs(d.secs()))
        .and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
        .unwrap_or_default()
}

/// An SDK error as a [`DescribeError`]: transient ones are waited out by the watch loop.
fn classify<E>(operation: &str, e: SdkError<E, HttpResponse>) -> DescribeError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_transient(&e) {
        DescribeError::Transient(sdk_error(operation, e).to_string())
    } else {
        let err = sdk_error(operation, e);
        if crate::exit::hint_of(&err).is_some() {
            return DescribeError::Fatal(err);
        }
        let mut f = Failure::failed(crate::exit::message_of(&err));
        f = f.hint(read_hint(operation));
        DescribeError::Fatal(f.into())
    }
}

/// What to check when a read of the service or its targets fails and AWS gave no hint.
fn read_hint(operation: &str) -> String {
    match operation {
        "DescribeTargetHealth" => "check that the service's target groups exist in this region (`bosar-deploy status` lists them) and that the credentials may read them (the README's \"IAM policy\")".into(),
        _ => format!("check [ecs] cluster and service in deploy.toml, the region (--region, [aws] region) and that the credentials may call {operation} (the README's \"IAM policy\")"),
    }
}

/// DescribeServices as a [`ServiceView`]; a missing service or cluster is a clear failure.
pub async fn describe_service(
    aws: &Aws,
    cluster: &str,
    service: &str,
) -> Result<ServiceView, DescribeError> {
    describe_service_full(aws, cluster, service)
        .await
        .map(|(view, _)| view)
}

/// [`describe_service`] with the service as ECS answered it, for what the view leaves out
/// (the whole deploymentConfiguration, the load balancers' advancedConfiguration).
pub async fn describe_service_full(
    aws: &Aws,
    cluster: &str,
    service: &str,
) -> Result<(ServiceView, aws_sdk_ecs::types::Service), DescribeError> {
    let out = match aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_cluster_not_found_exception()) =>
        {
            return Err(DescribeError::Fatal(
                Failure::failed(format!(
                    "ECS cluster {cluster} not found in region {}",
                    aws.region
                ))
                .hint("check [ecs] cluster in deploy.toml and the region")
                .into(),
            ))
        }
        Err(e) => return Err(classify("DescribeServices", e)),
    };
    let Some(s) = out
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
    else {
        let reason = out
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("MISSING");
        return Err(DescribeError::Fatal(
            Failure::failed(format!("ECS service {service} not found in cluster {cluster} ({reason})"))
                .hint("check [ecs] service in deploy.toml; `aws ecs list-services --cluster CLUSTER` lists what exists")
                .into(),
        ));
    };
    Ok((service_view(s, service), s.clone()))
}

/// What the tool reads of a service, from DescribeServices' answer.
fn service_view(s: &aws_sdk_ecs::types::Service, service: &str) -> ServiceView {
    ServiceView {
        name: s.service_name().unwrap_or(service).to_string(),
        status: s.status().unwrap_or_default().to_string(),
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        desired: s.desired_count(),
        running: s.running_count(),
        pending: s.pending_count(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| DeploymentView {
                id: d.id().unwrap_or_default().to_string(),
                status: d.status().unwrap_or_default().to_string(),
                task_definition: d.task_definition().unwrap_or_default().to_string(),
                desired: d.desired_count(),
                pending: d.pending_count(),
                running: d.running_count(),
                failed_tasks: d.failed_tasks(),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                rollout_state_reason: d.rollout_state_reason().map(Outside::new),
                created_at: date(d.created_at()),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .map(|e| EventView {
                id: e.id().unwrap_or_default().to_string(),
                created_at: date(e.created_at()),
                message: Outside::new(e.message().unwrap_or_default()),
            })
            .collect(),
        target_group_arns: s
            .load_balancers()
            .iter()
            .filter_map(|l| l.target_group_arn().map(str::to_string))
            .collect(),
        deployment_controller: s
            .deployment_controller()
            .map(|c| c.r#type().as_str().to_string()),
        strategy: s
            .deployment_configuration()
            .and_then(|c| c.strategy())
            .map(|st| st.as_str().to_string()),
        load_balancer_containers: s
            .load_balancers()
            .iter()
            .filter_map(|l| {
                Some((
                    l.target_group_arn()?.to_string(),
                    l.container_name()?.to_string(),
                ))
            })
            .collect(),
        circuit_breaker: s
            .deployment_configuration()
            .and_then(|c| c.deployment_circuit_breaker())
            .map(|b| CircuitBreaker {
                enable: b.enable(),
                rollback: b.rollback(),
            }),
    }
}

/// A describe error: transient ones are retried by the watch loop.
#[derive(Debug)]
pub enum DescribeError {
    Transient(String),
    Fatal(anyhow::Error),
}

impl From<DescribeError> for anyhow::Error {
    fn from(e: DescribeError) -> Self {
        match e {
            DescribeError::Transient(m) => Failure::failed(m)
                .hint("AWS throttled the call, answered with a server error, or the connection failed; it is a read: run the command again in a moment")
                .into(),
            DescribeError::Fatal(e) => e,
        }
    }
}

/// Healthy and total targets per target group.
pub async fn target_health(aws: &Aws, arns: &[String]) -> Result<Vec<TargetHealth>, DescribeError> {
    let mut out = Vec::new();
    for arn in arns {
        let resp = aws
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| classify("DescribeTargetHealth", e))?;
        let mut th = TargetHealth {
            target_group_arn: arn.clone(),
            healthy: 0,
            total: 0,
            unhealthy: Vec::new(),
        };
        for d in resp.target_health_descriptions() {
            th.total += 1;
            let state = d
                .target_health()
                .and_then(|h| h.state())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if state == "healthy" {
                th.healthy += 1;
            } else {
                let id = d.target().and_then(|t| t.id()).unwrap_or("?");
                let reason = d
                    .target_health()
                    .and_then(|h| h.description())
                    .unwrap_or("");
                th.unhealthy
                    .push(Outside::new(format!("{id} {state} {reason}").trim()));
            }
        }
        out.push(th);
    }
    Ok(out)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetHealth {
    pub target_group_arn: String,
    pub healthy: u32,
    pub total: u32,
    /// `target state description`, as ELB says it.
    pub unhealthy: Vec<Outside>,
}

/// Pages of stopped tasks read at most when looking for ours (100 tasks a page).
const STOPPED_TASK_PAGES: usize = 10;
/// Stopped tasks of ours shown as causes.
const STOPPED_TASK_CAUSES: usize = 5;

/// The most recently stopped tasks of `task_definition`, each as "task ID stopped: reason;
/// container exit codes" (outside text: anyone allowed `ecs:StopTask --reason` writes it). Pages through ListTasks (100 a page, at most
/// [`STOPPED_TASK_PAGES`]) and describes them 100 at a time, keeping only ours: during a
/// rollout the stopped tasks of the old revision outnumber ours.
pub async fn stopped_tasks(
    aws: &Aws,
    cluster: &str,
    service: &str,
    task_definition: &str,
) -> Result<Vec<Outside>, DescribeError> {
    let mut pages = aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .max_results(100)
        .into_paginator()
        .send();
    let mut ours: Vec<aws_sdk_ecs::types::Task> = Vec::new();
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("ListTasks", e))?;
        let arns = page.task_arns().to_vec();
        for chunk in arns.chunks(100) {
            let tasks = aws
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("DescribeTasks", e))?;
            ours.extend(
                tasks
                    .tasks()
                    .iter()
                    .filter(|t| t.task_definition_arn() == Some(task_definition))
                    .cloned(),
            );
        }
        read += 1;
        if read >= STOPPED_TASK_PAGES {
            break;
        }
    }
    // Newest first.
    ours.sort_by(|a, b| {
        let at =
            |t: &aws_sdk_ecs::types::Task| t.stopped_at().map(|d| (d.secs(), d.subsec_nanos()));
        at(b).cmp(&at(a))
    });
    Ok(ours
        .iter()
        .take(STOPPED_TASK_CAUSES)
        .map(describe_stopped_task)
        .collect())
}

fn describe_stopped_task(t: &aws_sdk_ecs::types::Task) -> Outside {
    let id = t
        .task_arn()
        .unwrap_or("?")
        .rsplit('/')
        .next()
        .unwrap_or("?");
    let containers: Vec<String> = t
        .containers()
        .iter()
        .map(|c| {
            let mut s = format!(
                "{} exit {}",
                c.name().unwrap_or("?"),
                c.exit_code()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            if let Some(r) = c.reason() {
                s.push_str(&format!(" ({r})"));
            }
            s
        })
        .collect();
    Outside::new(&format!(
        "task {id} stopped: {}; {}",
        t.stopped_reason().unwrap_or("no reason given"),
        containers.join(", ")
    ))
}

/// The task definition with its tags.
pub async fn describe_task_definition(
    aws: &Aws,
    arn: &str,
) -> anyhow::Result<(
    aws_sdk_ecs::types::TaskDefinition,
    Vec<aws_sdk_ecs::types::Tag>,
)> {
    let out = aws
        .ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTaskDefinition", e))?;
    let td = out
        .task_definition()
        .cloned()
        .ok_or_else(|| Failure::failed(format!("task definition {arn} not found")))?;
    Ok((td, out.tags().to_vec()))
}
