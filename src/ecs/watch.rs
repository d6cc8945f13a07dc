//! Watching a deployment to real success: polls DescribeServices at the configured interval
//! (not the SDK waiter, whose 15-120 s backoff has no progress hook and whose "stable" is
//! not "succeeded"), prints each change once and each new service event once, then
//! requires the target groups to hold the desired count of healthy targets.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::polls::PollRecord;
use super::rollout::{assess, DeploymentRef, Policy, ServiceView, Verdict};
use super::taskdef::revision_label;
use super::{describe_service, stopped_tasks, target_health, DescribeError};
use crate::aws::Aws;
use crate::exit::{Code, Failure};
use crate::outside::Outside;
use crate::ui::Ui;

/// What to follow: the deployment this run started, by id.
#[derive(Debug, Clone)]
pub struct WatchTarget {
    pub cluster: String,
    pub service: String,
    pub deployment_id: String,
    pub task_definition: String,
    /// The revision the service ran before ours, when this run started the deployment: a
    /// circuit-breaker rollback returns to it; any other new primary supersedes ours.
    pub previous_task_definition: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// With the circuit breaker off: fail at this many failed tasks (default twice desired).
    pub max_failed_tasks: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WatchOutcome {
    Succeeded {
        revision: String,
        elapsed_ms: u64,
        healthy_targets: u32,
    },
    /// Our deployment failed. `rolled_back_to`: the circuit breaker's rollback deployment.
    Failed {
        message: String,
        /// ECS's words (rolloutStateReason, events, stopped-task reasons): outside text.
        causes: Vec<Outside>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rolled_back_to: Option<DeploymentRef>,
    },
    /// Another deployment became primary while we watched: someone else's deploy.
    Superseded { message: String, by: DeploymentRef },
    TimedOut {
        message: String,
        state: Vec<String>,
        resume: String,
    },
}

impl WatchOutcome {
    pub fn code(&self) -> Code {
        match self {
            WatchOutcome::Succeeded { .. } => Code::Success,
            WatchOutcome::Failed { .. } | WatchOutcome::Superseded { .. } => Code::Failed,
            WatchOutcome::TimedOut { .. } => Code::TimedOut,
        }
    }
    pub fn succeeded(&self) -> bool {
        matches!(self, WatchOutcome::Succeeded { .. })
    }
    /// The payload's `result` (the one vocabulary of schema `$defs/result`).
    pub fn result(&self) -> &'static str {
        match self {
            WatchOutcome::Succeeded { .. } => "succeeded",
            WatchOutcome::Failed { .. } => "failed",
            WatchOutcome::Superseded { .. } => "superseded",
            WatchOutcome::TimedOut { .. } => "timed_out",
        }
    }
    pub fn message(&self) -> String {
        match self {
            WatchOutcome::Succeeded {
                revision,
                elapsed_ms,
                healthy_targets,
            } => format!(
                "deployment of {revision} succeeded in {}; {healthy_targets} healthy target(s)",
                crate::duration::format(Duration::from_millis(*elapsed_ms / 1000 * 1000))
            ),
            WatchOutcome::Failed { message, .. }
            | WatchOutcome::Superseded { message, .. }
            | WatchOutcome::TimedOut { message, .. } => message.clone(),
        }
    }
}

/// The command that resumes watching (printed on timeout and Ctrl-C), with the run's
/// `--config`, `--region` and `--profile`.
pub fn resume_command(ui: &Ui, t: &WatchTarget) -> String {
    ui.command(&format!(
        "wait --deployment {}",
        crate::ui::shell_quote(&t.deployment_id)
    ))
}

/// In CI, a line at least this often while nothing changes, so a log never looks hung.
const STILL_WAITING_EVERY: Duration = Duration::from_secs(60);

/// Progress: bars on a terminal, one timestamped line per change otherwise.
struct Display<'a> {
    ui: &'a Ui,
    multi: Option<indicatif::MultiProgress>,
    bars: HashMap<String, indicatif::ProgressBar>,
    last: HashMap<String, String>,
    seen_events: HashSet<String>,
    started: Instant,
    /// When the last line was printed (CI only).
    last_output: Instant,
}

impl<'a> Display<'a> {
    fn new(ui: &'a Ui, seen_events: HashSet<String>) -> Self {
        let multi = (ui.interactive && !ui.quiet).then(indicatif::MultiProgress::new);
        Display {
            ui,
            multi,
            bars: HashMap::new(),
            last: HashMap::new(),
            seen_events,
            started: Instant::now(),
            last_output: Instant::now(),
        }
    }

