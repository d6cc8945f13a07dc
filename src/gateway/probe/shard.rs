//! `verify --connections N --shard I/K`: one of K processes (CI matrix jobs, machines) that
//! together hold N sessions. Each holds its share ([`share`]: the first `N mod K` shards take
//! one more, whatever K), opens at the common `--start-at`, and writes its usual JSON document
//! with a `shard` section ([`ShardPart`]) that carries what `report merge` needs: the run id,
//! the tool version, I/K, the settings the thresholds come from, the counts, the per-target
//! and failure tables, and mergeable histograms ([`LogHistogram`]) instead of percentiles.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::report::ProbeReport;
use crate::cli::VerifyArgs;
use crate::exit::Failure;
use crate::gateway::histogram::LogHistogram;

/// `I/K`: shard I (1-based) of K.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Most shards one run may have.
pub const MAX_SHARDS: u32 = 10_000;

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("\"{s}\" is not a shard: give I/K, like 2/4 (shard 2 of 4)");
        let (i, k) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = k.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("\"{s}\": K must be 1 to {MAX_SHARDS}"));
        }
        if index == 0 || index > count {
            return Err(format!("\"{s}\": I must be 1 to K ({count})"));
        }
        Ok(Shard { index, count })
    }
}

/// Sessions shard `s` holds of `n`: `n / K`, plus one for the first `n mod K` shards. The
/// shares of 1..=K add up to `n` exactly.
pub fn share(n: u32, s: Shard) -> u32 {
    n / s.count + u32::from(s.index - 1 < n % s.count)
}

/// The run id the shards agree on without being told one: start time, N and K.
pub fn derived_run_id(start_at: &str, n: u32, k: u32) -> String {
    format!("{start_at}/n{n}/k{k}")
}

/// Parses `--start-at` (RFC 3339, like 2026-12-05T07:00:00Z).
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(s))
        .map_err(|e| format!("\"{s}\" is not an RFC 3339 time ({e}): like 2026-12-05T07:00:00Z"))
}

/// This process's part of a sharded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRun {
    pub shard: Shard,
    pub run_id: String,
    /// N, all shards together.
    pub total: u32,
}

/// `--connections N [--shard I/K --run-id ID | --start-at T]`: the sessions this process
/// opens and its part of the run. Usage errors name the flag.
pub fn from_args(args: &VerifyArgs) -> anyhow::Result<(u32, Option<ShardRun>)> {
    let usage = |m: String, h: &str| -> anyhow::Error { Failure::usage(m).hint(h).into() };
    let n = args.connections.unwrap_or(0);
    let Some(text) = &args.shard else {
        return Ok((n, None));
    };
    let shard: Shard = text
        .parse()
        .map_err(|m| usage(format!("--shard {m}"), "like --shard 2/4"))?;
    let run_id = match (&args.run_id, &args.start_at) {
        (Some(id), _) if !id.trim().is_empty() && id.len() <= 200 => id.clone(),
        (Some(_), _) => {
            return Err(usage(
                "--run-id is empty or longer than 200 bytes".into(),
                "give the same short id to every shard, like --run-id \"$GITHUB_RUN_ID\"",
            ))
        }
        (None, Some(at)) => derived_run_id(at, n, shard.count),
        (None, None) => {
            return Err(usage(
                "--shard needs --run-id or --start-at: the merge must know which reports belong together".into(),
                "give every shard the same --start-at (or --run-id)",
            ))
        }
    };
    let mine = share(n, shard);
    if n > 0 && mine == 0 {
        return Err(usage(
            format!(
                "--shard {text}: {n} session(s) in {} shards leave this one none",
                shard.count
            ),
            "use at most as many shards as --connections",
        ));
    }
    Ok((
        mine,
        Some(ShardRun {
            shard,
            run_id,
            total: n,
        }),
    ))
}

/// How long to wait from `now` until `at` (zero when it has passed).
pub fn wait_for(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// Waits for `--start-at`, saying so; nothing when it is not given or has passed.
pub async fn wait_to_start(ps: &super::ProbeSettings, ui: &crate::ui::Ui) {
    if let Some(run) = &ps.shard {
        ui.line(format!(
            "shard {}/{} of run {}: {} of {} session(s)",
            run.shard.index, run.shard.count, run.run_id, ps.connections, run.total
        ));
    }
    let Some(at) = ps.start_at else { return };
    let wait = wait_for(at, SystemTime::now());
    if !wait.is_zero() {
        ui.line(format!(
            "waiting {} until --start-at {}",
            crate::gateway::fmt_duration(wait),
            humantime::format_rfc3339_seconds(at)
        ));
        tokio::time::sleep(wait).await;
    }
}

/// The settings a merged verdict is judged by: every shard must carry the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSettings {
    pub url: String,
    pub namespace: String,
    pub concurrency: u32,
    pub rate_limit: Option<f64>,
    pub hold_ms: u64,
    pub max_error_rate: f64,
    pub max_p99_ms: Option<u64>,
    pub heartbeat_interval_ms: u64,
    pub slack_ms: u64,
}

