//! What `monitor` counts and prints, apart from any socket: the tally the sessions add to
//! during an interval (bounded: counters and one fixed-size histogram, whatever happens), the
//! record made of it at the end of the interval, and the record as a plain line, a JSON line
//! and a CloudWatch Embedded Metric Format line. One vocabulary for all three (and for the
//! Prometheus names in `prom`): see docs/monitor.md.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::gateway::reconnect_rules::{self as rules, LostCause};
use crate::gateway::stats::Histogram;

/// Why a held session dropped, in socket.io-client's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// The connection closed (a close frame, the end of the stream).
    TransportClose,
    /// The connection failed (a reset, a read error).
    TransportError,
    /// No Engine.IO ping within pingInterval + pingTimeout.
    PingTimeout,
    /// The server left the namespace (DISCONNECT, "io server disconnect"): socket.io-client
    /// does not come back by itself, so the session is lost (and replaced in the next
    /// interval by a fresh one, as an app calling `connect()` again would).
    ServerDisconnect,
}

pub const CAUSES: [DropCause; 4] = [
    DropCause::TransportClose,
    DropCause::TransportError,
    DropCause::PingTimeout,
    DropCause::ServerDisconnect,
];

impl DropCause {
    pub fn key(self) -> &'static str {
        match self {
            DropCause::TransportClose => "transport_close",
            DropCause::TransportError => "transport_error",
            DropCause::PingTimeout => "ping_timeout",
            DropCause::ServerDisconnect => "server_disconnect",
        }
    }

    /// The same cause in the shared rules' terms ([`rules::DropCause`]: the probe's finer
    /// causes), so both follow one table of what socket.io-client does next.
    pub fn rule_cause(self) -> rules::DropCause {
        match self {
            DropCause::TransportClose => rules::DropCause::Eof,
            DropCause::TransportError => rules::DropCause::Reset,
            DropCause::PingTimeout => rules::DropCause::PingTimeout,
            DropCause::ServerDisconnect => rules::DropCause::ServerDisconnect,
        }
    }
}

/// Why a session was lost (socket.io-client would not have brought it back), in the
/// record's words: told to leave ("io server disconnect") or refused on a reconnect
/// (CONNECT_ERROR).
pub const LOST_CAUSES: [LostCause; 2] = [LostCause::ServerDisconnect, LostCause::ConnectError];

/// The record's key of a lost cause, and its slot in [`Tally::lost`] (`None`: not a cause a
/// monitor's session is lost for; it has no run end to be still trying at).
pub fn lost_key(c: LostCause) -> Option<(usize, &'static str)> {
    match c {
        LostCause::ServerDisconnect => Some((0, "server_disconnect")),
        LostCause::ConnectError => Some((1, "connect_error")),
        LostCause::StillTrying => None,
    }
}

/// Upper bounds of the reconnect-time histogram Prometheus shows, in seconds.
pub const BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The bucket of a reconnect time (the last: above every bound).
pub fn bucket_of(ms: u64) -> usize {
    let s = ms as f64 / 1000.0;
    BUCKETS
        .iter()
        .position(|b| s <= *b)
        .unwrap_or(BUCKETS.len())
}

/// What happened during one interval (reset after each record).
#[derive(Debug, Clone)]
pub struct Tally {
    pub drops: [u64; 4],
    /// Sessions lost, per [`LOST_CAUSES`].
    pub lost: [u64; 2],
    /// Lost sessions replaced by a fresh one.
    pub replaced: u64,
    /// Failed reconnect attempts.
    pub failed_attempts: u64,
    /// Time from a drop to the session back, per reconnect.
    pub reconnect_ms: Histogram,
    /// The same per [`BUCKETS`] (not cumulative), and their sum.
    pub reconnect_buckets: [u64; BUCKETS.len() + 1],
    pub reconnect_sum_ms: u64,
    /// The largest gap between two heartbeats on one connection.
    pub max_heartbeat_gap_ms: Option<u64>,
    pub heartbeats: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            drops: [0; 4],
            lost: [0; 2],
            replaced: 0,
            failed_attempts: 0,
            reconnect_ms: Histogram::new(),
            reconnect_buckets: [0; BUCKETS.len() + 1],
            reconnect_sum_ms: 0,
            max_heartbeat_gap_ms: None,
            heartbeats: 0,
        }
    }
}

