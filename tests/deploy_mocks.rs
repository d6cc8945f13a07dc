//! Rollout sequences moto cannot produce, with aws-smithy-mocks (the SDK's own mock layer):
//! in progress then completed, circuit-breaker FAILED, stable-but-superseded, timeout,
//! throttling then success, unhealthy targets. Time runs on tokio's paused clock.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{Container, Deployment, DeploymentRolloutState, Task};
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use aws_smithy_mocks::mock;
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::ecs::watch::{watch, WatchOptions, WatchOutcome};
use bosar_deploy::exit::Code;
use bosar_deploy::ui::Ui;
use support::mocks::*;

#[tokio::test(start_paused = true)]
async fn in_progress_for_several_polls_then_completed_succeeds() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .times(3)
        .output(completed)
        .build();
    let health = healthy_rule();
    let aws = aws(&[&describe], &[&health]);
    let started = tokio::time::Instant::now();
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::Success, "{out:?}");
    assert!(
        out.message()
            .contains("deployment of bosar-api:42 succeeded"),
        "{}",
        out.message()
    );
    assert_eq!(describe.num_calls(), 4);
    assert_eq!(health.num_calls(), 1);
    // Three waits of the poll interval on the paused clock.
    assert_eq!(started.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_failure_names_reason_rollback_and_stopped_tasks() {
    let failed = || {
        service(
            vec![
                dep("ecs-svc/rollback", "PRIMARY", TD41, 1, Some(DeploymentRolloutState::InProgress)),
                Deployment::builder()
                    .id("ecs-svc/new")
                    .status("ACTIVE")
                    .task_definition(TD42)
                    .desired_count(2)
                    .failed_tasks(3)
                    .rollout_state(DeploymentRolloutState::Failed)
                    .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
                    .build(),
            ],
            &[("e3", "(service bosar-api) (deployment ecs-svc/new) deployment failed: tasks failed to start.")],
        )
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .times(2)
        .output(failed)
        .build();
    let list = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .task_arns("arn:aws:ecs:us-east-1:1:task/bosar-cluster/abc123")
            .build()
    });
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:1:task/bosar-cluster/abc123")
                    .task_definition_arn(TD42)
                    .stopped_reason("Essential container in task exited")
                    .containers(
                        Container::builder()
                            .name("bosar-api")
                            .exit_code(1)
                            .reason("Error: JWT_SECRET missing")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let aws = aws(&[&describe, &list, &tasks], &[]);
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::Failed);
    let msg = out.message();
    assert!(msg.contains("deployment ecs-svc/new (bosar-api:42) failed: ECS deployment circuit breaker: tasks failed to start; the circuit breaker rolled back"), "{msg}");
    assert!(
        msg.contains(
            "the circuit breaker rolled back to bosar-api:41 (deployment ecs-svc/rollback)"
        ),
        "{msg}"
    );
    let WatchOutcome::Failed { causes, .. } = out else {
        panic!()
    };
    let all = causes
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("rolloutStateReason: ECS deployment circuit breaker"),
        "{all}"
    );
    assert!(
        all.contains("3 task(s) of bosar-api:42 failed to start"),
        "{all}"
    );
    assert!(
        all.contains("deployment failed: tasks failed to start"),
        "{all}"
    );
    assert!(all.contains("task abc123 stopped: Essential container in task exited; bosar-api exit 1 (Error: JWT_SECRET missing)"), "{all}");
}

