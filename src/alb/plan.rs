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
pub const ANOMALY_MITIGATION: &str = "load_balancing.algorithm.anomaly_mitigation";
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

/// Desired target group attributes for the keys the config names, in a stable order (the
/// order AWS documents them in). A key the config leaves out is not here: not managed.
pub fn desired_target_group(tg: &TargetGroupSection) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let secs = |d: Duration| d.as_secs().to_string();
    match &tg.stickiness {
        None => {}
        Some(Stickiness::Off) => out.push((STICKINESS_ENABLED, "false".to_string())),
        Some(Stickiness::LbCookie) => {
            out.push((STICKINESS_ENABLED, "true".to_string()));
            out.push((STICKINESS_TYPE, "lb_cookie".to_string()));
            if let Some(d) = tg.cookie_duration {
                out.push((LB_COOKIE_DURATION, secs(d)));
            }
        }
        Some(Stickiness::AppCookie { cookie_name }) => {
            out.push((STICKINESS_ENABLED, "true".to_string()));
            out.push((STICKINESS_TYPE, "app_cookie".to_string()));
            out.push((APP_COOKIE_NAME, cookie_name.clone()));
            if let Some(d) = tg.cookie_duration {
                out.push((APP_COOKIE_DURATION, secs(d)));
            }
        }
    }
    if let Some(a) = tg.algorithm {
        out.push((ALGORITHM, a.as_aws().to_string()));
        // Config validation allows anomaly_mitigation only with weighted_random, so it is
        // never sent when leaving weighted_random.
        if let (Algorithm::WeightedRandom, Some(on)) = (a, tg.anomaly_mitigation) {
            out.push((
                ANOMALY_MITIGATION,
                if on { "on" } else { "off" }.to_string(),
            ));
        }
    }
    if let Some(d) = tg.deregistration_delay {
        out.push((DEREGISTRATION_DELAY, secs(d)));
    }
    if let Some(s) = tg.slow_start {
        out.push((SLOW_START, secs(s)));
    }
    out
}

/// Values compare the way AWS means them: booleans case-insensitively, numbers numerically.
pub fn same_value(current: &str, desired: &str) -> bool {
    if current.eq_ignore_ascii_case(desired) {
        return true;
    }
    match (current.trim().parse::<i64>(), desired.trim().parse::<i64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The target group diff: only keys the config names that differ. When the desired algorithm
/// is least outstanding requests or weighted random, slow start is not managed and AWS has it
/// on, slow start is turned off in the same call, since AWS rejects either pair.
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
    let excludes_slow_start = matches!(
        tg.algorithm,
        Some(Algorithm::LeastOutstandingRequests | Algorithm::WeightedRandom)
    );
    if excludes_slow_start && tg.slow_start.is_none() {
        if let Some(s) = current.get(SLOW_START).filter(|s| !same_value(s, "0")) {
            changes.push(AttributeChange {
                key: SLOW_START.to_string(),
                current: Some(s.clone()),
                desired: "0".to_string(),
                reason: Some(format!(
                    "AWS rejects slow start together with {}",
                    tg.algorithm.map(Algorithm::as_aws).unwrap_or_default()
                )),
            });
        }
    }
    changes
}

/// A key of deploy.toml that the file leaves out, and what AWS has for it: left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotManaged {
    /// The deploy.toml key that would manage it, like `target_group.algorithm`.
    pub config_key: &'static str,
    pub attribute: &'static str,
    pub current: String,
}

impl fmt::Display for NotManaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}  (no {} in deploy.toml)",
            self.attribute, self.current, self.config_key
        )
    }
}

