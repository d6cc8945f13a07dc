//! Reaching every target from outside. Behind an ALB the tool sees one URL; the load balancer
//! picks a target per request and its stickiness cookie (AWSALB) pins a client to the target
//! that answered. So a health GET with an empty cookie jar lands on some target and comes back
//! with that target's cookie and (in the body) its instance id: repeated with fresh jars, the
//! GETs find the targets one by one, and each target's jar then pins every later request of
//! its checks to it.
//!
//! The search is bounded ([`Search`]): [`attempts_for`] GETs at most, in waves of as many as
//! there are targets to find (concurrent requests spread over a least-outstanding-requests or
//! round-robin balancer), and [`SEARCH_TIME`] in all. Targets are told apart by the instance
//! id the health answer names, else by the stickiness cookie's value (never shown).

use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use crate::gateway::fmt_duration;
use crate::gateway::instance_of;
use crate::gateway::polling::{self, Jar, Polling};
use crate::outside::Outside;

/// Longest the search for the targets may take, whatever the count.
pub const SEARCH_TIME: Duration = Duration::from_secs(30);

/// Health GETs made when the number of targets is unknown.
const UNKNOWN_ATTEMPTS: u32 = 8;

/// How many healthy targets verify must reach, and where that number came from.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// `None`: unknown (no AWS, no `--targets`, no `[gateway] targets`).
    pub count: Option<usize>,
    /// Where the count came from: `--targets`, `[gateway] targets`, `target group NAME`.
    pub source: String,
    /// The healthy targets as the target group lists them (`10.0.1.10:3000`); empty when the
    /// count did not come from AWS.
    pub ids: Vec<Outside>,
    /// Why the count could not be read: the `targets` check fails with it.
    pub error: Option<String>,
}

impl Expected {
    /// A count given by the user (`--targets`, `[gateway] targets`).
    pub fn given(count: u32, source: &str) -> Expected {
        Expected {
            count: Some(count as usize),
            source: source.into(),
            ..Expected::default()
        }
    }

    /// The count is not known; `why` says what would make it known.
    pub fn unknown(why: &str) -> Expected {
        Expected {
            source: why.into(),
            ..Expected::default()
        }
    }
}

/// Health GETs made at most to find `count` targets: ten per target plus ten, so a balancer
/// that picked targets at random would still miss one of ten targets in under one run in
/// 10,000; [`UNKNOWN_ATTEMPTS`] when the count is unknown.
pub fn attempts_for(count: Option<usize>) -> u32 {
    match count {
        Some(n) => 10 * n.max(1) as u32 + 10,
        None => UNKNOWN_ATTEMPTS,
    }
}

/// One target found: its jar holds the cookie that pins requests to it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The instance id its health answer named, if any.
    pub instance: Option<Outside>,
    /// The HTTP status of its health answer (0: none).
    pub health_status: u16,
    pub jar: Jar,
    /// What told it apart: the instance id, else the cookie value (never shown), else empty.
    key: String,
}

/// The search: what was found and what it cost.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub found: Vec<Found>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub elapsed: Duration,
    /// The first error a health GET met, if any.
    pub first_error: Option<String>,
    /// The bound of time passed before the search ended.
    pub timed_out: bool,
}

impl Search {
    /// `N attempts (bound M attempts, 30 s)`.
    pub fn cost(&self) -> String {
        format!(
            "{} attempt{} (bound {} attempts, {})",
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.max_attempts,
            fmt_duration(SEARCH_TIME)
        )
    }
}

/// Finds the targets behind `base`: health GETs with fresh jars until `want` distinct ones
/// are known (all that answer, when `want` is unknown), within the bounds.
pub async fn search(
    base: &Url,
    request: Duration,
    health_path: &str,
    want: Option<usize>,
) -> Search {
    let started = Instant::now();
    let mut s = Search {
        max_attempts: attempts_for(want),
        ..Search::default()
    };
    let wave = want.unwrap_or(4).clamp(2, 16) as u32;
    let outcome = tokio::time::timeout(SEARCH_TIME, async {
        while s.attempts < s.max_attempts && want.is_none_or(|n| s.found.len() < n) {
            let n = wave.min(s.max_attempts - s.attempts);
            s.attempts += n;
            let tries = (0..n).map(|_| probe(base, request, health_path));
            for r in futures_util::future::join_all(tries).await {
                match r {
                    Ok(f) if !s.found.iter().any(|g| g.key == f.key) => s.found.push(f),
                    Ok(_) => {}
                    Err(e) => {
                        s.first_error.get_or_insert(e);
                    }
                }
            }
        }
    })
    .await;
    s.timed_out = outcome.is_err();
    s.elapsed = started.elapsed();
    s
}

/// One health GET with an empty jar: the target that answered, or why none did.
async fn probe(base: &Url, request: Duration, health_path: &str) -> Result<Found, String> {
    let jar = polling::new_jar();
    let http = Polling::new(base, Some(jar.clone()), request).map_err(|e| e.to_string())?;
    let url = http.url(health_path).map_err(|e| e.to_string())?;
    let reply = http
        .get(url, request)
        .await
        .map_err(|e| format!("GET {health_path}: {e}"))?;
    let instance = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .as_ref()
        .and_then(instance_of);
    let key = match &instance {
        Some(i) => format!("instance {}", i.shown(200)),
        None => format!("cookie {}", stickiness_value(&jar, base)),
    };
    Ok(Found {
        instance,
        health_status: reply.status,
        jar,
        key,
    })
}

/// The AWSALB value the jar holds for `base` (empty when none): it names the target.
fn stickiness_value(jar: &Jar, base: &Url) -> String {
    let Ok(store) = jar.lock() else {
        return String::new();
    };
    let value = store
        .iter_unexpired()
        .find(|c| c.name() == "AWSALB" && c.matches(base))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_grows_with_the_targets() {
        assert_eq!(attempts_for(Some(1)), 20);
        assert_eq!(attempts_for(Some(2)), 30);
        assert_eq!(attempts_for(Some(10)), 110);
        assert_eq!(attempts_for(Some(0)), 20);
        assert_eq!(attempts_for(None), 8);
        // Picking at random among 10 targets, 110 draws miss one with probability
        // 10 × 0.9^110 < 1e-4.
        assert!(10.0 * 0.9f64.powi(110) < 1e-4);
    }
}
