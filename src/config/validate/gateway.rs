//! `[gateway]`: what `verify` connects to and expects.

use std::time::Duration;

use super::super::diagnostics::Errors;
use super::super::model::*;
use super::super::raw::{RawGateway, S};
use super::{dur, env_name, non_empty, req};

pub(super) fn validate_gateway(errs: &mut Errors, g_s: &S<RawGateway>) -> Option<GatewaySection> {
    let g = g_s.get_ref();
    let url = gateway_url(errs, g_s);
    let test_url = g
        .test_url
        .as_ref()
        .map(|v| http_url(errs, v, "gateway.test_url"));
    let namespace = path_key(
        errs,
        &g.namespace,
        "gateway.namespace",
        GATEWAY_DEFAULT_NAMESPACE,
    );
    let health_path = path_key(
        errs,
        &g.health_path,
        "gateway.health_path",
        GATEWAY_DEFAULT_HEALTH_PATH,
    );
    let token_env = g
        .token_env
        .as_ref()
        .and_then(|v| env_name(errs, v, "gateway.token_env"));
    let jwt_secret_env = g
        .jwt_secret_env
        .as_ref()
        .and_then(|v| env_name(errs, v, "gateway.jwt_secret_env"));
    let ping_interval = interval(
        errs,
        &g.ping_interval,
        "gateway.ping_interval",
        GATEWAY_DEFAULT_PING_INTERVAL_S,
    );
    let ping_timeout = interval(
        errs,
        &g.ping_timeout,
        "gateway.ping_timeout",
        GATEWAY_DEFAULT_PING_TIMEOUT_S,
    );
    let heartbeat_interval = interval(
        errs,
        &g.heartbeat_interval,
        "gateway.heartbeat_interval",
        GATEWAY_DEFAULT_HEARTBEAT_INTERVAL_S,
    );
    let heartbeat_event = match &g.heartbeat_event {
        None => Some(GATEWAY_DEFAULT_HEARTBEAT_EVENT.to_string()),
        Some(v) => non_empty(errs, v, "gateway.heartbeat_event"),
    };
    let stickiness_rounds = stickiness_rounds(errs, &g.stickiness_rounds);
    let targets = targets(errs, &g.targets);
    Some(GatewaySection {
        url: url?,
        test_url: match test_url {
            Some(u) => Some(u?),
            None => None,
        },
        namespace: namespace?,
        health_path: health_path?,
        token_env,
        jwt_secret_env,
        ping_interval: ping_interval?,
        ping_timeout: ping_timeout?,
        heartbeat_event: heartbeat_event?,
        heartbeat_interval: heartbeat_interval?,
        stickiness_rounds: stickiness_rounds?,
        targets: targets?,
        eio3: g.eio3.as_ref().map(|v| *v.get_ref()),
        recovery: g.recovery.as_ref().map(|v| *v.get_ref()),
        origins: origins(errs, &g.origins)?,
    })
}

/// Most `origins`: each is a `cors` check's worth of requests.
const MAX_ORIGINS: usize = 20;

/// `origins`: each exactly an origin as a browser sends it (`https://host[:port]`: no path,
/// query, user info or trailing slash), at most [`MAX_ORIGINS`].
fn origins(errs: &mut Errors, v: &Option<S<Vec<S<String>>>>) -> Option<Vec<String>> {
    let Some(list) = v else {
        return Some(Vec::new());
    };
    if list.get_ref().len() > MAX_ORIGINS {
        errs.at(
            list.span(),
            "gateway.origins",
            format!("{} origins is too many", list.get_ref().len()),
            Some("at most 20 origins"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for o in list.get_ref() {
        let text = o.get_ref();
        let parsed = url::Url::parse(text).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.path() == "/"
        });
        match parsed {
            Some(u) if u.origin().ascii_serialization() == *text => out.push(text.clone()),
            _ => {
                ok = false;
                errs.at(
                    o.span(),
                    "gateway.origins",
                    format!("\"{text}\" is not an origin"),
                    Some("scheme://host[:port] exactly as the browser sends it, like \"https://app.bosar.click\" (no path, no trailing slash)"),
                );
            }
        }
    }
    ok.then_some(out)
}

/// `url`: required, http or https with a host; kept without a trailing slash (a path is a
/// prefix).
fn gateway_url(errs: &mut Errors, g_s: &S<RawGateway>) -> Option<String> {
    req(
        errs,
        g_s,
        &g_s.get_ref().url,
        "gateway.url",
        "the gateway's base URL, like \"https://api.bosar.click\"",
    )
    .and_then(|v| http_url(errs, v, "gateway.url"))
}

/// An http(s) URL with a host (`url`, `test_url`), without its trailing slash.
fn http_url(errs: &mut Errors, v: &S<String>, key: &str) -> Option<String> {
    match url::Url::parse(v.get_ref()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            Some(v.get_ref().trim_end_matches('/').to_string())
        }
        _ => {
            errs.at(
                v.span(),
                key,
                format!(
                    "\"{}\" is not an http(s) URL",
                    crate::outside::shown_url(v.get_ref())
                ),
                Some("\"https://host[:port]\""),
            );
            None
        }
    }
}

/// A path key (`namespace`, `health_path`): starts with `/`, no whitespace; `default` when
/// absent.
fn path_key(errs: &mut Errors, v: &Option<S<String>>, key: &str, default: &str) -> Option<String> {
    match v {
        None => Some(default.to_string()),
        Some(s) if s.get_ref().starts_with('/') && !s.get_ref().contains(char::is_whitespace) => {
            Some(s.get_ref().clone())
        }
        Some(s) => {
            errs.at(
                s.span(),
                key,
                format!("\"{}\" must start with /", s.get_ref()),
                Some(&format!("a path like \"{default}\"")),
            );
            None
        }
    }
}

/// An interval of the gateway's (ping, heartbeat): 100 ms to 1 h; `default_s` when absent.
fn interval(
    errs: &mut Errors,
    v: &Option<S<String>>,
    key: &str,
    default_s: u64,
) -> Option<Duration> {
    match v {
        None => Some(Duration::from_secs(default_s)),
        Some(s) => dur(
            errs,
            s,
            key,
            Duration::from_millis(100),
            Duration::from_secs(3600),
            "100ms to 1h",
        ),
    }
}

/// `stickiness_rounds`: 2 to 1000 polling round trips, 20 when absent.
fn stickiness_rounds(errs: &mut Errors, v: &Option<S<i64>>) -> Option<u32> {
    match v {
        None => Some(GATEWAY_DEFAULT_STICKINESS_ROUNDS),
        Some(v) if (2..=1000).contains(v.get_ref()) => Some(*v.get_ref() as u32),
        Some(v) => {
            errs.at(
                v.span(),
                "gateway.stickiness_rounds",
                format!("{} is out of range", v.get_ref()),
                Some("2 to 1000 polling round trips"),
            );
            None
        }
    }
}

/// `targets`: how many healthy targets `verify` must reach when it does not ask AWS, 1 to 100;
/// `None` (unknown) when absent.
fn targets(errs: &mut Errors, v: &Option<S<i64>>) -> Option<Option<u32>> {
    let (lo, hi) = TARGETS_RANGE;
    match v {
        None => Some(None),
        Some(v) if (i64::from(lo)..=i64::from(hi)).contains(v.get_ref()) => {
            Some(Some(*v.get_ref() as u32))
        }
        Some(v) => {
            errs.at(
                v.span(),
                "gateway.targets",
                format!("{} is out of range", v.get_ref()),
                Some(&format!("{lo} to {hi} healthy targets")),
            );
            None
        }
    }
}
