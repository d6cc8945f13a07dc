//! A session that comes back (`verify --connections --reconnect`): while open it notices a drop
//! the way socket.io-client would (a close frame, a reset, the end of the stream, no Engine.IO
//! ping within pingInterval + pingTimeout, the server closing the session) and also heartbeat
//! silence (none within its interval plus slack, the interval being the connection's own
//! spacing when that is longer than the configured one: old tasks of a rollout may still run
//! an older interval). Then it reconnects on socket.io-client's schedule ([`super::backoff`]):
//! a new Engine.IO session over websocket through the load balancer, sending the stickiness
//! cookie its last connection was given (its own jar, as a browser keeps it), the namespace
//! joined again with the token, heartbeats acked again. Whether it tries at all, and whether a
//! failed attempt ends the trying, is socket.io-client's rule by default
//! ([`crate::gateway::reconnect_rules`], shared with `monitor`: told to leave or refused on
//! reconnect, the session is lost). Every drop goes into the
//! session's [`Timeline`].

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{self, Message};

use super::backoff::{come_back, Attempts, ComeBack};
use super::session::{closed_cause, handle, open, Jar, Live, Resume};
use super::shared::{CookieSeen, Phase, Shared, Stream};
use super::timeline::{AttemptCause, DropCause, DropEvent, LostCause, Timeline, NO_TARGET};
use super::HANDSHAKE_TIMEOUT;
use crate::gateway::reconnect_rules as rules;
use crate::gateway::{fmt_duration, slack, ws};

/// What the session keeps of its current connection besides [`Live`].
pub(super) struct Held {
    /// The session's number (which resolved address it uses).
    pub(super) i: usize,
    pub(super) jar: Jar,
    /// pingInterval + pingTimeout of the current connection's open packet.
    pub(super) ping_window: Duration,
    /// The stickiness cookie the current connection's `101` set.
    pub(super) cookie: CookieSeen,
}

/// Liveness of the current connection.
struct Watch {
    last_ping: Instant,
    /// Heartbeats on this connection, the last one, and the spacing seen.
    heartbeats: u32,
    last_hb: Instant,
    spacing: Duration,
}

impl Watch {
    fn new(opened: Instant) -> Watch {
        Watch {
            last_ping: opened,
            heartbeats: 0,
            last_hb: opened,
            spacing: Duration::ZERO,
        }
    }

    /// The next moment the connection counts as dropped unless something arrives, and why.
    fn deadline(
        &self,
        configured: Duration,
        ping_window: Duration,
    ) -> (Instant, DropCause, String) {
        let ping = (
            self.last_ping + ping_window,
            DropCause::PingTimeout,
            format!("no Engine.IO ping within {}", fmt_duration(ping_window)),
        );
        if self.heartbeats == 0 {
            return ping;
        }
        let interval = configured.max(self.spacing);
        let allowed = interval + slack(interval);
        let hb = self.last_hb + allowed;
        if hb < ping.0 {
            (
                hb,
                DropCause::HeartbeatSilence,
                format!(
                    "no heartbeat within {} (interval {} plus slack)",
                    fmt_duration(allowed),
                    fmt_duration(interval)
                ),
            )
        } else {
            ping
        }
    }
}

/// How one connection ended.
enum Ended {
    /// Time to leave (the hold is over and a heartbeat was just acked, or the grace ran out).
    Leave,
    Dropped(DropCause, String),
}

/// The cause of a transport error on an open connection.
fn cause_of_error(e: &tungstenite::Error) -> DropCause {
    use std::io::ErrorKind;
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => DropCause::Eof,
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => DropCause::Eof,
        tungstenite::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                DropCause::Reset
            }
            ErrorKind::UnexpectedEof => DropCause::Eof,
            _ => DropCause::Other,
        },
        _ => DropCause::Other,
    }
}

