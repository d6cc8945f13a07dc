//! `verify --connections N`: the load probe. Opens N Socket.IO sessions through the load
//! balancer, each as a separate browser would (its own connection, its own cookies), joins the
//! namespace with the token, acks every heartbeat, holds all of them for `--hold` once every
//! one is open, then closes them cleanly; reports the handshake rate, connect latency, the
//! sessions per target, heartbeat delivery and lateness, and the failures grouped by cause.
//!
//! # Transport: websocket from the first request
//!
//! Each session opens with `GET /socket.io/?EIO=4&transport=websocket` (no polling phase):
//! one TCP connection, one HTTP exchange (the `101`), then the Engine.IO open packet and the
//! namespace CONNECT on the same socket. Opening over polling and upgrading takes four or five
//! HTTP exchanges per session instead (handshake GET, CONNECT POST, the GET that carries the
//! answer, the long poll the upgrade ends, the upgrade with its probe) on a server that is the
//! bottleneck (one Node replica tops out near 1,300-1,400 handshakes/s on 2 cores), so it
//! would measure the client's protocol overhead rather than the gateway's capacity. Stickiness only matters on the polling path
//! (the single `verify` checks it with 20 round trips and a control without cookies); a
//! websocket session is pinned by its connection. The proxy's cookies are still exercised:
//! every handshake goes through the load balancer, whose `101` sets `AWSALB`; each session
//! keeps the cookie its handshake set (its own jar: it starts empty, as a new browser's does,
//! so the balancer places every session afresh), and the report checks that each cookie value
//! pins the target its sessions are on, by asking the health endpoint with that cookie.
//!
//! # Cost per session
//!
//! Measured, not guessed: the first version held 14 KiB of future per task and a 128 KiB read
//! buffer per socket. Now: one tokio task whose future is about 1.6 KiB (the handshake and the
//! close are boxed, so their state exists only while they run), one socket (boxed behind a
//! trait object, so a plain session does not carry a TLS stream's 1 KiB inline), a tungstenite
//! stream with a 2 KiB read buffer (its default is 128 KiB, eagerly allocated: 640 MB at 5,000
//! sessions) and no write buffering, and a few counters. The websocket upgrade is our own
//! ([`super::upgrade`]): tungstenite's holds about 8 KiB per handshake in flight. Everything
//! shared is built once: the resolved address, the upgrade request template, the TLS
//! configuration (tokio-tungstenite would load the root store for every connection), the
//! CONNECT frame with the token, the ack prefix. Live numbers are atomics read by the progress
//! ticker; the lateness histogram is bounded. Time is bounded in every phase and overall: see
//! [`stats::budget`].
//!
//! The pure parts are unit-tested where they live: the settings here, the verdicts in
//! `verdicts` (over the types of `report`), the open-file limit in `limits`; the arithmetic is
//! in [`super::stats`]. One session (and the state all sessions share) is in `session`; the
//! phases of a run, the progress ticker and the gathering of the records into the report are
//! in `drive`. Like `verify`, the probe imports only the gateway base (settings, limits,
//! helpers), never `verify`; `crate::verify_cmd` chooses between them.
//!
//! # Sessions that come back (`--reconnect`)
//!
//! A dropped session reconnects on socket.io-client's schedule (`backoff`, pure, tested on the
//! paused clock) with its own cookie jar (`reconnect`), and keeps a `timeline` of its drops:
//! per drop 36 bytes (times, causes as small enums, targets as indexes into the shared
//! table, failed attempts per cause), nothing for a session that never drops; the jar is the
//! one stickiness cookie, boxed. The loop that holds a reconnecting session is boxed too, so a
//! run without `--reconnect` keeps the size above. `disruption` turns the timelines into the
//! report (pure), `load` holds the settings and the hold a caller ends itself
//! (`deploy --under-load`, from `crate::under_load`, which knows the rollout; the probe never
//! does).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use url::Url;

