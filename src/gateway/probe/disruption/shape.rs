//! How the drops were spread in time. Every session of a stopped task drops at once, so a
//! burst is normal; what hurts is a burst whose reconnects all land in the same second on
//! whatever is left (a reconnect storm). The shape says both, and what to change. Pure.

use serde::Serialize;

/// Reconnects within one second onto one target, as a share of the drops, from which the
/// report calls it a storm (with at least [`STORM_MIN`] drops).
const STORM_SHARE: f64 = 0.5;
const STORM_MIN: u64 = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropShape {
    /// First and last drop (ms since the probe started) and the time between them.
    pub first_ms: u64,
    pub last_ms: u64,
    pub span_ms: u64,
    /// Most drops within any one second.
    pub peak_drops_per_s: u64,
    /// Most reconnects one target took within one second.
    pub peak_reconnects_per_s: u64,
    /// Half the drops or more came back onto one target within one second.
    pub storm: bool,
    /// What to change when it was a storm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// The shape of `drops_at` (ms, any order); `peak_landing`: the busiest second of the target
/// that took the most reconnects at once. `None` without drops.
pub fn of(drops_at: &mut [u64], peak_landing: u64) -> Option<DropShape> {
    let (&first, &last) = (drops_at.iter().min()?, drops_at.iter().max()?);
    let n = drops_at.len() as u64;
    let peak = super::peak_per_second(drops_at);
    let storm = n >= STORM_MIN && peak_landing as f64 >= STORM_SHARE * n as f64;
    Some(DropShape {
        first_ms: first,
        last_ms: last,
        span_ms: last - first,
        peak_drops_per_s: peak,
        peak_reconnects_per_s: peak_landing,
        storm,
        advice: storm.then(|| {
            format!(
                "{peak_landing} of {n} dropped sessions reconnected onto one target within one second: a reconnect storm onto what was left. Spread it: a larger reconnectionDelayMax and randomizationFactor (jitter) in the client, and a deregistration delay and maximumPercent that drain old tasks one at a time"
            )
        }),
    })
}

impl DropShape {
    /// `drops over 12.3 s, at most 40 in one second; reconnects at most 12/s onto one target`.
    pub fn text(&self) -> String {
        format!(
            "drops over {:.1} s, at most {} in one second; reconnects at most {}/s onto one target{}",
            self.span_ms as f64 / 1000.0,
            self.peak_drops_per_s,
            self.peak_reconnects_per_s,
            if self.storm { " (a reconnect storm)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_half_the_drops_onto_one_target_in_one_second() {
        assert_eq!(of(&mut [], 0), None);
        let mut at: Vec<u64> = (0..10).map(|i| 5_000 + i * 10).collect();
        let s = of(&mut at, 5).unwrap();
        assert!(s.storm, "{s:?}");
        assert_eq!((s.first_ms, s.last_ms, s.span_ms), (5_000, 5_090, 90));
        assert_eq!(s.peak_drops_per_s, 10);
        assert!(s.advice.as_deref().unwrap().starts_with("5 of 10 dropped"));
        assert!(s.text().ends_with("(a reconnect storm)"));
        // One short of half: no storm, no advice.
        let s = of(&mut at, 4).unwrap();
        assert!(!s.storm && s.advice.is_none());
        // Too few drops to call it a storm.
        let mut few: Vec<u64> = (0..9).collect();
        assert!(!of(&mut few, 9).unwrap().storm);
        let mut spread: Vec<u64> = (0..20).map(|i| i * 1000).collect();
        let s = of(&mut spread, 2).unwrap();
        assert_eq!(s.peak_drops_per_s, 1);
        assert_eq!(
            s.text(),
            "drops over 19.0 s, at most 1 in one second; reconnects at most 2/s onto one target"
        );
    }
}
