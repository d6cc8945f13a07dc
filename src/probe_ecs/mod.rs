//! `verify --connections N --shards K --on-ecs`: the load probe's K shards as Fargate tasks of
//! bosar-deploy's own image (`[probe.ecs]`), started with RunTask, watched with DescribeTasks,
//! their JSON documents read from CloudWatch Logs, and merged as `report merge` does. Every
//! task it started is stopped on an interrupt, a timeout or a failed start.
//!
//! A verb-level module: it uses `gateway::probe` (the shard arithmetic and the merge) and the
//! ECS client, and neither of them knows it. The token never travels in the request: the task
//! definition must hold it as a `secrets` entry under `[gateway] token_env`/`jwt_secret_env`.

pub mod logs;
pub mod plan;
pub mod progress;
pub mod tasks;

use std::time::Duration;

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::config::{Config, GatewaySection, ProbeEcsSection};
use crate::exit::{Code, Failure};
use crate::outside::Outside;
use crate::ui::Ui;
use progress::{ShardTask, State};

/// The clients and the pace of the watch.
pub struct Engine {
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Between DescribeTasks calls, and between reads of a stream that is not whole yet.
    pub poll: Duration,
    /// How long a stopped task's stream may take to show its document.
    pub log_wait: Duration,
}

/// How long an interrupted run may take to stop every task it started (StopTask, 10 at once,
/// retried when throttled); a second Ctrl-C or SIGTERM still ends the wait.
pub const STOP_WRAP_UP: Duration = Duration::from_secs(30);

impl Engine {
    /// The connected clients, at the CLI's pace (5 s polls) and `[probe.ecs] log_wait`.
    pub fn of(aws: &crate::aws::Aws, p: &ProbeEcsSection) -> anyhow::Result<Engine> {
        let sdk = aws
            .sdk
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no AWS config loaded"))?;
        Ok(Engine {
            ecs: aws.ecs.clone(),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            poll: Duration::from_secs(5),
            log_wait: p.log_wait,
        })
    }
}

/// What to add when `[probe.ecs]` is absent.
pub(crate) const ADD_PROBE_ECS: &str = "add [probe.ecs] with cluster, task_definition (a task definition holding the bosar-deploy image) and subnets (docs/distribution.md \"Shards on ECS\"); nothing was called on AWS";

/// The CLI entry: the config checked, AWS connected, then [`run_with`].
pub async fn run(args: &VerifyArgs, cfg: &Config, g: &GlobalArgs, ui: &Ui) -> anyhow::Result<Code> {
    let (p, gw) = settings(args, cfg)?;
    let aws = crate::aws::connect(&cfg.aws, g, ui).await?;
    let engine = Engine::of(&aws, p)?;
    run_with(&engine, args, p, &gw, cfg, ui).await
}

/// `[probe.ecs]` and the `[gateway]` the shards use; usage errors (exit 2) before any call.
pub fn settings<'a>(
    args: &VerifyArgs,
    cfg: &'a Config,
) -> anyhow::Result<(&'a ProbeEcsSection, GatewaySection)> {
    let Some(p) = cfg.probe_ecs.as_ref() else {
        return Err(Failure::usage(format!(
            "--on-ecs: {} has no [probe.ecs] section: where to start the shards",
            cfg.path.display()
        ))
        .hint(ADD_PROBE_ECS)
        .into());
    };
    let gw = cfg
        .gateway_or_url("verify", args.url.as_deref())?
        .into_owned();
    let url = args.url.as_deref().unwrap_or(&gw.url);
    if url::Url::parse(url).is_ok_and(|u| u.password().is_some()) {
        return Err(Failure::usage("--on-ecs: the gateway URL carries a password, which would travel in the tasks' command line and config")
            .hint("give the shards a URL without user info; the token comes from the task definition's `secrets`")
            .into());
    }
    let n = args.connections.unwrap_or(0);
    let k = args.shards.unwrap_or(1);
    if n < k {
        return Err(Failure::usage(format!(
            "--shards {k}: {n} session(s) leave some shards none"
        ))
        .hint("use at most as many shards as --connections")
        .into());
    }
    if let Some(at) = &args.start_at {
        crate::gateway::probe::shard::parse_start_at(at)
            .map_err(|m| Failure::usage(format!("--start-at {m}")))?;
    }
    Ok((p, gw))
}

