//! One session of the probe: the socket (plain or TLS), the lean websocket upgrade, the
//! Engine.IO open and namespace CONNECT, the heartbeats acked while it is held, the clean close;
//! the spawner that starts the sessions at the rate and concurrency asked for. What the
//! sessions share is in `shared.rs`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::shared::{stickiness_cookie, CookieSeen, Io, Shared, Stream, NONE};
use super::timeline::Timeline;
use crate::gateway::codec::{Handshake, SioKind, SioPacket};
use crate::gateway::instance_of;
use crate::gateway::stats;
use crate::gateway::{error_chain, quoted, snippet, upgrade, ws, Error};
use crate::outside::Outside;

// ---------------------------------------------------------------------------------------------
// One session

/// How a session ended.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    /// Left cleanly after the hold.
    Closed,
    OpenFailed(String),
    /// Lost while open (before or during the hold).
    Dropped(String),
    /// Held to the end, but the close handshake failed.
    CloseFailed(String),
}

/// What a session leaves behind: a few numbers, and a cause only on failure.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) connect_us: Option<u32>,
    /// Offsets from the start of the probe.
    pub(super) opened_at: Duration,
    pub(super) gone_at: Duration,
    pub(super) target: u16,
    pub(super) cookie: CookieSeen,
    pub(super) hb_in_hold: u32,
    pub(super) outcome: Outcome,
    /// Drops and reconnects (`--reconnect`); empty otherwise.
    pub(super) timeline: Timeline,
}

/// Per-session state while open (of the current connection, with `--reconnect`).
pub(super) struct Live {
    pub(super) opened: Instant,
    pub(super) last_hb: Instant,
    pub(super) window: Option<(Instant, Instant)>,
    pub(super) hb_in_hold: u32,
    pub(super) target: u16,
    /// Connection state recovery (`--reconnect`): the `pid` of the last CONNECT answer and
    /// the offset of the last event that carried one, sent back on a reconnect as
    /// socket.io-client does.
    pub(super) pid: Option<Box<str>>,
    pub(super) offset: Option<Box<str>>,
}

/// What a reconnect sends back to resume its session: `(pid, offset)`.
pub(super) type Resume = Option<(Box<str>, Box<str>)>;

/// The CONNECT answer's `pid` (connection state recovery), bounded.
fn pid_of(p: &SioPacket) -> Option<Box<str>> {
    p.data
        .as_ref()
        .and_then(|d| d.get("pid"))
        .and_then(|v| v.as_str())
        .map(|s| s.chars().take(200).collect::<String>().into_boxed_str())
}

pub(super) fn closed_cause(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) => format!(
            "closed by the server: close frame {} {}",
            u16::from(f.code),
            snippet(f.reason.as_bytes(), 80)
        )
        .trim()
        .to_string(),
        None => "closed by the server: close frame".into(),
    }
}

/// The next text message (binary and control frames are skipped; tungstenite answers pings).
async fn next_text(ws: &mut Stream) -> Result<Utf8Bytes, String> {
    loop {
        match ws.next().await {
            None => return Err(Error::Closed("connection ended".into()).to_string()),
            Some(Err(e)) => return Err(ws::map_io_error(e).to_string()),
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(f))) => return Err(closed_cause(f)),
            Some(Ok(_)) => continue,
        }
    }
}

async fn send(ws: &mut Stream, text: Utf8Bytes) -> Result<(), String> {
    ws.send(Message::Text(text))
        .await
        .map_err(|e| ws::map_io_error(e).to_string())
}

/// The Engine.IO pong for a ping's text (`2` or `2probe`).
fn pong(ping: &str) -> Utf8Bytes {
    if ping.len() == 1 {
        Utf8Bytes::from_static("3")
    } else {
        Utf8Bytes::from(format!("3{}", &ping[1..]))
    }
}

