//! What socket.io-client does after each way a session can end, shared by the probe
//! (`--reconnect-like`, so the disruption report counts what real users went through) and
//! `monitor` (which holds its sessions exactly as real users' clients would). socket.io-client
//! 4.8's `Socket.onpacket`/`Manager.onclose`: after "transport close", "transport error" or
//! "ping timeout" the Manager reconnects on its backoff; after a namespace DISCONNECT from the
//! server ("io server disconnect") the socket is destroyed and nothing reconnects; a
//! CONNECT_ERROR from the namespace middleware on a reconnect destroys the socket too (the app
//! would have to call `connect()` again). `always` is an app that does call it every time.
//! The causes as small enums; the rules pure, a table of causes tested cause by cause. Part
//! of the gateway base: `probe` and `monitor` both import it, it imports neither.

use serde::Serialize;

pub use crate::cli::ReconnectLike;

/// Why an open session was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// The server (or the load balancer) sent a websocket close frame.
    CloseFrame,
    /// The connection was reset (RST).
    Reset,
    /// The connection ended without a close frame (FIN).
    Eof,
    /// No Engine.IO ping within pingInterval + pingTimeout of the last one.
    PingTimeout,
    /// No heartbeat within the interval (the connection's own, when longer) plus slack.
    HeartbeatSilence,
    /// The server closed the Engine.IO session itself (close packet): socket.io-client sees
    /// "transport close" and reconnects.
    ServerClose,
    /// Anything else (a send that failed, an undecodable packet).
    Other,
    /// The server sent a namespace DISCONNECT (`41/chat,`: "io server disconnect", e.g.
    /// `disconnectSockets()` on SIGTERM): socket.io-client does not reconnect.
    ServerDisconnect,
}

impl DropCause {
    pub const ALL: [DropCause; 8] = [
        DropCause::CloseFrame,
        DropCause::Reset,
        DropCause::Eof,
        DropCause::PingTimeout,
        DropCause::HeartbeatSilence,
        DropCause::ServerClose,
        DropCause::Other,
        DropCause::ServerDisconnect,
    ];

    pub fn text(self) -> &'static str {
        match self {
            DropCause::CloseFrame => "close frame",
            DropCause::Reset => "TCP reset",
            DropCause::Eof => "EOF",
            DropCause::PingTimeout => "Engine.IO ping timeout",
            DropCause::HeartbeatSilence => "heartbeat silence",
            DropCause::ServerClose => "server closed the session",
            DropCause::Other => "other",
            DropCause::ServerDisconnect => "io server disconnect",
        }
    }
}

/// Why a dropped session never came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LostCause {
    /// Still trying when the run ended (no target took it in time).
    StillTrying,
    /// The server told it to leave (namespace DISCONNECT): socket.io-client does not
    /// reconnect.
    ServerDisconnect,
    /// A reconnect attempt got CONNECT_ERROR from the namespace: socket.io-client gives up.
    ConnectError,
}

impl LostCause {
    pub const ALL: [LostCause; 3] = [
        LostCause::StillTrying,
        LostCause::ServerDisconnect,
        LostCause::ConnectError,
    ];

    pub fn text(self) -> &'static str {
        match self {
            LostCause::StillTrying => "still trying at the end",
            LostCause::ServerDisconnect => "told to leave (io server disconnect)",
            LostCause::ConnectError => "refused on reconnect (CONNECT_ERROR)",
        }
    }
}

/// Why one reconnect attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptCause {
    /// The load balancer answered the upgrade with 502 (the target it chose is gone).
    Http502,
    /// 503: no healthy target.
    Http503,
    /// Any other status instead of the `101`.
    HttpOther,
    /// The TCP connect was refused.
    Refused,
    /// No CONNECT answer within the handshake timeout.
    Timeout,
    /// The namespace refused the CONNECT (CONNECT_ERROR).
    ConnectError,
    /// The connection ended or broke during the handshake.
    Closed,
    Other,
}

/// Number of [`AttemptCause`]s: the size of a per-drop failure tally.
pub const ATTEMPT_CAUSES: usize = 8;

