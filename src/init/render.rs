//! The `deploy.toml` that `init` writes, from what was read (pure, so every shape is tested
//! without AWS). Active keys hold today's values, so `plan` right after `init` changes no
//! attribute; commented-out lines below them hold the sticky-WebSocket state the README
//! recommends, and `[gateway]` commented out with values guessed from the container's
//! `WEBSOCKET_*` environment. No value of a secret-looking variable is ever written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::alb::plan as attrs;
use crate::duration;

/// What `init` found on AWS.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub region: String,
    pub cluster: String,
    pub service: String,
    pub container: String,
    /// The task definition's other containers (sidecars), listed in a comment.
    pub other_containers: Vec<String>,
    pub target_group: Option<TargetGroupFacts>,
    pub load_balancer: Option<LoadBalancerFacts>,
    /// The container's environment (names and values).
    pub environment: BTreeMap<String, String>,
    /// `--gateway-url`, when given.
    pub gateway_url: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TargetGroupFacts {
    pub name: String,
    pub health_check_path: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadBalancerFacts {
    pub name: String,
    pub dns_name: Option<String>,
    pub idle_timeout_secs: u64,
}

/// The managed prefix: variables with it are the gateway's settings.
const PREFIX: &str = "WEBSOCKET_";

/// A TOML basic string.
pub fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Seconds as AWS stores them, readable: whole hours as hours, everything else in seconds
/// (`300s`, not `5m`, so the file matches the console and the CLI).
fn seconds(n: u64) -> String {
    if n >= 3600 && n.is_multiple_of(3600) {
        format!("{}h", n / 3600)
    } else {
        format!("{n}s")
    }
}

fn secs(v: Option<&String>) -> Option<String> {
    let n: u64 = v?.trim().parse().ok()?;
    Some(seconds(n))
}

/// `key = value` padded so the comments line up.
fn line(out: &mut String, key: &str, value: &str, comment: &str) {
    let kv = format!("{key} = {value}");
    if comment.is_empty() {
        let _ = writeln!(out, "{kv}");
    } else {
        let _ = writeln!(out, "{kv:<40} # {comment}");
    }
}

fn suggestion(out: &mut String, key: &str, value: &str, why: &str) {
    let kv = format!("# {key} = {value}");
    let _ = writeln!(out, "{kv:<40} # recommended: {why}");
}

fn header(out: &mut String, d: &Discovered) {
    let _ = writeln!(
        out,
        "# bosar-deploy configuration for ECS service {} in cluster {} ({}).",
        d.service, d.cluster, d.region
    );
    out.push_str(
        "# Written by `bosar-deploy init` from what runs today: `bosar-deploy plan` shows no\n\
         # attribute change until you edit it. The commented-out `# key = value` lines are the\n\
         # sticky-WebSocket state the README recommends: uncomment one to adopt it, review with\n\
         # `bosar-deploy plan`, apply with `bosar-deploy alb-update` (or `full`).\n\
         # A key you delete is not managed: bosar-deploy leaves it as it is on AWS.\n\
         # Reference: README.md \"Configuration\".\n\n",
    );
}

fn target_group(out: &mut String, tg: &TargetGroupFacts) {
    let a = &tg.attributes;
    out.push_str("[target_group]\n");
    line(out, "name", &quoted(&tg.name), "");
    let enabled = a
        .get(attrs::STICKINESS_ENABLED)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match (enabled, a.get(attrs::STICKINESS_TYPE).map(String::as_str)) {
        (true, Some("app_cookie")) => {
            line(out, "stickiness", &quoted("app_cookie"), "today");
            if let Some(n) = a.get(attrs::APP_COOKIE_NAME) {
                line(out, "cookie_name", &quoted(n), "today");
            }
            if let Some(d) = secs(a.get(attrs::APP_COOKIE_DURATION)) {
                line(out, "cookie_duration", &quoted(&d), "today");
            }
        }
        (true, _) => {
            line(out, "stickiness", &quoted("lb_cookie"), "today");
            if let Some(d) = secs(a.get(attrs::LB_COOKIE_DURATION)) {
                line(out, "cookie_duration", &quoted(&d), "today");
            }
        }
        (false, _) => {
            line(out, "stickiness", &quoted("off"), "today");
            suggestion(
                out,
                "stickiness",
                &quoted("lb_cookie"),
                "Socket.IO long-polling needs every request of a session on one task",
            );
            suggestion(out, "cookie_duration", &quoted("24h"), "with lb_cookie");
        }
    }
    let algorithm = a.get(attrs::ALGORITHM).cloned();
    if let Some(alg) = &algorithm {
        line(out, "algorithm", &quoted(alg), "today");
        if alg == "weighted_random" {
            if let Some(am) = a.get(attrs::ANOMALY_MITIGATION) {
                line(
                    out,
                    "anomaly_mitigation",
                    if am == "on" { "true" } else { "false" },
                    "today",
                );
            }
        }
        if alg != "least_outstanding_requests" {
            suggestion(
                out,
                "algorithm",
                &quoted("least_outstanding_requests"),
                "spreads long-lived connections by load",
            );
        }
    }
    if let Some(d) = secs(a.get(attrs::DEREGISTRATION_DELAY)) {
        line(out, "deregistration_delay", &quoted(&d), "today");
        if d != "30s" {
            suggestion(
                out,
                "deregistration_delay",
                &quoted("30s"),
                "rollouts do not wait minutes per task; clients reconnect",
            );
        }
    }
    if let Some(s) = a.get(attrs::SLOW_START) {
        let s = secs(Some(s)).unwrap_or_else(|| "0s".into());
        line(out, "slow_start", &quoted(&s), "today");
        if s != "0s" {
            suggestion(
                out,
                "slow_start",
                &quoted("0s"),
                "AWS refuses slow start with least_outstanding_requests",
            );
        }
    }
    out.push('\n');
}

fn load_balancer(out: &mut String, lb: &LoadBalancerFacts) {
    out.push_str("[load_balancer]\n");
    line(out, "name", &quoted(&lb.name), "");
    let idle = seconds(lb.idle_timeout_secs);
    line(out, "idle_timeout", &quoted(&idle), "today");
    if lb.idle_timeout_secs < 120 {
        suggestion(
            out,
            "idle_timeout",
            &quoted("120s"),
            "comfortably above the ping and heartbeat intervals",
        );
    }
    out.push('\n');
}

fn ecs(out: &mut String, d: &Discovered) {
    out.push_str("[ecs]\n");
    line(out, "cluster", &quoted(&d.cluster), "");
    line(out, "service", &quoted(&d.service), "");
    line(
        out,
        "container",
        &quoted(&d.container),
        "the container whose image and environment deploy manages",
    );
    if !d.other_containers.is_empty() {
        let _ = writeln!(
            out,
            "# other containers of the task definition (copied as they are): {}",
            d.other_containers.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "# image = \"REGISTRY/REPOSITORY:TAG\"          # or --image on each deploy"
    );
    out.push('\n');
    let managed: Vec<(&String, &String)> = d
        .environment
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    let secret: Vec<&str> = managed
        .iter()
        .filter(|(k, v)| crate::ecs::masking::masked(k, &[v.as_str()], &[]))
        .map(|(k, _)| k.as_str())
        .collect();
    if managed.is_empty() {
        out.push_str(
            "# [ecs.environment]                       # absent: deploy never touches the environment\n\
             # WEBSOCKET_PING_INTERVAL = \"25000\"       # with it, WEBSOCKET_* not listed are removed\n\n",
        );
    } else if !secret.is_empty() {
        let _ = writeln!(
            out,
            "# [ecs.environment] is not written: {} look(s) like a secret, and its value is never\n\
             # written to a file. Without the table, deploy leaves the environment as it is.\n",
            secret.join(", ")
        );
    } else {
        out.push_str(
            "# The container's WEBSOCKET_* variables today. While this table is present, deploy\n\
             # sets these and removes WEBSOCKET_* variables not listed; delete the table to leave\n\
             # the environment alone. Other variables are always kept.\n\
             [ecs.environment]\n",
        );
        for (k, v) in managed {
            line(out, k, &quoted(v), "");
        }
        out.push('\n');
    }
}

/// `20000` (ms, as the gateway reads it) as a duration key's value.
fn ms(env: &BTreeMap<String, String>, var: &str) -> Option<String> {
    let n: u64 = env.get(var)?.trim().parse().ok()?;
    Some(duration::format(Duration::from_millis(n)))
}

fn gateway(out: &mut String, d: &Discovered) {
    out.push_str(
        "# What `verify` (and `full`'s verify step) connects to. Uncomment and fill in to check\n\
         # the deployed gateway from outside; the intervals must match the handshake.\n",
    );
    out.push_str("# [gateway]\n");
    let url = d.gateway_url.clone().unwrap_or_else(|| {
        d.load_balancer
            .as_ref()
            .and_then(|l| l.dns_name.clone())
            .map(|dns| format!("https://{dns}"))
            .unwrap_or_else(|| "https://api.example.com".into())
    });
    let _ = writeln!(out, "# url = {}", quoted(&url));
    let _ = writeln!(out, "# namespace = \"/chat\"");
    let health = d
        .target_group
        .as_ref()
        .and_then(|t| t.health_check_path.clone())
        .unwrap_or_else(|| "/health".into());
    let _ = writeln!(out, "# health_path = {}", quoted(&health));
    let _ = writeln!(out, "# token_env = \"GATEWAY_TOKEN\"               # the variable holding a JWT (never the JWT)");
    for (key, var) in [
        ("ping_interval", "WEBSOCKET_PING_INTERVAL"),
        ("ping_timeout", "WEBSOCKET_PING_TIMEOUT"),
        ("heartbeat_interval", "WEBSOCKET_HEARTBEAT_INTERVAL"),
    ] {
        match ms(&d.environment, var) {
            Some(v) => {
                let kv = format!("# {key} = {}", quoted(&v));
                let _ = writeln!(out, "{kv:<40} # from {var}");
            }
            None => {
                let default = if key == "ping_timeout" {
                    "20s"
                } else if key == "heartbeat_interval" {
                    "30s"
                } else {
                    "25s"
                };
                let _ = writeln!(out, "# {key} = \"{default}\"");
            }
        }
    }
    let _ = writeln!(out, "# heartbeat_event = \"heartbeat\"");
}

/// The whole file.
pub fn deploy_toml(d: &Discovered) -> String {
    let mut out = String::new();
    header(&mut out, d);
    out.push_str("[aws]\n");
    line(&mut out, "region", &quoted(&d.region), "");
    out.push('\n');
    if let Some(lb) = &d.load_balancer {
        load_balancer(&mut out, lb);
    }
    if let Some(tg) = &d.target_group {
        target_group(&mut out, tg);
    }
    ecs(&mut out, d);
    gateway(&mut out, d);
    out
}

/// The same keys as an `[environments.NAME]` overlay, appended to an existing file.
pub fn environment_table(name: &str, d: &Discovered) -> String {
    let body = deploy_toml(d);
    let mut out = format!(
        "\n# Environment {name}: `bosar-deploy --env {name} …` (or BOSAR_DEPLOY_ENV={name}) uses these\n\
         # keys over the ones above. Written by `bosar-deploy init --env {name}`.\n"
    );
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let table = if bare { name.to_string() } else { quoted(name) };
    for l in body.lines() {
        let t = l.trim_start();
        if let Some(section) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let _ = writeln!(out, "[environments.{table}.{section}]");
        } else if let Some(section) = t
            .strip_prefix("# [")
            .and_then(|r| r.split_once(']'))
            .map(|(s, _)| s)
        {
            let _ = writeln!(out, "# [environments.{table}.{section}]");
        } else if t.starts_with("# bosar-deploy configuration") || t.starts_with("# Written by") {
            continue;
        } else {
            let _ = writeln!(out, "{l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moto_stack() -> Discovered {
        let attributes = [
            ("stickiness.enabled", "false"),
            ("stickiness.type", "lb_cookie"),
            ("load_balancing.algorithm.type", "round_robin"),
            ("deregistration_delay.timeout_seconds", "300"),
            ("slow_start.duration_seconds", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Discovered {
            region: "us-east-1".into(),
            cluster: "bosar-cluster".into(),
            service: "bosar-api".into(),
            container: "bosar-api".into(),
            other_containers: vec!["log-router".into()],
            target_group: Some(TargetGroupFacts {
                name: "bosar-api-tg".into(),
                health_check_path: Some("/health/websocket".into()),
                attributes,
            }),
            load_balancer: Some(LoadBalancerFacts {
                name: "bosar-api-alb".into(),
                dns_name: Some("bosar-api-alb-1.us-east-1.elb.amazonaws.com".into()),
                idle_timeout_secs: 60,
            }),
            environment: [
                ("NODE_ENV", "production"),
                ("WEBSOCKET_PING_INTERVAL", "20000"),
                ("WEBSOCKET_PING_TIMEOUT", "60000"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            gateway_url: None,
        }
    }

    #[test]
    fn today_active_and_the_recommendations_commented() {
        let text = deploy_toml(&moto_stack());
        let cfg = crate::config::parse(std::path::Path::new("deploy.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let tg = &cfg.target_group;
        assert_eq!(tg.stickiness, Some(crate::config::Stickiness::Off));
        assert_eq!(tg.deregistration_delay, Some(Duration::from_secs(300)));
        assert_eq!(
            cfg.ecs
                .unwrap()
                .environment
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["WEBSOCKET_PING_INTERVAL", "WEBSOCKET_PING_TIMEOUT"]
        );
        for commented in [
            "# stickiness = \"lb_cookie\"",
            "# algorithm = \"least_outstanding_requests\"",
            "# deregistration_delay = \"30s\"",
            "# idle_timeout = \"120s\"",
            "# url = \"https://bosar-api-alb-1.us-east-1.elb.amazonaws.com\"",
            "# ping_interval = \"20s\"",
            "# other containers of the task definition (copied as they are): log-router",
        ] {
            assert!(text.contains(commented), "missing {commented:?}:\n{text}");
        }
        assert!(!text.contains("NODE_ENV"), "only WEBSOCKET_* are managed");
    }

    #[test]
    fn secret_looking_values_are_never_written() {
        let mut d = moto_stack();
        d.environment
            .insert("WEBSOCKET_AUTH_TOKEN".into(), "s3cr3t-token".into());
        d.environment.insert(
            "WEBSOCKET_REDIS_URL".into(),
            "redis://:hunter2@redis.internal:6379".into(),
        );
        let text = deploy_toml(&d);
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains(
                "[ecs.environment] is not written: WEBSOCKET_AUTH_TOKEN, WEBSOCKET_REDIS_URL"
            ),
            "{text}"
        );
        let cfg = crate::config::parse(std::path::Path::new("d.toml"), &text).unwrap();
        assert!(cfg.ecs.unwrap().environment.is_none(), "absent: untouched");
    }

    #[test]
    fn an_environment_table_overlays_the_base() {
        let base = deploy_toml(&moto_stack());
        let mut staging = moto_stack();
        staging.cluster = "bosar-staging".into();
        staging.region = "eu-west-1".into();
        let text = base + &environment_table("staging", &staging);
        let path = std::path::Path::new("deploy.toml");
        let cfg = crate::config::parse_environment(path, &text, Some("staging"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cfg.ecs.unwrap().cluster, "bosar-staging");
        assert!(
            text.contains("[environments.staging.target_group]"),
            "{text}"
        );
    }
}
