//! The probe's report: what was measured (sessions, connect latency, targets, cookies,
//! heartbeats, failures by cause). Printed as is with `--output json`; its verdicts are in
//! `verdicts`.

use serde::Serialize;

use super::disruption::DisruptionReport;
use super::OpenFiles;
use crate::gateway::stats::Summary;
use crate::outside::Outside;

#[derive(Debug, Clone, Serialize)]
pub struct TargetCount {
    /// As the heartbeats (or the health endpoint) named it.
    pub instance: Outside,
    pub sessions: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CookieValue {
    /// `#1`, `#2`: values are not printed.
    pub value: String,
    pub sessions: u64,
    /// The instance the health endpoint names when asked with this cookie.
    pub health_instance: Option<Outside>,
    /// The instances the heartbeats of this cookie's sessions named.
    pub heartbeat_instances: Vec<Outside>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CookieReport {
    pub name: Option<Outside>,
    /// Sessions whose handshake response set the stickiness cookie.
    pub set: u64,
    pub distinct_values: usize,
    pub values: Vec<CookieValue>,
    /// Every looked-up value pins the target its sessions are on (`None`: nothing to compare).
    pub consistent: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lateness {
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// Heartbeats later than the slack (a fifth of the interval, 1-5 s).
    pub late: u64,
    pub slack_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatReport {
    pub interval_ms: u64,
    /// All heartbeats received (and acked when they asked for it), also outside the hold.
    pub received: u64,
    pub acked: u64,
    pub received_in_hold: u64,
    /// Due during the hold: one per interval from each session's connect, while it was open.
    pub expected_in_hold: f64,
    pub delivery_ratio: Option<f64>,
    pub lateness: Lateness,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    /// `open`, `hold` or `close`.
    pub phase: String,
    pub cause: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// Without user info.
    pub url: String,
    /// Ctrl-C or SIGTERM stopped the probe early; the numbers cover what ran.
    pub interrupted: bool,
    pub namespace: String,
    pub transport: &'static str,
    pub connections: u32,
    pub concurrency: u32,
    pub rate_limit: Option<f64>,
    pub hold_ms: u64,
    pub max_error_rate: f64,
    pub max_p99_ms: Option<u64>,
    pub open_files: Option<OpenFiles>,
    pub duration_ms: u64,
    pub opened: u64,
    pub open_failed: u64,
    /// Sessions lost once open.
    pub dropped: u64,
    pub closed: u64,
    pub close_failed: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// From the start to the last session opened.
    pub open_phase_ms: u64,
    /// Sessions opened per second over the open phase (as the Node reference client counts:
    /// connects / time of the last connect).
    pub handshakes_per_s: Option<f64>,
    /// From the TCP connect to the namespace CONNECT answer.
    pub connect: Option<Summary>,
    pub targets: Vec<TargetCount>,
    /// Sessions that failed to open, per target (`sessions` counts the failures): named by
    /// the stickiness cookie the handshake set, looked up on the health endpoint. Which
    /// targets refused users; failures before the handshake, or without a cookie, are in
    /// no row.
    pub open_failed_by_target: Vec<TargetCount>,
    /// Open sessions whose target is unknown (no heartbeat, no cookie to look up).
    pub unknown_target: u64,
    pub cookies: CookieReport,
    pub heartbeats: HeartbeatReport,
    pub failures: Vec<FailureGroup>,
    /// With `--reconnect`: the drops, the reconnects, where the sessions went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionReport>,
    /// The samples behind the percentiles, mergeable (a shard report carries them).
    #[serde(skip)]
    pub samples: Samples,
}

/// Connect latency (µs) and heartbeat lateness (ms) as mergeable histograms.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub connect_us: crate::gateway::histogram::LogHistogram,
    pub lateness_ms: crate::gateway::histogram::LogHistogram,
}