/// Checks the task definition, starts the shards, watches them, reads their documents and
/// merges them.
pub async fn run_with(
    engine: &Engine,
    args: &VerifyArgs,
    p: &ProbeEcsSection,
    gw: &GatewaySection,
    cfg: &Config,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let (td_arn, facts) = tasks::describe_container(&engine.ecs, p).await?;
    let td_shown = Outside::new(&td_arn).shown(200);
    let place = plan::check_container(&td_shown, &facts, gw, p).map_err(|missing| {
        Failure::usage(format!("--on-ecs: {}", missing.join("; ")))
            .hint("fix the task definition (or [probe.ecs]) and run again; no task was started")
    })?;
    let n = args.connections.unwrap_or(0);
    let k = args.shards.unwrap_or(1);
    let start_at = plan::start_at(args.start_at.as_deref(), std::time::SystemTime::now(), p);
    let orders = plan::shard_orders(args, cfg, gw, n, k, &start_at);
    let _wrap = ui.wrap_up_on_interrupt();
    ui.need_wrap_up(STOP_WRAP_UP);
    ui.line(format!(
        "starting {k} shard task(s) of {td_shown} on cluster {}: {n} session(s), opening at {start_at}",
        Outside::new(&p.cluster).shown(100)
    ));
    let started = start_all(engine, p, &td_arn, &place.container, &orders, ui).await?;
    let outcome = watch(engine, p, &place, started, k, ui).await;
    let (tasks, end) = match outcome {
        Watched::Done(tasks) => (tasks, None),
        Watched::Ended(tasks, code, why) => (tasks, Some((code, why))),
    };
    if let Some((code, why)) = end {
        let unstopped = tasks::stop_all(&engine.ecs, &p.cluster, &tasks, &why).await;
        return Err(ended(ui, code, &why, &tasks, &unstopped));
    }
    let docs = collect(engine, &place, &tasks, k, ui).await;
    finish(docs, args, ui)
}

/// Starts every shard, one RunTask each. When one does not start, the run cannot be whole:
/// the ones started are stopped and the error names the shard and ECS's reason.
pub(crate) async fn start_all(
    engine: &Engine,
    p: &ProbeEcsSection,
    td_arn: &str,
    container: &str,
    orders: &[plan::ShardOrder],
    ui: &Ui,
) -> anyhow::Result<Vec<ShardTask>> {
    let k = orders.len();
    let mut started: Vec<ShardTask> = Vec::new();
    for order in orders {
        let failure = if ui.is_interrupted() {
            Some((
                Code::Interrupted,
                "interrupted (Ctrl-C or SIGTERM)".to_string(),
            ))
        } else {
            match tasks::start(&engine.ecs, p, td_arn, container, order).await {
                Ok(arn) => {
                    started.push(ShardTask {
                        progress: None,
                        index: order.index,
                        task_arn: arn,
                        state: State::Pending,
                    });
                    continue;
                }
                Err(why) => Some((
                    Code::Failed,
                    format!("shard {}/{k} did not start: {why}", order.index),
                )),
            }
        };
        let (code, why) = failure.expect("set above");
        let unstopped = tasks::stop_all(
            &engine.ecs,
            &p.cluster,
            &started,
            "bosar-deploy: the run could not start every shard",
        )
        .await;
        return Err(ended(ui, code, &why, &started, &unstopped));
    }
    ui.line(format!("{} shard task(s) started", started.len()));
    Ok(started)
}

/// DescribeTasks polls that may fail in a row (throttled, a network fault) before the run
/// gives up and stops its tasks: a minute at the 5 s pace.
const MAX_FAILED_POLLS: u32 = 12;

