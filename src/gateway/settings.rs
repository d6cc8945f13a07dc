//! What `verify` and the load probe are pointed at: [`VerifySettings`], built from `[gateway]`
//! (and `--url`) by [`VerifySettings::from_config`], and the time bounds derived from it
//! ([`request_timeout`], [`slack`], [`verify_deadline`]).
//!
//! The rules for secrets live here: a token (or the secret it is minted from) shorter than
//! [`MIN_TOKEN_LEN`] is refused (it could not be redacted without mangling text); a token is
//! not sent over plain `http://` to a host that is not loopback unless `--allow-insecure-token`
//! says so; a URL's user info is never shown ([`VerifySettings::shown_url`]) and its password
//! is redacted wherever it would appear.

use std::time::Duration;

use super::token::{self, Secret};
use crate::config::GatewaySection;
use crate::exit::Failure;

/// Shortest token (or secret to mint one from) accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Everything `verify` needs; built from `[gateway]` by [`VerifySettings::from_config`].
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// Where requests go, as given (it may carry user info); print [`VerifySettings::shown_url`].
    pub url: String,
    pub namespace: String,
    pub health_path: String,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub heartbeat_event: String,
    pub heartbeat_interval: Duration,
    pub stickiness_rounds: u32,
    /// Debug prints `***`.
    pub token: Option<Secret>,
    /// `[gateway] eio3`: the `eio3` check and what it expects (`None`: not run).
    pub eio3: Option<bool>,
    /// `[gateway] recovery`: the `recovery` check and what it expects (`None`: not run).
    pub recovery: Option<bool>,
    /// `[gateway] origins`: a `cors` check as a browser on each would connect (empty: none).
    pub origins: Vec<String>,
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn check_url(url: &str) -> anyhow::Result<String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(Failure::usage(format!(
            "--url {} is not an http(s) URL",
            crate::outside::Outside::new(&shown_url(url)).quoted(200)
        ))
        .hint("pass the gateway's base URL, like https://api.example.com")
        .into()),
    }
}

pub use crate::outside::shown_url;

/// The URL's user info as secrets to redact (the password, and `user:password` as Basic
/// authentication sends it).
fn register_user_info(url: &str) {
    use base64::Engine as _;
    let Ok(u) = url::Url::parse(url) else { return };
    if let Some(p) = u.password() {
        crate::outside::register_secret(p);
        let basic = format!("{}:{p}", u.username());
        crate::outside::register_secret(&base64::engine::general_purpose::STANDARD.encode(basic));
        if let Ok(decoded) = percent_decode(p) {
            crate::outside::register_secret(&decoded);
        }
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Loopback: `localhost`, 127.0.0.0/8, `::1`.
fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A token must not cross the network in clear: over `http://` only to loopback, unless the
/// user says `--allow-insecure-token`.
fn check_token_transport(url: &str, allow_insecure: bool) -> anyhow::Result<()> {
    let Ok(u) = url::Url::parse(url) else {
        return Ok(());
    };
    if u.scheme() != "http" || is_loopback(&u) || allow_insecure {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "refusing to send the gateway token over plain http:// to {}: anyone on the path could read it and use it",
        u.host_str().unwrap_or("?")
    ))
    .hint("use the gateway's https:// URL; or, for a test gateway on a network you trust, pass --allow-insecure-token")
    .into())
}

fn too_short(what: &str, name: &str) -> anyhow::Error {
    Failure::usage(format!(
        "the {what} in {name} is shorter than {MIN_TOKEN_LEN} characters: refused (it would be guessable, and could not be redacted from output without mangling it)"
    ))
    .hint(format!("put the real {what} in {name}"))
    .into()
}