use super::codec::SioPacket;
use super::stats::{self, Budget, Histogram};
use super::{fmt_duration, upgrade, ws, VerifySettings, BODY_LIMIT};
use crate::cli::VerifyArgs;
use crate::exit::{Code, Failure};
use crate::ui::Ui;

pub mod attribution;
mod backoff;
mod conclude;
pub mod disruption;
mod drive;
mod limits;
mod live;
mod load;
pub mod merge;
mod merge_disruption;
mod reconnect;
pub mod report;
mod session;
pub mod shard;
mod shared;
mod spawn;
mod tally;
mod timeline;
mod verdicts;

pub use backoff::Backoff;
pub use disruption::DisruptionReport;
pub use limits::{ensure_open_files, too_many_files, OpenFiles};
pub use live::{live_check, LiveDisruption, LiveLoad};
pub use load::{control, control_with, Control, Controls, Opened, ReconnectSettings};
pub use report::{
    CookieReport, CookieValue, FailureGroup, HeartbeatReport, Lateness, ProbeReport, TargetCount,
};
pub use timeline::{AttemptCause, DropCause};
pub use verdicts::checks;

pub use conclude::conclude;
use drive::{drive, ticker};
use shared::{tls_for, Counters, Interner, Phase, Shared, Tls};
use tally::build_report;

/// Handshakes in flight at once when `--concurrency` is not given.
pub const DEFAULT_CONCURRENCY: u32 = 256;
/// Largest `--connections`.
pub const MAX_CONNECTIONS: u32 = 1_000_000;
/// `--rate` range, new sessions per second.
pub const MIN_RATE: f64 = 0.01;
pub const MAX_RATE: f64 = 1_000_000.0;
/// Longest open phase `--connections` / `--rate` may ask for.
const MAX_OPEN_PHASE: Duration = Duration::from_secs(24 * 3600);
/// Bound of one session's open: TCP connect, `101`, open packet, namespace CONNECT.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one session's close handshake (DISCONNECT, close frame, the server's close).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer per websocket. Heartbeats and pings are under 200 bytes.
const READ_BUFFER: usize = 2 * 1024;
/// Distinct cookie values looked up on the health endpoint. ALB's values can differ per
/// response; the first ones are enough to check the mapping.
const COOKIE_VALUES_LIMIT: usize = 64;
/// Distinct instance ids kept.
const TARGETS_LIMIT: usize = 4096;
const USER_AGENT_VALUE: &str = concat!("bosar-deploy-probe/", env!("CARGO_PKG_VERSION"));

// ---------------------------------------------------------------------------------------------
// Settings

/// The probe's settings, from the command line and `[gateway]`.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub connections: u32,
    /// New sessions per second at most.
    pub rate: Option<f64>,
    /// Handshakes in flight at once.
    pub concurrency: u32,
    pub hold: Duration,
    /// Fraction of sessions allowed to fail (open, drop or close) before the probe fails.
    pub max_error_rate: f64,
    pub max_p99: Option<Duration>,
    pub heartbeat_interval: Duration,
    /// After the hold, how long a session waits for its next heartbeat (acked) before it
    /// leaves, so no heartbeat is in flight when it does.
    pub close_grace: Duration,
    /// `--reconnect`: dropped sessions come back; the disruption is reported.
    pub reconnect: Option<ReconnectSettings>,
    /// `--shard I/K`: this process holds its share of N (`connections` is the share).
    pub shard: Option<shard::ShardRun>,
    /// `--start-at`: open no session before then.
    pub start_at: Option<std::time::SystemTime>,
    /// `--until-stopped`: an interrupt during the hold is its planned end.
    pub until_stopped: bool,
}

/// The hold when `--hold` is not given: two heartbeat intervals, 5 s to 10 min, so the
/// delivery ratio means something.
pub fn default_hold(heartbeat_interval: Duration) -> Duration {
    (heartbeat_interval * 2).clamp(Duration::from_secs(5), Duration::from_secs(600))
}

