//! `deploy`/`full --under-load N --shards K --on-ecs`: the N sessions held by K Fargate tasks
//! of bosar-deploy's own image (`[probe.ecs]`, as `verify --on-ecs` starts them) instead of
//! this process, for more sessions than one machine holds.
//!
//! The order of a run: the task definition checked; K tasks started with RunTask, each
//! `verify --connections N --shard I/K --start-at T --reconnect --until-stopped`; the rollout
//! started once every task runs and the shards' open time from T has passed; after it (and the
//! settle time when it succeeded) every task stopped with StopTask, which the shards take as
//! the planned end of their hold; their documents read from CloudWatch Logs and merged, the
//! disruption counted from the rollout's start as `report merge --deploy` counts it. Every task
//! started is stopped on every path, and the ones that could not be are named.
//!
//! Fail closed: a shard that does not run, stops early or sends no document leaves the step
//! failed, never a verdict on fewer sessions than asked. A gate cannot read ECS shards live, so
//! with `--on-ecs` its production judgements go without the held sessions' numbers.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use super::{headline, step_checks, LoadSettings, Rollout, UnderLoad};
use crate::cli::{UnderLoadFlags, VerifyArgs};
use crate::config::{Config, GatewaySection, ProbeEcsSection};
use crate::exit::{message_of, Failure};
use crate::gateway::probe::attribution::RolloutWindow;
use crate::gateway::probe::{merge, shard};
use crate::probe_ecs::logs::Progress;
use crate::probe_ecs::progress::{self, ShardTask, State};
use crate::probe_ecs::{plan, tasks, Engine, Watched};
use crate::report::{self, CheckStatus};
use crate::ui::Ui;

/// Where and how the shards run, validated before anything is called.
#[derive(Debug, Clone)]
pub struct OnEcs {
    pub k: u32,
    pub section: ProbeEcsSection,
    pub gateway: GatewaySection,
    /// The flags every shard runs with (its share and start time are added per task).
    pub args: VerifyArgs,
    /// The `deploy.toml` a shard reads: `[gateway]` only, variable names, never values.
    pub config_toml: String,
}