impl VerifySettings {
    /// The token: the variable named by `token_env` if set, else minted from the secret in the
    /// variable named by `jwt_secret_env`. A configured variable that is unset (and no other
    /// source) is a usage error naming it.
    ///
    /// A token or secret shorter than [`MIN_TOKEN_LEN`], or a token bound for a plain `http://`
    /// URL that is not loopback without `allow_insecure_token`, is a usage error (exit 2).
    pub fn from_config(
        gw: &GatewaySection,
        url_override: Option<&str>,
        allow_insecure_token: bool,
    ) -> anyhow::Result<VerifySettings> {
        let url = match url_override {
            Some(u) => check_url(u)?,
            None => gw.url.clone(),
        };
        register_user_info(&url);
        let from_token_env = match gw.token_env.as_deref().map(|n| (n, env_value(n))) {
            Some((n, Some(t))) if t.trim().chars().count() < MIN_TOKEN_LEN => {
                return Err(too_short("token", n))
            }
            Some((_, Some(t))) => Some(Secret::new(t.trim())),
            _ => None,
        };
        let token = match from_token_env {
            Some(t) => Some(t),
            None => match gw.jwt_secret_env.as_deref().map(|n| (n, env_value(n))) {
                Some((n, Some(secret))) if secret.chars().count() < MIN_TOKEN_LEN => {
                    return Err(too_short("secret", n))
                }
                Some((_, Some(secret))) => Some(token::mint(&Secret::new(secret))),
                secret => {
                    let mut unset: Vec<&str> = Vec::new();
                    if let Some(n) = gw.token_env.as_deref() {
                        unset.push(n);
                    }
                    if let Some((n, None)) = secret {
                        unset.push(n);
                    }
                    if !unset.is_empty() {
                        let which = unset.join(" / ");
                        return Err(Failure::usage(format!(
                            "the gateway token is configured to come from the environment, but {which} {} not set",
                            if unset.len() == 1 { "is" } else { "are" }
                        ))
                        .hint(format!(
                            "export {} (gateway.token_env is a ready token; gateway.jwt_secret_env the HS256 secret to mint one), or remove the key from [gateway]",
                            unset[0]
                        ))
                        .into());
                    }
                    None
                }
            },
        };
        if token.is_some() {
            check_token_transport(&url, allow_insecure_token)?;
        }
        Ok(VerifySettings {
            url,
            namespace: gw.namespace.clone(),
            health_path: gw.health_path.clone(),
            ping_interval: gw.ping_interval,
            ping_timeout: gw.ping_timeout,
            heartbeat_event: gw.heartbeat_event.clone(),
            heartbeat_interval: gw.heartbeat_interval,
            stickiness_rounds: gw.stickiness_rounds,
            token,
            eio3: gw.eio3,
            recovery: gw.recovery,
            origins: gw.origins.clone(),
        })
    }

    /// The URL as printed: without user info.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }

    /// A minted token lives [`token::MINTED_TTL`], enough for one verify run; sessions held
    /// through a rollout reconnect with it much later. Re-mints it to live `ttl` (a token from
    /// `token_env` is the user's and stays as it is).
    pub fn remint_for(&mut self, gw: &GatewaySection, ttl: Duration) {
        if self.token_source(gw) != "minted from gateway.jwt_secret_env" {
            return;
        }
        if let Some(secret) = gw.jwt_secret_env.as_deref().and_then(env_value) {
            self.token = Some(token::mint_for(&Secret::new(secret), ttl));
        }
    }

    /// Where the token came from, for the line `verify` starts with.
    pub fn token_source(&self, gw: &GatewaySection) -> &'static str {
        match (&self.token, &gw.token_env, &gw.jwt_secret_env) {
            (None, _, _) => "none configured",
            (Some(_), Some(n), _) if env_value(n).is_some() => "from gateway.token_env",
            (Some(_), _, _) => "minted from gateway.jwt_secret_env",
        }
    }
}

