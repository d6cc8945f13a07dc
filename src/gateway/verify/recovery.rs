//! `recovery` (`[gateway] recovery`): connection state recovery (socket.io 4.6+). When the
//! gateway enables it, the CONNECT answer carries a `pid`, broadcast events carry an offset as
//! their last argument, and a client that comes back with `{pid, offset}` in its CONNECT auth
//! resumes its session (the answer names the same `pid`) and gets what it missed. With the
//! default in-memory adapter that works only on the task that held the session: a deploy's
//! reconnects land on other tasks and start fresh, and the messages sent meanwhile are lost.
//!
//! The check joins with the token, waits for an event with an offset, drops the transport
//! (no DISCONNECT: as a network cut does), and comes back with the pid and the offset, first
//! through another target's cookie (another task), then through this target's (the same
//! task). The verdict is [`recovery_verdict`], pure.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::auth::auth_json;
use super::check;
use crate::gateway::codec::SioKind;
use crate::gateway::polling::Polling;
use crate::gateway::session::{NsReply, Session};
use crate::gateway::{fmt_duration, slack, VerifySettings};
use crate::report::{Check, CheckStatus};

/// What one run saw; `None`: that step was not reached (or not tried).
#[derive(Debug, Clone, Default)]
pub struct RecoveryFacts {
    /// Why the first session could not join, when it could not.
    pub error: Option<String>,
    /// The `pid` of the first CONNECT answer.
    pub pid: Option<String>,
    /// The offset of the first event that carried one.
    pub offset: Option<String>,
    /// How long the check waited for an event with an offset.
    pub waited: Duration,
    /// Coming back through another target: recovered or not (`None`: one target only).
    pub other: Option<Result<bool, String>>,
    /// Coming back through this target (`None`: not needed, the other one recovered).
    pub same: Option<Result<bool, String>>,
}

const MEANS_FRESH: &str = "sessions a deploy drops come back on other tasks as fresh sessions, and the events sent meanwhile are lost unless the app replays them; an adapter that keeps state (Redis Streams, MongoDB) recovers them on any task";

/// The verdict. `expect`: `[gateway] recovery`.
pub fn recovery_verdict(expect: bool, f: &RecoveryFacts) -> (CheckStatus, String) {
    use CheckStatus::{Fail, Pass, Warn};
    if let Some(e) = &f.error {
        return (Fail, format!("could not join with the token: {e}"));
    }
    if !expect {
        return match &f.pid {
            None => (Pass, "no pid in the CONNECT answer: the gateway offers no connection state recovery, as recovery = false expects".into()),
            Some(_) => (Fail, "the CONNECT answer carries a pid: the gateway enables connection state recovery, but recovery = false says it should not".into()),
        };
    }
    if f.pid.is_none() {
        return (Fail, "no pid in the CONNECT answer: connection state recovery is off (socket.io 4.6+ server option connectionStateRecovery); sessions dropped by a deploy always start over".into());
    }
    if f.offset.is_none() {
        return (Fail, format!("no event with an offset within {}: socket.io recovers a session only from the offset of a broadcast event (io.to(room).emit, no ack), and this session got none, so it cannot be recovered", fmt_duration(f.waited)));
    }
    let word = |r: &Result<bool, String>| match r {
        Ok(true) => "recovered".to_string(),
        Ok(false) => "not recovered (a fresh session)".to_string(),
        Err(e) => format!("could not come back: {e}"),
    };
    match (&f.other, &f.same) {
        (Some(Ok(true)), _) => (Pass, "recovered on another task: the adapter shares the sessions' state, so sessions a deploy drops resume where they were".into()),
        (_, None) | (_, Some(Err(_))) | (_, Some(Ok(false))) => {
            let same = f.same.as_ref().map(word).unwrap_or_else(|| "not tried".into());
            (Fail, format!("not recovered on the same task ({same}): clients that come back within maxDisconnectionDuration start over"))
        }
        (None, Some(Ok(true))) => (Pass, "recovered on the same task; another task was not tried (one target reached)".into()),
        (Some(other), Some(Ok(true))) => (Warn, format!("recovered on the same task only; on another task {}: {MEANS_FRESH}", word(other))),
    }
}

