//! `eio3` (`[gateway] eio3`): whether socket.io 2.x clients (Engine.IO v3) are served as the
//! config says. With `eio3 = true` it connects as such a client does: the handshake GET with
//! `EIO=3` (length-prefixed polling records, [`crate::gateway::codec_v3`]), the namespace
//! joined with the token in the CONNECT's query (`40/chat?token=…,`: socket.io 4 hands that
//! query to the middleware as `handshake.auth`), the upgrade to websocket, then the client's
//! own pings (in v3 the client pings and the server answers) while it waits for a heartbeat
//! and acks it; a second session joins with a forged token, which must be refused. With
//! `eio3 = false` it passes when the gateway refuses `EIO=3`. The I/O gathers [`Eio3Facts`];
//! [`eio3_verdict`] decides.

use std::time::{Duration, Instant};

use serde_json::json;
use url::Url;

use super::auth::AuthTry;
use super::check;
use crate::gateway::codec::{EioPacket, Handshake, SioKind, SioPacket};
use crate::gateway::polling::{Polling, Reply};
use crate::gateway::ws::{Incoming, Ws};
use crate::gateway::{codec_v3, fmt_duration, quoted, slack, token, VerifySettings};
use crate::outside::Outside;
use crate::report::{Check, CheckStatus};

/// How the `EIO=3` handshake GET was answered.
#[derive(Debug, Clone)]
pub enum V3Open {
    /// A v3 open packet: the session id and the announced timings.
    Accepted { ping_interval_ms: u64 },
    /// HTTP 400 with Engine.IO's "Unsupported protocol version" (code 5): `allowEIO3` is off.
    Refused { body: Outside },
    /// Anything else (another status, a body that is not v3, no answer).
    Error(String),
}

/// What one `eio3` run saw; `None`: that step was not reached.
#[derive(Debug, Clone)]
pub struct Eio3Facts {
    pub open: V3Open,
    /// Joining with the configured token in the query (`None` also when no token is set).
    pub join: Option<AuthTry>,
    pub upgrade: Option<Result<(), String>>,
    /// The server's pong to the client's first ping: how long it took.
    pub pong: Option<Result<Duration, String>>,
    /// A heartbeat received and acked: after how long.
    pub heartbeat: Option<Result<Duration, String>>,
    /// Joining with a forged token in the query.
    pub forged: Option<AuthTry>,
}

/// The verdict. `expect`: `[gateway] eio3`.
pub fn eio3_verdict(ns: &str, expect: bool, f: &Eio3Facts) -> (CheckStatus, String) {
    use CheckStatus::{Fail, Pass, Warn};
    if !expect {
        return match &f.open {
            V3Open::Refused { .. } => (
                Pass,
                "the gateway refuses Engine.IO v3 (socket.io 2.x) clients (HTTP 400, unsupported protocol version), as eio3 = false expects".into(),
            ),
            V3Open::Accepted { .. } => (
                Fail,
                "the gateway accepts Engine.IO v3 (socket.io 2.x) clients (allowEIO3 is on) but eio3 = false: turn allowEIO3 off, or set eio3 = true".into(),
            ),
            V3Open::Error(e) => (Fail, format!("could not tell whether the gateway refuses EIO=3: {e}")),
        };
    }
    match &f.open {
        V3Open::Refused { body } => {
            return (
                Fail,
                format!("the gateway refuses Engine.IO v3 clients (HTTP 400 {body}): socket.io 2.x clients cannot connect; set allowEIO3: true in the gateway's options"),
            )
        }
        V3Open::Error(e) => return (Fail, format!("no Engine.IO v3 session: {e}")),
        V3Open::Accepted { .. } => {}
    }
    match &f.forged {
        Some(AuthTry::Accepted) => {
            return (
                Fail,
                format!("auth not enforced for socket.io 2.x clients: {ns} accepted a forged token in the CONNECT's query"),
            )
        }
        Some(AuthTry::Error(e)) => {
            return (Fail, format!("could not tell whether {ns} refuses a forged token from a socket.io 2.x client: {e}"))
        }
        None => return (Fail, "the forged-token session was not tried".into()),
        Some(AuthTry::Refused(_)) => {}
    }
    match &f.join {
        None => {
            return (
                Warn,
                format!("no token configured: only the EIO=3 handshake and the refusal of a forged token by {ns} were checked"),
            )
        }
        Some(AuthTry::Refused(m)) => {
            return (
                Fail,
                format!("{ns} refused the token sent as a socket.io 2.x client sends it (in the CONNECT's query): CONNECT_ERROR {m}; these clients cannot join: read the token from socket.handshake.auth, which socket.io 4 fills from that query too"),
            )
        }
        Some(AuthTry::Error(e)) => {
            return (Fail, format!("joining {ns} as a socket.io 2.x client failed: {e}"))
        }
        Some(AuthTry::Accepted) => {}
    }
    let why = match (&f.upgrade, &f.pong, &f.heartbeat) {
        (Some(Ok(())), Some(Ok(pong)), Some(Ok(hb))) => {
            return (
                Pass,
                format!(
                    "served as socket.io 2.x clients are: EIO=3 handshake, {ns} joined with the token in the query, upgraded to websocket, pong {} after the client's ping, heartbeat acked {} after joining; a forged token refused",
                    fmt_duration(*pong),
                    fmt_duration(*hb)
                ),
            )
        }
        (Some(Err(e)), ..) => format!("the websocket upgrade failed: {e}"),
        (_, Some(Err(e)), _) => format!("no pong to the client's ping: {e} (socket.io 2.x clients ping the server and drop the connection without an answer)"),
        (_, _, Some(Err(e))) => format!("no heartbeat: {e}"),
        _ => "not every step ran".into(),
    };
    (
        Fail,
        format!("socket.io 2.x clients are not fully served: {why}"),
    )
}

