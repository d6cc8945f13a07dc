//! `--prometheus ADDR`: the monitor's numbers as OpenMetrics text on `GET /metrics` (the
//! classic text format to a client that does not ask for OpenMetrics), named by
//! Prometheus's conventions (`_total` counters, `_seconds` units, one histogram with fixed
//! buckets). The totals only grow; the gauges are the last record's. Bounded: a fixed set of
//! series, plus one gauge per target (at most [`MAX_TARGETS`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::record::{lost_key, Record, Tally, BUCKETS, CAUSES, LOST_CAUSES};
/// Targets shown; more are summed under `other`.
pub const MAX_TARGETS: usize = 64;
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything `/metrics` shows.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub records: u64,
    pub drops: [u64; 4],
    pub lost: [u64; 2],
    pub replaced: u64,
    pub reconnects: u64,
    pub failed_attempts: u64,
    pub heartbeats: u64,
    /// Cumulative counts per bucket (last: +Inf), and the sum in seconds.
    pub reconnect_buckets: [u64; BUCKETS.len() + 1],
    pub reconnect_sum: f64,
    pub last: Option<Record>,
}

impl Totals {
    /// Adds an interval: its record and its tally.
    pub fn add(&mut self, r: &Record, t: &Tally) {
        self.records += 1;
        for (total, d) in self.drops.iter_mut().zip(t.drops) {
            *total += d;
        }
        for (total, l) in self.lost.iter_mut().zip(t.lost) {
            *total += l;
        }
        self.replaced += t.replaced;
        self.reconnects += r.reconnects;
        self.failed_attempts += r.failed_attempts;
        self.heartbeats += r.heartbeats;
        let mut running = 0;
        for (total, n) in self.reconnect_buckets.iter_mut().zip(t.reconnect_buckets) {
            running += n;
            *total += running;
        }
        self.reconnect_sum += t.reconnect_sum_ms as f64 / 1000.0;
        self.last = Some(r.clone());
    }
}

