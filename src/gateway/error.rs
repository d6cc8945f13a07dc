//! Why a network step failed: [`Error`], whose messages are what a failed check says, and
//! [`error_chain`] for the library errors whose top message is vague. What a server said is
//! kept as [`Outside`] text; the messages show it escaped and capped.

use std::fmt;
use std::time::Duration;

use super::{codec, fmt_duration};
use crate::outside::Outside;

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
        body: Outside,
    },
    /// Any other unexpected HTTP status.
    Http {
        status: u16,
        body: Outside,
    },
    TooLarge {
        limit: usize,
    },
    ContentType {
        got: Outside,
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
                write!(f, "unexpected content type {} (expected {expected})", got.quoted(80))
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

/// The full chain of an error, for reqwest/tungstenite errors whose top message is vague; as
/// outside text (a library's message may quote what the server sent).
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
    Outside::new(&parts.join(": ")).to_string()
}