impl AttemptCause {
    pub const ALL: [AttemptCause; ATTEMPT_CAUSES] = [
        AttemptCause::Http502,
        AttemptCause::Http503,
        AttemptCause::HttpOther,
        AttemptCause::Refused,
        AttemptCause::Timeout,
        AttemptCause::ConnectError,
        AttemptCause::Closed,
        AttemptCause::Other,
    ];

    pub fn text(self) -> &'static str {
        match self {
            AttemptCause::Http502 => "HTTP 502",
            AttemptCause::Http503 => "HTTP 503",
            AttemptCause::HttpOther => "other HTTP status",
            AttemptCause::Refused => "connection refused",
            AttemptCause::Timeout => "timeout",
            AttemptCause::ConnectError => "CONNECT_ERROR",
            AttemptCause::Closed => "closed during the handshake",
            AttemptCause::Other => "other",
        }
    }

    /// The class of a failed open, from its message (the messages of
    /// [`crate::gateway::Error`] and of the session's CONNECT refusal).
    pub fn of(message: &str) -> AttemptCause {
        let m = message.to_ascii_lowercase();
        if m.contains("refused the connect") {
            AttemptCause::ConnectError
        } else if m.contains("http 502") {
            AttemptCause::Http502
        } else if m.contains("http 503") {
            AttemptCause::Http503
        } else if m.contains("unexpected http") || m.contains("session id unknown") {
            AttemptCause::HttpOther
        } else if m.contains("refused") {
            AttemptCause::Refused
        } else if m.contains("answer within") || m.contains("timed out") {
            AttemptCause::Timeout
        } else if m.contains("closed") || m.contains("ended") || m.contains("reset") {
            AttemptCause::Closed
        } else {
            AttemptCause::Other
        }
    }
}

/// Whether a session that dropped for `cause` tries to come back; `Err` is why it is lost at
/// once.
pub fn after_drop(like: ReconnectLike, cause: DropCause) -> Result<(), LostCause> {
    match (like, cause) {
        (ReconnectLike::Browser, DropCause::ServerDisconnect) => Err(LostCause::ServerDisconnect),
        // Transport close (close frame, FIN, Engine.IO close packet), transport error (reset,
        // a failed send, an undecodable packet), ping timeout: the Manager reconnects. Heartbeat
        // silence is the probe's own rule (the app's heartbeat, unseen by socket.io-client);
        // the probe treats it as a dead transport and reconnects too.
        (
            ReconnectLike::Browser,
            DropCause::CloseFrame
            | DropCause::Reset
            | DropCause::Eof
            | DropCause::PingTimeout
            | DropCause::HeartbeatSilence
            | DropCause::ServerClose
            | DropCause::Other,
        ) => Ok(()),
        (ReconnectLike::Always, _) => Ok(()),
    }
}

/// Whether a failed reconnect attempt ends the trying (`Some`: the session is lost for that
/// reason); every other failure is followed by the next attempt on the backoff.
pub fn after_attempt(like: ReconnectLike, cause: AttemptCause) -> Option<LostCause> {
    match (like, cause) {
        (ReconnectLike::Browser, AttemptCause::ConnectError) => Some(LostCause::ConnectError),
        (
            ReconnectLike::Browser,
            AttemptCause::Http502
            | AttemptCause::Http503
            | AttemptCause::HttpOther
            | AttemptCause::Refused
            | AttemptCause::Timeout
            | AttemptCause::Closed
            | AttemptCause::Other,
        ) => None,
        (ReconnectLike::Always, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_reconnects_after_every_transport_cause_but_not_when_told_to_leave() {
        for c in DropCause::ALL {
            let want = if c == DropCause::ServerDisconnect {
                Err(LostCause::ServerDisconnect)
            } else {
                Ok(())
            };
            assert_eq!(after_drop(ReconnectLike::Browser, c), want, "{c:?}");
            assert_eq!(after_drop(ReconnectLike::Always, c), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn a_browser_gives_up_on_connect_error_only() {
        for c in AttemptCause::ALL {
            let want = (c == AttemptCause::ConnectError).then_some(LostCause::ConnectError);
            assert_eq!(after_attempt(ReconnectLike::Browser, c), want, "{c:?}");
            assert_eq!(after_attempt(ReconnectLike::Always, c), None, "{c:?}");
        }
    }
}
