//! `--under-load N` (`deploy`, `full`): N Socket.IO sessions opened through the load balancer
//! before the rollout starts, held through the whole watch with reconnects (as chat clients
//! reconnect when their task goes away), kept a while longer once the rollout succeeded (the
//! settle time, so the cuts at the end of draining are seen), then the disruption this deploy
//! caused, reported beside the rollout.
//!
//! It sits above both halves it joins, as `verify_cmd` does above `verify` and `probe`: the
//! probe (`gateway::probe`, which knows nothing of ECS) is told the phases through its
//! [`probe::Control`], and the rollout (`ecs::deploy::execute`, which knows nothing of the
//! gateway) is just a future run beside it. An interrupt (Ctrl-C, SIGTERM) while the sessions
//! are held lets the run wrap up (`Ui::wrap_up_on_interrupt`): the watch stops (the rollout goes
//! on in AWS), the sessions close, and what was seen is reported.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::cli::UnderLoadFlags;
use crate::config::Config;
use crate::exit::{Code, Failure};
use crate::gateway::probe::{self, OpenFiles, ProbeReport, ProbeSettings, ReconnectSettings};
use crate::gateway::{fmt_duration, VerifySettings};
use crate::report::{self, Check, CheckStatus, Step};
use crate::ui::Ui;

pub mod on_ecs;

/// Largest `--settle`.
pub const MAX_SETTLE: Duration = Duration::from_secs(3600);
/// The target group attribute the settle time's default starts from.
pub const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
/// AWS's default deregistration delay, when the attribute cannot be read.
pub const AWS_DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);
/// The checks of the `under-load` step, in order.
const CHECKS: [&str; 4] = ["open", "disruption", "reconnect", "close"];

/// `--under-load` validated: what to open and how.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub verify: VerifySettings,
    pub probe: ProbeSettings,
    /// `--settle`; `None`: the default, from the target group's deregistration delay.
    pub settle: Option<Duration>,
    pub open_files: Option<OpenFiles>,
    /// The held sessions' live numbers, for a gate judging production during bake times.
    pub live: probe::LiveLoad,
    /// The load probe a gate runs against green before production traffic: N sessions at
    /// `[gateway] test_url` (else `url`), held the probe's default time, then closed.
    pub green: (VerifySettings, ProbeSettings),
    /// `--on-ecs`: the sessions are held by Fargate tasks, not this process.
    pub on_ecs: Option<on_ecs::OnEcs>,
}

impl LoadSettings {
    /// `judge` with the held sessions' thresholds added to its production judgements.
    pub fn gate(
        &self,
        judge: crate::ecs::native::gate::GateJudge,
    ) -> crate::ecs::native::gate::GateJudge {
        match self.probe.reconnect {
            // Shards on ECS are not read live: their verdict comes after the rollout.
            _ if self.on_ecs.is_some() => judge,
            Some(r) => {
                crate::gate_judge::with_load(judge, self.live.clone(), r.limits, self.green.clone())
            }
            None => judge,
        }
    }
}

/// The settle time when `--settle` is not given: the deregistration delay (the cuts come at
/// its end), two heartbeat intervals (so the sessions that came back show their new target in
/// a heartbeat), and 5 s.
pub fn default_settle(deregistration_delay: Duration, heartbeat_interval: Duration) -> Duration {
    (deregistration_delay + heartbeat_interval * 2 + Duration::from_secs(5)).min(MAX_SETTLE)
}

