//! The Socket.IO gateway client and the `verify` checks.
//!
//! `codec` is the pure Engine.IO v4 / Socket.IO v5 wire format. `polling` (HTTP long-polling over
//! reqwest, with a cookie jar that keeps each cookie's attributes) and `ws` (tokio-tungstenite,
//! carrying the same cookies) are the transports; `session` is one Engine.IO session over either,
//! answering pings and acking the heartbeat as they arrive. `token` mints the HS256 JWT; `checks`
//! holds the checks and `verify` the CLI verb; `probe` is `verify --connections N`, the load
//! probe (its arithmetic in `stats`, its lean websocket upgrade in `upgrade`). Every network
//! step has a time bound and every response a size bound, so a hostile server gives a failed
//! check, never a hang.

use std::fmt;
use std::time::Duration;

pub mod checks;
pub mod codec;
pub mod polling;
pub mod probe;
pub mod session;
pub mod stats;
pub mod token;
pub mod upgrade;
pub mod verify;
pub mod ws;

/// Largest response body (polling payload, health JSON) or websocket message accepted.
/// Engine.IO's default maxPayload is 1,000,000 bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Why a network step failed. The messages are what a failed check says.
#[derive(Debug, Clone)]
pub enum Error {
    /// The step did not finish in time.
    Timeout {
        what: String,
        after: Duration,
    },
    /// No connection (refused, DNS, TLS).
    Connect(String),
    /// The connection broke mid-request or mid-body.
    Transport(String),
    /// HTTP 400 "Session ID unknown": the request reached a target that does not know the sid.
    SessionUnknown {
        status: u16,
        body: String,
    },
    /// Any other unexpected HTTP status.
    Http {
        status: u16,
        body: String,
    },
    TooLarge {
        limit: usize,
    },
    ContentType {
        got: String,
        expected: &'static str,
    },
    Codec(codec::CodecError),
    /// The server said something valid but unexpected.
    Protocol(String),
    /// The server closed the session or the websocket.
    Closed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { what, after } => {
                write!(f, "{what}: no answer within {}", fmt_duration(*after))
            }
            Error::Connect(m) => write!(f, "cannot connect: {m}"),
            Error::Transport(m) => write!(f, "connection failed: {m}"),
            Error::SessionUnknown { status, .. } => write!(
                f,
                "HTTP {status} \"Session ID unknown\": the request reached a target that did not know the session"
            ),
            Error::Http { status, body } if body.is_empty() => write!(f, "unexpected HTTP {status}"),
            Error::Http { status, body } => write!(f, "unexpected HTTP {status}: {body}"),
            Error::TooLarge { limit } => write!(
                f,
                "response larger than the {} KiB limit; refused",
                limit / 1024
            ),
            Error::ContentType { got, expected } => {
                write!(f, "unexpected content type {got:?} (expected {expected})")
            }
            Error::Codec(e) => write!(f, "{e}"),
            Error::Protocol(m) => f.write_str(m),
            Error::Closed(m) => write!(f, "closed by the server: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<codec::CodecError> for Error {
    fn from(e: codec::CodecError) -> Self {
        Error::Codec(e)
    }
}

impl Error {
    pub fn is_session_unknown(&self) -> bool {
        matches!(self, Error::SessionUnknown { .. })
    }
}

/// `1.5 s`, `250 ms`, `2 min`: short human durations for messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        let s = ms as f64 / 1000.0;
        if ms % 1000 == 0 {
            format!("{} s", ms / 1000)
        } else {
            format!("{s:.1} s")
        }
    } else if ms < 2 * 3_600_000 {
        format!("{} min", ms / 60_000)
    } else if ms < 2 * 86_400_000 {
        format!("{} h", ms / 3_600_000)
    } else {
        format!("{} d", ms / 86_400_000)
    }
}

/// Text from a server for a message: one line, printable, at most `max` characters.
pub(crate) fn snippet(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for c in text.chars() {
        if out.chars().count() >= max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_string()
}

/// The full chain of an error, for reqwest/tungstenite errors whose top message is vague.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        src = s.source();
    }
    parts.join(": ")
}