/// `--shards K --on-ecs` checked (usage errors, exit 2, before any call); `None` without
/// `--on-ecs`. `lives` bounds a shard's hold: it outlasts the opening, the rollout and the settle.
pub fn settings(
    flags: &UnderLoadFlags,
    cfg: &Config,
    gw: &GatewaySection,
    n: u32,
    lives: Duration,
) -> anyhow::Result<Option<OnEcs>> {
    if !flags.load_on_ecs {
        if flags.load_shards.is_some() {
            return Err(Failure::usage("--shards needs --on-ecs")
                .hint("with --on-ecs, bosar-deploy starts the K shards as Fargate tasks; for shards in a CI matrix, run `verify --connections N --shard I/K --reconnect` beside the deploy and `report merge --deploy`")
                .into());
        }
        return Ok(None);
    }
    let Some(section) = cfg.probe_ecs.clone() else {
        return Err(Failure::usage(format!(
            "--on-ecs: {} has no [probe.ecs] section: where to start the shards",
            cfg.path.display()
        ))
        .hint(crate::probe_ecs::ADD_PROBE_ECS)
        .into());
    };
    if url::Url::parse(&gw.url).is_ok_and(|u| u.password().is_some()) {
        return Err(Failure::usage("--on-ecs: the gateway URL carries a password, which would travel in the tasks' command line and config")
            .hint("give the shards a URL without user info; the token comes from the task definition's `secrets`")
            .into());
    }
    let k = flags.load_shards.unwrap_or(1);
    if n < k {
        return Err(Failure::usage(format!(
            "--shards {k}: {n} session(s) leave some shards none"
        ))
        .hint("use at most as many shards as --under-load")
        .into());
    }
    let args = VerifyArgs {
        connections: Some(n),
        concurrency: flags.concurrency,
        rate: flags.rate,
        hold: Some(lives.min(Duration::from_secs(24 * 3600))),
        // As `--under-load` here: the disruption's thresholds gate, not the error rate.
        max_error_rate: Some(1.0),
        reconnect: true,
        until_stopped: true,
        comeback: flags.reconnect.clone(),
        ..VerifyArgs::default()
    };
    Ok(Some(OnEcs {
        k,
        config_toml: plan::shard_config(cfg, gw),
        section,
        gateway: gw.clone(),
        args,
    }))
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// An error as the step's message: what happened and, when it says one, what to do next (a
/// task that could not be stopped names the command that stops it).
fn said(err: &anyhow::Error) -> String {
    match crate::exit::hint_of(err) {
        Some(hint) => format!("{}; {hint}", message_of(err)),
        None => message_of(err),
    }
}

/// An account of a run whose rollout never started (`why`), or that ended without a verdict.
pub(super) fn failed(
    n: u32,
    started: Instant,
    rollout_started: bool,
    interrupted: bool,
    why: String,
) -> UnderLoad {
    UnderLoad {
        connections: n,
        status: CheckStatus::Fail,
        message: why.clone(),
        settle_ms: 0,
        rollout_started,
        interrupted,
        duration_ms: started.elapsed().as_millis() as u64,
        checks: Vec::new(),
        probe: None,
        attribution: None,
        error: Some(why),
    }
}

/// How long after `--start-at` every shard has its share open: its own open budget (the
/// handshake timeout and the share at `--rate`, at least 100 a second).
fn open_time(load: &LoadSettings, e: &OnEcs) -> Duration {
    let mut ps = load.probe.clone();
    ps.connections = load.probe.connections.div_ceil(e.k);
    ps.budget().open
}

/// Runs `rollout` with the N sessions held by K tasks on ECS (through `engine`'s clients);
/// as [`super::around`].
pub async fn around<T, F>(
    engine: &Engine,
    e: &OnEcs,
    load: &LoadSettings,
    settle: Duration,
    ui: &Ui,
    rollout: F,
    outcome: impl Fn(&T) -> Rollout,
) -> (Option<T>, UnderLoad)
where
    F: Future<Output = T>,
    T: super::Staged,
{
    let started = Instant::now();
    let _wrap_up = ui.wrap_up_on_interrupt();
    // An interrupt must leave time to stop every task (StopTask, 10 at once, retried).
    ui.need_wrap_up(crate::probe_ecs::STOP_WRAP_UP);
    let n = load.probe.connections;
    let (tasks, place) = match start(engine, e, load, ui).await {
        Ok(t) => t,
        Err(why) => return (None, failed(n, started, false, ui.is_interrupted(), why)),
    };
    // The rollout, timed on the wall clock for the merge.
    let rollout_started = unix_ms(SystemTime::now());
    ui.line(format!(
        "under load: {n} session(s) open in {} shard task(s); starting the rollout",
        e.k
    ));
    let result = tokio::select! {
        r = rollout => Some(r),
        () = ui.interrupted() => None,
    };
    let rollout_ended = unix_ms(SystemTime::now());
    let succeeded = result.as_ref().map(&outcome) == Some(Rollout::Succeeded);
    let (settled, interrupted) = settle_time(succeeded, settle, ui).await;
    let why = if interrupted {
        "bosar-deploy: interrupted"
    } else {
        "bosar-deploy: the rollout settled; the shard's hold ends"
    };
    let unstopped = tasks::stop_all(&engine.ecs, &e.section.cluster, &tasks, why).await;
    let mut under = if interrupted {
        let err = crate::probe_ecs::ended(
            ui,
            crate::exit::Code::Interrupted,
            "interrupted (Ctrl-C or SIGTERM)",
            &tasks,
            &unstopped,
        );
        failed(n, started, true, true, said(&err))
    } else if !unstopped.is_empty() {
        let err = crate::probe_ecs::ended(
            ui,
            crate::exit::Code::Failed,
            "the rollout ended",
            &tasks,
            &unstopped,
        );
        failed(n, started, true, false, said(&err))
    } else {
        let window = RolloutWindow {
            name: "this rollout".into(),
            started_unix_ms: rollout_started,
            ended_unix_ms: Some(rollout_ended),
            moments: result.as_ref().map(|r| r.stages()).unwrap_or_default(),
        };
        conclude(engine, e, &place, tasks, &window, ui)
            .await
            .unwrap_or_else(|why| failed(n, started, true, false, why))
    };
    under.settle_ms = settled.as_millis() as u64;
    under.duration_ms = started.elapsed().as_millis() as u64;
    (result, under)
}

/// After a rollout that succeeded, the shards hold `settle` more (an interrupt cuts it
/// short). Returns how long they did, and whether the run was interrupted.
async fn settle_time(succeeded: bool, settle: Duration, ui: &Ui) -> (Duration, bool) {
    if !succeeded || ui.is_interrupted() {
        return (Duration::ZERO, ui.is_interrupted());
    }
    ui.line(format!(
        "under load: rollout succeeded; the shards hold {} more (settle)",
        crate::gateway::fmt_duration(settle)
    ));
    let t = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(settle) => (t.elapsed(), false),
        () = ui.interrupted() => (t.elapsed(), true),
    }
}

