//! The load probe's flags: `verify`'s (`--connections`, `--reconnect`, shards), `deploy`/`full
//! --under-load`'s, `monitor`'s and `report merge`'s. Split from `cli` by domain; re-exported
//! there, so every path stays `crate::cli::…`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::parse_duration;

/// How dropped sessions come back, and the thresholds on what that cost
/// (`verify --connections --reconnect`, `deploy`/`full --under-load`).
#[derive(Args, Debug, Clone, Default)]
pub struct ReconnectFlags {
    /// Reconnect delays, as socket.io-client's reconnectionDelay..reconnectionDelayMax
    /// (doubling, randomization 0.5) [default: 1s..5s]
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_delay_range)]
    pub reconnect_delay: Option<(std::time::Duration, std::time::Duration)>,
    /// Fail when more dropped sessions than this did not come back [default: 0]
    #[arg(long, value_name = "N")]
    pub max_lost: Option<u64>,
    /// Fail when more than this fraction of the sessions dropped (0.0-1.0)
    #[arg(long, value_name = "F")]
    pub max_drop_rate: Option<f64>,
    /// Fail when the reconnect time p99 (drop to the namespace answer) exceeds this, e.g. 5s
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_reconnect_p99: Option<std::time::Duration>,
    /// Whose reconnect rules dropped sessions follow [default: browser]
    #[arg(long, value_enum, value_name = "CLIENT")]
    pub reconnect_like: Option<ReconnectLike>,
}

/// `--reconnect-like`: which client's reconnect rules the probe's sessions follow.
#[derive(
    clap::ValueEnum,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectLike {
    /// socket.io-client's defaults: no reconnect after a namespace DISCONNECT ("io server
    /// disconnect"), give up on a CONNECT_ERROR; reconnect after anything else
    #[default]
    Browser,
    /// An app that calls connect() again whatever happened: reconnect after every drop and
    /// retry after a CONNECT_ERROR
    Always,
}

impl ReconnectFlags {
    /// The first flag given, for the message when it needs `--reconnect`.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.reconnect_delay.is_some(), "--reconnect-delay"),
            (self.max_lost.is_some(), "--max-lost"),
            (self.max_drop_rate.is_some(), "--max-drop-rate"),
            (self.max_reconnect_p99.is_some(), "--max-reconnect-p99"),
            (self.reconnect_like.is_some(), "--reconnect-like"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

/// `--under-load N` and its settings (`deploy`, `full`): N sessions held through the rollout,
/// reconnecting when dropped, and the disruption they saw.
#[derive(Args, Debug, Clone, Default)]
pub struct UnderLoadFlags {
    /// Hold N Socket.IO sessions through the rollout (reconnecting when dropped) and report
    /// the disruption the deploy caused
    #[arg(long, value_name = "N")]
    pub under_load: Option<u32>,
    /// With --under-load: handshakes in flight at once while opening [default: 256]
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,
    /// With --under-load: new sessions per second at most while opening
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// With --under-load: keep holding this long after the rollout succeeded [default: the
    /// target group's deregistration delay + 2 heartbeat intervals + 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub settle: Option<std::time::Duration>,
    /// With --under-load and --on-ecs: hold the N sessions in K Fargate tasks ([probe.ecs]),
    /// merged into one report [default: 1]
    #[arg(long = "shards", value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub load_shards: Option<u32>,
    /// With --under-load: the sessions are held by Fargate tasks of bosar-deploy's image
    /// ([probe.ecs]) instead of this process; they are stopped once the rollout settled
    #[arg(long = "on-ecs")]
    pub load_on_ecs: bool,
    #[command(flatten)]
    pub reconnect: ReconnectFlags,
}

impl UnderLoadFlags {
    /// A flag that only means something with `--under-load`, given without it.
    pub fn stray(&self) -> Option<&'static str> {
        if self.under_load.is_some() {
            return None;
        }
        [
            (self.concurrency.is_some(), "--concurrency"),
            (self.rate.is_some(), "--rate"),
            (self.settle.is_some(), "--settle"),
            (self.load_shards.is_some(), "--shards"),
            (self.load_on_ecs, "--on-ecs"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
        .or(self.reconnect.first_given())
    }
}

/// What `monitor` emits besides its lines.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// CloudWatch Embedded Metric Format: one JSON line per interval on stdout
    Emf,
}

#[derive(Args, Debug, Clone)]
pub struct MonitorArgs {
    /// Gateway base URL (overrides [gateway] url)
    #[arg(long)]
    pub url: Option<String>,
    /// Sessions held through the load balancer (1 to 1000)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub sessions: u32,
    /// One record per interval (1s to 1h)
    #[arg(long, default_value = "60s", value_parser = parse_monitor_interval)]
    pub interval: std::time::Duration,
    /// Stop after this long (else at SIGTERM or Ctrl-C), then exit 0 after the last record
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Print each record as CloudWatch Embedded Metric Format instead of a plain line
    /// (namespace and dimensions from [monitor] in deploy.toml)
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    /// Serve the numbers as OpenMetrics on http://ADDR/metrics, e.g. 127.0.0.1:9464
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<std::net::SocketAddr>,
    /// Reconnect delays, as socket.io-client's reconnectionDelay..reconnectionDelayMax
    /// [default: 1s..5s]
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_delay_range)]
    pub reconnect_delay: Option<(std::time::Duration, std::time::Duration)>,
    /// Send the gateway token over plain http:// to a host that is not loopback
    #[arg(long)]
    pub allow_insecure_token: bool,
}