/// A label value: backslash, quote and newline escaped, at most 128 characters, no control
/// characters (outside text: instance ids come from the server).
fn label(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars().take(128) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || crate::outside::is_hidden(c) => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn secs(ms: Option<u64>) -> Option<f64> {
    ms.map(|v| v as f64 / 1000.0)
}

/// The two text formats: OpenMetrics (what Prometheus asks for) and Prometheus's classic
/// text format (0.0.4: what `promtool check metrics` and older scrapers read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    /// From the request's `Accept` header.
    pub fn negotiate(accept: &str) -> Format {
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => CONTENT_TYPE,
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// A metric family's `# HELP`, `# TYPE` and `# UNIT` lines. OpenMetrics names a counter's
/// family without `_total` and has units; the classic format names it as its sample.
fn head(o: &mut String, f: Format, name: &str, kind: &str, help: &str, unit: Option<&str>) {
    let family = match (f, kind) {
        (Format::Classic, "counter") => format!("{name}_total"),
        _ => name.to_string(),
    };
    let _ = writeln!(o, "# HELP {family} {help}");
    let _ = writeln!(o, "# TYPE {family} {kind}");
    if let (Format::OpenMetrics, Some(u)) = (f, unit) {
        let _ = writeln!(o, "# UNIT {family} {u}");
    }
}

/// The exposition (OpenMetrics ends with `# EOF`).
pub fn render(t: &Totals, f: Format) -> String {
    let mut o = String::new();
    let counters = [
        (
            "bosar_monitor_records",
            "Records made (one per interval).",
            t.records,
        ),
        (
            "bosar_monitor_reconnects",
            "Dropped sessions that came back.",
            t.reconnects,
        ),
        (
            "bosar_monitor_replaced",
            "Lost sessions replaced by a fresh one.",
            t.replaced,
        ),
        (
            "bosar_monitor_reconnect_attempts_failed",
            "Reconnect attempts that failed.",
            t.failed_attempts,
        ),
        (
            "bosar_monitor_heartbeats",
            "Server heartbeats received and acked.",
            t.heartbeats,
        ),
    ];
    for (name, help, v) in counters {
        head(&mut o, f, name, "counter", help, None);
        let _ = writeln!(o, "{name}_total {v}");
    }
    head(
        &mut o,
        f,
        "bosar_monitor_drops",
        "counter",
        "Held sessions dropped, by cause.",
        None,
    );
    for c in CAUSES {
        let _ = writeln!(
            o,
            "bosar_monitor_drops_total{{cause=\"{}\"}} {}",
            c.key(),
            t.drops[c as usize]
        );
    }
    head(
        &mut o,
        f,
        "bosar_monitor_lost",
        "counter",
        "Held sessions socket.io-client would not have reconnected, by cause.",
        None,
    );
    for (i, key) in LOST_CAUSES.iter().filter_map(|c| lost_key(*c)) {
        let _ = writeln!(
            o,
            "bosar_monitor_lost_total{{cause=\"{key}\"}} {}",
            t.lost[i]
        );
    }
    let name = "bosar_monitor_reconnect_seconds";
    head(
        &mut o,
        f,
        name,
        "histogram",
        "Time from a drop to the session back.",
        Some("seconds"),
    );
    for (b, c) in BUCKETS.iter().zip(t.reconnect_buckets) {
        let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {c}");
    }
    let all = t.reconnect_buckets[BUCKETS.len()];
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {all}");
    let _ = writeln!(o, "{name}_count {all}");
    let _ = writeln!(o, "{name}_sum {}", t.reconnect_sum);
    if let Some(r) = &t.last {
        gauges(&mut o, f, r);
    }
    if f == Format::OpenMetrics {
        o.push_str("# EOF\n");
    }
    o
}

/// The last record's gauges.
fn gauges(o: &mut String, f: Format, r: &Record) {
    let mut gauge = |name: &str, help: &str, unit: Option<&str>, v: Option<f64>| {
        head(o, f, name, "gauge", help, unit);
        if let Some(v) = v {
            let _ = writeln!(o, "{name} {v}");
        }
    };
    gauge(
        "bosar_monitor_sessions",
        "Sessions the monitor holds.",
        None,
        Some(r.sessions as f64),
    );
    gauge(
        "bosar_monitor_sessions_up",
        "Held sessions up at the last record.",
        None,
        Some(r.sessions_up as f64),
    );
    gauge(
        "bosar_monitor_heartbeat_gap_max_seconds",
        "Largest gap between two heartbeats in the last interval.",
        Some("seconds"),
        secs(r.heartbeat_gap_max_ms),
    );
    gauge(
        "bosar_monitor_heartbeat_interval_seconds",
        "The configured heartbeat interval.",
        Some("seconds"),
        secs(Some(r.heartbeat_interval_ms)),
    );
    gauge(
        "bosar_monitor_handshake_seconds",
        "The last interval's fresh handshake (open and join).",
        Some("seconds"),
        secs(r.probe.handshake_ms),
    );
    gauge(
        "bosar_monitor_health_up",
        "1 when the health endpoint answered 200.",
        None,
        Some(f64::from(u8::from(r.probe.health_status == Some(200)))),
    );
    gauge(
        "bosar_monitor_health_seconds",
        "The health endpoint's answer time.",
        Some("seconds"),
        secs(r.probe.health_ms),
    );
    let name = "bosar_monitor_target_sessions";
    head(
        o,
        f,
        name,
        "gauge",
        "Held sessions up per target (instance id from the heartbeat).",
        None,
    );
    let mut other = 0;
    for (i, (t, n)) in r.sessions_per_target.iter().enumerate() {
        if i < MAX_TARGETS {
            let _ = writeln!(
                o,
                "bosar_monitor_target_sessions{{target=\"{}\"}} {n}",
                label(t)
            );
        } else {
            other += n;
        }
    }
    if other > 0 {
        let _ = writeln!(
            o,
            "bosar_monitor_target_sessions{{target=\"other\"}} {other}"
        );
    }
}

/// Serves `/metrics` on `listener` until the task is dropped: each connection one request
/// (at most 8 KiB read, 5 s), answered and closed.
pub async fn serve(listener: TcpListener, totals: Arc<Mutex<Totals>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let totals = totals.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            });
            if read.await.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let accept = head
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("accept:"))
                .unwrap_or("");
            let metrics = path == "/metrics" || path.starts_with("/metrics?");
            let (status, ctype, body) = if head.starts_with("GET ") && metrics {
                let f = Format::negotiate(accept);
                let body = render(&totals.lock().unwrap(), f);
                ("200 OK", f.content_type(), body)
            } else {
                (
                    "404 Not Found",
                    "text/plain",
                    "not found: GET /metrics\n".to_string(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Probe;
    use super::*;

    fn tally(drops: [u64; 4], reconnects: &[u64]) -> Tally {
        let mut t = Tally {
            drops,
            ..Tally::default()
        };
        for ms in reconnects {
            t.reconnected(*ms);
        }
        t
    }

    fn rec() -> Record {
        let up = vec![Some("a\"\n\u{1b}".to_string()), Some("b".to_string()), None];
        Record::new(
            "t".into(),
            1000,
            3,
            &up,
            &Tally::default(),
            Probe::default(),
            2000,
        )
    }

    #[test]
    fn totals_only_grow_and_buckets_are_cumulative() {
        let mut t = Totals::default();
        t.add(&rec(), &tally([1, 0, 2, 0], &[50, 700, 3000, 120_000]));
        t.add(&rec(), &tally([1, 0, 0, 0], &[200]));
        assert_eq!(t.drops, [2, 0, 2, 0]);
        assert_eq!(t.records, 2);
        // <=0.1: 50; <=0.25: +200; <=1: +700; <=5: +3000; +Inf: +120 s.
        assert_eq!(t.reconnect_buckets, [1, 2, 2, 3, 3, 4, 4, 4, 4, 5]);
        assert!((t.reconnect_sum - 123.95).abs() < 1e-9);
    }

    #[test]
    fn the_exposition_ends_with_eof_and_escapes_labels() {
        let mut t = Totals::default();
        t.add(&rec(), &Tally::default());
        let classic = render(&t, Format::Classic);
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
        assert!(classic.contains("# TYPE bosar_monitor_records_total counter\n"));
        let text = render(&t, Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE bosar_monitor_records counter\n"));
        assert_eq!(
            Format::negotiate("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate("*/*"), Format::Classic);
        assert!(text.contains("bosar_monitor_sessions_up 2\n"), "{text}");
        assert!(text.contains("bosar_monitor_drops_total{cause=\"ping_timeout\"} 0\n"));
        assert!(text.contains("bosar_monitor_lost_total{cause=\"server_disconnect\"} 0\n"));
        assert!(text.contains("bosar_monitor_replaced_total 0\n"));
        assert!(
            text.contains("bosar_monitor_target_sessions{target=\"a\\\"\\n?\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("bosar_monitor_reconnect_seconds_bucket{le=\"+Inf\"} 0\n"));
        // A gauge with no value has no sample line.
        assert!(
            !text.contains("\nbosar_monitor_handshake_seconds "),
            "{text}"
        );
    }
}
