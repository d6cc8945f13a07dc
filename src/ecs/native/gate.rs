//! The gate's decisions, pure: what the checks said, turned into the action sent to ECS.
//! Fail closed: a judge that errors, panics or returns no check counts as a failed check,
//! so green never reaches production on a judgement that was not made.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

use crate::report::{Check, CheckStatus};

/// Who is judged: green alone before production traffic (the test listener's URL), or
/// production (what users reach) from the production shift to the end of the bake time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Green,
    Production,
}

/// What a judgement returns.
pub type Judged<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Vec<Check>>> + 'a>>;

/// Runs the checks. The verify code implements it above `ecs` (which never imports the
/// gateway client); tests inject their verdicts. Object-safe, so the rollout options carry
/// one without making every verb generic.
pub trait Judge {
    fn judge<'a>(&'a self, audience: Audience, ui: &'a crate::ui::Ui) -> Judged<'a>;

    /// The environment variables this deployment changes, with blue's values
    /// (`(variable, value before)`, empty when blue did not set it): during a canary or linear step production serves both
    /// revisions, and each target is judged against its own. Ignored by default.
    fn serving_before(&self, _changed: &[(String, String)]) {}
}

/// The judge a gated rollout uses, shared and printable with the rollout options.
#[derive(Clone)]
pub struct GateJudge(pub Arc<dyn Judge + Send + Sync>);

impl std::fmt::Debug for GateJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateJudge")
    }
}

/// The gate's settings, as the config's `[ecs.deployment] gate` maps into them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// The owned hook's timeout (1-20160 minutes, the API's range); its action is ROLLBACK.
    pub timeout_minutes: u32,
}

impl From<&crate::config::GateSection> for GateSettings {
    fn from(g: &crate::config::GateSection) -> Self {
        GateSettings {
            timeout_minutes: crate::config::whole_minutes(g.timeout).max(0) as u32,
        }
    }
}

/// What the gate sent to ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// ContinueServiceDeployment CONTINUE.
    #[serde(rename = "CONTINUE")]
    Continue,
    /// ContinueServiceDeployment ROLLBACK.
    #[serde(rename = "ROLLBACK")]
    Rollback,
    /// StopServiceDeployment ROLLBACK.
    #[serde(rename = "STOP_ROLLBACK")]
    StopRollback,
    /// Production passed: nothing to send, the deployment goes on.
    #[serde(rename = "NONE")]
    None,
}

/// One check as a decision records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
}

/// The first decision that failed the deployment, if any: a deployment that then ends
/// SUCCESSFUL (a rollback refused, late or never sent) is still a failure.
pub fn overruled(decisions: &[Decision]) -> Option<&Decision> {
    decisions.iter().find(|d| !d.passed())
}

/// One decision of the gate, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    pub audience: Audience,
    pub checks: Vec<CheckLine>,
    pub action: Action,
    /// RFC 3339.
    pub at: String,
    /// Why the action could not be sent, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Decision {
    /// "3 checks, 1 failed" and the like.
    pub fn summary(&self) -> String {
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .count();
        format!("{} check(s), {failed} failed", self.checks.len())
    }
    pub fn passed(&self) -> bool {
        matches!(self.action, Action::Continue | Action::None)
    }
    /// The failed checks, "name: message; …": the rollback's reason.
    pub fn reason(&self) -> String {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        format!(
            "the gate's checks failed at {}: {}",
            self.stage,
            failed.join("; ")
        )
    }
}

/// The checks a judgement yielded; an error or an empty list becomes one failed check.
pub fn checks_of(judged: anyhow::Result<Vec<Check>>) -> Vec<CheckLine> {
    match judged {
        Ok(checks) if !checks.is_empty() => checks
            .iter()
            .map(|c| CheckLine {
                name: c.name.clone(),
                status: c.status,
                message: c.message.clone(),
            })
            .collect(),
        Ok(_) => vec![CheckLine {
            name: "gate".into(),
            status: CheckStatus::Fail,
            message: "the judge ran no check".into(),
        }],
        Err(e) => vec![CheckLine {
            name: "gate".into(),
            status: CheckStatus::Fail,
            message: format!(
                "the judge failed: {}",
                crate::outside::Outside::new(&format!("{e:#}"))
            ),
        }],
    }
}

/// The action for `checks`: any failed check rolls back (before production by the hook's
/// ROLLBACK, after it by StopServiceDeployment); warnings and skips do not.
pub fn action_for(audience: Audience, checks: &[CheckLine]) -> Action {
    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    match (audience, failed) {
        (Audience::Green, false) => Action::Continue,
        (Audience::Green, true) => Action::Rollback,
        (Audience::Production, false) => Action::None,
        (Audience::Production, true) => Action::StopRollback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, status: CheckStatus) -> Check {
        Check::new(name, status, std::time::Duration::from_millis(5), "said so")
    }

    #[test]
    fn any_failed_check_rolls_back_and_warnings_do_not() {
        let pass = checks_of(Ok(vec![
            check("handshake", CheckStatus::Pass),
            check("stickiness", CheckStatus::Warn),
        ]));
        assert_eq!(action_for(Audience::Green, &pass), Action::Continue);
        assert_eq!(action_for(Audience::Production, &pass), Action::None);
        let fail = checks_of(Ok(vec![
            check("handshake", CheckStatus::Pass),
            check("auth", CheckStatus::Fail),
        ]));
        assert_eq!(action_for(Audience::Green, &fail), Action::Rollback);
        assert_eq!(
            action_for(Audience::Production, &fail),
            Action::StopRollback
        );
        let d = Decision {
            stage: "POST_SCALE_UP".into(),
            weight: None,
            audience: Audience::Green,
            checks: fail,
            action: Action::Rollback,
            at: "t".into(),
            error: None,
        };
        assert!(!d.passed());
        assert_eq!(
            d.reason(),
            "the gate's checks failed at POST_SCALE_UP: auth: said so"
        );
        let ok = Decision {
            action: Action::Continue,
            checks: pass,
            ..d.clone()
        };
        assert!(overruled(std::slice::from_ref(&ok)).is_none());
        let both = [ok, d];
        assert_eq!(overruled(&both).map(|x| x.action), Some(Action::Rollback));
    }

    #[test]
    fn a_judge_that_errs_or_checks_nothing_fails_closed() {
        let erred = checks_of(Err(anyhow::anyhow!("connection refused")));
        assert_eq!(erred[0].status, CheckStatus::Fail);
        assert!(erred[0].message.contains("connection refused"));
        assert_eq!(action_for(Audience::Green, &erred), Action::Rollback);
        let empty = checks_of(Ok(Vec::new()));
        assert_eq!(action_for(Audience::Green, &empty), Action::Rollback);
        assert_eq!(
            action_for(Audience::Production, &empty),
            Action::StopRollback
        );
    }
}
