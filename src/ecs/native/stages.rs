//! The stage machine of an ECS-native deployment (blue/green, canary, linear), pure: each
//! DescribeServiceDeployments answer goes in as an [`Observation`], and out come what to show
//! (stages begun and ended, hook waits with their expiry, traffic steps), where the gate must
//! decide, and the end. The watch does the I/O and the clock; this file only compares.

use serde::Serialize;

use crate::outside::Outside;

/// Where bosar-deploy's PAUSE hook stops the deployment before production traffic: after the
/// test traffic shift when a test listener rule exists (green can be reached then), after
/// scale-up otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GateStage {
    #[serde(rename = "POST_TEST_TRAFFIC_SHIFT")]
    PostTestTrafficShift,
    #[serde(rename = "POST_SCALE_UP")]
    PostScaleUp,
}

impl GateStage {
    pub fn for_service(has_test_listener_rule: bool) -> GateStage {
        if has_test_listener_rule {
            GateStage::PostTestTrafficShift
        } else {
            GateStage::PostScaleUp
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            GateStage::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            GateStage::PostScaleUp => "POST_SCALE_UP",
        }
    }
}

/// The stages during which production traffic reaches green and blue still runs: a failed
/// check there is answered with StopServiceDeployment ROLLBACK (a shift back, not a redeploy).
pub const PRODUCTION_STAGES: [&str; 3] = [
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
];

/// One lifecycle hook as DescribeServiceDeployments reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookView {
    pub hook_id: String,
    /// `PAUSE` or `AWS_LAMBDA`.
    pub target_type: String,
    /// `AWAITING_ACTION`, `IN_PROGRESS`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`.
    pub status: String,
    /// RFC 3339; empty when ECS does not say.
    pub expires_at: String,
    pub timeout_action: Option<String>,
}

/// What one DescribeServiceDeployments answer says of our deployment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// `PENDING`, `IN_PROGRESS`, `SUCCESSFUL`, `STOPPED`, `STOP_REQUESTED`, `ROLLBACK_*`.
    pub status: String,
    pub status_reason: Option<Outside>,
    /// `lifecycleStage`; `None` before ECS names one.
    pub stage: Option<String>,
    pub hooks: Vec<HookView>,
    /// The share of production traffic asked of green (`requestedProductionTrafficWeight`).
    pub production_weight: Option<f64>,
    /// Green's running tasks (`targetServiceRevision.runningTaskCount`).
    pub running: Option<i32>,
    /// `rollback.reason`, once ECS rolls back.
    pub rollback_reason: Option<Outside>,
    /// A deployment of the service created after ours (ListServiceDeployments), by ARN.
    pub newer: Option<String>,
}

/// A stage with its start and end (RFC 3339), as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageSpan {
    pub name: String,
    pub started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// Where the gate judges green.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionPoint {
    /// Our PAUSE hook waits: no production traffic on green yet. CONTINUE or ROLLBACK.
    BeforeProduction { hook_id: String, stage: String },
    /// Production traffic reaches green (a new stage or a new canary/linear step): judge it,
    /// and StopServiceDeployment ROLLBACK when it fails.
    Production { stage: String, weight: Option<f64> },
}

/// How the deployment ended, in ECS's words mapped to the watch's outcomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Final {
    Succeeded,
    /// ECS rolled back (our ROLLBACK, a hook's timeout, the circuit breaker, an alarm).
    RolledBack {
        reason: Option<Outside>,
    },
    RollbackFailed {
        reason: Option<Outside>,
    },
    /// Stopped without a rollback, by a newer deployment of the service (`by`) or a person.
    Stopped {
        by: Option<String>,
        reason: Option<Outside>,
    },
}

/// What changed since the previous observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Status(String),
    StageStarted(String),
    StageEnded {
        stage: String,
        took_secs: i64,
    },
    HookWaiting {
        hook_id: String,
        stage: String,
        expires_at: String,
    },
    HookEnded {
        hook_id: String,
        status: String,
    },
    Step {
        weight: f64,
    },
    Decide(DecisionPoint),
    Finished(Final),
}

/// Carries what was seen between observations.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    gate: Option<GateStage>,
    pub stages: Vec<StageSpan>,
    stage_started_secs: i64,
    status: String,
    hooks: Vec<(String, String)>,
    weight: Option<f64>,
    decided_hooks: Vec<String>,
    /// A ROLLBACK was sent: no more decisions.
    rolling_back: bool,
    done: bool,
}

/// The terminal statuses of a service deployment.
pub fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "SUCCESSFUL" | "STOPPED" | "ROLLBACK_SUCCESSFUL" | "ROLLBACK_FAILED"
    )
}

impl Tracker {
    /// `gate`: where our hook pauses; `None` without a gate (watch only).
    pub fn new(gate: Option<GateStage>) -> Tracker {
        Tracker {
            gate,
            ..Default::default()
        }
    }

    /// After a ROLLBACK was sent (ContinueServiceDeployment or StopServiceDeployment): the
    /// gate is done deciding; the watch follows the way back to its end.
    pub fn rollback_sent(&mut self) {
        self.rolling_back = true;
    }

    pub fn rolling_back(&self) -> bool {
        self.rolling_back
    }