/// The CONNECT_ERROR as a cause: `/chat refused the CONNECT: unauthorized (bad signature)`.
/// The server's words are redacted whole before they are cut.
fn refusal(namespace: &str, p: &SioPacket) -> String {
    let message = p.error_message().unwrap_or_else(|| "(no message)".into());
    let reason = p
        .data
        .as_ref()
        .and_then(|d| d.get("data"))
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        .map(|r| format!(" ({})", Outside::new(r).shown(60)))
        .unwrap_or_default();
    format!(
        "{namespace} refused the CONNECT: {}{reason}",
        Outside::new(&message).shown(80)
    )
}

/// A session's own cookie jar (`--reconnect`): the stickiness cookie its last connection was
/// given, `name=value`, sent when it comes back.
pub(super) type Jar = Option<Box<str>>;

/// TCP connect, websocket handshake through the load balancer (sending the cookie in `jar`,
/// and keeping the one the `101` sets there), Engine.IO open, namespace CONNECT with the
/// token. Also returns how long the connection may go without an Engine.IO ping (the open
/// packet's pingInterval + pingTimeout) and the CONNECT answer's `pid`. The stickiness cookie
/// the handshake set goes into `seen` as soon as it is known, so a session the namespace then
/// refuses still names its target. `resume`: the pid and offset a reconnect sends back.
pub(super) async fn open(
    sh: &Shared,
    i: usize,
    jar: Option<&mut Jar>,
    seen: &mut CookieSeen,
    resume: &Resume,
) -> Result<(Stream, CookieSeen, Duration, Option<Box<str>>), String> {
    let addr = sh.addrs[i % sh.addrs.len()];
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::Connect(e.to_string()).to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut io: Box<dyn Io> = match &sh.tls {
        None => Box::new(tcp),
        Some(tls) => Box::new(
            tls.connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| Error::Connect(format!("TLS: {}", error_chain(&e))).to_string())?,
        ),
    };
    let keep = jar.is_some();
    let send_cookie = jar.as_ref().and_then(|j| j.as_deref());
    let ((cookie, kept), rest) = upgrade::handshake(&mut io, &sh.upgrade, send_cookie, |set| {
        let kept = keep
            .then(|| stickiness_cookie(set.iter().copied()))
            .flatten()
            .map(|(n, v)| Box::<str>::from(format!("{n}={v}")));
        (sh.cookie_of(set), kept)
    })
    .await
    .map_err(|e| format!("websocket handshake: {e}"))?;
    *seen = cookie;
    if let (Some(jar), Some(k)) = (jar, kept) {
        *jar = Some(k);
    }
    let mut ws =
        WebSocketStream::from_partially_read(io, rest, Role::Client, Some(sh.ws_config)).await;

    let first = next_text(&mut ws).await?;
    let ping_window = match first.strip_prefix('0') {
        Some(json) => {
            let h = Handshake::parse(json).map_err(|e| e.to_string())?;
            Duration::from_millis(h.ping_interval.saturating_add(h.ping_timeout))
        }
        None => {
            return Err(format!(
                "the first websocket message is not an Engine.IO open packet: {}",
                quoted(first.as_bytes(), 40)
            ))
        }
    };
    let frame = match (resume, &sh.auth) {
        (Some((pid, offset)), auth) => {
            let mut auth = auth.clone().unwrap_or_else(|| serde_json::json!({}));
            if let Some(m) = auth.as_object_mut() {
                m.insert("pid".into(), serde_json::json!(pid));
                m.insert("offset".into(), serde_json::json!(offset));
            }
            Utf8Bytes::from(
                SioPacket::connect(&sh.namespace, Some(auth))
                    .to_eio()
                    .encode(),
            )
        }
        (None, _) => sh.connect_frame.clone(),
    };
    send(&mut ws, frame).await?;
    loop {
        let text = next_text(&mut ws).await?;
        match text.as_bytes().first() {
            Some(b'2') => send(&mut ws, pong(&text)).await?,
            Some(b'1') => return Err("closed by the server: Engine.IO close packet".into()),
            Some(b'4') => {
                let p = SioPacket::decode(&text[1..]).map_err(|e| e.to_string())?;
                if p.namespace != sh.namespace {
                    continue;
                }
                match p.kind {
                    SioKind::Connect => return Ok((ws, cookie, ping_window, pid_of(&p))),
                    SioKind::ConnectError => return Err(refusal(&sh.namespace, &p)),
                    SioKind::Disconnect => {
                        return Err(format!(
                            "the server answered CONNECT {} with DISCONNECT",
                            sh.namespace
                        ))
                    }
                    _ => continue,
                }
            }
            _ => continue,
        }
    }
}