#[tokio::test(start_paused = true)]
async fn stable_on_the_old_revision_is_not_success_and_ecs_decides_if_it_was_a_rollback() {
    let rolled_back = |events: &'static [(&'static str, &'static str)]| {
        move || {
            service(
                vec![dep(
                    "ecs-svc/rollback",
                    "PRIMARY",
                    TD41,
                    2,
                    Some(DeploymentRolloutState::Completed),
                )],
                events,
            )
        }
    };
    // ECS says nothing about rolling ours back: someone redeployed 41 over ours.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .output(rolled_back(&[(
            "e4",
            "(service bosar-api) has reached a steady state.",
        )]))
        .build();
    let [list, tasks] = no_stopped_tasks();
    let health = healthy_rule();
    let client = aws(&[&describe, &list, &tasks], &[&health]);
    let out = watch(&client, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::Failed);
    assert!(
        out.message().contains(
            "deployment ecs-svc/new (bosar-api:42) was superseded by deployment ecs-svc/rollback of bosar-api:41"
        ),
        "{}",
        out.message()
    );
    assert_eq!(
        health.num_calls(),
        0,
        "a stable service on the old revision is not checked as a success"
    );
    // An event names the rollback of our deployment: the circuit breaker did it.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .output(rolled_back(&[(
            "e5",
            "(service bosar-api) (deployment ecs-svc/new) deployment failed: tasks failed to start. Rolling back to deployment ecs-svc/rollback.",
        )]))
        .build();
    let client = aws(&[&describe, &list, &tasks], &[&health]);
    let out = watch(&client, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    let WatchOutcome::Failed { rolled_back_to, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(rolled_back_to.as_ref().unwrap().id, "ecs-svc/rollback");
    assert!(
        out.message()
            .contains("the circuit breaker rolled back to bosar-api:41"),
        "{}",
        out.message()
    );
}

#[tokio::test(start_paused = true)]
async fn never_finishing_times_out_with_state_and_resume_command() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .repeatedly()
        .build();
    let aws = aws(&[&describe], &[]);
    let opts = WatchOptions {
        poll_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        max_failed_tasks: None,
    };
    let started = tokio::time::Instant::now();
    let out = watch(&aws, &target(), opts, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::TimedOut);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert!(
        out.message()
            .contains("timed out after 1m waiting for deployment ecs-svc/new"),
        "{}",
        out.message()
    );
    let WatchOutcome::TimedOut { state, resume, .. } = out else {
        panic!()
    };
    assert!(
        state
            .iter()
            .any(|s| s.contains("PRIMARY bosar-api:42 running 1/2 pending 1 IN_PROGRESS")),
        "{state:?}"
    );
    assert_eq!(resume, "bosar-deploy wait --deployment ecs-svc/new");
    // Polls at 0, 5, …, 55 s: one at the deadline would be cancelled at once.
    assert_eq!(describe.num_calls(), 12);
}

#[tokio::test(start_paused = true)]
async fn throttling_is_waited_out_then_success() {
    let throttled = || {
        DescribeServicesError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .error(throttled)
        .times(6)
        .output(completed)
        .build();
    let health = healthy_rule();
    let aws = aws(&[&describe], &[&health]);
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::Success, "{out:?}");
    assert_eq!(describe.num_calls(), 7);
}

#[tokio::test(start_paused = true)]
async fn completed_with_unhealthy_targets_is_not_success() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(completed)
        .repeatedly()
        .build();
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .then_output(|| targets(TargetHealthStateEnum::Unhealthy));
    let aws = aws(&[&describe], &[&health]);
    let opts = WatchOptions {
        poll_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
        max_failed_tasks: None,
    };
    let out = watch(&aws, &target(), opts, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::TimedOut);
    let WatchOutcome::TimedOut { state, .. } = out else {
        panic!()
    };
    assert!(
        state
            .iter()
            .any(|s| s.contains("waiting for healthy targets: 0/2")),
        "{state:?}"
    );
    assert!(health.num_calls() >= 6);
}