    /// The production stage and weight now, when the gate should keep judging production.
    pub fn in_production(&self) -> Option<(String, Option<f64>)> {
        if self.gate.is_none() || self.rolling_back || self.done || self.status != "IN_PROGRESS" {
            return None;
        }
        let stage = self.stages.last().filter(|s| s.ended.is_none())?;
        PRODUCTION_STAGES
            .contains(&stage.name.as_str())
            .then(|| (stage.name.clone(), self.weight))
    }

    /// One observation at `now` (RFC 3339 and epoch seconds, from the watch's clock).
    pub fn observe(&mut self, o: &Observation, now: &str, now_secs: i64) -> Vec<Event> {
        let mut ev = Vec::new();
        if self.done {
            return ev;
        }
        if o.status != self.status {
            self.status = o.status.clone();
            ev.push(Event::Status(o.status.clone()));
        }
        self.stage_change(o, now, now_secs, &mut ev);
        self.hook_changes(o, &mut ev);
        if let Some(w) = o.production_weight.filter(|w| Some(*w) != self.weight) {
            let first = self.weight.is_none() && w == 0.0;
            self.weight = Some(w);
            if !first {
                ev.push(Event::Step { weight: w });
                if let Some((stage, weight)) = self.in_production() {
                    ev.push(Event::Decide(DecisionPoint::Production { stage, weight }));
                }
            }
        }
        // One production judgement per observation, however many things changed at once.
        let last = ev
            .iter()
            .rposition(|e| matches!(e, Event::Decide(DecisionPoint::Production { .. })));
        let mut i = 0;
        ev.retain(|e| {
            i += 1;
            !matches!(e, Event::Decide(DecisionPoint::Production { .. })) || Some(i - 1) == last
        });
        if is_terminal(&o.status) {
            self.close(now);
            self.done = true;
            ev.push(Event::Finished(final_of(o)));
        }
        ev
    }

    fn close(&mut self, now: &str) {
        if let Some(last) = self.stages.last_mut().filter(|s| s.ended.is_none()) {
            last.ended = Some(now.to_string());
        }
    }

    fn stage_change(&mut self, o: &Observation, now: &str, now_secs: i64, ev: &mut Vec<Event>) {
        let Some(stage) = o.stage.as_deref() else {
            return;
        };
        if self.stages.last().is_some_and(|s| s.name == stage) {
            return;
        }
        if let Some(last) = self.stages.last_mut().filter(|s| s.ended.is_none()) {
            last.ended = Some(now.to_string());
            ev.push(Event::StageEnded {
                stage: last.name.clone(),
                took_secs: now_secs - self.stage_started_secs,
            });
        }
        self.stages.push(StageSpan {
            name: stage.to_string(),
            started: now.to_string(),
            ended: None,
        });
        self.stage_started_secs = now_secs;
        ev.push(Event::StageStarted(stage.to_string()));
        if let Some((stage, weight)) = self.in_production() {
            ev.push(Event::Decide(DecisionPoint::Production { stage, weight }));
        }
    }

    fn hook_changes(&mut self, o: &Observation, ev: &mut Vec<Event>) {
        let stage = o.stage.clone().unwrap_or_default();
        for h in &o.hooks {
            let before = self
                .hooks
                .iter()
                .find(|(id, _)| *id == h.hook_id)
                .map(|(_, s)| s.clone());
            if before.as_deref() == Some(h.status.as_str()) {
                continue;
            }
            self.hooks.retain(|(id, _)| *id != h.hook_id);
            self.hooks.push((h.hook_id.clone(), h.status.clone()));
            match h.status.as_str() {
                "AWAITING_ACTION" | "IN_PROGRESS" => ev.push(Event::HookWaiting {
                    hook_id: h.hook_id.clone(),
                    stage: stage.clone(),
                    expires_at: h.expires_at.clone(),
                }),
                s => ev.push(Event::HookEnded {
                    hook_id: h.hook_id.clone(),
                    status: s.to_string(),
                }),
            }
        }
        // Our hook: a PAUSE hook awaiting action at the gate's stage, decided once.
        let Some(gate) = self.gate.filter(|_| !self.rolling_back) else {
            return;
        };
        if stage != gate.as_str() || o.status != "IN_PROGRESS" {
            return;
        }
        for h in o.hooks.iter().filter(|h| is_our_wait(h)) {
            if !self.decided_hooks.contains(&h.hook_id) {
                self.decided_hooks.push(h.hook_id.clone());
                ev.push(Event::Decide(DecisionPoint::BeforeProduction {
                    hook_id: h.hook_id.clone(),
                    stage: stage.clone(),
                }));
            }
        }
    }
}

fn is_our_wait(h: &HookView) -> bool {
    h.target_type == "PAUSE" && h.status == "AWAITING_ACTION"
}

/// The end, from the terminal status.
fn final_of(o: &Observation) -> Final {
    let reason = o.rollback_reason.clone().or(o.status_reason.clone());
    match o.status.as_str() {
        "SUCCESSFUL" => Final::Succeeded,
        "ROLLBACK_SUCCESSFUL" => Final::RolledBack { reason },
        "ROLLBACK_FAILED" => Final::RollbackFailed { reason },
        _ => Final::Stopped {
            by: o.newer.clone(),
            reason: o.status_reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests;
