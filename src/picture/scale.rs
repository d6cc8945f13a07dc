//! Scales of the picture: a linear map from data to pixels, and tick steps a reader takes in
//! at a glance (1, 2, 5 × 10ⁿ for counts; whole seconds and minutes for time). Pure.

/// Maps `[d0, d1]` onto `[r0, r1]` (an empty domain maps everything to `r0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
}

impl Linear {
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Linear {
        Linear {
            d0: domain.0,
            d1: domain.1,
            r0: range.0,
            r1: range.1,
        }
    }

    /// The pixel of `v`, clamped into the range (a value outside the domain stays on the
    /// chart's edge instead of drawing over its neighbours).
    pub fn at(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if !(span.is_finite() && span > 0.0 && v.is_finite()) {
            return self.r0;
        }
        let t = ((v - self.d0) / span).clamp(0.0, 1.0);
        self.r0 + t * (self.r1 - self.r0)
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at least `v` (1 for nothing to show).
pub fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v - v * 1e-12 {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Ticks from 0 to `max` (itself nice, from [`nice_ceil`]): about four steps, whole numbers
/// from a maximum of 1 up (sessions and drops come whole).
pub fn count_ticks(max: f64) -> Vec<f64> {
    let step = nice_ceil(max / 4.0);
    let step = if max >= 1.0 { step.max(1.0) } else { step };
    let mut out = Vec::new();
    let mut v = 0.0;
    while v <= max + step * 1e-9 && out.len() < 12 {
        out.push(v);
        v += step;
    }
    out
}

/// Time steps in milliseconds a reader counts in.
const TIME_STEPS_MS: [i64; 12] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000,
];

/// Ticks on a time axis from `from_ms` to `to_ms` (ms from the run's start, may be negative):
/// at most about ten, on whole multiples of the step.
pub fn time_ticks(from_ms: i64, to_ms: i64) -> Vec<i64> {
    let span = (to_ms - from_ms).max(1);
    let step = TIME_STEPS_MS
        .iter()
        .copied()
        .find(|s| span / s <= 10)
        .unwrap_or(3_600_000);
    let first = from_ms.div_euclid(step) * step;
    let first = if first < from_ms { first + step } else { first };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to_ms)
        .take(20)
        .collect()
}

/// `+90s`, `-2m`, `+1m30s`: a time on the axis, from the run's start.
pub fn offset_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let s = ms.unsigned_abs() / 1000;
    let tenths = (ms.unsigned_abs() % 1000) / 100;
    match (s / 60, s % 60) {
        (0, sec) if tenths > 0 && s < 10 => format!("{sign}{sec}.{tenths}s"),
        (0, sec) => format!("{sign}{sec}s"),
        (m, 0) => format!("{sign}{m}m"),
        (m, sec) => format!("{sign}{m}m{sec}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_maps_and_clamps() {
        let s = Linear::new((0.0, 10.0), (100.0, 200.0));
        assert_eq!(s.at(0.0), 100.0);
        assert_eq!(s.at(5.0), 150.0);
        assert_eq!(s.at(10.0), 200.0);
        assert_eq!(s.at(-5.0), 100.0, "clamped to the edge");
        assert_eq!(s.at(50.0), 200.0);
        // Inverted ranges (SVG's y grows downwards).
        let y = Linear::new((0.0, 4.0), (80.0, 0.0));
        assert_eq!(y.at(1.0), 60.0);
        // An empty domain or a bad value never gives NaN.
        assert_eq!(Linear::new((3.0, 3.0), (0.0, 9.0)).at(3.0), 0.0);
        assert_eq!(s.at(f64::NAN), 100.0);
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(-3.0), 1.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(11.0), 20.0);
        assert_eq!(nice_ceil(1840.0), 2000.0);
        assert_eq!(nice_ceil(0.3), 0.5);
        assert_eq!(count_ticks(20.0), vec![0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(count_ticks(1.0), vec![0.0, 1.0]);
        assert_eq!(count_ticks(2.0), vec![0.0, 1.0, 2.0]);
        assert_eq!(count_ticks(0.5), vec![0.0, 0.2, 0.4]);
    }

    #[test]
    fn time_ticks_are_whole_steps_within_the_span() {
        assert_eq!(
            time_ticks(0, 5_000),
            vec![0, 1_000, 2_000, 3_000, 4_000, 5_000]
        );
        assert_eq!(time_ticks(0, 60_000).len(), 7, "every 10 s");
        let t = time_ticks(-120_000, 600_000);
        assert!(t.len() <= 11, "{t:?}");
        assert!(t.contains(&0), "{t:?}");
        assert!(t.iter().all(|x| (-120_000..=600_000).contains(x)));
        assert_eq!(time_ticks(500, 1_500), vec![1_000]);
        assert!(time_ticks(0, 100 * 3_600_000).len() <= 20);
    }

    #[test]
    fn offsets_read_as_time() {
        assert_eq!(offset_text(0), "+0s");
        assert_eq!(offset_text(1_500), "+1.5s");
        assert_eq!(offset_text(90_000), "+1m30s");
        assert_eq!(offset_text(-120_000), "-2m");
        assert_eq!(offset_text(45_000), "+45s");
    }
}
