//! The reconnect schedule, as socket.io-client's default reconnection does it: the first
//! attempt `min` after the drop, doubling up to `max`, each delay randomized by ±`jitter`
//! (socket.io-client 4.8's `Backoff` in `lib/contrib/backo2.ts`, with the Manager's defaults
//! `reconnectionDelay` 1000, `reconnectionDelayMax` 5000, `randomizationFactor` 0.5), and
//! [`come_back`], the loop that tries on that schedule until an attempt succeeds or it is told
//! to stop, or an attempt fails in a way the client gives up on (a CONNECT_ERROR, for
//! socket.io-client: [`super::rules`]). Both are free of I/O: the delay is a function of the attempt number and a random
//! draw, and the loop takes the attempt as a closure, so tokio's paused clock tests them.

use std::future::Future;
use std::time::Duration;

use super::timeline::{AttemptCause, LostCause, ATTEMPT_CAUSES};

/// socket.io-client's `reconnectionDelay`.
pub const DEFAULT_MIN: Duration = Duration::from_secs(1);
/// socket.io-client's `reconnectionDelayMax`.
pub const DEFAULT_MAX: Duration = Duration::from_secs(5);
/// socket.io-client's `randomizationFactor`.
pub const DEFAULT_JITTER: f64 = 0.5;

/// Delays between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// 0 to 1: how far a delay may deviate from its base, as a fraction of it.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: DEFAULT_MIN,
            max: DEFAULT_MAX,
            jitter: DEFAULT_JITTER,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0: the first after a drop), for a random draw
    /// `rand` in [0, 1). As `Backoff.duration()`: `ms = min · 2^attempt`; with jitter,
    /// `deviation = floor(rand · jitter · ms)`, subtracted when `floor(rand · 10)` is even and
    /// added when odd; then at most `max`, truncated to whole milliseconds.
    pub fn delay(&self, attempt: u32, rand: f64) -> Duration {
        let rand = if rand.is_finite() {
            rand.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let base = self.min.as_millis() as f64 * 2f64.powi(attempt.min(60) as i32);
        let ms = if self.jitter > 0.0 && self.jitter <= 1.0 {
            let deviation = (rand * self.jitter * base).floor();
            if ((rand * 10.0).floor() as u64) & 1 == 0 {
                base - deviation
            } else {
                base + deviation
            }
        } else {
            base
        };
        Duration::from_millis(ms.min(self.max.as_millis() as f64).max(0.0) as u64)
    }
}

/// How a [`come_back`] ended.
#[derive(Debug)]
pub enum ComeBack<T> {
    /// An attempt succeeded.
    Back(T),
    /// Told to stop first (the probe is closing): the session is lost.
    Stopped,
    /// An attempt failed in a way the client does not retry: the session is lost.
    GaveUp(LostCause),
}

/// What the attempts of one [`come_back`] cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts made, the successful one included.
    pub made: u16,
    /// Failed attempts per cause, in `AttemptCause::ALL` order.
    pub failed: [u16; ATTEMPT_CAUSES],
}