/// Handles one incoming message of an open session: pong pings, ack and count heartbeats.
/// `Ok(true)` when a heartbeat was received (and acked when it asked for an ack).
pub(super) async fn handle(
    sh: &Shared,
    ws: &mut Stream,
    live: &mut Live,
    msg: Option<Result<Message, tungstenite::Error>>,
) -> Result<bool, String> {
    let text = match msg {
        None => return Err(Error::Closed("connection ended".into()).to_string()),
        Some(Err(e)) => return Err(ws::map_io_error(e).to_string()),
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Close(f))) => return Err(closed_cause(f)),
        Some(Ok(_)) => return Ok(false),
    };
    match text.as_bytes().first() {
        Some(b'2') => {
            send(ws, pong(&text)).await?;
            Ok(false)
        }
        Some(b'1') => Err("closed by the server: Engine.IO close packet".into()),
        Some(b'4') => {
            let p = SioPacket::decode(&text[1..])
                .map_err(|e| format!("undecodable packet from the server: {e}"))?;
            if p.namespace != sh.namespace {
                return Ok(false);
            }
            match p.kind {
                SioKind::Disconnect => Err(format!("the server disconnected {}", sh.namespace)),
                SioKind::Event if p.event_name() == Some(sh.heartbeat_event.as_str()) => {
                    let now = Instant::now();
                    let late = now.saturating_duration_since(live.last_hb + sh.heartbeat_interval);
                    live.last_hb = now;
                    if let Ok(mut h) = sh.lateness.lock() {
                        h.record(late.as_millis() as u64);
                    }
                    if let Some((start, end)) = live.window {
                        // Counted by when it was due, as the expected number is.
                        let slot = stats::heartbeat_slot(
                            now.saturating_duration_since(live.opened),
                            sh.heartbeat_interval,
                        );
                        let due = live.opened + sh.heartbeat_interval * slot;
                        if due >= start && due < end {
                            live.hb_in_hold += 1;
                        }
                    }
                    if live.target == NONE {
                        if let Some(id) = p.event_args().first().and_then(instance_of) {
                            live.target = sh.targets.intern(id);
                        }
                    }
                    sh.counters.heartbeats.fetch_add(1, Relaxed);
                    if let Some(id) = p.id {
                        let ack = Utf8Bytes::from(format!("{}{id}[]", sh.ack_prefix));
                        send(ws, ack)
                            .await
                            .map_err(|e| format!("acking a heartbeat: {e}"))?;
                        sh.counters.acks.fetch_add(1, Relaxed);
                    }
                    Ok(true)
                }
                SioKind::Event if live.pid.is_some() => {
                    // socket.io-client's rule: a string as the last argument is an offset.
                    if let Some(serde_json::Value::String(o)) = p.event_args().last() {
                        live.offset = Some(o.chars().take(200).collect::<String>().into());
                    }
                    Ok(false)
                }
                _ => Ok(false),
            }
        }
        _ => Ok(false),
    }
}

/// The clean close: leave the namespace, close the websocket, wait for the server's close.
pub(super) async fn close(ws: &mut Stream, disconnect: Utf8Bytes) -> Result<(), String> {
    send(ws, disconnect).await?;
    match ws.close(None).await {
        Ok(()) => {}
        Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            return Ok(())
        }
        Err(e) => return Err(ws::map_io_error(e).to_string()),
    }
    loop {
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Ok(_)) => continue,
            Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                return Ok(())
            }
            Some(Err(e)) => return Err(ws::map_io_error(e).to_string()),
        }
    }
}
