//! `handshake`: the Engine.IO open packet offers websocket and announces the configured
//! pingInterval and pingTimeout.

use std::time::Instant;

use serde_json::json;

use super::{check, ms};
use crate::gateway::codec::Handshake;
use crate::gateway::polling::Reply;
use crate::gateway::VerifySettings;
use crate::report::{Check, CheckStatus};

pub(super) fn handshake_check(
    hs: &Handshake,
    reply: &Reply,
    s: &VerifySettings,
    started: Instant,
) -> Check {
    let mut problems = Vec::new();
    if !hs.upgrades.iter().any(|u| u == "websocket") {
        problems.push(format!(
            "upgrades {:?} does not offer websocket",
            hs.upgrades
        ));
    }
    let want_pi = ms(s.ping_interval);
    let want_pt = ms(s.ping_timeout);
    if hs.ping_interval != want_pi {
        problems.push(format!(
            "pingInterval is {} ms, configured {want_pi} ms (gateway.ping_interval)",
            hs.ping_interval
        ));
    }
    if hs.ping_timeout != want_pt {
        problems.push(format!(
            "pingTimeout is {} ms, configured {want_pt} ms (gateway.ping_timeout)",
            hs.ping_timeout
        ));
    }
    let evidence = json!({
        "upgrades": hs.upgrades,
        "pingInterval": hs.ping_interval,
        "pingTimeout": hs.ping_timeout,
        "maxPayload": hs.max_payload,
        "configured": {"pingInterval": want_pi, "pingTimeout": want_pt},
    });
    let (status, msg) = if problems.is_empty() {
        (
            CheckStatus::Pass,
            format!(
                "open packet in {} ms: upgrades {:?}, pingInterval {} ms, pingTimeout {} ms as configured",
                ms(reply.elapsed),
                hs.upgrades,
                hs.ping_interval,
                hs.ping_timeout
            ),
        )
    } else {
        (CheckStatus::Fail, problems.join("; "))
    };
    check("handshake", status, started, msg).with_evidence(evidence)
}
