//! Issue 18's ECS-native deployments (blue/green, canary, linear) on the SDK's mock layer and
//! tokio's paused clock (moto models none of these calls): every lifecycle path of the watch
//! and the gate, with a judge that says what each test needs.

mod support;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ecs::operation::continue_service_deployment::{
    ContinueServiceDeploymentError, ContinueServiceDeploymentOutput,
};
use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
use aws_sdk_ecs::operation::list_service_deployments::{
    ListServiceDeploymentsError, ListServiceDeploymentsOutput,
};
use aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentOutput;
use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, DeploymentLifecycleHookDetail, DeploymentLifecycleHookStatus,
    DeploymentLifecycleHookTargetType, Rollback, ServiceDeployment, ServiceDeploymentBrief,
    ServiceDeploymentLifecycleStage as Stage, ServiceDeploymentStatus as Status,
    ServiceRevisionSummary, StopServiceDeploymentStopType,
};
use aws_smithy_mocks::{mock, Rule};
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::DateTime;

use bosar_deploy::ecs::native::gate::{Action, Audience, Judge, Judged};
use bosar_deploy::ecs::native::stages::GateStage;
use bosar_deploy::ecs::native::watch::{watch, NativeOptions, NativeReport};
use bosar_deploy::ecs::watch::WatchOutcome;
use bosar_deploy::exit::Code;
use bosar_deploy::report::{Check, CheckStatus};
use bosar_deploy::ui::Ui;
use support::mocks::*;

const ARN: &str =
    "arn:aws:ecs:us-east-1:123456789012:service-deployment/bosar-cluster/bosar-api/new";
const NEWER: &str =
    "arn:aws:ecs:us-east-1:123456789012:service-deployment/bosar-cluster/bosar-api/theirs";

/// Answers in order; `Err` for a judge that fails, and the last answer repeats.
struct Scripted {
    answers: Mutex<VecDeque<Result<CheckStatus, String>>>,
    asked: Mutex<Vec<Audience>>,
}

impl Scripted {
    fn new(answers: &[Result<CheckStatus, &str>]) -> Scripted {
        Scripted {
            answers: Mutex::new(answers.iter().map(|a| a.map_err(str::to_string)).collect()),
            asked: Mutex::new(Vec::new()),
        }
    }
    fn asked(&self) -> Vec<Audience> {
        self.asked.lock().unwrap().clone()
    }
}

impl Judge for Scripted {
    fn judge<'a>(&'a self, audience: Audience, _: &'a Ui) -> Judged<'a> {
        Box::pin(self.answer(audience))
    }
}

impl Scripted {
    async fn answer(&self, audience: Audience) -> anyhow::Result<Vec<Check>> {
        self.asked.lock().unwrap().push(audience);
        let mut a = self.answers.lock().unwrap();
        let next = if a.len() > 1 {
            a.pop_front()
        } else {
            a.front().cloned()
        };
        match next.unwrap_or(Ok(CheckStatus::Pass)) {
            Ok(status) => Ok(vec![
                Check::new("handshake", CheckStatus::Pass, Duration::ZERO, "connected"),
                Check::new("auth", status, Duration::ZERO, "token accepted?"),
            ]),
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }
}

fn at(status: Status, stage: Stage, weight: f64) -> ServiceDeployment {
    ServiceDeployment::builder()
        .service_deployment_arn(ARN)
        .status(status)
        .lifecycle_stage(stage)
        .target_service_revision(
            ServiceRevisionSummary::builder()
                .arn(
                    "arn:aws:ecs:us-east-1:123456789012:service-revision/bosar-cluster/bosar-api/2",
                )
                .requested_task_count(2)
                .running_task_count(2)
                .pending_task_count(0)
                .requested_production_traffic_weight(weight)
                .build(),
        )
        .build()
}

fn paused(stage: Stage, hook: DeploymentLifecycleHookStatus) -> ServiceDeployment {
    let mut d = at(Status::InProgress, stage, 0.0);
    d.lifecycle_hook_details = Some(vec![DeploymentLifecycleHookDetail::builder()
        .hook_id("hook-gate")
        .target_type(DeploymentLifecycleHookTargetType::Pause)
        .status(hook)
        .expires_at(DateTime::from_secs(1_800_001_800))
        .timeout_action(DeploymentLifecycleHookAction::Rollback)
        .build()]);
    d
}

fn rolled(status: Status, reason: &str) -> ServiceDeployment {
    let mut d = at(status, Stage::BakeTime, 0.0);
    d.rollback = Some(
        Rollback::builder()
            .reason(reason)
            .started_at(DateTime::from_secs(1_800_000_100))
            .build(),
    );
    d
}

fn out(d: ServiceDeployment) -> DescribeServiceDeploymentsOutput {
    DescribeServiceDeploymentsOutput::builder()
        .service_deployments(d)
        .build()
}

fn brief(arn: &str, created: i64, status: Status) -> ServiceDeploymentBrief {
    ServiceDeploymentBrief::builder()
        .service_deployment_arn(arn)
        .created_at(DateTime::from_secs(created))
        .status(status)
        .build()
}

fn listed() -> Rule {
    mock!(aws_sdk_ecs::Client::list_service_deployments).then_output(|| {
        ListServiceDeploymentsOutput::builder()
            .service_deployments(brief(ARN, 1_800_000_000, Status::InProgress))
            .build()
    })
}

/// Describe answers, in order; the last repeats.
fn describes(seq: Vec<ServiceDeployment>) -> Rule {
    let next = std::sync::atomic::AtomicUsize::new(0);
    mock!(aws_sdk_ecs::Client::describe_service_deployments).then_output(move || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        out(seq[i.min(seq.len() - 1)].clone())
    })
}

