//! The state every session of a probe run shares: the socket type (plain or TLS), the phase
//! the run is in, the live counters the progress line reads, the tables of cookie values and
//! targets, and the settings each session needs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::WebSocketStream;

use super::backoff::Backoff;
use crate::gateway::stats::Histogram;
use crate::gateway::upgrade;
use crate::outside::Outside;

/// No entry: an index past a table's limit, or no target known.
pub(super) const NONE: u16 = u16::MAX;

/// The socket under a session's websocket: plain TCP or TLS over it, boxed, so a plain session
/// does not carry the size of a TLS stream (about 1 KiB) inline.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(super) type Stream = WebSocketStream<Box<dyn Io>>;

/// TLS for `https` gateways: one client configuration for every session.
#[derive(Clone)]
pub(super) struct Tls {
    pub(super) connector: tokio_rustls::TlsConnector,
    pub(super) server_name: rustls::pki_types::ServerName<'static>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
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
pub(super) struct Counters {
    pub(super) started: AtomicU64,
    pub(super) opened: AtomicU64,
    pub(super) open_failed: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) close_failed: AtomicU64,
    pub(super) heartbeats: AtomicU64,
    pub(super) acks: AtomicU64,
    /// Microseconds from the start to the last session opened.
    pub(super) last_open_us: AtomicU64,
    /// With `--reconnect`: drops noticed, sessions back, sessions trying to come back now.
    pub(super) drops: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) reconnecting: AtomicU64,
    /// Sessions that dropped at least once (the live drop rate's numerator).
    pub(super) sessions_dropped: AtomicU64,
    /// Sessions whose CONNECT answer carried a pid (the gateway offers recovery).
    pub(super) pids: AtomicU64,
    /// Reconnects that resumed their session.
    pub(super) recovered: AtomicU64,
}

impl Counters {
    pub(super) fn errors(&self) -> u64 {
        self.open_failed.load(Relaxed)
            + self.dropped.load(Relaxed)
            + self.close_failed.load(Relaxed)
    }
}

/// A small table of distinct values (cookie values, instance ids), indexed by `u16`.
#[derive(Debug)]
pub(super) struct Interner<T> {
    values: Mutex<Vec<T>>,
    limit: usize,
}

impl<T: Clone + PartialEq> Interner<T> {
    pub(super) fn new(limit: usize) -> Interner<T> {
        Interner {
            values: Mutex::new(Vec::new()),
            limit,
        }
    }
    pub(super) fn intern(&self, s: T) -> u16 {
        let Ok(mut v) = self.values.lock() else {
            return NONE;
        };
        if let Some(i) = v.iter().position(|x| *x == s) {
            return i as u16;
        }
        if v.len() >= self.limit {
            return NONE;
        }
        v.push(s);
        (v.len() - 1) as u16
    }
    pub(super) fn all(&self) -> Vec<T> {
        self.values.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The stickiness cookie a handshake set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CookieSeen {
    None,
    /// Index in the cookie table.
    Value(u16),
    /// Set, but past the table's limit.
    Unlisted,
}

pub(super) struct Shared {
    pub(super) start: Instant,
    pub(super) upgrade: upgrade::Template,
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) tls: Option<Tls>,
    pub(super) ws_config: WebSocketConfig,
    pub(super) connect_frame: Utf8Bytes,
    /// The CONNECT auth (the token), for a reconnect that adds its pid and offset.
    pub(super) auth: Option<serde_json::Value>,
    pub(super) disconnect_frame: Utf8Bytes,
    pub(super) ack_prefix: String,
    pub(super) namespace: String,
    pub(super) heartbeat_event: String,
    pub(super) heartbeat_interval: Duration,
    pub(super) counters: Counters,
    pub(super) targets: Interner<Outside>,
    /// Cookie values as the load balancer set them (sent back, never printed).
    pub(super) cookies: Interner<String>,
    pub(super) cookie_name: OnceLock<String>,
    pub(super) lateness: Mutex<Histogram>,
    /// Reconnect times (drop to the namespace CONNECT answer), ms, for the live judgement.
    pub(super) back_ms: Mutex<Histogram>,
    /// `--reconnect`: dropped sessions come back on this schedule (`None`: they stay lost).
    pub(super) reconnect: Option<Backoff>,
    /// `--reconnect-like`: whose rules decide whether a dropped session comes back.
    pub(super) reconnect_like: crate::cli::ReconnectLike,
}

/// The stickiness cookie among `Set-Cookie` values: `AWSALB` (lb_cookie), `AWSALBTG`, or an
/// application cookie's `AWSALBAPP-*`; the `*CORS` twins carry the same value.
pub(super) fn stickiness_cookie<'a>(
    set_cookies: impl Iterator<Item = &'a str>,
) -> Option<(&'a str, &'a str)> {
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
    pub(super) fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    pub(super) fn cookie_of(&self, set_cookies: &[&str]) -> CookieSeen {
        match stickiness_cookie(set_cookies.iter().copied()) {
            None => CookieSeen::None,
            Some((name, value)) => {
                let _ = self.cookie_name.set(name.to_string());
                match self.cookies.intern(value.to_string()) {
                    NONE => CookieSeen::Unlisted,
                    i => CookieSeen::Value(i),
                }
            }
        }
    }
}

pub(super) fn tls_for(host: &str) -> Result<Tls, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
