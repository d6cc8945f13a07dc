//! The rollout state machine, pure: a snapshot of the service in, a verdict out.
//! "Stable" is not "succeeded": a circuit-breaker rollback ends stable on the old
//! revision, so the deployment this run started is followed by its id.

use serde::Serialize;

use super::taskdef::revision_label;
use crate::outside::Outside;

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
    /// ECS's free text (outside text: shown escaped and capped, JSON as it came).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<Outside>,
    /// RFC 3339; empty when ECS does not say.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
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
    /// ECS's free text: whoever may update the service or stop its tasks writes into it.
    pub message: Outside,
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
    /// `ECS`, `CODE_DEPLOY` or `EXTERNAL`; absent means ECS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<String>,
    /// `ROLLING`, `BLUE_GREEN`, `LINEAR` or `CANARY`; absent means ROLLING.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// The deployment circuit breaker; `None` when the service reports none (off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// (target group ARN, container name) of each load balancer entry.
    #[serde(skip)]
    pub load_balancer_containers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

impl ServiceView {
    pub fn primary(&self) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }
    pub fn deployment(&self, id: &str) -> Option<&DeploymentView> {
        self.deployments.iter().find(|d| d.id == id)
    }
    /// The container the load balancer entry of `target_group_arn` (or the first) names.
    pub fn container_behind(&self, target_group_arn: Option<&str>) -> Option<String> {
        self.load_balancer_containers
            .iter()
            .find(|(tg, _)| target_group_arn.is_none_or(|t| t == tg))
            .map(|(_, c)| c.clone())
    }
    pub fn breaker_enabled(&self) -> bool {
        self.circuit_breaker.is_some_and(|b| b.enable)
    }
}

/// The deployment still rolling out, if any: the PRIMARY one while its rolloutState is
/// IN_PROGRESS, or (services without rolloutState) while older deployments run beside it.
pub fn rollout_in_progress(svc: &ServiceView) -> Option<&DeploymentView> {
    let p = svc.primary()?;
    let busy = match p.rollout_state.as_deref() {
        Some(state) => state == "IN_PROGRESS",
        None => svc.deployments.len() > 1,
    };
    busy.then_some(p)
}

/// Why this tool cannot roll the service, if it cannot: UpdateService with a new revision is
/// refused for CODE_DEPLOY, EXTERNAL services take task sets, and ECS-native blue/green,
/// linear and canary shift traffic between two target groups, so "healthy in the service's
/// target group" would be judged on the wrong one.
pub fn rollout_refusal(svc: &ServiceView) -> Option<String> {
    controller_refusal(svc).or_else(|| strategy_refusal(&svc.name, svc.strategy.as_deref(), false))
}

/// The deployment controller half of [`rollout_refusal`]: only ECS's own is rolled.
pub fn controller_refusal(svc: &ServiceView) -> Option<String> {
    match svc.deployment_controller.as_deref() {
        None | Some("ECS") => None,
        Some("CODE_DEPLOY") => Some(format!(
            "service {} uses the CODE_DEPLOY deployment controller: ECS refuses UpdateService with a new task definition for it; deploy it with CodeDeploy (`aws deploy create-deployment` with an AppSpec naming the new revision), or move the service to the ECS controller with the ROLLING strategy",
            svc.name
        )),
        Some("EXTERNAL") => Some(format!(
            "service {} uses the EXTERNAL deployment controller: it is rolled with task sets (CreateTaskSet, UpdateServicePrimaryTaskSet), which bosar-deploy does not drive; use the controller that owns it",
            svc.name
        )),
        Some(other) => Some(format!(
            "service {} uses deployment controller {other}, which bosar-deploy does not know",
            svc.name
        )),
    }
}

/// The strategy half of [`rollout_refusal`], for the strategy a deployment started now would
/// use (`strategy`, ECS's spelling; `None` is ROLLING). `from_config`: the strategy is
/// `[ecs.deployment] strategy`, not (only) the service's. Blue/green, canary and linear are
/// followed by the ECS-native watch (`ecs::native`); only a strategy this tool does not know
/// is refused.
pub fn strategy_refusal(
    service: &str,
    strategy: Option<&str>,
    from_config: bool,
) -> Option<String> {
    let _ = from_config;
    match strategy {
        None | Some("ROLLING" | "BLUE_GREEN" | "CANARY" | "LINEAR") => None,
        Some(s) => Some(format!(
            "service {service} uses the ECS deployment strategy {s}, which bosar-deploy does not know; deploy it with `aws ecs update-service`, or set [ecs.deployment] strategy"
        )),
    }
}

/// A deployment as the end of a watch names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentRef {
    pub id: String,
    pub revision: String,
    pub task_definition: String,
}