/// The cause of a failure `handle` reported for a message that arrived.
fn cause_of_text(text: &str) -> DropCause {
    if text.contains("the server disconnected") {
        DropCause::ServerDisconnect
    } else if text.contains("Engine.IO close packet") {
        DropCause::ServerClose
    } else if text.contains("reset") || text.contains("Broken pipe") {
        DropCause::Reset
    } else if text.contains("without a websocket close frame") || text.contains("connection ended")
    {
        DropCause::Eof
    } else {
        DropCause::Other
    }
}

/// The Holding window, or when to leave once closing.
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

/// The session's record of a heartbeat on its current connection: the first one names the
/// connection's target (the first connection's, or the last drop's "to"); the gap since the
/// session's previous heartbeat, on whichever connection, is measured.
fn note_heartbeat(
    tl: &mut Timeline,
    live: &Live,
    first_on_connection: bool,
    last_any: &mut Option<Instant>,
) {
    if first_on_connection {
        match tl.drops.last_mut() {
            None => {
                if tl.first_target == NO_TARGET {
                    tl.first_target = live.target;
                }
            }
            Some(d) => {
                if d.to == NO_TARGET {
                    d.to = live.target;
                }
            }
        }
    }
    if let Some(prev) = *last_any {
        let gap = live.last_hb.saturating_duration_since(prev).as_millis();
        tl.max_gap_ms = tl.max_gap_ms.max(gap.min(u32::MAX as u128) as u32);
    }
    *last_any = Some(live.last_hb);
}

/// The state one connection works on.
struct Conn<'a> {
    live: &'a mut Live,
    phase: &'a mut watch::Receiver<Phase>,
    tl: &'a mut Timeline,
    last_any: &'a mut Option<Instant>,
}

/// One connection of a reconnecting session, until it drops or it is time to leave.
async fn connection(
    sh: &Shared,
    ws: &mut Stream,
    c: Conn<'_>,
    watch: &mut Watch,
    ping_window: Duration,
) -> Ended {
    let Conn {
        live,
        phase,
        tl,
        last_any,
    } = c;
    let mut until = apply(*phase.borrow_and_update(), live);
    loop {
        let (deadline, cause, why) = watch.deadline(sh.heartbeat_interval, ping_window);
        let leave_at = until.unwrap_or(deadline);
        tokio::select! {
            biased;
            changed = phase.changed(), if until.is_none() => match changed {
                Ok(()) => until = apply(*phase.borrow_and_update(), live),
                Err(_) => until = Some(Instant::now()),
            },
            _ = tokio::time::sleep_until(leave_at.into()), if until.is_some() => return Ended::Leave,
            _ = tokio::time::sleep_until(deadline.into()) => return Ended::Dropped(cause, why),
            msg = ws.next() => {
                let msg = match msg {
                    None => return Ended::Dropped(DropCause::Eof, "connection ended (EOF)".into()),
                    Some(Err(e)) => {
                        let cause = cause_of_error(&e);
                        return Ended::Dropped(cause, ws::map_io_error(e).to_string());
                    }
                    Some(Ok(Message::Close(f))) => {
                        return Ended::Dropped(DropCause::CloseFrame, closed_cause(f));
                    }
                    other => other,
                };
                if let Some(Ok(Message::Text(t))) = &msg {
                    if t.as_bytes().first() == Some(&b'2') {
                        watch.last_ping = Instant::now();
                    }
                }
                match handle(sh, ws, live, msg).await {
                    Ok(true) => {
                        let now = live.last_hb;
                        watch.spacing = now.saturating_duration_since(watch.last_hb);
                        watch.last_hb = now;
                        watch.heartbeats += 1;
                        note_heartbeat(tl, live, watch.heartbeats == 1, last_any);
                        tl.spacing_ms = watch.spacing.as_millis().min(u32::MAX as u128) as u32;
                        if until.is_some() {
                            return Ended::Leave;
                        }
                    }
                    Ok(false) => {}
                    Err(text) => return Ended::Dropped(cause_of_text(&text), text),
                }
            }
        }
    }
}

/// A new connection: the stream, its cookie, its ping window, the jar, the CONNECT's pid.
type Back = (Stream, CookieSeen, Duration, Jar, Option<Box<str>>);