/// The deregistration delay among target group attributes.
pub fn deregistration_delay(attributes: &BTreeMap<String, String>) -> Option<Duration> {
    attributes
        .get(DEREGISTRATION_DELAY)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Validates `--under-load` and its flags before anything is called (usage errors, exit 2):
/// `None` without `--under-load` (then none of its flags may be given). `watch_timeout` bounds
/// the rollout, so a minted token is made to outlive it.
pub fn settings(
    flags: &UnderLoadFlags,
    cfg: &Config,
    url: Option<&str>,
    allow_insecure_token: bool,
    watch_timeout: Duration,
    verb: &str,
) -> anyhow::Result<Option<LoadSettings>> {
    let Some(n) = flags.under_load else {
        if let Some(flag) = flags.stray() {
            return Err(Failure::usage(format!("{flag} needs --under-load"))
                .hint(
                    "--under-load N holds N sessions through the rollout; its settings go with it",
                )
                .into());
        }
        return Ok(None);
    };
    let gw = cfg.gateway_or_url(verb, url)?;
    // A gate's probe of green still runs here.
    let gated = cfg
        .ecs
        .as_ref()
        .and_then(|e| e.deployment.as_ref())
        .is_some_and(|d| d.gate.is_some());
    // Shards on ECS read their token from the task definition: without a gate this process
    // opens no session and needs none.
    let mut here = gw.clone().into_owned();
    if flags.load_on_ecs && !gated {
        here.token_env = None;
        here.jwt_secret_env = None;
    }
    let mut verify = VerifySettings::from_config(&here, url, allow_insecure_token)?;
    let reconnect = ReconnectSettings::from_flags(&flags.reconnect)?;
    let probe = ProbeSettings::under_load(n, flags.concurrency, flags.rate, reconnect, &verify)?;
    if let Some(s) = flags.settle {
        if s > MAX_SETTLE {
            return Err(
                Failure::usage(format!("--settle {} is too long", fmt_duration(s)))
                    .hint("settle for at most 1h")
                    .into(),
            );
        }
    }
    // Sessions reconnect until the end: opening, the watch (and a rollback's), the settle.
    let lives = probe.budget().open + watch_timeout * 2 + MAX_SETTLE;
    verify.remint_for(&here, lives);
    let mut green_verify = verify.clone();
    if let Some(t) = &gw.test_url {
        green_verify.url = t.clone();
    }
    let green_args = crate::cli::VerifyArgs {
        connections: Some(n),
        concurrency: flags.concurrency,
        rate: flags.rate,
        ..crate::cli::VerifyArgs::default()
    };
    let green_probe = ProbeSettings::from_args(&green_args, &green_verify)?;
    let on_ecs = on_ecs::settings(flags, cfg, &gw, n, lives)?;
    // This process opens the sessions, unless tasks on ECS hold them (a gate's probe of green
    // still runs here).
    let here = if on_ecs.is_some() { 0 } else { n };
    let open_files = probe::ensure_open_files(if gated { here.saturating_add(n) } else { here })?;
    Ok(Some(LoadSettings {
        verify,
        probe,
        settle: flags.settle,
        open_files,
        live: probe::LiveLoad::default(),
        green: (green_verify, green_probe),
        on_ecs,
    }))
}

/// A rollout's result that knows the moments inside it (a native deployment's stages, as Unix
/// ms and a label), for placing the shards' drops (`--on-ecs`).
pub trait Staged {
    fn stages(&self) -> Vec<(i64, String)>;
}

impl Staged for crate::ecs::deploy::DeployResult {
    fn stages(&self) -> Vec<(i64, String)> {
        self.native
            .as_ref()
            .map(|n| stage_moments(&n.stages))
            .unwrap_or_default()
    }
}

/// The stages' starts as moments; a start that is not a time is left out.
fn stage_moments(stages: &[crate::ecs::native::stages::StageSpan]) -> Vec<(i64, String)> {
    stages
        .iter()
        .filter_map(|s| {
            let ms = crate::duration::unix_ms(&s.started)?;
            Some((
                ms,
                format!("stage {}", crate::outside::Outside::new(&s.name).shown(60)),
            ))
        })
        .collect()
}

impl<E> Staged for (crate::ecs::deploy::DeployResult, E) {
    fn stages(&self) -> Vec<(i64, String)> {
        self.0.stages()
    }
}

impl<E, D> Staged for (crate::ecs::deploy::DeployResult, E, D) {
    fn stages(&self) -> Vec<(i64, String)> {
        self.0.stages()
    }
}

impl Staged for () {
    fn stages(&self) -> Vec<(i64, String)> {
        Vec::new()
    }
}

/// How the rollout beside the sessions went, as the caller tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    Succeeded,
    /// Failed, superseded, timed out, or an error: the sessions stop at once.
    Failed,
}

