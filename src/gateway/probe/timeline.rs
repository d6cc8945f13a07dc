//! What a reconnecting session remembers (`verify --connections --reconnect`): one small
//! record per drop (when, why, the target before and after, the attempts and their failures
//! by cause, how long until the namespace answered again), the longest gap between two of its
//! heartbeats, and the causes as small enums rather than strings. A session that never drops
//! keeps an empty list: the cost stays a few integers per session.

use std::time::Duration;

pub use crate::gateway::reconnect_rules::{AttemptCause, DropCause, LostCause, ATTEMPT_CAUSES};

/// A target index in the probe's target table that names nothing (not known yet).
pub(super) const NO_TARGET: u16 = u16::MAX;
/// `back_ms` of a drop the session never came back from.
pub(super) const NOT_BACK: u32 = u32::MAX;

/// One drop of a session, and its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DropEvent {
    /// Milliseconds from the probe's start to the moment the drop was noticed.
    pub(super) at_ms: u32,
    pub(super) cause: DropCause,
    /// The target of the connection that dropped ([`NO_TARGET`]: no heartbeat named it).
    pub(super) from: u16,
    /// The stickiness cookie of that connection (index in the cookie table, or [`NO_TARGET`]),
    /// to name its target by the health look-up when no heartbeat did.
    pub(super) from_cookie: u16,
    /// The target of the new connection, from its first heartbeat.
    pub(super) to: u16,
    /// Attempts made, the successful one included.
    pub(super) attempts: u16,
    /// From the drop to the namespace CONNECT answer of the new session ([`NOT_BACK`]: never).
    pub(super) back_ms: u32,
    /// Failed attempts, counted per [`AttemptCause`] (in `AttemptCause::ALL` order).
    pub(super) failed: [u16; ATTEMPT_CAUSES],
    /// Why it never came back (`None` while it is back or still trying); one byte, in what
    /// was padding.
    pub(super) lost: Option<LostCause>,
    /// The reconnect resumed the session (connection state recovery: the same pid).
    pub(super) recovered: bool,
}

impl DropEvent {
    pub(super) fn new(at: Duration, cause: DropCause, from: u16, from_cookie: u16) -> DropEvent {
        DropEvent {
            at_ms: at.as_millis().min(u32::MAX as u128 - 1) as u32,
            cause,
            from,
            from_cookie,
            to: NO_TARGET,
            attempts: 0,
            back_ms: NOT_BACK,
            failed: [0; ATTEMPT_CAUSES],
            lost: None,
            recovered: false,
        }
    }

    pub(super) fn back(&self) -> Option<u32> {
        (self.back_ms != NOT_BACK).then_some(self.back_ms)
    }

    /// When the new session answered, from the probe's start.
    pub(super) fn back_at_ms(&self) -> Option<u64> {
        self.back().map(|b| self.at_ms as u64 + b as u64)
    }
}

/// A session's drops and heartbeat gaps; empty for a session that never dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Timeline {
    pub(super) drops: Vec<DropEvent>,
    /// The target of the first connection ([`NO_TARGET`] until a heartbeat named it).
    pub(super) first_target: u16,
    /// The stickiness cookie of the first connection (index in the cookie table).
    pub(super) first_cookie: u16,
    /// The longest time between two heartbeats of the session, across reconnects (ms; 0: fewer
    /// than two heartbeats).
    pub(super) max_gap_ms: u32,
    /// The spacing of the last heartbeat from the one before on the same connection (from the
    /// connection's open for its first): the interval the server it ended on runs (ms; 0: none).
    pub(super) spacing_ms: u32,
}

impl Timeline {
    pub(super) fn new() -> Timeline {
        Timeline {
            drops: Vec::new(),
            first_target: NO_TARGET,
            first_cookie: NO_TARGET,
            max_gap_ms: 0,
            spacing_ms: 0,
        }
    }

    /// The connections of a session opened at `opened` and gone at `gone` (offsets from the
    /// probe's start): from each open to its drop, the last one until `gone`. A connection
    /// that never came back ends the list.
    pub(super) fn segments(&self, opened: Duration, gone: Duration) -> Vec<(Duration, Duration)> {
        let mut out = Vec::with_capacity(self.drops.len() + 1);
        let mut start = Some(opened);
        for d in &self.drops {
            let at = Duration::from_millis(d.at_ms as u64);
            if let Some(s) = start {
                out.push((s, at.max(s)));
            }
            start = d.back_at_ms().map(Duration::from_millis);
        }
        if let Some(s) = start {
            out.push((s, gone.max(s)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_causes_from_the_messages() {
        for (m, c) in [
            (
                "websocket handshake: unexpected HTTP 503: <html><body><h1>503 Service Unavailable</h1>",
                AttemptCause::Http503,
            ),
            ("websocket handshake: unexpected HTTP 502", AttemptCause::Http502),
            ("websocket handshake: unexpected HTTP 404: nope", AttemptCause::HttpOther),
            (
                "cannot connect: Connection refused (os error 111)",
                AttemptCause::Refused,
            ),
            (
                "/chat refused the CONNECT: unauthorized (bad signature)",
                AttemptCause::ConnectError,
            ),
            ("no CONNECT answer within 10 s", AttemptCause::Timeout),
            (
                "websocket handshake: closed by the server: the connection ended before the websocket upgrade was answered",
                AttemptCause::Closed,
            ),
            ("closed by the server: close frame 1001", AttemptCause::Closed),
            ("something odd", AttemptCause::Other),
        ] {
            assert_eq!(AttemptCause::of(m), c, "{m}");
        }
        assert_eq!(AttemptCause::ALL.len(), ATTEMPT_CAUSES);
        for (i, c) in AttemptCause::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "ALL is in declaration order");
        }
    }

    #[test]
    fn a_timeline_is_a_few_integers() {
        // Measured, as the probe's docs say: 36 bytes per drop, 40 per session (an empty list
        // allocates nothing).
        assert_eq!(std::mem::size_of::<DropEvent>(), 36);
        assert_eq!(std::mem::size_of::<Timeline>(), 40);
        assert_eq!(Timeline::new().drops.capacity(), 0);
    }

    #[test]
    fn segments_follow_the_drops() {
        let s = Duration::from_millis;
        let mut t = Timeline::new();
        assert_eq!(t.segments(s(100), s(9000)), vec![(s(100), s(9000))]);
        let mut d = DropEvent::new(s(2000), DropCause::CloseFrame, 0, NO_TARGET);
        d.back_ms = 700;
        t.drops.push(d);
        assert_eq!(
            t.segments(s(100), s(9000)),
            vec![(s(100), s(2000)), (s(2700), s(9000))]
        );
        // Dropped again and never back: nothing after the second drop.
        t.drops
            .push(DropEvent::new(s(5000), DropCause::Eof, 1, NO_TARGET));
        assert_eq!(
            t.segments(s(100), s(9000)),
            vec![(s(100), s(2000)), (s(2700), s(5000))]
        );
        assert_eq!(t.drops[0].back_at_ms(), Some(2700));
        assert_eq!(t.drops[1].back(), None);
    }
}