/// How the watch ended.
pub(crate) enum Watched {
    /// Every task stopped.
    Done(Vec<ShardTask>),
    /// Interrupted or timed out (the exit code and why); the tasks are still to be stopped.
    Ended(Vec<ShardTask>, Code, String),
}

/// DescribeTasks every poll until every task has stopped, saying each change; an interrupt
/// or `[probe.ecs] timeout` ends it.
pub(crate) async fn watch(
    engine: &Engine,
    p: &ProbeEcsSection,
    place: &plan::LogPlace,
    mut tasks: Vec<ShardTask>,
    k: u32,
    ui: &Ui,
) -> Watched {
    let deadline = tokio::time::Instant::now() + p.timeout;
    let mut last_summary = String::new();
    let mut failed_in_a_row = 0;
    let mut progress_read = None;
    loop {
        let before: Vec<State> = tasks.iter().map(|t| t.state.clone()).collect();
        read_progress(engine, place, &mut tasks, k, &mut progress_read, ui).await;
        match tasks::refresh(&engine.ecs, &p.cluster, &place.container, &mut tasks).await {
            Ok(()) => failed_in_a_row = 0,
            Err(e) if failed_in_a_row + 1 >= MAX_FAILED_POLLS => {
                let why = format!(
                    "{} ({MAX_FAILED_POLLS} polls in a row failed)",
                    crate::exit::message_of(&e)
                );
                return Watched::Ended(tasks, Code::Failed, why);
            }
            Err(e) => {
                failed_in_a_row += 1;
                let m = crate::exit::message_of(&e);
                ui.warn(format!("{m} (trying again at the next poll)"));
            }
        }
        for (t, b) in tasks.iter().zip(&before) {
            if let Some(line) = progress::transition(t, k, b) {
                ui.line(line);
            }
        }
        let summary = progress::summary(&tasks);
        if summary != last_summary {
            ui.line(&summary);
            last_summary = summary;
        }
        if progress::all_stopped(&tasks) {
            return Watched::Done(tasks);
        }
        if tokio::time::Instant::now() >= deadline {
            let why = format!(
                "the shards did not all stop within [probe.ecs] timeout {}",
                crate::gateway::fmt_duration(p.timeout)
            );
            return Watched::Ended(tasks, Code::TimedOut, why);
        }
        tokio::select! {
            () = tokio::time::sleep(engine.poll) => {}
            () = ui.interrupted() => {
                return Watched::Ended(tasks, Code::Interrupted, "interrupted (Ctrl-C or SIGTERM)".into());
            }
        }
    }
}