/// The `EIO=3` handshake GET.
async fn open(http: &Polling) -> (V3Open, Option<String>) {
    let url = http.engine_url_eio("3", "polling", None);
    let reply = match http.get(url, http.request_timeout).await {
        Ok(r) => r,
        Err(e) => return (V3Open::Error(e.to_string()), None),
    };
    if reply.status == 400 && String::from_utf8_lossy(&reply.body).contains("\"code\":5") {
        let body = Outside::new(&String::from_utf8_lossy(&reply.body));
        return (V3Open::Refused { body }, None);
    }
    match open_packet(&reply) {
        Ok(hs) => (
            V3Open::Accepted {
                ping_interval_ms: hs.ping_interval,
            },
            Some(hs.sid),
        ),
        Err(e) => (V3Open::Error(e), None),
    }
}

fn open_packet(reply: &Reply) -> Result<Handshake, String> {
    if reply.status != 200 {
        return Err(format!(
            "the EIO=3 handshake answered HTTP {}: {}",
            reply.status,
            quoted(&reply.body, 80)
        ));
    }
    let text = reply.text().map_err(|e| e.to_string())?;
    let packets = codec_v3::decode_payload(text).map_err(|e| format!("not Engine.IO v3: {e}"))?;
    match packets.first() {
        Some(EioPacket::Open(json)) => Handshake::parse(json).map_err(|e| e.to_string()),
        _ => Err(format!(
            "the first record is not an open packet: {}",
            quoted(text.as_bytes(), 60)
        )),
    }
}

