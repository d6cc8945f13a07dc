//! A mergeable latency histogram for shard reports (`verify --shard`, `report merge`).
//!
//! Log-bucketed like HDR Histogram: values below 256 are exact; above, a value keeps its top
//! 8 significant bits, so a bucket spans at most 1/128 of its lower bound. A percentile is
//! the nearest-rank bucket's upper bound, clamped to the exact maximum: never below the true
//! nearest-rank value and at most 0.79 % above it (the documented bound, `REL_ERROR`). Count,
//! minimum, maximum and sum are exact. Merging adds bucket counts, so any split of the same
//! samples merges to the same histogram. Serialized sparse: `[[bucket, count], …]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values below this are their own bucket.
const EXACT: u64 = 256;
/// Significant bits kept above [`EXACT`].
const BITS: u32 = 8;
/// Upper bound of a percentile's relative error: 1/128.
pub const REL_ERROR: f64 = 1.0 / 128.0;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHistogram {
    pub count: u64,
    pub min: u64,
    pub max: u64,
    pub sum: u64,
    /// `(bucket, count)`, ascending, no zero counts.
    pub buckets: Vec<(u32, u64)>,
}

fn bucket_of(v: u64) -> u32 {
    if v < EXACT {
        return v as u32;
    }
    let shift = (63 - v.leading_zeros()) + 1 - BITS;
    // `v >> shift` is in [128, 256): one of 128 sub-buckets per power of two.
    (EXACT + (shift as u64 - 1) * (EXACT / 2) + ((v >> shift) - EXACT / 2)) as u32
}

/// The largest value of bucket `b`.
fn bucket_high(b: u32) -> u64 {
    let b = b as u64;
    if b < EXACT {
        return b;
    }
    let shift = (b - EXACT) / (EXACT / 2) + 1;
    let top = (b - EXACT) % (EXACT / 2) + EXACT / 2;
    ((((top + 1) as u128) << shift) - 1).min(u64::MAX as u128) as u64
}

impl LogHistogram {
    pub fn of(values: impl IntoIterator<Item = u64>) -> LogHistogram {
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        let mut h = LogHistogram {
            min: u64::MAX,
            ..LogHistogram::default()
        };
        for v in values {
            *counts.entry(bucket_of(v)).or_default() += 1;
            h.count += 1;
            h.min = h.min.min(v);
            h.max = h.max.max(v);
            h.sum = h.sum.saturating_add(v);
        }
        if h.count == 0 {
            h.min = 0;
        }
        h.buckets = counts.into_iter().collect();
        h
    }

    /// Both histograms' samples in one.
    pub fn merge(&self, other: &LogHistogram) -> LogHistogram {
        if other.count == 0 {
            return self.clone();
        }
        if self.count == 0 {
            return other.clone();
        }
        let mut counts: BTreeMap<u32, u64> = self.buckets.iter().copied().collect();
        for &(b, n) in &other.buckets {
            *counts.entry(b).or_default() += n;
        }
        LogHistogram {
            count: self.count + other.count,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            sum: self.sum.saturating_add(other.sum),
            buckets: counts.into_iter().collect(),
        }
    }

    /// Nearest-rank percentile, within [`REL_ERROR`] above the exact one; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (((p.clamp(0.0, 100.0) / 100.0) * self.count as f64).ceil() as u64)
            .clamp(1, self.count);
        let mut seen = 0;
        for &(b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(bucket_high(b).min(self.max).max(self.min));
            }
        }
        Some(self.max)
    }

    /// The sample counts agree with `count` and every bucket can hold what it claims
    /// (a shard report read from a file is outside text).
    pub fn is_consistent(&self) -> bool {
        let total: u64 = self.buckets.iter().map(|b| b.1).sum();
        let ascending = self.buckets.windows(2).all(|w| w[0].0 < w[1].0);
        total == self.count
            && ascending
            && (self.count == 0 || self.min <= self.max)
            && self
                .buckets
                .iter()
                .all(|b| b.1 > 0 && b.0 <= bucket_of(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::stats::percentile;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for v in [
            0u64,
            1,
            255,
            256,
            257,
            511,
            512,
            1000,
            65_535,
            1 << 40,
            u64::MAX,
        ] {
            let b = bucket_of(v);
            assert!(bucket_high(b) >= v, "{v}");
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "{v}");
            }
            assert!((bucket_high(b) - v) as f64 <= v as f64 * REL_ERROR, "{v}");
        }
    }

    #[test]
    fn empty_and_exact_small_values() {
        assert_eq!(LogHistogram::of([]).percentile(50.0), None);
        let h = LogHistogram::of([3, 1, 2]);
        assert_eq!((h.min, h.max, h.sum, h.count), (1, 3, 6, 3));
        assert_eq!(h.percentile(50.0), Some(2));
        assert!(h.is_consistent());
        let mut bad = h.clone();
        bad.count = 4;
        assert!(!bad.is_consistent());
    }

    proptest! {
        /// Within the bound of the exact nearest-rank percentile, never below it; and any
        /// split merges to the histogram of the whole.
        #[test]
        fn bound_and_merge(mut values in prop::collection::vec(0u64..10_000_000, 1..400),
                           cut in 0usize..400, p in 0.0f64..100.0) {
            let h = LogHistogram::of(values.iter().copied());
            let cut = cut.min(values.len());
            let merged = LogHistogram::of(values[..cut].iter().copied())
                .merge(&LogHistogram::of(values[cut..].iter().copied()));
            prop_assert_eq!(&merged, &h);
            values.sort_unstable();
            let exact = percentile(&values, p).unwrap();
            let got = h.percentile(p).unwrap();
            prop_assert!(got >= exact);
            prop_assert!((got - exact) as f64 <= exact as f64 * REL_ERROR);
        }
    }
}
