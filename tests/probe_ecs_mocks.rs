//! `verify --connections N --shards K --on-ecs` on the SDK's mock layer and tokio's paused
//! clock (moto cannot show capacity failures, tasks stopped by ECS or late log streams): the
//! happy path and its merge, a shard that does not start, a task ECS stops, a stream that
//! arrives late, a document that never arrives, an interrupt, and no secret in RunTask.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::operation::get_log_events::{GetLogEventsError, GetLogEventsOutput};
use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::describe_tasks::{DescribeTasksError, DescribeTasksOutput};
use aws_sdk_ecs::operation::run_task::{RunTaskError, RunTaskInput, RunTaskOutput};
use aws_sdk_ecs::operation::stop_task::{StopTaskError, StopTaskOutput};
use aws_sdk_ecs::types::{
    Container, ContainerDefinition, Failure, LogConfiguration, LogDriver, Secret, Task,
    TaskDefinition,
};
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};

use bosar_deploy::cli::VerifyArgs;
use bosar_deploy::config::Config;
use bosar_deploy::exit::{code_of, message_of, Code};
use bosar_deploy::gateway::histogram::LogHistogram;
use bosar_deploy::gateway::probe::shard::{Shard, ShardCounts, ShardPart, ShardSettings};
use bosar_deploy::probe_ecs::{run_with, settings, Engine};
use bosar_deploy::ui::Ui;

const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-probe:3";
const START: &str = "2026-12-05T10:00:00Z";
/// What the token variable holds on the machine that starts the run: it must reach no task.
const TOKEN_VAR: &str = "PROBE_ECS_MOCKS_TOKEN";
const TOKEN: &str = "tok-7f3a9c1e5b2d8f604a1c3e5b7d9f1a2c";

fn config() -> Config {
    bosar_deploy::config::parse(
        std::path::Path::new("deploy.toml"),
        &format!(
            "[target_group]\nname = \"bosar-api-tg\"\n\
             [gateway]\nurl = \"https://chat.example.com\"\ntoken_env = \"{TOKEN_VAR}\"\n\
             [probe.ecs]\ncluster = \"probe\"\ntask_definition = \"bosar-probe:3\"\n\
             subnets = [\"subnet-0abc\"]\nsecurity_groups = [\"sg-0def\"]\ncpu = 1024\nmemory = 2048\ntimeout = \"10m\"\n"
        ),
    )
    .unwrap()
}

fn args(n: u32, k: u32) -> VerifyArgs {
    VerifyArgs {
        connections: Some(n),
        shards: Some(k),
        on_ecs: true,
        start_at: Some(START.into()),
        ..VerifyArgs::default()
    }
}

fn task_arn(i: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/probe/t{i}")
}

fn stream(i: u32) -> String {
    format!("probe/probe/t{i}")
}

/// The task definition: container `probe`, the token as a secret, awslogs.
fn td_rule(secrets: &[&str]) -> Rule {
    let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(move || {
        let mut c = ContainerDefinition::builder()
            .name("probe")
            .image("repo/bosar-deploy:0.1")
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/bosar/probe")
                    .options("awslogs-stream-prefix", "probe")
                    .build()
                    .unwrap(),
            );
        for s in &secrets {
            c = c.secrets(
                Secret::builder()
                    .name(s)
                    .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:gw-token")
                    .build()
                    .unwrap(),
            );
        }
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .task_definition_arn(TD)
                    .container_definitions(c.build())
                    .build(),
            )
            .build()
    })
}

fn shard_of(r: &RunTaskInput) -> u32 {
    let cmd = r.overrides().unwrap().container_overrides()[0].command();
    let i = cmd.iter().position(|c| c == "--shard").unwrap();
    cmd[i + 1].split('/').next().unwrap().parse().unwrap()
}

