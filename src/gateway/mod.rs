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

use std::time::Duration;

pub mod checks;
pub mod codec;
mod error;
pub mod polling;
pub mod probe;
pub mod session;
pub mod stats;
pub mod token;
pub mod upgrade;
pub mod verify;
pub mod ws;

pub(crate) use error::error_chain;
pub use error::Error;

/// Largest response body (polling payload, health JSON) or websocket message accepted.
/// Engine.IO's default maxPayload is 1,000,000 bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

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