/// One attempt to come back: a new session through the load balancer with the jar's cookie,
/// and the pid and offset to resume from when the gateway offered recovery.
async fn attempt(
    sh: &Shared,
    i: usize,
    mut jar: Jar,
    resume: &Resume,
) -> Result<Back, AttemptCause> {
    match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        Box::pin(open(sh, i, Some(&mut jar), &mut CookieSeen::None, resume)),
    )
    .await
    {
        Ok(Ok((ws, cookie, ping_window, pid))) => Ok((ws, cookie, ping_window, jar, pid)),
        Ok(Err(message)) => Err(AttemptCause::of(&message)),
        Err(_) => Err(AttemptCause::Timeout),
    }
}

/// The words a lost session's error carries: what socket.io-client did.
fn lost_words(lost: LostCause) -> &'static str {
    match lost {
        LostCause::ServerDisconnect | LostCause::ConnectError => {
            "the server told the client to leave; socket.io-client does not reconnect"
        }
        LostCause::StillTrying => "still trying at the end",
    }
}

fn closing(phase: &watch::Receiver<Phase>) -> bool {
    matches!(*phase.borrow(), Phase::Closing { .. })
}

/// A reconnecting session from its first open until it is time to leave (`Ok`, on its
/// current connection in `ws`) or it is lost for good (`Err` with the cause of its last drop:
/// the probe closed while it was still trying). Also returns the stickiness cookie its last
/// connection was given (the first one's is kept in the timeline).
pub(super) async fn hold(
    sh: &Shared,
    ws: &mut Stream,
    live: &mut Live,
    phase: &mut watch::Receiver<Phase>,
    tl: &mut Timeline,
    mut held: Held,
) -> (Result<(), String>, CookieSeen) {
    tl.first_cookie = match held.cookie {
        CookieSeen::Value(i) => i,
        _ => NO_TARGET,
    };
    let result = hold_on(sh, ws, live, phase, tl, &mut held).await;
    (result, held.cookie)
}