impl Tally {
    pub fn dropped(&mut self, cause: DropCause) {
        self.drops[cause as usize] += 1;
    }
    pub fn lost(&mut self, cause: LostCause) {
        if let Some((i, _)) = lost_key(cause) {
            self.lost[i] += 1;
        }
    }
    pub fn reconnected(&mut self, ms: u64) {
        self.reconnect_ms.record(ms);
        self.reconnect_buckets[bucket_of(ms)] += 1;
        self.reconnect_sum_ms += ms;
    }
    pub fn heartbeat(&mut self, gap_ms: Option<u64>) {
        self.heartbeats += 1;
        if let Some(g) = gap_ms {
            self.max_heartbeat_gap_ms = Some(self.max_heartbeat_gap_ms.unwrap_or(0).max(g));
        }
    }
}

/// The fresh handshake and the health endpoint of an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Probe {
    /// Milliseconds to open a new session and join the namespace; `None` when it failed.
    pub handshake_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_error: Option<String>,
    /// The health endpoint's HTTP status (`None`: no answer).
    pub health_status: Option<u16>,
    pub health_ms: Option<u64>,
}

/// One interval's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// RFC 3339, the end of the interval.
    pub time: String,
    pub interval_ms: u64,
    pub sessions: u32,
    pub sessions_up: u32,
    pub drops: u64,
    pub drops_by_cause: BTreeMap<&'static str, u64>,
    /// Sessions socket.io-client would have abandoned (not reconnected), by cause.
    pub lost: u64,
    pub lost_by_cause: BTreeMap<&'static str, u64>,
    /// Lost sessions the monitor replaced with a fresh one (the interval after the loss).
    pub replaced: u64,
    pub reconnects: u64,
    pub failed_attempts: u64,
    pub reconnect_p50_ms: Option<u64>,
    pub reconnect_max_ms: Option<u64>,
    pub heartbeats: u64,
    pub heartbeat_gap_max_ms: Option<u64>,
    /// The configured heartbeat interval, to read the gap against.
    pub heartbeat_interval_ms: u64,
    #[serde(flatten)]
    pub probe: Probe,
    /// Sessions up per target (instance id from the heartbeat; `unknown` before one came).
    pub sessions_per_target: BTreeMap<String, u32>,
}

impl Record {
    pub fn new(
        time: String,
        interval_ms: u64,
        sessions: u32,
        up: &[Option<String>],
        tally: &Tally,
        probe: Probe,
        heartbeat_interval_ms: u64,
    ) -> Record {
        let mut per_target = BTreeMap::new();
        for t in up.iter().flatten() {
            *per_target.entry(t.clone()).or_insert(0) += 1;
        }
        Record {
            time,
            interval_ms,
            sessions,
            sessions_up: up.iter().filter(|u| u.is_some()).count() as u32,
            drops: tally.drops.iter().sum(),
            drops_by_cause: CAUSES
                .iter()
                .map(|c| (c.key(), tally.drops[*c as usize]))
                .collect(),
            lost: tally.lost.iter().sum(),
            lost_by_cause: LOST_CAUSES
                .iter()
                .filter_map(|c| lost_key(*c))
                .map(|(i, k)| (k, tally.lost[i]))
                .collect(),
            replaced: tally.replaced,
            reconnects: tally.reconnect_ms.count(),
            failed_attempts: tally.failed_attempts,
            reconnect_p50_ms: tally.reconnect_ms.percentile(50.0),
            reconnect_max_ms: tally.reconnect_ms.max(),
            heartbeats: tally.heartbeats,
            heartbeat_gap_max_ms: tally.max_heartbeat_gap_ms,
            heartbeat_interval_ms,
            probe,
            sessions_per_target: per_target,
        }
    }

