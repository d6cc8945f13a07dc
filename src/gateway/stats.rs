//! Pure arithmetic of the load probe (`verify --connections`): percentiles, a bounded lateness
//! histogram, grouping of failure causes and targets, rates, the heartbeat window, the
//! open-file budget and the time budget. No I/O and no clocks, so every rule is unit-tested.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

/// Nearest-rank percentile of `sorted` (ascending), `p` in 0..=100: the smallest value with at
/// least `p`% of the values at or below it. The Node reference client uses the same rule, so
/// the two reports compare directly.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Milliseconds with one decimal, for reports.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// Distribution of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// Summary of durations given in microseconds (sorts `values` in place). `None` when empty.
pub fn summarize_us(values: &mut [u32]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let ms = |us: u32| round_ms(us as f64 / 1000.0);
    let pct = |p| ms(percentile(values, p).unwrap_or(0));
    let sum: u64 = values.iter().map(|&v| v as u64).sum();
    Some(Summary {
        count: values.len(),
        min_ms: ms(values[0]),
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        max_ms: ms(values[values.len() - 1]),
        mean_ms: round_ms(sum as f64 / values.len() as f64 / 1000.0),
    })
}

/// Counts of equal items, most frequent first (ties in order), as `(item, count)`.
pub fn group<T: std::hash::Hash + Ord>(items: impl IntoIterator<Item = T>) -> Vec<(T, u64)> {
    let mut counts: HashMap<T, u64> = HashMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    let mut out: Vec<(T, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Events per second over `span`; `None` when nothing happened or the span is zero.
pub fn per_second(count: u64, span: Duration) -> Option<f64> {
    let s = span.as_secs_f64();
    (count > 0 && s > 0.0).then(|| (count as f64 / s * 10.0).round() / 10.0)
}

/// `num / den`, `None` when `den` is zero.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// Heartbeats due to a session during the hold. A server emitting one per `interval` from the
/// session's connect (`opened`) has them due at `opened + k·interval`, k ≥ 1; those due in the
/// part of the hold `window` the session was alive (until `gone`) count. Using each session's
/// own phase matters: sessions opened together get their heartbeats together, so a window of
/// 1.5 intervals holds one heartbeat for all of them, not 1.5 on average. All offsets are from
/// a common origin.
pub fn heartbeats_due(
    opened: Duration,
    window: (Duration, Duration),
    gone: Duration,
    interval: Duration,
) -> u64 {
    let i = interval.as_micros();
    if i == 0 {
        return 0;
    }
    // Heartbeats due strictly before `t`: k·i < t - opened, k >= 1.
    let before = |t: Duration| -> u128 {
        let x = t.saturating_sub(opened).as_micros();
        if x == 0 {
            0
        } else {
            (x - 1) / i
        }
    };
    let lo = window.0.max(opened);
    let hi = window.1.min(gone);
    if hi <= lo {
        return 0;
    }
    (before(hi) - before(lo)) as u64
}

/// Which heartbeat (k >= 1) one arriving `since_open` after the connect is: the nearest due
/// time, so up to half an interval early or late still counts for its own slot.
pub fn heartbeat_slot(since_open: Duration, interval: Duration) -> u32 {
    if interval.is_zero() {
        return 1;
    }
    let k = (since_open.as_secs_f64() / interval.as_secs_f64()).round();
    k.clamp(1.0, u32::MAX as f64) as u32
}

/// A bounded histogram of millisecond values: 1 ms buckets below 1 s, 10 ms below 10 s,
/// 100 ms below 100 s, one bucket above. 2,801 counters whatever the number of samples; the
/// maximum is kept exactly. Percentiles are exact below 1 s and at most one bucket high above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

const FINE: u64 = 1_000;
const MEDIUM: u64 = 10_000;
const COARSE: u64 = 100_000;
const BUCKETS: usize = (FINE + (MEDIUM - FINE) / 10 + (COARSE - MEDIUM) / 100 + 1) as usize;

fn bucket_of(ms: u64) -> usize {
    (if ms < FINE {
        ms
    } else if ms < MEDIUM {
        FINE + (ms - FINE) / 10
    } else if ms < COARSE {
        FINE + (MEDIUM - FINE) / 10 + (ms - MEDIUM) / 100
    } else {
        BUCKETS as u64 - 1
    }) as usize
}

/// The largest value that falls in bucket `i` (`u64::MAX` for the last).
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    let medium_start = FINE;
    let coarse_start = FINE + (MEDIUM - FINE) / 10;
    if i < medium_start {
        i
    } else if i < coarse_start {
        FINE + (i - medium_start) * 10 + 9
    } else if i < BUCKETS as u64 - 1 {
        MEDIUM + (i - coarse_start) * 100 + 99
    } else {
        u64::MAX
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, ms: u64) {
        self.counts[bucket_of(ms)] += 1;
        self.n += 1;
        self.max = self.max.max(ms);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    /// Values above `ms`: exact below 1 s; above, values sharing `ms`'s bucket are not
    /// counted (at most 10 or 100 ms above it).
    pub fn count_above(&self, ms: u64) -> u64 {
        self.counts[bucket_of(ms) + 1..].iter().sum()
    }

    /// The same samples, each at its bucket's upper bound (at most the maximum), in a
    /// mergeable [`LogHistogram`](super::histogram::LogHistogram) for a shard report.
    pub fn to_log(&self) -> super::histogram::LogHistogram {
        let values = self
            .counts
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| std::iter::repeat_n(bucket_high(i).min(self.max), c as usize));
        super::histogram::LogHistogram::of(values)
    }

    /// Nearest-rank percentile (see [`percentile`]), `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = (((p.clamp(0.0, 100.0) / 100.0) * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_high(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// File descriptors kept free for everything but the sessions: stdio, the runtime's epoll
/// and wake-up descriptors, the HTTP client for health requests, DNS.
pub const FD_RESERVE: u64 = 64;

/// What the open-file limit means for `connections` sessions (one socket each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdPlan {
    /// The soft limit already fits.
    Fits { needed: u64 },
    /// The soft limit is too low but the hard limit fits: raise the soft limit to `to`
    /// (an unprivileged process may).
    Raise { needed: u64, to: u64 },
    /// Even the hard limit is too low; at most `max_connections` sessions fit.
    TooMany {
        needed: u64,
        soft: u64,
        hard: u64,
        max_connections: u64,
    },
}

pub fn fd_plan(connections: u64, soft: u64, hard: u64) -> FdPlan {
    let needed = connections.saturating_add(FD_RESERVE);
    if needed <= soft {
        FdPlan::Fits { needed }
    } else if needed <= hard {
        FdPlan::Raise { needed, to: needed }
    } else {
        FdPlan::TooMany {
            needed,
            soft,
            hard,
            max_connections: hard.saturating_sub(FD_RESERVE),
        }
    }
}

/// Time allowed for each phase; `total` is the hard deadline of the whole probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// From the start until every session is open (or given up).
    pub open: Duration,
    pub hold: Duration,
    /// From the end of the hold until every session is closed.
    pub close: Duration,
    pub total: Duration,
}

