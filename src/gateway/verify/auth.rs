//! `auth`: the namespace accepts the configured token and refuses a connection without one and
//! one with a forged token, each tried on its own websocket session (no stickiness needed, so
//! auth is tested apart from it). The verdict is [`auth_verdict`].

use std::time::Instant;

use serde_json::{json, Value};

use super::check;
use crate::gateway::codec::SioPacket;
use crate::gateway::polling::Polling;
use crate::gateway::session::{NsReply, Session, Transport};
use crate::gateway::{token, VerifySettings};
use crate::outside::Outside;
use crate::report::{Check, CheckStatus};

#[derive(Debug, Clone)]
pub enum AuthTry {
    Accepted,
    /// CONNECT_ERROR with the server's message.
    Refused(Outside),
    Error(String),
}

impl AuthTry {
    fn describe(&self) -> String {
        match self {
            AuthTry::Accepted => "accepted".into(),
            AuthTry::Refused(m) => format!("CONNECT_ERROR {m:?}"),
            AuthTry::Error(e) => e.clone(),
        }
    }
}

async fn try_connect(http: &Polling, namespace: &str, auth: Option<Value>) -> (AuthTry, Transport) {
    let mut session = match Session::open_ws(http.clone()).await {
        Ok(s) => s,
        // No websocket: fall back to polling (which needs stickiness).
        Err(_) => match Session::open_polling(http.clone()).await {
            Ok((s, _)) => s,
            Err(e) => {
                return (
                    AuthTry::Error(format!("no session: {e}")),
                    Transport::Polling,
                )
            }
        },
    };
    let via = session.transport;
    let result = match session.connect_namespace(namespace, auth).await {
        Ok(NsReply::Connected { .. }) => {
            let _ = session.send_sio(&SioPacket::disconnect(namespace)).await;
            AuthTry::Accepted
        }
        Ok(NsReply::Refused { message }) => AuthTry::Refused(message),
        Err(e) => AuthTry::Error(e.to_string()),
    };
    session.abandon().await;
    (result, via)
}

pub(super) fn auth_json(t: &token::Secret) -> Value {
    json!({ "token": t.expose() })
}

pub(super) async fn auth(http: &Polling, s: &VerifySettings) -> Check {
    let started = Instant::now();
    let forged = token::forge();
    let ns = s.namespace.as_str();
    let with = async {
        match &s.token {
            Some(t) => Some(try_connect(http, ns, Some(auth_json(t))).await),
            None => None,
        }
    };
    let (with, without, forged) = tokio::join!(
        with,
        try_connect(http, ns, None),
        try_connect(http, ns, Some(auth_json(&forged)))
    );
    let (status, msg) = auth_verdict(ns, with.as_ref().map(|w| &w.0), &without.0, &forged.0);
    let evidence = json!({
        "namespace": ns,
        "with_token": with.as_ref().map(|w| w.0.describe()),
        "without_token": without.0.describe(),
        "forged_token": forged.0.describe(),
        "transport": without.1.name(),
    });
    check("auth", status, started, msg).with_evidence(evidence)
}

/// Accepted without a token or with a forged one: fail ("auth not enforced"). The token
/// refused: fail. No token configured: skip once the refusals are confirmed.
pub fn auth_verdict(
    ns: &str,
    with: Option<&AuthTry>,
    without: &AuthTry,
    forged: &AuthTry,
) -> (CheckStatus, String) {
    let mut accepted = Vec::new();
    if matches!(without, AuthTry::Accepted) {
        accepted.push("without a token");
    }
    if matches!(forged, AuthTry::Accepted) {
        accepted.push("with a forged token");
    }
    if !accepted.is_empty() {
        return (
            CheckStatus::Fail,
            format!(
                "auth not enforced: {ns} accepted a connection {}",
                accepted.join(" and ")
            ),
        );
    }
    for (what, t) in [
        ("without a token", without),
        ("with a forged token", forged),
    ] {
        if let AuthTry::Error(e) = t {
            return (
                CheckStatus::Fail,
                format!("could not test CONNECT {ns} {what}: {e}"),
            );
        }
    }
    let refusals = format!(
        "without a token: {}; with a forged token: {}",
        without.describe(),
        forged.describe()
    );
    match with {
        None => (
            CheckStatus::Skip,
            format!("no token configured (gateway.token_env or gateway.jwt_secret_env): connecting with one not tested; {refusals}"),
        ),
        Some(AuthTry::Accepted) => (
            CheckStatus::Pass,
            format!("{ns} accepted the token and refused the others ({refusals})"),
        ),
        Some(AuthTry::Refused(m)) => (
            CheckStatus::Fail,
            format!("{ns} refused the configured token: CONNECT_ERROR {m:?}"),
        ),
        Some(AuthTry::Error(e)) => (CheckStatus::Fail, format!("CONNECT {ns} with the token failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_table() {
        let refused = AuthTry::Refused(Outside::new("unauthorized"));
        let (s, m) = auth_verdict(
            "/chat",
            Some(&AuthTry::Accepted),
            &AuthTry::Accepted,
            &AuthTry::Accepted,
        );
        assert_eq!(s, CheckStatus::Fail);
        assert_eq!(m, "auth not enforced: /chat accepted a connection without a token and with a forged token");
        let (s, _) = auth_verdict("/chat", Some(&AuthTry::Accepted), &refused, &refused);
        assert_eq!(s, CheckStatus::Pass);
        let (s, _) = auth_verdict("/chat", None, &refused, &refused);
        assert_eq!(s, CheckStatus::Skip);
        let (s, m) = auth_verdict("/chat", None, &AuthTry::Accepted, &refused);
        assert_eq!(s, CheckStatus::Fail);
        assert!(m.contains("auth not enforced"));
        let (s, _) = auth_verdict("/chat", Some(&refused), &refused, &refused);
        assert_eq!(s, CheckStatus::Fail);
        let (s, _) = auth_verdict(
            "/chat",
            Some(&AuthTry::Accepted),
            &AuthTry::Error("timeout".into()),
            &refused,
        );
        assert_eq!(s, CheckStatus::Fail);
    }
}
