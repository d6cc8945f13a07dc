//! The rollout state machine, pure: a snapshot of the service in, a verdict out.
//! "Stable" is not "succeeded": a circuit-breaker rollback ends stable on the old
//! revision, so the deployment this run started is followed by its id.

use serde::Serialize;

use super::taskdef::revision_label;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentView {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub pending: i32,
    pub running: i32,
    pub failed_tasks: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
}

impl DeploymentView {
    pub fn revision(&self) -> String {
        revision_label(&self.task_definition)
    }
    /// The line printed when this deployment changes.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} running {}/{} pending {}",
            self.status,
            self.revision(),
            self.running,
            self.desired,
            self.pending
        );
        if self.failed_tasks > 0 {
            s.push_str(&format!(" failed tasks {}", self.failed_tasks));
        }
        if let Some(r) = &self.rollout_state {
            s.push_str(&format!(" {r}"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventView {
    pub id: String,
    pub created_at: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub deployments: Vec<DeploymentView>,
    /// Newest first, as ECS returns them.
    pub events: Vec<EventView>,
    pub target_group_arns: Vec<String>,
}

impl ServiceView {
    pub fn primary(&self) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }
    pub fn deployment(&self, id: &str) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    InProgress,
    /// ECS is done with our deployment; target health is checked next.
    Completed,
    /// Our deployment failed (circuit breaker); `rolled_back_to` when another took over.
    Failed {
        reason: String,
        rolled_back_to: Option<String>,
    },
    /// Our deployment lost PRIMARY (or vanished) and the service runs another revision.
    RolledBack {
        to: String,
    },
    /// Our deployment vanished and nothing is primary.
    Vanished,
}

/// Judges the deployment `ours` in `svc`.
pub fn assess(svc: &ServiceView, ours: &str) -> Verdict {
    let primary = svc.primary();
    let Some(d) = svc.deployment(ours) else {
        return match primary {
            Some(p) => Verdict::RolledBack { to: p.revision() },
            None => Verdict::Vanished,
        };
    };
    let other_primary = primary.filter(|p| p.id != d.id).map(|p| p.revision());
    if d.rollout_state.as_deref() == Some("FAILED") {
        return Verdict::Failed {
            reason: d
                .rollout_state_reason
                .clone()
                .unwrap_or_else(|| "rollout failed".to_string()),
            rolled_back_to: other_primary,
        };
    }
    if d.status != "PRIMARY" {
        return match other_primary {
            Some(to) => Verdict::RolledBack { to },
            None => Verdict::Vanished,
        };
    }
    match d.rollout_state.as_deref() {
        Some("COMPLETED") => Verdict::Completed,
        Some(_) => Verdict::InProgress,
        // Services without rolloutState (external or CODE_DEPLOY controllers, old APIs):
        // done when ours is the only deployment and fully running.
        None if svc.deployments.len() == 1 && d.running == d.desired && d.pending == 0 => {
            Verdict::Completed
        }
        None => Verdict::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn dep(
        id: &str,
        status: &str,
        rev: u32,
        running: i32,
        rollout: Option<&str>,
    ) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: format!("arn:aws:ecs:us-east-1:1:task-definition/bosar-api:{rev}"),
            desired: 2,
            pending: 2 - running,
            running,
            failed_tasks: 0,
            rollout_state: rollout.map(str::to_string),
            rollout_state_reason: None,
        }
    }

    fn svc(deployments: Vec<DeploymentView>) -> ServiceView {
        ServiceView {
            name: "bosar-api".into(),
            status: "ACTIVE".into(),
            task_definition: String::new(),
            desired: 2,
            running: 2,
            pending: 0,
            deployments,
            events: vec![],
            target_group_arns: vec![],
        }
    }

    #[test]
    fn in_progress_then_completed() {
        let s = svc(vec![
            dep("new", "PRIMARY", 42, 1, Some("IN_PROGRESS")),
            dep("old", "ACTIVE", 41, 2, Some("COMPLETED")),
        ]);
        assert_eq!(assess(&s, "new"), Verdict::InProgress);
        let s = svc(vec![dep("new", "PRIMARY", 42, 2, Some("COMPLETED"))]);
        assert_eq!(assess(&s, "new"), Verdict::Completed);
    }

    #[test]
    fn circuit_breaker_failed_names_reason_and_rollback() {
        let mut failed = dep("new", "ACTIVE", 42, 0, Some("FAILED"));
        failed.rollout_state_reason =
            Some("ECS deployment circuit breaker: tasks failed to start.".into());
        let s = svc(vec![
            dep("rb", "PRIMARY", 41, 1, Some("IN_PROGRESS")),
            failed,
        ]);
        assert_eq!(
            assess(&s, "new"),
            Verdict::Failed {
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                rolled_back_to: Some("bosar-api:41".into())
            }
        );
    }

    #[test]
    fn stable_on_old_revision_is_a_rollback_not_success() {
        // Ours vanished; the service is "stable" on 41.
        let s = svc(vec![dep("rb", "PRIMARY", 41, 2, Some("COMPLETED"))]);
        assert_eq!(
            assess(&s, "new"),
            Verdict::RolledBack {
                to: "bosar-api:41".into()
            }
        );
        // Ours lost PRIMARY without a FAILED state.
        let s = svc(vec![
            dep("rb", "PRIMARY", 41, 2, Some("COMPLETED")),
            dep("new", "ACTIVE", 42, 0, Some("IN_PROGRESS")),
        ]);
        assert_eq!(
            assess(&s, "new"),
            Verdict::RolledBack {
                to: "bosar-api:41".into()
            }
        );
    }

    #[test]
    fn without_rollout_state_only_deployment_fully_running() {
        let s = svc(vec![dep("new", "PRIMARY", 42, 2, None)]);
        assert_eq!(assess(&s, "new"), Verdict::Completed);
        let s = svc(vec![
            dep("new", "PRIMARY", 42, 2, None),
            dep("old", "ACTIVE", 41, 1, None),
        ]);
        assert_eq!(assess(&s, "new"), Verdict::InProgress);
        let s = svc(vec![]);
        assert_eq!(assess(&s, "new"), Verdict::Vanished);
    }
}
