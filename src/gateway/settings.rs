//! What `verify` and the load probe are pointed at: [`VerifySettings`], built from `[gateway]`
//! (and `--url`) by [`VerifySettings::from_config`], and the time bounds derived from it
//! ([`request_timeout`], [`slack`]).

use std::time::Duration;

use super::token::{self, Secret};
use crate::config::GatewaySection;
use crate::exit::Failure;

/// Everything `verify` needs; built from `[gateway]` by [`VerifySettings::from_config`].
#[derive(Debug, Clone)]
pub struct VerifySettings {
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
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn check_url(url: &str) -> anyhow::Result<String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(
            Failure::usage(format!("--url {url:?} is not an http(s) URL"))
                .hint("pass the gateway's base URL, like https://api.example.com")
                .into(),
        ),
    }
}

impl VerifySettings {
    /// The token: the variable named by `token_env` if set, else minted from the secret in the
    /// variable named by `jwt_secret_env`. A configured variable that is unset (and no other
    /// source) is a usage error naming it.
    pub fn from_config(
        gw: &GatewaySection,
        url_override: Option<&str>,
    ) -> anyhow::Result<VerifySettings> {
        let url = match url_override {
            Some(u) => check_url(u)?,
            None => gw.url.clone(),
        };
        let from_token_env = gw.token_env.as_deref().and_then(env_value).map(Secret::new);
        let token = match from_token_env {
            Some(t) => Some(t),
            None => match gw.jwt_secret_env.as_deref().map(|n| (n, env_value(n))) {
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
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gw() -> GatewaySection {
        GatewaySection {
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
        }
    }

    #[test]
    fn timing_bounds() {
        assert_eq!(slack(Duration::from_millis(1000)), Duration::from_secs(1));
        assert_eq!(slack(Duration::from_secs(25)), Duration::from_secs(5));
        assert_eq!(slack(Duration::from_secs(10)), Duration::from_secs(2));
    }

    #[test]
    fn token_sources() {
        // Unique variable names: tests run in parallel in one process.
        let mut g = gw();
        assert!(VerifySettings::from_config(&g, None)
            .unwrap()
            .token
            .is_none());
        g.token_env = Some("BOSAR_TEST_TOKEN_UNSET_1".into());
        let e = VerifySettings::from_config(&g, None).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        assert!(e.to_string().contains("BOSAR_TEST_TOKEN_UNSET_1"), "{e}");
        g.token_env = None;
        g.jwt_secret_env = Some("BOSAR_TEST_SECRET_UNSET_2".into());
        let e = VerifySettings::from_config(&g, None).unwrap_err();
        assert!(e.to_string().contains("BOSAR_TEST_SECRET_UNSET_2"), "{e}");
        let e = VerifySettings::from_config(&g, Some("ftp://x")).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), crate::exit::Code::Usage);
        let s = VerifySettings {
            token: Some(Secret::new("abc.def.ghi")),
            ..VerifySettings::from_config(&gw(), None).unwrap()
        };
        assert!(!format!("{s:?}").contains("abc.def.ghi"));
    }
}
