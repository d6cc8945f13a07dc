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
//! The pure parts (settings, verdicts) are here with unit tests; the arithmetic is in
//! [`super::stats`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::http::header::COOKIE;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use url::Url;

use super::checks::instance_of;
use super::codec::{Handshake, SioKind, SioPacket};
use super::stats::{self, Budget, FdPlan, Histogram, Summary};
use super::verify::VerifySettings;
use super::{error_chain, fmt_duration, snippet, upgrade, ws, Error, BODY_LIMIT};
use crate::cli::VerifyArgs;
use crate::exit::{Code, Failure};
use crate::report::{Check, CheckStatus, Step};
use crate::ui::Ui;

/// Handshakes in flight at once when `--concurrency` is not given.
pub const DEFAULT_CONCURRENCY: u32 = 256;
/// Largest `--connections`.
pub const MAX_CONNECTIONS: u32 = 1_000_000;
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
const NONE: u16 = u16::MAX;
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
        let connections = args.connections.unwrap_or(0);
        if connections == 0 || connections > MAX_CONNECTIONS {
            return Err(usage(
                format!("--connections {connections} is out of range"),
                "give the number of sessions to open, 1 to 1000000",
            ));
        }
        if let Some(r) = args.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(usage(
                    format!("--rate {r} is not a positive number"),
                    "give new sessions per second, like --rate 200",
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
        Ok(ProbeSettings {
            connections,
            rate: args.rate,
            concurrency,
            hold,
            max_error_rate,
            max_p99: args.max_p99,
            heartbeat_interval: v.heartbeat_interval,
            close_grace: close_grace(v.heartbeat_interval),
        })
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
// The open-file limit

/// What was found and done about the open-file limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
    pub needed: u64,
    /// The soft limit was raised (to `needed`) for this process.
    pub raised_from: Option<u64>,
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
fn nofile_limit() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    Some((r.rlim_cur as u64, r.rlim_max as u64))
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn raise_nofile(soft: u64, hard: u64) -> bool {
    let r = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we own.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 }
}

#[cfg(not(unix))]
fn nofile_limit() -> Option<(u64, u64)> {
    None
}

#[cfg(not(unix))]
fn raise_nofile(_: u64, _: u64) -> bool {
    false
}

/// The usage error for a limit too low, saying how to raise it.
pub fn too_many_files(connections: u32, plan: FdPlan) -> Option<Failure> {
    let FdPlan::TooMany {
        needed,
        soft,
        hard,
        max_connections,
    } = plan
    else {
        return None;
    };
    Some(
        Failure::usage(format!(
            "--connections {connections} needs about {needed} open files (one socket per session \
             plus {} for the process), but the open-file limit is {soft} (hard limit {hard})",
            stats::FD_RESERVE
        ))
        .hint(format!(
            "raise the limit in the shell that runs the probe: `ulimit -n {needed}`; above the \
             hard limit that needs root (`prlimit --pid $$ --nofile={needed}:{needed}`, nofile in \
             /etc/security/limits.conf, LimitNOFILE= in a systemd unit, --ulimit nofile= for a \
             container), or lower --connections to at most {max_connections}"
        )),
    )
}

/// Reads the open-file limit; raises the soft limit when the hard one allows; fails with a
/// usage error (exit 2) when `connections` cannot fit.
pub fn ensure_open_files(connections: u32) -> anyhow::Result<Option<OpenFiles>> {
    let Some((soft, hard)) = nofile_limit() else {
        return Ok(None);
    };
    let plan = stats::fd_plan(connections as u64, soft, hard);
    if let Some(f) = too_many_files(connections, plan) {
        return Err(f.into());
    }
    Ok(Some(match plan {
        FdPlan::Raise { needed, to } => {
            if !raise_nofile(to, hard) {
                return Err(Failure::usage(format!(
                    "--connections {connections} needs about {needed} open files and the limit \
                     is {soft}; raising it to {to} (hard limit {hard}) was refused"
                ))
                .hint(format!("run `ulimit -n {needed}` first"))
                .into());
            }
            OpenFiles {
                soft: to,
                hard,
                needed,
                raised_from: Some(soft),
            }
        }
        FdPlan::Fits { needed } | FdPlan::TooMany { needed, .. } => OpenFiles {
            soft,
            hard,
            needed,
            raised_from: None,
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Shared state of a run

/// The socket under a session's websocket: plain TCP or TLS over it, boxed, so a plain session
/// does not carry the size of a TLS stream (about 1 KiB) inline.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = WebSocketStream<Box<dyn Io>>;

/// TLS for `https` gateways: one client configuration for every session.
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Opening,
    Holding {
        start: Instant,
        end: Instant,
    },
    /// Leave after the next heartbeat ack, or at `until`.
    Closing {
        until: Instant,
    },
}

/// Live numbers, read by the progress ticker.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    opened: AtomicU64,
    open_failed: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
    close_failed: AtomicU64,
    heartbeats: AtomicU64,
    acks: AtomicU64,
    /// Microseconds from the start to the last session opened.
    last_open_us: AtomicU64,
}

impl Counters {
    fn errors(&self) -> u64 {
        self.open_failed.load(Relaxed)
            + self.dropped.load(Relaxed)
            + self.close_failed.load(Relaxed)
    }
}

/// A small table of distinct strings, indexed by `u16`.
#[derive(Debug)]
struct Interner {
    values: Mutex<Vec<String>>,
    limit: usize,
}

impl Interner {
    fn new(limit: usize) -> Interner {
        Interner {
            values: Mutex::new(Vec::new()),
            limit,
        }
    }
    fn intern(&self, s: &str) -> u16 {
        let Ok(mut v) = self.values.lock() else {
            return NONE;
        };
        if let Some(i) = v.iter().position(|x| x == s) {
            return i as u16;
        }
        if v.len() >= self.limit {
            return NONE;
        }
        v.push(s.to_string());
        (v.len() - 1) as u16
    }
    fn all(&self) -> Vec<String> {
        self.values.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The stickiness cookie a handshake set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CookieSeen {
    None,
    /// Index in the cookie table.
    Value(u16),
    /// Set, but past the table's limit.
    Unlisted,
}

struct Shared {
    start: Instant,
    upgrade: upgrade::Template,
    addrs: Vec<SocketAddr>,
    tls: Option<Tls>,
    ws_config: WebSocketConfig,
    connect_frame: Utf8Bytes,
    disconnect_frame: Utf8Bytes,
    ack_prefix: String,
    namespace: String,
    heartbeat_event: String,
    heartbeat_interval: Duration,
    counters: Counters,
    targets: Interner,
    cookies: Interner,
    cookie_name: OnceLock<String>,
    lateness: Mutex<Histogram>,
}

/// The stickiness cookie among `Set-Cookie` values: `AWSALB` (lb_cookie), `AWSALBTG`, or an
/// application cookie's `AWSALBAPP-*`; the `*CORS` twins carry the same value.
fn stickiness_cookie<'a>(set_cookies: impl Iterator<Item = &'a str>) -> Option<(&'a str, &'a str)> {
    let mut best: Option<(u8, &str, &str)> = None;
    for sc in set_cookies {
        let pair = sc.split(';').next().unwrap_or("");
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let rank = match name {
            "AWSALB" => 0,
            "AWSALBTG" => 1,
            n if n.starts_with("AWSALBAPP") => 2,
            _ => continue,
        };
        if best.is_none_or(|(r, _, _)| rank < r) {
            best = Some((rank, name, value));
        }
    }
    best.map(|(_, n, v)| (n, v))
}

impl Shared {
    fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    fn cookie_of(&self, set_cookies: &[&str]) -> CookieSeen {
        match stickiness_cookie(set_cookies.iter().copied()) {
            None => CookieSeen::None,
            Some((name, value)) => {
                let _ = self.cookie_name.set(name.to_string());
                match self.cookies.intern(value) {
                    NONE => CookieSeen::Unlisted,
                    i => CookieSeen::Value(i),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One session

/// How a session ended.
#[derive(Debug, Clone)]
enum Outcome {
    /// Left cleanly after the hold.
    Closed,
    OpenFailed(String),
    /// Lost while open (before or during the hold).
    Dropped(String),
    /// Held to the end, but the close handshake failed.
    CloseFailed(String),
}

/// What a session leaves behind: a few numbers, and a cause only on failure.
#[derive(Debug, Clone)]
struct Record {
    connect_us: Option<u32>,
    /// Offsets from the start of the probe.
    opened_at: Duration,
    gone_at: Duration,
    target: u16,
    cookie: CookieSeen,
    hb_in_hold: u32,
    outcome: Outcome,
}

/// Per-session state while open.
struct Live {
    opened: Instant,
    last_hb: Instant,
    window: Option<(Instant, Instant)>,
    hb_in_hold: u32,
    target: u16,
}

fn closed_cause(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) => format!(
            "closed by the server: close frame {} {}",
            u16::from(f.code),
            snippet(f.reason.as_bytes(), 80)
        )
        .trim()
        .to_string(),
        None => "closed by the server: close frame".into(),
    }
}

/// The next text message (binary and control frames are skipped; tungstenite answers pings).
async fn next_text(ws: &mut Stream) -> Result<Utf8Bytes, String> {
    loop {
        match ws.next().await {
            None => return Err(Error::Closed("connection ended".into()).to_string()),
            Some(Err(e)) => return Err(ws::map_io_error(e).to_string()),
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(f))) => return Err(closed_cause(f)),
            Some(Ok(_)) => continue,
        }
    }
}

async fn send(ws: &mut Stream, text: Utf8Bytes) -> Result<(), String> {
    ws.send(Message::Text(text))
        .await
        .map_err(|e| ws::map_io_error(e).to_string())
}

/// The Engine.IO pong for a ping's text (`2` or `2probe`).
fn pong(ping: &str) -> Utf8Bytes {
    if ping.len() == 1 {
        Utf8Bytes::from_static("3")
    } else {
        Utf8Bytes::from(format!("3{}", &ping[1..]))
    }
}

/// The CONNECT_ERROR as a cause: `/chat refused the CONNECT: unauthorized (bad signature)`.
fn refusal(namespace: &str, p: &SioPacket) -> String {
    let message = p.error_message().unwrap_or_else(|| "(no message)".into());
    let reason = p
        .data
        .as_ref()
        .and_then(|d| d.get("data"))
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        .map(|r| format!(" ({})", snippet(r.as_bytes(), 60)))
        .unwrap_or_default();
    format!(
        "{namespace} refused the CONNECT: {}{reason}",
        snippet(message.as_bytes(), 80)
    )
}

/// TCP connect, websocket handshake through the load balancer, Engine.IO open, namespace
/// CONNECT with the token.
async fn open(sh: &Shared, i: usize) -> Result<(Stream, CookieSeen), String> {
    let addr = sh.addrs[i % sh.addrs.len()];
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::Connect(e.to_string()).to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut io: Box<dyn Io> = match &sh.tls {
        None => Box::new(tcp),
        Some(tls) => Box::new(
            tls.connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| Error::Connect(format!("TLS: {}", error_chain(&e))).to_string())?,
        ),
    };
    let (cookie, rest) = upgrade::handshake(&mut io, &sh.upgrade, |set| sh.cookie_of(set))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    let mut ws =
        WebSocketStream::from_partially_read(io, rest, Role::Client, Some(sh.ws_config)).await;

    let first = next_text(&mut ws).await?;
    match first.strip_prefix('0') {
        Some(json) => {
            Handshake::parse(json).map_err(|e| e.to_string())?;
        }
        None => {
            return Err(format!(
                "the first websocket message is not an Engine.IO open packet: {:?}",
                snippet(first.as_bytes(), 40)
            ))
        }
    }
    send(&mut ws, sh.connect_frame.clone()).await?;
    loop {
        let text = next_text(&mut ws).await?;
        match text.as_bytes().first() {
            Some(b'2') => send(&mut ws, pong(&text)).await?,
            Some(b'1') => return Err("closed by the server: Engine.IO close packet".into()),
            Some(b'4') => {
                let p = SioPacket::decode(&text[1..]).map_err(|e| e.to_string())?;
                if p.namespace != sh.namespace {
                    continue;
                }
                match p.kind {
                    SioKind::Connect => return Ok((ws, cookie)),
                    SioKind::ConnectError => return Err(refusal(&sh.namespace, &p)),
                    SioKind::Disconnect => {
                        return Err(format!(
                            "the server answered CONNECT {} with DISCONNECT",
                            sh.namespace
                        ))
                    }
                    _ => continue,
                }
            }
            _ => continue,
        }
    }
}

/// Handles one incoming message of an open session: pong pings, ack and count heartbeats.
/// `Ok(true)` when a heartbeat was received (and acked when it asked for an ack).
async fn handle(
    sh: &Shared,
    ws: &mut Stream,
    live: &mut Live,
    msg: Option<Result<Message, tungstenite::Error>>,
) -> Result<bool, String> {
    let text = match msg {
        None => return Err(Error::Closed("connection ended".into()).to_string()),
        Some(Err(e)) => return Err(ws::map_io_error(e).to_string()),
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Close(f))) => return Err(closed_cause(f)),
        Some(Ok(_)) => return Ok(false),
    };
    match text.as_bytes().first() {
        Some(b'2') => {
            send(ws, pong(&text)).await?;
            Ok(false)
        }
        Some(b'1') => Err("closed by the server: Engine.IO close packet".into()),
        Some(b'4') => {
            let p = SioPacket::decode(&text[1..])
                .map_err(|e| format!("undecodable packet from the server: {e}"))?;
            if p.namespace != sh.namespace {
                return Ok(false);
            }
            match p.kind {
                SioKind::Disconnect => Err(format!("the server disconnected {}", sh.namespace)),
                SioKind::Event if p.event_name() == Some(sh.heartbeat_event.as_str()) => {
                    let now = Instant::now();
                    let late = now.saturating_duration_since(live.last_hb + sh.heartbeat_interval);
                    live.last_hb = now;
                    if let Ok(mut h) = sh.lateness.lock() {
                        h.record(late.as_millis() as u64);
                    }
                    if let Some((start, end)) = live.window {
                        // Counted by when it was due, as the expected number is.
                        let slot = stats::heartbeat_slot(
                            now.saturating_duration_since(live.opened),
                            sh.heartbeat_interval,
                        );
                        let due = live.opened + sh.heartbeat_interval * slot;
                        if due >= start && due < end {
                            live.hb_in_hold += 1;
                        }
                    }
                    if live.target == NONE {
                        if let Some(id) = p.event_args().first().and_then(instance_of) {
                            live.target = sh.targets.intern(&id);
                        }
                    }
                    sh.counters.heartbeats.fetch_add(1, Relaxed);
                    if let Some(id) = p.id {
                        let ack = Utf8Bytes::from(format!("{}{id}[]", sh.ack_prefix));
                        send(ws, ack)
                            .await
                            .map_err(|e| format!("acking a heartbeat: {e}"))?;
                        sh.counters.acks.fetch_add(1, Relaxed);
                    }
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        _ => Ok(false),
    }
}

/// The clean close: leave the namespace, close the websocket, wait for the server's close.
async fn close(ws: &mut Stream, disconnect: Utf8Bytes) -> Result<(), String> {
    send(ws, disconnect).await?;
    match ws.close(None).await {
        Ok(()) => {}
        Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            return Ok(())
        }
        Err(e) => return Err(ws::map_io_error(e).to_string()),
    }
    loop {
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Ok(_)) => continue,
            Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                return Ok(())
            }
            Some(Err(e)) => return Err(ws::map_io_error(e).to_string()),
        }
    }
}

async fn session(
    i: usize,
    permit: OwnedSemaphorePermit,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> Record {
    let t0 = Instant::now();
    // Boxed: the handshake's state (about 1.5 KiB) lives on the heap only while it runs, not
    // in every session's task for its whole life.
    let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, Box::pin(open(&sh, i))).await;
    drop(permit);
    let mut rec = Record {
        connect_us: None,
        opened_at: sh.since_start(t0),
        gone_at: sh.since_start(t0),
        target: NONE,
        cookie: CookieSeen::None,
        hb_in_hold: 0,
        outcome: Outcome::Closed,
    };
    let (mut ws, cookie) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(cause)) => {
            sh.counters.open_failed.fetch_add(1, Relaxed);
            rec.outcome = Outcome::OpenFailed(cause);
            return rec;
        }
        Err(_) => {
            sh.counters.open_failed.fetch_add(1, Relaxed);
            rec.outcome = Outcome::OpenFailed(format!(
                "no CONNECT answer within {}",
                fmt_duration(HANDSHAKE_TIMEOUT)
            ));
            return rec;
        }
    };
    let now = Instant::now();
    rec.connect_us = Some(now.duration_since(t0).as_micros().min(u32::MAX as u128) as u32);
    rec.opened_at = sh.since_start(now);
    rec.cookie = cookie;
    sh.counters.opened.fetch_add(1, Relaxed);
    sh.counters
        .last_open_us
        .fetch_max(sh.since_start(now).as_micros() as u64, Relaxed);

    let mut live = Live {
        opened: now,
        last_hb: now,
        window: None,
        hb_in_hold: 0,
        target: NONE,
    };
    let outcome = run_open(&sh, &mut ws, &mut live, &mut phase).await;
    rec.target = live.target;
    rec.hb_in_hold = live.hb_in_hold;
    rec.gone_at = sh.since_start(Instant::now());
    if let Err(cause) = outcome {
        sh.counters.dropped.fetch_add(1, Relaxed);
        rec.outcome = Outcome::Dropped(cause);
        return rec;
    }
    let closed = tokio::time::timeout(
        CLOSE_TIMEOUT,
        Box::pin(close(&mut ws, sh.disconnect_frame.clone())),
    )
    .await;
    rec.outcome = match closed {
        Ok(Ok(())) => {
            sh.counters.closed.fetch_add(1, Relaxed);
            Outcome::Closed
        }
        Ok(Err(cause)) => {
            sh.counters.close_failed.fetch_add(1, Relaxed);
            Outcome::CloseFailed(cause)
        }
        Err(_) => {
            sh.counters.close_failed.fetch_add(1, Relaxed);
            Outcome::CloseFailed(format!(
                "the server did not complete the close within {}",
                fmt_duration(CLOSE_TIMEOUT)
            ))
        }
    };
    rec
}

