//! `heartbeat` and `ping`, waited for together on the main session once it joined the
//! namespace: the server's heartbeat event arrives on time and is acked; the Engine.IO ping
//! arrives within pingInterval and is answered.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::auth::auth_json;
use super::{check, ms};
use crate::gateway::session::{EventSeen, NsReply, Session};
use crate::gateway::{bounded, instance_of, slack, Error, VerifySettings};
use crate::report::{Check, CheckStatus};

/// Longest extra wait for a second heartbeat when nothing else is being waited for.
const SECOND_HEARTBEAT_BUDGET: Duration = Duration::from_secs(5);

/// Joins the namespace, then waits for the heartbeat (acked as it comes) and the ping
/// (answered as it comes) together. Returns both checks and whether the namespace was joined.
pub(super) async fn heartbeat_and_ping(
    main: &mut Session,
    s: &VerifySettings,
    note: &str,
) -> (Check, Check, bool) {
    let started = Instant::now();
    let hb_slack = slack(s.heartbeat_interval);
    let joined = join(main, s, started, note).await;
    let ping = PingWindow::new(main, s);
    let error = wait(main, s, &ping, joined.as_ref().ok().copied(), hb_slack).await;
    let hb = match &joined {
        Err(c) => c.clone(),
        Ok(at) => heartbeat_verdict(
            s,
            *at,
            &main.events,
            hb_slack,
            error.as_ref(),
            started,
            note,
        ),
    };
    let ping = ping_verdict(main, &ping, error.as_ref(), started, note);
    (hb, ping, joined.is_ok())
}

/// Watches for the heartbeat event and joins the namespace (with the token, if any): the time
/// it was joined, or the heartbeat check that says why not.
async fn join(
    main: &mut Session,
    s: &VerifySettings,
    started: Instant,
    note: &str,
) -> Result<Instant, Check> {
    let ns = s.namespace.as_str();
    main.watch(ns, &s.heartbeat_event);
    let auth = s.token.as_ref().map(auth_json);
    match main.connect_namespace(ns, auth).await {
        Ok(NsReply::Connected { at, .. }) => Ok(at),
        Ok(NsReply::Refused { message }) if s.token.is_none() => Err(check(
            "heartbeat",
            CheckStatus::Skip,
            started,
            format!("not run: {ns} refused a connection without a token (CONNECT_ERROR {message:?}); configure gateway.token_env or gateway.jwt_secret_env{note}"),
        )),
        Ok(NsReply::Refused { message }) => Err(check(
            "heartbeat",
            CheckStatus::Fail,
            started,
            format!("could not join {ns}: CONNECT_ERROR {message:?}{note}"),
        )),
        Err(e) => Err(check("heartbeat", CheckStatus::Fail, started, format!("could not join {ns}: {e}{note}"))),
    }
}

/// When the ping is due: the first one if it came within pingInterval + slack of the open;
/// else the next one, counted from the last pong (or from now, if that is later).
struct PingWindow {
    /// The pingInterval waited for: the announced one, unless it is over twice the configured.
    interval: Duration,
    slack: Duration,
    /// When the waiting started.
    pump_start: Instant,
    /// The first ping, if it already came in time.
    early: Option<Instant>,
    /// What the next ping is counted from: the last pong, or the open.
    reference: Instant,
    deadline: Instant,
    /// Pings seen before the waiting started.
    before: usize,
}

impl PingWindow {
    fn new(main: &Session, s: &VerifySettings) -> PingWindow {
        let interval = {
            let announced = Duration::from_millis(main.handshake.ping_interval);
            if announced <= s.ping_interval * 2 {
                announced
            } else {
                s.ping_interval
            }
        };
        let slack = slack(interval);
        let pump_start = Instant::now();
        let early = main
            .pings
            .first()
            .copied()
            .filter(|t| t.duration_since(main.opened_at) <= interval + slack);
        let reference = main.last_pong.unwrap_or(main.opened_at).max(main.opened_at);
        let deadline = (reference + interval).max(pump_start) + slack;
        PingWindow {
            interval,
            slack,
            pump_start,
            early,
            reference,
            deadline,
            before: main.pings.len(),
        }
    }
}

/// Steps the session until the ping and the heartbeat(s) are in or overdue. The first
/// heartbeat is due interval + slack after joining; a second one is waited for only when it
/// fits the time spent waiting for the ping anyway, or a short budget. Returns the error that
/// ended the waiting early, if any.
async fn wait(
    main: &mut Session,
    s: &VerifySettings,
    ping: &PingWindow,
    joined_at: Option<Instant>,
    hb_slack: Duration,
) -> Option<Error> {
    let hb_interval = s.heartbeat_interval;
    let mut hb_deadline: Option<Instant> = joined_at.map(|at| at + hb_interval + hb_slack);
    let mut second_decided = false;
    loop {
        let now = Instant::now();
        let ping_done =
            ping.early.is_some() || main.pings.len() > ping.before || now >= ping.deadline;
        let seen = main.events.len();
        if seen >= 1 && !second_decided {
            second_decided = true;
            let second = main.events[0].at + hb_interval + hb_slack;
            let budget_end = if ping_done {
                ping.pump_start + SECOND_HEARTBEAT_BUDGET
            } else {
                ping.deadline.max(ping.pump_start + SECOND_HEARTBEAT_BUDGET)
            };
            hb_deadline = (second <= budget_end).then_some(second);
        }
        let hb_done = match hb_deadline {
            None => true,
            Some(d) => seen >= 2 || now >= d,
        };
        if ping_done && hb_done {
            return None;
        }
        let mut next = now + Duration::from_secs(3600);
        if !ping_done {
            next = next.min(ping.deadline);
        }
        if let (false, Some(d)) = (hb_done, hb_deadline) {
            next = next.min(d);
        }
        if let Err(e) = main.step(next).await {
            return Some(e);
        }
    }
}

