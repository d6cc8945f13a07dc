//! Watching a deployment to real success: polls DescribeServices at the configured interval
//! (not the SDK waiter, whose 15-120 s backoff has no progress hook and whose "stable" is
//! not "succeeded"), prints each change once and each new service event once, then
//! requires the target groups to hold the desired count of healthy targets.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::rollout::{assess, ServiceView, Verdict};
use super::taskdef::revision_label;
use super::{describe_service, stopped_tasks, target_health, DescribeError};
use crate::aws::Aws;
use crate::exit::Code;
use crate::ui::Ui;

/// What to follow: the deployment this run started, by id.
#[derive(Debug, Clone)]
pub struct WatchTarget {
    pub cluster: String,
    pub service: String,
    pub deployment_id: String,
    pub task_definition: String,
}

#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    pub poll_interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WatchOutcome {
    Succeeded {
        revision: String,
        elapsed_ms: u64,
        healthy_targets: u32,
    },
    Failed {
        message: String,
        causes: Vec<String>,
    },
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
            WatchOutcome::Failed { .. } => Code::Failed,
            WatchOutcome::TimedOut { .. } => Code::TimedOut,
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
            WatchOutcome::Failed { message, .. } | WatchOutcome::TimedOut { message, .. } => {
                message.clone()
            }
        }
    }
}

/// The command that resumes watching (printed on timeout and Ctrl-C).
pub fn resume_command(t: &WatchTarget) -> String {
    format!("bosar-deploy wait --deployment {}", t.deployment_id)
}

/// Progress: bars on a terminal, one timestamped line per change otherwise.
struct Display<'a> {
    ui: &'a Ui,
    multi: Option<indicatif::MultiProgress>,
    bars: HashMap<String, indicatif::ProgressBar>,
    last: HashMap<String, String>,
    seen_events: HashSet<String>,
    started: Instant,
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
        }
    }

    fn println(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => self.ui.line(msg),
        }
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
                bar.set_message(line.clone());
            } else if self.last.get(&d.id) != Some(&line) {
                let elapsed = self.started.elapsed().as_secs();
                self.ui.line(format!("[{elapsed:>4}s] {line}"));
            }
            self.last.insert(d.id.clone(), line);
        }
        // Events arrive newest first; print the unseen ones oldest first.
        let fresh: Vec<_> = svc
            .events
            .iter()
            .filter(|e| !self.seen_events.contains(&e.id))
            .collect();
        for e in fresh.into_iter().rev() {
            self.println(&format!("event {}: {}", e.created_at, e.message));
            self.seen_events.insert(e.id.clone());
        }
    }

    fn finish(&self) {
        for b in self.bars.values() {
            b.finish_and_clear();
        }
    }
}