/// Checks the task definition, starts the K tasks and waits until their sessions are open;
/// on any failure the tasks started are stopped and the error says why (and any not stopped).
async fn start(
    engine: &Engine,
    e: &OnEcs,
    load: &LoadSettings,
    ui: &Ui,
) -> Result<(Vec<ShardTask>, plan::LogPlace), String> {
    let (td_arn, facts) = tasks::describe_container(&engine.ecs, &e.section)
        .await
        .map_err(|err| format!("--on-ecs: {}", said(&err)))?;
    let td_shown = crate::outside::Outside::new(&td_arn).shown(200);
    let place = plan::check_container(&td_shown, &facts, &e.gateway, &e.section)
        .map_err(|missing| format!("--on-ecs: {}; no task was started", missing.join("; ")))?;
    let n = load.probe.connections;
    let now = SystemTime::now();
    let start_at = plan::start_at(None, now, &e.section);
    let orders = plan::orders(&e.args, &e.config_toml, n, e.k, &start_at);
    ui.line(format!(
        "under load: starting {} shard task(s) of {td_shown} on cluster {} to hold {n} session(s), opening at {start_at}",
        e.k,
        crate::outside::Outside::new(&e.section.cluster).shown(100)
    ));
    let mut started =
        crate::probe_ecs::start_all(engine, &e.section, &td_arn, &place.container, &orders, ui)
            .await
            .map_err(|err| said(&err))?;
    let open_by = shard::parse_start_at(&start_at).unwrap_or(now) + open_time(load, e);
    match wait_open(engine, e, &place, &mut started, open_by, ui).await {
        Ok(()) => Ok((started, place)),
        Err(why) => {
            let code = if ui.is_interrupted() {
                crate::exit::Code::Interrupted
            } else {
                crate::exit::Code::Failed
            };
            let unstopped = tasks::stop_all(
                &engine.ecs,
                &e.section.cluster,
                &started,
                "bosar-deploy: the shards did not all open",
            )
            .await;
            Err(said(&crate::probe_ecs::ended(
                ui, code, &why, &started, &unstopped,
            )))
        }
    }
}