/// An open session until it is time to leave (`Ok`) or it is lost (`Err` with the cause).
async fn run_open(
    sh: &Shared,
    ws: &mut Stream,
    live: &mut Live,
    phase: &mut watch::Receiver<Phase>,
) -> Result<(), String> {
    fn apply(p: Phase, live: &mut Live) -> Option<Instant> {
        match p {
            Phase::Opening => None,
            Phase::Holding { start, end } => {
                live.window = Some((start, end));
                None
            }
            Phase::Closing { until } => Some(until),
        }
    }
    let current = *phase.borrow_and_update();
    let mut until = apply(current, live);
    while until.is_none() {
        tokio::select! {
            biased;
            changed = phase.changed() => match changed {
                Ok(()) => {
                    let p = *phase.borrow_and_update();
                    until = apply(p, live);
                }
                Err(_) => until = Some(Instant::now()),
            },
            msg = ws.next() => {
                handle(sh, ws, live, msg).await?;
            }
        }
    }
    // Closing: leave right after the next heartbeat is acked (none is then in flight), or at
    // the end of the grace period.
    let grace = tokio::time::sleep_until(until.unwrap_or_else(Instant::now).into());
    tokio::pin!(grace);
    loop {
        tokio::select! {
            biased;
            _ = &mut grace => return Ok(()),
            msg = ws.next() => {
                if handle(sh, ws, live, msg).await? {
                    return Ok(());
                }
            }
        }
    }
}