/// RunTask: every request recorded; shards in `refused` get a `failures` entry.
fn run_task_rule(sent: Arc<Mutex<Vec<RunTaskInput>>>, refused: &'static [u32]) -> Rule {
    mock!(aws_sdk_ecs::Client::run_task).then_compute_output(move |r| {
        sent.lock().unwrap().push(r.clone());
        let i = shard_of(r);
        if refused.contains(&i) {
            return RunTaskOutput::builder()
                .failures(
                    Failure::builder()
                        .reason("Capacity is unavailable at this time. Please try again later or in a different availability zone")
                        .build(),
                )
                .build();
        }
        RunTaskOutput::builder()
            .tasks(Task::builder().task_arn(task_arn(i)).last_status("PROVISIONING").build())
            .build()
    })
}

/// A task as DescribeTasks says it is at call `n` (0-based).
type Script = fn(call: usize, shard: u32) -> (&'static str, Option<i32>, Option<&'static str>);

/// DescribeTasks as `script` says.
fn describe_rule(script: Script) -> Rule {
    let calls = Arc::new(Mutex::new(0usize));
    mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_response(move |r| {
        let mut n = calls.lock().unwrap();
        let mut out = DescribeTasksOutput::builder();
        let call = *n;
        *n += 1;
        for arn in r.tasks() {
            let i: u32 = arn.rsplit('t').next().unwrap().parse().unwrap();
            let (status, exit, reason) = script(call, i);
            let mut c = Container::builder().name("probe");
            if let Some(e) = exit {
                c = c.exit_code(e);
            }
            out = out.tasks(
                Task::builder()
                    .task_arn(arn)
                    .last_status(status)
                    .containers(c.build())
                    .set_stopped_reason(reason.map(str::to_string))
                    .build(),
            );
        }
        MockResponse::Output(out.build())
    })
}

/// StopTask: every task recorded; those of `unstoppable` shards answer AccessDenied.
fn stop_rule(stopped: Arc<Mutex<Vec<String>>>, unstoppable: &'static [u32]) -> Rule {
    mock!(aws_sdk_ecs::Client::stop_task).then_compute_response(move |r| {
        let arn = r.task().unwrap().to_string();
        let i: u32 = arn.rsplit('t').next().unwrap().parse().unwrap();
        if unstoppable.contains(&i) {
            return MockResponse::Error(StopTaskError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform: ecs:StopTask")
                    .build(),
            ));
        }
        stopped.lock().unwrap().push(arn);
        MockResponse::Output(StopTaskOutput::builder().build())
    })
}

/// Shard `i` of `k`'s document, as `verify --shard` writes it (pretty, several lines).
fn document(i: u32, k: u32, n: u32) -> String {
    let mine = n / k + u32::from(i - 1 < n % k);
    let part = ShardPart {
        run_id: format!("{START}/n{n}/k{k}"),
        version: env!("CARGO_PKG_VERSION").into(),
        shard: Shard { index: i, count: k },
        total_connections: n,
        interrupted: false,
        settings: ShardSettings {
            url: "https://chat.example.com".into(),
            namespace: "/chat".into(),
            concurrency: 256,
            rate_limit: None,
            hold_ms: 60_000,
            max_error_rate: 0.0,
            max_p99_ms: None,
            heartbeat_interval_ms: 30_000,
            slack_ms: 1000,
        },
        counts: ShardCounts {
            connections: u64::from(mine),
            opened: u64::from(mine),
            closed: u64::from(mine),
            ..ShardCounts::default()
        },
        open_phase_ms: 100,
        duration_ms: 61_000,
        cookies_consistent: None,
        connect_us: LogHistogram::of((0..mine).map(|s| 20_000 + u64::from(s))),
        lateness_ms: LogHistogram::default(),
        targets: vec![(format!("gw-{i}"), u64::from(mine))],
        open_failed_by_target: vec![],
        failures: vec![],
        disruption: None,
    };
    serde_json::to_string_pretty(
        &serde_json::json!({"command": "verify", "probe": {"shard": part}}),
    )
    .unwrap()
}

