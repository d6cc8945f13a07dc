//! One Engine.IO session, over long-polling or websocket. It answers a server ping with a pong
//! at once and acks the watched event (the heartbeat) at once, recording when each came, so the
//! checks read timings instead of racing the server. Other Socket.IO packets wait in a bounded
//! backlog.
//!
//! Bounded whatever the server sends: one payload (a polling body) is at most
//! [`PACKETS_PER_PAYLOAD`] packets and gets at most one pong however many pings it holds (a
//! pong is a POST, which a hostile server can hold for the whole request timeout); the first
//! send that fails (a pong, an ack) ends the session's use: the check that drives it stops.
//!
//! Long-poll GETs run as spawned tasks awaited with a deadline: giving up waiting never aborts
//! the request (an aborted poll makes Engine.IO drop the session), and at most one GET is in
//! flight (a second one is an "overlap" error on the server).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

use super::codec::{EioPacket, Handshake, SioKind, SioPacket};
use super::polling::{Polling, Reply};
use super::ws::{self, Incoming, Ws};
use super::Error;
use crate::outside::Outside;

const BACKLOG_LIMIT: usize = 256;
/// Most packets handled from one payload. Engine.IO batches what it buffered for a polling
/// client; for this client (a heartbeat, a ping, a few answers) that is a handful.
pub const PACKETS_PER_PAYLOAD: usize = 256;
/// Watched events recorded (later ones are still acked); the checks read the first two.
const EVENTS_LIMIT: usize = 64;
/// Ping arrivals recorded (a websocket can carry any number; the checks read the first few).
const PINGS_LIMIT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// A watched event as it arrived.
#[derive(Debug, Clone)]
pub struct EventSeen {
    pub at: Instant,
    pub ack_id: Option<u64>,
    /// The first argument (the heartbeat's payload).
    pub payload: Option<Value>,
    /// Whether the ack was sent (`Err` with the reason if sending failed).
    pub acked: Result<(), String>,
}

/// The answer to a namespace CONNECT.
#[derive(Debug, Clone)]
pub enum NsReply {
    Connected {
        at: Instant,
        /// The private session id of connection state recovery (socket.io 4.6+), when the
        /// gateway enables it: the same one again after a reconnect means recovered.
        pid: Option<String>,
    },
    /// CONNECT_ERROR with its message.
    Refused { message: Outside },
}

/// How the upgrade went.
#[derive(Debug, Clone)]
pub struct Upgraded {
    pub elapsed: Duration,
    /// How the long poll pending during the probe ended (`noop` or `close`).
    pub pending_poll_ended_with: String,
}

pub struct Session {
    pub sid: String,
    pub handshake: Handshake,
    pub opened_at: Instant,
    pub transport: Transport,
    polling: Polling,
    ws: Option<Ws>,
    pending_get: Option<JoinHandle<Result<Vec<EioPacket>, Error>>>,
    /// Bound of one long poll: longer than the server's pingInterval.
    pub poll_timeout: Duration,
    backlog: VecDeque<(Instant, SioPacket)>,
    /// When each server ping arrived (each was answered with a pong).
    pub pings: Vec<Instant>,
    pub last_pong: Option<Instant>,
    pub pong_errors: Vec<String>,
    watch: Option<(String, String)>,
    pub events: Vec<EventSeen>,
    /// Set when the session can no longer be used, with the reason.
    pub broken: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("transport", &self.transport)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(h) = self.pending_get.take() {
            h.abort();
        }
    }
}

fn poll_timeout_for(hs: &Handshake, request: Duration) -> Duration {
    // The server holds a poll up to pingInterval; a hostile value is capped at 5 minutes.
    Duration::from_millis(hs.ping_interval.min(300_000)) + request
}

/// A CONNECT_ERROR's message, with the `data.reason` the server gave (`unauthorized (bad
/// signature)`): which targets refuse a token, and why, is what a mixed fleet shows.
fn refusal_message(p: &SioPacket) -> Outside {
    let message = p.error_message().unwrap_or_else(|| "(no message)".into());
    let reason = p
        .data
        .as_ref()
        .and_then(|d| d.get("data"))
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    match reason {
        Some(r) => Outside::new(&format!("{message} ({r})")),
        None => Outside::new(&message),
    }
}

