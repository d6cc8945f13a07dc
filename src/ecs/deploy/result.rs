//! What a `deploy` did, for every report (text, JSON, JUnit): the plan, what was registered
//! and started, how the watch and any rollback ended, and when the rollout ran.

use serde::Serialize;

use super::register::Registration;
use super::{native, DeployPlan};
use crate::ecs::taskdef::revision_label;
use crate::ecs::watch::WatchOutcome;
use crate::exit::Code;
use crate::ui::Ui;

/// Result of `deploy` for reports.
#[derive(Debug, Clone, Serialize)]
pub struct DeployResult {
    pub plan: DeployPlan,
    /// The revision this run registered, also when a later step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_task_definition: Option<String>,
    /// `registered`, or `adopted`: RegisterTaskDefinition's answer was lost and the revision
    /// carrying this run's tag was taken instead of registering again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<&'static str>,
    /// Whether the service points at the registered revision (`None`: nothing registered,
    /// or it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_uses_registered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<WatchOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<WatchOutcome>,
    /// The preflight checks run on the revision before it was registered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<crate::report::Check>,
    /// An ECS-native deployment's strategy, stages, gate decisions and rollback.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub native: Option<native::watch::NativeReport>,
    /// UpdateService changed the service's deploymentConfiguration (`[ecs.deployment]`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub configuration_updated: bool,
    /// When this run started the rollout (just before it was sent) and when the run stopped
    /// following it, RFC 3339 with milliseconds: `report merge --deploy` places shards' drops
    /// against them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_ended_at: Option<String>,
}

/// Now, RFC 3339 with milliseconds.
pub(super) fn now_text() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl DeployResult {
    pub fn new(plan: DeployPlan) -> DeployResult {
        DeployResult {
            preflight: Vec::new(),
            plan,
            registered_task_definition: None,
            registration: None,
            service_uses_registered: None,
            deployment_id: None,
            task_definition: None,
            outcome: None,
            rollback: None,
            native: None,
            configuration_updated: false,
            rollout_started_at: None,
            rollout_ended_at: None,
        }
    }

    pub fn code(&self) -> Code {
        self.outcome
            .as_ref()
            .map(|o| o.code())
            .unwrap_or(Code::Success)
    }

    pub(super) fn note_registration(&mut self, reg: Option<Registration>) {
        if let Some(reg) = reg {
            self.registration = Some(if reg.adopted { "adopted" } else { "registered" });
            self.registered_task_definition = Some(reg.arn);
        }
    }

    /// Where the service stands after an error that came after RegisterTaskDefinition.
    pub(super) fn orphan_note(&self, ui: &Ui) -> Option<String> {
        let reg = revision_label(self.registered_task_definition.as_deref()?);
        let cur = &self.plan.current_revision;
        Some(match (self.service_uses_registered, &self.deployment_id) {
            (Some(true), Some(d)) => format!(
                "{reg} was registered and the service points at it (deployment {d} goes on in AWS); follow it with: {}",
                ui.command(&format!("wait --deployment {}", crate::ui::shell_quote(d)))
            ),
            (Some(true), None) => format!("{reg} was registered and the service points at it"),
            (Some(false), _) => format!(
                "{reg} was registered but the service still runs {cur}; deploy again (a new revision is registered), or remove it: aws ecs deregister-task-definition --task-definition {reg}"
            ),
            (None, _) => format!(
                "{reg} was registered; whether the service points at it is unknown: `{}` shows it",
                ui.command("status")
            ),
        })
    }
}