/// How a stream answers at its read `n` (0-based): `None` for not there yet.
type Streams = fn(shard: u32, read: usize) -> Option<Vec<String>>;

/// GetLogEvents: each stream's events on the first read of a page, then the same token.
fn logs_rule(streams: Streams) -> Rule {
    let reads: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_compute_response(move |r| {
        let name = r.log_stream_name().unwrap().to_string();
        let i: u32 = name.rsplit('t').next().unwrap().parse().unwrap();
        if r.next_token() == Some("end") {
            return MockResponse::Output(
                GetLogEventsOutput::builder()
                    .next_forward_token("end")
                    .build(),
            );
        }
        let mut map = reads.lock().unwrap();
        let n = map.entry(name).or_insert(0);
        let answer = streams(i, *n);
        *n += 1;
        match answer {
            None => MockResponse::Error(GetLogEventsError::ResourceNotFoundException(
                aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException::builder()
                    .message("The specified log stream does not exist.")
                    .build(),
            )),
            Some(events) => {
                let mut out = GetLogEventsOutput::builder().next_forward_token("end");
                for (t, e) in events.into_iter().enumerate() {
                    out = out.events(
                        OutputLogEvent::builder()
                            .timestamp(t as i64)
                            .message(e)
                            .build(),
                    );
                }
                MockResponse::Output(out.build())
            }
        }
    })
}

/// Every shard's stream whole at once: a progress line, then the document line by line.
fn on_time(i: u32, _: usize) -> Option<Vec<String>> {
    let mut events = vec!["shard started".to_string()];
    events.extend(document(i, 3, 30).lines().map(str::to_string));
    Some(events)
}

/// pending, then running, then stopped with exit 0.
fn runs_and_ends(call: usize, _: u32) -> (&'static str, Option<i32>, Option<&'static str>) {
    match call {
        0 => ("PROVISIONING", None, None),
        1 | 2 => ("RUNNING", None, None),
        _ => (
            "STOPPED",
            Some(0),
            Some("Essential container in task exited"),
        ),
    }
}

struct Run {
    result: anyhow::Result<Code>,
    sent: Vec<RunTaskInput>,
    stopped: Vec<String>,
    ui: Ui,
}

async fn run(k: u32, refused: &'static [u32], script: Script, streams: Streams) -> Run {
    run_interrupted(k, refused, script, streams, None, &[]).await
}

async fn run_interrupted(
    k: u32,
    refused: &'static [u32],
    script: Script,
    streams: Streams,
    interrupt_after: Option<Duration>,
    unstoppable: &'static [u32],
) -> Run {
    std::env::set_var(TOKEN_VAR, TOKEN);
    let sent = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let ecs_rules = [
        td_rule(&[TOKEN_VAR]),
        run_task_rule(sent.clone(), refused),
        describe_rule(script),
        stop_rule(stopped.clone(), unstoppable),
    ];
    let logs = [logs_rule(streams)];
    let engine = Engine {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &ecs_rules),
        logs: mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, &logs),
        poll: Duration::from_secs(5),
        log_wait: Duration::from_secs(60),
    };
    let cfg = config();
    let a = args(30, k);
    let (p, gw) = settings(&a, &cfg).unwrap();
    let ui = Ui::capturing();
    let result = match interrupt_after {
        None => run_with(&engine, &a, p, &gw, &cfg, &ui).await,
        Some(after) => {
            let (r, ()) = tokio::join!(run_with(&engine, &a, p, &gw, &cfg, &ui), async {
                tokio::time::sleep(after).await;
                ui.interrupt();
            });
            r
        }
    };
    let sent = sent.lock().unwrap().clone();
    let stopped = stopped.lock().unwrap().clone();
    Run {
        result,
        sent,
        stopped,
        ui,
    }
}

fn has(ui: &Ui, needle: &str) -> bool {
    ui.captured().iter().any(|l| l.contains(needle))
}

