//! The sessions' lifecycle: spawn them at the configured concurrency and rate, open each
//! ([`super::session::open`]), hold it through drops and reconnects ([`super::reconnect`]),
//! and leave. Apart from `session.rs` (one connection's primitives), so that `reconnect`
//! builds on the primitives and this file on both, without an import circle.

use super::session::*;
use super::shared::{CookieSeen, Phase, Shared, Stream, NONE};
use super::timeline::Timeline;
use super::{CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT};
use crate::gateway::fmt_duration;
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

async fn session(
    i: usize,
    permit: OwnedSemaphorePermit,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> Record {
    let t0 = Instant::now();
    let mut jar: Jar = None;
    let keep = sh.reconnect.is_some().then_some(&mut jar);
    // Boxed: the handshake's state (about 1.5 KiB) lives on the heap only while it runs, not
    // in every session's task for its whole life.
    let mut seen = CookieSeen::None;
    let opened = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        Box::pin(open(&sh, i, keep, &mut seen, &None)),
    )
    .await;
    drop(permit);
    let mut rec = Record {
        connect_us: None,
        opened_at: sh.since_start(t0),
        gone_at: sh.since_start(t0),
        target: NONE,
        cookie: CookieSeen::None,
        hb_in_hold: 0,
        outcome: Outcome::Closed,
        timeline: Timeline::new(),
    };
    let (mut ws, cookie, ping_window, pid) = match opened {
        Ok(Ok(x)) => x,
        failed => {
            sh.counters.open_failed.fetch_add(1, Relaxed);
            let cause = match failed {
                Ok(Err(cause)) => cause,
                _ => format!(
                    "no CONNECT answer within {}",
                    fmt_duration(HANDSHAKE_TIMEOUT)
                ),
            };
            rec.outcome = Outcome::OpenFailed(cause);
            // The target that refused it, if the handshake got that far.
            rec.cookie = seen;
            return rec;
        }
    };
    let now = Instant::now();
    rec.connect_us = Some(now.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
    rec.opened_at = sh.since_start(now);
    rec.cookie = cookie;
    sh.counters.opened.fetch_add(1, Relaxed);
    sh.counters
        .last_open_us
        .fetch_max(sh.since_start(now).as_micros() as u64, Relaxed);

    let mut live = Live {
        opened: now,
        last_hb: now,
        window: None,
        hb_in_hold: 0,
        target: NONE,
        pid: pid.filter(|_| sh.reconnect.is_some()),
        offset: None,
    };
    if live.pid.is_some() {
        sh.counters.pids.fetch_add(1, Relaxed);
    }
    let outcome = match &sh.reconnect {
        None => run_open(&sh, &mut ws, &mut live, &mut phase).await,
        Some(_) => {
            let held = super::reconnect::Held {
                i,
                jar,
                ping_window,
                cookie,
            };
            let (outcome, last_cookie) = Box::pin(super::reconnect::hold(
                &sh,
                &mut ws,
                &mut live,
                &mut phase,
                &mut rec.timeline,
                held,
            ))
            .await;
            // The cookie of the connection the session ended on, as its target is.
            rec.cookie = last_cookie;
            outcome
        }
    };
    rec.target = live.target;
    rec.hb_in_hold = live.hb_in_hold;
    rec.gone_at = sh.since_start(Instant::now());
    if let Err(cause) = outcome {
        sh.counters.dropped.fetch_add(1, Relaxed);
        rec.outcome = Outcome::Dropped(cause);
        return rec;
    }
    rec.outcome = leave(&sh, &mut ws).await;
    rec
}

/// The clean close after the hold (DISCONNECT, then the websocket close), bounded by
/// [`CLOSE_TIMEOUT`], counted.
async fn leave(sh: &Shared, ws: &mut Stream) -> Outcome {
    let closed = tokio::time::timeout(
        CLOSE_TIMEOUT,
        Box::pin(close(ws, sh.disconnect_frame.clone())),
    )
    .await;
    let outcome = match closed {
        Ok(Ok(())) => Outcome::Closed,
        Ok(Err(cause)) => Outcome::CloseFailed(cause),
        Err(_) => Outcome::CloseFailed(format!(
            "the server did not complete the close within {}",
            fmt_duration(CLOSE_TIMEOUT)
        )),
    };
    let counter = match outcome {
        Outcome::Closed => &sh.counters.closed,
        _ => &sh.counters.close_failed,
    };
    counter.fetch_add(1, Relaxed);
    outcome
}

/// An open session until it is time to leave (`Ok`) or it is lost (`Err` with the cause).
async fn run_open(
    sh: &Shared,
    ws: &mut Stream,
    live: &mut Live,
    phase: &mut watch::Receiver<Phase>,
) -> Result<(), String> {
    fn apply(p: Phase, live: &mut Live) -> Option<Instant> {
        match p {
            Phase::Opening => None,
            Phase::Holding { start, end } => {
                live.window = Some((start, end));
                None
            }
            Phase::Closing { until } => Some(until),
        }
    }
    let current = *phase.borrow_and_update();
    let mut until = apply(current, live);
    while until.is_none() {
        tokio::select! {
            biased;
            changed = phase.changed() => match changed {
                Ok(()) => {
                    let p = *phase.borrow_and_update();
                    until = apply(p, live);
                }
                Err(_) => until = Some(Instant::now()),
            },
            msg = ws.next() => {
                handle(sh, ws, live, msg).await?;
            }
        }
    }
    // Closing: leave right after the next heartbeat is acked (none is then in flight), or at
    // the end of the grace period.
    let grace = tokio::time::sleep_until(until.unwrap_or_else(Instant::now).into());
    tokio::pin!(grace);
    loop {
        tokio::select! {
            biased;
            _ = &mut grace => return Ok(()),
            msg = ws.next() => {
                if handle(sh, ws, live, msg).await? {
                    return Ok(());
                }
            }
        }
    }
}

pub(super) async fn spawn_sessions(
    sh: Arc<Shared>,
    n: u32,
    concurrency: u32,
    rate: Option<f64>,
    phase: watch::Receiver<Phase>,
    stop_at: Instant,
) -> Vec<JoinHandle<Record>> {
    let sem = Arc::new(Semaphore::new(concurrency as usize));
    let mut handles = Vec::with_capacity(n as usize);
    let closing = |p: &watch::Receiver<Phase>| matches!(*p.borrow(), Phase::Closing { .. });
    let mut stop = phase.clone();
    for i in 0..n as usize {
        if closing(&phase) {
            break;
        }
        if let Some(r) = rate {
            // `--rate` is range-checked, so this is finite; past the open phase it stops.
            let at = Duration::try_from_secs_f64(i as f64 / r)
                .ok()
                .and_then(|d| sh.start.checked_add(d))
                .unwrap_or(stop_at);
            if at >= stop_at {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = stop.wait_for(|p| matches!(p, Phase::Closing { .. })) => break,
            }
        }
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(stop_at.into()) => break,
            _ = stop.wait_for(|p| matches!(p, Phase::Closing { .. })) => break,
        };
        sh.counters.started.fetch_add(1, Relaxed);
        handles.push(tokio::spawn(session(i, permit, sh.clone(), phase.clone())));
    }
    handles
}
