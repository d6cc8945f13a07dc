//! One session `monitor` holds through the load balancer, as a real user's socket.io-client
//! would: a websocket session (its own cookie jar), the namespace joined with the token, every
//! heartbeat acked; a drop is noticed as the client notices it (the connection closed or
//! failed, no Engine.IO ping within pingInterval + pingTimeout, the server leaving the
//! namespace) and the session comes back on socket.io-client's schedule (the probe's
//! [`Backoff`]). What it sees goes into the shared [`State`]; nothing grows per event (the
//! session's own event and ping lists are emptied as they are read).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use url::Url;

use super::record::{DropCause, Probe, Tally};
use crate::gateway::codec::SioKind;
use crate::gateway::polling::{new_jar, Polling};
use crate::gateway::probe::Backoff;
use crate::gateway::session::{NsReply, Session};
use crate::gateway::{instance_of, Error, VerifySettings};

/// What the sessions share with the recorder.
#[derive(Debug, Default)]
pub struct State {
    /// Per session: `None` down, else the target it is on (`unknown` before a heartbeat).
    pub up: Vec<Option<String>>,
    pub tally: Tally,
}

/// What a held session needs.
pub struct Hold {
    pub verify: VerifySettings,
    pub backoff: Backoff,
    pub request: Duration,
}

/// Opens a websocket session and joins the namespace; the error says why not.
pub async fn connect(h: &Hold) -> Result<Session, String> {
    let base = Url::parse(&h.verify.url).map_err(|e| e.to_string())?;
    let polling = Polling::new(&base, Some(new_jar()), h.request).map_err(|e| e.to_string())?;
    let mut s = Session::open_ws(polling).await.map_err(|e| e.to_string())?;
    let ns = h.verify.namespace.as_str();
    s.watch(ns, &h.verify.heartbeat_event);
    let auth = h
        .verify
        .token
        .as_ref()
        .map(|t| json!({ "token": t.expose() }));
    match s.connect_namespace(ns, auth).await {
        Ok(NsReply::Connected { .. }) => Ok(s),
        Ok(NsReply::Refused { message }) => {
            Err(format!("CONNECT {ns} refused: {}", message.shown(160)))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The interval's fresh handshake (open, join, leave) and health endpoint.
pub async fn probe(h: &Hold) -> Probe {
    let mut p = Probe::default();
    if let Ok(base) = Url::parse(&h.verify.url) {
        if let Ok(http) = Polling::new(&base, None, h.request) {
            if let Ok(url) = http.url(&h.verify.health_path) {
                if let Ok(r) = http.get(url, h.request).await {
                    p.health_status = Some(r.status);
                    p.health_ms = Some(r.elapsed.as_millis() as u64);
                }
            }
        }
    }
    let started = Instant::now();
    match connect(h).await {
        Ok(mut s) => {
            p.handshake_ms = Some(started.elapsed().as_millis() as u64);
            let _ = s.disconnect(Some(&h.verify.namespace)).await;
        }
        Err(e) => p.handshake_error = Some(crate::outside::Outside::new(&e).shown(200)),
    }
    p
}

/// Holds session `i` until `stop` turns true (or its sender is gone).
pub async fn hold(
    i: usize,
    h: Arc<Hold>,
    state: Arc<Mutex<State>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut down_since: Option<Instant> = None;
    let mut was_up = false;
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        if down_since.is_some() {
            let wait = h.backoff.delay(attempt, rand::random::<f64>());
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let opened = tokio::select! {
            _ = stop.changed() => break,
            c = connect(&h) => c,
        };
        let mut s = match opened {
            Ok(s) => s,
            Err(_) => {
                if was_up {
                    state.lock().unwrap().tally.failed_attempts += 1;
                }
                attempt = attempt.saturating_add(1);
                down_since.get_or_insert_with(Instant::now);
                continue;
            }
        };
        {
            let mut st = state.lock().unwrap();
            st.up[i] = Some("unknown".into());
            if let (true, Some(d)) = (was_up, down_since) {
                st.tally.reconnected(d.elapsed().as_millis() as u64);
            }
        }
        was_up = true;
        attempt = 0;
        match held(&mut s, &h, i, &state, &mut stop).await {
            None => {
                let _ = s.disconnect(Some(&h.verify.namespace)).await;
                break;
            }
            Some(cause) => {
                let mut st = state.lock().unwrap();
                st.up[i] = None;
                st.tally.dropped(cause);
                down_since = Some(Instant::now());
            }
        }
    }
    state.lock().unwrap().up[i] = None;
}

/// Reads the session until it drops (the cause) or `stop` (`None`).
async fn held(
    s: &mut Session,
    h: &Hold,
    i: usize,
    state: &Mutex<State>,
    stop: &mut watch::Receiver<bool>,
) -> Option<DropCause> {
    let ns = h.verify.namespace.as_str();
    let window = Duration::from_millis(
        s.handshake
            .ping_interval
            .saturating_add(s.handshake.ping_timeout)
            .min(600_000),
    );
    let mut last_ping = Instant::now();
    let mut last_hb: Option<Instant> = None;
    loop {
        let deadline = (Instant::now() + Duration::from_secs(1)).min(last_ping + window);
        let next = tokio::select! {
            _ = stop.changed() => return None,
            r = s.next_sio(deadline) => r,
        };
        if let Some(p) = s.pings.last() {
            last_ping = last_ping.max(*p);
        }
        s.pings.clear();
        for e in s.events.drain(..) {
            let gap = last_hb.map(|l| e.at.saturating_duration_since(l).as_millis() as u64);
            last_hb = Some(e.at);
            let target = e.payload.as_ref().and_then(instance_of);
            let mut st = state.lock().unwrap();
            st.tally.heartbeat(gap);
            if let Some(t) = target {
                st.up[i] = Some(t.shown(80));
            }
        }
        match next {
            Ok(Some((_, p))) if p.namespace == ns && p.kind == SioKind::Disconnect => {
                return Some(DropCause::ServerDisconnect)
            }
            Ok(Some(_)) => {}
            Ok(None) if Instant::now() >= last_ping + window => {
                return Some(DropCause::PingTimeout)
            }
            Ok(None) => {}
            Err(Error::Closed(_)) => return Some(DropCause::TransportClose),
            Err(_) => return Some(DropCause::TransportError),
        }
    }
}
