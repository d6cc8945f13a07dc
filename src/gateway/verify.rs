//! `bosar-deploy verify`: proves from outside that the deployed gateway works. The checks live
//! in [`super::checks`]; this is the verb: settings, output (text, JSON, JUnit), exit code.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;

use super::checks::{self, Sink, NAMES};
pub use super::token::Secret;
use crate::cli::VerifyArgs;
use crate::config::{Config, GatewaySection};
use crate::exit::{Code, Failure};
use crate::report::{self, Check, CheckStatus, Step};
use crate::ui::Ui;

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
                Some((_, Some(secret))) => Some(super::token::mint(&Secret::new(secret))),
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
}

fn redact_str(s: &str, secret: &str) -> String {
    if secret.is_empty() {
        s.to_string()
    } else {
        s.replace(secret, "***")
    }
}

/// Whatever a server echoed, the token never leaves in a check.
pub(super) fn redact(mut c: Check, token: Option<&Secret>) -> Check {
    let Some(t) = token else { return c };
    let t = t.expose();
    c.message = redact_str(&c.message, t);
    if !c.evidence.is_null() {
        let text = c.evidence.to_string();
        if text.contains(t) {
            c.evidence = serde_json::from_str(&redact_str(&text, t)).unwrap_or(Value::Null);
        }
    }
    c
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs every check; never panics; every step is time-bounded. The result has one check per
/// name in [`NAMES`], in that order.
pub async fn verify(settings: &VerifySettings, ui: &Ui) -> Vec<Check> {
    let out = Mutex::new(Vec::new());
    let sink = Sink { ui, out: &out };
    let outcome = std::panic::AssertUnwindSafe(checks::run_all(settings, &sink))
        .catch_unwind()
        .await;
    let internal = outcome.err().map(|p| panic_message(p.as_ref()));
    let mut got = out.into_inner().unwrap_or_else(|e| e.into_inner());
    NAMES
        .iter()
        .map(|name| {
            let c = match got.iter().position(|c| c.name == *name) {
                Some(i) => got.remove(i),
                None => match &internal {
                    Some(m) => Check::new(
                        name,
                        CheckStatus::Fail,
                        Duration::ZERO,
                        format!("not run: internal error: {m}"),
                    ),
                    None => Check::new(name, CheckStatus::Skip, Duration::ZERO, "not run"),
                },
            };
            redact(c, settings.token.as_ref())
        })
        .collect()
}

pub(super) fn summary(checks: &[Check]) -> String {
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    format!(
        "{} passed, {} warned, {} failed, {} skipped",
        count(CheckStatus::Pass),
        count(CheckStatus::Warn),
        count(CheckStatus::Fail),
        count(CheckStatus::Skip)
    )
}

/// The CLI verb.
pub async fn run(args: &VerifyArgs, cfg: &Config, ui: &Ui) -> anyhow::Result<Code> {
    let gw = cfg.gateway("verify")?;
    let settings = VerifySettings::from_config(gw, args.url.as_deref())?;
    if args.connections.is_some() {
        return super::probe::run(args, &settings, ui).await;
    }
    ui.line(format!(
        "Verifying the gateway at {} (namespace {}, token {})",
        settings.url,
        settings.namespace,
        match (&settings.token, &gw.token_env, &gw.jwt_secret_env) {
            (None, _, _) => "none configured",
            (Some(_), Some(n), _) if env_value(n).is_some() => "from gateway.token_env",
            (Some(_), _, _) => "minted from gateway.jwt_secret_env",
        }
    ));
    let started = Instant::now();
    let checks = verify(&settings, ui).await;
    let elapsed = started.elapsed();
    let status = report::worst(&checks);
    let summary = summary(&checks);

    if ui.json() {
        crate::ui::print_json(&serde_json::json!({
            "command": "verify",
            "url": settings.url,
            "status": status,
            "duration_ms": elapsed.as_millis() as u64,
            "checks": checks,
        }));
    } else {
        for c in &checks {
            println!("{}", c.line());
            if ui.verbose > 0 && !c.evidence.is_null() {
                println!("{:>24}{}", "", c.evidence);
            }
        }
        println!("verify {}: {summary}", settings.url);
    }
    if let Some(path) = &args.junit {
        let step = Step {
            name: "verify".into(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: summary.clone(),
            checks: checks.clone(),
            detail: Value::Null,
        };
        report::write_junit(path, &[step])?;
        ui.detail(format!("JUnit report written to {}", path.display()));
    }
    report::github_step_summary(
        "bosar-deploy verify",
        &[Step {
            name: "verify".into(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: summary,
            checks: checks.clone(),
            detail: Value::Null,
        }],
    );
    Ok(if status == CheckStatus::Fail {
        Code::Failed
    } else {
        Code::Success
    })
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
    fn token_sources() {
        // Unique variable names: tests run in parallel in one process.
        let mut g = gw();
        assert!(VerifySettings::from_config(&g, None)
            .unwrap()
            .token
            .is_none());
        g.token_env = Some("BOSAR_TEST_TOKEN_UNSET_1".into());
        let e = VerifySettings::from_config(&g, None).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Code::Usage);
        assert!(e.to_string().contains("BOSAR_TEST_TOKEN_UNSET_1"), "{e}");
        g.token_env = None;
        g.jwt_secret_env = Some("BOSAR_TEST_SECRET_UNSET_2".into());
        let e = VerifySettings::from_config(&g, None).unwrap_err();
        assert!(e.to_string().contains("BOSAR_TEST_SECRET_UNSET_2"), "{e}");
        let e = VerifySettings::from_config(&g, Some("ftp://x")).unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Code::Usage);
        let s = VerifySettings {
            token: Some(Secret::new("abc.def.ghi")),
            ..VerifySettings::from_config(&gw(), None).unwrap()
        };
        assert!(!format!("{s:?}").contains("abc.def.ghi"));
    }

    #[test]
    fn redaction() {
        let t = Secret::new("tok.en.value");
        let c = Check::new(
            "auth",
            CheckStatus::Fail,
            Duration::ZERO,
            "server said tok.en.value",
        )
        .with_evidence(serde_json::json!({"echo": "x tok.en.value y"}));
        let c = redact(c, Some(&t));
        assert_eq!(c.message, "server said ***");
        assert_eq!(c.evidence["echo"], "x *** y");
    }
}