/// Follows `target` until success, failure or timeout. Transient API errors (throttling,
/// timeouts) are waited out with backoff, within the same timeout.
pub async fn watch(
    aws: &Aws,
    target: &WatchTarget,
    opts: WatchOptions,
    ui: &Ui,
    seen_events: HashSet<String>,
) -> anyhow::Result<WatchOutcome> {
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut display = Display::new(ui, seen_events);
    let mut backoff = opts.poll_interval;
    let mut last_svc: Option<ServiceView> = None;
    let mut last_health = String::new();
    let ours = &target.deployment_id;
    let outcome = loop {
        match describe_service(aws, &target.cluster, &target.service).await {
            Err(DescribeError::Fatal(e)) => {
                display.finish();
                return Err(e);
            }
            Err(DescribeError::Transient(msg)) => {
                backoff = (backoff * 2).min(Duration::from_secs(30));
                display.println(&format!(
                    "{msg}; retrying in {}",
                    crate::duration::format(backoff)
                ));
            }
            Ok(svc) => {
                backoff = opts.poll_interval;
                display.show(&svc, ours);
                let verdict = assess(&svc, ours);
                let ours_rev = revision_label(&target.task_definition);
                match verdict {
                    Verdict::InProgress => {}
                    Verdict::Completed => {
                        let desired = svc
                            .deployment(ours)
                            .map(|d| d.desired)
                            .unwrap_or(svc.desired)
                            .max(0) as u32;
                        let health = target_health(aws, &svc.target_group_arns).await?;
                        let healthy = health.iter().map(|h| h.healthy).min().unwrap_or(desired);
                        if health.iter().all(|h| h.healthy >= desired) {
                            break WatchOutcome::Succeeded {
                                revision: ours_rev,
                                elapsed_ms: start.elapsed().as_millis() as u64,
                                healthy_targets: healthy,
                            };
                        }
                        let line = format!("ECS reports {ours_rev} completed; waiting for healthy targets: {healthy}/{desired}");
                        if line != last_health {
                            display.println(&line);
                            last_health = line;
                        }
                    }
                    Verdict::Failed {
                        reason,
                        rolled_back_to,
                    } => {
                        let mut message =
                            format!("deployment {ours} ({ours_rev}) failed: {reason}");
                        if let Some(to) = rolled_back_to {
                            message.push_str(&format!("; the circuit breaker rolled back to {to}"));
                        }
                        break failure(aws, target, &svc, message).await;
                    }
                    Verdict::RolledBack { to } => {
                        let message = format!("deployment {ours} ({ours_rev}) is no longer primary: rolled back to {to}");
                        break failure(aws, target, &svc, message).await;
                    }
                    Verdict::Vanished => {
                        let message = format!("deployment {ours} ({ours_rev}) vanished from the service and nothing is primary");
                        break failure(aws, target, &svc, message).await;
                    }
                }
                last_svc = Some(svc);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let state = last_svc
                .as_ref()
                .map(|s| s.deployments.iter().map(|d| d.summary()).collect())
                .unwrap_or_default();
            let mut state: Vec<String> = state;
            if !last_health.is_empty() {
                state.push(last_health.clone());
            }
            break WatchOutcome::TimedOut {
                message: format!(
                    "timed out after {} waiting for deployment {ours}; the rollout goes on in AWS",
                    crate::duration::format(opts.timeout)
                ),
                state,
                resume: resume_command(target),
            };
        }
        let wait = if backoff > opts.poll_interval {
            backoff
        } else {
            opts.poll_interval
        };
        tokio::time::sleep(wait.min(deadline - now)).await;
    };
    display.finish();
    Ok(outcome)
}

async fn failure(
    aws: &Aws,
    target: &WatchTarget,
    svc: &ServiceView,
    message: String,
) -> WatchOutcome {
    let mut causes = Vec::new();
    if let Some(d) = svc.deployment(&target.deployment_id) {
        if let Some(r) = &d.rollout_state_reason {
            causes.push(format!("rolloutStateReason: {r}"));
        }
        if d.failed_tasks > 0 {
            causes.push(format!(
                "{} task(s) of {} failed to start",
                d.failed_tasks,
                d.revision()
            ));
        }
    }
    causes.extend(
        svc.events
            .iter()
            .take(5)
            .map(|e| format!("event {}: {}", e.created_at, e.message)),
    );
    causes.extend(
        stopped_tasks(
            aws,
            &target.cluster,
            &target.service,
            &target.task_definition,
        )
        .await,
    );
    WatchOutcome::Failed { message, causes }
}

/// Prints the outcome's details (causes, state, resume command) on stderr.
pub fn print_outcome(ui: &Ui, outcome: &WatchOutcome) {
    match outcome {
        WatchOutcome::Succeeded { .. } => {}
        WatchOutcome::Failed { causes, message } => {
            if !causes.is_empty() {
                eprintln!("causes:");
                for c in causes {
                    eprintln!("  - {c}");
                }
            }
            if message.contains("rolled back to") {
                eprintln!("next: the service runs the previous revision again; fix the cause and deploy again (`bosar-deploy status` shows the service)");
            } else {
                eprintln!("next: `bosar-deploy status` shows the service; `bosar-deploy rollback` returns to the previous revision");
            }
        }
        WatchOutcome::TimedOut { state, resume, .. } => {
            if !state.is_empty() {
                eprintln!("state at timeout:");
                for s in state {
                    eprintln!("  - {s}");
                }
            }
            eprintln!("resume watching with: {resume}");
        }
    }
    let _ = ui;
}
