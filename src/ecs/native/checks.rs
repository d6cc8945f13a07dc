//! An ECS-native deployment as report checks, so JUnit and the GitHub step summary show what
//! the JSON payload has: the rollout itself, each stage with its start and end, each decision
//! of the gate with the action sent, and the way back. Pure.

use std::time::Duration;

use super::gate::{Action, Decision};
use super::watch::NativeReport;
use crate::report::{Check, CheckStatus};

/// Milliseconds between two RFC 3339 times (0 when either does not parse).
fn span_ms(from: &str, to: &str) -> u64 {
    let at = |t: &str| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok();
    match (at(from), at(to)) {
        (Some(a), Some(b)) => b.duration_since(a).map_or(0, |d| d.as_millis() as u64),
        _ => 0,
    }
}

fn decision_check(d: &Decision) -> Check {
    let weight = d.weight.map(|w| format!(" at {w}%")).unwrap_or_default();
    let audience = match d.audience {
        super::gate::Audience::Green => "green",
        super::gate::Audience::Production => "production",
    };
    let sent = match d.action {
        Action::Continue => "ContinueServiceDeployment CONTINUE",
        Action::Rollback => "ContinueServiceDeployment ROLLBACK",
        Action::StopRollback => "StopServiceDeployment ROLLBACK",
        Action::None => "nothing sent",
    };
    let why = if d.passed() { d.summary() } else { d.reason() };
    let error = d
        .error
        .as_deref()
        .map(|e| format!("; not sent: {e}"))
        .unwrap_or_default();
    Check::new(
        &format!("gate {}{weight} ({audience})", d.stage),
        if d.passed() {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        Duration::ZERO,
        format!("{why}; {sent}{error}"),
    )
}

/// `rollout` (the step's own verdict), then `stage NAME` per stage, `gate STAGE (audience)`
/// per decision, and `rollback` when there was one.
pub fn checks(rollout: CheckStatus, message: &str, n: &NativeReport) -> Vec<Check> {
    let mut out = vec![Check::new("rollout", rollout, Duration::ZERO, message)];
    for s in &n.stages {
        let (ms, ended) = match &s.ended {
            Some(e) => (span_ms(&s.started, e), e.as_str()),
            None => (0, "(running)"),
        };
        let mut c = Check::new(
            &format!("stage {}", s.name),
            CheckStatus::Pass,
            Duration::ZERO,
            format!("{} -> {ended}", s.started),
        );
        c.duration_ms = ms;
        out.push(c);
    }
    out.extend(n.gate.iter().map(decision_check));
    if let Some(r) = &n.rollback {
        let took = r
            .took_ms
            .map(|ms| format!(" in {}", crate::duration::format(Duration::from_millis(ms))))
            .unwrap_or_default();
        let mut c = Check::new(
            "rollback",
            if r.succeeded {
                CheckStatus::Warn
            } else {
                CheckStatus::Fail
            },
            Duration::ZERO,
            format!(
                "{} by {}{took}: {}",
                if r.succeeded {
                    "rolled back"
                } else {
                    "ROLLBACK_FAILED"
                },
                r.by,
                r.reason
            ),
        );
        c.duration_ms = r.took_ms.unwrap_or(0);
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::gate::{Audience, CheckLine};
    use super::super::stages::StageSpan;
    use super::super::watch::RollbackReport;
    use super::*;

    fn report() -> NativeReport {
        NativeReport {
            strategy: "CANARY".into(),
            deployment_arn: "arn:aws:ecs:us-east-1:1:service-deployment/c/s/d".into(),
            stages: vec![StageSpan {
                name: "BAKE_TIME".into(),
                started: "2026-12-05T10:00:00Z".into(),
                ended: Some("2026-12-05T10:01:30Z".into()),
            }],
            gate: vec![Decision {
                stage: "PRODUCTION_TRAFFIC_SHIFT".into(),
                weight: Some(20.0),
                audience: Audience::Production,
                checks: vec![CheckLine {
                    name: "auth".into(),
                    status: CheckStatus::Fail,
                    message: "bad signature".into(),
                }],
                action: Action::StopRollback,
                at: "2026-12-05T10:00:10Z".into(),
                error: None,
            }],
            rollback: Some(RollbackReport {
                reason: "the gate's checks failed".into(),
                by: "bosar-deploy".into(),
                requested: Some("2026-12-05T10:00:10Z".into()),
                completed: Some("2026-12-05T10:00:40Z".into()),
                took_ms: Some(30_000),
                succeeded: true,
            }),
        }
    }

    #[test]
    fn stages_decisions_and_the_way_back_become_checks() {
        let c = checks(CheckStatus::Fail, "rolled back", &report());
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rollout",
                "stage BAKE_TIME",
                "gate PRODUCTION_TRAFFIC_SHIFT at 20% (production)",
                "rollback"
            ]
        );
        assert_eq!(c[0].status, CheckStatus::Fail);
        assert_eq!(c[1].duration_ms, 90_000);
        assert_eq!(c[2].status, CheckStatus::Fail);
        assert!(
            c[2].message
                .ends_with("auth: bad signature; StopServiceDeployment ROLLBACK"),
            "{}",
            c[2].message
        );
        assert_eq!(c[3].status, CheckStatus::Warn);
        assert_eq!(c[3].duration_ms, 30_000);

        let mut r = report();
        r.gate[0].action = Action::None;
        r.rollback.as_mut().unwrap().succeeded = false;
        let c = checks(CheckStatus::Pass, "ok", &r);
        assert_eq!(c[2].status, CheckStatus::Pass);
        assert!(c[2].message.ends_with("nothing sent"), "{}", c[2].message);
        assert_eq!(c[3].status, CheckStatus::Fail);
        assert!(c[3].message.starts_with("ROLLBACK_FAILED by bosar-deploy"));
    }
}
