//! `verify --on-ecs` stopping what it started, on the SDK's mock layer and tokio's paused
//! clock: a shard refused for capacity or by AccessDenied, an interrupt, the timeout, a task it
//! could not stop, and DescribeTasks throttled or failing.

#[path = "probe_ecs/common.rs"]
mod common;

use common::*;

#[tokio::test(start_paused = true)]
async fn a_shard_refused_for_capacity_is_named_and_the_started_ones_stopped() {
    let r = run(3, &[3], runs_and_ends, on_time).await;
    let err = r.result.unwrap_err();
    assert_eq!(code_of(&err), Code::Failed);
    let msg = message_of(&err);
    assert!(
        msg.contains("shard 3/3 did not start: Capacity is unavailable"),
        "{msg}"
    );
    assert!(msg.contains("stopped 2 of 2 task(s)"), "{msg}");
    assert_eq!(r.stopped, vec![task_arn(1), task_arn(2)]);
}

fn never_ends(_: usize, _: u32) -> (&'static str, Option<i32>, Option<&'static str>) {
    ("RUNNING", None, None)
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_stops_every_task() {
    let r = run_interrupted(
        3,
        &[],
        never_ends,
        on_time,
        Some(Duration::from_secs(12)),
        &[],
    )
    .await;
    let err = r.result.unwrap_err();
    assert_eq!(code_of(&err), Code::Interrupted);
    let msg = message_of(&err);
    assert!(msg.contains("interrupted"), "{msg}");
    assert!(msg.contains("stopped 3 of 3 task(s)"), "{msg}");
    assert_eq!(r.stopped, vec![task_arn(1), task_arn(2), task_arn(3)]);
    // main prints the note, not an interrupted verb's error.
    let (note, _) = r.ui.interrupt_note().expect("an interrupt note");
    assert!(note.contains("stopped 3 of 3 task(s)"), "{note}");
}

#[tokio::test(start_paused = true)]
async fn the_timeout_stops_every_task() {
    let r = run(3, &[], never_ends, on_time).await;
    let err = r.result.unwrap_err();
    assert_eq!(code_of(&err), Code::TimedOut);
    let msg = message_of(&err);
    assert!(
        msg.contains("did not all stop within [probe.ecs] timeout"),
        "{msg}"
    );
    assert!(msg.contains("stopped 3 of 3 task(s)"), "{msg}");
    assert_eq!(r.stopped.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_task_it_could_not_stop_is_named_with_what_to_run() {
    let after = Some(Duration::from_secs(12));
    let r = run_interrupted(3, &[], never_ends, on_time, after, &[2]).await;
    let err = r.result.unwrap_err();
    assert_eq!(code_of(&err), Code::Interrupted);
    let msg = message_of(&err);
    assert!(msg.contains("stopped 2 of 3 task(s)"), "{msg}");
    assert!(
        msg.contains(&format!("could NOT stop shard 2 ({})", task_arn(2))),
        "{msg}"
    );
    assert!(msg.contains("AccessDeniedException"), "{msg}");
    let hint = bosar_deploy::exit::hint_of(&err).unwrap();
    assert!(hint.contains("aws ecs stop-task"), "{hint}");
    assert_eq!(r.stopped, vec![task_arn(1), task_arn(3)]);
}

/// Every task of three in `status` (stopped ones with exit 0).
fn all_tasks(status: &str) -> DescribeTasksOutput {
    let mut out = DescribeTasksOutput::builder();
    for i in 1..=3 {
        let mut c = Container::builder().name("probe");
        if status == "STOPPED" {
            c = c.exit_code(0);
        }
        out = out.tasks(
            Task::builder()
                .task_arn(task_arn(i))
                .last_status(status)
                .containers(c.build())
                .build(),
        );
    }
    out.build()
}

#[tokio::test(start_paused = true)]
async fn a_throttled_describe_tasks_is_tried_again() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    // Throttled more often than the SDK retries one call: the next poll tries again.
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(|| all_tasks("RUNNING"))
        .error(|| {
            DescribeTasksError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(8)
        .output(|| all_tasks("STOPPED"))
        .repeatedly()
        .build();
    let rules = [
        td_rule(&[TOKEN_VAR]),
        run_task_rule(sent.clone(), &[]),
        describe,
        stop_rule(stopped.clone(), &[]),
    ];
    let (result, ui) = run_on(&engine(&rules, &[logs_rule(on_time)])).await;
    let lines = ui.captured().join("\n");
    assert_eq!(
        result.as_ref().map_err(message_of).ok(),
        Some(&Code::Success),
        "{lines}"
    );
    assert!(lines.contains("merged 3 shard report(s)"), "{lines}");
    let warned = ui.warnings().join("\n");
    assert!(
        warned.contains("DescribeTasks") && warned.contains("trying again"),
        "{warned}"
    );
    assert!(stopped.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn run_task_access_denied_is_named_and_nothing_is_left_running() {
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let rules = [
        td_rule(&[TOKEN_VAR]),
        mock!(aws_sdk_ecs::Client::run_task).then_error(|| {
            RunTaskError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("User is not authorized to perform: ecs:RunTask")
                    .build(),
            )
        }),
        stop_rule(stopped.clone(), &[]),
    ];
    let err = run_on(&engine(&rules, &[logs_rule(on_time)]))
        .await
        .0
        .unwrap_err();
    assert_eq!(code_of(&err), Code::Failed);
    let msg = message_of(&err);
    assert!(
        msg.contains("shard 1/3 did not start: RunTask failed: AccessDeniedException"),
        "{msg}"
    );
    assert!(
        !msg.contains("shard 2/3"),
        "it stops at the first refusal: {msg}"
    );
    let hint = bosar_deploy::exit::hint_of(&err).unwrap();
    assert!(
        hint.contains("no shard task of this run is left running"),
        "{hint}"
    );
    assert!(stopped.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn describe_tasks_failing_for_a_minute_ends_the_run_and_stops_every_task() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_error(|| {
        DescribeTasksError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform: ecs:DescribeTasks")
                .build(),
        )
    });
    let rules = [
        td_rule(&[TOKEN_VAR]),
        run_task_rule(sent.clone(), &[]),
        describe,
        stop_rule(stopped.clone(), &[]),
    ];
    let err = run_on(&engine(&rules, &[logs_rule(on_time)]))
        .await
        .0
        .unwrap_err();
    assert_eq!(code_of(&err), Code::Failed);
    let msg = message_of(&err);
    assert!(
        msg.contains("AccessDeniedException") && msg.contains("12 polls in a row failed"),
        "{msg}"
    );
    assert!(msg.contains("stopped 3 of 3 task(s)"), "{msg}");
    assert_eq!(stopped.lock().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// `deploy --under-load N --shards K --on-ecs`: the same tasks holding a rollout's sessions.

/// Running from the second DescribeTasks on; shard 2 stopped by ECS at the third.
fn shard_2_dies_before_the_rollout(
    call: usize,
    shard: u32,
) -> (&'static str, Option<i32>, Option<&'static str>) {
    match (call, shard) {
        (0, _) => ("PROVISIONING", None, None),
        (c, 2) if c >= 2 => (
            "STOPPED",
            Some(137),
            Some("OutOfMemoryError: Container killed due to memory usage"),
        ),
        _ => ("RUNNING", None, None),
    }
}

fn running_from_the_second(
    call: usize,
    _: u32,
) -> (&'static str, Option<i32>, Option<&'static str>) {
    if call == 0 {
        ("PROVISIONING", None, None)
    } else {
        ("RUNNING", None, None)
    }
}

struct LoadRun {
    rollout_ran: bool,
    under: bosar_deploy::under_load::UnderLoad,
    stopped: Vec<String>,
    ui: Ui,
}

/// 30 sessions in 3 shard tasks around a rollout that takes `rollout_takes`; `interrupt_after`
/// interrupts the run (the sandbox test shows it needs no token here).
async fn under_load(
    script: Script,
    rollout_takes: Duration,
    interrupt_after: Option<Duration>,
) -> LoadRun {
    use bosar_deploy::under_load::{self, on_ecs, Rollout};
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let ecs_rules = [
        td_rule(&[TOKEN_VAR]),
        run_task_rule(Arc::new(Mutex::new(Vec::new())), &[]),
        describe_rule(script),
        stop_rule(stopped.clone(), &[]),
    ];
    let engine = engine(&ecs_rules, &[logs_rule(on_time)]);
    let cfg = config();
    let flags = bosar_deploy::cli::UnderLoadFlags {
        under_load: Some(30),
        load_shards: Some(3),
        load_on_ecs: true,
        ..Default::default()
    };
    let load = under_load::settings(
        &flags,
        &cfg,
        None,
        false,
        Duration::from_secs(600),
        "deploy",
    )
    .unwrap()
    .unwrap();
    let e = load.on_ecs.clone().expect("--on-ecs");
    let ui = Ui::capturing();
    let ran = Arc::new(Mutex::new(false));
    let ran_ = ran.clone();
    let rollout = async move {
        *ran_.lock().unwrap() = true;
        tokio::time::sleep(rollout_takes).await;
    };
    let run = on_ecs::around(&engine, &e, &load, Duration::ZERO, &ui, rollout, |_| {
        Rollout::Succeeded
    });
    let (_, under) = match interrupt_after {
        None => run.await,
        Some(after) => {
            let (r, ()) = tokio::join!(run, async {
                tokio::time::sleep(after).await;
                ui.interrupt();
            });
            r
        }
    };
    let rollout_ran = *ran.lock().unwrap();
    let stopped = stopped.lock().unwrap().clone();
    LoadRun {
        rollout_ran,
        under,
        stopped,
        ui,
    }
}

/// Fail closed: a shard ECS stops while the others open means the sessions are not all held;
/// the rollout is never started, and the tasks still running are stopped.
#[tokio::test(start_paused = true)]
async fn under_load_a_shard_stopped_before_the_rollout_starts_no_rollout() {
    let r = under_load(
        shard_2_dies_before_the_rollout,
        Duration::from_secs(1),
        None,
    )
    .await;
    assert!(!r.rollout_ran, "the rollout was started");
    let lines = r.ui.captured().join("\n");
    assert_eq!(r.under.status, bosar_deploy::report::CheckStatus::Fail);
    assert!(!r.under.rollout_started);
    assert!(
        r.under
            .message
            .contains("shard 2/3 stopped before the rollout: exit 137: OutOfMemoryError"),
        "{}\n{lines}",
        r.under.message
    );
    let mut stopped = r.stopped.clone();
    stopped.sort();
    assert_eq!(stopped, [task_arn(1), task_arn(3)], "{lines}");
}

/// An interrupt during the rollout stops every task and fails the step as interrupted.
#[tokio::test(start_paused = true)]
async fn under_load_an_interrupt_in_the_rollout_stops_every_task() {
    let r = under_load(
        running_from_the_second,
        Duration::from_secs(3600),
        Some(Duration::from_secs(600)),
    )
    .await;
    let lines = r.ui.captured().join("\n");
    assert!(r.rollout_ran, "{lines}");
    assert!(
        r.under.interrupted && r.under.rollout_started,
        "{:?}",
        r.under.message
    );
    assert_eq!(r.under.status, bosar_deploy::report::CheckStatus::Fail);
    assert!(
        r.under.message.contains("stopped 3 of 3 task(s)"),
        "{}",
        r.under.message
    );
    assert_eq!(r.stopped.len(), 3, "{lines}");
    // What to do next comes with it: here, nothing is left running.
    assert!(
        r.under
            .message
            .contains("no shard task of this run is left running"),
        "{}",
        r.under.message
    );
    // The rollout started only once every task ran and the shards' open time had passed.
    assert!(
        has(
            &r.ui,
            "every shard task runs; the rollout starts once their sessions are open"
        ),
        "{lines}"
    );
}
