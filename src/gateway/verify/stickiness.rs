//! `stickiness`: round trips on the main polling session with the load balancer's cookies stay
//! on one target, and a control session without cookies loses its session (proof that
//! something balances and the cookies pin). The verdict is [`stickiness_verdict`].

use std::time::Duration;

use serde_json::{json, Value};
use url::Url;

use crate::gateway::polling::Polling;
use crate::gateway::session::Session;
use crate::gateway::{instance_of, Error, VerifySettings};
use crate::outside::Outside;
use crate::report::CheckStatus;

/// The round trips on one session with the cookies.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    pub planned: u32,
    pub ok: u32,
    /// The round (1-based) that failed and why.
    pub failure: Option<(u32, Error)>,
    /// Instance ids seen by `GET health_path` with the same cookies, one per round.
    pub instances: Vec<Outside>,
}

/// The control session without cookies.
#[derive(Debug, Clone)]
pub enum Control {
    /// Could not even open a session.
    NoSession(Error),
    /// Lost the session (400 Session ID unknown) at request `at` (the handshake is request 1).
    Lost { at: u32 },
    /// Failed otherwise at request `at`.
    Failed { at: u32, error: Error },
    /// Every round trip reached the session's target.
    Held { rounds: u32 },
    /// No control session was needed: the search for the targets' GETs without cookies
    /// already landed on this many different targets.
    Spread { targets: usize },
}

pub(super) async fn rounds_with_cookies(
    main: &mut Session,
    http: &Polling,
    s: &VerifySettings,
    read_instances: bool,
) -> Rounds {
    let mut r = Rounds {
        planned: s.stickiness_rounds,
        ..Rounds::default()
    };
    for i in 1..=s.stickiness_rounds {
        if let Err(e) = main.noop().await {
            r.failure = Some((i, e));
            break;
        }
        r.ok += 1;
        if read_instances {
            if let Ok(url) = http.url(&s.health_path) {
                if let Ok(reply) = http.get(url, http.request_timeout).await {
                    if let Some(i) = serde_json::from_slice::<Value>(&reply.body)
                        .ok()
                        .as_ref()
                        .and_then(instance_of)
                    {
                        r.instances.push(i);
                    }
                }
            }
        }
    }
    r
}

pub(super) async fn control_without_cookies(base: &Url, request: Duration, rounds: u32) -> Control {
    let http = match Polling::new(base, None, request) {
        Ok(h) => h,
        Err(e) => return Control::NoSession(e),
    };
    let mut session = match Session::open_polling(http).await {
        Ok((s, _)) => s,
        Err(e) => return Control::NoSession(e),
    };
    let mut result = Control::Held { rounds };
    for i in 1..=rounds {
        match session.noop().await {
            Ok(()) => {}
            Err(e) if e.is_session_unknown() => {
                result = Control::Lost { at: i + 1 };
                break;
            }
            Err(error) => {
                result = Control::Failed { at: i + 1, error };
                break;
            }
        }
    }
    session.abandon().await;
    result
}

