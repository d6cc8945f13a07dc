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
/// (`WEBSOCKET_PING_INTERVAL` etc. as the deploy's plan changes them), and the variables blue
/// did not set at all (the plan adds them): blue runs the gateway's own default there, which
/// this tool cannot know, so the checks that depend on them are not judged for blue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Previous {
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub heartbeat_interval: Option<Duration>,
    /// Variables absent from blue's environment.
    pub unset: Vec<&'static str>,
}

/// The checks each variable governs.
const GOVERNS: [(&str, &[&str]); 3] = [
    ("WEBSOCKET_PING_INTERVAL", &["handshake", "ping"]),
    ("WEBSOCKET_PING_TIMEOUT", &["handshake"]),
    ("WEBSOCKET_HEARTBEAT_INTERVAL", &["heartbeat"]),
];

/// Blue's settings, and the checks not judged for blue (`(check, variable)`).
#[derive(Debug, Clone)]
pub struct Blue {
    pub settings: VerifySettings,
    pub unjudged: Vec<(&'static str, &'static str)>,
}

impl Previous {
    /// From the environment changes of the plan, `(variable, value before)`, the value empty
    /// for a variable the plan adds; values that are not whole milliseconds are ignored (the
    /// new settings judge those targets).
    pub fn from_changes<'a>(changed: impl IntoIterator<Item = (&'a str, &'a str)>) -> Previous {
        let mut p = Previous::default();
        for (name, from) in changed {
            if from.is_empty() {
                if let Some((var, _)) = GOVERNS.iter().find(|(v, _)| *v == name) {
                    p.unset.push(var);
                }
                continue;
            }
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

    /// What blue serves, or `None` when it is what the new settings describe.
    pub fn blue(&self, new: &VerifySettings) -> Option<Blue> {
        let mut old = new.clone();
        old.ping_interval = self.ping_interval.unwrap_or(new.ping_interval);
        old.ping_timeout = self.ping_timeout.unwrap_or(new.ping_timeout);
        old.heartbeat_interval = self.heartbeat_interval.unwrap_or(new.heartbeat_interval);
        let same = old.ping_interval == new.ping_interval
            && old.ping_timeout == new.ping_timeout
            && old.heartbeat_interval == new.heartbeat_interval;
        let unjudged: Vec<(&'static str, &'static str)> = GOVERNS
            .iter()
            .filter(|(var, _)| self.unset.contains(var))
            .flat_map(|(var, checks)| checks.iter().map(move |c| (*c, *var)))
            .collect();
        (!same || !unjudged.is_empty()).then_some(Blue {
            settings: old,
            unjudged,
        })
    }
}

/// A run under blue's settings with the checks blue cannot be judged on turned into
/// warnings that say why, every message saying how it was judged.
fn as_blue(run: &TargetRun, unjudged: &[(&str, &str)]) -> TargetRun {
    let checks = run
        .checks
        .iter()
        .cloned()
        .map(|mut c| {
            match unjudged.iter().find(|(check, _)| *check == c.name) {
                Some((_, var)) if c.status == CheckStatus::Fail => {
                    c.status = CheckStatus::Warn;
                    c.message = format!(
                        "as the previous revision: not judged, it did not set {var} (the gateway's own default applies): {}",
                        c.message
                    );
                }
                _ => c.message = format!("as the previous revision: {}", c.message),
            }
            c
        })
        .collect();
    TargetRun {
        label: run.label.clone(),
        instance: run.instance.clone(),
        checks,
    }
}

/// Each target of `new_runs` that failed, replaced by its run under blue's settings when that
/// one passed (no failed check once the unjudged ones are set aside). Targets are matched by
/// label (the instance id).
pub fn by_revision(
    new_runs: Vec<TargetRun>,
    old_runs: &[TargetRun],
    unjudged: &[(&str, &str)],
) -> Vec<TargetRun> {
    new_runs
        .into_iter()
        .map(|r| {
            if r.status() != CheckStatus::Fail {
                return r;
            }
            old_runs
                .iter()
                .filter(|o| o.label == r.label)
                .map(|o| as_blue(o, unjudged))
                .find(|o| o.status() != CheckStatus::Fail)
                .unwrap_or(r)
        })
        .collect()
}

/// The checks whose timing depends on the ping and heartbeat settings.
const TIMED: [&str; 3] = ["handshake", "heartbeat", "ping"];

/// Whether a target's open packet announced blue's ping settings (those this deployment
/// changes). Only known values tell: when blue did not set a ping variable, its value is the
/// gateway's own default, and a green that ignores its new value would look the same, so no
/// target is taken for blue by its handshake (the second run under blue's settings decides).
fn announces_blue(run: &TargetRun, new: &VerifySettings, blue: &Blue) -> bool {
    let ping_unset = blue
        .unjudged
        .iter()
        .any(|(_, v)| *v == "WEBSOCKET_PING_INTERVAL" || *v == "WEBSOCKET_PING_TIMEOUT");
    if ping_unset {
        return false;
    }
    let Some(ev) = run
        .checks
        .iter()
        .find(|c| c.name == "handshake")
        .map(|c| &c.evidence)
    else {
        return false;
    };
    let (Some(pi), Some(pt)) = (ev["pingInterval"].as_u64(), ev["pingTimeout"].as_u64()) else {
        return false;
    };
    let ms = |d: Duration| d.as_millis() as u64;
    let s = &blue.settings;
    let pi_changed = s.ping_interval != new.ping_interval;
    let pt_changed = s.ping_timeout != new.ping_timeout;
    (pi_changed || pt_changed)
        && (!pi_changed || pi == ms(s.ping_interval))
        && (!pt_changed || pt == ms(s.ping_timeout))
}

/// Failed targets whose open packet announces blue's ping settings are blue's tasks. The gate
/// judges the new revision: what fails on blue is reported as a warning, never a rollback
/// (going back to blue would not mend it, and ECS drains blue at clean-up while a judgement
/// may still be running). The checks timed by the settings this deployment changes say they
/// were not judged against the new values; the others say whose task failed. Needs no second
/// run, so a blue with long intervals is judged as fast as green.
pub fn by_handshake(runs: Vec<TargetRun>, new: &VerifySettings, blue: &Blue) -> Vec<TargetRun> {
    runs.into_iter()
        .map(|mut r| {
            if r.status() != CheckStatus::Fail || !announces_blue(&r, new, blue) {
                return r;
            }
            for c in r.checks.iter_mut().filter(|c| c.status == CheckStatus::Fail) {
                c.status = CheckStatus::Warn;
                c.message = if TIMED.contains(&c.name.as_str()) {
                    format!(
                        "as the previous revision: its open packet announces the previous revision's ping settings; not judged against the new ones: {}",
                        c.message
                    )
                } else {
                    format!(
                        "as the previous revision: on a task of the previous revision, not this deployment's to judge: {}",
                        c.message
                    )
                };
            }
            r
        })
        .collect()
}

/// Every target's checks, each against the revision it runs: the new settings first; failed
/// targets that announce blue's ping settings are judged as blue ([`by_handshake`]); when
/// others still fail and blue's settings differ, the fleet is verified again under them and
/// [`by_revision`] decides.
pub async fn verify_revisions(
    new: &VerifySettings,
    blue: Option<&Blue>,
    expected: Expected,
    ui: &Ui,
) -> FleetReport {
    let fleet = verify_targets(new, expected.clone(), ui).await;
    let Some(blue) = blue else {
        return fleet;
    };
    if fleet.runs.iter().all(|r| r.status() != CheckStatus::Fail) {
        return fleet;
    }
    let runs = by_handshake(fleet.runs, new, blue);
    if runs.iter().all(|r| r.status() != CheckStatus::Fail) {
        return FleetReport::new(fleet.expected, fleet.search, runs);
    }
    let before = verify_targets(&blue.settings, expected, ui).await;
    let runs = by_revision(runs, &before.runs, &blue.unjudged);
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
        let judged = by_revision(new, &old, &[]);
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
            &[],
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
        assert!(p.unset.is_empty());
        assert_eq!(Previous::default(), Previous::from_changes([]));
        let added = Previous::from_changes([("WEBSOCKET_HEARTBEAT_INTERVAL", ""), ("OTHER", "")]);
        assert_eq!(added.unset, ["WEBSOCKET_HEARTBEAT_INTERVAL"]);
    }