/// Bound of a request the server answers at once: pingInterval clamped to 2-10 s.
pub fn request_timeout(s: &VerifySettings) -> Duration {
    s.ping_interval
        .clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// Lateness tolerated for a periodic packet: a fifth of its interval, 1-5 s.
pub fn slack(interval: Duration) -> Duration {
    (interval / 5).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// The hard deadline of a `verify` run (without `--connections`), whatever the server does:
/// `(3 × stickiness_rounds + 12) × request timeout + 2 × (ping_interval + its slack) +
/// heartbeat_interval + its slack + 10 s`. Each term bounds a phase: the stickiness rounds (a
/// POST and a health GET per round with cookies, a POST per round without), health, handshake,
/// auth, upgrade, joining and disconnect (12 requests at most, one after another), the ping
/// window (the announced pingInterval is trusted up to twice the configured one), the
/// heartbeat, a second heartbeat's budget. With the defaults (pingInterval 25 s, so 10 s
/// requests; 20 rounds; heartbeat 30 s): 13 min 45 s. Checks still running then fail.
pub fn verify_deadline(s: &VerifySettings) -> Duration {
    let request = request_timeout(s);
    // `eio3` runs beside the main session's heartbeat wait; its own requests (two handshakes,
    // two CONNECTs with their polls, the upgrade) come on top.
    let eio3 = if s.eio3.is_some() { 8 } else { 0 };
    // `cors`: per origin a handshake, a POST, the upgrade and its close; the poll is bounded
    // by pingInterval.
    let cors = 6 * s.origins.len() as u32;
    // `recovery`: three joins with their answers, the leaves; and the wait for an offset.
    let (recovery, offset_wait) = match s.recovery {
        Some(_) => (8, s.heartbeat_interval + slack(s.heartbeat_interval)),
        None => (0, Duration::ZERO),
    };
    request * (3 * s.stickiness_rounds + 12 + eio3 + cors + recovery)
        + offset_wait
        + s.ping_interval * s.origins.len() as u32
        + (s.ping_interval + slack(s.ping_interval)) * 2
        + s.heartbeat_interval
        + slack(s.heartbeat_interval)
        + Duration::from_secs(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw() -> GatewaySection {
        GatewaySection {
            test_url: None,
            url: "http://127.0.0.1:1".into(),
            namespace: "/chat".into(),
            health_path: "/health/websocket".into(),
            token_env: None,
            jwt_secret_env: None,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            heartbeat_event: "heartbeat".into(),
            heartbeat_interval: Duration::from_secs(30),
            stickiness_rounds: 20,
            targets: None,
            eio3: None,
            recovery: None,
            origins: Vec::new(),
        }
    }

    #[test]
    fn timing_bounds() {
        assert_eq!(slack(Duration::from_millis(1000)), Duration::from_secs(1));
        assert_eq!(slack(Duration::from_secs(25)), Duration::from_secs(5));
        assert_eq!(slack(Duration::from_secs(10)), Duration::from_secs(2));
        let mut s = VerifySettings::from_config(&gw(), None, false).unwrap();
        assert_eq!(verify_deadline(&s), Duration::from_secs(13 * 60 + 45));
        s.ping_interval = Duration::from_secs(1);
        s.heartbeat_interval = Duration::from_secs(1);
        s.stickiness_rounds = 3;
        assert_eq!(verify_deadline(&s), Duration::from_secs(58));
    }

    #[test]
    fn urls_are_shown_without_user_info() {
        assert_eq!(
            shown_url("http://admin:hunter2@host:8080/x"),
            "http://host:8080/x"
        );
        assert_eq!(
            shown_url("https://tok@api.example.com"),
            "https://api.example.com"
        );
        assert_eq!(
            shown_url("https://api.example.com"),
            "https://api.example.com"
        );
        assert_eq!(shown_url("not a url@evil"), "(user info hidden)@evil");
        let mut g = gw();
        g.url = "http://admin:hunter2-pw@127.0.0.1:1".into();
        let s = VerifySettings::from_config(&g, None, false).unwrap();
        assert_eq!(s.shown_url(), "http://127.0.0.1:1");
        assert_eq!(crate::outside::redact("x hunter2-pw y"), "x *** y");
        let e =
            VerifySettings::from_config(&gw(), Some("ftp://u:hunter2-pw@h"), false).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn a_token_does_not_cross_plain_http_to_other_hosts() {
        let name = "BOSAR_TEST_TOKEN_INSECURE_3";
        std::env::set_var(name, "0123456789abcdef-token");
        let mut g = gw();
        g.token_env = Some(name.into());
        for ok in [
            "http://127.0.0.1:1",
            "http://localhost:8080",
            "http://[::1]:1",
            "https://api.example.com",
        ] {
            assert!(
                VerifySettings::from_config(&g, Some(ok), false).is_ok(),
                "{ok}"
            );
        }
        let e = VerifySettings::from_config(&g, Some("http://api.example.com"), false).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        assert!(e.to_string().contains("plain http://"), "{e}");
        assert!(crate::exit::hint_of(&e)
            .unwrap()
            .contains("--allow-insecure-token"));
        assert!(VerifySettings::from_config(&g, Some("http://api.example.com"), true).is_ok());
        // Without a token nothing is at stake.
        assert!(VerifySettings::from_config(&gw(), Some("http://api.example.com"), false).is_ok());
    }

    #[test]
    fn short_tokens_and_secrets_are_refused() {
        let name = "BOSAR_TEST_TOKEN_SHORT_4";
        std::env::set_var(name, "x");
        let mut g = gw();
        g.token_env = Some(name.into());
        let e = VerifySettings::from_config(&g, None, false).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        assert!(e.to_string().contains("shorter than 16"), "{e}");
        let name = "BOSAR_TEST_SECRET_SHORT_5";
        std::env::set_var(name, "short-secret");
        let mut g = gw();
        g.jwt_secret_env = Some(name.into());
        let e = VerifySettings::from_config(&g, None, false).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        assert!(!e.to_string().contains("short-secret"));
    }

    #[test]
    fn token_sources() {
        // Unique variable names: tests run in parallel in one process.
        let mut g = gw();
        assert!(VerifySettings::from_config(&g, None, false)
            .unwrap()
            .token
            .is_none());
        g.token_env = Some("BOSAR_TEST_TOKEN_UNSET_1".into());
        let e = VerifySettings::from_config(&g, None, false).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        assert!(e.to_string().contains("BOSAR_TEST_TOKEN_UNSET_1"), "{e}");
        g.token_env = None;
        g.jwt_secret_env = Some("BOSAR_TEST_SECRET_UNSET_2".into());
        let e = VerifySettings::from_config(&g, None, false).unwrap_err();
        assert!(e.to_string().contains("BOSAR_TEST_SECRET_UNSET_2"), "{e}");
        let e = VerifySettings::from_config(&g, Some("ftp://x"), false).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        let s = VerifySettings {
            token: Some(Secret::new("abc.def.ghi")),
            ..VerifySettings::from_config(&gw(), None, false).unwrap()
        };
        assert!(!format!("{s:?}").contains("abc.def.ghi"));
    }
}