/// POSTs the CONNECT with `token` in its query, then long-polls for the namespace's answer.
async fn join(http: &Polling, sid: &str, ns: &str, token: &str, poll: Duration) -> AuthTry {
    let connect = EioPacket::Message(codec_v3::connect_with_query(ns, &[("token", token)]));
    let url = http.engine_url_eio("3", "polling", Some(sid));
    let body = codec_v3::encode_payload(&[connect]);
    match http.post(url.clone(), body, http.request_timeout).await {
        Ok(r) if r.status == 200 && r.body == b"ok" => {}
        Ok(r) => {
            return AuthTry::Error(format!(
                "the CONNECT POST answered HTTP {} {}",
                r.status,
                quoted(&r.body, 60)
            ))
        }
        Err(e) => return AuthTry::Error(format!("the CONNECT POST: {e}")),
    }
    for _ in 0..4 {
        let reply = match http.get(url.clone(), poll).await {
            Ok(r) => r,
            Err(e) => return AuthTry::Error(format!("the long poll: {e}")),
        };
        let Ok(text) = reply.text() else {
            return AuthTry::Error("the long poll's body is not UTF-8".into());
        };
        let packets = match codec_v3::decode_payload(text) {
            Ok(p) => p,
            Err(e) => return AuthTry::Error(format!("the long poll's body: {e}")),
        };
        for p in packets {
            let EioPacket::Message(m) = p else { continue };
            let Ok(sio) = SioPacket::decode(&m) else {
                continue;
            };
            if sio.namespace != ns {
                continue;
            }
            match sio.kind {
                SioKind::Connect => return AuthTry::Accepted,
                SioKind::ConnectError => {
                    let m = sio.error_message().unwrap_or_else(|| {
                        sio.data.as_ref().map(|d| d.to_string()).unwrap_or_default()
                    });
                    return AuthTry::Refused(Outside::new(&m));
                }
                _ => {}
            }
        }
    }
    AuthTry::Error(format!("no answer to the CONNECT of {ns} in 4 long polls"))
}

fn ws_url(http: &Polling, sid: &str) -> Url {
    let mut u = http.engine_url_eio("3", "websocket", Some(sid));
    let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
    let _ = u.set_scheme(scheme);
    u
}

