//! Following an ECS-native deployment (blue/green, canary, linear) to its end through
//! DescribeServiceDeployments, and, with a gate, judging green where it must: at bosar-deploy's
//! PAUSE hook before production traffic (CONTINUE or ROLLBACK), and through every production
//! stage and step (StopServiceDeployment ROLLBACK while blue still runs).

use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;
use tokio::time::Instant;

use super::gate::{self, action_for, checks_of, Action, Audience, Decision, Judge};
use super::read::{self, Brief};
use super::show::Progress;
use super::stages::{DecisionPoint, Event, Final, GateStage, Observation, StageSpan, Tracker};
use crate::aws::Aws;
use crate::ecs::polls::PollRecord;
use crate::ecs::rollout::DeploymentRef;
use crate::ecs::taskdef::revision_label;
use crate::ecs::watch::{resume_command, WatchOutcome, WatchTarget};
use crate::ecs::DescribeError;
use crate::exit::{Code, Failure};
use crate::ui::Ui;

/// How often production is judged again while green takes production traffic.
pub const JUDGE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct NativeOptions {
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Where our hook pauses; `None` without a gate.
    pub gate: Option<GateStage>,
    pub strategy: String,
    /// When the run started the deployment (epoch seconds): ours is created after it.
    pub since_secs: i64,
}

/// A rollback the deployment went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackReport {
    pub reason: String,
    /// `bosar-deploy` (the gate asked for it) or `ECS` (a hook's timeout, the circuit
    /// breaker, an alarm, someone else).
    pub by: String,
    /// RFC 3339; `None` when ECS rolled back on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// From the request to ROLLBACK_SUCCESSFUL: how long the way back took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    /// False when ECS reported ROLLBACK_FAILED.
    pub succeeded: bool,
}

/// What the report shows of an ECS-native deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NativeReport {
    pub strategy: String,
    pub deployment_arn: String,
    pub stages: Vec<StageSpan>,
    pub gate: Vec<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
}

impl NativeReport {
    /// The text report: the strategy, each stage with its start and end, each decision of
    /// the gate with its checks and the action sent, and the way back.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{} deployment {}",
            self.strategy, self.deployment_arn
        )];
        for s in &self.stages {
            out.push(format!(
                "  stage {}: {} -> {}",
                s.name,
                s.started,
                s.ended.as_deref().unwrap_or("(running)")
            ));
        }
        for d in &self.gate {
            let weight = d.weight.map(|w| format!(" at {w}%")).unwrap_or_default();
            out.push(format!(
                "  gate at {}{weight} ({}): {} -> {}{}",
                d.stage,
                audience_word(d.audience),
                d.summary(),
                action_word(d.action),
                d.error
                    .as_deref()
                    .map(|e| format!(" (not sent: {e})"))
                    .unwrap_or_default()
            ));
            for c in d
                .checks
                .iter()
                .filter(|c| c.status == crate::report::CheckStatus::Fail)
            {
                out.push(format!("    FAIL {}: {}", c.name, c.message));
            }
        }
        if let Some(rb) = &self.rollback {
            out.push(format!("  rollback by {}: {}", rb.by, rb.reason));
            out.push(format!(
                "    requested {}, completed {}{}{}",
                rb.requested.as_deref().unwrap_or("(by ECS)"),
                rb.completed.as_deref().unwrap_or("(not yet)"),
                rb.took_ms
                    .map(|ms| format!(
                        ", the way back took {}",
                        crate::duration::format(Duration::from_millis(ms))
                    ))
                    .unwrap_or_default(),
                if rb.succeeded {
                    ""
                } else {
                    "; ROLLBACK_FAILED"
                }
            ));
        }
        out
    }

    /// One line for the step summary: "BLUE_GREEN, 5 stage(s), gate: CONTINUE, rolled back in 20s".
    pub fn summary(&self) -> String {
        let mut s = format!("{}, {} stage(s)", self.strategy, self.stages.len());
        if !self.gate.is_empty() {
            let actions: Vec<&str> = self
                .gate
                .iter()
                .filter(|d| d.action != Action::None)
                .map(|d| match d.action {
                    Action::Continue => "CONTINUE",
                    Action::Rollback => "ROLLBACK",
                    _ => "StopServiceDeployment ROLLBACK",
                })
                .collect();
            s.push_str(&format!(
                ", gate: {} decision(s) {}",
                self.gate.len(),
                actions.join(", ")
            ));
        }
        if let Some(rb) = &self.rollback {
            let took = rb
                .took_ms
                .map(|ms| format!(" in {}", crate::duration::format(Duration::from_millis(ms))))
                .unwrap_or_default();
            let how = if rb.succeeded {
                "rolled back"
            } else {
                "rollback failed"
            };
            s.push_str(&format!(", {how}{took} (by {})", rb.by));
        }
        s
    }
}

