//! What the `--on-ecs` mock tests share: a config and args, the task definition, RunTask,
//! DescribeTasks, StopTask and GetLogEvents rules driven by small scripts, shard documents,
//! and a run of `probe_ecs::run_with` on mock clients.
#![allow(dead_code, unused_imports)]

pub use std::collections::HashMap;
pub use std::sync::{Arc, Mutex};
pub use std::time::Duration;

pub use aws_sdk_cloudwatchlogs::operation::get_log_events::{
    GetLogEventsError, GetLogEventsOutput,
};
pub use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
pub use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
pub use aws_sdk_ecs::operation::describe_tasks::{DescribeTasksError, DescribeTasksOutput};
pub use aws_sdk_ecs::operation::run_task::{RunTaskError, RunTaskInput, RunTaskOutput};
pub use aws_sdk_ecs::operation::stop_task::{StopTaskError, StopTaskOutput};
pub use aws_sdk_ecs::types::{
    Container, ContainerDefinition, Failure, LogConfiguration, LogDriver, Secret, Task,
    TaskDefinition,
};
pub use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};

pub use bosar_deploy::cli::VerifyArgs;
pub use bosar_deploy::config::Config;
pub use bosar_deploy::exit::{code_of, message_of, Code};
pub use bosar_deploy::gateway::histogram::LogHistogram;
pub use bosar_deploy::gateway::probe::shard::{Shard, ShardCounts, ShardPart, ShardSettings};
pub use bosar_deploy::probe_ecs::{run_with, settings, Engine};
pub use bosar_deploy::ui::Ui;

pub const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-probe:3";
pub const START: &str = "2026-12-05T10:00:00Z";
/// What the token variable holds on the machine that starts the run: it must reach no task.
pub const TOKEN_VAR: &str = "PROBE_ECS_MOCKS_TOKEN";
pub const TOKEN: &str = "tok-7f3a9c1e5b2d8f604a1c3e5b7d9f1a2c";

pub fn config() -> Config {
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

pub fn args(n: u32, k: u32) -> VerifyArgs {
    VerifyArgs {
        connections: Some(n),
        shards: Some(k),
        on_ecs: true,
        start_at: Some(START.into()),
        ..VerifyArgs::default()
    }
}

pub fn task_arn(i: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/probe/t{i}")
}

pub fn stream(i: u32) -> String {
    format!("probe/probe/t{i}")
}

/// The task definition: container `probe`, the token as a secret, awslogs.
pub fn td_rule(secrets: &[&str]) -> Rule {
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

pub fn shard_of(r: &RunTaskInput) -> u32 {
    let cmd = r.overrides().unwrap().container_overrides()[0].command();
    let i = cmd.iter().position(|c| c == "--shard").unwrap();
    cmd[i + 1].split('/').next().unwrap().parse().unwrap()
}

/// RunTask: every request recorded; shards in `refused` get a `failures` entry.
pub fn run_task_rule(sent: Arc<Mutex<Vec<RunTaskInput>>>, refused: &'static [u32]) -> Rule {
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
pub type Script = fn(call: usize, shard: u32) -> (&'static str, Option<i32>, Option<&'static str>);

/// DescribeTasks as `script` says.
pub fn describe_rule(script: Script) -> Rule {
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
pub fn stop_rule(stopped: Arc<Mutex<Vec<String>>>, unstoppable: &'static [u32]) -> Rule {
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
pub fn document(i: u32, k: u32, n: u32) -> String {
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
        held_ms: 0,
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
pub type Streams = fn(shard: u32, read: usize) -> Option<Vec<String>>;

/// GetLogEvents: each stream's events on the first read of a page, then the same token.
pub fn logs_rule(streams: Streams) -> Rule {
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
        // A read of the stream's end for a running shard's progress: its progress line.
        if r.start_from_head() == Some(false) {
            let line = format!(
                "2026-12-05T10:00:05Z probe: holding {} session(s), 1 s of 1m",
                10 + i
            );
            return MockResponse::Output(
                GetLogEventsOutput::builder()
                    .events(OutputLogEvent::builder().timestamp(0).message(line).build())
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
pub fn on_time(i: u32, _: usize) -> Option<Vec<String>> {
    let mut events = vec!["shard started".to_string()];
    events.extend(document(i, 3, 30).lines().map(str::to_string));
    Some(events)
}

/// pending, then running, then stopped with exit 0.
pub fn runs_and_ends(call: usize, _: u32) -> (&'static str, Option<i32>, Option<&'static str>) {
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

pub struct Run {
    pub result: anyhow::Result<Code>,
    pub sent: Vec<RunTaskInput>,
    pub stopped: Vec<String>,
    pub ui: Ui,
}

pub async fn run(k: u32, refused: &'static [u32], script: Script, streams: Streams) -> Run {
    run_interrupted(k, refused, script, streams, None, &[]).await
}

pub async fn run_interrupted(
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

pub fn has(ui: &Ui, needle: &str) -> bool {
    ui.captured().iter().any(|l| l.contains(needle))
}

/// An engine over mock clients, at the CLI's pace (5 s polls, 60 s for a stream).
pub fn engine(ecs_rules: &[Rule], logs: &[Rule]) -> Engine {
    Engine {
        ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules),
        logs: mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, logs),
        poll: Duration::from_secs(5),
        log_wait: Duration::from_secs(60),
    }
}

/// `run_with` on `engine` for 30 sessions in 3 shards, on a capturing Ui.
pub async fn run_on(engine: &Engine) -> (anyhow::Result<Code>, Ui) {
    std::env::set_var(TOKEN_VAR, TOKEN);
    let cfg = config();
    let a = args(30, 3);
    let (p, gw) = settings(&a, &cfg).unwrap();
    let ui = Ui::capturing();
    let result = run_with(engine, &a, p, &gw, &cfg, &ui).await;
    (result, ui)
}
