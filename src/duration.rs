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
        if i < bytes.len() && (bytes[i] == b'.' || bytes[i] == b',') {
            return Err(fractional(text, s));
        }
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

/// "1.5s" is 1500 ms: say so, with the whole-number spelling to use instead.
fn fractional(text: &str, s: &str) -> String {
    let (int, rest) = s.split_once(['.', ',']).unwrap_or((s, ""));
    let frac: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit: String = rest.chars().skip(frac.len()).collect();
    let factor: Option<u128> = match unit.trim() {
        "d" => Some(86_400_000),
        "h" => Some(3_600_000),
        "m" => Some(60_000),
        "s" => Some(1_000),
        _ => None,
    };
    let ms = (|| {
        let whole: u128 = int.parse().ok()?;
        let f: f64 = format!("0.{frac}").parse().ok()?;
        let factor = factor?;
        Some(whole * factor + (f * factor as f64).round() as u128)
    })();
    match ms {
        Some(ms) => {
            // The largest single unit that holds it exactly: 1.5s is 1500ms, 2.5h is 150m.
            let (unit, size) = [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
                .into_iter()
                .find(|(_, size)| ms % size == 0)
                .unwrap_or(("ms", 1));
            format!(
                "\"{text}\": fractional durations are not supported; write \"{}{unit}\"",
                ms / size
            )
        }
        None => format!(
            "\"{text}\": fractional durations are not supported; use a smaller unit, like \"1500ms\" for 1.5s"
        ),
    }
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

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2026-12-05T10:00:00Z`, with or
/// without fractions); `None`: not one. For times AWS and the tool's own documents carry.
pub fn unix_ms(rfc3339: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(rfc3339))
        .ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// Latest time RFC 3339 writes (9999-12-31T23:59:59Z), in ms.
const LAST_WRITABLE_MS: i64 = 253_402_300_799_000;

/// `ms` since the Unix epoch as RFC 3339 to the second; a time no four-digit year holds (a
/// hostile document's) as its number, never a panic.
pub fn rfc3339_of_ms(ms: i64) -> String {
    if !(0..=LAST_WRITABLE_MS).contains(&ms) {
        return format!("{ms} ms after 1970");
    }
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_seconds(t).to_string()
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
    fn fractions_are_explained_with_the_spelling_to_use() {
        let e = parse("1.5s").unwrap_err();
        assert!(
            e.contains("fractional durations are not supported; write \"1500ms\""),
            "{e}"
        );
        let e = parse("2.5h").unwrap_err();
        assert!(e.contains("write \"150m\""), "{e}");
        assert!(parse("0,5s").unwrap_err().contains("fractional"));
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format(parse("24h").unwrap()), "1d");
        for s in ["1d", "7d", "1m30s", "250ms", "0s", "2h5s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }

    #[test]
    fn wall_clock_times_both_ways() {
        assert_eq!(unix_ms("2026-12-05T10:00:01.500Z"), Some(1_796_464_801_500));
        assert_eq!(unix_ms("2026-12-05T10:00:01Z"), Some(1_796_464_801_000));
        assert_eq!(unix_ms("soon"), None);
        assert_eq!(rfc3339_of_ms(1_796_464_801_500), "2026-12-05T10:00:01Z");
        assert_eq!(
            rfc3339_of_ms(i64::MAX),
            format!("{} ms after 1970", i64::MAX)
        );
        assert_eq!(rfc3339_of_ms(-5), "-5 ms after 1970");
    }
}