/// One and a half heartbeat intervals, at most 3 s.
pub fn close_grace(heartbeat_interval: Duration) -> Duration {
    (heartbeat_interval + heartbeat_interval / 2).min(Duration::from_secs(3))
}

impl ProbeSettings {
    /// Validates the flags (usage errors, exit 2).
    pub fn from_args(args: &VerifyArgs, v: &VerifySettings) -> anyhow::Result<ProbeSettings> {
        let usage = |m: String, h: &str| -> anyhow::Error { Failure::usage(m).hint(h).into() };
        let (connections, shard) = shard::from_args(args)?;
        let start_at = match &args.start_at {
            Some(t) => Some(
                shard::parse_start_at(t)
                    .map_err(|m| usage(format!("--start-at: {m}"), "give a UTC time"))?,
            ),
            None => None,
        };
        let total = args.connections.unwrap_or(0);
        if total == 0 || total > MAX_CONNECTIONS {
            return Err(usage(
                format!("--connections {total} is out of range"),
                "give the number of sessions to open, 1 to 1000000",
            ));
        }
        if let Some(r) = args.rate {
            if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
                return Err(usage(
                    format!("--rate {r} is out of range"),
                    "give new sessions per second, 0.01 to 1000000, like --rate 200",
                ));
            }
            if connections as f64 / r > MAX_OPEN_PHASE.as_secs_f64() {
                return Err(usage(
                    format!(
                        "--connections {connections} at --rate {r} would take {} to open",
                        fmt_duration(Duration::from_secs_f64(connections as f64 / r))
                    ),
                    "open them within 24h: raise --rate or lower --connections",
                ));
            }
        }
        let concurrency = args
            .concurrency
            .unwrap_or(DEFAULT_CONCURRENCY)
            .min(connections);
        if concurrency == 0 {
            return Err(usage(
                "--concurrency 0: no handshake could start".into(),
                "give the number of handshakes in flight at once, like --concurrency 200",
            ));
        }
        let max_error_rate = args.max_error_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&max_error_rate) {
            return Err(usage(
                format!("--max-error-rate {max_error_rate} is not a fraction"),
                "give a fraction of sessions, 0.0 to 1.0, like 0.01 for 1%",
            ));
        }
        let hold = args
            .hold
            .unwrap_or_else(|| default_hold(v.heartbeat_interval));
        if hold > Duration::from_secs(24 * 3600) {
            return Err(usage(
                format!("--hold {} is too long", fmt_duration(hold)),
                "hold for at most 24h",
            ));
        }
        let reconnect = match (args.reconnect, args.comeback.first_given()) {
            (true, _) => Some(ReconnectSettings::from_flags(&args.comeback)?),
            (false, Some(flag)) => return Err(usage(
                format!("{flag} needs --reconnect"),
                "add --reconnect: dropped sessions then come back and the disruption is measured",
            )),
            (false, None) => None,
        };
        Ok(ProbeSettings {
            connections,
            rate: args.rate,
            concurrency,
            hold,
            max_error_rate,
            max_p99: args.max_p99,
            heartbeat_interval: v.heartbeat_interval,
            close_grace: close_grace(v.heartbeat_interval),
            reconnect,
            shard,
            start_at,
            until_stopped: args.until_stopped,
        })
    }

    /// The settings of `--under-load N`: sessions opened like `verify --connections N`, held
    /// until the caller ends the hold, reconnecting. The error gate is off (the disruption's
    /// thresholds gate instead).
    pub fn under_load(
        connections: u32,
        concurrency: Option<u32>,
        rate: Option<f64>,
        reconnect: ReconnectSettings,
        v: &VerifySettings,
    ) -> anyhow::Result<ProbeSettings> {
        let args = VerifyArgs {
            connections: Some(connections),
            concurrency,
            rate,
            max_error_rate: Some(1.0),
            ..VerifyArgs::default()
        };
        let mut ps = ProbeSettings::from_args(&args, v).map_err(|e| {
            let m = crate::exit::message_of(&e).replace("--connections", "--under-load");
            let hint = crate::exit::hint_of(&e).map(str::to_string);
            let mut f = Failure::usage(m);
            f.hint = hint;
            anyhow::Error::from(f)
        })?;
        ps.hold = Duration::ZERO;
        ps.reconnect = Some(reconnect);
        Ok(ps)
    }

    pub fn budget(&self) -> Budget {
        stats::budget(
            self.connections,
            self.rate,
            HANDSHAKE_TIMEOUT,
            self.hold,
            self.close_grace,
            CLOSE_TIMEOUT,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn resolve(base: &Url) -> anyhow::Result<Vec<SocketAddr>> {
    let host = base
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = base.port_or_known_default().unwrap_or(80);
    let found = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    match found {
        Ok(Ok(addrs)) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(Failure::failed(format!("{host} resolves to no address")).into())
            } else {
                Ok(v)
            }
        }
        Ok(Err(e)) => Err(Failure::failed(format!("cannot resolve {host}: {e}")).into()),
        Err(_) => {
            Err(Failure::failed(format!("cannot resolve {host}: no answer within 10 s")).into())
        }
    }
}

