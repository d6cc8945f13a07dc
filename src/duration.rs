//! Durations in `deploy.toml` are strings with units ("30s", "24h", "1h30m", "500ms"):
//! a bare number is ambiguous between seconds and milliseconds, so it is refused.

use std::time::Duration;

/// Parses "7d", "24h", "1h30m", "90s", "250ms". Units: d, h, m, s, ms.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write a number with a unit, like \"30s\"".into());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "\"{text}\" is not a duration; write a number with a unit (d, h, m, s, ms), like \"30s\" or \"24h\""
            ));
        }
        let number: u128 = s[start..i]
            .parse()
            .map_err(|_| format!("\"{text}\": number too large"))?;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor_ms: u128 = match &s[unit_start..i] {
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            "ms" => 1,
            "" => {
                return Err(format!(
                    "\"{text}\" has no unit; write it with one (d, h, m, s, ms), like \"{number}s\""
                ))
            }
            other => {
                return Err(format!(
                    "\"{text}\": unknown unit \"{other}\"; use d, h, m, s or ms"
                ))
            }
        };
        total_ms = number
            .checked_mul(factor_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("\"{text}\": duration too large"))?;
    }
    u64::try_from(total_ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("\"{text}\": duration too large"))
}

/// The shortest exact rendering: 86400 s is "24h", 90 s is "1m30s".
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_bare_numbers_and_unknown_units() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("30 sec")
            .unwrap_err()
            .contains("unknown unit \"sec\""));
        assert!(parse("abc").unwrap_err().contains("not a duration"));
        assert!(parse("").is_err());
        assert!(parse("99999999999999999999d").is_err());
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format(parse("24h").unwrap()), "1d");
        for s in ["1d", "7d", "1m30s", "250ms", "0s", "2h5s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
