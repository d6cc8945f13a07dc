//! Issue 9's rollout cases moto cannot produce, on the SDK's mock layer and tokio's paused
//! clock: a teammate's deployment superseding ours, a circuit-breaker rollback followed by
//! `--rollback-on-failure`, the breaker off with failed tasks climbing, throttling and 5xx on
//! every watch call, pagination with `next_token`, an unknown union variant, an orphan
//! revision, and CI's "still waiting" lines.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_tasks::{DescribeTasksError, DescribeTasksOutput};
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceError;
use aws_sdk_ecs::types::{Container, Deployment, DeploymentRolloutState, Task};
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthError;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use aws_smithy_mocks::mock;
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::ecs::deploy::{execute, plan, RolloutOptions};
use bosar_deploy::ecs::watch::{watch, WatchOptions, WatchOutcome};
use bosar_deploy::exit::Code;
use bosar_deploy::ui::Ui;
use support::mocks::*;

const TD43: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:43";

fn rolling_back() -> DescribeServicesOutput {
    service(
        vec![
            dep(
                "ecs-svc/breaker",
                "PRIMARY",
                TD41,
                1,
                Some(DeploymentRolloutState::InProgress),
            ),
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
        &[],
    )
}

fn rolled_back() -> DescribeServicesOutput {
    service(
        vec![dep(
            "ecs-svc/breaker",
            "PRIMARY",
            TD41,
            2,
            Some(DeploymentRolloutState::Completed),
        )],
        &[],
    )
}

fn theirs_took_over() -> DescribeServicesOutput {
    service(
        vec![
            dep(
                "ecs-svc/theirs",
                "PRIMARY",
                TD43,
                0,
                Some(DeploymentRolloutState::InProgress),
            ),
            dep(
                "ecs-svc/new",
                "ACTIVE",
                TD42,
                1,
                Some(DeploymentRolloutState::InProgress),
            ),
        ],
        &[],
    )
}

fn rollback_opts() -> RolloutOptions {
    RolloutOptions {
        rollback_on_failure: true,
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_superseding_deploy_is_reported_and_never_undone() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(on_41)
        .output(in_progress)
        .output(theirs_took_over)
        .repeatedly()
        .build();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = registered_42();
    let update_new = update_to(TD42, "ecs-svc/new");
    let update_back = update_to(TD41, "ecs-svc/back");
    let aws = aws(&[&describe, &td, &register, &update_new, &update_back], &[]);
    let opts = rollback_opts();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    assert!(err.is_none(), "{err:?}");
    let outcome = result.outcome.unwrap();
    assert_eq!(outcome.code(), Code::Failed);
    let WatchOutcome::Superseded { by, message } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(by.id, "ecs-svc/theirs");
    assert_eq!(by.revision, "bosar-api:43");
    assert!(message.contains("was superseded by deployment ecs-svc/theirs of bosar-api:43"));
    assert!(result.rollback.is_none());
    assert_eq!(update_new.num_calls(), 1);
    assert_eq!(update_back.num_calls(), 0, "their deploy is not undone");
}

#[tokio::test(start_paused = true)]
async fn after_a_breaker_rollback_rollback_on_failure_watches_it_instead_of_starting_another() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(on_41)
        .output(in_progress)
        .output(rolling_back)
        .times(2)
        .output(rolled_back)
        .repeatedly()
        .build();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = registered_42();
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
    let opts = rollback_opts();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    assert!(err.is_none(), "{err:?}");
    let outcome = result.outcome.as_ref().unwrap();
    let WatchOutcome::Failed { rolled_back_to, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(rolled_back_to.as_ref().unwrap().id, "ecs-svc/breaker");
    let back = result
        .rollback
        .as_ref()
        .expect("the breaker's rollback was watched");
    assert!(back.succeeded(), "{back:?}");
    assert!(
        back.message().contains("bosar-api:41 succeeded"),
        "{back:?}"
    );
    assert_eq!(update_back.num_calls(), 0, "no second deployment of 41");
    assert_eq!(result.code(), Code::Failed, "our deploy still failed");
}

#[tokio::test(start_paused = true)]
async fn with_the_breaker_off_failed_tasks_end_the_watch_at_the_bound() {
    // `service()` has no deploymentConfiguration: the breaker is off.
    let failing = |failed: i32| {
        move || {
            service(
                vec![
                    Deployment::builder()
                        .id("ecs-svc/new")
                        .status("PRIMARY")
                        .task_definition(TD42)
                        .desired_count(2)
                        .running_count(0)
                        .pending_count(2)
                        .failed_tasks(failed)
                        .rollout_state(DeploymentRolloutState::InProgress)
                        .build(),
                    dep(
                        "ecs-svc/old",
                        "ACTIVE",
                        TD41,
                        2,
                        Some(DeploymentRolloutState::Completed),
                    ),
                ],
                &[],
            )
        }
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(failing(0))
        .output(failing(1))
        .output(failing(2))
        .output(failing(3))
        .output(failing(4))
        .repeatedly()
        .build();
    let list = mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| {
        ListTasksOutput::builder()
            .task_arns("arn:aws:ecs:us-east-1:1:task/bosar-cluster/t1")
            .build()
    });
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| stopped("t1", TD42));
    let aws = aws(&[&describe, &list, &tasks], &[]);
    let started = tokio::time::Instant::now();
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(20),
        "four polls, not the 15 min timeout"
    );
    let WatchOutcome::Failed {
        message, causes, ..
    } = &out
    else {
        panic!("{out:?}")
    };
    assert!(
        message.contains("4 task(s) of bosar-api:42 failed to start, reaching the bound of 4"),
        "{message}"
    );
    assert!(message.contains("circuit breaker is off"), "{message}");
    assert!(
        causes
            .iter()
            .any(|c| c.contains("task t1 stopped: CannotPullContainerError")),
        "{causes:?}"
    );
    // A configured bound moves it.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(failing(4))
        .times(2)
        .output(completed)
        .build();
    let health = healthy_rule();
    let aws2 = support::mocks::aws(&[&describe], &[&health]);
    let opts = WatchOptions {
        max_failed_tasks: Some(10),
        ..OPTS
    };
    let out = watch(&aws2, &target(), opts, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
}

fn stopped(id: &str, td: &str) -> DescribeTasksOutput {
    DescribeTasksOutput::builder()
        .tasks(
            Task::builder()
                .task_arn(format!("arn:aws:ecs:us-east-1:1:task/bosar-cluster/{id}"))
                .task_definition_arn(td)
                .stopped_reason(
                    "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
                )
                .stopped_at(aws_smithy_types::DateTime::from_secs(1_800_000_000))
                .containers(Container::builder().name("bosar-api").build())
                .build(),
        )
        .build()
}

#[tokio::test(start_paused = true)]
async fn throttling_5xx_and_network_errors_on_every_watch_call_are_waited_out() {
    // More failures in a row than the SDK's own retries, so the watch sees them.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(
            503,
            Some("{\"__type\":\"ServerException\",\"message\":\"Service Unavailable\"}".into()),
        )
        .times(4)
        .output(in_progress)
        .http_status(500, None)
        .times(4)
        .output(completed)
        .repeatedly()
        .build();
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .sequence()
        .error(|| {
            DescribeTargetHealthError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(4)
        .http_status(502, Some("<html>Bad Gateway</html>".into()))
        .times(4)
        .output(|| targets(TargetHealthStateEnum::Healthy))
        .build();
    let aws = aws(&[&describe], &[&health]);
    let ui = Ui::capturing();
    let out = watch(&aws, &target(), OPTS, &ui, HashSet::new())
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(health.num_calls(), 9);
    let lines = ui.captured().join("\n");
    for seen in [
        "DescribeServices failed: ServerException: Service Unavailable; retrying in",
        "DescribeServices failed: HTTP 500 with a body that is not a DescribeServices answer; retrying in",
        "DescribeTargetHealth failed: Throttling: Rate exceeded; retrying in",
        "DescribeTargetHealth failed: HTTP 502",
    ] {
        assert!(lines.contains(seen), "missing {seen:?}:\n{lines}");
    }
    for never in ["ResponseError", "ErrorMetadata", "SdkBody"] {
        assert!(!lines.contains(never), "a Debug dump: {never}:\n{lines}");
    }

    // On the failure path: ListTasks answers 500 and DescribeTasks ServerException first.
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
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
    });
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .sequence()
        .http_status(500, None)
        .output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:us-east-1:1:task/bosar-cluster/t9")
                .build()
        })
        .repeatedly()
        .build();
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .error(|| {
            DescribeTasksError::ServerException(
                aws_sdk_ecs::types::error::ServerException::builder()
                    .message("internal error")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ServerException")
                            .message("internal error")
                            .build(),
                    )
                    .build(),
            )
        })
        .output(|| stopped("t9", TD42))
        .build();
    let aws = support::mocks::aws(&[&describe, &list, &tasks], &[]);
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    let WatchOutcome::Failed { causes, .. } = &out else {
        panic!("{out:?}")
    };
    assert!(
        causes.iter().any(|c| c.contains("task t9 stopped")),
        "{causes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn stopped_task_causes_page_through_list_tasks_and_keep_only_ours() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
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
    });
    let old_ids: Vec<String> = (0..100).map(|i| format!("old{i}")).collect();
    let page1_arns = old_ids.clone();
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .sequence()
        .output(move || {
            let mut o = ListTasksOutput::builder().next_token("page-2");
            for id in &page1_arns {
                o = o.task_arns(format!("arn:aws:ecs:us-east-1:1:task/bosar-cluster/{id}"));
            }
            o.build()
        })
        .output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:us-east-1:1:task/bosar-cluster/ours")
                .build()
        })
        .build();
    // The first page: 100 stopped tasks of the old revision, described in one call.
    let old_tasks = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.tasks().len() == 100)
        .then_output(|| stopped("old0", TD41));
    let our_tasks = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.tasks().len() == 1)
        .then_output(|| stopped("ours", TD42));
    let aws = aws(&[&describe, &list, &old_tasks, &our_tasks], &[]);
    let out = watch(&aws, &target(), OPTS, &Ui::silent(), HashSet::new())
        .await
        .unwrap();
    let WatchOutcome::Failed { causes, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(list.num_calls(), 2, "both pages read");
    assert_eq!(old_tasks.num_calls(), 1, "100 tasks described in one call");
    assert!(
        causes.iter().any(|c| c.contains("task ours stopped")),
        "{causes:?}"
    );
    assert!(
        !causes.iter().any(|c| c.contains("task old0")),
        "other revisions' tasks are filtered out: {causes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_picks_the_previous_revision_by_number_across_pages() {
    let td3 = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:3";
    let td2 = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:2";
    let td1 = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:1";
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(move || {
        service(
            vec![dep(
                "ecs-svc/cur",
                "PRIMARY",
                td3,
                2,
                Some(DeploymentRolloutState::Completed),
            )],
            &[],
        )
    });
    // Newest first on the first page, the missing one on the second.
    let list = mock!(aws_sdk_ecs::Client::list_task_definitions)
        .sequence()
        .output(move || {
            ListTaskDefinitionsOutput::builder()
                .task_definition_arns(td3)
                .task_definition_arns(td1)
                .next_token("more")
                .build()
        })
        .output(move || {
            ListTaskDefinitionsOutput::builder()
                .task_definition_arns(td2)
                .build()
        })
        .build();
    // The target (:2) is described for the diff, then the running revision (:3).
    let revision = |arn: &'static str| {
        move || {
            let mut out = td41();
            if let Some(td) = out.task_definition.as_mut() {
                td.task_definition_arn = Some(arn.to_string());
            }
            out
        }
    };
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition)
        .sequence()
        .output(revision(td2))
        .output(revision(td3))
        .build();
    let update = update_to(td2, "ecs-svc/back");
    let aws = aws(&[&describe, &list, &td, &update], &[]);
    let cfg = config();
    let args = bosar_deploy::cli::RollbackArgs {
        no_wait: true,
        skip_preflight: bosar_deploy::report::CheckName::ALL
            .map(bosar_deploy::report::PreflightSkip::whole)
            .to_vec(),
        ..Default::default()
    };
    let code = bosar_deploy::ecs::rollback::run(&args, &cfg, &aws, &Ui::silent())
        .await
        .unwrap();
    assert_eq!(code, Code::Success);
    assert_eq!(list.num_calls(), 2);
    assert_eq!(update.num_calls(), 1, "rolled back to :2, not :1");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_union_variant_stops_the_deploy_before_registering() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(on_41);
    // A raw AWS answer with a sharingStrategy member this SDK does not know.
    let body = format!(
        r#"{{"taskDefinition": {{"taskDefinitionArn": "{TD41}", "family": "bosar-api", "revision": 41,
        "containerDefinitions": [{{"name": "bosar-api", "image": "repo/bosar-api:1.4.0",
          "resourceRequirements": [{{"type": "GPU", "value": "1", "sharingStrategy": {{"timeSlicing": {{"slices": 4}}}}}}]}}]}}}}"#
    );
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_http_response(move || {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
            aws_smithy_types::body::SdkBody::from(body.clone()),
        )
    });
    let register = registered_42();
    let update = update_to(TD42, "ecs-svc/new");
    let aws = aws(&[&describe, &td, &register, &update], &[]);
    let opts = RolloutOptions::default();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let refused = p.refused.clone().expect("refused");
    assert!(refused.contains("`sharing_strategy`"), "{refused}");
    assert!(refused.contains("nothing was registered"), "{refused}");
    let (_, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    assert!(err.unwrap().to_string().contains("refused"));
    assert_eq!(register.num_calls(), 0);
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_revision_registered_before_a_failed_update_is_named() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(on_41)
        .repeatedly()
        .build();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = registered_42();
    let update = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        UpdateServiceError::InvalidParameterException(
            aws_sdk_ecs::types::error::InvalidParameterException::builder()
                .message("Unable to update task definition on services with a CODE_DEPLOY deployment controller.")
                .meta(
                    ErrorMetadata::builder()
                        .code("InvalidParameterException")
                        .message("Unable to update task definition on services with a CODE_DEPLOY deployment controller.")
                        .build(),
                )
                .build(),
        )
    });
    let aws = aws(&[&describe, &td, &register, &update], &[]);
    let opts = RolloutOptions::default();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    let err = err.expect("UpdateService failed");
    let msg = bosar_deploy::exit::message_of(&err);
    assert!(
        msg.contains("UpdateService failed: InvalidParameterException"),
        "{msg}"
    );
    assert!(
        msg.contains("bosar-api:42 was registered but the service still runs bosar-api:41"),
        "{msg}"
    );
    assert!(msg.contains("aws ecs deregister-task-definition --task-definition bosar-api:42"));
    assert_eq!(result.registered_task_definition.as_deref(), Some(TD42));
    assert_eq!(result.service_uses_registered, Some(false));
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["registered_task_definition"], TD42);
    assert_eq!(json["service_uses_registered"], false);
}

#[tokio::test(start_paused = true)]
async fn ci_prints_still_waiting_at_least_once_a_minute() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .repeatedly()
        .build();
    let aws = aws(&[&describe], &[]);
    let ui = Ui::capturing();
    let opts = WatchOptions {
        timeout: Duration::from_secs(5 * 60),
        ..OPTS
    };
    let out = watch(&aws, &target(), opts, &ui, HashSet::new())
        .await
        .unwrap();
    assert_eq!(out.code(), Code::TimedOut);
    let lines = ui.captured();
    let waiting: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("still waiting"))
        .collect();
    assert_eq!(waiting.len(), 4, "{lines:#?}");
    assert!(
        waiting[0].starts_with("[  60s] still waiting: PRIMARY bosar-api:42"),
        "{waiting:?}"
    );
    assert!(waiting[3].starts_with("[ 240s]"), "{waiting:?}");
}
