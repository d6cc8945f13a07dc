//! What the official client does after each way a session can end (`--reconnect-like`), so
//! the disruption report counts what real users went through. socket.io-client 4.8's
//! `Socket.onpacket`/`Manager.onclose`: after "transport close", "transport error" or
//! "ping timeout" the Manager reconnects on its backoff; after a namespace DISCONNECT from the
//! server ("io server disconnect") the socket is destroyed and nothing reconnects; a
//! CONNECT_ERROR from the namespace middleware on a reconnect destroys the socket too (the app
//! would have to call `connect()` again). `always` is an app that does call it every time.
//! Pure: a table of causes, tested cause by cause.

use super::timeline::{AttemptCause, DropCause, LostCause};
use crate::cli::ReconnectLike;

/// Whether a session that dropped for `cause` tries to come back; `Err` is why it is lost at
/// once.
pub(super) fn after_drop(like: ReconnectLike, cause: DropCause) -> Result<(), LostCause> {
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
pub(super) fn after_attempt(like: ReconnectLike, cause: AttemptCause) -> Option<LostCause> {
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