/// Handshakes per second the open budget assumes at worst (or `--rate` when lower).
pub const FLOOR_RATE: f64 = 100.0;
/// Slack added to the sum of the phases for the report and the health look-ups.
pub const MARGIN: Duration = Duration::from_secs(5);

/// The budget of a probe: opening `n` sessions at `rate` per second (none: [`FLOOR_RATE`] is
/// assumed, a slow server's pace) plus one handshake timeout, the hold, then the close (the
/// wait for a quiet moment plus the close handshake), plus [`MARGIN`].
pub fn budget(
    n: u32,
    rate: Option<f64>,
    handshake_timeout: Duration,
    hold: Duration,
    close_grace: Duration,
    close_timeout: Duration,
) -> Budget {
    let pace = rate
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(FLOOR_RATE)
        .min(FLOOR_RATE);
    // Never panics: a pace that would overflow a Duration is capped at a week.
    let pacing = Duration::try_from_secs_f64(n as f64 / pace)
        .unwrap_or(Duration::MAX)
        .min(Duration::from_secs(7 * 86_400));
    let open = handshake_timeout + pacing;
    let close = close_grace + close_timeout;
    Budget {
        open,
        hold,
        close,
        total: open + hold + close + MARGIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7u32], 99.0), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        // Like the Node client's pct(): idx = ceil(p/100*n) - 1.
        let v = [10u32, 20, 30];
        assert_eq!(percentile(&v, 50.0), Some(20));
        assert_eq!(percentile(&v, 99.0), Some(30));
    }

    #[test]
    fn summary_is_ordered_and_in_ms() {
        let mut v = vec![5_000u32, 1_000, 3_000, 2_000, 4_000, 100_000];
        let s = summarize_us(&mut v).unwrap();
        assert_eq!(s.count, 6);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p50_ms, 3.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(s.p99_ms, 100.0);
        assert!(s.min_ms <= s.p50_ms && s.p50_ms <= s.p90_ms);
        assert!(s.p90_ms <= s.p99_ms && s.p99_ms <= s.max_ms);
        assert_eq!(s.mean_ms, 19.2);
        assert!(summarize_us(&mut []).is_none());
    }

    #[test]
    fn grouping_counts_and_orders() {
        let g = group(["b", "a", "b", "c", "a", "b"]);
        assert_eq!(g, vec![("b", 3), ("a", 2), ("c", 1)]);
        assert!(group(std::iter::empty::<&str>()).is_empty());
    }

    #[test]
    fn rates_and_ratios() {
        assert_eq!(per_second(1000, ms(500)), Some(2000.0));
        assert_eq!(per_second(0, ms(500)), None);
        assert_eq!(per_second(5, Duration::ZERO), None);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(3.0, 4.0), Some(0.75));
    }

    #[test]
    fn heartbeat_window() {
        let w = (ms(2_000), ms(5_000));
        // Opened at 0, alive throughout, interval 1 s: due at 2, 3, 4 s (5 s is the end).
        assert_eq!(heartbeats_due(ms(0), w, ms(9_000), ms(1_000)), 3);
        // A 3 s window and a 2 s interval: one or two by the session's phase, never 1.5
        // (due at 3.5 s; due at 2.1 and 4.1 s).
        assert_eq!(heartbeats_due(ms(1_500), w, ms(9_000), ms(2_000)), 1);
        assert_eq!(heartbeats_due(ms(100), w, ms(9_000), ms(2_000)), 2);
        // Dropped during the window: due at 2 and 3 s only.
        assert_eq!(heartbeats_due(ms(0), w, ms(3_500), ms(1_000)), 2);
        // Gone before it, or opened after it.
        assert_eq!(heartbeats_due(ms(0), w, ms(1_000), ms(1_000)), 0);
        assert_eq!(heartbeats_due(ms(6_000), w, ms(9_000), ms(1_000)), 0);
        // Opened during the window: due at 4.5 s.
        assert_eq!(heartbeats_due(ms(3_500), w, ms(9_000), ms(1_000)), 1);
        assert_eq!(heartbeats_due(ms(0), w, ms(9_000), Duration::ZERO), 0);

        assert_eq!(heartbeat_slot(ms(1_003), ms(1_000)), 1);
        assert_eq!(heartbeat_slot(ms(1_499), ms(1_000)), 1);
        assert_eq!(heartbeat_slot(ms(1_950), ms(1_000)), 2);
        assert_eq!(heartbeat_slot(ms(10), ms(1_000)), 1);
        assert_eq!(heartbeat_slot(ms(10), Duration::ZERO), 1);
    }

    #[test]
    fn histogram_percentiles_and_bounds() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
        for v in 0..100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(50.0), Some(49));
        assert_eq!(h.percentile(99.0), Some(98));
        assert_eq!(h.max(), Some(99));
        assert_eq!(h.count_above(89), 10);
        // Coarser above 1 s, never above the exact maximum.
        h.record(1_234);
        assert_eq!(h.percentile(100.0), Some(1_234));
        h.record(250_000);
        assert_eq!(h.max(), Some(250_000));
        assert_eq!(h.percentile(100.0), Some(250_000));
        for (v, b) in [
            (0, 0),
            (999, 999),
            (1_000, 1_000),
            (9_999, 1_899),
            (10_000, 1_900),
        ] {
            assert_eq!(bucket_of(v), b, "{v}");
            assert!(bucket_high(bucket_of(v)) >= v);
        }
        assert_eq!(bucket_of(99_999), BUCKETS - 2);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(bucket_of(1_234)), 1_239);
    }

    #[test]
    fn open_file_budget() {
        assert_eq!(fd_plan(1000, 20_000, 20_000), FdPlan::Fits { needed: 1064 });
        assert_eq!(
            fd_plan(5000, 1024, 20_000),
            FdPlan::Raise {
                needed: 5064,
                to: 5064
            }
        );
        assert_eq!(
            fd_plan(500, 100, 100),
            FdPlan::TooMany {
                needed: 564,
                soft: 100,
                hard: 100,
                max_connections: 36
            }
        );
        assert!(matches!(
            fd_plan(10, 20, 20),
            FdPlan::TooMany {
                max_connections: 0,
                ..
            }
        ));
    }

    #[test]
    fn time_budget() {
        let b = budget(5000, None, ms(10_000), ms(5_000), ms(3_000), ms(5_000));
        assert_eq!(b.open, ms(60_000));
        assert_eq!(b.close, ms(8_000));
        assert_eq!(b.total, ms(60_000 + 5_000 + 8_000) + MARGIN);
        // A slower requested rate stretches the open budget; a faster one does not shrink it.
        assert_eq!(
            budget(100, Some(10.0), ms(2_000), ms(0), ms(0), ms(0)).open,
            ms(12_000)
        );
        assert_eq!(
            budget(100, Some(1e6), ms(2_000), ms(0), ms(0), ms(0)).open,
            ms(3_000)
        );
        assert_eq!(
            budget(100, Some(f64::NAN), ms(2_000), ms(0), ms(0), ms(0)).open,
            ms(3_000)
        );
    }
}