/// Runs the probe and returns its report. Fails (exit 1) only when it cannot start (the host
/// does not resolve, no TLS roots); everything after that is in the report.
pub async fn probe(
    v: &VerifySettings,
    ps: &ProbeSettings,
    ui: &Ui,
    open_files: Option<OpenFiles>,
) -> anyhow::Result<ProbeReport> {
    run_probe(v, ps, ui, open_files, None).await
}

/// The probe whose hold the caller ends through the [`Control`] paired with `controls`
/// (`deploy --under-load`). Its phases are bounded one by one (open, close); the hold is the
/// caller's to bound.
pub async fn probe_controlled(
    v: &VerifySettings,
    ps: &ProbeSettings,
    ui: &Ui,
    open_files: Option<OpenFiles>,
    controls: Controls,
) -> anyhow::Result<ProbeReport> {
    run_probe(v, ps, ui, open_files, Some(controls)).await
}

/// Where the sessions go: the resolved addresses, TLS, the websocket URL, and the health
/// endpoint with its client (the cookie lookups).
struct Endpoints {
    addrs: Vec<std::net::SocketAddr>,
    tls: Option<Tls>,
    ws_url: Url,
    health: (reqwest::Client, Url, Duration),
}

async fn endpoints(v: &VerifySettings) -> anyhow::Result<Endpoints> {
    let base = Url::parse(&v.url)
        .map_err(|e| Failure::usage(format!("gateway url \"{}\": {e}", v.shown_url())))?;
    let addrs = resolve(&base).await?;
    let tls = if base.scheme() == "https" {
        let host = base.host_str().unwrap_or_default().trim_matches(['[', ']']);
        Some(tls_for(host).map_err(|m| Failure::failed(format!("cannot set up TLS: {m}")))?)
    } else {
        None
    };
    let request_timeout = super::request_timeout(v);
    let polling = super::polling::Polling::new(&base, None, request_timeout)
        .map_err(|e| Failure::failed(e.to_string()))?;
    let ws_url = ws::ws_url(&polling, None);
    let health_url = polling
        .url(&v.health_path)
        .map_err(|e| Failure::failed(e.to_string()))?;
    let client = reqwest::Client::builder()
        .user_agent(USER_AGENT_VALUE)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(request_timeout)
        .build()
        .map_err(|e| Failure::failed(format!("cannot build the HTTP client: {e}")))?;
    Ok(Endpoints {
        addrs,
        tls,
        ws_url,
        health: (client, health_url, request_timeout),
    })
}