#[tokio::test(start_paused = true)]
async fn three_shards_run_report_and_merge() {
    let r = run(3, &[], runs_and_ends, on_time).await;
    let lines = r.ui.captured().join("\n");
    assert_eq!(
        r.result.as_ref().map_err(message_of).ok(),
        Some(&Code::Success),
        "{lines}"
    );
    assert_eq!(r.sent.len(), 3, "one RunTask per shard");
    for (i, req) in r.sent.iter().enumerate() {
        assert_eq!(req.count(), Some(1));
        assert_eq!(req.task_definition(), Some(TD));
        assert_eq!(req.started_by(), Some("bosar-deploy-probe"));
        let cmd = req.overrides().unwrap().container_overrides()[0]
            .command()
            .join(" ");
        assert!(
            cmd.contains(&format!(
                "verify --connections 30 --shard {}/3 --start-at {START}",
                i + 1
            )),
            "{cmd}"
        );
        assert_eq!(req.overrides().unwrap().cpu(), Some("1024"));
    }
    for needle in [
        "shard 2/3 (task t2): running",
        "shard 3/3 (task t3): done (exit 0)",
        "3 shard(s): 3 pending, 0 running, 0 done",
        "3 shard(s): 0 pending, 0 running, 3 done",
        "merged 3 shard report(s) of run 2026-12-05T10:00:00Z/n30/k3",
    ] {
        assert!(lines.contains(needle), "{needle} not in:\n{lines}");
    }
    assert!(r.stopped.is_empty(), "nothing to stop: {:?}", r.stopped);
}

#[tokio::test(start_paused = true)]
async fn no_secret_value_travels_in_run_task() {
    let r = run(3, &[], runs_and_ends, on_time).await;
    assert!(r.result.is_ok());
    for req in &r.sent {
        let o = &req.overrides().unwrap().container_overrides()[0];
        let mut texts: Vec<String> = o.command().to_vec();
        for e in o.environment() {
            texts.push(format!(
                "{}={}",
                e.name().unwrap_or(""),
                e.value().unwrap_or("")
            ));
        }
        texts.push(format!("{req:?}"));
        for t in &texts {
            assert!(
                !t.contains(TOKEN),
                "the token's value travels in RunTask: {t}"
            );
        }
        // The shard reads the token by reference: the variable's name is in its config.
        let env = o.environment();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name(), Some("BOSAR_DEPLOY_CONFIG_TOML"));
        assert!(env[0]
            .value()
            .unwrap()
            .contains(&format!("token_env = \"{TOKEN_VAR}\"")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_definition_without_the_token_secret_is_refused_before_any_task() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let rules = [td_rule(&[]), run_task_rule(sent.clone(), &[])];
    let engine = Engine {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules),
        logs: mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            &[logs_rule(on_time)]
        ),
        poll: Duration::from_secs(5),
        log_wait: Duration::from_secs(60),
    };
    let cfg = config();
    let a = args(30, 3);
    let (p, gw) = settings(&a, &cfg).unwrap();
    let err = run_with(&engine, &a, p, &gw, &cfg, &Ui::capturing())
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Code::Usage);
    let msg = message_of(&err);
    assert!(
        msg.contains(&format!("has no `secrets` entry named {TOKEN_VAR}")),
        "{msg}"
    );
    assert!(sent.lock().unwrap().is_empty(), "no task started");
}

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

fn shard_2_killed(call: usize, shard: u32) -> (&'static str, Option<i32>, Option<&'static str>) {
    match (call, shard) {
        (c, 2) if c >= 2 => (
            "STOPPED",
            Some(137),
            Some("OutOfMemoryError: Container killed due to memory usage"),
        ),
        _ => runs_and_ends(call, shard),
    }
}

