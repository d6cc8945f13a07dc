//! Pure planning: desired attributes from the config, and the diff against what AWS has.
//! No I/O here, so every rule is unit-tested.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Algorithm, GatewaySection, Stickiness, TargetGroupSection};

pub const STICKINESS_ENABLED: &str = "stickiness.enabled";
pub const STICKINESS_TYPE: &str = "stickiness.type";
pub const LB_COOKIE_DURATION: &str = "stickiness.lb_cookie.duration_seconds";
pub const APP_COOKIE_NAME: &str = "stickiness.app_cookie.cookie_name";
pub const APP_COOKIE_DURATION: &str = "stickiness.app_cookie.duration_seconds";
pub const ALGORITHM: &str = "load_balancing.algorithm.type";
pub const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
pub const SLOW_START: &str = "slow_start.duration_seconds";
pub const IDLE_TIMEOUT: &str = "idle_timeout.timeout_seconds";
/// AWS's default when the attribute is absent (moto omits it until set).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

/// One attribute that must change: `+` when AWS has no value, `~` when it differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeChange {
    pub key: String,
    pub current: Option<String>,
    pub desired: String,
    /// Why the change is planned when the config does not ask for it directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AttributeChange {
    pub fn marker(&self) -> char {
        if self.current.is_some() {
            '~'
        } else {
            '+'
        }
    }
}

impl fmt::Display for AttributeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.current {
            Some(c) => write!(f, "~ {}: {} -> {}", self.key, c, self.desired)?,
            None => write!(f, "+ {}: {}", self.key, self.desired)?,
        }
        if let Some(r) = &self.reason {
            write!(f, "  # {r}")?;
        }
        Ok(())
    }
}

/// Desired target group attributes, in a stable order (the order AWS documents them in).
pub fn desired_target_group(tg: &TargetGroupSection) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match &tg.stickiness {
        Stickiness::Off => out.push((STICKINESS_ENABLED, "false".to_string())),
        Stickiness::LbCookie => {
            out.push((STICKINESS_ENABLED, "true".to_string()));
            out.push((STICKINESS_TYPE, "lb_cookie".to_string()));
            out.push((LB_COOKIE_DURATION, tg.cookie_duration.as_secs().to_string()));
        }
        Stickiness::AppCookie { cookie_name } => {
            out.push((STICKINESS_ENABLED, "true".to_string()));
            out.push((STICKINESS_TYPE, "app_cookie".to_string()));
            out.push((APP_COOKIE_NAME, cookie_name.clone()));
            out.push((
                APP_COOKIE_DURATION,
                tg.cookie_duration.as_secs().to_string(),
            ));
        }
    }
    out.push((ALGORITHM, tg.algorithm.as_aws().to_string()));
    out.push((
        DEREGISTRATION_DELAY,
        tg.deregistration_delay.as_secs().to_string(),
    ));
    if let Some(s) = tg.slow_start {
        out.push((SLOW_START, s.as_secs().to_string()));
    }
    out
}