async fn hold_on(
    sh: &Shared,
    ws: &mut Stream,
    live: &mut Live,
    phase: &mut watch::Receiver<Phase>,
    tl: &mut Timeline,
    held: &mut Held,
) -> Result<(), String> {
    let backoff = sh.reconnect.unwrap_or_default();
    let mut watch = Watch::new(live.opened);
    let mut last_hb_any: Option<Instant> = None;
    loop {
        let c = Conn {
            live,
            phase,
            tl,
            last_any: &mut last_hb_any,
        };
        let ended = connection(sh, ws, c, &mut watch, held.ping_window).await;
        let (cause, text) = match ended {
            Ended::Leave => return Ok(()),
            Ended::Dropped(cause, text) => (cause, text),
        };
        let dropped_at = Instant::now();
        sh.counters.drops.fetch_add(1, Relaxed);
        if tl.drops.is_empty() {
            sh.counters.sessions_dropped.fetch_add(1, Relaxed);
        }
        let from_cookie = match held.cookie {
            CookieSeen::Value(i) => i,
            _ => NO_TARGET,
        };
        tl.drops.push(DropEvent::new(
            sh.since_start(dropped_at),
            cause,
            live.target,
            from_cookie,
        ));
        if closing(phase) {
            tl.drops.last_mut().expect("pushed above").lost = Some(LostCause::StillTrying);
            return Err(text);
        }
        if let Err(lost) = rules::after_drop(sh.reconnect_like, cause) {
            tl.drops.last_mut().expect("pushed above").lost = Some(lost);
            return Err(format!("{text}: {}", lost_words(lost)));
        }
        sh.counters.reconnecting.fetch_add(1, Relaxed);
        let mut tally = Attempts::default();
        let came = {
            let stop = async {
                let _ = phase.wait_for(|p| matches!(p, Phase::Closing { .. })).await;
            };
            let sent = held.jar.clone();
            let resume: Resume = live.pid.clone().zip(live.offset.clone());
            let like = sh.reconnect_like;
            come_back(
                &backoff,
                rand::random::<f64>,
                stop,
                &mut tally,
                |c| rules::after_attempt(like, c),
                |_| attempt(sh, held.i, sent.clone(), &resume),
            )
            .await
        };
        sh.counters.reconnecting.fetch_sub(1, Relaxed);
        let last = tl.drops.last_mut().expect("pushed above");
        last.attempts = tally.made;
        last.failed = tally.failed;
        match came {
            ComeBack::Stopped => {
                last.lost = Some(LostCause::StillTrying);
                return Err(text);
            }
            ComeBack::GaveUp(lost) => {
                last.lost = Some(lost);
                return Err(format!("{text}: {}", lost_words(lost)));
            }
            ComeBack::Back((stream, cookie, ping_window, jar, pid)) => {
                // Recovered: the answer names the pid the session had (socket.io-client's
                // `socket.recovered`).
                last.recovered = pid.is_some() && pid == live.pid;
                if last.recovered {
                    sh.counters.recovered.fetch_add(1, Relaxed);
                }
                live.pid = pid;
                let now = Instant::now();
                last.back_ms = now
                    .saturating_duration_since(dropped_at)
                    .as_millis()
                    .min(u32::MAX as u128 - 1) as u32;
                sh.counters.reconnects.fetch_add(1, Relaxed);
                if let Ok(mut h) = sh.back_ms.lock() {
                    h.record(last.back_ms as u64);
                }
                *ws = stream;
                held.jar = jar;
                held.cookie = cookie;
                held.ping_window = ping_window;
                live.opened = now;
                live.last_hb = now;
                live.target = NO_TARGET;
                watch = Watch::new(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_causes() {
        assert_eq!(
            cause_of_text("closed by the server: Engine.IO close packet"),
            DropCause::ServerClose
        );
        assert_eq!(
            cause_of_text("the server disconnected /chat"),
            DropCause::ServerDisconnect
        );
        assert_eq!(
            cause_of_text("acking a heartbeat: connection failed: websocket: IO error: Connection reset by peer (os error 104)"),
            DropCause::Reset
        );
        assert_eq!(
            cause_of_text("undecodable packet from the server: x"),
            DropCause::Other
        );
        let reset =
            tungstenite::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(cause_of_error(&reset), DropCause::Reset);
        let eof = tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        );
        assert_eq!(cause_of_error(&eof), DropCause::Eof);
    }

    #[test]
    fn liveness_deadlines() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        let cfg = Duration::from_secs(1);
        let window = Duration::from_secs(5);
        // Before the first heartbeat only the ping rule applies.
        let (at, cause, why) = w.deadline(cfg, window);
        assert_eq!((at, cause), (t0 + window, DropCause::PingTimeout));
        assert_eq!(why, "no Engine.IO ping within 5 s");
        // After one: the configured interval plus its slack (1 s).
        w.heartbeats = 1;
        w.last_hb = t0 + Duration::from_secs(1);
        w.spacing = Duration::from_secs(1);
        let (at, cause, _) = w.deadline(cfg, window);
        assert_eq!(
            (at, cause),
            (t0 + Duration::from_secs(3), DropCause::HeartbeatSilence)
        );
        // An old task sends every 30 s: its own spacing rules, plus 5 s of slack; the ping
        // comes first.
        w.spacing = Duration::from_secs(30);
        w.last_ping = t0 + Duration::from_secs(20);
        let (at, cause, _) = w.deadline(cfg, window);
        assert_eq!(
            (at, cause),
            (t0 + Duration::from_secs(25), DropCause::PingTimeout)
        );
        w.last_ping = t0 + Duration::from_secs(40);
        let (at, cause, why) = w.deadline(cfg, window);
        assert_eq!(
            (at, cause),
            (t0 + Duration::from_secs(36), DropCause::HeartbeatSilence)
        );
        assert_eq!(why, "no heartbeat within 35 s (interval 30 s plus slack)");
    }
}