/// The watch's clock: wall time from the start plus tokio's (paused in tests) elapsed time.
struct Clock {
    wall: i64,
    start: Instant,
}

/// Now, in epoch seconds (when a run starts a deployment: ours is created after it).
pub fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall: wall_secs(),
            start: Instant::now(),
        }
    }
    fn secs(&self) -> i64 {
        self.wall + self.start.elapsed().as_secs() as i64
    }
    fn now(&self) -> String {
        aws_smithy_types::DateTime::from_secs(self.secs())
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default()
    }
}

struct Native<'a> {
    aws: &'a Aws,
    target: &'a WatchTarget,
    opts: &'a NativeOptions,
    judge: Option<&'a dyn Judge>,
    ui: &'a Ui,
    clock: Clock,
    tracker: Tracker,
    report: NativeReport,
    ours: Option<Brief>,
    last: Option<Observation>,
    record: PollRecord,
    last_judged: Option<Instant>,
    rollback_started: Option<Instant>,
}

/// Follows the deployment this run started (or `wait` names) to its end, judging it when a
/// judge is given and the options name the gate's stage. Transient errors are waited out
/// with backoff within the timeout; an interrupt stops the watch (exit 130), and the hook's
/// timeout (action ROLLBACK) decides a pause nobody answers.
pub async fn watch(
    aws: &Aws,
    target: &WatchTarget,
    opts: &NativeOptions,
    judge: Option<&dyn Judge>,
    ui: &Ui,
) -> anyhow::Result<(WatchOutcome, NativeReport)> {
    let _wrap_up = ui.wrap_up_on_interrupt();
    let deadline = Instant::now() + opts.timeout;
    let mut w = Native {
        aws,
        target,
        opts,
        judge: judge.filter(|_| opts.gate.is_some()),
        ui,
        clock: Clock::new(),
        tracker: Tracker::new(opts.gate),
        report: NativeReport {
            strategy: opts.strategy.clone(),
            ..Default::default()
        },
        ours: None,
        last: None,
        record: PollRecord::default(),
        last_judged: None,
        rollback_started: None,
    };
    let mut progress = Progress::new(ui);
    let mut wait = opts.poll_interval;
    let outcome = loop {
        let polled = tokio::select! {
            p = tokio::time::timeout_at(deadline, w.poll(&mut progress)) => p,
            () = ui.interrupted() => {
                progress.finish();
                return Err(interrupted(ui, target));
            }
        };
        match polled {
            Err(_) => {
                w.record.hung = true;
                break w.timed_out();
            }
            Ok(Ok(Some(outcome))) => break outcome,
            Ok(Ok(None)) => {
                w.record.answered += 1;
                wait = opts.poll_interval;
            }
            Ok(Err(DescribeError::Transient(msg))) => {
                w.record.failure(&msg);
                wait = (wait * 2).clamp(opts.poll_interval, Duration::from_secs(30));
                progress.line(&format!(
                    "{msg}; retrying in {}",
                    crate::duration::format(wait)
                ));
            }
            Ok(Err(DescribeError::Fatal(e))) => {
                progress.finish();
                return Err(e);
            }
        }
        if Instant::now() + wait >= deadline {
            tokio::time::sleep_until(deadline).await;
            break w.timed_out();
        }
        progress.still_waiting(w.state_line());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ui.interrupted() => {
                progress.finish();
                return Err(interrupted(ui, target));
            }
        }
    };
    progress.finish();
    w.report.stages = w.tracker.stages.clone();
    if !matches!(outcome, WatchOutcome::TimedOut { .. }) {
        ui.clear_resume_hint();
    }
    Ok((outcome, w.report))
}