/// What every session of the run shares: where to go, the frames it sends (the namespace
/// CONNECT with the token, DISCONNECT), what it expects, and the counters and tables.
fn shared_state(
    v: &VerifySettings,
    ps: &ProbeSettings,
    addrs: Vec<std::net::SocketAddr>,
    tls: Option<Tls>,
    ws_url: &Url,
) -> Shared {
    let ns = v.namespace.as_str();
    let auth = v.token.as_ref().map(|t| json!({ "token": t.expose() }));
    let ack_prefix = if ns == "/" {
        "43".to_string()
    } else {
        format!("43{ns},")
    };
    Shared {
        start: Instant::now(),
        upgrade: upgrade::Template::new(ws_url, USER_AGENT_VALUE),
        addrs,
        tls,
        ws_config: WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(BODY_LIMIT))
            .max_frame_size(Some(BODY_LIMIT)),
        connect_frame: Utf8Bytes::from(SioPacket::connect(ns, auth.clone()).to_eio().encode()),
        auth,
        disconnect_frame: Utf8Bytes::from(SioPacket::disconnect(ns).to_eio().encode()),
        ack_prefix,
        namespace: ns.to_string(),
        heartbeat_event: v.heartbeat_event.clone(),
        heartbeat_interval: v.heartbeat_interval,
        counters: Counters::default(),
        targets: Interner::new(TARGETS_LIMIT),
        cookies: Interner::new(COOKIE_VALUES_LIMIT),
        cookie_name: OnceLock::new(),
        lateness: Mutex::new(Histogram::new()),
        back_ms: Mutex::new(Histogram::new()),
        reconnect: ps.reconnect.map(|r| r.backoff),
        reconnect_like: ps.reconnect.map(|r| r.like).unwrap_or_default(),
    }
}

async fn run_probe(
    v: &VerifySettings,
    ps: &ProbeSettings,
    ui: &Ui,
    open_files: Option<OpenFiles>,
    controls: Option<Controls>,
) -> anyhow::Result<ProbeReport> {
    let ep = endpoints(v).await?;
    let sh = Arc::new(shared_state(v, ps, ep.addrs, ep.tls, &ep.ws_url));
    if let Some(c) = &controls {
        c.live.attach(sh.clone());
    }
    let budget = ps.budget();
    let (phase_tx, phase_rx) = watch::channel(Phase::Opening);
    // With a caller's controls the hold is theirs to end: no overall deadline here.
    let total = match controls {
        None => budget.total,
        Some(_) => Duration::from_secs(u32::MAX as u64),
    };
    let drive = drive(sh.clone(), ps, budget, phase_tx, ep.health, ui, controls);
    let gathered = tokio::select! {
        g = tokio::time::timeout(total, drive) => g.map_err(|_| {
            Failure::failed(format!(
                "the probe ran past its deadline of {}",
                fmt_duration(budget.total)
            ))
        })?,
        never = ticker(ui, &sh, ps.connections, ps.hold, phase_rx) => match never {},
    };
    Ok(build_report(
        &sh,
        ps,
        &v.shown_url(),
        &v.namespace,
        &gathered,
        open_files,
        ui.is_interrupted() && !gathered.planned_stop,
    ))
}