/// What held the load: the probe's report, its checks, and how the run around it ended.
#[derive(Debug, Clone, Serialize)]
pub struct UnderLoad {
    pub connections: u32,
    pub status: CheckStatus,
    pub message: String,
    /// How long the sessions were held after the rollout succeeded.
    pub settle_ms: u64,
    /// The rollout was not started: no session opened (or an interrupt came first).
    pub rollout_started: bool,
    /// Ctrl-C or SIGTERM ended the run.
    pub interrupted: bool,
    pub duration_ms: u64,
    pub checks: Vec<Check>,
    /// The whole probe report; the disruption is under `probe.disruption`.
    pub probe: Option<ProbeReport>,
    /// `--on-ecs`: where the shards' drops fell against the rollout (before it, each native
    /// stage, after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<crate::gateway::probe::attribution::Attribution>,
    #[serde(skip)]
    pub error: Option<String>,
}

impl UnderLoad {
    /// The `under-load` step of `full` (and of `deploy`'s JUnit).
    pub fn step(&self) -> Step {
        let mut step = Step::new(
            "under-load",
            self.status,
            Duration::from_millis(self.duration_ms),
            self.message.clone(),
        )
        .with_checks(self.checks.clone());
        step.detail = serde_json::json!({
            "connections": self.connections,
            "settle_ms": self.settle_ms,
            "rollout_started": self.rollout_started,
            "interrupted": self.interrupted,
            "probe": self.probe,
            "attribution": self.attribution,
        });
        step
    }

    /// Exit 1 when a check failed (a threshold was exceeded), else 0.
    pub fn code(&self) -> Code {
        if self.status == CheckStatus::Fail {
            Code::Failed
        } else {
            Code::Success
        }
    }

    /// The checks and the from→to table, for text output.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&c.line());
            out.push('\n');
        }
        if let Some(d) = self.probe.as_ref().and_then(|p| p.disruption.as_ref()) {
            out.push_str(&probe::disruption::render_table(d));
        }
        if let Some(a) = &self.attribution {
            out.push_str(&crate::gateway::probe::attribution::table(a));
        }
        out.push_str(&format!("under load: {}\n", self.message));
        out
    }
}

/// The one-line account: `200 sessions through the rollout: 100 dropped (50%), 100 back in
/// p50 1.2 s / p99 2.1 s / max 2.3 s, 0 lost; 200 of 200 ended on new targets`.
fn headline(p: &ProbeReport, interrupted: bool) -> String {
    let Some(d) = &p.disruption else {
        return format!("{} of {} sessions opened", p.opened, p.connections);
    };
    let mut m = format!(
        "{} session(s) through the rollout: {} dropped ({}%), {} back",
        d.opened, d.dropped.sessions, d.dropped.percent, d.reconnected
    );
    if let Some(t) = &d.reconnect {
        m += &format!(
            " in p50 {} / p99 {} / max {}",
            fmt_duration(Duration::from_millis(t.p50_ms)),
            fmt_duration(Duration::from_millis(t.p99_ms)),
            fmt_duration(Duration::from_millis(t.max_ms))
        );
    }
    m += &format!(", {} lost", d.lost);
    if let Some(t) = &d.targets {
        m += &format!(
            "; {} of {} ended on new targets",
            t.ended_on_new, t.open_at_end
        );
        if t.ended_on_old > 0 {
            m += &format!(", {} on old ones", t.ended_on_old);
        }
    }
    if interrupted {
        m += " (interrupted: what was seen until then)";
    }
    m
}

/// The step's checks: opening, the two disruption verdicts, the close.
fn step_checks(p: &ProbeReport) -> Vec<Check> {
    let mut checks: Vec<Check> = probe::checks(p)
        .into_iter()
        .filter(|c| CHECKS.contains(&c.name.as_str()))
        .map(crate::gateway::redact)
        .collect();
    checks.sort_by_key(|c| CHECKS.iter().position(|n| *n == c.name));
    checks
}