#[tokio::test(start_paused = true)]
async fn unhealthy_then_healthy_targets_succeed() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(completed)
        .repeatedly()
        .build();
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .sequence()
        .output(|| targets(TargetHealthStateEnum::Initial))
        .times(2)
        .output(|| targets(TargetHealthStateEnum::Healthy))
        .build();
    let aws = aws(&[&describe], &[&health]);
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::Success, "{out:?}");
    assert_eq!(health.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn missing_cluster_is_a_clear_error() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_error(|| {
        DescribeServicesError::ClusterNotFoundException(
            aws_sdk_ecs::types::error::ClusterNotFoundException::builder()
                .message("Cluster not found.")
                .build(),
        )
    });
    let aws = aws(&[&describe], &[]);
    let err = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap_err();
    assert_eq!(bosar_deploy::exit::code_of(&err), Code::Failed);
    assert!(
        err.to_string()
            .contains("ECS cluster bosar-cluster not found in region us-east-1"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_on_failure_goes_back_to_the_previous_revision_and_watches_it() {
    let cfg = config();
    let ecs = ecs(&cfg);

    let failed = || {
        service(
            vec![Deployment::builder()
                .id("ecs-svc/new")
                .status("PRIMARY")
                .task_definition(TD42)
                .desired_count(2)
                .rollout_state(DeploymentRolloutState::Failed)
                .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
                .build()],
            &[],
        )
    };
    let back_done = || {
        service(
            vec![dep(
                "ecs-svc/back",
                "PRIMARY",
                TD41,
                2,
                Some(DeploymentRolloutState::Completed),
            )],
            &[],
        )
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(on_41)
        .output(failed)
        .output(back_done)
        .repeatedly()
        .build();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = mock!(aws_sdk_ecs::Client::register_task_definition)
        .match_requests(|r| {
            r.family() == Some("bosar-api")
                && r.container_definitions()[0].environment()[0].value() == Some("25000")
        })
        .then_output(|| {
            aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput::builder(
            )
            .task_definition(
                aws_sdk_ecs::types::TaskDefinition::builder()
                    .task_definition_arn(TD42)
                    .build(),
            )
            .build()
        });
    let update_new = update_to(TD42, "ecs-svc/new");
    let update_back = update_to(TD41, "ecs-svc/back");
    let [list, tasks] = no_stopped_tasks();
    let health = healthy_rule();
    let aws = aws(
        &[
            &describe,
            &td,
            &register,
            &update_new,
            &update_back,
            &list,
            &tasks,
        ],
        &[&health],
    );

    let ui = Ui::silent();
    let opts = bosar_deploy::ecs::deploy::RolloutOptions {
        rollback_on_failure: true,
        ..Default::default()
    };
    let plan = bosar_deploy::ecs::deploy::plan(&aws, ecs, &opts)
        .await
        .unwrap();
    assert_eq!(plan.current_revision, "bosar-api:41");
    let (result, err) = bosar_deploy::ecs::deploy::execute(&aws, ecs, plan, &opts, &ui).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        result.code(),
        Code::Failed,
        "the deploy failed even though the rollback worked"
    );
    assert!(result
        .outcome
        .as_ref()
        .unwrap()
        .message()
        .contains("circuit breaker"));
    let back = result.rollback.as_ref().expect("rolled back");
    assert_eq!(back.code(), Code::Success, "{back:?}");
    assert!(
        back.message().contains("bosar-api:41 succeeded"),
        "{}",
        back.message()
    );
    assert_eq!(register.num_calls(), 1);
    assert_eq!(update_new.num_calls(), 1);
    assert_eq!(update_back.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn ci_progress_prints_a_line_only_on_change_and_each_event_once() {
    let step1 = || {
        service(
            vec![dep(
                "ecs-svc/new",
                "PRIMARY",
                TD42,
                0,
                Some(DeploymentRolloutState::InProgress),
            )],
            &[("e1", "(service bosar-api) has started 2 tasks.")],
        )
    };
    let step2 = || {
        service(
            vec![dep(
                "ecs-svc/new",
                "PRIMARY",
                TD42,
                1,
                Some(DeploymentRolloutState::InProgress),
            )],
            &[
                ("e5", "(service bosar-api) registered 1 targets."),
                ("e1", "(service bosar-api) has started 2 tasks."),
            ],
        )
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(step1)
        .times(3)
        .output(step2)
        .times(2)
        .output(completed)
        .build();
    let health = healthy_rule();
    let aws = aws(&[&describe], &[&health]);
    let ui = Ui::capturing();
    let out = watch(&aws, &target(), OPTS, &ui, HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::Success);
    let lines = ui.captured();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("running 0/2"), 1, "{lines:#?}");
    assert_eq!(count("running 1/2"), 1, "{lines:#?}");
    assert_eq!(count("running 2/2 pending 0 COMPLETED"), 1, "{lines:#?}");
    assert_eq!(count("has started 2 tasks"), 1, "{lines:#?}");
    assert_eq!(count("registered 1 targets"), 1, "{lines:#?}");
    assert_eq!(count("has reached a steady state"), 1, "{lines:#?}");
    // Six polls, but only three deployment lines and three event lines.
    assert_eq!(describe.num_calls(), 6);
    assert_eq!(lines.len(), 6, "{lines:#?}");
}
