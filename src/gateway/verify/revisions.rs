//! Production during a canary or linear step serves two revisions at once: blue's tasks with
//! the settings they were started with, green's with the new ones. A deploy that changes
//! `WEBSOCKET_PING_INTERVAL` would otherwise see every blue task fail the handshake check and
//! roll back a good green. So each target is judged against the revision it runs: a target
//! that fails under the new settings but passes every check under the previous ones is a blue
//! task doing what it should ([`by_revision`], pure).

use std::time::Duration;

use super::fleet::TargetRun;
use super::table::FleetReport;
use super::targets::Expected;
use super::verify_targets;
use crate::gateway::VerifySettings;
use crate::report::CheckStatus;
use crate::ui::Ui;

/// The milliseconds settings blue was started with, where they differ from the new ones
/// (`WEBSOCKET_PING_INTERVAL` etc. as the deploy's plan changes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Previous {
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub heartbeat_interval: Option<Duration>,
}

impl Previous {
    /// From the environment changes of the plan, `(variable, value before)`; values that are
    /// not whole milliseconds are ignored (the new settings judge those targets).
    pub fn from_changes<'a>(changed: impl IntoIterator<Item = (&'a str, &'a str)>) -> Previous {
        let mut p = Previous::default();
        for (name, from) in changed {
            let Ok(ms) = from.trim().parse::<u64>() else {
                continue;
            };
            let d = Some(Duration::from_millis(ms));
            match name {
                "WEBSOCKET_PING_INTERVAL" => p.ping_interval = d,
                "WEBSOCKET_PING_TIMEOUT" => p.ping_timeout = d,
                "WEBSOCKET_HEARTBEAT_INTERVAL" => p.heartbeat_interval = d,
                _ => {}
            }
        }
        p
    }

    /// The settings blue serves, or `None` when they are the new ones.
    pub fn settings(&self, new: &VerifySettings) -> Option<VerifySettings> {
        let mut old = new.clone();
        old.ping_interval = self.ping_interval.unwrap_or(new.ping_interval);
        old.ping_timeout = self.ping_timeout.unwrap_or(new.ping_timeout);
        old.heartbeat_interval = self.heartbeat_interval.unwrap_or(new.heartbeat_interval);
        let same = old.ping_interval == new.ping_interval
            && old.ping_timeout == new.ping_timeout
            && old.heartbeat_interval == new.heartbeat_interval;
        (!same).then_some(old)
    }
}

/// Each target of `new_runs` that failed, replaced by its run under the previous settings
/// when that one passed (no failed check), its checks saying so. Targets are matched by
/// label (the instance id).
pub fn by_revision(new_runs: Vec<TargetRun>, old_runs: &[TargetRun]) -> Vec<TargetRun> {
    new_runs
        .into_iter()
        .map(|r| {
            if r.status() != CheckStatus::Fail {
                return r;
            }
            match old_runs
                .iter()
                .find(|o| o.label == r.label && o.status() != CheckStatus::Fail)
            {
                Some(o) => TargetRun {
                    checks: o
                        .checks
                        .iter()
                        .cloned()
                        .map(|mut c| {
                            c.message = format!("as the previous revision: {}", c.message);
                            c
                        })
                        .collect(),
                    ..r
                },
                None => r,
            }
        })
        .collect()
}

/// Every target's checks, each against the revision it runs: the new settings first; when a
/// target fails and `previous` differs, the fleet is verified again under the previous
/// settings and [`by_revision`] decides.
pub async fn verify_revisions(
    new: &VerifySettings,
    previous: Option<&VerifySettings>,
    expected: Expected,
    ui: &Ui,
) -> FleetReport {
    let fleet = verify_targets(new, expected.clone(), ui).await;
    let Some(old) = previous else {
        return fleet;
    };
    if fleet.runs.iter().all(|r| r.status() != CheckStatus::Fail) {
        return fleet;
    }
    let before = verify_targets(old, expected, ui).await;
    let runs = by_revision(fleet.runs, &before.runs);
    FleetReport::new(fleet.expected, fleet.search, runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;

    fn run(label: &str, status: CheckStatus) -> TargetRun {
        TargetRun {
            label: label.into(),
            instance: None,
            checks: vec![Check::new("handshake", status, Duration::ZERO, "said so")],
        }
    }

    /// A blue target that passes under blue's settings is judged by them; a target that fails
    /// both ways stays failed; a passing target is left as it is.
    #[test]
    fn each_target_is_judged_by_its_revision() {
        let new = vec![
            run("blue-1", CheckStatus::Fail),
            run("green-1", CheckStatus::Pass),
            run("broken", CheckStatus::Fail),
        ];
        let old = vec![
            run("blue-1", CheckStatus::Pass),
            run("green-1", CheckStatus::Fail),
            run("broken", CheckStatus::Fail),
        ];
        let judged = by_revision(new, &old);
        assert_eq!(judged[0].status(), CheckStatus::Pass);
        assert!(judged[0].checks[0]
            .message
            .starts_with("as the previous revision: "));
        assert_eq!(judged[1].status(), CheckStatus::Pass);
        assert_eq!(judged[1].checks[0].message, "said so");
        assert_eq!(judged[2].status(), CheckStatus::Fail);
        // Another target's pass under the old settings does not rescue this one.
        let judged = by_revision(
            vec![run("x", CheckStatus::Fail)],
            &[run("y", CheckStatus::Pass)],
        );
        assert_eq!(judged[0].status(), CheckStatus::Fail);
    }

    #[test]
    fn previous_settings_come_from_the_changed_variables() {
        let p = Previous::from_changes([
            ("WEBSOCKET_PING_INTERVAL", "25000"),
            ("LOG_LEVEL", "debug"),
            ("WEBSOCKET_PING_TIMEOUT", "not a number"),
        ]);
        assert_eq!(p.ping_interval, Some(Duration::from_millis(25000)));
        assert_eq!(p.ping_timeout, None);
        assert_eq!(p.heartbeat_interval, None);
        assert_eq!(Previous::default(), Previous::from_changes([]));
    }
}