/// Polls the tasks until every one runs and `open_by` has passed; a task that stops first,
/// tasks not running within `[probe.ecs] start_delay` after it, or an interrupt end the wait.
async fn wait_open(
    engine: &Engine,
    e: &OnEcs,
    place: &plan::LogPlace,
    tasks: &mut [ShardTask],
    open_by: SystemTime,
    ui: &Ui,
) -> Result<(), String> {
    let k = e.k;
    // On the monotonic clock from here (the wall clock only placed the start time).
    let open_at = tokio::time::Instant::now()
        + open_by
            .duration_since(SystemTime::now())
            .unwrap_or_default();
    let give_up = open_at + e.section.start_delay;
    let mut waiting_said = false;
    let mut progress_read = None;
    loop {
        let before: Vec<State> = tasks.iter().map(|t| t.state.clone()).collect();
        let mut list = tasks.to_vec();
        crate::probe_ecs::read_progress(engine, place, &mut list, k, &mut progress_read, ui).await;
        if let Err(err) =
            tasks::refresh(&engine.ecs, &e.section.cluster, &place.container, &mut list).await
        {
            ui.warn(format!("{} (trying again at the next poll)", said(&err)));
        }
        tasks.clone_from_slice(&list);
        for (t, b) in tasks.iter().zip(&before) {
            if let Some(line) = progress::transition(t, k, b) {
                ui.line(line);
            }
        }
        if let Some(why) = stopped_early(tasks, k) {
            return Err(why);
        }
        let running = tasks.iter().all(|t| t.state == State::Running);
        // Every shard says it holds: its opening is over (those that failed to open are in
        // its report), so the rollout need not wait out the open budget.
        let holding = tasks
            .iter()
            .all(|t| matches!(t.progress, Some(Progress::Holding { .. })));
        let now = tokio::time::Instant::now();
        if running && (holding || now >= open_at) {
            return Ok(());
        }
        if !running && now >= give_up {
            return Err(format!(
                "not every shard task was running {} after the shards' open time ({})",
                crate::gateway::fmt_duration(e.section.start_delay),
                progress::summary(tasks)
            ));
        }
        if running && !waiting_said {
            ui.line(format!(
                "under load: every shard task runs; the rollout starts once their sessions are open, at {}",
                humantime::format_rfc3339_seconds(open_by)
            ));
            waiting_said = true;
        }
        let nap = if running {
            open_at.saturating_duration_since(now).min(engine.poll)
        } else {
            engine.poll
        };
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = ui.interrupted() => return Err("interrupted (Ctrl-C or SIGTERM)".into()),
        }
    }
}

/// The first shard whose task stopped while the others open, with ECS's words.
fn stopped_early(tasks: &[ShardTask], k: u32) -> Option<String> {
    tasks.iter().find_map(|t| match &t.state {
        State::Stopped { exit, reason } => Some(format!(
            "shard {}/{k} stopped before the rollout: {}",
            t.index,
            progress::stopped_text(*exit, reason)
        )),
        _ => None,
    })
}

/// After StopTask: waits for every task to stop, reads and merges the documents, counts the
/// disruption from the rollout's start; `Err`: why there is no verdict.
async fn conclude(
    engine: &Engine,
    e: &OnEcs,
    place: &plan::LogPlace,
    tasks: Vec<ShardTask>,
    window: &RolloutWindow,
    ui: &Ui,
) -> Result<UnderLoad, String> {
    let tasks = match crate::probe_ecs::watch(engine, &e.section, place, tasks, e.k, ui).await {
        Watched::Done(tasks) => tasks,
        Watched::Ended(tasks, code, why) => {
            let unstopped = tasks::stop_all(&engine.ecs, &e.section.cluster, &tasks, &why).await;
            return Err(said(&crate::probe_ecs::ended(
                ui, code, &why, &tasks, &unstopped,
            )));
        }
    };
    let docs = crate::probe_ecs::collect(engine, place, &tasks, e.k, ui).await;
    let parts = crate::probe_ecs::parts_of_docs(docs).map_err(|err| said(&err))?;
    let mut merged =
        merge::merge(&parts).map_err(|why| format!("the shards' reports do not merge: {why}"))?;
    merged.against(&parts, window)?;
    let report = merged.report();
    let attribution = merged.attribution.as_ref().expect("placed above");
    let mut checks = step_checks(&report);
    checks.push(crate::gateway::probe::attribution::check(attribution));
    if report.interrupted {
        // A shard stopped before its hold (the planned end is no interrupt): not all held.
        return Err(
            "a shard was interrupted before its hold: its sessions were not all held through the rollout"
                .into(),
        );
    }
    let n = report.connections;
    let mut message = headline(&report, false);
    message.push_str(&format!(" ({} shard task(s) on ECS)", e.k));
    Ok(UnderLoad {
        connections: n,
        status: if report.opened == 0 {
            CheckStatus::Fail
        } else {
            report::worst(&checks)
        },
        message,
        settle_ms: 0,
        rollout_started: true,
        interrupted: false,
        duration_ms: 0,
        checks,
        probe: Some(report),
        attribution: merged.attribution.clone(),
        error: None,
    })
}