/// Shard 2 was killed before it wrote its document.
fn shard_2_empty(i: u32, n: usize) -> Option<Vec<String>> {
    if i == 2 {
        Some(vec!["shard started".into()])
    } else {
        on_time(i, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_ecs_stopped_is_named_with_its_reason_and_the_merge_says_what_is_missing() {
    let r = run(3, &[], shard_2_killed, shard_2_empty).await;
    let err = r.result.unwrap_err();
    assert_eq!(code_of(&err), Code::Failed);
    let msg = message_of(&err);
    assert!(
        msg.contains("the merge is missing 1 of 3 shard report(s)"),
        "{msg}"
    );
    assert!(
        msg.contains("shard 2/3: its log stream (1 event(s)) holds no whole shard document"),
        "{msg}"
    );
    assert!(msg.contains("exit 137: OutOfMemoryError"), "{msg}");
    assert!(has(&r.ui, "shard 2/3 (task t2): stopped, exit 137"));
}

/// Shard 1's stream appears on the third read; the others are there at once.
fn shard_1_late(i: u32, n: usize) -> Option<Vec<String>> {
    if i == 1 && n < 2 {
        None
    } else {
        on_time(i, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_arrives_late_is_waited_for() {
    let r = run(3, &[], runs_and_ends, shard_1_late).await;
    let lines = r.ui.captured().join("\n");
    assert_eq!(
        r.result.as_ref().map_err(message_of).ok(),
        Some(&Code::Success),
        "{lines}"
    );
    assert!(lines.contains("merged 3 shard report(s)"), "{lines}");
}

fn shard_3_never(i: u32, n: usize) -> Option<Vec<String>> {
    if i == 3 {
        None
    } else {
        on_time(i, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_document_that_never_arrives_is_named_as_missing() {
    let started = tokio::time::Instant::now();
    let r = run(3, &[], runs_and_ends, shard_3_never).await;
    let err = r.result.unwrap_err();
    let msg = message_of(&err);
    assert!(msg.contains("the merge is missing 1 of 3"), "{msg}");
    let gone = format!(
        "shard 3/3: its log stream /bosar/probe:{} does not exist after 60 s",
        stream(3)
    );
    assert!(msg.contains(&gone), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
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

#[test]
fn without_probe_ecs_on_ecs_is_refused_with_what_to_add() {
    let cfg = bosar_deploy::config::parse(
        std::path::Path::new("deploy.toml"),
        "[target_group]\nname = \"tg\"\n[gateway]\nurl = \"https://chat.example.com\"\n",
    )
    .unwrap();
    let err = settings(&args(30, 3), &cfg).unwrap_err();
    assert_eq!(code_of(&err), Code::Usage);
    assert!(message_of(&err).contains("has no [probe.ecs] section"));
    assert!(bosar_deploy::exit::hint_of(&err)
        .unwrap()
        .contains("add [probe.ecs] with cluster, task_definition"));
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
    std::env::set_var(TOKEN_VAR, TOKEN);
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
    let engine = Engine {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules),
        logs: mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            &[logs_rule(on_time)]
        ),
        poll: Duration::from_secs(5),
        log_wait: Duration::from_secs(60),
    };
    let cfg = config();
    let a = args(30, 3);
    let (p, gw) = settings(&a, &cfg).unwrap();
    let ui = Ui::capturing();
    let result = run_with(&engine, &a, p, &gw, &cfg, &ui).await;
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
    let engine = Engine {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules),
        logs: mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            &[logs_rule(on_time)]
        ),
        poll: Duration::from_secs(5),
        log_wait: Duration::from_secs(60),
    };
    let cfg = config();
    let a = args(30, 3);
    let (p, gw) = settings(&a, &cfg).unwrap();
    let err = run_with(&engine, &a, p, &gw, &cfg, &Ui::capturing())
        .await
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
    std::env::set_var(TOKEN_VAR, TOKEN);
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
    let engine = Engine {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &rules),
        logs: mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            &[logs_rule(on_time)]
        ),
        poll: Duration::from_secs(5),
        log_wait: Duration::from_secs(60),
    };
    let cfg = config();
    let a = args(30, 3);
    let (p, gw) = settings(&a, &cfg).unwrap();
    let err = run_with(&engine, &a, p, &gw, &cfg, &Ui::capturing())
        .await
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