    fn println(&mut self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(crate::outside::clean(msg, console::colors_enabled_stderr()));
            }
            None => self.ui.line(msg),
        }
        self.last_output = Instant::now();
    }

    fn elapsed(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn show(&mut self, svc: &ServiceView, ours: &str) {
        for d in &svc.deployments {
            let tag = if d.id == ours { " (this deploy)" } else { "" };
            let line = format!("{}{tag}", d.summary());
            if let Some(m) = &self.multi {
                let bar = self.bars.entry(d.id.clone()).or_insert_with(|| {
                    let b = m.add(indicatif::ProgressBar::new(d.desired.max(1) as u64));
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{spinner:.cyan} {elapsed:>4} [{bar:20.green}] {msg}",
                        )
                        .unwrap()
                        .progress_chars("=> "),
                    );
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                bar.set_length(d.desired.max(1) as u64);
                bar.set_position(d.running.max(0) as u64);
                bar.set_message(crate::outside::clean(
                    &line,
                    console::colors_enabled_stderr(),
                ));
            } else if self.last.get(&d.id) != Some(&line) {
                let elapsed = self.elapsed();
                self.println(&format!("[{elapsed:>4}s] {line}"));
            }
            self.last.insert(d.id.clone(), line);
        }
        // Events arrive newest first; print the unseen ones oldest first.
        let fresh: Vec<_> = svc
            .events
            .iter()
            .filter(|e| !self.seen_events.contains(&e.id))
            .cloned()
            .collect();
        for e in fresh.into_iter().rev() {
            self.println(&format!("event {}: {}", e.created_at, e.message));
            self.seen_events.insert(e.id);
        }
    }

    /// In CI, "still waiting" once a minute when nothing else was printed.
    fn still_waiting(&mut self, ours: &str) {
        if self.multi.is_some() || self.last_output.elapsed() < STILL_WAITING_EVERY {
            return;
        }
        let state = self
            .last
            .get(ours)
            .cloned()
            .unwrap_or_else(|| "no answer from ECS yet".into());
        let elapsed = self.elapsed();
        self.println(&format!("[{elapsed:>4}s] still waiting: {state}"));
    }

    fn finish(&self) {
        for b in self.bars.values() {
            b.finish_and_clear();
        }
    }
}

/// Poll interval, doubled (to 30 s at most) while calls fail transiently.
struct Backoff {
    base: Duration,
    current: Duration,
}

impl Backoff {
    fn new(base: Duration) -> Backoff {
        Backoff {
            base,
            current: base,
        }
    }
    fn failed(&mut self) -> Duration {
        self.current = (self.current * 2)
            .min(Duration::from_secs(30))
            .max(self.base);
        self.current
    }
    fn reset(&mut self) {
        self.current = self.base;
    }
}

/// One poll's result.
enum Poll {
    Waiting,
    Done(WatchOutcome),
}

/// State carried between polls.
struct Watch<'a> {
    aws: &'a Aws,
    target: &'a WatchTarget,
    policy: Policy,
    start: Instant,
    last_svc: Option<ServiceView>,
    last_health: String,
    record: PollRecord,
}