/// What one shard counted. Every field adds up across shards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCounts {
    /// This shard's share of N.
    pub connections: u64,
    pub opened: u64,
    pub open_failed: u64,
    pub dropped: u64,
    pub closed: u64,
    pub close_failed: u64,
    pub unknown_target: u64,
    pub cookie_set: u64,
    pub heartbeats_received: u64,
    pub heartbeats_acked: u64,
    pub received_in_hold: u64,
    pub due_in_hold: u64,
}

/// The `shard` section of a shard's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardPart {
    pub run_id: String,
    pub version: String,
    pub shard: Shard,
    /// N, all shards together.
    pub total_connections: u32,
    pub interrupted: bool,
    pub settings: ShardSettings,
    pub counts: ShardCounts,
    /// From the start (after `--start-at`) to the last session opened, and to the end.
    pub open_phase_ms: u64,
    pub duration_ms: u64,
    /// How long it held once open (less than `--hold` when `--until-stopped` ended it; 0: not
    /// said, an older shard).
    #[serde(default)]
    pub held_ms: u64,
    /// Every cookie value pinned its sessions' target (`None`: nothing compared).
    pub cookies_consistent: Option<bool>,
    /// Connect latency, microseconds.
    pub connect_us: LogHistogram,
    /// Heartbeat lateness, milliseconds (from the probe's lateness histogram: exact below
    /// 1 s, then 10/100 ms buckets, each counted at its upper bound).
    pub lateness_ms: LogHistogram,
    /// `(instance, sessions)`.
    pub targets: Vec<(String, u64)>,
    /// `(instance, sessions that failed to open there)`.
    #[serde(default)]
    pub open_failed_by_target: Vec<(String, u64)>,
    /// `(phase, cause, count)`.
    pub failures: Vec<(String, String, u64)>,
    /// With `--reconnect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<DisruptionPart>,
}

/// What `--reconnect` counted, in a form that adds up across shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisruptionPart {
    pub opened: u64,
    pub dropped_sessions: u64,
    pub drop_events: u64,
    /// `(cause, count)`, causes as JSON keys.
    pub dropped_by_cause: Vec<(String, u64)>,
    pub reconnected: u64,
    pub lost: u64,
    /// Reconnects that resumed their session, and whether the gateway offered recovery.
    #[serde(default)]
    pub recovered: u64,
    #[serde(default)]
    pub recovery_offered: bool,
    /// `(cause, count)` of the lost sessions (still trying, told to leave, refused).
    #[serde(default)]
    pub lost_by_cause: Vec<(String, u64)>,
    /// Whose reconnect rules the shard's sessions followed (`--reconnect-like`).
    #[serde(default)]
    pub reconnect_like: crate::cli::ReconnectLike,
    pub moved: u64,
    /// The from→to table: `(from, to, sessions)`.
    pub moves: Vec<(String, String, u64)>,
    pub attempts_made: u64,
    pub attempts_failed: u64,
    pub attempts_failed_by_cause: Vec<(String, u64)>,
    pub longest_heartbeat_gap_ms: Option<u64>,
    pub dropped_before_window: u64,
    pub limits: super::disruption::Limits,
    /// Reconnect times, ms.
    pub back_ms: LogHistogram,
    /// The probe's start on the wall clock (ms since the Unix epoch; 0: not known).
    #[serde(default)]
    pub started_unix_ms: i64,
    /// The drops by wall-clock second (`report merge --deploy` counts them from a rollout's
    /// start).
    #[serde(default)]
    pub seconds: Vec<super::disruption::seconds::DropSecond>,
}