    /// A check governed by a variable blue did not set fails only as a warning for blue;
    /// any other failed check still fails the target.
    #[test]
    fn checks_on_a_variable_blue_did_not_set_are_not_judged() {
        let unjudged = [("heartbeat", "WEBSOCKET_HEARTBEAT_INTERVAL")];
        let mut old = run("blue-1", CheckStatus::Pass);
        old.checks.push(Check::new(
            "heartbeat",
            CheckStatus::Fail,
            Duration::ZERO,
            "no heartbeat",
        ));
        let judged = by_revision(
            vec![run("blue-1", CheckStatus::Fail)],
            &[old.clone()],
            &unjudged,
        );
        assert_eq!(judged[0].status(), CheckStatus::Warn);
        assert!(judged[0].checks[1]
            .message
            .contains("it did not set WEBSOCKET_HEARTBEAT_INTERVAL"));
        // Without the variable unset, the heartbeat failure stands.
        let judged = by_revision(vec![run("blue-1", CheckStatus::Fail)], &[old.clone()], &[]);
        assert_eq!(judged[0].status(), CheckStatus::Fail);
        // Another check's failure is judged.
        old.checks[0].status = CheckStatus::Fail;
        let judged = by_revision(vec![run("blue-1", CheckStatus::Fail)], &[old], &unjudged);
        assert_eq!(judged[0].status(), CheckStatus::Fail);
    }