/// Reads the running shards' progress from the end of their streams, saying each change; at
/// most once every `max(poll, K × 200 ms)` (5 GetLogEvents a second, well under its quota),
/// 10 streams at once. A failed read leaves the last progress: it is a courtesy, not a verdict.
pub(crate) async fn read_progress(
    engine: &Engine,
    place: &plan::LogPlace,
    tasks: &mut [ShardTask],
    k: u32,
    last: &mut Option<tokio::time::Instant>,
    ui: &Ui,
) {
    use futures_util::stream::{self, StreamExt};
    let every = engine.poll.max(Duration::from_millis(200) * k);
    let now = tokio::time::Instant::now();
    if last.is_some_and(|t| now < t + every) {
        return;
    }
    *last = Some(now);
    let running = tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.state == State::Running)
        .map(|(i, t)| (i, place.stream(t.task_id())));
    let read: Vec<(usize, Option<logs::Progress>)> = stream::iter(running)
        .map(|(i, name)| async move {
            (
                i,
                logs::last_progress(&engine.logs, &place.group, &name).await,
            )
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let mut read = read;
    read.sort_by_key(|(i, _)| *i);
    for (i, p) in read {
        let Some(p) = p else { continue };
        let before = tasks[i].progress.replace(p);
        if let Some(line) = progress::progress_line(&tasks[i], k, before) {
            ui.line(line);
        }
    }
}

/// The error of a run that ended early: why, the tasks stopped, and those that could not be.
/// An interrupt's is also the note `main` prints (it does not print an interrupted verb's error).
pub(crate) fn ended(
    ui: &Ui,
    code: Code,
    why: &str,
    started: &[ShardTask],
    unstopped: &[(u32, String, String)],
) -> anyhow::Error {
    let mut message = format!("--on-ecs: {why}");
    let running: Vec<&ShardTask> = started
        .iter()
        .filter(|t| !matches!(t.state, State::Stopped { .. }))
        .collect();
    if !running.is_empty() {
        message.push_str(&format!(
            "; stopped {} of {} task(s) it had started",
            running.len() - unstopped.len(),
            running.len()
        ));
    }
    let mut hint = "no shard task of this run is left running".to_string();
    if !unstopped.is_empty() {
        let list: Vec<String> = unstopped
            .iter()
            .map(|(i, arn, e)| format!("shard {i} ({}): {e}", Outside::new(arn).shown(200)))
            .collect();
        message.push_str(&format!("; could NOT stop {}", list.join("; ")));
        hint = format!(
            "stop them yourself: aws ecs stop-task --cluster CLUSTER --task ARN (startedBy {})",
            tasks::STARTED_BY
        );
    }
    if code == Code::Interrupted {
        ui.set_interrupt_note(message.clone(), hint.clone());
    }
    Failure::new(code, message).hint(hint).into()
}

/// Each shard's document, or why it is missing; the streams are read side by side, so a
/// missing one costs its wait once, not once per shard.
pub(crate) async fn collect(
    engine: &Engine,
    place: &plan::LogPlace,
    tasks: &[ShardTask],
    k: u32,
    ui: &Ui,
) -> Vec<(u32, Result<serde_json::Value, String>)> {
    let reads = tasks.iter().map(|t| async move {
        let got = match &t.state {
            State::Stopped { exit: None, reason } => Err(format!(
                "its task stopped before the container ran: {reason}"
            )),
            State::Stopped {
                exit: Some(code),
                reason,
            } => {
                let stream = place.stream(t.task_id());
                logs::fetch(
                    &engine.logs,
                    &place.group,
                    &stream,
                    engine.log_wait,
                    engine.poll,
                )
                .await
                .map_err(|e| {
                    format!(
                        "{e} (task {}: {})",
                        t.task_id(),
                        progress::stopped_text(Some(*code), reason)
                    )
                })
            }
            _ => Err("its task had not stopped".to_string()),
        };
        (t.index, got)
    });
    let docs = futures_util::future::join_all(reads).await;
    for (i, got) in &docs {
        if let Err(why) = got {
            ui.warn(format!("shard {i}/{k}: no document: {why}"));
        }
    }
    docs
}

/// The merge of every document, as `report merge` ends; a missing one names the shard.
fn finish(
    docs: Vec<(u32, Result<serde_json::Value, String>)>,
    args: &VerifyArgs,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let parts = parts_of_docs(docs)?;
    crate::merge_cmd::conclude_parts(&parts, None, args.junit.as_deref(), ui)
}

/// Every shard's part, or the error naming the shards whose document is missing.
pub(crate) fn parts_of_docs(
    docs: Vec<(u32, Result<serde_json::Value, String>)>,
) -> anyhow::Result<Vec<crate::gateway::probe::shard::ShardPart>> {
    let k = docs.len();
    let missing: Vec<String> = docs
        .iter()
        .filter_map(|(i, d)| d.as_ref().err().map(|why| format!("shard {i}/{k}: {why}")))
        .collect();
    if !missing.is_empty() {
        return Err(Failure::failed(format!(
            "--on-ecs: the merge is missing {} of {k} shard report(s), so no verdict on all N: {}",
            missing.len(),
            missing.join("; ")
        ))
        .hint("read the tasks' logs (stream PREFIX/CONTAINER/TASK_ID) for why; every task has stopped")
        .into());
    }
    let mut parts = Vec::new();
    for (i, d) in docs {
        let text = serde_json::to_string(&d.expect("checked above")).unwrap_or_default();
        parts.extend(crate::merge_cmd::parts_of(
            &format!("shard {i}/{k}'s log stream"),
            &text,
        )?);
    }
    Ok(parts)
}
