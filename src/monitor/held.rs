//! One session `monitor` holds through the load balancer, as a real user's socket.io-client
//! would: a websocket session (its own cookie jar), the namespace joined with the token, every
//! heartbeat acked; a drop is noticed as the client notices it (the connection closed or
//! failed, no Engine.IO ping within pingInterval + pingTimeout, the server leaving the
//! namespace) and what happens next is socket.io-client's rule ([`rules`], shared with the
//! probe): after a transport close or error or a ping timeout the session comes back on
//! socket.io-client's schedule (the probe's [`Backoff`]); told to leave ("io server
//! disconnect"), or refused with CONNECT_ERROR on a reconnect, it is lost, as a real user's
//! would be, and a fresh session replaces it after the next record (so `sessions up` keeps
//! meaning what users would have). What it sees goes into the shared [`State`]; nothing grows
//! per event (the session's own event and ping lists are emptied as they are read).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use url::Url;

use super::record::{DropCause, Probe, Tally};
use crate::gateway::codec::SioKind;
use crate::gateway::polling::{new_jar, Polling};
use crate::gateway::probe::Backoff;
use crate::gateway::reconnect_rules::{self as rules, AttemptCause, ReconnectLike};
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

/// Why an open failed: its class (the rules read it) and its message.
pub type OpenError = (AttemptCause, String);

fn open_error(e: impl ToString) -> OpenError {
    let m = e.to_string();
    (AttemptCause::of(&m), m)
}

/// Opens a websocket session and joins the namespace; the error says why not.
pub async fn connect(h: &Hold) -> Result<Session, OpenError> {
    let base = Url::parse(&h.verify.url).map_err(open_error)?;
    let polling = Polling::new(&base, Some(new_jar()), h.request).map_err(open_error)?;
    let mut s = Session::open_ws(polling).await.map_err(open_error)?;
    let ns = h.verify.namespace.as_str();
    s.watch(ns, &h.verify.heartbeat_event);
    let auth = h
        .verify
        .token
        .as_ref()
        .map(|t| json!({ "token": t.expose() }));
    match s.connect_namespace(ns, auth).await {
        Ok(NsReply::Connected { .. }) => Ok(s),
        Ok(NsReply::Refused { message }) => Err((
            AttemptCause::ConnectError,
            format!("CONNECT {ns} refused: {}", message.shown(160)),
        )),
        Err(e) => Err(open_error(e)),
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
        Err((_, e)) => p.handshake_error = Some(crate::outside::Outside::new(&e).shown(200)),
    }
    p
}

/// Where a held session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening a new session: the first one, or one replacing a lost one.
    Fresh,
    /// Coming back after a drop socket.io-client reconnects after (since the drop).
    Reconnecting(Instant),
    /// Abandoned as socket.io-client would abandon it: replaced after the next record.
    Lost,
}

/// The monitor's sessions follow socket.io-client's own rules, nothing else.
const LIKE: ReconnectLike = ReconnectLike::Browser;

/// A session dropped for `cause`: counted, and what comes next by socket.io-client's rule.
pub fn on_drop(t: &mut Tally, cause: DropCause, now: Instant) -> Phase {
    t.dropped(cause);
    match rules::after_drop(LIKE, cause.rule_cause()) {
        Ok(()) => Phase::Reconnecting(now),
        Err(lost) => {
            t.lost(lost);
            Phase::Lost
        }
    }
}

/// An open failed: a failed reconnect attempt is counted, and a CONNECT_ERROR ends the trying
/// (lost, on a reconnect; a fresh session refused waits for the next interval too, as an app
/// would call `connect()` again later). Other failures go on with the next attempt.
pub fn on_failed_open(t: &mut Tally, phase: Phase, cause: AttemptCause) -> Phase {
    match phase {
        Phase::Reconnecting(since) => {
            t.failed_attempts += 1;
            match rules::after_attempt(LIKE, cause) {
                Some(lost) => {
                    t.lost(lost);
                    Phase::Lost
                }
                None => Phase::Reconnecting(since),
            }
        }
        Phase::Fresh | Phase::Lost => match rules::after_attempt(LIKE, cause) {
            Some(_) => Phase::Lost,
            None => Phase::Fresh,
        },
    }
}