/// Runs `rollout` (a future not yet started) with the sessions of `load` held around it:
/// opens them first (when none opens, the rollout is not started), marks the start, awaits the
/// rollout while the sessions reconnect as they are dropped, then holds `settle` more when
/// `outcome` says it succeeded, and ends. Returns the rollout's output (`None` when it was not
/// started or was interrupted) and the load's account.
pub async fn around<T, F>(
    aws: &crate::aws::Aws,
    load: &LoadSettings,
    settle: Duration,
    ui: &Ui,
    rollout: F,
    outcome: impl Fn(&T) -> Rollout,
) -> (Option<T>, UnderLoad)
where
    F: Future<Output = T>,
    T: Staged,
{
    if let Some(e) = &load.on_ecs {
        return match crate::probe_ecs::Engine::of(aws, &e.section) {
            Ok(engine) => on_ecs::around(&engine, e, load, settle, ui, rollout, outcome).await,
            Err(err) => {
                let why = crate::exit::message_of(&err);
                let n = load.probe.connections;
                (None, on_ecs::failed(n, Instant::now(), false, false, why))
            }
        };
    }
    let started = Instant::now();
    let _wrap_up = ui.wrap_up_on_interrupt();
    let n = load.probe.connections;
    ui.line(format!(
        "under load: opening {n} session(s) through {} before the rollout (concurrency {}); they reconnect when dropped and are held {} after it succeeds",
        load.verify.shown_url(),
        load.probe.concurrency,
        fmt_duration(settle)
    ));
    let (control, controls) = probe::control_with(load.live.clone());
    let probed = probe::probe_controlled(&load.verify, &load.probe, ui, load.open_files, controls);
    let beside = drive(control, n, settle, ui, rollout, outcome);
    let (report, driven) = tokio::join!(probed, beside);
    let mut under = account(n, report, &driven);
    under.duration_ms = started.elapsed().as_millis() as u64;
    (driven.result, under)
}

/// How the rollout beside the sessions went, from their side.
struct Driven<T> {
    result: Option<T>,
    rollout_started: bool,
    interrupted: bool,
    /// How long the sessions were held after the rollout succeeded.
    settled: Duration,
}

/// Beside the probe: waits for the sessions to open, runs the rollout, holds the settle time
/// when it succeeded, and tells the probe when to end (at once on an interrupt).
async fn drive<T, F>(
    mut control: probe::Control,
    n: u32,
    settle: Duration,
    ui: &Ui,
    rollout: F,
    outcome: impl Fn(&T) -> Rollout,
) -> Driven<T>
where
    F: Future<Output = T>,
{
    let mut interrupted = false;
    let opened = tokio::select! {
        o = control.opened() => o,
        () = ui.interrupted() => {
            interrupted = true;
            None
        }
    };
    let Some(opened) = opened.filter(|o| o.opened > 0) else {
        control.end(Duration::ZERO, None);
        return Driven {
            result: None,
            rollout_started: false,
            interrupted,
            settled: Duration::ZERO,
        };
    };
    ui.line(format!(
        "under load: {} of {n} session(s) open in {}; starting the rollout",
        opened.opened,
        fmt_duration(opened.took)
    ));
    control.rollout_started();
    let result = tokio::select! {
        r = rollout => Some(r),
        () = ui.interrupted() => {
            interrupted = true;
            None
        }
    };
    // The watch stops on the interrupt itself, with its own error.
    interrupted |= ui.is_interrupted();
    let (held, succeeded) = match result.as_ref().map(&outcome) {
        Some(Rollout::Succeeded) => (settle, Some(true)),
        Some(Rollout::Failed) => (Duration::ZERO, Some(false)),
        None => (Duration::ZERO, None),
    };
    control.end(held, succeeded);
    let mut settled = held;
    if held > Duration::ZERO {
        ui.line(format!(
            "under load: rollout succeeded; holding the sessions {} more (settle)",
            fmt_duration(held)
        ));
        let t = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(held) => {}
            () = ui.interrupted() => {
                interrupted = true;
                settled = t.elapsed();
                control.end(Duration::ZERO, succeeded);
            }
        }
    }
    Driven {
        result,
        rollout_started: true,
        interrupted,
        settled,
    }
}