impl DeploymentRef {
    fn of(d: &DeploymentView) -> DeploymentRef {
        DeploymentRef {
            id: d.id.clone(),
            revision: d.revision(),
            task_definition: d.task_definition.clone(),
        }
    }
}

/// What the watch knows beyond the snapshot.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The revision the service ran before ours, when this run started the deployment: a
    /// circuit-breaker rollback goes back to it.
    pub previous_task_definition: Option<String>,
    /// With the circuit breaker off: fail once this many tasks of ours failed (`None`: twice
    /// our desired count).
    pub max_failed_tasks: Option<u32>,
}

impl Policy {
    /// The failed-task bound with the circuit breaker off.
    pub fn failed_task_bound(&self, desired: i32) -> u32 {
        self.max_failed_tasks
            .unwrap_or_else(|| (desired.max(1) as u32).saturating_mul(2))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    InProgress,
    /// ECS is done with our deployment; target health is checked next.
    Completed,
    /// Our deployment failed and is still primary: the circuit breaker without rollback, or,
    /// with the breaker off, too many failed tasks.
    Failed {
        reason: Outside,
    },
    /// The circuit breaker failed ours and rolled back: the new primary runs the previous
    /// revision and ECS says so.
    RolledBack {
        reason: Outside,
        to: DeploymentRef,
    },
    /// Another deployment became primary (someone else's deploy): not ours to judge or undo.
    Superseded {
        by: DeploymentRef,
    },
    /// Our deployment vanished and nothing is primary.
    Vanished,
}

/// ECS's own word that it rolled our deployment back: an event naming our deployment with
/// "rolling back" / "circuit breaker" / "deployment failed".
fn ecs_says_rolled_back(svc: &ServiceView, ours: &str) -> Option<Outside> {
    svc.events
        .iter()
        .find(|e| {
            e.message.test(|text| {
                let m = text.to_ascii_lowercase();
                text.contains(ours)
                    && (m.contains("rolling back")
                        || m.contains("circuit breaker")
                        || m.contains("deployment failed"))
            })
        })
        .map(|e| e.message.clone())
}

/// Ours is no longer primary (gone, or ACTIVE) and `other` is: the circuit breaker's rollback
/// when it runs the previous revision and ECS says so, else someone else's deploy.
fn taken_over(
    svc: &ServiceView,
    ours: &str,
    other: Option<&DeploymentView>,
    is_previous: impl Fn(&DeploymentView) -> bool,
) -> Verdict {
    match other {
        None => Verdict::Vanished,
        Some(p) => match ecs_says_rolled_back(svc, ours).filter(|_| is_previous(p)) {
            Some(reason) => Verdict::RolledBack {
                reason,
                to: DeploymentRef::of(p),
            },
            None => Verdict::Superseded {
                by: DeploymentRef::of(p),
            },
        },
    }
}

/// Judges the deployment `ours` in `svc`.
pub fn assess(svc: &ServiceView, ours: &str, policy: &Policy) -> Verdict {
    let other = svc.primary().filter(|p| p.id != ours);
    let is_previous = |p: &DeploymentView| {
        policy
            .previous_task_definition
            .as_deref()
            .is_none_or(|prev| p.task_definition == prev)
    };
    let Some(d) = svc.deployment(ours) else {
        return taken_over(svc, ours, other, is_previous);
    };
    if d.rollout_state.as_deref() == Some("FAILED") {
        // ECS said it: ours failed. A new primary of the previous revision is the breaker's
        // rollback; of another revision, someone else's deploy.
        let reason = d
            .rollout_state_reason
            .clone()
            .unwrap_or_else(|| "rollout failed".into());
        return match other {
            Some(p) if is_previous(p) => Verdict::RolledBack {
                reason,
                to: DeploymentRef::of(p),
            },
            Some(p) => Verdict::Superseded {
                by: DeploymentRef::of(p),
            },
            None => Verdict::Failed { reason },
        };
    }
    if d.status != "PRIMARY" {
        return taken_over(svc, ours, other, is_previous);
    }
    if !svc.breaker_enabled() {
        let bound = policy.failed_task_bound(d.desired);
        if d.failed_tasks >= 0 && d.failed_tasks as u32 >= bound {
            return Verdict::Failed {
                reason: Outside::new(&format!(
                    "{} task(s) of {} failed to start, reaching the bound of {bound} ([ecs] max_failed_tasks; default twice the desired count); the deployment circuit breaker is off, so ECS would keep trying",
                    d.failed_tasks,
                    d.revision()
                )),
            };
        }
    }
    match d.rollout_state.as_deref() {
        Some("COMPLETED") => Verdict::Completed,
        Some(_) => Verdict::InProgress,
        // Services without rolloutState (old APIs): done when ours is the only deployment
        // and fully running.
        None if svc.deployments.len() == 1 && d.running == d.desired && d.pending == 0 => {
            Verdict::Completed
        }
        None => Verdict::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_is_in_progress_while_the_primary_is_or_old_deployments_run() {
        let d = |id: &str, status: &str, state: Option<&str>| DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: format!("arn:aws:ecs:us-east-1:1:task-definition/f:{id}"),
            desired: 2,
            pending: 0,
            running: 2,
            failed_tasks: 0,
            rollout_state: state.map(str::to_string),
            rollout_state_reason: None,
            created_at: String::new(),
        };
        let svc = |deployments| ServiceView {
            name: "s".into(),
            status: "ACTIVE".into(),
            task_definition: String::new(),
            desired: 2,
            running: 2,
            pending: 0,
            deployments,
            events: Vec::new(),
            target_group_arns: Vec::new(),
            deployment_controller: None,
            strategy: None,
            circuit_breaker: None,
            load_balancer_containers: Vec::new(),
        };
        let busy = svc(vec![
            d("2", "PRIMARY", Some("IN_PROGRESS")),
            d("1", "ACTIVE", Some("COMPLETED")),
        ]);
        assert_eq!(rollout_in_progress(&busy).map(|d| d.id.as_str()), Some("2"));
        let done = svc(vec![
            d("2", "PRIMARY", Some("COMPLETED")),
            d("1", "ACTIVE", Some("COMPLETED")),
        ]);
        assert!(rollout_in_progress(&done).is_none());
        let old_style = svc(vec![d("2", "PRIMARY", None), d("1", "ACTIVE", None)]);
        assert!(rollout_in_progress(&old_style).is_some());
        assert!(rollout_in_progress(&svc(vec![d("2", "PRIMARY", None)])).is_none());
    }

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
            task_definition: td(rev),
            desired: 2,
            pending: 2 - running,
            running,
            failed_tasks: 0,
            rollout_state: rollout.map(str::to_string),
            rollout_state_reason: None,
            created_at: String::new(),
        }
    }

    fn td(rev: u32) -> String {
        format!("arn:aws:ecs:us-east-1:1:task-definition/bosar-api:{rev}")
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
            deployment_controller: None,
            strategy: None,
            circuit_breaker: Some(CircuitBreaker {
                enable: true,
                rollback: true,
            }),
            load_balancer_containers: vec![],
        }
    }

    /// This run deployed 42 over 41.
    fn ours_over_41() -> Policy {
        Policy {
            previous_task_definition: Some(td(41)),
            max_failed_tasks: None,
        }
    }

    fn to(id: &str, rev: u32) -> DeploymentRef {
        DeploymentRef {
            id: id.into(),
            revision: format!("bosar-api:{rev}"),
            task_definition: td(rev),
        }
    }

    #[test]
    fn in_progress_then_completed() {
        let p = ours_over_41();
        let s = svc(vec![
            dep("new", "PRIMARY", 42, 1, Some("IN_PROGRESS")),
            dep("old", "ACTIVE", 41, 2, Some("COMPLETED")),
        ]);
        assert_eq!(assess(&s, "new", &p), Verdict::InProgress);
        let s = svc(vec![dep("new", "PRIMARY", 42, 2, Some("COMPLETED"))]);
        assert_eq!(assess(&s, "new", &p), Verdict::Completed);
    }

    #[test]
    fn circuit_breaker_rollback_to_the_previous_revision() {
        let mut failed = dep("new", "ACTIVE", 42, 0, Some("FAILED"));
        failed.rollout_state_reason =
            Some("ECS deployment circuit breaker: tasks failed to start.".into());
        let s = svc(vec![
            dep("rb", "PRIMARY", 41, 1, Some("IN_PROGRESS")),
            failed.clone(),
        ]);
        assert_eq!(
            assess(&s, "new", &ours_over_41()),
            Verdict::RolledBack {
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                to: to("rb", 41),
            }
        );
        // The breaker without rollback: ours stays primary, failed.
        failed.status = "PRIMARY".into();
        let s = svc(vec![failed, dep("old", "ACTIVE", 41, 2, Some("COMPLETED"))]);
        assert!(matches!(
            assess(&s, "new", &ours_over_41()),
            Verdict::Failed { .. }
        ));
    }

    #[test]
    fn a_newer_deployment_of_someone_else_supersedes_ours() {
        let p = ours_over_41();
        // A teammate's deployment of 43 took over while ours was in progress.
        let s = svc(vec![
            dep("theirs", "PRIMARY", 43, 0, Some("IN_PROGRESS")),
            dep("new", "ACTIVE", 42, 1, Some("IN_PROGRESS")),
            dep("old", "ACTIVE", 41, 2, Some("COMPLETED")),
        ]);
        assert_eq!(
            assess(&s, "new", &p),
            Verdict::Superseded {
                by: to("theirs", 43)
            }
        );
        // Ours vanished and a deployment of the previous revision is primary, but ECS said
        // nothing about a rollback: someone redeployed 41, it is not the breaker.
        let s = svc(vec![dep("theirs", "PRIMARY", 41, 2, Some("COMPLETED"))]);
        assert_eq!(
            assess(&s, "new", &p),
            Verdict::Superseded {
                by: to("theirs", 41)
            }
        );
        // ... unless an event names our deployment's rollback.
        let mut s = s;
        s.events.push(EventView {
            id: "e".into(),
            created_at: String::new(),
            message: "(service bosar-api) (deployment new) deployment failed: tasks failed to start. rolling back to deployment theirs.".into(),
        });
        assert!(matches!(assess(&s, "new", &p), Verdict::RolledBack { .. }));
        // Ours failed and someone else's newer revision is primary: not a breaker rollback.
        let s = svc(vec![
            dep("theirs", "PRIMARY", 43, 0, Some("IN_PROGRESS")),
            dep("new", "ACTIVE", 42, 0, Some("FAILED")),
        ]);
        assert!(matches!(assess(&s, "new", &p), Verdict::Superseded { .. }));
        let s = svc(vec![]);
        assert_eq!(assess(&s, "new", &p), Verdict::Vanished);
    }

    #[test]
    fn with_the_breaker_off_failed_tasks_reach_a_bound() {
        let mut s = svc(vec![
            dep("new", "PRIMARY", 42, 0, Some("IN_PROGRESS")),
            dep("old", "ACTIVE", 41, 2, Some("COMPLETED")),
        ]);
        s.circuit_breaker = None;
        let p = ours_over_41();
        s.deployments[0].failed_tasks = 3;
        assert_eq!(assess(&s, "new", &p), Verdict::InProgress);
        s.deployments[0].failed_tasks = 4;
        match assess(&s, "new", &p) {
            Verdict::Failed { reason } => {
                assert!(
                    reason.to_string().starts_with(
                        "4 task(s) of bosar-api:42 failed to start, reaching the bound of 4"
                    ),
                    "{reason}"
                )
            }
            v => panic!("{v:?}"),
        }
        let p = Policy {
            max_failed_tasks: Some(10),
            ..p
        };
        assert_eq!(assess(&s, "new", &p), Verdict::InProgress);
        // With the breaker on, ECS decides.
        s.circuit_breaker = Some(CircuitBreaker {
            enable: true,
            rollback: false,
        });
        s.deployments[0].failed_tasks = 50;
        assert_eq!(assess(&s, "new", &ours_over_41()), Verdict::InProgress);
    }

    #[test]
    fn without_rollout_state_only_deployment_fully_running() {
        let p = Policy::default();
        let s = svc(vec![dep("new", "PRIMARY", 42, 2, None)]);
        assert_eq!(assess(&s, "new", &p), Verdict::Completed);
        let s = svc(vec![
            dep("new", "PRIMARY", 42, 2, None),
            dep("old", "ACTIVE", 41, 1, None),
        ]);
        assert_eq!(assess(&s, "new", &p), Verdict::InProgress);
    }

    #[test]
    fn refuses_controllers_and_strategies_it_cannot_roll() {
        let mut s = svc(vec![]);
        assert_eq!(rollout_refusal(&s), None);
        s.deployment_controller = Some("CODE_DEPLOY".into());
        assert!(rollout_refusal(&s)
            .unwrap()
            .contains("CODE_DEPLOY deployment controller"));
        s.deployment_controller = Some("EXTERNAL".into());
        assert!(rollout_refusal(&s).unwrap().contains("task sets"));
        s.deployment_controller = Some("ECS".into());
        // Traffic-shifting strategies are followed by the ECS-native watch (issue 18).
        for known in ["BLUE_GREEN", "CANARY", "LINEAR", "ROLLING"] {
            s.strategy = Some(known.into());
            assert_eq!(rollout_refusal(&s), None, "{known}");
        }
        s.strategy = Some("TELEPORT".into());
        assert!(rollout_refusal(&s)
            .unwrap()
            .contains("deployment strategy TELEPORT, which bosar-deploy does not know"));
        s.strategy = Some("ROLLING".into());
        assert_eq!(rollout_refusal(&s), None);
    }
}