impl Native<'_> {
    /// One poll: find ours (once), describe it, act on what changed.
    async fn poll(
        &mut self,
        progress: &mut Progress<'_>,
    ) -> Result<Option<WatchOutcome>, DescribeError> {
        let t = self.target;
        let ours = match &self.ours {
            Some(b) => b.clone(),
            None => {
                let briefs = read::list(self.aws, &t.cluster, &t.service).await?;
                let Some(b) = read::ours(&briefs, &t.deployment_id, self.opts.since_secs) else {
                    progress.line("ECS lists no service deployment of this run yet");
                    return Ok(None);
                };
                progress.line(&format!("service deployment {}", b.arn));
                self.report.deployment_arn = b.arn.clone();
                self.ours = Some(b.clone());
                b
            }
        };
        let mut obs = read::describe(self.aws, &ours.arn).await?;
        if obs.status == "STOPPED" {
            let briefs = read::list(self.aws, &t.cluster, &t.service).await?;
            obs.newer = read::newer(&briefs, &ours);
        }
        let events = self
            .tracker
            .observe(&obs, &self.clock.now(), self.clock.secs());
        self.last = Some(obs.clone());
        for e in events {
            progress.event(&e, &obs);
            match e {
                Event::Decide(p) => self.decide(p, progress).await,
                Event::Finished(f) => return Ok(Some(self.finish(f, &obs))),
                _ => {}
            }
        }
        if let Some((stage, weight)) = self.tracker.in_production() {
            if self
                .last_judged
                .is_some_and(|at| at.elapsed() >= JUDGE_EVERY)
            {
                self.decide(DecisionPoint::Production { stage, weight }, progress)
                    .await;
            }
        }
        Ok(None)
    }

    /// Judges, records the decision and sends its action.
    async fn decide(&mut self, p: DecisionPoint, progress: &mut Progress<'_>) {
        let Some(judge) = self.judge else { return };
        let (audience, stage, weight, hook) = match p {
            DecisionPoint::BeforeProduction { hook_id, stage } => {
                (Audience::Green, stage, None, Some(hook_id))
            }
            DecisionPoint::Production { stage, weight } => {
                (Audience::Production, stage, weight, None)
            }
        };
        progress.line(&format!(
            "gate: judging {} at {stage}",
            audience_word(audience)
        ));
        let judged = std::panic::AssertUnwindSafe(judge.judge(audience, self.ui))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the judge panicked")));
        self.last_judged = Some(Instant::now());
        let checks = checks_of(judged);
        let action = action_for(audience, &checks);
        let mut d = Decision {
            stage,
            weight,
            audience,
            checks,
            action,
            at: self.clock.now(),
            error: None,
        };
        d.error = self.send(action, hook.as_deref()).await.err();
        progress.line(&format!("gate: {} -> {}", d.summary(), action_word(action)));
        if !d.passed() {
            self.tracker.rollback_sent();
            self.rollback_started = Some(Instant::now());
            self.report.rollback = Some(RollbackReport {
                reason: d.reason(),
                by: "bosar-deploy".into(),
                requested: Some(d.at.clone()),
                completed: None,
                took_ms: None,
                succeeded: false,
            });
        }
        self.report.gate.push(d);
    }

    /// Sends `action`, transient errors retried (1, 2, 4 s); a ROLLBACK the hook refuses is
    /// sent again as StopServiceDeployment ROLLBACK, so a failed green never goes on.
    async fn send(&self, action: Action, hook: Option<&str>) -> Result<(), String> {
        let arn = self.report.deployment_arn.as_str();
        let mut last = String::new();
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            let sent = match (action, hook) {
                (Action::None, _) => return Ok(()),
                (Action::Continue, Some(h)) => {
                    read::continue_deployment(self.aws, arn, h, false).await
                }
                (Action::Rollback, Some(h)) => {
                    read::continue_deployment(self.aws, arn, h, true).await
                }
                _ => read::stop_rollback(self.aws, arn).await,
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(DescribeError::Transient(m)) => last = m,
                Err(DescribeError::Fatal(e)) => {
                    last = crate::exit::message_of(&e);
                    break;
                }
            }
        }
        if action == Action::Rollback && read::stop_rollback(self.aws, arn).await.is_ok() {
            return Ok(());
        }
        self.ui.warn(format!(
            "gate: {} could not be sent: {last}",
            action_word(action)
        ));
        Err(last)
    }

    fn finish(&mut self, f: Final, obs: &Observation) -> WatchOutcome {
        let t = self.target;
        let rev = revision_label(&t.task_definition);
        let arn = self.report.deployment_arn.clone();
        let ecs_reason = |r: &Option<crate::outside::Outside>| {
            r.as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "ECS gave no reason".into())
        };
        match f {
            // Fail closed: a deployment the gate failed is a failure however it ended, also
            // when its rollback came too late (refused at CLEAN_UP) or could not be sent.
            Final::Succeeded => match gate::overruled(&self.report.gate) {
                Some(d) => WatchOutcome::Failed {
                    message: format!(
                        "deployment {arn} ({rev}) completed although the gate failed it at {}: {}; its rollback was not carried out ({}): production now runs {rev}; go back with `bosar-deploy rollback`",
                        d.stage,
                        d.reason(),
                        d.error.as_deref().unwrap_or("ECS finished the deployment first")
                    ),
                    causes: Vec::new(),
                    rolled_back_to: None,
                },
                None => WatchOutcome::Succeeded {
                    revision: rev,
                    elapsed_ms: self.clock.start.elapsed().as_millis() as u64,
                    healthy_targets: obs.running.unwrap_or_default().max(0) as u32,
                },
            },
            Final::RolledBack { reason } => {
                self.note_rollback(true, ecs_reason(&reason));
                let why = self.report.rollback.as_ref().map(|r| r.reason.clone()).unwrap_or_default();
                let took = self
                    .report
                    .rollback
                    .as_ref()
                    .and_then(|r| r.took_ms)
                    .map(|ms| format!(" in {}", crate::duration::format(Duration::from_millis(ms))))
                    .unwrap_or_default();
                WatchOutcome::Failed {
                    message: format!("deployment {arn} ({rev}) was rolled back{took}: {why}"),
                    causes: reason.into_iter().map(|r| r.with_prefix("ECS: ")).collect(),
                    rolled_back_to: Some(DeploymentRef {
                        id: arn,
                        revision: t
                            .previous_task_definition
                            .as_deref()
                            .map(revision_label)
                            .unwrap_or_else(|| "the previous revision".into()),
                        task_definition: t.previous_task_definition.clone().unwrap_or_default(),
                    }),
                }
            }
            Final::RollbackFailed { reason } => {
                self.note_rollback(false, ecs_reason(&reason));
                WatchOutcome::Failed {
                    message: format!(
                        "deployment {arn} ({rev}) failed and its rollback failed too (ROLLBACK_FAILED): {}",
                        ecs_reason(&reason)
                    ),
                    causes: reason.into_iter().collect(),
                    rolled_back_to: None,
                }
            }
            Final::Stopped { by: Some(by), .. } => WatchOutcome::Superseded {
                message: format!(
                    "deployment {arn} ({rev}) was stopped by a newer deployment of the service, {by}: another deploy took over the service; this run does not judge or undo it"
                ),
                by: DeploymentRef {
                    id: by.clone(),
                    revision: by.rsplit('/').next().unwrap_or_default().to_string(),
                    task_definition: String::new(),
                },
            },
            Final::Stopped { by: None, reason } => WatchOutcome::Failed {
                message: format!(
                    "deployment {arn} ({rev}) was stopped (StopServiceDeployment or ECS): {}",
                    ecs_reason(&reason)
                ),
                causes: reason.into_iter().collect(),
                rolled_back_to: None,
            },
        }
    }

    /// The way back's end: when it completed and how long it took from our request.
    fn note_rollback(&mut self, succeeded: bool, reason: String) {
        let now = self.clock.now();
        let took = self
            .rollback_started
            .map(|s| s.elapsed().as_millis() as u64);
        let rb = self.report.rollback.get_or_insert(RollbackReport {
            reason,
            by: "ECS".into(),
            requested: None,
            completed: None,
            took_ms: None,
            succeeded,
        });
        rb.completed = Some(now);
        rb.took_ms = took;
        rb.succeeded = succeeded;
    }

    fn state_line(&self) -> String {
        match &self.last {
            Some(o) => format!(
                "{} at {}",
                o.status,
                o.stage.as_deref().unwrap_or("no stage yet")
            ),
            None => "no answer from ECS yet".into(),
        }
    }

    fn timed_out(&self) -> WatchOutcome {
        let mut state = vec![self.state_line()];
        if let Some(o) = &self.last {
            for h in o.hooks.iter().filter(|h| h.status == "AWAITING_ACTION") {
                state.push(format!(
                    "hook {} ({}) awaits an action until {}; then {}",
                    h.hook_id,
                    h.target_type,
                    h.expires_at,
                    h.timeout_action.as_deref().unwrap_or("its timeout action")
                ));
            }
        }
        let mut resume = self.target.clone();
        if !self.report.deployment_arn.is_empty() {
            resume.deployment_id = self.report.deployment_arn.clone();
        }
        WatchOutcome::TimedOut {
            message: format!(
                "timed out after {} waiting for deployment {}{}; the deployment goes on in AWS",
                crate::duration::format(self.opts.timeout),
                resume.deployment_id,
                self.record.note()
            ),
            state,
            resume: resume_command(self.ui, &resume),
        }
    }
}

fn audience_word(a: Audience) -> &'static str {
    match a {
        Audience::Green => "green before production traffic",
        Audience::Production => "production",
    }
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Continue => "ContinueServiceDeployment CONTINUE",
        Action::Rollback => "ContinueServiceDeployment ROLLBACK",
        Action::StopRollback => "StopServiceDeployment ROLLBACK",
        Action::None => "no action (production passed)",
    }
}

fn interrupted(ui: &Ui, target: &WatchTarget) -> anyhow::Error {
    Failure::new(
        Code::Interrupted,
        format!(
            "interrupted: stopped watching deployment {}; the deployment goes on in AWS (a pause of the gate ends at its hook's timeout, with ROLLBACK)",
            target.deployment_id
        ),
    )
    .hint(format!("resume watching with: {}", resume_command(ui, target)))
    .into()
}