/// The load's account: the probe's report (or why there is none) with what the rollout beside
/// it did to the verdict (an interrupt fails the step).
fn account<T>(n: u32, report: anyhow::Result<ProbeReport>, driven: &Driven<T>) -> UnderLoad {
    let mut under = UnderLoad {
        connections: n,
        status: CheckStatus::Fail,
        message: String::new(),
        settle_ms: driven.settled.as_millis() as u64,
        rollout_started: driven.rollout_started,
        interrupted: driven.interrupted,
        duration_ms: 0,
        checks: Vec::new(),
        probe: None,
        attribution: None,
        error: None,
    };
    match report {
        Err(e) => {
            under.message = format!(
                "the sessions could not be opened: {}",
                crate::exit::message_of(&e)
            );
            under.error = Some(under.message.clone());
        }
        Ok(p) => {
            under.checks = step_checks(&p);
            under.message = headline(&p, driven.interrupted);
            if p.opened == 0 {
                under.message = format!(
                    "none of the {n} session(s) opened, so the rollout was not started{}",
                    failure_note(&p)
                );
                under.error = Some(under.message.clone());
            } else {
                under.status = report::worst(&under.checks);
            }
            under.probe = Some(p);
        }
    }
    if driven.interrupted {
        under.status = CheckStatus::Fail;
    }
    under
}

/// `: 10 × cannot connect: …` for a probe where nothing opened.
fn failure_note(p: &ProbeReport) -> String {
    p.failures
        .first()
        .map(|f| format!(": {} × {}", f.count, f.cause))
        .unwrap_or_default()
}

/// The settle time for a run: `--settle`, else [`default_settle`] from the deregistration
/// delay given (a warning and AWS's default when it is not known).
pub fn settle_for(load: &LoadSettings, deregistration: Option<Duration>, ui: &Ui) -> Duration {
    if let Some(s) = load.settle {
        return s;
    }
    let delay = deregistration.unwrap_or_else(|| {
        ui.warn(format!(
            "--under-load: the target group's {DEREGISTRATION_DELAY} could not be read; the settle time assumes AWS's default of 300 s (--settle sets it)"
        ));
        AWS_DEFAULT_DEREGISTRATION_DELAY
    });
    default_settle(delay, load.verify.heartbeat_interval)
}

/// The load's JSON beside the rollout's (`deploy --output json`, key `under_load`).
pub fn json(u: &UnderLoad) -> Value {
    serde_json::to_value(u).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_stages_become_moments() {
        use crate::ecs::native::stages::StageSpan;
        let span = |name: &str, started: &str| StageSpan {
            name: name.into(),
            started: started.into(),
            ended: None,
        };
        let m = stage_moments(&[
            span("BAKE_TIME", "2026-12-05T10:00:01.500Z"),
            span("X", "not a time"),
        ]);
        assert_eq!(m, [(1_796_464_801_500, "stage BAKE_TIME".to_string())]);
    }

    #[test]
    fn settle_defaults_to_the_drain_plus_two_heartbeats() {
        let s = Duration::from_secs;
        assert_eq!(default_settle(s(30), s(30)), s(95));
        assert_eq!(default_settle(s(3), s(5)), s(18));
        assert_eq!(default_settle(s(0), Duration::from_millis(1500)), s(8));
        assert_eq!(default_settle(s(3600), s(600)), MAX_SETTLE);
        let mut attrs = BTreeMap::new();
        assert_eq!(deregistration_delay(&attrs), None);
        attrs.insert(DEREGISTRATION_DELAY.to_string(), "30".to_string());
        assert_eq!(deregistration_delay(&attrs), Some(s(30)));
        attrs.insert(DEREGISTRATION_DELAY.to_string(), "abc".to_string());
        assert_eq!(deregistration_delay(&attrs), None);
    }
}