/// `2probe`, `3probe`, `5` on a websocket for the v3 session.
async fn upgrade(http: &Polling, sid: &str) -> Result<Ws, String> {
    let t = http.request_timeout;
    let mut ws = Ws::connect(&ws_url(http, sid), http.jar(), t)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(&EioPacket::Ping("probe".into()), t)
        .await
        .map_err(|e| e.to_string())?;
    match ws.recv(Instant::now() + t).await {
        Ok(Some(Incoming::Packet(EioPacket::Pong(p)))) if p == "probe" => {}
        Ok(Some(other)) => return Err(format!("answered 2probe with {other:?}")),
        Ok(None) => return Err("no 3probe".into()),
        Err(e) => return Err(e.to_string()),
    }
    ws.send(&EioPacket::Upgrade, t)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// After the upgrade: the client's pings (the first at once, then every pingInterval) and
/// the wait for a heartbeat, acked. The pong's delay and the heartbeat's.
async fn ping_and_heartbeat(
    ws: &mut Ws,
    s: &VerifySettings,
    ping_interval: Duration,
    joined: Instant,
) -> (Result<Duration, String>, Result<Duration, String>) {
    let t = Duration::from_secs(5);
    let deadline = Instant::now() + s.heartbeat_interval + slack(s.heartbeat_interval) + t;
    let mut ping_at = Instant::now();
    let mut pong: Result<Duration, String> = Err("no pong".into());
    let mut hb: Result<Duration, String> = Err(format!(
        "no \"{}\" within {}",
        s.heartbeat_event,
        fmt_duration(deadline - joined)
    ));
    let mut next_ping = ping_at;
    let ack_prefix = |id: u64| SioPacket::ack(&s.namespace, id, vec![]).to_eio();
    while Instant::now() < deadline && (pong.is_err() || hb.is_err()) {
        if Instant::now() >= next_ping {
            ping_at = Instant::now();
            if let Err(e) = ws.send(&EioPacket::Ping(String::new()), t).await {
                pong = Err(format!("sending the ping: {e}"));
                break;
            }
            next_ping = ping_at + ping_interval.max(Duration::from_millis(100));
        }
        match ws.recv(deadline.min(next_ping)).await {
            Ok(None) => continue,
            Ok(Some(Incoming::Closed(why))) => {
                let e = format!("the server closed the websocket: {why}");
                return (pong.or(Err(e.clone())), hb.or(Err(e)));
            }
            Err(e) => {
                let e = e.to_string();
                return (pong.or(Err(e.clone())), hb.or(Err(e)));
            }
            Ok(Some(Incoming::Packet(p))) => match p {
                EioPacket::Pong(d) if d.is_empty() && pong.is_err() => pong = Ok(ping_at.elapsed()),
                EioPacket::Ping(d) => {
                    let _ = ws.send(&EioPacket::Pong(d), t).await;
                }
                EioPacket::Message(m) => {
                    let Ok(sio) = SioPacket::decode(&m) else {
                        continue;
                    };
                    if sio.namespace != s.namespace
                        || sio.kind != SioKind::Event
                        || sio.event_name() != Some(s.heartbeat_event.as_str())
                    {
                        continue;
                    }
                    if let Some(id) = sio.id {
                        if let Err(e) = ws.send(&ack_prefix(id), t).await {
                            hb = Err(format!("acking the heartbeat: {e}"));
                            continue;
                        }
                    }
                    if hb.is_err() {
                        hb = Ok(joined.elapsed());
                    }
                }
                _ => {}
            },
        }
    }
    if pong.is_err() {
        pong = Err(format!(
            "no pong to the client's ping within {}",
            fmt_duration(ping_interval)
        ));
    }
    (pong, hb)
}

/// Every step of the v3 client with the configured token; the forged-token session apart.
async fn gather(http: &Polling, s: &VerifySettings, expect: bool) -> Eio3Facts {
    let mut f = Eio3Facts {
        open: V3Open::Error("not tried".into()),
        join: None,
        upgrade: None,
        pong: None,
        heartbeat: None,
        forged: None,
    };
    let (open_main, sid) = open(http).await;
    f.open = open_main;
    let (Some(sid), true) = (sid, expect) else {
        return f;
    };
    let poll = s.ping_interval + http.request_timeout;
    let ping_interval = match f.open {
        V3Open::Accepted { ping_interval_ms } => Duration::from_millis(ping_interval_ms),
        _ => s.ping_interval,
    };
    f.forged = Some(match open(http).await {
        (_, Some(forged_sid)) => {
            join(
                http,
                &forged_sid,
                &s.namespace,
                token::forge().expose(),
                poll,
            )
            .await
        }
        (V3Open::Error(e), None) => AuthTry::Error(format!("no second v3 session: {e}")),
        _ => AuthTry::Error("no second v3 session".into()),
    });
    let Some(tok) = &s.token else {
        return f;
    };
    let joined_at = Instant::now();
    let joined = join(http, &sid, &s.namespace, tok.expose(), poll).await;
    let accepted = matches!(joined, AuthTry::Accepted);
    f.join = Some(joined);
    if !accepted {
        return f;
    }
    let mut ws = match upgrade(http, &sid).await {
        Ok(ws) => ws,
        Err(e) => {
            f.upgrade = Some(Err(e));
            return f;
        }
    };
    f.upgrade = Some(Ok(()));
    let (pong, hb) = ping_and_heartbeat(&mut ws, s, ping_interval, joined_at).await;
    f.pong = Some(pong);
    f.heartbeat = Some(hb);
    let t = http.request_timeout;
    let _ = ws
        .send(&SioPacket::disconnect(&s.namespace).to_eio(), t)
        .await;
    let _ = ws.close(t).await;
    f
}

fn describe(t: &Option<AuthTry>) -> Option<String> {
    t.as_ref().map(|t| match t {
        AuthTry::Accepted => "accepted".to_string(),
        AuthTry::Refused(m) => format!("CONNECT_ERROR {m}"),
        AuthTry::Error(e) => e.clone(),
    })
}

pub(super) async fn eio3(http: &Polling, s: &VerifySettings, expect: bool) -> Check {
    let started = Instant::now();
    let f = gather(http, s, expect).await;
    let (status, msg) = eio3_verdict(&s.namespace, expect, &f);
    let evidence = json!({
        "expect": expect,
        "open": format!("{:?}", f.open),
        "join": describe(&f.join),
        "forged_token": describe(&f.forged),
        "upgrade": f.upgrade.as_ref().map(|r| r.clone().err().unwrap_or_else(|| "ok".into())),
        "pong_ms": f.pong.as_ref().and_then(|r| r.as_ref().ok()).map(|d| d.as_millis() as u64),
        "heartbeat_ms": f.heartbeat.as_ref().and_then(|r| r.as_ref().ok()).map(|d| d.as_millis() as u64),
    });
    check("eio3", status, started, msg).with_evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Eio3Facts {
        Eio3Facts {
            open: V3Open::Accepted {
                ping_interval_ms: 2000,
            },
            join: Some(AuthTry::Accepted),
            upgrade: Some(Ok(())),
            pong: Some(Ok(Duration::from_millis(3))),
            heartbeat: Some(Ok(Duration::from_millis(1000))),
            forged: Some(AuthTry::Refused(Outside::new(
                "{\"reason\":\"bad signature\"}",
            ))),
        }
    }

    fn refused() -> V3Open {
        V3Open::Refused {
            body: Outside::new("{\"code\":5,\"message\":\"Unsupported protocol version\"}"),
        }
    }

    #[test]
    fn eio3_true_passes_only_when_every_step_worked() {
        let (st, msg) = eio3_verdict("/chat", true, &served());
        assert_eq!(st, CheckStatus::Pass, "{msg}");
        assert!(
            msg.contains("/chat joined with the token in the query"),
            "{msg}"
        );
        assert!(msg.contains("a forged token refused"), "{msg}");

        let fails: Vec<(Eio3Facts, &str)> = vec![
            (
                Eio3Facts {
                    open: refused(),
                    ..served()
                },
                "set allowEIO3: true",
            ),
            (
                Eio3Facts {
                    open: V3Open::Error("HTTP 502".into()),
                    ..served()
                },
                "no Engine.IO v3 session: HTTP 502",
            ),
            (
                Eio3Facts {
                    forged: Some(AuthTry::Accepted),
                    ..served()
                },
                "auth not enforced for socket.io 2.x clients",
            ),
            (
                Eio3Facts {
                    forged: Some(AuthTry::Error("timeout".into())),
                    ..served()
                },
                "could not tell whether /chat refuses a forged token",
            ),
            (
                Eio3Facts {
                    forged: None,
                    ..served()
                },
                "forged-token session was not tried",
            ),
            (
                Eio3Facts {
                    join: Some(AuthTry::Refused(Outside::new("missing token"))),
                    ..served()
                },
                "read the token from socket.handshake.auth",
            ),
            (
                Eio3Facts {
                    join: Some(AuthTry::Error("no answer".into())),
                    ..served()
                },
                "joining /chat as a socket.io 2.x client failed",
            ),
            (
                Eio3Facts {
                    upgrade: Some(Err("HTTP 400".into())),
                    pong: None,
                    heartbeat: None,
                    ..served()
                },
                "the websocket upgrade failed: HTTP 400",
            ),
            (
                Eio3Facts {
                    pong: Some(Err("no pong within 2 s".into())),
                    ..served()
                },
                "no pong to the client's ping",
            ),
            (
                Eio3Facts {
                    heartbeat: Some(Err("no \"heartbeat\" within 3 s".into())),
                    ..served()
                },
                "no heartbeat",
            ),
            (
                Eio3Facts {
                    heartbeat: None,
                    ..served()
                },
                "not every step ran",
            ),
        ];
        for (f, want) in fails {
            let (st, msg) = eio3_verdict("/chat", true, &f);
            assert_eq!(st, CheckStatus::Fail, "{msg}");
            assert!(msg.contains(want), "{want}\n{msg}");
        }
        let (st, msg) = eio3_verdict(
            "/chat",
            true,
            &Eio3Facts {
                join: None,
                ..served()
            },
        );
        assert_eq!(st, CheckStatus::Warn, "{msg}");
    }

    #[test]
    fn eio3_false_passes_only_on_the_refusal() {
        let f = |open| Eio3Facts {
            open,
            join: None,
            upgrade: None,
            pong: None,
            heartbeat: None,
            forged: None,
        };
        assert_eq!(
            eio3_verdict("/chat", false, &f(refused())).0,
            CheckStatus::Pass
        );
        let (st, msg) = eio3_verdict(
            "/chat",
            false,
            &f(V3Open::Accepted {
                ping_interval_ms: 25_000,
            }),
        );
        assert_eq!(st, CheckStatus::Fail);
        assert!(msg.contains("allowEIO3 is on"), "{msg}");
        let (st, msg) = eio3_verdict("/chat", false, &f(V3Open::Error("HTTP 503".into())));
        assert_eq!(st, CheckStatus::Fail);
        assert!(msg.contains("could not tell"), "{msg}");
    }
}