/// Tries `attempt` on `backoff`'s schedule (the first try one delay after the call, as
/// socket.io-client does) until one succeeds, or until `stop` resolves (an attempt in flight
/// is then dropped), or until `gives_up` says a failure ends the trying. `rand` draws the
/// jitter; each failure is counted in `tally` by its cause.
pub async fn come_back<T, F, Fut>(
    backoff: &Backoff,
    mut rand: impl FnMut() -> f64,
    stop: impl Future<Output = ()>,
    tally: &mut Attempts,
    gives_up: impl Fn(AttemptCause) -> Option<LostCause>,
    mut attempt: F,
) -> ComeBack<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AttemptCause>>,
{
    tokio::pin!(stop);
    let mut n: u32 = 0;
    loop {
        let wait = backoff.delay(n, rand());
        tokio::select! {
            biased;
            _ = &mut stop => return ComeBack::Stopped,
            _ = tokio::time::sleep(wait) => {}
        }
        tally.made = tally.made.saturating_add(1);
        let result = tokio::select! {
            biased;
            _ = &mut stop => return ComeBack::Stopped,
            r = attempt(n) => r,
        };
        match result {
            Ok(v) => return ComeBack::Back(v),
            Err(cause) => {
                let slot = &mut tally.failed[cause as usize];
                *slot = slot.saturating_add(1);
                if let Some(lost) = gives_up(cause) {
                    return ComeBack::GaveUp(lost);
                }
            }
        }
        n = n.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delays_as_socket_io_client_computes_them() {
        let b = Backoff::default();
        // rand = 0: no deviation, the base doubles from 1 s and stops at 5 s.
        let bases: Vec<u64> = (0..5).map(|a| b.delay(a, 0.0).as_millis() as u64).collect();
        assert_eq!(bases, [1000, 2000, 4000, 5000, 5000]);
        // rand = 0.25: floor(2.5) = 2 is even, so the deviation (floor(0.25·0.5·1000) = 125)
        // is subtracted; rand = 0.35: floor(3.5) = 3 is odd, 175 added.
        assert_eq!(b.delay(0, 0.25), ms(875));
        assert_eq!(b.delay(0, 0.35), ms(1175));
        assert_eq!(b.delay(1, 0.35), ms(2350));
        // The cap applies after the jitter: 4000 + 1400 is cut to 5000.
        assert_eq!(b.delay(2, 0.7 + 0.0001), ms(5000));
        // The range over every draw: 0.5 to 1.5 times the base, never above the cap.
        for a in 0..8 {
            for i in 0..1000 {
                let d = b.delay(a, i as f64 / 1000.0).as_millis() as f64;
                let base = (1000.0 * 2f64.powi(a as i32)).min(5000.0);
                assert!(
                    d >= base * 0.5 && d <= (base * 1.5).min(5000.0),
                    "{a} {i} {d}"
                );
            }
        }
        // No jitter, a custom range, absurd attempt numbers and draws.
        let b = Backoff {
            min: ms(200),
            max: ms(800),
            jitter: 0.0,
        };
        assert_eq!(b.delay(0, 0.9), ms(200));
        assert_eq!(b.delay(1, 0.9), ms(400));
        assert_eq!(b.delay(u32::MAX, 0.9), ms(800));
        assert_eq!(Backoff::default().delay(0, f64::NAN), ms(1000));
        assert_eq!(
            Backoff::default().delay(0, 7.0),
            Backoff::default().delay(0, 1.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_follow_the_schedule_on_the_paused_clock() {
        let b = Backoff::default();
        let start = Instant::now();
        let tried: RefCell<Vec<Duration>> = RefCell::new(Vec::new());
        let mut tally = Attempts::default();
        // Draws 0.25 (-), 0.35 (+), 0.0: delays 875, 2350, 4000 ms.
        let mut draws = [0.25, 0.35, 0.0].into_iter();
        let result = come_back(
            &b,
            || draws.next().unwrap_or(0.0),
            std::future::pending::<()>(),
            &mut tally,
            |_| None,
            |n| {
                tried.borrow_mut().push(start.elapsed());
                async move {
                    // Each attempt takes 100 ms; the first two fail.
                    tokio::time::sleep(ms(100)).await;
                    match n {
                        0 => Err(AttemptCause::Http503),
                        1 => Err(AttemptCause::Refused),
                        _ => Ok(n),
                    }
                }
            },
        )
        .await;
        assert!(matches!(result, ComeBack::Back(2)));
        assert_eq!(
            *tried.borrow(),
            [
                ms(875),
                ms(875 + 100 + 2350),
                ms(875 + 100 + 2350 + 100 + 4000)
            ]
        );
        assert_eq!(start.elapsed(), ms(875 + 100 + 2350 + 100 + 4000 + 100));
        assert_eq!(tally.made, 3);
        assert_eq!(tally.failed[AttemptCause::Http503 as usize], 1);
        assert_eq!(tally.failed[AttemptCause::Refused as usize], 1);
        assert_eq!(tally.failed.iter().sum::<u16>(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_waiting_and_the_attempt_in_flight() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let start = Instant::now();
        let mut tally = Attempts::default();
        // Every attempt fails after 10 ms: tries at 1.0, 3.01, 7.02, 12.03, 17.04 s; the stop
        // at 14 s comes while waiting.
        let result: ComeBack<()> = come_back(
            &b,
            || 0.0,
            tokio::time::sleep(ms(14_000)),
            &mut tally,
            |_| None,
            |_| async {
                tokio::time::sleep(ms(10)).await;
                Err(AttemptCause::Timeout)
            },
        )
        .await;
        assert!(matches!(result, ComeBack::Stopped));
        assert_eq!(start.elapsed(), ms(14_000));
        assert_eq!(tally.made, 4);
        assert_eq!(tally.failed[AttemptCause::Timeout as usize], 4);

        // A stop during an attempt drops it.
        let start = Instant::now();
        let mut tally = Attempts::default();
        let result: ComeBack<()> = come_back(
            &b,
            || 0.0,
            tokio::time::sleep(ms(1_500)),
            &mut tally,
            |_| None,
            |_| async {
                tokio::time::sleep(ms(60_000)).await;
                Ok(())
            },
        )
        .await;
        assert!(matches!(result, ComeBack::Stopped));
        assert_eq!(start.elapsed(), ms(1_500));
        assert_eq!(tally.made, 1);
        assert_eq!(tally.failed, [0; ATTEMPT_CAUSES]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_error_ends_the_trying_as_socket_io_client_does() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        let start = Instant::now();
        let mut tally = Attempts::default();
        // A 503 is retried (2 s later); the CONNECT_ERROR of the second attempt ends it.
        let result: ComeBack<()> = come_back(
            &b,
            || 0.0,
            std::future::pending::<()>(),
            &mut tally,
            |c| {
                crate::gateway::reconnect_rules::after_attempt(
                    crate::cli::ReconnectLike::Browser,
                    c,
                )
            },
            |n| async move {
                Err(if n == 0 {
                    AttemptCause::Http503
                } else {
                    AttemptCause::ConnectError
                })
            },
        )
        .await;
        assert!(matches!(result, ComeBack::GaveUp(LostCause::ConnectError)));
        assert_eq!(start.elapsed(), ms(3_000));
        assert_eq!(tally.made, 2);
        assert_eq!(tally.failed[AttemptCause::ConnectError as usize], 1);
        // `always` keeps trying through CONNECT_ERRORs until the stop.
        let mut tally = Attempts::default();
        let result: ComeBack<()> = come_back(
            &b,
            || 0.0,
            tokio::time::sleep(ms(10_000)),
            &mut tally,
            |c| {
                crate::gateway::reconnect_rules::after_attempt(crate::cli::ReconnectLike::Always, c)
            },
            |_| async { Err(AttemptCause::ConnectError) },
        )
        .await;
        assert!(matches!(result, ComeBack::Stopped));
        // Tries at 1, 3 and 7 s; the next would be at 12 s.
        assert_eq!(tally.made, 3);
        assert_eq!(tally.failed[AttemptCause::ConnectError as usize], 3);
    }
}