    /// `2026-12-05T06:40:00Z sessions 20/20 up, drops 0, reconnects 0, heartbeat gap max 2.0s
    /// (interval 2s), handshake 6 ms, health 200 in 3 ms, targets a:10 b:10`
    pub fn line(&self) -> String {
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        let by_cause = |m: &BTreeMap<&str, u64>| -> String {
            let c: Vec<String> = m
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            if c.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.join(", "))
            }
        };
        let targets: Vec<String> = self
            .sessions_per_target
            .iter()
            .map(|(t, n)| format!("{}:{n}", crate::outside::Outside::new(t).shown(60)))
            .collect();
        let handshake = match (&self.probe.handshake_ms, &self.probe.handshake_error) {
            (Some(v), _) => format!("{v} ms"),
            (None, Some(e)) => format!("failed ({})", crate::outside::Outside::new(e).shown(120)),
            (None, None) => "-".into(),
        };
        let health = match self.probe.health_status {
            Some(s) => format!("{s} in {}", ms(self.probe.health_ms)),
            None => "no answer".into(),
        };
        format!(
            "{} sessions {}/{} up, drops {}{}, lost {}{}, replaced {}, reconnects {} (p50 {}, max {}), heartbeat gap max {} (interval {} ms), handshake {handshake}, health {health}, targets {}",
            self.time,
            self.sessions_up,
            self.sessions,
            self.drops,
            by_cause(&self.drops_by_cause),
            self.lost,
            by_cause(&self.lost_by_cause),
            self.replaced,
            self.reconnects,
            ms(self.reconnect_p50_ms),
            ms(self.reconnect_max_ms),
            ms(self.heartbeat_gap_max_ms),
            self.heartbeat_interval_ms,
            if targets.is_empty() { "-".into() } else { targets.join(" ") }
        )
    }
}

/// The EMF metrics: (name in the line, unit, value). A missing value is left out (EMF has no
/// null), so an alarm on it treats the minute as missing data.
pub fn emf_metrics(r: &Record) -> Vec<(&'static str, &'static str, f64)> {
    let mut m = vec![
        ("SessionsUp", "Count", r.sessions_up as f64),
        ("Drops", "Count", r.drops as f64),
        ("Lost", "Count", r.lost as f64),
        ("Replaced", "Count", r.replaced as f64),
        ("Reconnects", "Count", r.reconnects as f64),
        ("FailedReconnectAttempts", "Count", r.failed_attempts as f64),
        (
            "DropRate",
            "Percent",
            if r.sessions == 0 {
                0.0
            } else {
                100.0 * r.drops as f64 / r.sessions as f64
            },
        ),
        (
            "HealthUp",
            "Count",
            f64::from(u8::from(r.probe.health_status == Some(200))),
        ),
    ];
    let optional = [
        ("ReconnectP50", r.reconnect_p50_ms),
        ("ReconnectMax", r.reconnect_max_ms),
        ("HeartbeatGapMax", r.heartbeat_gap_max_ms),
        ("HandshakeTime", r.probe.handshake_ms),
        ("HealthTime", r.probe.health_ms),
    ];
    for (name, v) in optional {
        if let Some(v) = v {
            m.push((name, "Milliseconds", v as f64));
        }
    }
    m
}

/// One CloudWatch Embedded Metric Format line: namespace and dimensions from `[monitor]`,
/// one-minute storage resolution, the record's detail beside the metrics (logged, not
/// metrics).
pub fn emf(
    r: &Record,
    epoch_ms: u64,
    namespace: &str,
    dimensions: &BTreeMap<String, String>,
) -> String {
    let metrics = emf_metrics(r);
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": epoch_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.keys().collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(n, u, _)| json!({"Name": n, "Unit": u, "StorageResolution": 60})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        root.insert(k.clone(), Value::String(v.clone()));
    }
    for (n, _, v) in &metrics {
        root.insert((*n).into(), json!(v));
    }
    root.insert(
        "DropsByCause".into(),
        serde_json::to_value(&r.drops_by_cause).unwrap_or_default(),
    );
    root.insert(
        "LostByCause".into(),
        serde_json::to_value(&r.lost_by_cause).unwrap_or_default(),
    );
    root.insert(
        "SessionsPerTarget".into(),
        serde_json::to_value(&r.sessions_per_target).unwrap_or_default(),
    );
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests;
