//! The held sessions' disruption while the rollout runs, for the gate's judgement during a
//! bake time: a native deployment is rolled back while blue still runs when the sessions under
//! load cross `--max-lost`, `--max-drop-rate` or `--max-reconnect-p99`, not only at the end.
//!
//! [`LiveLoad`] is a handle made before the probe starts (the rollout and its judge are built
//! first) and attached to the probe's counters once it runs; [`live_check`] is the verdict,
//! pure.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::disruption::Limits;
use super::shared::Shared;
use crate::report::{Check, CheckStatus};

/// Where the numbers come from once the probe runs.
enum Source {
    Probe(Arc<Shared>),
    #[cfg(test)]
    Fixed(LiveDisruption),
}

/// A handle on the held sessions' live numbers; clones share it.
#[derive(Clone, Default)]
pub struct LiveLoad(Arc<OnceLock<Source>>);

impl std::fmt::Debug for LiveLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "LiveLoad(attached)"
        } else {
            "LiveLoad(not running)"
        })
    }
}

impl LiveLoad {
    pub(super) fn attach(&self, sh: Arc<Shared>) {
        let _ = self.0.set(Source::Probe(sh));
    }

    #[cfg(test)]
    pub fn fixed(d: LiveDisruption) -> LiveLoad {
        let live = LiveLoad::default();
        let _ = live.0.set(Source::Fixed(d));
        live
    }

    /// The numbers now; `None` before the probe runs.
    pub fn now(&self) -> Option<LiveDisruption> {
        match self.0.get()? {
            Source::Probe(sh) => {
                let c = &sh.counters;
                Some(LiveDisruption {
                    opened: c.opened.load(Relaxed),
                    dropped_sessions: c.sessions_dropped.load(Relaxed),
                    lost: c.dropped.load(Relaxed),
                    reconnecting: c.reconnecting.load(Relaxed),
                    reconnects: c.reconnects.load(Relaxed),
                    back_p99_ms: sh.back_ms.lock().ok().and_then(|h| h.percentile(99.0)),
                })
            }
            #[cfg(test)]
            Source::Fixed(d) => Some(*d),
        }
    }
}

/// The held sessions so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveDisruption {
    pub opened: u64,
    /// Sessions that dropped at least once.
    pub dropped_sessions: u64,
    /// Sessions gone for good (socket.io-client would not, or could not, come back).
    pub lost: u64,
    /// Trying to come back now.
    pub reconnecting: u64,
    pub reconnects: u64,
    /// Reconnect time p99 so far (drop to the namespace CONNECT answer).
    pub back_p99_ms: Option<u64>,
}

/// The `under-load` check of a production judgement: fails when the held sessions crossed a
/// limit so far, or when they are not running (fail closed: no judgement, no pass).
pub fn live_check(now: Option<LiveDisruption>, limits: &Limits) -> Check {
    let name = "under-load";
    let Some(l) = now else {
        return Check::new(
            name,
            CheckStatus::Fail,
            Duration::ZERO,
            "the sessions under load are not running: nothing to judge the bake time by",
        );
    };
    let mut crossed = Vec::new();
    if l.lost > limits.max_lost {
        crossed.push(format!(
            "{} session(s) lost, more than --max-lost {}",
            l.lost, limits.max_lost
        ));
    }
    if let Some(max) = limits.max_drop_rate {
        let rate = l.dropped_sessions as f64 / l.opened.max(1) as f64;
        if rate > max {
            crossed.push(format!(
                "{} of {} sessions dropped ({:.2}%), more than --max-drop-rate {max}",
                l.dropped_sessions,
                l.opened,
                rate * 100.0,
            ));
        }
    }
    if let (Some(max), Some(p99)) = (limits.max_reconnect_p99_ms, l.back_p99_ms) {
        if p99 > max {
            crossed.push(format!(
                "reconnect p99 {p99} ms, more than --max-reconnect-p99 {max} ms"
            ));
        }
    }
    let so_far = format!(
        "{} session(s) held: {} dropped, {} back, {} reconnecting, {} lost so far",
        l.opened, l.dropped_sessions, l.reconnects, l.reconnecting, l.lost
    );
    if crossed.is_empty() {
        Check::new(name, CheckStatus::Pass, Duration::ZERO, so_far)
    } else {
        Check::new(
            name,
            CheckStatus::Fail,
            Duration::ZERO,
            format!("{}; {so_far}", crossed.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_lost: 0,
            max_drop_rate: Some(0.1),
            max_reconnect_p99_ms: Some(2000),
        }
    }

    fn held() -> LiveDisruption {
        LiveDisruption {
            opened: 100,
            dropped_sessions: 10,
            lost: 0,
            reconnecting: 0,
            reconnects: 10,
            back_p99_ms: Some(2000),
        }
    }

    /// At each limit passes; one past any limit fails, naming it; not running fails.
    #[test]
    fn each_limit_fails_one_past_it() {
        let at = live_check(Some(held()), &limits());
        assert_eq!(at.status, CheckStatus::Pass, "{}", at.message);
        assert!(at
            .message
            .starts_with("100 session(s) held: 10 dropped, 10 back"));

        let lost = live_check(Some(LiveDisruption { lost: 1, ..held() }), &limits());
        assert_eq!(lost.status, CheckStatus::Fail);
        assert!(lost
            .message
            .starts_with("1 session(s) lost, more than --max-lost 0"));

        let dropped = LiveDisruption {
            dropped_sessions: 11,
            ..held()
        };
        let c = live_check(Some(dropped), &limits());
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.message.contains("more than --max-drop-rate 0.1"),
            "{}",
            c.message
        );

        let slow = LiveDisruption {
            back_p99_ms: Some(2001),
            ..held()
        };
        let c = live_check(Some(slow), &limits());
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(
            c.message.starts_with("reconnect p99 2001 ms"),
            "{}",
            c.message
        );

        // Without the optional limits only --max-lost judges.
        let loose = Limits {
            max_drop_rate: None,
            max_reconnect_p99_ms: None,
            ..limits()
        };
        let c = live_check(
            Some(LiveDisruption {
                dropped_sessions: 100,
                back_p99_ms: Some(60_000),
                ..held()
            }),
            &loose,
        );
        assert_eq!(c.status, CheckStatus::Pass, "{}", c.message);

        assert_eq!(live_check(None, &limits()).status, CheckStatus::Fail);
        assert_eq!(LiveLoad::default().now(), None);
        assert_eq!(LiveLoad::fixed(held()).now(), Some(held()));
    }
}