/// The target group attributes this tool can manage that the config leaves out, with the
/// values AWS reports (keys AWS does not report are left out too).
pub fn not_managed_target_group(
    current: &BTreeMap<String, String>,
    tg: &TargetGroupSection,
    changes: &[AttributeChange],
) -> Vec<NotManaged> {
    let mut keys: Vec<(&'static str, &'static str)> = Vec::new();
    if tg.stickiness.is_none() {
        keys.push(("target_group.stickiness", STICKINESS_ENABLED));
        keys.push(("target_group.stickiness", STICKINESS_TYPE));
    }
    let cookie_type = match &tg.stickiness {
        Some(Stickiness::LbCookie) => Some("lb_cookie"),
        Some(Stickiness::AppCookie { .. }) => Some("app_cookie"),
        Some(Stickiness::Off) => None,
        None => current.get(STICKINESS_TYPE).map(String::as_str),
    };
    if tg.cookie_duration.is_none() {
        match cookie_type {
            Some("lb_cookie") => keys.push(("target_group.cookie_duration", LB_COOKIE_DURATION)),
            Some("app_cookie") => keys.push(("target_group.cookie_duration", APP_COOKIE_DURATION)),
            _ => {}
        }
    }
    if tg.algorithm.is_none() {
        keys.push(("target_group.algorithm", ALGORITHM));
    }
    let algorithm = tg
        .algorithm
        .map(Algorithm::as_aws)
        .or(current.get(ALGORITHM).map(String::as_str));
    if tg.anomaly_mitigation.is_none() && algorithm == Some("weighted_random") {
        keys.push(("target_group.anomaly_mitigation", ANOMALY_MITIGATION));
    }
    if tg.deregistration_delay.is_none() {
        keys.push(("target_group.deregistration_delay", DEREGISTRATION_DELAY));
    }
    if tg.slow_start.is_none() {
        keys.push(("target_group.slow_start", SLOW_START));
    }
    keys.into_iter()
        .filter(|(_, attr)| !changes.iter().any(|c| c.key == *attr))
        .filter_map(|(config_key, attribute)| {
            Some(NotManaged {
                config_key,
                attribute,
                current: current.get(attribute)?.clone(),
            })
        })
        .collect()
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
            stickiness: Some(Stickiness::LbCookie),
            cookie_duration: Some(Duration::from_secs(86_400)),
            algorithm: Some(Algorithm::LeastOutstandingRequests),
            deregistration_delay: Some(Duration::from_secs(30)),
            slow_start: None,
            anomaly_mitigation: None,
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
        t.algorithm = Some(Algorithm::RoundRobin);
        assert!(plan_target_group(&cur, &t)
            .iter()
            .all(|c| c.key != SLOW_START));
    }

    #[test]
    fn stickiness_off_only_disables() {
        let mut t = tg();
        t.stickiness = Some(Stickiness::Off);
        t.cookie_duration = None;
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
        t.stickiness = Some(Stickiness::AppCookie {
            cookie_name: "SESSION".into(),
        });
        let keys: Vec<String> = plan_target_group(&moto_defaults(), &t)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert!(keys.contains(&APP_COOKIE_NAME.to_string()));
        assert!(keys.contains(&APP_COOKIE_DURATION.to_string()));
        assert!(keys.contains(&STICKINESS_TYPE.to_string()));
    }

    /// A group tuned by hand (weighted random with anomaly mitigation, a long delay, slow
    /// start): a config naming only stickiness and its duration plans those and nothing else.
    fn hand_tuned() -> BTreeMap<String, String> {
        let mut cur = moto_defaults();
        for (k, v) in [
            ("load_balancing.algorithm.type", "weighted_random"),
            ("load_balancing.algorithm.anomaly_mitigation", "on"),
            ("deregistration_delay.timeout_seconds", "120"),
            ("slow_start.duration_seconds", "0"),
            ("stickiness.lb_cookie.duration_seconds", "3600"),
        ] {
            cur.insert(k.into(), v.into());
        }
        cur
    }

    #[test]
    fn absent_keys_are_not_planned_and_are_listed_as_not_managed() {
        let t = TargetGroupSection {
            id: ResourceRef::Name("bosar-api-tg".into()),
            stickiness: Some(Stickiness::LbCookie),
            cookie_duration: Some(Duration::from_secs(86_400)),
            algorithm: None,
            deregistration_delay: None,
            slow_start: None,
            anomaly_mitigation: None,
        };
        let cur = hand_tuned();
        let plan = plan_target_group(&cur, &t);
        let keys: Vec<&str> = plan.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![STICKINESS_ENABLED, LB_COOKIE_DURATION],
            "{plan:?}"
        );
        let listed: Vec<String> = not_managed_target_group(&cur, &t, &plan)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            listed,
            vec![
                "load_balancing.algorithm.type = weighted_random  (no target_group.algorithm in deploy.toml)",
                "load_balancing.algorithm.anomaly_mitigation = on  (no target_group.anomaly_mitigation in deploy.toml)",
                "deregistration_delay.timeout_seconds = 120  (no target_group.deregistration_delay in deploy.toml)",
                "slow_start.duration_seconds = 0  (no target_group.slow_start in deploy.toml)",
            ]
        );
        // Nothing named at all: nothing planned, everything listed once.
        let bare = TargetGroupSection {
            stickiness: None,
            cookie_duration: None,
            ..t
        };
        assert!(plan_target_group(&cur, &bare).is_empty());
        let listed = not_managed_target_group(&cur, &bare, &[]);
        assert_eq!(listed.len(), 7, "{listed:?}");
        assert_eq!(listed[0].attribute, STICKINESS_ENABLED);
        assert_eq!(listed[2].attribute, LB_COOKIE_DURATION);
    }

    #[test]
    fn weighted_random_turns_slow_start_off_and_manages_anomaly_mitigation() {
        let mut cur = moto_defaults();
        cur.insert(SLOW_START.into(), "60".into());
        let mut t = tg();
        t.algorithm = Some(Algorithm::WeightedRandom);
        t.anomaly_mitigation = Some(true);
        let plan = plan_target_group(&cur, &t);
        let ss = plan.iter().find(|c| c.key == SLOW_START).unwrap();
        assert_eq!(ss.desired, "0");
        assert_eq!(
            ss.reason.as_deref(),
            Some("AWS rejects slow start together with weighted_random")
        );
        let am = plan.iter().find(|c| c.key == ANOMALY_MITIGATION).unwrap();
        assert_eq!(
            am.to_string(),
            "+ load_balancing.algorithm.anomaly_mitigation: on"
        );
        // Leaving weighted random: anomaly mitigation is never sent.
        t.algorithm = Some(Algorithm::RoundRobin);
        t.anomaly_mitigation = None;
        let mut cur = hand_tuned();
        cur.insert(ANOMALY_MITIGATION.into(), "on".into());
        let plan = plan_target_group(&cur, &t);
        assert!(plan.iter().all(|c| c.key != ANOMALY_MITIGATION), "{plan:?}");
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
            test_url: None,
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
            targets: None,
            eio3: None,
            recovery: None,
            origins: Vec::new(),
        };
        // longest 30 s -> floor 50 s
        assert!(idle_timeout_warning(Duration::from_secs(60), &gw).is_none());
        let w = idle_timeout_warning(Duration::from_secs(40), &gw).unwrap();
        assert!(w.contains("idle timeout 40s"), "{w}");
        assert!(w.contains("at least 50s"), "{w}");
    }
}