impl Watch<'_> {
    /// DescribeServices, the verdict, and target health once ECS says completed.
    async fn poll(&mut self, display: &mut Display<'_>) -> Result<Poll, DescribeError> {
        let t = self.target;
        let svc = describe_service(self.aws, &t.cluster, &t.service).await?;
        display.show(&svc, &t.deployment_id);
        let ours = &t.deployment_id;
        let ours_rev = revision_label(&t.task_definition);
        let verdict = assess(&svc, ours, &self.policy);
        let outcome = match verdict {
            Verdict::InProgress => None,
            Verdict::Completed => self.healthy(&svc, &ours_rev, display).await?,
            Verdict::Failed { reason } => {
                let reason = reason.trim_end_matches('.');
                let message = format!("deployment {ours} ({ours_rev}) failed: {reason}");
                Some(self.failure(&svc, message, None).await)
            }
            Verdict::RolledBack { reason, to } => {
                let reason = reason.trim_end_matches('.');
                let message = format!(
                    "deployment {ours} ({ours_rev}) failed: {reason}; the circuit breaker rolled back to {} (deployment {})",
                    to.revision, to.id
                );
                Some(self.failure(&svc, message, Some(to)).await)
            }
            Verdict::Superseded { by } => Some(superseded(ours, &ours_rev, &svc, by)),
            Verdict::Vanished => {
                let message = format!("deployment {ours} ({ours_rev}) vanished from the service and nothing is primary");
                Some(self.failure(&svc, message, None).await)
            }
        };
        self.last_svc = Some(svc);
        Ok(outcome.map_or(Poll::Waiting, Poll::Done))
    }

    /// Success only once every target group holds the desired count of healthy targets.
    async fn healthy(
        &mut self,
        svc: &ServiceView,
        ours_rev: &str,
        display: &mut Display<'_>,
    ) -> Result<Option<WatchOutcome>, DescribeError> {
        let desired = svc
            .deployment(&self.target.deployment_id)
            .map(|d| d.desired)
            .unwrap_or(svc.desired)
            .max(0) as u32;
        let health = target_health(self.aws, &svc.target_group_arns).await?;
        let healthy = health.iter().map(|h| h.healthy).min().unwrap_or(desired);
        if health.iter().all(|h| h.healthy >= desired) {
            return Ok(Some(WatchOutcome::Succeeded {
                revision: ours_rev.to_string(),
                elapsed_ms: self.start.elapsed().as_millis() as u64,
                healthy_targets: healthy,
            }));
        }
        let line = format!(
            "ECS reports {ours_rev} completed; waiting for healthy targets: {healthy}/{desired}"
        );
        if line != self.last_health {
            display.println(&line);
            self.last_health = line;
        }
        Ok(None)
    }

    async fn failure(
        &self,
        svc: &ServiceView,
        message: String,
        rolled_back_to: Option<DeploymentRef>,
    ) -> WatchOutcome {
        let t = self.target;
        let mut causes = Vec::new();
        if let Some(d) = svc.deployment(&t.deployment_id) {
            if let Some(r) = &d.rollout_state_reason {
                causes.push(r.with_prefix("rolloutStateReason: "));
            }
            if d.failed_tasks > 0 {
                causes.push(Outside::new(&format!(
                    "{} task(s) of {} failed to start",
                    d.failed_tasks,
                    d.revision()
                )));
            }
        }
        causes.extend(
            svc.events
                .iter()
                .take(5)
                .map(|e| e.message.with_prefix(&format!("event {}: ", e.created_at))),
        );
        causes.extend(stopped_task_causes(self.aws, t).await);
        WatchOutcome::Failed {
            message,
            causes,
            rolled_back_to,
        }
    }

    fn timed_out(&self, ui: &Ui, timeout: Duration) -> WatchOutcome {
        let mut state: Vec<String> = self
            .last_svc
            .as_ref()
            .map(|s| s.deployments.iter().map(|d| d.summary()).collect())
            .unwrap_or_default();
        if !self.last_health.is_empty() {
            state.push(self.last_health.clone());
        }
        if self.last_svc.is_none() {
            state.push("no answer from ECS".to_string());
        }
        WatchOutcome::TimedOut {
            message: format!(
                "timed out after {} waiting for deployment {}{}; the rollout goes on in AWS",
                crate::duration::format(timeout),
                self.target.deployment_id,
                self.record.note()
            ),
            state,
            resume: resume_command(ui, self.target),
        }
    }
}

fn superseded(ours: &str, ours_rev: &str, svc: &ServiceView, by: DeploymentRef) -> WatchOutcome {
    let started = svc
        .deployment(&by.id)
        .map(|d| d.created_at.as_str())
        .filter(|c| !c.is_empty())
        .map(|c| format!(", started {c}"))
        .unwrap_or_default();
    WatchOutcome::Superseded {
        message: format!(
            "deployment {ours} ({ours_rev}) was superseded by deployment {} of {}{started}: another deploy took over the service; this run does not judge or undo it",
            by.id, by.revision
        ),
        by,
    }
}

/// The stopped tasks of ours as causes; a transient error is retried twice, and a cause that
/// cannot be read says so instead of failing the report.
async fn stopped_task_causes(aws: &Aws, t: &WatchTarget) -> Vec<Outside> {
    let mut wait = Duration::from_secs(1);
    for attempt in 0..3 {
        match stopped_tasks(aws, &t.cluster, &t.service, &t.task_definition).await {
            Ok(c) => return c,
            Err(DescribeError::Transient(m)) if attempt < 2 => {
                tokio::time::sleep(wait).await;
                wait *= 2;
                let _ = m;
            }
            Err(DescribeError::Transient(m)) => {
                return vec![Outside::new(&format!(
                    "the stopped tasks could not be read: {m}"
                ))]
            }
            Err(DescribeError::Fatal(e)) => {
                return vec![Outside::new(&format!(
                    "the stopped tasks could not be read: {e}"
                ))]
            }
        }
    }
    Vec::new()
}

/// The error that ends a watch on Ctrl-C or SIGTERM: exit 130, the rollout goes on in AWS.
fn interrupted(ui: &Ui, target: &WatchTarget) -> anyhow::Error {
    Failure::new(
        Code::Interrupted,
        format!(
            "interrupted: stopped watching deployment {}; the rollout goes on in AWS",
            target.deployment_id
        ),
    )
    .hint(format!(
        "resume watching with: {}",
        resume_command(ui, target)
    ))
    .into()
}

