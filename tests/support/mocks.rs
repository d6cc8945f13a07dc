//! Building blocks for tests on the SDK's mock layer (aws-smithy-mocks): ECS deployments and
//! services, target health, and an `Aws` over mock clients.
#![allow(dead_code)]

use std::time::Duration;

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, TaskDefinition};
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, LoadBalancer, Service, ServiceEvent};
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

use bosar_deploy::aws::Aws;
use bosar_deploy::config::{Config, EcsSection};
use bosar_deploy::ecs::watch::{WatchOptions, WatchTarget};

pub const TD41: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:41";
pub const TD42: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:42";
pub const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bosar-api-tg/abc";

pub fn dep(
    id: &str,
    status: &str,
    td: &str,
    running: i32,
    rollout: Option<DeploymentRolloutState>,
) -> Deployment {
    Deployment::builder()
        .id(id)
        .status(status)
        .task_definition(td)
        .desired_count(2)
        .running_count(running)
        .pending_count(2 - running)
        .set_rollout_state(rollout)
        .build()
}

pub fn service(deployments: Vec<Deployment>, events: &[(&str, &str)]) -> DescribeServicesOutput {
    // The service's task definition is its primary deployment's, as in ECS.
    let td = deployments
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.task_definition())
        .unwrap_or(TD42)
        .to_string();
    let mut s = Service::builder()
        .service_name("bosar-api")
        .status("ACTIVE")
        .task_definition(td)
        .desired_count(2)
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(TG)
                .container_name("bosar-api")
                .container_port(3000)
                .build(),
        )
        .set_deployments(Some(deployments));
    for (id, msg) in events {
        s = s.events(
            ServiceEvent::builder()
                .id(*id)
                .message(*msg)
                .created_at(aws_smithy_types::DateTime::from_secs(1_800_000_000))
                .build(),
        );
    }
    DescribeServicesOutput::builder()
        .services(s.build())
        .build()
}

pub fn in_progress() -> DescribeServicesOutput {
    service(
        vec![
            dep(
                "ecs-svc/new",
                "PRIMARY",
                TD42,
                1,
                Some(DeploymentRolloutState::InProgress),
            ),
            dep(
                "ecs-svc/old",
                "ACTIVE",
                TD41,
                2,
                Some(DeploymentRolloutState::Completed),
            ),
        ],
        &[("e1", "(service bosar-api) has started 1 tasks: (task 1).")],
    )
}

pub fn completed() -> DescribeServicesOutput {
    service(
        vec![dep(
            "ecs-svc/new",
            "PRIMARY",
            TD42,
            2,
            Some(DeploymentRolloutState::Completed),
        )],
        &[("e2", "(service bosar-api) has reached a steady state.")],
    )
}

pub fn targets(state: TargetHealthStateEnum) -> DescribeTargetHealthOutput {
    let mut out = DescribeTargetHealthOutput::builder();
    for ip in ["10.0.1.10", "10.0.2.10"] {
        out = out.target_health_descriptions(
            TargetHealthDescription::builder()
                .target(TargetDescription::builder().id(ip).port(3000).build())
                .target_health(
                    TargetHealth::builder()
                        .state(state.clone())
                        .description("Health checks failed")
                        .build(),
                )
                .build(),
        );
    }
    out.build()
}

pub fn aws(ecs_rules: &[&Rule], elb_rules: &[&Rule]) -> Aws {
    Aws {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules),
        elb: mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            elb_rules
        ),
        region: "us-east-1".into(),
        identity: None,
        sdk: None,
    }
}

pub fn target() -> WatchTarget {
    WatchTarget {
        cluster: "bosar-cluster".into(),
        service: "bosar-api".into(),
        deployment_id: "ecs-svc/new".into(),
        task_definition: TD42.into(),
        previous_task_definition: Some(TD41.into()),
    }
}

pub const OPTS: WatchOptions = WatchOptions {
    poll_interval: Duration::from_secs(5),
    timeout: Duration::from_secs(15 * 60),
    max_failed_tasks: None,
};

pub fn healthy_rule() -> Rule {
    mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .then_output(|| targets(TargetHealthStateEnum::Healthy))
}

pub fn no_stopped_tasks() -> [Rule; 2] {
    [
        mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build()),
        mock!(aws_sdk_ecs::Client::describe_tasks)
            .then_output(|| DescribeTasksOutput::builder().build()),
    ]
}

/// A config with `[ecs]` (poll 5 s, timeout 10 m) and one managed variable.
pub fn config() -> Config {
    bosar_deploy::config::parse(
        std::path::Path::new("deploy.toml"),
        "[target_group]\nname = \"bosar-api-tg\"\n\
         [ecs]\ncluster = \"bosar-cluster\"\nservice = \"bosar-api\"\ncontainer = \"bosar-api\"\npoll_interval = \"5s\"\ntimeout = \"10m\"\n\
         [ecs.environment]\nWEBSOCKET_PING_INTERVAL = \"25000\"\n",
    )
    .unwrap()
}

pub fn ecs(cfg: &Config) -> &EcsSection {
    cfg.ecs.as_ref().unwrap()
}

/// The service on revision 41, settled.
pub fn on_41() -> DescribeServicesOutput {
    service(
        vec![dep(
            "ecs-svc/old",
            "PRIMARY",
            TD41,
            2,
            Some(DeploymentRolloutState::Completed),
        )],
        &[],
    )
}

/// Revision 41: one container, `WEBSOCKET_PING_INTERVAL` 20000.
pub fn td41() -> DescribeTaskDefinitionOutput {
    DescribeTaskDefinitionOutput::builder()
        .task_definition(
            TaskDefinition::builder()
                .task_definition_arn(TD41)
                .family("bosar-api")
                .container_definitions(
                    ContainerDefinition::builder()
                        .name("bosar-api")
                        .image("repo/bosar-api:1.4.0")
                        .environment(
                            KeyValuePair::builder()
                                .name("WEBSOCKET_PING_INTERVAL")
                                .value("20000")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

/// RegisterTaskDefinition answers revision 42.
pub fn registered_42() -> Rule {
    mock!(aws_sdk_ecs::Client::register_task_definition).then_output(|| {
        RegisterTaskDefinitionOutput::builder()
            .task_definition(TaskDefinition::builder().task_definition_arn(TD42).build())
            .build()
    })
}

/// UpdateService to `td` answers a PRIMARY deployment `id`.
pub fn update_to(td: &'static str, id: &'static str) -> Rule {
    mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(move |r| r.task_definition() == Some(td))
        .then_output(move || {
            UpdateServiceOutput::builder()
                .service(
                    Service::builder()
                        .deployments(
                            Deployment::builder()
                                .id(id)
                                .status("PRIMARY")
                                .task_definition(td)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
}