fn continue_with(action: DeploymentLifecycleHookAction) -> Rule {
    mock!(aws_sdk_ecs::Client::continue_service_deployment)
        .match_requests(move |r| {
            r.action() == Some(&action)
                && r.hook_id() == Some("hook-gate")
                && r.service_deployment_arn() == Some(ARN)
        })
        .then_output(|| {
            ContinueServiceDeploymentOutput::builder()
                .service_deployment_arn(ARN)
                .build()
        })
}

fn stop_rollback() -> Rule {
    mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .match_requests(|r| {
            r.stop_type() == Some(&StopServiceDeploymentStopType::Rollback)
                && r.service_deployment_arn() == Some(ARN)
        })
        .then_output(|| {
            StopServiceDeploymentOutput::builder()
                .service_deployment_arn(ARN)
                .build()
        })
}

fn opts(gate: bool, strategy: &str) -> NativeOptions {
    NativeOptions {
        poll_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(60 * 60),
        gate: gate.then_some(GateStage::PostScaleUp),
        strategy: strategy.into(),
        since_secs: 1_800_000_000,
    }
}

fn native_target() -> bosar_deploy::ecs::watch::WatchTarget {
    let mut t = target();
    t.deployment_id = "ecs-svc/new".into();
    t
}

async fn run(
    rules: &[&Rule],
    judge: &Scripted,
    o: NativeOptions,
) -> (WatchOutcome, NativeReport, Vec<String>) {
    let aws = aws(rules, &[]);
    let ui = Ui::capturing();
    let (outcome, report) = watch(&aws, &native_target(), &o, Some(judge as &dyn Judge), &ui)
        .await
        .unwrap();
    (outcome, report, ui.captured())
}