/// A session is up: a reconnect (with its time) or, after a loss, a replacement.
pub fn on_up(t: &mut Tally, phase: Phase, was_up: bool) {
    match phase {
        Phase::Reconnecting(since) => t.reconnected(since.elapsed().as_millis() as u64),
        Phase::Fresh if was_up => t.replaced += 1,
        Phase::Fresh | Phase::Lost => {}
    }
}

/// Holds session `i` until `stop` turns true (or its sender is gone); `tick` changes after
/// each record (a lost session is replaced then).
pub async fn hold(
    i: usize,
    h: Arc<Hold>,
    state: Arc<Mutex<State>>,
    mut stop: watch::Receiver<bool>,
    mut tick: watch::Receiver<u64>,
) {
    let mut phase = Phase::Fresh;
    let mut was_up = false;
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        if phase == Phase::Lost {
            tokio::select! {
                _ = stop.changed() => break,
                r = tick.changed() => if r.is_err() { break },
            }
            phase = Phase::Fresh;
            attempt = 0;
        }
        if matches!(phase, Phase::Reconnecting(_)) || attempt > 0 {
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
            Err((cause, _)) => {
                phase = on_failed_open(&mut state.lock().unwrap().tally, phase, cause);
                if phase == Phase::Lost {
                    tick.borrow_and_update();
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        {
            let mut st = state.lock().unwrap();
            st.up[i] = Some("unknown".into());
            on_up(&mut st.tally, phase, was_up);
        }
        was_up = true;
        attempt = 0;
        let Some(cause) = held(&mut s, &h, i, &state, &mut stop).await else {
            let _ = s.disconnect(Some(&h.verify.namespace)).await;
            break;
        };
        let mut st = state.lock().unwrap();
        st.up[i] = None;
        phase = on_drop(&mut st.tally, cause, Instant::now());
        if phase == Phase::Lost {
            tick.borrow_and_update();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn told_to_leave_is_lost_and_never_a_reconnect() {
        let now = Instant::now();
        let mut t = Tally::default();
        assert_eq!(
            on_drop(&mut t, DropCause::ServerDisconnect, now),
            Phase::Lost
        );
        assert_eq!(t.lost, [1, 0]);
        for c in [
            DropCause::TransportClose,
            DropCause::TransportError,
            DropCause::PingTimeout,
        ] {
            assert_eq!(on_drop(&mut t, c, now), Phase::Reconnecting(now), "{c:?}");
        }
        assert_eq!(t.lost, [1, 0]);
        assert_eq!(t.drops.iter().sum::<u64>(), 4);
        // The replacement after the loss is counted as replaced, not as a reconnect.
        on_up(&mut t, Phase::Fresh, true);
        on_up(&mut t, Phase::Fresh, false);
        assert_eq!((t.replaced, t.reconnect_ms.count()), (1, 0));
        on_up(&mut t, Phase::Reconnecting(now), true);
        assert_eq!((t.replaced, t.reconnect_ms.count()), (1, 1));
    }

    #[test]
    fn connect_error_on_a_reconnect_ends_the_trying_and_nothing_else_does() {
        let since = Instant::now();
        for c in AttemptCause::ALL {
            let mut t = Tally::default();
            let next = on_failed_open(&mut t, Phase::Reconnecting(since), c);
            if c == AttemptCause::ConnectError {
                assert_eq!((next, t.lost), (Phase::Lost, [0, 1]), "{c:?}");
            } else {
                assert_eq!(
                    (next, t.lost),
                    (Phase::Reconnecting(since), [0, 0]),
                    "{c:?}"
                );
            }
            assert_eq!(t.failed_attempts, 1);
            // A fresh session refused waits for the next interval; it was never up, so it is
            // neither lost nor a failed reconnect.
            let mut t = Tally::default();
            let want = if c == AttemptCause::ConnectError {
                Phase::Lost
            } else {
                Phase::Fresh
            };
            assert_eq!(on_failed_open(&mut t, Phase::Fresh, c), want, "{c:?}");
            assert_eq!((t.lost, t.failed_attempts), ([0, 0], 0));
        }
    }
}