/// `--interval`: 1s to 1h.
fn parse_monitor_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("\"{s}\" is out of range: 1s to 1h"));
    }
    Ok(d)
}

/// `bosar-deploy report …`
#[derive(Subcommand, Debug, Clone)]
pub enum ReportCommand {
    /// One report from the shards of one run, as if one machine had held all N: counts
    /// summed, percentiles from the merged histograms, thresholds applied to the total
    #[command(after_help = "Examples:
  bosar-deploy --output json report merge shard-*.json
  cat shard-*.json | bosar-deploy report merge - --junit merged.xml")]
    Merge(MergeArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct MergeArgs {
    /// The shards' JSON documents (`verify --output json … --shard I/K`); `-` reads one or
    /// more documents from stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// The JSON document of the deploy (or full) that ran while `--reconnect` shards held:
    /// count the disruption from its rollout's start and place every drop in its phase
    #[arg(long, value_name = "FILE")]
    pub deploy: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct VerifyArgs {
    /// Gateway base URL (overrides [gateway] url)
    #[arg(long)]
    pub url: Option<String>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Send the gateway token over plain http:// to a host that is not loopback (refused
    /// otherwise: anyone on the path could read it)
    #[arg(long)]
    pub allow_insecure_token: bool,
    /// Healthy targets to reach and check, each through its stickiness cookie (overrides the
    /// target group's count and [gateway] targets; 1-100)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100), conflicts_with = "connections")]
    pub targets: Option<u32>,
    /// Load probe: open this many sessions and hold them
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,
    /// Load probe: new sessions per second at most [default: no limit]
    #[arg(long, value_name = "R", requires = "connections")]
    pub rate: Option<f64>,
    /// Load probe: handshakes in flight at once [default: 256]
    #[arg(long, value_name = "C", requires = "connections")]
    pub concurrency: Option<u32>,
    /// Load probe: how long to hold the sessions once all are open [default: two heartbeat
    /// intervals, 5s to 10m]
    #[arg(long, value_parser = parse_duration, requires = "connections")]
    pub hold: Option<std::time::Duration>,
    /// Load probe: fail when more than this fraction of sessions failed, 0.0-1.0 [default: 0]
    #[arg(long, requires = "connections")]
    pub max_error_rate: Option<f64>,
    /// Load probe: fail when connect latency p99 exceeds this, e.g. 500ms
    #[arg(long, value_parser = parse_duration, requires = "connections")]
    pub max_p99: Option<std::time::Duration>,
    /// Load probe: a dropped session comes back as socket.io-client does by default, and the
    /// disruption is reported
    #[arg(long, requires = "connections")]
    pub reconnect: bool,
    #[command(flatten)]
    pub comeback: ReconnectFlags,
    /// Load probe: hold shard I of K of the N sessions (the first N mod K shards take one
    /// more); `report merge` joins the shards' JSON documents
    #[arg(long, value_name = "I/K", requires = "connections")]
    pub shard: Option<String>,
    /// Load probe: wait until this time (RFC 3339, like 2026-12-05T07:00:00Z) before opening,
    /// so shards started at different moments open together
    #[arg(long, value_name = "TIME", requires = "connections")]
    pub start_at: Option<String>,
    /// Load probe: hold until SIGTERM or Ctrl-C (at most --hold); that stop ends the hold as
    /// planned (exit 0 or 1 by the checks), not as an interrupt. For shards whose end is
    /// decided elsewhere: `deploy --under-load --on-ecs` stops its tasks once the rollout settled
    #[arg(long, requires = "connections")]
    pub until_stopped: bool,
    /// Load probe: the run id a shard's report carries [default: from --start-at, N and K]
    #[arg(long, value_name = "ID", requires = "shard")]
    pub run_id: Option<String>,
    /// Load probe: split the N sessions over K shards started elsewhere (with --on-ecs: K
    /// Fargate tasks, 1-1000), then merge their reports as `report merge` does
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000), requires_all = ["connections", "on_ecs"], conflicts_with = "shard")]
    pub shards: Option<u32>,
    /// Load probe: run the K shards as Fargate tasks of bosar-deploy's own image ([probe.ecs]),
    /// collect their reports from CloudWatch Logs and merge them
    #[arg(long, requires = "shards", conflicts_with = "html")]
    pub on_ecs: bool,
    /// With --reconnect: write the run's timeline here as one self-contained HTML page
    /// (sessions per target, drops and reconnects); the step summary gets it as a chart
    #[arg(long, value_name = "PATH", requires = "reconnect")]
    pub html: Option<PathBuf>,
}

/// Bounds of `--reconnect-delay`: a floor so a dead gateway is not hammered in a tight loop,
/// a ceiling well above any client's.
pub const RECONNECT_DELAY_RANGE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_millis(10),
    std::time::Duration::from_secs(600),
);

/// `--reconnect-delay MIN..MAX`: two durations, MIN at most MAX, both within
/// [`RECONNECT_DELAY_RANGE`].
fn parse_delay_range(s: &str) -> Result<(std::time::Duration, std::time::Duration), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("\"{s}\" is not MIN..MAX; write two durations, like 1s..5s"))?;
    let (min, max) = (crate::duration::parse(a)?, crate::duration::parse(b)?);
    let (lo, hi) = RECONNECT_DELAY_RANGE;
    if min > max {
        return Err(format!("\"{s}\": MIN is above MAX"));
    }
    if min < lo || max > hi {
        return Err(format!("\"{s}\" is out of range: each delay 10ms to 10m"));
    }
    Ok((min, max))
}