impl DisruptionPart {
    pub fn of(d: &super::DisruptionReport) -> DisruptionPart {
        let causes = |c: &[super::disruption::CauseCount]| {
            c.iter().map(|c| (c.cause.clone(), c.count)).collect()
        };
        DisruptionPart {
            opened: d.opened,
            dropped_sessions: d.dropped.sessions,
            drop_events: d.dropped.events,
            dropped_by_cause: causes(&d.dropped.by_cause),
            reconnected: d.reconnected,
            lost: d.lost,
            recovered: d.recovered,
            recovery_offered: d.recovery_offered,
            lost_by_cause: causes(&d.lost_by_cause),
            reconnect_like: d.reconnect_like,
            moved: d.moved,
            moves: d
                .moves
                .iter()
                .map(|m| (m.from.to_string(), m.to.to_string(), m.sessions))
                .collect(),
            attempts_made: d.attempts.made,
            attempts_failed: d.attempts.failed,
            attempts_failed_by_cause: causes(&d.attempts.failed_by_cause),
            longest_heartbeat_gap_ms: d.longest_heartbeat_gap_ms,
            dropped_before_window: d.dropped_before_window,
            limits: d.limits,
            back_ms: d.back_ms.clone(),
            started_unix_ms: d.series.as_ref().map_or(0, |s| s.started_unix_ms),
            seconds: d.seconds.clone(),
        }
    }
}

impl ShardPart {
    /// `hold` is the hold asked for (`--hold`), which every shard of a run shares; the report
    /// says what was held (less, when `--until-stopped` ended it).
    pub fn of(
        r: &ProbeReport,
        shard: Shard,
        run_id: &str,
        total_connections: u32,
        samples: &super::report::Samples,
        hold: std::time::Duration,
    ) -> ShardPart {
        let hb = &r.heartbeats;
        ShardPart {
            run_id: run_id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            shard,
            total_connections,
            interrupted: r.interrupted,
            settings: ShardSettings {
                url: r.url.clone(),
                namespace: r.namespace.clone(),
                concurrency: r.concurrency,
                rate_limit: r.rate_limit,
                hold_ms: hold.as_millis() as u64,
                max_error_rate: r.max_error_rate,
                max_p99_ms: r.max_p99_ms,
                heartbeat_interval_ms: hb.interval_ms,
                slack_ms: hb.lateness.slack_ms,
            },
            counts: ShardCounts {
                connections: r.connections as u64,
                opened: r.opened,
                open_failed: r.open_failed,
                dropped: r.dropped,
                closed: r.closed,
                close_failed: r.close_failed,
                unknown_target: r.unknown_target,
                cookie_set: r.cookies.set,
                heartbeats_received: hb.received,
                heartbeats_acked: hb.acked,
                received_in_hold: hb.received_in_hold,
                due_in_hold: hb.expected_in_hold.round() as u64,
            },
            open_phase_ms: r.open_phase_ms,
            duration_ms: r.duration_ms,
            held_ms: r.hold_ms,
            cookies_consistent: r.cookies.consistent,
            connect_us: samples.connect_us.clone(),
            lateness_ms: samples.lateness_ms.clone(),
            targets: r
                .targets
                .iter()
                .map(|t| (t.instance.to_string(), t.sessions))
                .collect(),
            open_failed_by_target: r
                .open_failed_by_target
                .iter()
                .map(|t| (t.instance.to_string(), t.sessions))
                .collect(),
            failures: r
                .failures
                .iter()
                .map(|f| (f.phase.clone(), f.cause.clone(), f.count))
                .collect(),
            disruption: r.disruption.as_ref().map(DisruptionPart::of),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_shards_and_times() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/4", "2", "1/20000", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let t = parse_start_at("2026-12-05T07:00:00Z").unwrap();
        assert_eq!(wait_for(t, t + Duration::from_secs(5)), Duration::ZERO);
        assert_eq!(
            wait_for(t + Duration::from_secs(3), t),
            Duration::from_secs(3)
        );
        assert!(parse_start_at("tomorrow").is_err());
    }

    #[test]
    fn first_remainder_shards_take_one_more() {
        let shares: Vec<u32> = (1..=4)
            .map(|i| share(10, Shard { index: i, count: 4 }))
            .collect();
        assert_eq!(shares, [3, 3, 2, 2]);
        assert_eq!(share(3, Shard { index: 4, count: 4 }), 0);
    }

    proptest! {
        /// The shares of any K add up to N and differ by at most one.
        #[test]
        fn shares_add_up(n in 0u32..1_000_000, k in 1u32..200) {
            let shares: Vec<u32> = (1..=k).map(|i| share(n, Shard { index: i, count: k })).collect();
            prop_assert_eq!(shares.iter().map(|&s| s as u64).sum::<u64>(), n as u64);
            prop_assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
    }
}