/// Values compare the way AWS means them: booleans case-insensitively, numbers numerically.
fn same_value(current: &str, desired: &str) -> bool {
    if current.eq_ignore_ascii_case(desired) {
        return true;
    }
    match (current.trim().parse::<i64>(), desired.trim().parse::<i64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The target group diff: only keys that differ. When the desired algorithm is least
/// outstanding requests and AWS has slow start on, slow start is turned off in the same
/// call, since AWS rejects the pair.
pub fn plan_target_group(
    current: &BTreeMap<String, String>,
    tg: &TargetGroupSection,
) -> Vec<AttributeChange> {
    let mut changes: Vec<AttributeChange> = desired_target_group(tg)
        .into_iter()
        .filter_map(|(key, desired)| {
            let cur = current.get(key);
            match cur {
                Some(c) if same_value(c, &desired) => None,
                _ => Some(AttributeChange {
                    key: key.to_string(),
                    current: cur.cloned(),
                    desired,
                    reason: None,
                }),
            }
        })
        .collect();
    if tg.algorithm == Algorithm::LeastOutstandingRequests && tg.slow_start.is_none() {
        if let Some(s) = current.get(SLOW_START) {
            if !same_value(s, "0") {
                changes.push(AttributeChange {
                    key: SLOW_START.to_string(),
                    current: Some(s.clone()),
                    desired: "0".to_string(),
                    reason: Some(
                        "AWS rejects slow start together with least_outstanding_requests"
                            .to_string(),
                    ),
                });
            }
        }
    }
    changes
}

/// Idle timeout change for the load balancer, if `idle_timeout` is configured.
pub fn plan_idle_timeout(
    current: &BTreeMap<String, String>,
    desired: Option<Duration>,
) -> Option<AttributeChange> {
    let desired = desired?.as_secs().to_string();
    let cur = current.get(IDLE_TIMEOUT);
    // An absent attribute is AWS's default of 60 s.
    let effective = cur
        .cloned()
        .unwrap_or_else(|| DEFAULT_IDLE_TIMEOUT_SECS.to_string());
    if same_value(&effective, &desired) {
        return None;
    }
    Some(AttributeChange {
        key: IDLE_TIMEOUT.to_string(),
        current: Some(effective),
        desired,
        reason: None,
    })
}

/// The idle timeout must comfortably exceed the longest quiet gap on a connection: the
/// Engine.IO ping interval and the app heartbeat interval. "Comfortably" here is 1.5x
/// plus 5 s, so one late ping does not get the connection cut.
pub fn idle_timeout_floor(gw: &GatewaySection) -> Duration {
    let longest = gw.ping_interval.max(gw.heartbeat_interval);
    longest + longest / 2 + Duration::from_secs(5)
}

/// A warning when the idle timeout is too short for the gateway's intervals.
pub fn idle_timeout_warning(idle: Duration, gw: &GatewaySection) -> Option<String> {
    let floor = idle_timeout_floor(gw);
    (idle < floor).then(|| {
        format!(
            "load balancer idle timeout {}s is not comfortably above the gateway's ping interval ({}) and heartbeat interval ({}): idle WebSocket connections may be cut; set [load_balancer] idle_timeout to at least {}s",
            idle.as_secs(),
            crate::duration::format(gw.ping_interval),
            crate::duration::format(gw.heartbeat_interval),
            floor.as_secs().div_ceil(10) * 10,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResourceRef;

    fn tg() -> TargetGroupSection {
        TargetGroupSection {
            id: ResourceRef::Name("bosar-api-tg".into()),
            stickiness: Stickiness::LbCookie,
            cookie_duration: Duration::from_secs(86_400),
            algorithm: Algorithm::LeastOutstandingRequests,
            deregistration_delay: Duration::from_secs(30),
            slow_start: None,
        }
    }

    fn moto_defaults() -> BTreeMap<String, String> {
        [
            ("deregistration_delay.timeout_seconds", "300"),
            ("stickiness.enabled", "false"),
            ("stickiness.type", "lb_cookie"),
            ("load_balancing.algorithm.type", "round_robin"),
            ("slow_start.duration_seconds", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn fresh_target_group_plans_four_changes_and_one_addition() {
        let plan = plan_target_group(&moto_defaults(), &tg());
        let lines: Vec<String> = plan.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "~ stickiness.enabled: false -> true",
                "+ stickiness.lb_cookie.duration_seconds: 86400",
                "~ load_balancing.algorithm.type: round_robin -> least_outstanding_requests",
                "~ deregistration_delay.timeout_seconds: 300 -> 30",
            ]
        );
    }

    #[test]
    fn in_sync_plans_nothing_and_compares_loosely() {
        let mut cur = moto_defaults();
        cur.insert("stickiness.enabled".into(), "True".into());
        cur.insert(
            "stickiness.lb_cookie.duration_seconds".into(),
            "086400".into(),
        );
        cur.insert(
            "load_balancing.algorithm.type".into(),
            "least_outstanding_requests".into(),
        );
        cur.insert("deregistration_delay.timeout_seconds".into(), "30".into());
        assert!(plan_target_group(&cur, &tg()).is_empty());
    }

    #[test]
    fn slow_start_is_turned_off_for_least_outstanding_requests() {
        let mut cur = moto_defaults();
        cur.insert("slow_start.duration_seconds".into(), "60".into());
        let plan = plan_target_group(&cur, &tg());
        let ss = plan
            .iter()
            .find(|c| c.key == SLOW_START)
            .expect("slow start planned");
        assert_eq!(ss.desired, "0");
        assert!(ss.reason.as_deref().unwrap().contains("rejects"));
    }

    #[test]
    fn slow_start_is_left_alone_for_round_robin() {
        let mut cur = moto_defaults();
        cur.insert("slow_start.duration_seconds".into(), "60".into());
        let mut t = tg();
        t.algorithm = Algorithm::RoundRobin;
        assert!(plan_target_group(&cur, &t)
            .iter()
            .all(|c| c.key != SLOW_START));
    }

    #[test]
    fn stickiness_off_only_disables() {
        let mut t = tg();
        t.stickiness = Stickiness::Off;
        let mut cur = moto_defaults();
        cur.insert("stickiness.enabled".into(), "true".into());
        let plan = plan_target_group(&cur, &t);
        assert_eq!(plan[0].to_string(), "~ stickiness.enabled: true -> false");
        assert!(plan
            .iter()
            .all(|c| !c.key.starts_with("stickiness.lb_cookie")));
    }

    #[test]
    fn app_cookie_sets_name_and_duration() {
        let mut t = tg();
        t.stickiness = Stickiness::AppCookie {
            cookie_name: "SESSION".into(),
        };
        let keys: Vec<String> = plan_target_group(&moto_defaults(), &t)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert!(keys.contains(&APP_COOKIE_NAME.to_string()));
        assert!(keys.contains(&APP_COOKIE_DURATION.to_string()));
        assert!(keys.contains(&STICKINESS_TYPE.to_string()));
    }

    #[test]
    fn idle_timeout_absent_means_default_60() {
        let cur = BTreeMap::new();
        assert_eq!(plan_idle_timeout(&cur, Some(Duration::from_secs(60))), None);
        let c = plan_idle_timeout(&cur, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(c.to_string(), "~ idle_timeout.timeout_seconds: 60 -> 120");
        assert_eq!(plan_idle_timeout(&cur, None), None);
    }

    #[test]
    fn idle_timeout_warning_threshold() {
        let gw = GatewaySection {
            url: "https://x".into(),
            namespace: "/chat".into(),
            health_path: "/health".into(),
            token_env: None,
            jwt_secret_env: None,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(60),
            heartbeat_event: "heartbeat".into(),
            heartbeat_interval: Duration::from_secs(30),
            stickiness_rounds: 20,
        };
        // longest 30 s -> floor 50 s
        assert!(idle_timeout_warning(Duration::from_secs(60), &gw).is_none());
        let w = idle_timeout_warning(Duration::from_secs(40), &gw).unwrap();
        assert!(w.contains("idle timeout 40s"), "{w}");
        assert!(w.contains("at least 50s"), "{w}");
    }
}