impl Session {
    fn new(
        polling: Polling,
        handshake: Handshake,
        opened_at: Instant,
        transport: Transport,
    ) -> Session {
        Session {
            sid: handshake.sid.clone(),
            poll_timeout: poll_timeout_for(&handshake, polling.request_timeout),
            handshake,
            opened_at,
            transport,
            polling,
            ws: None,
            pending_get: None,
            backlog: VecDeque::new(),
            pings: Vec::new(),
            last_pong: None,
            pong_errors: Vec::new(),
            watch: None,
            events: Vec::new(),
            broken: None,
        }
    }

    /// Opens a session over long-polling (the handshake GET).
    pub async fn open_polling(polling: Polling) -> Result<(Session, Reply), Error> {
        let (hs, extra, reply) = polling.open().await?;
        let opened_at = Instant::now();
        let mut s = Session::new(polling, hs, opened_at, Transport::Polling);
        s.handle(opened_at, extra, false).await?;
        Ok((s, reply))
    }

    /// Opens a session directly over websocket (no polling, so no stickiness needed).
    pub async fn open_ws(polling: Polling) -> Result<Session, Error> {
        let timeout = polling.request_timeout;
        let url = ws::ws_url(&polling, None);
        let mut socket = Ws::connect(&url, polling.jar(), timeout).await?;
        let deadline = Instant::now() + timeout;
        let first = match socket.recv(deadline).await? {
            None => {
                return Err(Error::Timeout {
                    what: "the open packet over websocket".into(),
                    after: timeout,
                })
            }
            Some(Incoming::Closed(why)) => return Err(Error::Closed(why)),
            Some(Incoming::Packet(p)) => p,
        };
        let EioPacket::Open(json) = first else {
            return Err(Error::Protocol(format!(
                "the first websocket message is a {} packet, not an Engine.IO open packet",
                first.type_name()
            )));
        };
        let hs = Handshake::parse(&json)?;
        let mut s = Session::new(polling, hs, Instant::now(), Transport::WebSocket);
        s.ws = Some(socket);
        Ok(s)
    }

    pub fn request_timeout(&self) -> Duration {
        self.polling.request_timeout
    }

    /// Ack the event `event` on `namespace` as soon as it arrives, and record it.
    pub fn watch(&mut self, namespace: &str, event: &str) {
        self.watch = Some((namespace.to_string(), event.to_string()));
    }

    fn fail<T>(&mut self, e: Error) -> Result<T, Error> {
        if matches!(e, Error::SessionUnknown { .. } | Error::Closed(_)) && self.broken.is_none() {
            self.broken = Some(e.to_string());
        }
        Err(e)
    }