/// Follows `target` until success, failure, supersession or timeout. Throttling, 5xx and
/// network errors of any call are waited out with backoff, within the same timeout. Watching
/// changes nothing, so an interrupt (Ctrl-C, SIGTERM) ends it at once with an error of code
/// 130 naming the resume command, and the verb goes on to its reports.
pub async fn watch(
    aws: &Aws,
    target: &WatchTarget,
    opts: WatchOptions,
    ui: &Ui,
    seen_events: HashSet<String>,
) -> anyhow::Result<WatchOutcome> {
    let _wrap_up = ui.wrap_up_on_interrupt();
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut display = Display::new(ui, seen_events);
    let mut backoff = Backoff::new(opts.poll_interval);
    let mut w = Watch {
        aws,
        target,
        policy: Policy {
            previous_task_definition: target.previous_task_definition.clone(),
            max_failed_tasks: opts.max_failed_tasks,
        },
        start,
        last_svc: None,
        last_health: String::new(),
        record: PollRecord::default(),
    };
    let outcome = loop {
        // The deadline bounds every call of the poll: one that hangs is cancelled at it.
        let polled = tokio::select! {
            p = tokio::time::timeout_at(deadline, w.poll(&mut display)) => p,
            () = ui.interrupted() => {
                display.finish();
                return Err(interrupted(ui, target));
            }
        };
        let Ok(polled) = polled else {
            w.record.hung = true;
            break w.timed_out(ui, opts.timeout);
        };
        let wait = match polled {
            Ok(Poll::Done(outcome)) => break outcome,
            Ok(Poll::Waiting) => {
                w.record.answered += 1;
                backoff.reset();
                opts.poll_interval
            }
            Err(DescribeError::Transient(msg)) => {
                w.record.failure(&msg);
                let wait = backoff.failed();
                display.println(&format!(
                    "{msg}; retrying in {}",
                    crate::duration::format(wait)
                ));
                wait
            }
            Err(DescribeError::Fatal(e)) => {
                display.finish();
                ui.clear_resume_hint();
                return Err(e);
            }
        };
        let now = Instant::now();
        // A poll at the deadline would be cancelled at once: the last one is before it.
        if now + wait >= deadline {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = ui.interrupted() => {
                    display.finish();
                    return Err(interrupted(ui, target));
                }
            }
            break w.timed_out(ui, opts.timeout);
        }
        display.still_waiting(&target.deployment_id);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ui.interrupted() => {
                display.finish();
                return Err(interrupted(ui, target));
            }
        }
    };
    display.finish();
    // Timed out: the rollout goes on and the hint stays; otherwise nothing is left to resume.
    if !matches!(outcome, WatchOutcome::TimedOut { .. }) {
        ui.clear_resume_hint();
    }
    Ok(outcome)
}

/// Prints the outcome's details (causes, state, what to do next) on stderr.
pub fn print_outcome(ui: &Ui, outcome: &WatchOutcome) {
    match outcome {
        WatchOutcome::Succeeded { .. } => {}
        WatchOutcome::Failed {
            causes,
            rolled_back_to,
            ..
        } => {
            if !causes.is_empty() {
                ui.err("causes:");
                for c in causes {
                    ui.err(format!("  - {c}"));
                }
            }
            if rolled_back_to.is_some() {
                ui.err("next: the service runs the previous revision again; fix the cause and deploy again (`bosar-deploy status` shows the service)");
            } else {
                ui.err("next: `bosar-deploy status` shows the service; `bosar-deploy rollback` returns to the previous revision");
            }
        }
        WatchOutcome::Superseded { by, .. } => {
            ui.err(format!(
                "next: `{}` follows the newer deployment; `bosar-deploy status` shows the service",
                ui.command(&format!(
                    "wait --deployment {}",
                    crate::ui::shell_quote(&by.id)
                ))
            ));
        }
        WatchOutcome::TimedOut { state, resume, .. } => {
            if !state.is_empty() {
                ui.err("state at timeout:");
                for s in state {
                    ui.err(format!("  - {s}"));
                }
            }
            ui.err(format!("resume watching with: {resume}"));
        }
    }
}

/// Prints a watched outcome (the message and details; with `--output json` the envelope
/// around `payload` with `outcome` added) and returns its exit code. `wait` and `rollback`
/// share it, so `outcome` is the same object everywhere.
pub fn finish_outcome(
    ui: &Ui,
    key: &str,
    mut payload: serde_json::Map<String, serde_json::Value>,
    outcome: &WatchOutcome,
) -> anyhow::Result<Code> {
    if outcome.succeeded() {
        ui.out(outcome.message());
    } else {
        ui.error(outcome.message(), None);
        print_outcome(ui, outcome);
    }
    payload.insert("result".into(), outcome.result().into());
    payload.insert(
        "outcome".into(),
        serde_json::to_value(outcome).unwrap_or_default(),
    );
    let error = (!outcome.succeeded()).then(|| anyhow::anyhow!(outcome.message()));
    ui.emit(key, &payload, outcome.code(), error.as_ref());
    Ok(outcome.code())
}