/// `verify --connections N`: settings, the open-file limit, the probe, then text or JSON, and
/// last the reports (annotations, JUnit, the GitHub step summary). Exit 1 when a check fails
/// (the error gate, `--max-p99`); 130 when interrupted, after the sessions were closed and the
/// reports written. The report is given back for what the caller draws of it (`--html`).
pub async fn run(
    args: &VerifyArgs,
    v: &VerifySettings,
    ui: &Ui,
) -> anyhow::Result<(Code, ProbeReport)> {
    let ps = ProbeSettings::from_args(args, v)?;
    let open_files = ensure_open_files(ps.connections)?;
    // Before the wrap-up guard: an interrupt while waiting ends the run at once.
    shard::wait_to_start(&ps, ui).await;
    let _wrap_up = ui.wrap_up_on_interrupt();
    if ps.until_stopped {
        // The stop is the planned end: the sessions close as after a full hold.
        ui.need_wrap_up(ps.close_grace + CLOSE_TIMEOUT + Duration::from_secs(3));
    }
    ui.set_interrupt_note(
        "interrupted: the probe stopped early and closed its sessions; the report covers what ran",
        format!(
            "run it again with: {}",
            ui.command(&format!("verify --connections {}", ps.connections))
        ),
    );
    announce(ui, v, &ps, open_files);
    let report = probe(v, &ps, ui, open_files).await?;
    let shard_part = ps.shard.as_ref().map(|run| {
        let part = shard::ShardPart::of(
            &report,
            run.shard,
            &run.run_id,
            run.total,
            &report.samples,
            ps.hold,
        );
        ("shard", json!(part))
    });
    let code = conclude(
        ui,
        &report,
        "bosar-deploy verify --connections",
        args.junit.as_deref(),
        shard_part,
        Vec::new(),
    );
    Ok((code, report))
}

/// The open-file limit, if it was raised, and what is about to be probed.
fn announce(ui: &Ui, v: &VerifySettings, ps: &ProbeSettings, open_files: Option<OpenFiles>) {
    if let Some(OpenFiles {
        soft,
        raised_from: Some(from),
        ..
    }) = open_files
    {
        ui.detail(format!(
            "raised the open-file soft limit from {from} to {soft} for {} sessions",
            ps.connections
        ));
    }
    let budget = ps.budget();
    ui.line(format!(
        "Probing the gateway at {} with {} session(s): concurrency {}{}, hold {}, token {}; deadline {}",
        v.shown_url(),
        ps.connections,
        ps.concurrency,
        ps.rate.map(|r| format!(", at most {r}/s")).unwrap_or_default(),
        fmt_duration(ps.hold),
        if v.token.is_some() { "configured" } else { "none" },
        fmt_duration(budget.total),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_usage_errors() {
        assert_eq!(
            default_hold(Duration::from_secs(30)),
            Duration::from_secs(60)
        );
        assert_eq!(default_hold(Duration::from_secs(1)), Duration::from_secs(5));
        assert_eq!(
            close_grace(Duration::from_secs(1)),
            Duration::from_millis(1500)
        );
        assert_eq!(close_grace(Duration::from_secs(30)), Duration::from_secs(3));
        let v = VerifySettings {
            url: "http://127.0.0.1:1".into(),
            namespace: "/chat".into(),
            health_path: "/health/websocket".into(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            heartbeat_event: "heartbeat".into(),
            heartbeat_interval: Duration::from_secs(30),
            stickiness_rounds: 20,
            token: None,
            eio3: None,
            recovery: None,
            origins: Vec::new(),
        };
        let args = |f: &dyn Fn(&mut VerifyArgs)| {
            let mut a = VerifyArgs {
                connections: Some(10),
                ..Default::default()
            };
            f(&mut a);
            a
        };
        let ok = ProbeSettings::from_args(&args(&|_| {}), &v).unwrap();
        assert_eq!(ok.concurrency, 10);
        assert_eq!(ok.hold, Duration::from_secs(60));
        assert_eq!(ok.max_error_rate, 0.0);
        for bad in [
            args(&|a| a.connections = Some(0)),
            args(&|a| a.rate = Some(0.0)),
            args(&|a| a.rate = Some(f64::NAN)),
            args(&|a| a.rate = Some(1e-300)),
            args(&|a| a.rate = Some(f64::INFINITY)),
            args(&|a| a.rate = Some(1e7)),
            args(&|a| {
                a.connections = Some(1_000_000);
                a.rate = Some(0.01)
            }),
            args(&|a| a.concurrency = Some(0)),
            args(&|a| a.max_error_rate = Some(1.5)),
            args(&|a| a.hold = Some(Duration::from_secs(90_000))),
        ] {
            let e = ProbeSettings::from_args(&bad, &v).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage, "{e}");
        }
    }
}