fn ping_verdict(
    main: &Session,
    w: &PingWindow,
    error: Option<&Error>,
    started: Instant,
    note: &str,
) -> Check {
    let new_ping = main.pings.get(w.before).copied();
    let observed = match w.early {
        Some(t) => Some((t.duration_since(main.opened_at), "the open")),
        None => new_ping.filter(|t| *t <= w.deadline).map(|t| {
            let from = if w.before > 0 {
                "the last pong"
            } else {
                "the open"
            };
            (t.duration_since(w.reference), from)
        }),
    };
    match (observed, main.pong_errors.first()) {
        (Some(_), Some(e)) => check(
            "ping",
            CheckStatus::Fail,
            started,
            format!("the Engine.IO ping arrived but the pong could not be sent: {e}{note}"),
        ),
        (Some((after, from)), None) => check(
            "ping",
            CheckStatus::Pass,
            started,
            format!(
                "Engine.IO ping {} ms after {from} (pingInterval {} ms), answered with pong{note}",
                ms(after),
                ms(w.interval)
            ),
        ),
        (None, _) => {
            let why = match error {
                Some(e) => format!(": {e}"),
                None => String::new(),
            };
            check(
                "ping",
                CheckStatus::Fail,
                started,
                format!(
                    "no Engine.IO ping within pingInterval {} ms + {} ms slack (waited {} ms){why}{note}",
                    ms(w.interval),
                    ms(w.slack),
                    ms(w.pump_start.elapsed())
                ),
            )
        }
    }
    .with_evidence(json!({"pings_answered": main.pings.len(), "pingInterval": ms(w.interval), "transport": main.transport.name()}))
}

fn heartbeat_verdict(
    s: &VerifySettings,
    joined_at: Instant,
    events: &[EventSeen],
    hb_slack: Duration,
    error: Option<&Error>,
    started: Instant,
    note: &str,
) -> Check {
    let ev = &s.heartbeat_event;
    let interval = s.heartbeat_interval;
    let Some(first) = events.first() else {
        let why = match error {
            Some(e) => format!(": {e}"),
            None => String::new(),
        };
        return check(
            "heartbeat",
            CheckStatus::Fail,
            started,
            format!(
                "no {ev:?} event within {} ms of joining {} (interval {} ms + {} ms slack){why}{note}",
                ms(interval + hb_slack),
                s.namespace,
                ms(interval),
                ms(hb_slack)
            ),
        );
    };
    let after = first.at.duration_since(joined_at);
    let payload = first.payload.clone().unwrap_or(Value::Null);
    let instance = instance_of(&payload);
    let spacing = events.get(1).map(|e| e.at.duration_since(first.at));
    let evidence = json!({
        "event": ev,
        "first_after_ms": ms(after),
        "interval_ms": ms(interval),
        "ack_id": first.ack_id,
        "spacing_ms": spacing.map(ms),
        "instanceId": instance,
        "seq": bounded(payload.get("seq")),
    });
    let mut status = CheckStatus::Pass;
    let mut msg = format!("{ev:?} {} ms after joining {}", ms(after), s.namespace);
    if after > interval + hb_slack {
        status = CheckStatus::Fail;
        msg.push_str(&format!(
            ", later than {} ms + {} ms slack",
            ms(interval),
            ms(hb_slack)
        ));
    }
    match (&first.ack_id, &first.acked) {
        (Some(id), Ok(())) => msg.push_str(&format!(", acked (ack id {id})")),
        (Some(id), Err(e)) => {
            status = CheckStatus::Fail;
            msg.push_str(&format!(", the ack (id {id}) could not be sent: {e}"));
        }
        (None, _) => {
            if status == CheckStatus::Pass {
                status = CheckStatus::Warn;
            }
            msg.push_str(", but it asks for no ack (no ack id)");
        }
    }
    if let Some(sp) = spacing {
        msg.push_str(&format!(
            "; spacing {} ms (configured {} ms)",
            ms(sp),
            ms(interval)
        ));
        if (sp > interval + hb_slack || sp < interval / 2) && status == CheckStatus::Pass {
            status = CheckStatus::Warn;
        }
    }
    if let Some(i) = instance {
        msg.push_str(&format!("; from {i}"));
    }
    msg.push_str(note);
    check("heartbeat", status, started, msg).with_evidence(evidence)
}