fn distinct(v: &[Outside]) -> Vec<Outside> {
    let mut out: Vec<Outside> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// Failing without cookies and passing with them: pass. Both passing: warn. Failing with
/// cookies: fail.
pub fn stickiness_verdict(
    with: &Rounds,
    control: &Control,
    carried_awsalb: bool,
) -> (CheckStatus, String, Value) {
    let targets = distinct(&with.instances);
    let evidence = json!({
        "rounds": with.planned,
        "ok_with_cookies": with.ok,
        "targets_with_cookies": targets,
        "carried_awsalb": carried_awsalb,
        "control_without_cookies": match control {
            Control::NoSession(e) => json!({"result": "no session", "error": e.to_string()}),
            Control::Lost { at } => json!({"result": "lost", "at_request": at}),
            Control::Failed { at, error } => json!({"result": "failed", "at_request": at, "error": error.to_string()}),
            Control::Held { rounds } => json!({"result": "held", "rounds": rounds}),
            Control::Spread { targets } => json!({"result": "spread", "targets": targets}),
        },
    });
    if let Some((round, e)) = &with.failure {
        let msg = if e.is_session_unknown() && carried_awsalb {
            format!(
                "round trip {round} of {}: requests carrying AWSALB reached a target that did not know the session (HTTP 400 Session ID unknown)",
                with.planned
            )
        } else if e.is_session_unknown() {
            format!(
                "round trip {round} of {}: requests on one session reached a target that did not know the session (HTTP 400 Session ID unknown); no AWSALB cookie was set, so nothing pins a session to its target",
                with.planned
            )
        } else {
            format!("round trip {round} of {} failed: {e}", with.planned)
        };
        return (CheckStatus::Fail, msg, evidence);
    }
    if targets.len() > 1 {
        return (
            CheckStatus::Fail,
            format!(
                "requests carrying the same cookies reached several targets ({}): stickiness does not pin the session",
                targets.iter().map(|t| t.shown(80)).collect::<Vec<_>>().join(", ")
            ),
            evidence,
        );
    }
    let on = match targets.first() {
        Some(t) => format!(" on {}", t.shown(80)),
        None => String::new(),
    };
    match control {
        Control::Lost { at } => (
            CheckStatus::Pass,
            format!(
                "stickiness holds: {}/{} round trips with cookies stayed{on}; without cookies the session was lost at request {at} (400 Session ID unknown)",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::Spread { targets } => (
            CheckStatus::Pass,
            format!(
                "stickiness holds: {}/{} round trips with cookies stayed{on}; requests without cookies reached {targets} different targets",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::Held { rounds } => (
            CheckStatus::Warn,
            format!(
                "only one target reached or stickiness not exercised: {}/{} round trips with cookies stayed{on}, and so did {rounds} without cookies",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::NoSession(e) => (
            CheckStatus::Warn,
            format!(
                "{}/{} round trips with cookies stayed{on}; stickiness not exercised: the control without cookies got no session ({e})",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::Failed { at, error } => (
            CheckStatus::Warn,
            format!(
                "{}/{} round trips with cookies stayed{on}; stickiness not exercised: the control without cookies failed at request {at} ({error})",
                with.ok, with.planned
            ),
            evidence,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(ok: u32, failure: Option<(u32, Error)>, inst: &[&str]) -> Rounds {
        Rounds {
            planned: 20,
            ok,
            failure,
            instances: inst.iter().map(|s| Outside::new(s)).collect(),
        }
    }

    fn unknown() -> Error {
        Error::SessionUnknown {
            status: 400,
            body: "Session ID unknown".into(),
        }
    }

    #[test]
    fn stickiness_table() {
        let held = rounds(20, None, &["gw-1"; 20]);
        let (s, m, _) = stickiness_verdict(&held, &Control::Lost { at: 2 }, true);
        assert_eq!(s, CheckStatus::Pass, "{m}");
        assert!(m.starts_with("stickiness holds"), "{m}");
        let (s, m, _) = stickiness_verdict(&held, &Control::Held { rounds: 20 }, true);
        assert_eq!(s, CheckStatus::Warn);
        assert!(
            m.starts_with("only one target reached or stickiness not exercised"),
            "{m}"
        );
        let lost = rounds(0, Some((1, unknown())), &[]);
        let (s, m, _) = stickiness_verdict(&lost, &Control::Lost { at: 2 }, true);
        assert_eq!(s, CheckStatus::Fail);
        assert!(
            m.contains("requests carrying AWSALB reached a target that did not know the session"),
            "{m}"
        );
        let (s, m, _) = stickiness_verdict(&lost, &Control::Lost { at: 2 }, false);
        assert_eq!(s, CheckStatus::Fail);
        assert!(
            m.contains("reached a target that did not know the session"),
            "{m}"
        );
        assert!(m.contains("no AWSALB cookie"), "{m}");
        let (s, m, _) = stickiness_verdict(&held, &Control::Spread { targets: 2 }, true);
        assert_eq!(s, CheckStatus::Pass, "{m}");
        assert!(
            m.ends_with("requests without cookies reached 2 different targets"),
            "{m}"
        );
        let spread = rounds(20, None, &["a", "b"]);
        assert_eq!(
            stickiness_verdict(&spread, &Control::Lost { at: 2 }, true).0,
            CheckStatus::Fail
        );
    }
}