    /// Sends packets on the current transport.
    pub async fn send(&mut self, packets: &[EioPacket]) -> Result<(), Error> {
        if let Some(why) = &self.broken {
            return Err(Error::Closed(why.clone()));
        }
        let r = match (self.transport, self.ws.as_mut()) {
            (Transport::WebSocket, Some(ws)) => {
                let t = self.polling.request_timeout;
                let mut r = Ok(());
                for p in packets {
                    r = ws.send(p, t).await;
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
            _ => self.polling.send(&self.sid, packets).await.map(|_| ()),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    pub async fn send_sio(&mut self, p: &SioPacket) -> Result<(), Error> {
        self.send(&[p.to_eio()]).await
    }

    /// One polling round trip that changes nothing: POST a noop, answered `ok` only by the
    /// target that knows the session.
    pub async fn noop(&mut self) -> Result<(), Error> {
        self.send(&[EioPacket::Noop]).await
    }

    fn spawn_get(&mut self) {
        if self.pending_get.is_none() {
            let polling = self.polling.clone();
            let sid = self.sid.clone();
            let t = self.poll_timeout;
            self.pending_get = Some(tokio::spawn(async move { polling.poll(&sid, t).await }));
        }
    }

    /// Waits (until `deadline`) for the pending GET, without aborting it.
    async fn await_get(&mut self, deadline: Instant) -> Option<Result<Vec<EioPacket>, Error>> {
        let handle = self.pending_get.as_mut()?;
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, handle).await {
            Err(_) => None,
            Ok(joined) => {
                self.pending_get = None;
                Some(match joined {
                    Ok(r) => r,
                    Err(e) => Err(Error::Transport(format!("long poll task: {e}"))),
                })
            }
        }
    }

    /// Receives once (a long poll or a websocket message) and handles what came. `Ok(false)`
    /// when `deadline` passed with nothing.
    pub async fn step(&mut self, deadline: Instant) -> Result<bool, Error> {
        if let Some(why) = &self.broken {
            return Err(Error::Closed(why.clone()));
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        match self.transport {
            Transport::Polling => {
                self.spawn_get();
                match self.await_get(deadline).await {
                    None => Ok(false),
                    Some(Err(e)) => self.fail(e),
                    Some(Ok(packets)) => {
                        // A server answering every poll at once with nothing must not make
                        // this a busy loop.
                        let idle = packets.iter().all(|p| *p == EioPacket::Noop);
                        self.handle(Instant::now(), packets, false).await?;
                        if idle {
                            let pause = deadline.saturating_duration_since(Instant::now());
                            tokio::time::sleep(pause.min(Duration::from_millis(50))).await;
                        }
                        Ok(true)
                    }
                }
            }
            Transport::WebSocket => {
                let Some(ws) = self.ws.as_mut() else {
                    return self.fail(Error::Closed("no websocket".into()));
                };
                match ws.recv(deadline).await {
                    Ok(None) => Ok(false),
                    Ok(Some(Incoming::Closed(why))) => self.fail(Error::Closed(why)),
                    Ok(Some(Incoming::Packet(p))) => {
                        self.handle(Instant::now(), vec![p], false).await?;
                        Ok(true)
                    }
                    Err(e) => self.fail(e),
                }
            }
        }
    }

    /// Handles received packets: one pong for the pings of this payload, ack the watched event,
    /// queue the rest. A payload over [`PACKETS_PER_PAYLOAD`] packets, or a send that fails,
    /// ends the session's use (the error is returned, and kept in `pong_errors` for a pong).
    async fn handle(
        &mut self,
        at: Instant,
        packets: Vec<EioPacket>,
        upgrading: bool,
    ) -> Result<(), Error> {
        if packets.len() > PACKETS_PER_PAYLOAD {
            let e = Error::Protocol(format!(
                "the server sent {} packets in one payload (at most {PACKETS_PER_PAYLOAD} are handled); refused",
                packets.len()
            ));
            self.broken = Some(e.to_string());
            return Err(e);
        }
        let mut ponged = false;
        for p in packets {
            match p {
                EioPacket::Ping(_) if ponged => {}
                EioPacket::Ping(data) => {
                    ponged = true;
                    if self.pings.len() < PINGS_LIMIT {
                        self.pings.push(at);
                    }
                    match self.send(&[EioPacket::Pong(data)]).await {
                        Ok(()) => self.last_pong = Some(Instant::now()),
                        Err(e) => {
                            self.pong_errors.push(e.to_string());
                            return self.end(e);
                        }
                    }
                }
                EioPacket::Close if upgrading => {}
                EioPacket::Close => {
                    return self.fail(Error::Closed("Engine.IO close packet".into()));
                }
                EioPacket::Message(text) => {
                    let sio = match SioPacket::decode(&text) {
                        Ok(p) => p,
                        Err(e) => return Err(Error::Codec(e)),
                    };
                    self.on_sio(at, sio).await?;
                }
                EioPacket::Open(_) => {
                    return Err(Error::Protocol(
                        "a second open packet arrived on an open session".into(),
                    ))
                }
                EioPacket::Pong(_)
                | EioPacket::Noop
                | EioPacket::Upgrade
                | EioPacket::Binary(_) => {}
            }
        }
        Ok(())
    }

    /// A send failed: the session is not used any further.
    fn end<T>(&mut self, e: Error) -> Result<T, Error> {
        if self.broken.is_none() {
            self.broken = Some(format!("a send failed: {e}"));
        }
        Err(e)
    }

    async fn on_sio(&mut self, at: Instant, p: SioPacket) -> Result<(), Error> {
        let watched = match (&self.watch, p.event_name()) {
            (Some((ns, ev)), Some(name)) => *ns == p.namespace && ev == name,
            _ => false,
        };
        if watched {
            let acked = match p.id {
                Some(id) => self
                    .send_sio(&SioPacket::ack(&p.namespace, id, vec![]))
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            };
            let failed = acked.clone().err();
            if self.events.len() < EVENTS_LIMIT {
                self.events.push(EventSeen {
                    at,
                    ack_id: p.id,
                    payload: p.event_args().first().cloned(),
                    acked,
                });
            }
            if let Some(e) = failed {
                return self.end(Error::Protocol(format!("acking the event failed: {e}")));
            }
            return Ok(());
        }
        if self.backlog.len() >= BACKLOG_LIMIT {
            self.backlog.pop_front();
        }
        self.backlog.push_back((at, p));
        Ok(())
    }

    /// The next Socket.IO packet, or `None` at the deadline.
    pub async fn next_sio(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<(Instant, SioPacket)>, Error> {
        loop {
            if let Some(p) = self.backlog.pop_front() {
                return Ok(Some(p));
            }
            if !self.step(deadline).await? {
                return Ok(None);
            }
        }
    }

    /// CONNECT to `namespace` (with `auth`) and wait for CONNECT or CONNECT_ERROR.
    pub async fn connect_namespace(
        &mut self,
        namespace: &str,
        auth: Option<Value>,
    ) -> Result<NsReply, Error> {
        let timeout = self.polling.request_timeout;
        self.send_sio(&SioPacket::connect(namespace, auth)).await?;
        let deadline = Instant::now() + timeout;
        let mut other = Vec::new();
        let result = loop {
            match self.next_sio(deadline).await {
                Err(e) => break Err(e),
                Ok(None) => {
                    break Err(Error::Timeout {
                        what: format!("the answer to CONNECT {namespace}"),
                        after: timeout,
                    })
                }
                Ok(Some((at, p))) if p.namespace == namespace => match p.kind {
                    SioKind::Connect => {
                        let pid = p
                            .data
                            .as_ref()
                            .and_then(|d| d.get("pid"))
                            .and_then(|v| v.as_str())
                            .map(|s| s.chars().take(200).collect());
                        break Ok(NsReply::Connected { at, pid });
                    }
                    SioKind::ConnectError => {
                        break Ok(NsReply::Refused {
                            message: refusal_message(&p),
                        })
                    }
                    SioKind::Disconnect => {
                        break Err(Error::Protocol(format!(
                            "the server answered CONNECT {namespace} with DISCONNECT"
                        )))
                    }
                    _ => other.push((at, p)),
                },
                Ok(Some(x)) => other.push(x),
            }
        };
        for x in other.into_iter().rev() {
            self.backlog.push_front(x);
        }
        result
    }

    /// Upgrades a polling session to websocket with the jar's cookies: `2probe`, `3probe`,
    /// the pending long poll ends (`6` or `1`), then `5`.
    pub async fn upgrade(&mut self) -> Result<Upgraded, Error> {
        if self.transport == Transport::WebSocket {
            return Err(Error::Protocol("already on websocket".into()));
        }
        if let Some(why) = &self.broken {
            return Err(Error::Closed(why.clone()));
        }
        let started = Instant::now();
        let timeout = self.polling.request_timeout;
        // A real client has a long poll pending while it probes; so do we.
        self.spawn_get();
        let url = ws::ws_url(&self.polling, Some(&self.sid));
        let mut socket = Ws::connect(&url, self.polling.jar(), timeout).await?;
        let during = |e: Error| match e {
            Error::Closed(why) => Error::Closed(format!("during the upgrade, after 2probe: {why}")),
            e => e,
        };
        socket
            .send(&EioPacket::Ping("probe".into()), timeout)
            .await
            .map_err(during)?;
        let deadline = Instant::now() + timeout;
        loop {
            match socket.recv(deadline).await.map_err(during)? {
                None => {
                    return Err(Error::Timeout {
                        what: "3probe after 2probe".into(),
                        after: timeout,
                    })
                }
                Some(Incoming::Closed(why)) => {
                    return Err(Error::Closed(format!(
                        "during the upgrade, after 2probe: {why}"
                    )))
                }
                Some(Incoming::Packet(EioPacket::Pong(d))) if d == "probe" => break,
                Some(Incoming::Packet(EioPacket::Noop)) => continue,
                Some(Incoming::Packet(p)) => {
                    return Err(Error::Protocol(format!(
                        "expected 3probe after 2probe, got a {} packet",
                        p.type_name()
                    )))
                }
            }
        }
        // The server now ends the pending poll with a noop (or closes polling with `1`).
        let deadline = Instant::now() + timeout;
        let ended = match self.await_get(deadline).await {
            None => {
                return Err(Error::Timeout {
                    what: "the pending long poll to end after 3probe (expected 6 or 1)".into(),
                    after: timeout,
                })
            }
            Some(Err(e)) => return self.fail(e),
            Some(Ok(packets)) => packets,
        };
        let ended_with = ended
            .iter()
            .map(|p| p.type_name())
            .collect::<Vec<_>>()
            .join(", ");
        self.handle(Instant::now(), ended, true).await?;
        socket.send(&EioPacket::Upgrade, timeout).await?;
        self.ws = Some(socket);
        self.transport = Transport::WebSocket;
        Ok(Upgraded {
            elapsed: started.elapsed(),
            pending_poll_ended_with: ended_with,
        })
    }

    /// Clean disconnect: leave `namespace` (DISCONNECT) and close the transport; returns how
    /// the server confirmed it.
    pub async fn disconnect(&mut self, namespace: Option<&str>) -> Result<String, Error> {
        if let Some(why) = &self.broken {
            return Err(Error::Closed(why.clone()));
        }
        let timeout = self.polling.request_timeout;
        match self.transport {
            Transport::WebSocket => {
                if let Some(ns) = namespace {
                    self.send_sio(&SioPacket::disconnect(ns)).await?;
                }
                let Some(ws) = self.ws.as_mut() else {
                    return Err(Error::Closed("no websocket".into()));
                };
                let how = ws.close(timeout).await?;
                self.broken = Some("disconnected".into());
                Ok(format!("the server completed the websocket close ({how})"))
            }
            Transport::Polling => {
                let mut packets = Vec::new();
                if let Some(ns) = namespace {
                    packets.push(SioPacket::disconnect(ns).to_eio());
                }
                packets.push(EioPacket::Close);
                self.send(&packets).await?;
                // A pending poll ends with `1` once the session is closed.
                let _ = self.await_get(Instant::now() + timeout).await;
                self.broken = Some("disconnected".into());
                match self.polling.poll(&self.sid, timeout).await {
                    Err(Error::SessionUnknown { .. }) => Ok(
                        "the server released the session (a later poll got 400 Session ID unknown)"
                            .into(),
                    ),
                    Ok(p) if p.contains(&EioPacket::Close) => {
                        Ok("the server answered with close".into())
                    }
                    Ok(p) => Err(Error::Protocol(format!(
                        "after close the session still answers polls ({} packet(s))",
                        p.len()
                    ))),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Best-effort close of an auxiliary session; errors are ignored, time is bounded.
    pub async fn abandon(mut self) {
        let t = self.polling.request_timeout.min(Duration::from_secs(2));
        if self.broken.is_some() {
            return;
        }
        match self.transport {
            Transport::WebSocket => {
                if let Some(ws) = self.ws.as_mut() {
                    let _ = ws.close(t).await;
                }
            }
            Transport::Polling => {
                let _ = tokio::time::timeout(t, self.polling.send(&self.sid, &[EioPacket::Close]))
                    .await;
            }
        }
    }
}
