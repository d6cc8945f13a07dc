//! The ECS calls: RunTask (one call per shard, count 1: each shard's command differs, and
//! container overrides are per call), DescribeTasks (100 tasks a call), StopTask.

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, KeyValuePair, LaunchType,
    NetworkConfiguration, TaskOverride,
};

use super::plan::{ContainerFacts, ShardOrder};
use super::progress::{state_of, ShardTask};
use crate::aws::sdk_error;
use crate::config::ProbeEcsSection;
use crate::outside::Outside;

/// `startedBy` on every task: how to find them in the console (`[A-Za-z0-9_-]`, ≤ 128).
pub const STARTED_BY: &str = "bosar-deploy-probe";

/// The task definition's ARN and the facts about the container the shards run in.
pub async fn describe_container(
    ecs: &aws_sdk_ecs::Client,
    p: &ProbeEcsSection,
) -> anyhow::Result<(String, ContainerFacts)> {
    let out = ecs
        .describe_task_definition()
        .task_definition(&p.task_definition)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTaskDefinition", e))?;
    let td = out.task_definition();
    let arn = td
        .and_then(|t| t.task_definition_arn())
        .unwrap_or(&p.task_definition)
        .to_string();
    let defs = td.map(|t| t.container_definitions()).unwrap_or_default();
    let c = match &p.container {
        Some(name) => defs.iter().find(|c| c.name() == Some(name.as_str())),
        None => defs.first(),
    };
    let Some(c) = c else {
        return Err(crate::exit::Failure::usage(format!(
            "task definition {} has no container {}",
            Outside::new(&arn).shown(200),
            p.container.as_deref().unwrap_or("at all")
        ))
        .hint("set [probe.ecs] container to the bosar-deploy container's name")
        .into());
    };
    let log = c.log_configuration();
    let opt = |k: &str| {
        log.and_then(|l| l.options())
            .and_then(|o| o.get(k))
            .map(|v| v.to_string())
    };
    let facts = ContainerFacts {
        name: c.name().unwrap_or_default().to_string(),
        secrets: c.secrets().iter().map(|s| s.name().to_string()).collect(),
        environment: c
            .environment()
            .iter()
            .filter_map(|e| e.name().map(str::to_string))
            .collect(),
        log_driver: log.map(|l| l.log_driver().as_str().to_string()),
        log_group: opt("awslogs-group"),
        log_prefix: opt("awslogs-stream-prefix"),
    };
    Ok((arn, facts))
}

/// The RunTask request for one shard.
pub fn run_task_request(
    ecs: &aws_sdk_ecs::Client,
    p: &ProbeEcsSection,
    td_arn: &str,
    container: &str,
    order: &ShardOrder,
) -> aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(p.subnets.clone()))
        .set_security_groups((!p.security_groups.is_empty()).then(|| p.security_groups.clone()))
        .assign_public_ip(if p.assign_public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()
        .expect("subnets are set");
    let mut over = ContainerOverride::builder()
        .name(container)
        .set_command(Some(order.command.clone()));
    for (k, v) in &order.environment {
        over = over.environment(KeyValuePair::builder().name(k).value(v).build());
    }
    let overrides = TaskOverride::builder()
        .container_overrides(over.build())
        .set_cpu(p.cpu.map(|c| c.to_string()))
        .set_memory(p.memory.map(|m| m.to_string()))
        .build();
    ecs.run_task()
        .cluster(&p.cluster)
        .task_definition(td_arn)
        .count(1)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(vpc)
                .build(),
        )
        .overrides(overrides)
        .started_by(STARTED_BY)
}

/// Starts one shard: its task's ARN, or why ECS did not start it (a `failures` entry, like
/// capacity, or the call's error).
pub async fn start(
    ecs: &aws_sdk_ecs::Client,
    p: &ProbeEcsSection,
    td_arn: &str,
    container: &str,
    order: &ShardOrder,
) -> Result<String, String> {
    let out = run_task_request(ecs, p, td_arn, container, order)
        .send()
        .await
        .map_err(|e| crate::exit::message_of(&sdk_error("RunTask", e)))?;
    if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
        return Ok(arn.to_string());
    }
    let why: Vec<String> = out
        .failures()
        .iter()
        .map(|f| {
            let text = format!(
                "{}{}",
                f.reason().unwrap_or("no reason given"),
                f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
            );
            Outside::new(&text).shown(300)
        })
        .collect();
    Err(if why.is_empty() {
        "RunTask started no task and gave no reason".to_string()
    } else {
        why.join("; ")
    })
}

/// Describes the tasks not yet stopped (100 a call) and updates their states. A task ECS no
/// longer knows (a `MISSING` failure) counts as stopped, never having reported.
pub async fn refresh(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    container: &str,
    tasks: &mut [ShardTask],
) -> anyhow::Result<()> {
    let open: Vec<String> = tasks
        .iter()
        .filter(|t| !matches!(t.state, super::progress::State::Stopped { .. }))
        .map(|t| t.task_arn.clone())
        .collect();
    for batch in open.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTasks", e))?;
        for d in out.tasks() {
            let Some(t) = tasks
                .iter_mut()
                .find(|t| Some(t.task_arn.as_str()) == d.task_arn())
            else {
                continue;
            };
            let exit = d
                .containers()
                .iter()
                .find(|c| c.name() == Some(container))
                .and_then(|c| c.exit_code());
            t.state = state_of(d.last_status().unwrap_or(""), exit, d.stopped_reason());
        }
        for f in out.failures() {
            if let Some(t) = tasks
                .iter_mut()
                .find(|t| Some(t.task_arn.as_str()) == f.arn())
            {
                t.state = state_of(
                    "STOPPED",
                    None,
                    Some(&format!("ECS: {}", f.reason().unwrap_or("MISSING"))),
                );
            }
        }
    }
    Ok(())
}

/// StopTask calls in flight at once: an interrupt leaves a few seconds to stop them all.
const STOPS_AT_ONCE: usize = 10;

/// Stops every task not known to have stopped, several at once; the ones it could not stop,
/// with why.
pub async fn stop_all(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    tasks: &[ShardTask],
    reason: &str,
) -> Vec<(u32, String, String)> {
    use futures_util::stream::{self, StreamExt};
    let open = tasks
        .iter()
        .filter(|t| !matches!(t.state, super::progress::State::Stopped { .. }));
    let results: Vec<(u32, String, Option<String>)> = stream::iter(open)
        .map(|t| async move {
            let r = ecs
                .stop_task()
                .cluster(cluster)
                .task(&t.task_arn)
                .reason(reason)
                .send()
                .await;
            let err = r
                .err()
                .map(|e| crate::exit::message_of(&sdk_error("StopTask", e)));
            (t.index, t.task_arn.clone(), err)
        })
        .buffered(STOPS_AT_ONCE)
        .collect()
        .await;
    results
        .into_iter()
        .filter_map(|(i, arn, err)| err.map(|e| (i, arn, e)))
        .collect()
}