/// Joins `namespace` with the token (and `pid`/`offset` when coming back): the answer's pid.
async fn join(
    http: &Polling,
    s: &VerifySettings,
    back: Option<(&str, &str)>,
) -> Result<(Session, Option<String>), String> {
    let mut session = Session::open_ws(http.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut auth = s.token.as_ref().map(auth_json).unwrap_or_else(|| json!({}));
    if let (Some((pid, offset)), Value::Object(m)) = (back, &mut auth) {
        m.insert("pid".into(), json!(pid));
        m.insert("offset".into(), json!(offset));
    }
    match session.connect_namespace(&s.namespace, Some(auth)).await {
        Ok(NsReply::Connected { pid, .. }) => Ok((session, pid)),
        Ok(NsReply::Refused { message }) => {
            session.abandon().await;
            Err(format!("CONNECT_ERROR {message:?}"))
        }
        Err(e) => {
            session.abandon().await;
            Err(e.to_string())
        }
    }
}

/// The first event on `session` whose last argument is a string (socket.io-client's rule for
/// an offset), before `deadline`.
async fn offset_of(session: &mut Session, namespace: &str, deadline: Instant) -> Option<String> {
    while let Ok(Some((_, p))) = session.next_sio(deadline).await {
        if p.namespace != namespace || p.kind != SioKind::Event {
            continue;
        }
        if let Some(Value::String(o)) = p.event_args().last() {
            return Some(o.chars().take(200).collect());
        }
    }
    None
}

/// Comes back with `pid` and `offset` through `http`: recovered when the answer names `pid`.
async fn come_back(
    http: &Polling,
    s: &VerifySettings,
    pid: &str,
    offset: &str,
) -> Result<bool, String> {
    let (session, got) = join(http, s, Some((pid, offset))).await?;
    let _ = session_leave(session, &s.namespace).await;
    Ok(got.as_deref() == Some(pid))
}

async fn session_leave(mut session: Session, namespace: &str) {
    let _ = session
        .send_sio(&crate::gateway::codec::SioPacket::disconnect(namespace))
        .await;
    session.abandon().await;
}

pub(super) async fn recovery(
    http: &Polling,
    other: Option<&Polling>,
    s: &VerifySettings,
    expect: bool,
) -> Check {
    let started = Instant::now();
    let f = facts(http, other, s, expect).await;
    let (status, msg) = recovery_verdict(expect, &f);
    let evidence = json!({
        "pid": f.pid.is_some(),
        "offset": f.offset.is_some(),
        "other": f.other.as_ref().map(|r| r.clone().unwrap_or(false)),
        "same": f.same.as_ref().map(|r| r.clone().unwrap_or(false)),
    });
    check("recovery", status, started, msg).with_evidence(evidence)
}

async fn facts(
    http: &Polling,
    other: Option<&Polling>,
    s: &VerifySettings,
    expect: bool,
) -> RecoveryFacts {
    let mut f = RecoveryFacts::default();
    let (mut session, pid) = match join(http, s, None).await {
        Ok(x) => x,
        Err(e) => {
            f.error = Some(e);
            return f;
        }
    };
    f.pid = pid.clone();
    let Some(pid) = pid.filter(|_| expect) else {
        session_leave(session, &s.namespace).await;
        return f;
    };
    let wait = s.heartbeat_interval + slack(s.heartbeat_interval);
    let t = Instant::now();
    f.offset = offset_of(&mut session, &s.namespace, t + wait).await;
    f.waited = t.elapsed();
    // The cut: the transport goes away without a DISCONNECT.
    session.abandon().await;
    let Some(offset) = f.offset.clone() else {
        return f;
    };
    if let Some(other) = other {
        f.other = Some(come_back(other, s, &pid, &offset).await);
    }
    if !matches!(f.other, Some(Ok(true))) {
        f.same = Some(come_back(http, s, &pid, &offset).await);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> RecoveryFacts {
        RecoveryFacts {
            pid: Some("p".into()),
            offset: Some("o".into()),
            waited: Duration::from_secs(1),
            other: Some(Ok(false)),
            same: Some(Ok(true)),
            ..RecoveryFacts::default()
        }
    }

    /// Every way the check can say no, and its passes.
    #[test]
    fn verdicts() {
        use CheckStatus::{Fail, Pass, Warn};
        let v = |expect, f: &RecoveryFacts| recovery_verdict(expect, f).0;
        assert_eq!(v(true, &seen()), Warn);
        assert!(recovery_verdict(true, &seen()).1.contains("same task only"));
        let shared = RecoveryFacts {
            other: Some(Ok(true)),
            same: None,
            ..seen()
        };
        assert_eq!(v(true, &shared), Pass);
        let one = RecoveryFacts {
            other: None,
            ..seen()
        };
        assert_eq!(v(true, &one), Pass);
        for same in [Some(Ok(false)), Some(Err("timeout".into())), None] {
            let f = RecoveryFacts { same, ..seen() };
            assert_eq!(v(true, &f), Fail, "{f:?}");
        }
        assert_eq!(
            v(
                true,
                &RecoveryFacts {
                    offset: None,
                    ..seen()
                }
            ),
            Fail
        );
        assert_eq!(
            v(
                true,
                &RecoveryFacts {
                    pid: None,
                    ..seen()
                }
            ),
            Fail
        );
        let err = RecoveryFacts {
            error: Some("refused".into()),
            ..seen()
        };
        assert_eq!(v(true, &err), Fail);
        assert_eq!(v(false, &err), Fail);
        assert_eq!(v(false, &RecoveryFacts::default()), Pass);
        assert_eq!(v(false, &seen()), Fail);
    }
}