    fn settings(ping_ms: u64) -> VerifySettings {
        let mut gw = crate::config::GatewaySection::with_url("http://127.0.0.1:1");
        gw.ping_interval = Duration::from_millis(ping_ms);
        VerifySettings::from_config(&gw, None, false).unwrap()
    }

    /// A target whose handshake failed, announcing `ping_ms`, and whose `other` check failed
    /// or passed.
    fn announcing(label: &str, ping_ms: u64, other: CheckStatus) -> TargetRun {
        let handshake = Check::new(
            "handshake",
            CheckStatus::Fail,
            Duration::ZERO,
            "pingInterval",
        )
        .with_evidence(serde_json::json!({"pingInterval": ping_ms, "pingTimeout": 20000}));
        TargetRun {
            label: label.into(),
            instance: None,
            checks: vec![
                handshake,
                Check::new("heartbeat", CheckStatus::Fail, Duration::ZERO, "late"),
                Check::new("auth", other, Duration::ZERO, "token"),
            ],
        }
    }

    /// A target announcing blue's ping interval is blue: its failures warn, saying why; a
    /// target announcing a third value is not blue.
    #[test]
    fn a_target_announcing_blues_ping_settings_is_judged_as_blue() {
        let new = settings(10_000);
        let blue = Previous::from_changes([("WEBSOCKET_PING_INTERVAL", "25000")])
            .blue(&new)
            .unwrap();
        let judged = by_handshake(
            vec![
                announcing("blue", 25_000, CheckStatus::Pass),
                announcing("blue-broken", 25_000, CheckStatus::Fail),
                announcing("odd", 12_345, CheckStatus::Pass),
            ],
            &new,
            &blue,
        );
        assert_eq!(judged[0].status(), CheckStatus::Warn, "{:?}", judged[0]);
        assert!(judged[0].checks[1]
            .message
            .starts_with("as the previous revision: "));
        assert_eq!(judged[1].status(), CheckStatus::Warn);
        assert!(judged[1].checks[2]
            .message
            .contains("not this deployment's to judge"));
        assert_eq!(judged[2].status(), CheckStatus::Fail);
        // A ping variable blue did not set: its value is unknown, so the handshake tells
        // nothing (a green ignoring its new value would look the same).
        let unset = Previous::from_changes([("WEBSOCKET_PING_INTERVAL", "")])
            .blue(&new)
            .unwrap();
        let judged = by_handshake(
            vec![announcing("blue?", 12_345, CheckStatus::Pass)],
            &new,
            &unset,
        );
        assert_eq!(judged[0].status(), CheckStatus::Fail);
        // Nothing about the ping settings changed: the handshake cannot tell blue apart.
        let hb_only = Previous::from_changes([("WEBSOCKET_HEARTBEAT_INTERVAL", "5000")])
            .blue(&new)
            .unwrap();
        let judged = by_handshake(
            vec![announcing("x", 10_000, CheckStatus::Pass)],
            &new,
            &hb_only,
        );
        assert_eq!(judged[0].status(), CheckStatus::Fail);
    }
}