async fn spawn_sessions(
    sh: Arc<Shared>,
    n: u32,
    concurrency: u32,
    rate: Option<f64>,
    phase: watch::Receiver<Phase>,
    stop_at: Instant,
) -> Vec<JoinHandle<Record>> {
    let sem = Arc::new(Semaphore::new(concurrency as usize));
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        if let Some(r) = rate {
            let at = sh.start + Duration::from_secs_f64(i as f64 / r);
            if at >= stop_at {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(stop_at.into()) => break,
        };
        sh.counters.started.fetch_add(1, Relaxed);
        handles.push(tokio::spawn(session(i, permit, sh.clone(), phase.clone())));
    }
    handles
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug, Clone, Serialize)]
pub struct TargetCount {
    pub instance: String,
    pub sessions: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CookieValue {
    /// `#1`, `#2`: values are not printed.
    pub value: String,
    pub sessions: u64,
    /// The instance the health endpoint names when asked with this cookie.
    pub health_instance: Option<String>,
    /// The instances the heartbeats of this cookie's sessions named.
    pub heartbeat_instances: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CookieReport {
    pub name: Option<String>,
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
    pub url: String,
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
    /// Open sessions whose target is unknown (no heartbeat, no cookie to look up).
    pub unknown_target: u64,
    pub cookies: CookieReport,
    pub heartbeats: HeartbeatReport,
    pub failures: Vec<FailureGroup>,
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.2}%")
    }
}

fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// Pass when there is nothing to report, else Warn while the error gate holds, Fail past it.
fn phase_status(failures: u64, gate_ok: bool) -> CheckStatus {
    match (failures, gate_ok) {
        (0, _) => CheckStatus::Pass,
        (_, true) => CheckStatus::Warn,
        (_, false) => CheckStatus::Fail,
    }
}

/// The verdicts, in report order: open, latency, hold, heartbeat, spread, cookies, close,
/// errors. `--max-error-rate` (default 0) and `--max-p99` gate; a heartbeat delivery under
/// half of the expected fails; the rest warns.
pub fn checks(r: &ProbeReport) -> Vec<Check> {
    let gate_ok = r.error_rate <= r.max_error_rate;
    let d = Duration::from_millis;
    let mut out = Vec::new();
    let causes_of = |phase: &str| -> String {
        let parts: Vec<String> = r
            .failures
            .iter()
            .filter(|f| f.phase == phase)
            .take(3)
            .map(|f| format!("{} × {}", f.count, f.cause))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(": {}", parts.join("; "))
        }
    };

    // open
    let rate = r
        .handshakes_per_s
        .map(|h| format!("{h:.0} handshakes/s"))
        .unwrap_or_else(|| "no handshake completed".into());
    let limit = r
        .rate_limit
        .map(|l| format!(", at most {l}/s"))
        .unwrap_or_default();
    let mut msg = format!(
        "{}/{} sessions opened in {}: {rate} ({} through the load balancer, concurrency {}{limit})",
        r.opened,
        r.connections,
        fmt_duration(d(r.open_phase_ms)),
        r.transport,
        r.concurrency
    );
    if r.open_failed > 0 {
        msg += &format!("; {} failed{}", r.open_failed, causes_of("open"));
    }
    out.push(Check::new(
        "open",
        phase_status(r.open_failed, gate_ok),
        d(r.open_phase_ms),
        msg,
    ));

    // latency
    out.push(match &r.connect {
        None => Check::new(
            "latency",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        ),
        Some(c) => {
            let text = format!(
                "connect p50 {}, p90 {}, p99 {}, max {} (TCP connect to the namespace CONNECT answer)",
                ms_text(c.p50_ms),
                ms_text(c.p90_ms),
                ms_text(c.p99_ms),
                ms_text(c.max_ms)
            );
            match r.max_p99_ms {
                Some(max) if c.p99_ms > max as f64 => Check::new(
                    "latency",
                    CheckStatus::Fail,
                    Duration::ZERO,
                    format!("{text}: p99 is above --max-p99 {}", ms_text(max as f64)),
                ),
                Some(max) => Check::new(
                    "latency",
                    CheckStatus::Pass,
                    Duration::ZERO,
                    format!("{text}; within --max-p99 {}", ms_text(max as f64)),
                ),
                None => Check::new("latency", CheckStatus::Pass, Duration::ZERO, text),
            }
        }
    });

    // hold
    let held = r.opened.saturating_sub(r.dropped);
    let mut msg = format!(
        "{held}/{} open sessions held for {}",
        r.opened,
        fmt_duration(d(r.hold_ms))
    );
    if r.dropped > 0 {
        msg += &format!("; {} dropped{}", r.dropped, causes_of("hold"));
    }
    out.push(if r.opened == 0 {
        Check::new(
            "hold",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        )
    } else {
        Check::new("hold", phase_status(r.dropped, gate_ok), d(r.hold_ms), msg)
    });

    // heartbeat
    let hb = &r.heartbeats;
    out.push(match hb.delivery_ratio {
        _ if r.opened == 0 => Check::new(
            "heartbeat",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        ),
        None => Check::new(
            "heartbeat",
            CheckStatus::Warn,
            Duration::ZERO,
            format!(
                "delivery not measured: no session was open during the hold (hold {}, heartbeat interval {})",
                fmt_duration(d(r.hold_ms)),
                fmt_duration(d(hb.interval_ms))
            ),
        ),
        Some(ratio) => {
            let lat = &hb.lateness;
            let lateness = match (lat.p50_ms, lat.p99_ms, lat.max_ms) {
                (Some(a), Some(b), Some(c)) => format!(
                    "; lateness p50 {a} ms, p99 {b} ms, max {c} ms, {} later than {}",
                    lat.late,
                    fmt_duration(d(lat.slack_ms))
                ),
                _ => String::new(),
            };
            let msg = format!(
                "{} of {:.0} expected heartbeats arrived during the hold (delivery {ratio:.3}); {} acked in all{lateness}",
                hb.received_in_hold, hb.expected_in_hold, hb.acked
            );
            let short_hold = hb.expected_in_hold < 2.0 * r.opened as f64;
            let status = if ratio < 0.5 && !short_hold {
                CheckStatus::Fail
            } else if !(0.95..=1.05).contains(&ratio) {
                CheckStatus::Warn
            } else {
                CheckStatus::Pass
            };
            let note = match status {
                CheckStatus::Fail => {
                    " — heartbeats are not flowing: is [gateway] heartbeat_interval right?"
                }
                CheckStatus::Warn if ratio > 1.05 => {
                    " — more than expected: the gateway's interval is shorter than [gateway] heartbeat_interval"
                }
                CheckStatus::Warn if short_hold => {
                    " — the hold is short against the interval; a longer --hold gives a steadier ratio"
                }
                CheckStatus::Warn => " — some heartbeats were missing or late",
                _ => "",
            };
            Check::new("heartbeat", status, d(r.hold_ms), format!("{msg}{note}"))
        }
    });

    // spread
    let known: u64 = r.targets.iter().map(|t| t.sessions).sum();
    let listing = r
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} {} ({:.0}%)",
                t.instance,
                t.sessions,
                t.sessions as f64 * 100.0 / (known + r.unknown_target).max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let unknown = if r.unknown_target > 0 {
        format!(", unknown {}", r.unknown_target)
    } else {
        String::new()
    };
    out.push(if r.opened == 0 {
        Check::new("spread", CheckStatus::Skip, Duration::ZERO, "no session opened")
    } else if r.targets.len() <= 1 && r.opened >= 2 {
        Check::new(
            "spread",
            CheckStatus::Warn,
            Duration::ZERO,
            if r.targets.is_empty() {
                format!("the target of no session is known (no heartbeat during the hold, no cookie to look up){unknown}")
            } else {
                format!("every session is on one target ({listing}{unknown}): balancing not exercised; is only one target healthy?")
            },
        )
    } else {
        Check::new(
            "spread",
            CheckStatus::Pass,
            Duration::ZERO,
            format!("sessions per target: {listing}{unknown}"),
        )
    });

    // cookies
    let c = &r.cookies;
    let name = c.name.as_deref().unwrap_or("AWSALB");
    out.push(if r.opened == 0 {
        Check::new(
            "cookies",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session opened",
        )
    } else if c.set == 0 {
        Check::new(
            "cookies",
            CheckStatus::Warn,
            Duration::ZERO,
            "no handshake response set a stickiness cookie (AWSALB): the load balancer does not \
             stick sessions; polling clients will lose theirs",
        )
    } else if c.consistent == Some(false) {
        let bad = c
            .values
            .iter()
            .filter(|v| {
                v.health_instance.is_some()
                    && v.heartbeat_instances
                        .iter()
                        .any(|h| Some(h) != v.health_instance.as_ref())
            })
            .map(|v| {
                format!(
                    "cookie {} leads to {} but its sessions are on {}",
                    v.value,
                    v.health_instance.as_deref().unwrap_or("?"),
                    v.heartbeat_instances.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Check::new(
            "cookies",
            CheckStatus::Fail,
            Duration::ZERO,
            format!("{name} does not pin the target its sessions are on: {bad}"),
        )
    } else {
        let pins = match c.consistent {
            Some(true) => {
                let mapped = c
                    .values
                    .iter()
                    .filter_map(|v| v.health_instance.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(", each pins the target its sessions are on ({mapped})")
            }
            _ => String::new(),
        };
        let status = if c.set < r.opened {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        };
        Check::new(
            "cookies",
            status,
            Duration::ZERO,
            format!(
                "{name} set on {}/{} handshakes; {} distinct value(s){pins}",
                c.set, r.opened, c.distinct_values
            ),
        )
    });

    // close
    let reached = r.closed + r.close_failed;
    let mut msg = format!(
        "{}/{reached} sessions left cleanly (DISCONNECT, then the websocket close answered)",
        r.closed
    );
    if r.close_failed > 0 {
        msg += &format!("; {} failed{}", r.close_failed, causes_of("close"));
    }
    out.push(if reached == 0 {
        Check::new(
            "close",
            CheckStatus::Skip,
            Duration::ZERO,
            "no session reached the close",
        )
    } else {
        Check::new(
            "close",
            phase_status(r.close_failed, gate_ok),
            Duration::ZERO,
            msg,
        )
    });

    // errors: the gate
    let mut msg = format!(
        "{} of {} sessions failed ({}; allowed {})",
        r.errors,
        r.connections,
        pct(r.error_rate),
        pct(r.max_error_rate)
    );
    if r.errors > 0 {
        let top = r
            .failures
            .iter()
            .take(4)
            .map(|f| format!("{} × {}: {}", f.count, f.phase, f.cause))
            .collect::<Vec<_>>()
            .join("; ");
        msg += &format!(": {top}");
    }
    out.push(Check::new(
        "errors",
        if gate_ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        Duration::from_millis(r.duration_ms),
        msg,
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// The run

fn tls_for(host: &str) -> Result<Tls, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("no trusted root certificates found in the system store".into());
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
    Ok(Tls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

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

/// Asks the health endpoint, with `cookie`, which instance answers.
async fn instance_for_cookie(
    client: &reqwest::Client,
    url: &Url,
    cookie: String,
) -> Option<String> {
    let resp = client
        .get(url.clone())
        .header(COOKIE.as_str(), cookie)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    if body.len() > BODY_LIMIT {
        return None;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    instance_of(&v)
}

/// Live progress: a bar on a terminal; else a timestamped line once a second when it changed.
async fn ticker(
    ui: &Ui,
    sh: &Shared,
    n: u32,
    hold: Duration,
    phase: watch::Receiver<Phase>,
) -> std::convert::Infallible {
    /// Clears the bar when the ticker is dropped (the probe is done) before the report prints.
    struct Clear(indicatif::ProgressBar);
    impl Drop for Clear {
        fn drop(&mut self) {
            self.0.finish_and_clear();
        }
    }
    let bar = Clear(ui.bar(n as u64));
    let bar = &bar.0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_line = String::new();
    let mut last_print = Instant::now();
    let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
    loop {
        tick.tick().await;
        let c = &sh.counters;
        let now = Instant::now();
        let opened = c.opened.load(Relaxed);
        window.push_back((now, opened));
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            window.pop_front();
        }
        let rate = match window.front() {
            Some((t, o)) if now.duration_since(*t) >= Duration::from_millis(400) => {
                (opened - o) as f64 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        let errors = c.errors();
        let alive = opened - c.dropped.load(Relaxed);
        let text = match *phase.borrow() {
            Phase::Opening => {
                format!("{opened}/{n} open, {rate:.0} handshakes/s, {errors} error(s)")
            }
            Phase::Holding { start, .. } => format!(
                "holding {alive} session(s), {} s of {}, {} heartbeat(s) acked, {errors} error(s)",
                now.duration_since(start).as_secs(),
                fmt_duration(hold),
                c.acks.load(Relaxed)
            ),
            Phase::Closing { .. } => format!(
                "closing: {}/{alive} closed, {errors} error(s)",
                c.closed.load(Relaxed) + c.close_failed.load(Relaxed)
            ),
        };
        bar.set_position(opened);
        bar.set_message(text.clone());
        if !ui.interactive
            && now.duration_since(last_print) >= Duration::from_secs(1)
            && text != last_line
        {
            ui.line(format!("probe: {text}"));
            last_line = text;
            last_print = now;
        }
    }
}

struct Gathered {
    records: Vec<Record>,
    not_started: u64,
    cut: u64,
    window: (Duration, Duration),
    cookie_instances: Vec<Option<String>>,
    duration: Duration,
}

async fn drive(
    sh: Arc<Shared>,
    ps: &ProbeSettings,
    budget: Budget,
    phase_tx: watch::Sender<Phase>,
    health: (reqwest::Client, Url),
) -> Gathered {
    let n = ps.connections;
    let open_deadline = sh.start + budget.open;
    let spawner = tokio::spawn(spawn_sessions(
        sh.clone(),
        n,
        ps.concurrency,
        ps.rate,
        phase_tx.subscribe(),
        open_deadline - HANDSHAKE_TIMEOUT,
    ));
    // Open: until every started session opened or failed and nothing more will start.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c = &sh.counters;
        let settled = c.opened.load(Relaxed) + c.open_failed.load(Relaxed);
        if (spawner.is_finished() && settled >= c.started.load(Relaxed))
            || Instant::now() >= open_deadline
        {
            break;
        }
    }
    // Hold.
    let start = Instant::now();
    let end = start + ps.hold;
    let _ = phase_tx.send(Phase::Holding { start, end });
    let cookie_values = sh.cookies.all();
    let (client, url) = health;
    let name = sh
        .cookie_name
        .get()
        .cloned()
        .unwrap_or_else(|| "AWSALB".into());
    let lookups = tokio::spawn(async move {
        let all = cookie_values
            .into_iter()
            .map(|v| instance_for_cookie(&client, &url, format!("{name}={v}")));
        futures_util::future::join_all(all).await
    });
    let alive = sh.counters.opened.load(Relaxed) > 0;
    if alive {
        tokio::time::sleep_until(end.into()).await;
    }
    let end = Instant::now().min(end).max(start);
    // Close.
    let until = Instant::now() + ps.close_grace;
    let _ = phase_tx.send(Phase::Closing { until });
    let close_deadline = until + CLOSE_TIMEOUT + Duration::from_secs(1);
    let handles = match tokio::time::timeout_at(close_deadline.into(), spawner).await {
        Ok(Ok(h)) => h,
        _ => Vec::new(),
    };
    let not_started = n as u64 - handles.len() as u64;
    let mut records = Vec::with_capacity(handles.len());
    let mut cut = 0;
    for mut h in handles {
        match tokio::time::timeout_at(close_deadline.into(), &mut h).await {
            Ok(Ok(r)) => records.push(r),
            _ => {
                h.abort();
                cut += 1;
            }
        }
    }
    // Started with the hold, each bounded by the request timeout: normally done by now.
    let cookie_instances = tokio::time::timeout(Duration::from_secs(2), lookups)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Gathered {
        records,
        not_started,
        cut,
        window: (sh.since_start(start), sh.since_start(end)),
        cookie_instances,
        duration: sh.start.elapsed(),
    }
}

fn build_report(
    sh: &Shared,
    ps: &ProbeSettings,
    url: &str,
    namespace: &str,
    g: &Gathered,
    open_files: Option<OpenFiles>,
    redact: &dyn Fn(&str) -> String,
) -> ProbeReport {
    let targets = sh.targets.all();
    let cookie_values = sh.cookies.all();
    let mut connect_us = Vec::with_capacity(g.records.len());
    let mut causes: Vec<(String, String)> = Vec::new();
    let (mut opened, mut open_failed, mut dropped, mut closed, mut close_failed) = (0, 0, 0, 0, 0);
    let mut received_in_hold = 0u64;
    let mut due_in_hold = 0u64;
    let mut per_target: Vec<&str> = Vec::new();
    let mut unknown_target = 0;
    let mut cookie_set = 0;
    let mut per_cookie: Vec<(u64, Vec<&str>)> = vec![(0, Vec::new()); cookie_values.len()];
    for r in &g.records {
        if let Some(us) = r.connect_us {
            opened += 1;
            connect_us.push(us);
            received_in_hold += r.hb_in_hold as u64;
            due_in_hold +=
                stats::heartbeats_due(r.opened_at, g.window, r.gone_at, ps.heartbeat_interval);
            if r.cookie != CookieSeen::None {
                cookie_set += 1;
            }
            let from_cookie = match r.cookie {
                CookieSeen::Value(i) => g
                    .cookie_instances
                    .get(i as usize)
                    .and_then(|o| o.as_deref()),
                _ => None,
            };
            let from_heartbeat = targets.get(r.target as usize).map(String::as_str);
            match from_heartbeat.or(from_cookie) {
                Some(t) => per_target.push(t),
                None => unknown_target += 1,
            }
            if let CookieSeen::Value(i) = r.cookie {
                if let Some(slot) = per_cookie.get_mut(i as usize) {
                    slot.0 += 1;
                    if let Some(h) = from_heartbeat {
                        if !slot.1.contains(&h) {
                            slot.1.push(h);
                        }
                    }
                }
            }
        }
        match &r.outcome {
            Outcome::Closed => closed += 1,
            Outcome::OpenFailed(c) => {
                open_failed += 1;
                causes.push(("open".into(), redact(c)));
            }
            Outcome::Dropped(c) => {
                dropped += 1;
                causes.push(("hold".into(), redact(c)));
            }
            Outcome::CloseFailed(c) => {
                close_failed += 1;
                causes.push(("close".into(), redact(c)));
            }
        }
    }
    for _ in 0..g.not_started {
        open_failed += 1;
        causes.push((
            "open".into(),
            "not started: the open budget ran out (the server answered too slowly)".into(),
        ));
    }
    for _ in 0..g.cut {
        close_failed += 1;
        causes.push((
            "close".into(),
            "still running at the probe's deadline; stopped".into(),
        ));
    }
    let keyed: Vec<String> = causes
        .iter()
        .map(|(p, c)| format!("{p}\u{1f}{c}"))
        .collect();
    let failures = stats::group(keyed.iter().map(String::as_str))
        .into_iter()
        .map(|(k, count)| {
            let (phase, cause) = k.split_once('\u{1f}').unwrap_or(("open", &k));
            FailureGroup {
                phase: phase.to_string(),
                cause: cause.to_string(),
                count,
            }
        })
        .collect();
    let errors = open_failed + dropped + close_failed;
    let last_open = Duration::from_micros(sh.counters.last_open_us.load(Relaxed));

    let values: Vec<CookieValue> = per_cookie
        .iter()
        .enumerate()
        .map(|(i, (sessions, hb))| CookieValue {
            value: format!("#{}", i + 1),
            sessions: *sessions,
            health_instance: g.cookie_instances.get(i).cloned().flatten(),
            heartbeat_instances: hb.iter().map(|s| s.to_string()).collect(),
        })
        .collect();
    let comparable: Vec<&CookieValue> = values
        .iter()
        .filter(|v| v.health_instance.is_some() && !v.heartbeat_instances.is_empty())
        .collect();
    let consistent = (!comparable.is_empty()).then(|| {
        comparable.iter().all(|v| {
            v.heartbeat_instances
                .iter()
                .all(|h| Some(h) == v.health_instance.as_ref())
        })
    });

    let lateness = sh.lateness.lock().map(|h| h.clone()).unwrap_or_default();
    let slack = super::checks::slack(ps.heartbeat_interval);
    let expected = due_in_hold as f64;
    ProbeReport {
        url: url.to_string(),
        namespace: namespace.to_string(),
        transport: "websocket",
        connections: ps.connections,
        concurrency: ps.concurrency,
        rate_limit: ps.rate,
        hold_ms: ps.hold.as_millis() as u64,
        max_error_rate: ps.max_error_rate,
        max_p99_ms: ps.max_p99.map(|d| d.as_millis() as u64),
        open_files,
        duration_ms: g.duration.as_millis() as u64,
        opened,
        open_failed,
        dropped,
        closed,
        close_failed,
        errors,
        error_rate: errors as f64 / ps.connections.max(1) as f64,
        open_phase_ms: last_open.as_millis() as u64,
        handshakes_per_s: stats::per_second(opened, last_open),
        connect: stats::summarize_us(&mut connect_us),
        targets: stats::group(per_target)
            .into_iter()
            .map(|(instance, sessions)| TargetCount { instance, sessions })
            .collect(),
        unknown_target,
        cookies: CookieReport {
            name: sh.cookie_name.get().cloned(),
            set: cookie_set,
            distinct_values: cookie_values.len(),
            values,
            consistent,
        },
        heartbeats: HeartbeatReport {
            interval_ms: ps.heartbeat_interval.as_millis() as u64,
            received: sh.counters.heartbeats.load(Relaxed),
            acked: sh.counters.acks.load(Relaxed),
            received_in_hold,
            expected_in_hold: (expected * 10.0).round() / 10.0,
            delivery_ratio: stats::ratio(received_in_hold as f64, expected)
                .map(|r| (r * 1000.0).round() / 1000.0),
            lateness: Lateness {
                p50_ms: lateness.percentile(50.0),
                p99_ms: lateness.percentile(99.0),
                max_ms: lateness.max(),
                late: lateness.count_above(slack.as_millis() as u64),
                slack_ms: slack.as_millis() as u64,
            },
        },
        failures,
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
    let base =
        Url::parse(&v.url).map_err(|e| Failure::usage(format!("gateway url {:?}: {e}", v.url)))?;
    let addrs = resolve(&base).await?;
    let tls = if base.scheme() == "https" {
        let host = base.host_str().unwrap_or_default().trim_matches(['[', ']']);
        Some(tls_for(host).map_err(|m| Failure::failed(format!("cannot set up TLS: {m}")))?)
    } else {
        None
    };
    let request_timeout = super::checks::request_timeout(v);
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

    let ns = v.namespace.as_str();
    let auth = v.token.as_ref().map(|t| json!({ "token": t.expose() }));
    let ack_prefix = if ns == "/" {
        "43".to_string()
    } else {
        format!("43{ns},")
    };
    let sh = Arc::new(Shared {
        start: Instant::now(),
        upgrade: upgrade::Template::new(&ws_url, USER_AGENT_VALUE),
        addrs,
        tls,
        ws_config: WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(BODY_LIMIT))
            .max_frame_size(Some(BODY_LIMIT)),
        connect_frame: Utf8Bytes::from(SioPacket::connect(ns, auth).to_eio().encode()),
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
    });
    let budget = ps.budget();
    let (phase_tx, phase_rx) = watch::channel(Phase::Opening);
    let drive = drive(sh.clone(), ps, budget, phase_tx, (client, health_url));
    let gathered = tokio::select! {
        g = tokio::time::timeout(budget.total, drive) => g.map_err(|_| {
            Failure::failed(format!(
                "the probe ran past its deadline of {}",
                fmt_duration(budget.total)
            ))
        })?,
        never = ticker(ui, &sh, ps.connections, ps.hold, phase_rx) => match never {},
    };
    let token = v.token.as_ref().map(|t| t.expose().to_string());
    let redact = |s: &str| match &token {
        Some(t) if !t.is_empty() => s.replace(t.as_str(), "***"),
        _ => s.to_string(),
    };
    Ok(build_report(
        &sh,
        ps,
        &v.url,
        &v.namespace,
        &gathered,
        open_files,
        &redact,
    ))
}

/// `verify --connections N`: settings, the open-file limit, the probe, then text or JSON, JUnit
/// and the GitHub step summary. Exit 1 when a check fails (the error gate, `--max-p99`).
pub async fn run(args: &VerifyArgs, v: &VerifySettings, ui: &Ui) -> anyhow::Result<Code> {
    let ps = ProbeSettings::from_args(args, v)?;
    let open_files = ensure_open_files(ps.connections)?;
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
        v.url,
        ps.connections,
        ps.concurrency,
        ps.rate.map(|r| format!(", at most {r}/s")).unwrap_or_default(),
        fmt_duration(ps.hold),
        if v.token.is_some() { "configured" } else { "none" },
        fmt_duration(budget.total),
    ));
    let report = probe(v, &ps, ui, open_files).await?;
    let checks: Vec<Check> = checks(&report)
        .into_iter()
        .map(|c| super::verify::redact(c, v.token.as_ref()))
        .collect();
    let status = crate::report::worst(&checks);
    let summary = super::verify::summary(&checks);
    let headline = format!(
        "{} of {} session(s) held, {}, connect p99 {}",
        report.opened.saturating_sub(report.dropped),
        report.connections,
        report
            .handshakes_per_s
            .map(|h| format!("{h:.0} handshakes/s"))
            .unwrap_or_else(|| "no handshake".into()),
        report
            .connect
            .map(|c| ms_text(c.p99_ms))
            .unwrap_or_else(|| "-".into())
    );
    if ui.json() {
        crate::ui::print_json(&json!({
            "command": "verify",
            "mode": "probe",
            "url": v.url,
            "status": status,
            "duration_ms": report.duration_ms,
            "probe": report,
            "checks": checks,
        }));
    } else {
        for c in &checks {
            println!("{}", c.line());
        }
        if !report.failures.is_empty() {
            println!("failures by cause:");
            for f in &report.failures {
                println!("  {:>7} × {:<5} {}", f.count, f.phase, f.cause);
            }
        }
        println!(
            "verify --connections {} {}: {headline}; {summary}",
            report.connections, v.url
        );
    }
    let step = Step {
        name: "probe".into(),
        status,
        duration_ms: report.duration_ms,
        message: format!("{headline}; {summary}"),
        checks,
        detail: Value::Null,
    };
    if let Some(path) = &args.junit {
        crate::report::write_junit(path, std::slice::from_ref(&step))?;
        ui.detail(format!("JUnit report written to {}", path.display()));
    }
    crate::report::github_step_summary("bosar-deploy verify --connections", &[step]);
    Ok(if status == CheckStatus::Fail {
        Code::Failed
    } else {
        Code::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ProbeReport {
        ProbeReport {
            url: "http://127.0.0.1:1".into(),
            namespace: "/chat".into(),
            transport: "websocket",
            connections: 100,
            concurrency: 50,
            rate_limit: None,
            hold_ms: 5000,
            max_error_rate: 0.0,
            max_p99_ms: None,
            open_files: None,
            duration_ms: 8000,
            opened: 100,
            open_failed: 0,
            dropped: 0,
            closed: 100,
            close_failed: 0,
            errors: 0,
            error_rate: 0.0,
            open_phase_ms: 100,
            handshakes_per_s: Some(1000.0),
            connect: Some(Summary {
                count: 100,
                min_ms: 1.0,
                p50_ms: 2.0,
                p90_ms: 3.0,
                p99_ms: 4.0,
                max_ms: 5.0,
                mean_ms: 2.1,
            }),
            targets: vec![
                TargetCount {
                    instance: "gw-1".into(),
                    sessions: 50,
                },
                TargetCount {
                    instance: "gw-2".into(),
                    sessions: 50,
                },
            ],
            unknown_target: 0,
            cookies: CookieReport {
                name: Some("AWSALB".into()),
                set: 100,
                distinct_values: 2,
                values: vec![],
                consistent: Some(true),
            },
            heartbeats: HeartbeatReport {
                interval_ms: 1000,
                received: 600,
                acked: 600,
                received_in_hold: 500,
                expected_in_hold: 500.0,
                delivery_ratio: Some(1.0),
                lateness: Lateness {
                    p50_ms: Some(1),
                    p99_ms: Some(5),
                    max_ms: Some(9),
                    late: 0,
                    slack_ms: 1000,
                },
            },
            failures: vec![],
        }
    }

    fn status(checks: &[Check], name: &str) -> CheckStatus {
        checks.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn a_clean_run_passes_every_check_in_order() {
        let c = checks(&report());
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "open",
                "latency",
                "hold",
                "heartbeat",
                "spread",
                "cookies",
                "close",
                "errors"
            ]
        );
        for check in &c {
            assert_eq!(check.status, CheckStatus::Pass, "{}", check.line());
        }
        assert!(
            c[0].message.contains("1000 handshakes/s"),
            "{}",
            c[0].message
        );
        assert!(c[4].message.contains("gw-1 50 (50%)"), "{}", c[4].message);
    }

    #[test]
    fn error_rate_gates_and_phases_warn_or_fail() {
        let mut r = report();
        r.open_failed = 2;
        r.opened = 98;
        r.closed = 98;
        r.errors = 2;
        r.error_rate = 0.02;
        r.failures = vec![FailureGroup {
            phase: "open".into(),
            cause: "cannot connect: refused".into(),
            count: 2,
        }];
        let c = checks(&r);
        assert_eq!(status(&c, "errors"), CheckStatus::Fail);
        assert_eq!(status(&c, "open"), CheckStatus::Fail);
        let errors = c.iter().find(|c| c.name == "errors").unwrap();
        assert!(
            errors.message.contains("2 × open: cannot connect: refused"),
            "{}",
            errors.message
        );
        r.max_error_rate = 0.05;
        let c = checks(&r);
        assert_eq!(status(&c, "errors"), CheckStatus::Pass);
        assert_eq!(status(&c, "open"), CheckStatus::Warn);
    }

    #[test]
    fn p99_threshold() {
        let mut r = report();
        r.max_p99_ms = Some(3);
        assert_eq!(status(&checks(&r), "latency"), CheckStatus::Fail);
        r.max_p99_ms = Some(4);
        assert_eq!(status(&checks(&r), "latency"), CheckStatus::Pass);
    }

    #[test]
    fn heartbeat_spread_and_cookie_verdicts() {
        let mut r = report();
        r.heartbeats.delivery_ratio = Some(0.9);
        assert_eq!(status(&checks(&r), "heartbeat"), CheckStatus::Warn);
        r.heartbeats.delivery_ratio = Some(0.1);
        assert_eq!(status(&checks(&r), "heartbeat"), CheckStatus::Fail);
        r.heartbeats.delivery_ratio = None;
        assert_eq!(status(&checks(&r), "heartbeat"), CheckStatus::Warn);

        let mut r = report();
        r.targets.truncate(1);
        r.targets[0].sessions = 100;
        assert_eq!(status(&checks(&r), "spread"), CheckStatus::Warn);

        let mut r = report();
        r.cookies.consistent = Some(false);
        r.cookies.values = vec![CookieValue {
            value: "#1".into(),
            sessions: 50,
            health_instance: Some("gw-2".into()),
            heartbeat_instances: vec!["gw-1".into()],
        }];
        let c = checks(&r);
        assert_eq!(status(&c, "cookies"), CheckStatus::Fail);
        r.cookies.consistent = None;
        r.cookies.set = 0;
        assert_eq!(status(&checks(&r), "cookies"), CheckStatus::Warn);
    }

    #[test]
    fn nothing_opened_skips_the_session_checks() {
        let mut r = report();
        r.opened = 0;
        r.closed = 0;
        r.open_failed = 100;
        r.errors = 100;
        r.error_rate = 1.0;
        r.connect = None;
        r.handshakes_per_s = None;
        let c = checks(&r);
        for name in ["latency", "hold", "heartbeat", "spread", "cookies", "close"] {
            assert_eq!(status(&c, name), CheckStatus::Skip, "{name}");
        }
        assert_eq!(status(&c, "errors"), CheckStatus::Fail);
        assert_eq!(status(&c, "open"), CheckStatus::Fail);
    }

    #[test]
    fn stickiness_cookie_is_found_among_set_cookies() {
        let sc = [
            "other=1; Path=/",
            "AWSALBCORS=abc; Expires=x; Path=/; SameSite=None; Secure",
            "AWSALB=abc==; Expires=x; Path=/",
        ];
        assert_eq!(
            stickiness_cookie(sc.iter().copied()),
            Some(("AWSALB", "abc=="))
        );
        assert_eq!(
            stickiness_cookie(["AWSALBAPP-0=v; Path=/"].iter().copied()),
            Some(("AWSALBAPP-0", "v"))
        );
        assert_eq!(stickiness_cookie(["io=x"].iter().copied()), None);
    }

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
            args(&|a| a.concurrency = Some(0)),
            args(&|a| a.max_error_rate = Some(1.5)),
            args(&|a| a.hold = Some(Duration::from_secs(90_000))),
        ] {
            let e = ProbeSettings::from_args(&bad, &v).unwrap_err();
            assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage, "{e}");
        }
        let f = too_many_files(500, stats::fd_plan(500, 100, 100)).unwrap();
        assert_eq!(f.code, crate::exit::Code::Usage);
        assert!(
            f.message.contains("open-file limit is 100"),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("ulimit -n 564"));
        assert!(too_many_files(10, stats::fd_plan(10, 1000, 1000)).is_none());
    }
}