fn blue_green_success() -> Vec<ServiceDeployment> {
    vec![
        at(Status::InProgress, Stage::ScaleUp, 0.0),
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        paused(Stage::PostScaleUp, DeploymentLifecycleHookStatus::Succeeded),
        at(Status::InProgress, Stage::ProductionTrafficShift, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        at(Status::InProgress, Stage::CleanUp, 100.0),
        at(Status::Successful, Stage::CleanUp, 100.0),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_good_green_passes_the_gate_and_every_stage_is_reported() {
    let describe = describes(blue_green_success());
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let back = continue_with(DeploymentLifecycleHookAction::Rollback);
    let stop = stop_rollback();
    let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
    let (outcome, report, lines) = run(
        &[&listed(), &describe, &cont, &back, &stop],
        &judge,
        opts(true, "BLUE_GREEN"),
    )
    .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(cont.num_calls(), 1, "CONTINUE sent once");
    assert_eq!(
        back.num_calls() + stop.num_calls(),
        0,
        "nothing rolled back"
    );
    let names: Vec<_> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "SCALE_UP",
            "POST_SCALE_UP",
            "PRODUCTION_TRAFFIC_SHIFT",
            "BAKE_TIME",
            "CLEAN_UP"
        ]
    );
    assert!(
        report.stages.iter().all(|s| s.ended.is_some()),
        "{report:?}"
    );
    assert_eq!(report.gate[0].audience, Audience::Green);
    assert_eq!(report.gate[0].action, Action::Continue);
    // Production judged at the shift, at the bake time's start, and again every 30 s.
    let production = judge
        .asked()
        .iter()
        .filter(|a| **a == Audience::Production)
        .count();
    assert!(production >= 3, "{:?}", judge.asked());
    assert!(report.rollback.is_none());
    assert_eq!(report.deployment_arn, ARN);
    let text = lines.join("\n");
    for seen in [
        "stage POST_SCALE_UP started",
        "lifecycle hook hook-gate waits at POST_SCALE_UP until 2027-01-15T08:30:00Z",
        "gate: 2 check(s), 0 failed -> ContinueServiceDeployment CONTINUE",
        "stage SCALE_UP ended after",
    ] {
        assert!(text.contains(seen), "missing {seen:?}:\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_broken_green_is_rolled_back_at_the_gate_before_any_production_traffic() {
    let describe = describes(vec![
        at(Status::InProgress, Stage::ScaleUp, 0.0),
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        rolled(Status::RollbackInProgress, "hook ROLLBACK"),
        rolled(
            Status::RollbackSuccessful,
            "Lifecycle hook hook-gate returned ROLLBACK",
        ),
    ]);
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let back = continue_with(DeploymentLifecycleHookAction::Rollback);
    let stop = stop_rollback();
    let judge = Scripted::new(&[Ok(CheckStatus::Fail)]);
    let (outcome, report, _) = run(
        &[&listed(), &describe, &cont, &back, &stop],
        &judge,
        opts(true, "BLUE_GREEN"),
    )
    .await;
    assert_eq!(outcome.code(), Code::Failed);
    let WatchOutcome::Failed {
        message,
        rolled_back_to,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(rolled_back_to.is_some());
    assert!(message.contains("was rolled back"), "{message}");
    assert!(message.contains("auth: token accepted?"), "{message}");
    assert_eq!(back.num_calls(), 1, "ROLLBACK sent at the hook");
    assert_eq!(cont.num_calls() + stop.num_calls(), 0);
    assert_eq!(
        judge.asked(),
        [Audience::Green],
        "production never judged: never shifted"
    );
    assert!(!report.stages.iter().any(|s| s.name.contains("PRODUCTION")));
    let rb = report.rollback.unwrap();
    assert_eq!(rb.by, "bosar-deploy");
    assert!(rb.succeeded && rb.requested.is_some() && rb.completed.is_some());
    assert_eq!(
        rb.took_ms,
        Some(10_000),
        "two polls of 5 s from the request to the end"
    );
    assert_eq!(report.gate[0].action, Action::Rollback);
}

#[tokio::test(start_paused = true)]
async fn a_judge_that_errs_rolls_back() {
    for judge in [Scripted::new(&[Err("verify could not start: no token")])] {
        let describe = describes(vec![
            paused(
                Stage::PostScaleUp,
                DeploymentLifecycleHookStatus::AwaitingAction,
            ),
            rolled(Status::RollbackSuccessful, "hook ROLLBACK"),
        ]);
        let back = continue_with(DeploymentLifecycleHookAction::Rollback);
        let cont = continue_with(DeploymentLifecycleHookAction::Continue);
        let (outcome, report, _) = run(
            &[&listed(), &describe, &back, &cont],
            &judge,
            opts(true, "BLUE_GREEN"),
        )
        .await;
        assert!(!outcome.succeeded());
        assert_eq!(back.num_calls(), 1);
        assert_eq!(cont.num_calls(), 0);
        assert!(report.gate[0].checks[0].message.contains("no token"));
    }
}

/// A judge that dies.
struct Panicking;

impl Judge for Panicking {
    fn judge<'a>(&'a self, _: Audience, _: &'a Ui) -> Judged<'a> {
        Box::pin(async { panic!("the judge died") })
    }
}

#[tokio::test(start_paused = true)]
async fn a_judge_that_panics_rolls_back() {
    let describe = describes(vec![
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        rolled(Status::RollbackSuccessful, "hook ROLLBACK"),
    ]);
    let back = continue_with(DeploymentLifecycleHookAction::Rollback);
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let aws = aws(&[&listed(), &describe, &back, &cont], &[]);
    let (outcome, report) = watch(
        &aws,
        &native_target(),
        &opts(true, "BLUE_GREEN"),
        Some(&Panicking as &dyn Judge),
        &Ui::silent(),
    )
    .await
    .unwrap();
    assert!(!outcome.succeeded());
    assert_eq!((back.num_calls(), cont.num_calls()), (1, 0));
    assert!(report.gate[0].checks[0].message.contains("panicked"));
}

#[tokio::test(start_paused = true)]
async fn a_bake_time_failure_stops_the_deployment_and_times_the_way_back() {
    let describe = describes(vec![
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        at(Status::InProgress, Stage::ProductionTrafficShift, 100.0),
        at(Status::InProgress, Stage::BakeTime, 100.0),
        rolled(Status::RollbackRequested, "stopped"),
        rolled(Status::RollbackInProgress, "stopped"),
        rolled(Status::RollbackInProgress, "stopped"),
        rolled(Status::RollbackSuccessful, "StopServiceDeployment ROLLBACK"),
    ]);
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let stop = stop_rollback();
    // Green passes, production passes at the shift, then fails in the bake time.
    let judge = Scripted::new(&[
        Ok(CheckStatus::Pass),
        Ok(CheckStatus::Pass),
        Ok(CheckStatus::Fail),
    ]);
    let (outcome, report, _) = run(
        &[&listed(), &describe, &cont, &stop],
        &judge,
        opts(true, "BLUE_GREEN"),
    )
    .await;
    assert_eq!(cont.num_calls(), 1);
    assert_eq!(stop.num_calls(), 1, "StopServiceDeployment ROLLBACK once");
    assert!(
        matches!(
            outcome,
            WatchOutcome::Failed {
                rolled_back_to: Some(_),
                ..
            }
        ),
        "{outcome:?}"
    );
    let last = report.gate.last().unwrap();
    assert_eq!(
        (last.stage.as_str(), last.action),
        ("BAKE_TIME", Action::StopRollback)
    );
    let rb = report.rollback.unwrap();
    assert_eq!(rb.took_ms, Some(20_000));
    assert!(rb.reason.contains("BAKE_TIME"), "{}", rb.reason);
}

#[tokio::test(start_paused = true)]
async fn the_hooks_timeout_rolls_back_when_the_answer_cannot_be_sent() {
    let describe = describes(vec![
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        paused(Stage::PostScaleUp, DeploymentLifecycleHookStatus::TimedOut),
        rolled(
            Status::RollbackSuccessful,
            "Lifecycle hook hook-gate timed out",
        ),
    ]);
    let denied = mock!(aws_sdk_ecs::Client::continue_service_deployment).then_error(|| {
        ContinueServiceDeploymentError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform ecs:ContinueServiceDeployment")
                .build(),
        )
    });
    let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
    let (outcome, report, lines) = run(
        &[&listed(), &describe, &denied],
        &judge,
        opts(true, "BLUE_GREEN"),
    )
    .await;
    assert_eq!(denied.num_calls(), 1, "an access error is not retried");
    assert!(report.gate[0]
        .error
        .as_deref()
        .unwrap()
        .contains("not authorized"));
    let rb = report.rollback.clone().unwrap();
    assert_eq!(rb.by, "ECS");
    assert!(rb.requested.is_none() && rb.succeeded);
    assert!(rb.reason.contains("timed out"), "{rb:?}");
    assert!(!outcome.succeeded());
    assert!(lines
        .join("\n")
        .contains("lifecycle hook hook-gate: TIMED_OUT"));
}

#[tokio::test(start_paused = true)]
async fn rollback_failed_is_a_failure_that_says_so() {
    let describe = describes(vec![
        at(Status::InProgress, Stage::BakeTime, 100.0),
        rolled(
            Status::RollbackFailed,
            "tasks of the previous revision failed to start",
        ),
    ]);
    let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
    let (outcome, report, _) =
        run(&[&listed(), &describe], &judge, opts(false, "BLUE_GREEN")).await;
    let WatchOutcome::Failed {
        message,
        rolled_back_to,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("ROLLBACK_FAILED"), "{message}");
    assert!(rolled_back_to.is_none());
    assert!(!report.rollback.unwrap().succeeded);
    assert!(judge.asked().is_empty(), "no gate: nothing judged");
}

#[tokio::test(start_paused = true)]
async fn a_newer_deployment_supersedes_ours() {
    let describe = describes(vec![
        at(Status::InProgress, Stage::ScaleUp, 0.0),
        at(Status::Stopped, Stage::ScaleUp, 0.0),
    ]);
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .sequence()
        .output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(ARN, 1_800_000_000, Status::InProgress))
                .build()
        })
        .output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(NEWER, 1_800_000_300, Status::InProgress))
                .next_token("page2")
                .build()
        })
        .output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(ARN, 1_800_000_000, Status::Stopped))
                .build()
        })
        .build();
    let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
    let (outcome, _, _) = run(&[&list, &describe], &judge, opts(true, "BLUE_GREEN")).await;
    let WatchOutcome::Superseded { by, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(by.id, NEWER);
    assert_eq!(list.num_calls(), 3, "both pages read");
    // Stopped with no newer deployment is a failure, not a supersession.
    let describe = describes(vec![at(Status::Stopped, Stage::ScaleUp, 0.0)]);
    let (outcome, _, _) = run(&[&listed(), &describe], &judge, opts(true, "BLUE_GREEN")).await;
    assert!(
        matches!(outcome, WatchOutcome::Failed { .. }),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn canary_and_linear_steps_are_each_judged() {
    for (strategy, weights) in [
        ("CANARY", vec![5.0, 100.0]),
        ("LINEAR", vec![25.0, 50.0, 75.0, 100.0]),
    ] {
        let mut seq = vec![
            paused(
                Stage::PostScaleUp,
                DeploymentLifecycleHookStatus::AwaitingAction,
            ),
            at(Status::InProgress, Stage::ProductionTrafficShift, 0.0),
        ];
        for w in &weights {
            seq.push(at(Status::InProgress, Stage::ProductionTrafficShift, *w));
        }
        seq.push(at(Status::Successful, Stage::CleanUp, 100.0));
        let describe = describes(seq);
        let cont = continue_with(DeploymentLifecycleHookAction::Continue);
        let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
        let (outcome, report, lines) =
            run(&[&listed(), &describe, &cont], &judge, opts(true, strategy)).await;
        assert!(outcome.succeeded(), "{strategy}: {outcome:?}");
        let steps: Vec<_> = report.gate.iter().filter_map(|d| d.weight).collect();
        assert_eq!(steps, [vec![0.0], weights.clone()].concat(), "{strategy}");
        assert_eq!(report.strategy, strategy);
        let text = lines.join("\n");
        assert!(text.contains(&format!(
            "production traffic on the new revision: {}%",
            weights[0]
        )));
    }
    // A canary step that fails is stopped at that step.
    let describe = describes(vec![
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        at(Status::InProgress, Stage::ProductionTrafficShift, 5.0),
        rolled(Status::RollbackSuccessful, "stopped"),
    ]);
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let stop = stop_rollback();
    let judge = Scripted::new(&[Ok(CheckStatus::Pass), Ok(CheckStatus::Fail)]);
    let (_, report, _) = run(
        &[&listed(), &describe, &cont, &stop],
        &judge,
        opts(true, "CANARY"),
    )
    .await;
    assert_eq!(stop.num_calls(), 1);
    assert_eq!(report.gate.last().unwrap().weight, Some(5.0));
}

#[tokio::test(start_paused = true)]
async fn throttling_and_5xx_on_the_new_calls_are_waited_out() {
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .sequence()
        .error(|| {
            ListServiceDeploymentsError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(4)
        .output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(brief(ARN, 1_800_000_000, Status::InProgress))
                .build()
        })
        .build();
    let describe = {
        let mut b = mock!(aws_sdk_ecs::Client::describe_service_deployments)
            .sequence()
            .http_status(
                503,
                Some("{\"__type\":\"ServerException\",\"message\":\"Service Unavailable\"}".into()),
            )
            .times(4);
        for d in [
            paused(
                Stage::PostScaleUp,
                DeploymentLifecycleHookStatus::AwaitingAction,
            ),
            at(Status::InProgress, Stage::BakeTime, 100.0),
        ] {
            b = b.output(move || out(d.clone()));
        }
        b.output(|| out(at(Status::Successful, Stage::CleanUp, 100.0)))
            .repeatedly()
            .build()
    };
    let cont = mock!(aws_sdk_ecs::Client::continue_service_deployment)
        .sequence()
        .http_status(500, None)
        .times(2)
        .output(|| ContinueServiceDeploymentOutput::builder().build())
        .build();
    let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
    let (outcome, report, lines) =
        run(&[&list, &describe, &cont], &judge, opts(true, "BLUE_GREEN")).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(cont.num_calls(), 3, "CONTINUE retried through two 500s");
    assert!(report.gate[0].error.is_none());
    let text = lines.join("\n");
    for seen in [
        "ListServiceDeployments failed: ThrottlingException: Rate exceeded; retrying in",
        "DescribeServiceDeployments failed: ServerException: Service Unavailable; retrying in",
    ] {
        assert!(text.contains(seen), "missing {seen:?}:\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_pause_nobody_answers_times_out_with_the_hooks_expiry() {
    let describe = describes(vec![paused(
        Stage::PostScaleUp,
        DeploymentLifecycleHookStatus::AwaitingAction,
    )]);
    let judge = Scripted::new(&[Ok(CheckStatus::Pass)]);
    let mut o = opts(false, "BLUE_GREEN");
    o.timeout = Duration::from_secs(120);
    let (outcome, _, _) = run(&[&listed(), &describe], &judge, o).await;
    let WatchOutcome::TimedOut { state, resume, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(outcome.code(), Code::TimedOut);
    assert!(
        state.iter().any(|s| s.contains(
            "hook hook-gate (PAUSE) awaits an action until 2027-01-15T08:30:00Z; then ROLLBACK"
        )),
        "{state:?}"
    );
    assert!(resume.contains(ARN), "{resume}");
}

fn lambda_hook() -> aws_sdk_ecs::types::DeploymentLifecycleHook {
    aws_sdk_ecs::types::DeploymentLifecycleHook::builder()
        .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
        .hook_target_arn("arn:aws:lambda:us-east-1:123456789012:function:smoke")
        .role_arn("arn:aws:iam::123456789012:role/hooks")
        .lifecycle_stages(aws_sdk_ecs::types::DeploymentLifecycleHookStage::PostScaleUp)
        .build()
}

/// Revision 41 on a blue/green service with a Lambda hook of its own.
fn blue_green_on_41() -> aws_sdk_ecs::operation::describe_services::DescribeServicesOutput {
    let mut out = on_41();
    let s = &mut out.services.as_mut().unwrap()[0];
    s.deployment_configuration = Some(
        aws_sdk_ecs::types::DeploymentConfiguration::builder()
            .strategy(aws_sdk_ecs::types::DeploymentStrategy::BlueGreen)
            .bake_time_in_minutes(10)
            .lifecycle_hooks(lambda_hook())
            .build(),
    );
    out
}

fn gated_config(section: &str) -> bosar_deploy::config::Config {
    let text = "[target_group]\nname = \"bosar-api-tg\"\n\
         [ecs]\ncluster = \"bosar-cluster\"\nservice = \"bosar-api\"\ncontainer = \"bosar-api\"\npoll_interval = \"5s\"\ntimeout = \"60m\"\n\
         [ecs.environment]\nWEBSOCKET_PING_INTERVAL = \"25000\"\n"
        .to_string()
        + section;
    bosar_deploy::config::parse(std::path::Path::new("deploy.toml"), &text).unwrap()
}

/// UpdateService to 42, answering the PRIMARY deployment `ecs-svc/new`, when `check` holds.
fn update_checked(
    check: impl Fn(&aws_sdk_ecs::operation::update_service::UpdateServiceInput) -> bool
        + Send
        + Sync
        + 'static,
) -> Rule {
    mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(move |r| r.task_definition() == Some(TD42) && check(r))
        .then_output(|| {
            aws_sdk_ecs::operation::update_service::UpdateServiceOutput::builder()
                .service(
                    aws_sdk_ecs::types::Service::builder()
                        .deployments(
                            aws_sdk_ecs::types::Deployment::builder()
                                .id("ecs-svc/new")
                                .status("PRIMARY")
                                .task_definition(TD42)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
}

#[tokio::test(start_paused = true)]
async fn a_gated_deploy_sends_exactly_one_owned_hook_and_judges_at_it() {
    use bosar_deploy::ecs::deploy::{execute, plan, RolloutOptions};
    use bosar_deploy::ecs::native::gate::GateJudge;
    use bosar_deploy::ecs::native::hook::is_owned;
    let cfg = gated_config(
        "[ecs.deployment]\nstrategy = \"blue_green\"\nbake_time = \"10m\"\ngate = \"verify\"\ngate_timeout = \"30m\"\n",
    );
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(blue_green_on_41);
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = registered_42();
    let update = update_checked(|r| {
        let Some(c) = r.deployment_configuration() else {
            return false;
        };
        let hooks = c.lifecycle_hooks();
        let ours: Vec<_> = hooks.iter().filter(|h| is_owned(h)).collect();
        ours.len() == 1
            && hooks.len() == 2
            && hooks.contains(&lambda_hook())
            && ours[0].lifecycle_stages()
                == [aws_sdk_ecs::types::DeploymentLifecycleHookStage::PostScaleUp]
            && ours[0]
                .timeout_configuration()
                .and_then(|t| t.timeout_in_minutes())
                == Some(30)
            && ours[0].timeout_configuration().and_then(|t| t.action())
                == Some(&DeploymentLifecycleHookAction::Rollback)
            && c.bake_time_in_minutes() == Some(10)
    });
    let describe_deps = describes(blue_green_success());
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let aws = aws(
        &[
            &describe,
            &td,
            &register,
            &update,
            &listed(),
            &describe_deps,
            &cont,
        ],
        &[],
    );
    let judge = std::sync::Arc::new(Scripted::new(&[Ok(CheckStatus::Pass)]));
    let opts = RolloutOptions {
        judge: Some(GateJudge(judge.clone())),
        ..Default::default()
    };
    let ecs = cfg.ecs.as_ref().unwrap();
    let p = plan(&aws, ecs, &opts).await.unwrap();
    assert_eq!(p.refused, None);
    assert_eq!(p.strategy.as_deref(), Some("BLUE_GREEN"));
    let (result, err) = execute(&aws, ecs, p, &opts, &Ui::silent()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        update.num_calls(),
        1,
        "the hook went out with the deployment"
    );
    assert!(result.outcome.as_ref().unwrap().succeeded());
    assert_eq!(cont.num_calls(), 1);
    assert_eq!(judge.asked()[0], Audience::Green);
    // The payload carries strategy, stages and the gate's decisions.
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["strategy"], "BLUE_GREEN");
    assert_eq!(json["stages"][0]["name"], "SCALE_UP");
    assert_eq!(json["gate"][0]["action"], "CONTINUE");
    assert!(json.get("rollback").is_none());
}

#[tokio::test(start_paused = true)]
async fn without_the_section_hooks_and_configuration_are_untouched_and_the_watch_is_native() {
    use bosar_deploy::ecs::deploy::{execute, plan, RolloutOptions};
    let cfg = gated_config("");
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(blue_green_on_41);
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = registered_42();
    let update = update_checked(|r| r.deployment_configuration().is_none());
    let describe_deps = describes(blue_green_success());
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let aws = aws(
        &[
            &describe,
            &td,
            &register,
            &update,
            &listed(),
            &describe_deps,
            &cont,
        ],
        &[],
    );
    let opts = RolloutOptions::default();
    let ecs = cfg.ecs.as_ref().unwrap();
    let p = plan(&aws, ecs, &opts).await.unwrap();
    assert!(p.deployment_configuration.is_empty());
    let (result, err) = execute(&aws, ecs, p, &opts, &Ui::silent()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(update.num_calls(), 1);
    assert!(result.outcome.unwrap().succeeded());
    assert_eq!(cont.num_calls(), 0, "no gate: the pause is someone else's");
    assert_eq!(result.native.unwrap().stages.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn wait_follows_a_blue_green_service_through_service_deployments() {
    let cfg = gated_config("");
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(blue_green_on_41);
    let describe_deps = describes(blue_green_success());
    let aws = aws(&[&describe, &listed(), &describe_deps], &[]);
    let args = bosar_deploy::cli::WaitArgs {
        deployment: None,
        timeout: None,
    };
    let ui = Ui::capturing();
    let code = bosar_deploy::ecs::wait::run(&args, &cfg, &aws, &ui)
        .await
        .unwrap();
    assert_eq!(code, Code::Success);
    assert!(describe_deps.num_calls() >= blue_green_success().len());
    assert!(ui.captured().join("\n").contains("stage BAKE_TIME started"));
}

#[tokio::test(start_paused = true)]
async fn rollback_of_a_running_blue_green_deployment_is_stop_service_deployment() {
    let cfg = gated_config("");
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(blue_green_on_41);
    let describe_deps = describes(vec![
        at(Status::InProgress, Stage::BakeTime, 100.0),
        rolled(Status::RollbackInProgress, "stopped"),
        rolled(Status::RollbackSuccessful, "StopServiceDeployment"),
    ]);
    let stop = stop_rollback();
    let update = mock!(aws_sdk_ecs::Client::update_service).then_output(|| {
        aws_sdk_ecs::operation::update_service::UpdateServiceOutput::builder().build()
    });
    let aws = aws(&[&describe, &listed(), &describe_deps, &stop, &update], &[]);
    let args = bosar_deploy::cli::RollbackArgs {
        to: None,
        dry_run: false,
        detailed_exitcode: false,
        list: false,
        no_wait: false,
        timeout: None,
        skip_preflight: Vec::new(),
    };
    let code = bosar_deploy::ecs::rollback::run(&args, &cfg, &aws, &Ui::silent())
        .await
        .unwrap();
    assert_eq!(code, Code::Success);
    assert_eq!(stop.num_calls(), 1, "StopServiceDeployment ROLLBACK");
    assert_eq!(update.num_calls(), 0, "no new deployment");
}

#[tokio::test(start_paused = true)]
async fn the_text_report_and_summary_show_stages_gate_and_the_way_back() {
    let describe = describes(vec![
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        rolled(Status::RollbackInProgress, "hook ROLLBACK"),
        rolled(Status::RollbackSuccessful, "hook ROLLBACK"),
    ]);
    let back = continue_with(DeploymentLifecycleHookAction::Rollback);
    let judge = Scripted::new(&[Ok(CheckStatus::Fail)]);
    let (_, report, _) = run(
        &[&listed(), &describe, &back],
        &judge,
        opts(true, "BLUE_GREEN"),
    )
    .await;
    let text = report.lines().join("\n");
    for seen in [
        "BLUE_GREEN deployment arn:aws:ecs",
        "stage POST_SCALE_UP: ",
        "gate at POST_SCALE_UP (green before production traffic): 2 check(s), 1 failed -> ContinueServiceDeployment ROLLBACK",
        "FAIL auth: token accepted?",
        "rollback by bosar-deploy: the gate's checks failed at POST_SCALE_UP",
        "the way back took 10s",
    ] {
        assert!(text.contains(seen), "missing {seen:?}:\n{text}");
    }
    assert_eq!(
        report.summary(),
        "BLUE_GREEN, 2 stage(s), gate: 1 decision(s) ROLLBACK, rolled back in 10s (by bosar-deploy)"
    );
}

#[tokio::test(start_paused = true)]
async fn status_shows_the_newest_service_deployment_and_its_waiting_hook() {
    let cfg = gated_config("");
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(blue_green_on_41);
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let describe_deps = describes(vec![paused(
        Stage::PostScaleUp,
        DeploymentLifecycleHookStatus::AwaitingAction,
    )]);
    let health = healthy_rule();
    let list = listed();
    let aws = aws(&[&describe, &td, &list, &describe_deps], &[&health]);
    let code = bosar_deploy::ecs::status::run(&cfg, &aws, &Ui::silent())
        .await
        .unwrap();
    assert_eq!(code, Code::Success);
    // The text and payload are unit-tested in status.rs; here: the service deployment is read.
    assert_eq!((list.num_calls(), describe_deps.num_calls()), (1, 1));
}

/// Fail closed: the gate fails production in the bake time, but StopServiceDeployment is
/// refused (ECS already in CLEAN_UP) and the deployment ends SUCCESSFUL: still a failure
/// that says production runs the new revision and how to go back.
#[tokio::test(start_paused = true)]
async fn a_rollback_refused_too_late_still_fails_the_deploy() {
    let describe = describes(vec![
        paused(
            Stage::PostScaleUp,
            DeploymentLifecycleHookStatus::AwaitingAction,
        ),
        at(Status::InProgress, Stage::ProductionTrafficShift, 100.0),
        at(Status::InProgress, Stage::CleanUp, 100.0),
        at(Status::Successful, Stage::CleanUp, 100.0),
    ]);
    let cont = continue_with(DeploymentLifecycleHookAction::Continue);
    let refused = mock!(aws_sdk_ecs::Client::stop_service_deployment).then_error(|| {
        aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("ConflictException")
                .message("the service deployment is in CLEAN_UP")
                .build(),
        )
    });
    let judge = Scripted::new(&[Ok(CheckStatus::Pass), Ok(CheckStatus::Fail)]);
    let (outcome, report, _) = run(
        &[&listed(), &describe, &cont, &refused],
        &judge,
        opts(true, "BLUE_GREEN"),
    )
    .await;
    assert!(refused.num_calls() >= 1, "the rollback was asked for");
    match &outcome {
        WatchOutcome::Failed {
            message,
            rolled_back_to: None,
            ..
        } => {
            assert!(
                message.contains("completed although the gate failed it"),
                "{message}"
            );
            assert!(message.contains("bosar-deploy rollback"), "{message}");
        }
        other => panic!("a failed gate must fail the deploy: {other:?}"),
    }
    assert!(!report.gate.last().unwrap().passed());
}
