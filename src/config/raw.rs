//! The first pass: the file as written, every value with its place in the source. A walk over
//! the parsed TOML (not serde, which stops at the first error) reports every unknown key, with
//! the nearest known one, and every value of the wrong type, all at once. `[environments.NAME]`
//! tables have the same shape as the file and are overlaid on it key by key.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml_edit::{ImDocument, Item, TableLike};

use super::diagnostics::{did_you_mean, Errors};

mod probe;
pub(super) use probe::{RawProbe, RawProbeEcs};

pub(super) type S<T> = Spanned<T>;

#[derive(Default)]
pub(super) struct RawConfig {
    pub(super) aws: Option<RawAws>,
    pub(super) load_balancer: Option<S<RawLoadBalancer>>,
    pub(super) target_group: Option<S<RawTargetGroup>>,
    pub(super) ecs: Option<S<RawEcs>>,
    pub(super) gateway: Option<S<RawGateway>>,
    pub(super) monitor: Option<S<RawMonitor>>,
    /// `[probe]`: where `verify --on-ecs` starts its shards.
    pub(super) probe: Option<RawProbe>,
}

/// `[monitor]`: where `monitor --emit emf` publishes.
#[derive(Default)]
pub(super) struct RawMonitor {
    pub(super) namespace: Option<S<String>>,
    pub(super) dimensions: Option<S<BTreeMap<S<String>, S<String>>>>,
}

#[derive(Default)]
pub(super) struct RawAws {
    pub(super) region: Option<S<String>>,
    pub(super) profile: Option<S<String>>,
}

#[derive(Default)]
pub(super) struct RawLoadBalancer {
    pub(super) name: Option<S<String>>,
    pub(super) arn: Option<S<String>>,
    pub(super) idle_timeout: Option<S<String>>,
}

#[derive(Default)]
pub(super) struct RawTargetGroup {
    pub(super) name: Option<S<String>>,
    pub(super) arn: Option<S<String>>,
    pub(super) stickiness: Option<S<String>>,
    pub(super) cookie_name: Option<S<String>>,
    pub(super) cookie_duration: Option<S<String>>,
    pub(super) algorithm: Option<S<String>>,
    pub(super) deregistration_delay: Option<S<String>>,
    pub(super) slow_start: Option<S<String>>,
    pub(super) anomaly_mitigation: Option<S<bool>>,
}

pub(super) type RawEnvironment = BTreeMap<S<String>, S<String>>;

#[derive(Default)]
pub(super) struct RawEcs {
    pub(super) cluster: Option<S<String>>,
    pub(super) service: Option<S<String>>,
    pub(super) container: Option<S<String>>,
    pub(super) image: Option<S<String>>,
    pub(super) timeout: Option<S<String>>,
    pub(super) poll_interval: Option<S<String>>,
    pub(super) managed_env_prefix: Option<S<String>>,
    pub(super) max_failed_tasks: Option<S<i64>>,
    pub(super) show_values: Option<S<Vec<S<String>>>>,
    pub(super) acknowledge: Option<S<Vec<S<String>>>>,
    pub(super) environment: Option<S<RawEnvironment>>,
    pub(super) deployment: Option<S<RawDeployment>>,
}

/// `[ecs.deployment]`: the service's deployment strategy, as written.
#[derive(Default)]
pub(super) struct RawDeployment {
    pub(super) strategy: Option<S<String>>,
    pub(super) bake_time: Option<S<String>>,
    pub(super) canary_percent: Option<S<f64>>,
    pub(super) canary_bake_time: Option<S<String>>,
    pub(super) step_percent: Option<S<f64>>,
    pub(super) step_bake_time: Option<S<String>>,
    pub(super) circuit_breaker: Option<S<bool>>,
    pub(super) rollback: Option<S<bool>>,
    pub(super) minimum_healthy_percent: Option<S<i64>>,
    pub(super) maximum_percent: Option<S<i64>>,
    pub(super) gate: Option<S<String>>,
    pub(super) gate_timeout: Option<S<String>>,
}

#[derive(Default)]
pub(super) struct RawGateway {
    pub(super) url: Option<S<String>>,
    pub(super) test_url: Option<S<String>>,
    pub(super) namespace: Option<S<String>>,
    pub(super) health_path: Option<S<String>>,
    pub(super) token_env: Option<S<String>>,
    pub(super) jwt_secret_env: Option<S<String>>,
    pub(super) ping_interval: Option<S<String>>,
    pub(super) ping_timeout: Option<S<String>>,
    pub(super) heartbeat_event: Option<S<String>>,
    pub(super) heartbeat_interval: Option<S<String>>,
    pub(super) stickiness_rounds: Option<S<i64>>,
    pub(super) targets: Option<S<i64>>,
    pub(super) eio3: Option<S<bool>>,
    pub(super) recovery: Option<S<bool>>,
    pub(super) origins: Option<S<Vec<S<String>>>>,
}

/// One `[environments.NAME]` table.
pub(super) struct RawOverlay {
    pub(super) name: String,
    /// The whole table, so errors on its values can name the environment.
    pub(super) span: Range<usize>,
    pub(super) config: RawConfig,
}

pub(super) struct RawFile {
    pub(super) base: RawConfig,
    pub(super) environments: Vec<RawOverlay>,
}

const TOP: [&str; 8] = [
    "aws",
    "load_balancer",
    "target_group",
    "ecs",
    "gateway",
    "monitor",
    "probe",
    "environments",
];
const MONITOR: [&str; 2] = ["namespace", "dimensions"];
const AWS: [&str; 2] = ["region", "profile"];
const LOAD_BALANCER: [&str; 3] = ["name", "arn", "idle_timeout"];
const TARGET_GROUP: [&str; 9] = [
    "name",
    "arn",
    "stickiness",
    "cookie_name",
    "cookie_duration",
    "algorithm",
    "deregistration_delay",
    "slow_start",
    "anomaly_mitigation",
];
const ECS: [&str; 12] = [
    "cluster",
    "service",
    "container",
    "image",
    "timeout",
    "poll_interval",
    "managed_env_prefix",
    "max_failed_tasks",
    "show_values",
    "acknowledge",
    "environment",
    "deployment",
];
const DEPLOYMENT: [&str; 12] = [
    "strategy",
    "bake_time",
    "canary_percent",
    "canary_bake_time",
    "step_percent",
    "step_bake_time",
    "circuit_breaker",
    "rollback",
    "minimum_healthy_percent",
    "maximum_percent",
    "gate",
    "gate_timeout",
];
const GATEWAY: [&str; 15] = [
    "url",
    "test_url",
    "namespace",
    "health_path",
    "token_env",
    "jwt_secret_env",
    "ping_interval",
    "ping_timeout",
    "heartbeat_event",
    "heartbeat_interval",
    "stickiness_rounds",
    "targets",
    "eio3",
    "recovery",
    "origins",
];

/// A table being read: its dotted path and its items.
struct Table<'a> {
    path: String,
    items: &'a dyn TableLike,
    span: Range<usize>,
}

fn span_of(item: &Item) -> Range<usize> {
    item.span().unwrap_or(0..0)
}

impl<'a> Table<'a> {
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Unknown keys, each with the nearest allowed one when it looks like a typo.
    fn check_keys(&self, allowed: &[&str], errs: &mut Errors) {
        for (k, item) in self.items.iter() {
            if allowed.contains(&k) {
                continue;
            }
            let span = self
                .items
                .get_key_value(k)
                .and_then(|(key, _)| key.span())
                .unwrap_or_else(|| span_of(item));
            let message = match did_you_mean(k, allowed) {
                Some(near) => format!("unknown key `{k}`; did you mean `{near}`?"),
                None => format!("unknown key `{k}`"),
            };
            let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            errs.at(
                span,
                &self.key(k),
                message,
                Some(&format!("keys {}", list.join(", "))),
            );
        }
    }

    fn item(&self, key: &str) -> Option<&'a Item> {
        self.items.get(key).filter(|i| !i.is_none())
    }

    fn wrong_type(&self, errs: &mut Errors, key: &str, item: &Item, expected: &str) {
        errs.at(
            span_of(item),
            &self.key(key),
            format!("invalid type: {}, expected {expected}", item.type_name()),
            Some(match expected {
                "a string" => "a quoted string (durations carry units: \"30s\", \"24h\")",
                "an integer" => "a whole number without quotes",
                "a number" => "a number without quotes, like 5 or 12.5",
                "true or false" => "true or false, without quotes",
                "an environment value" => {
                    "a string, a whole number or true/false (ECS passes every value as text; the gateway's WEBSOCKET_*_INTERVAL/TIMEOUT are milliseconds: 30000)"
                }
                _ => expected,
            }),
        );
    }

    fn str(&self, key: &str, errs: &mut Errors) -> Option<S<String>> {
        let item = self.item(key)?;
        match item.as_str() {
            Some(v) => Some(Spanned::new(span_of(item), v.to_string())),
            None => {
                self.wrong_type(errs, key, item, "a string");
                None
            }
        }
    }

    fn int(&self, key: &str, errs: &mut Errors) -> Option<S<i64>> {
        let item = self.item(key)?;
        match item.as_integer() {
            Some(v) => Some(Spanned::new(span_of(item), v)),
            None => {
                self.wrong_type(errs, key, item, "an integer");
                None
            }
        }
    }

    /// A number written either way (`5` or `5.0`): percentages ECS takes in steps of 0.1.
    fn number(&self, key: &str, errs: &mut Errors) -> Option<S<f64>> {
        let item = self.item(key)?;
        let v = match item.as_value() {
            Some(toml_edit::Value::Integer(i)) => *i.value() as f64,
            Some(toml_edit::Value::Float(f)) => *f.value(),
            _ => {
                self.wrong_type(errs, key, item, "a number");
                return None;
            }
        };
        Some(Spanned::new(span_of(item), v))
    }

    /// An environment variable's value: ECS passes every value as text, so a number or a
    /// boolean is taken as it is written (`30000` is `"30000"`).
    fn env_value(&self, key: &str, errs: &mut Errors) -> Option<S<String>> {
        let item = self.item(key)?;
        let text = match item.as_value() {
            Some(toml_edit::Value::String(s)) => s.value().clone(),
            Some(toml_edit::Value::Integer(i)) => i.value().to_string(),
            Some(toml_edit::Value::Boolean(b)) => b.value().to_string(),
            _ => {
                self.wrong_type(errs, key, item, "an environment value");
                return None;
            }
        };
        Some(Spanned::new(span_of(item), text))
    }

    fn bool(&self, key: &str, errs: &mut Errors) -> Option<S<bool>> {
        let item = self.item(key)?;
        match item.as_bool() {
            Some(v) => Some(Spanned::new(span_of(item), v)),
            None => {
                self.wrong_type(errs, key, item, "true or false");
                None
            }
        }
    }

    fn strings(&self, key: &str, errs: &mut Errors) -> Option<S<Vec<S<String>>>> {
        let item = self.item(key)?;
        let Some(array) = item.as_array() else {
            self.wrong_type(errs, key, item, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for v in array.iter() {
            let span = v.span().unwrap_or(0..0);
            match v.as_str() {
                Some(s) => out.push(Spanned::new(span, s.to_string())),
                None => errs.at(
                    span,
                    &self.key(key),
                    format!("invalid type: {}, expected a string", v.type_name()),
                    Some("an array of quoted variable names, like [\"WEBSOCKET_AUTH_MODE\"]"),
                ),
            }
        }
        Some(Spanned::new(span_of(item), out))
    }

    fn table(&self, key: &str, errs: &mut Errors) -> Option<Table<'a>> {
        let item = self.item(key)?;
        match item.as_table_like() {
            Some(items) => Some(Table {
                path: self.key(key),
                items,
                span: span_of(item),
            }),
            None => {
                self.wrong_type(errs, key, item, &format!("a table [{}]", self.key(key)));
                None
            }
        }
    }
}

/// At most this many duplicate keys are stepped over in one file.
const MAX_DUPLICATES: usize = 100;

/// Parses the TOML, reporting every duplicate key: each one's line is blanked (spaces, so
/// every later place stays where it was) and the parse resumes, when the line is a whole
/// `key = value` of its own. Any other syntax error ends the parse (`None`), since what
/// follows it cannot be read reliably.
fn parse(source: &str, errs: &mut Errors) -> Option<ImDocument<String>> {
    let mut text = source.to_string();
    for _ in 0..=MAX_DUPLICATES {
        let e = match ImDocument::parse(text.clone()) {
            Ok(d) => return Some(d),
            Err(e) => e,
        };
        let span = e.span().unwrap_or(0..0);
        errs.at(span.clone(), "", e.message().trim().to_string(), None);
        let start = text[..span.start.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = &text[start..end];
        let whole = !line.trim_start().starts_with('[') && ImDocument::parse(line).is_ok();
        if !e.message().starts_with("duplicate key") || !whole {
            return None;
        }
        text.replace_range(start..end, &" ".repeat(end - start));
    }
    None
}

/// Parses and reads the whole file. `None` only when the TOML itself does not parse.
pub(super) fn read(source: &str, errs: &mut Errors) -> Option<RawFile> {
    let doc = parse(source, errs)?;
    let root = Table {
        path: String::new(),
        items: doc.as_table(),
        span: 0..0,
    };
    let base = read_config(&root, &TOP, errs);
    let mut environments = Vec::new();
    if let Some(envs) = root.table("environments", errs) {
        for (name, item) in envs.items.iter() {
            let Some(table) = envs.table(name, errs) else {
                continue;
            };
            environments.push(RawOverlay {
                name: name.to_string(),
                span: covering_span(item),
                config: read_config(&table, &TOP[..7], errs),
            });
        }
    }
    Some(RawFile { base, environments })
}

/// Where an environment's values are: its own span, or (a table only implied by dotted
/// headers like `[environments.staging.ecs]` has none) the range its values cover, so their
/// errors still name the environment.
fn covering_span(item: &Item) -> Range<usize> {
    let mut span: Option<Range<usize>> = item.span();
    if let Some(t) = item.as_table_like() {
        for (_, child) in t.iter() {
            let c = covering_span(child);
            if c.start < c.end {
                span = Some(match span {
                    Some(s) => s.start.min(c.start)..s.end.max(c.end),
                    None => c,
                });
            }
        }
    }
    span.unwrap_or(0..0)
}

fn spanned<T>(t: &Table, v: T) -> S<T> {
    Spanned::new(t.span.clone(), v)
}

fn read_config(t: &Table, allowed: &[&str], errs: &mut Errors) -> RawConfig {
    t.check_keys(allowed, errs);
    RawConfig {
        aws: t.table("aws", errs).map(|a| {
            a.check_keys(&AWS, errs);
            RawAws {
                region: a.str("region", errs),
                profile: a.str("profile", errs),
            }
        }),
        load_balancer: t.table("load_balancer", errs).map(|l| {
            l.check_keys(&LOAD_BALANCER, errs);
            let v = RawLoadBalancer {
                name: l.str("name", errs),
                arn: l.str("arn", errs),
                idle_timeout: l.str("idle_timeout", errs),
            };
            spanned(&l, v)
        }),
        target_group: t
            .table("target_group", errs)
            .map(|g| spanned(&g, read_target_group(&g, errs))),
        ecs: t
            .table("ecs", errs)
            .map(|e| spanned(&e, read_ecs(&e, errs))),
        gateway: t
            .table("gateway", errs)
            .map(|g| spanned(&g, read_gateway(&g, errs))),
        monitor: t
            .table("monitor", errs)
            .map(|m| spanned(&m, read_monitor(&m, errs))),
        probe: t.table("probe", errs).map(|p| probe::read_probe(&p, errs)),
    }
}

fn read_target_group(g: &Table, errs: &mut Errors) -> RawTargetGroup {
    g.check_keys(&TARGET_GROUP, errs);
    RawTargetGroup {
        name: g.str("name", errs),
        arn: g.str("arn", errs),
        stickiness: g.str("stickiness", errs),
        cookie_name: g.str("cookie_name", errs),
        cookie_duration: g.str("cookie_duration", errs),
        algorithm: g.str("algorithm", errs),
        deregistration_delay: g.str("deregistration_delay", errs),
        slow_start: g.str("slow_start", errs),
        anomaly_mitigation: g.bool("anomaly_mitigation", errs),
    }
}

fn read_ecs(e: &Table, errs: &mut Errors) -> RawEcs {
    e.check_keys(&ECS, errs);
    let environment = e.table("environment", errs).map(|env| {
        let mut vars = BTreeMap::new();
        for (k, _) in env.items.iter() {
            let key_span = env
                .items
                .get_key_value(k)
                .and_then(|(key, _)| key.span())
                .unwrap_or(0..0);
            if let Some(v) = env.env_value(k, errs) {
                vars.insert(Spanned::new(key_span, k.to_string()), v);
            }
        }
        Spanned::new(env.span.clone(), vars)
    });
    RawEcs {
        cluster: e.str("cluster", errs),
        service: e.str("service", errs),
        container: e.str("container", errs),
        image: e.str("image", errs),
        timeout: e.str("timeout", errs),
        poll_interval: e.str("poll_interval", errs),
        managed_env_prefix: e.str("managed_env_prefix", errs),
        max_failed_tasks: e.int("max_failed_tasks", errs),
        show_values: e.strings("show_values", errs),
        acknowledge: e.strings("acknowledge", errs),
        environment,
        deployment: e
            .table("deployment", errs)
            .map(|d| spanned(&d, read_deployment(&d, errs))),
    }
}

fn read_deployment(d: &Table, errs: &mut Errors) -> RawDeployment {
    d.check_keys(&DEPLOYMENT, errs);
    RawDeployment {
        strategy: d.str("strategy", errs),
        bake_time: d.str("bake_time", errs),
        canary_percent: d.number("canary_percent", errs),
        canary_bake_time: d.str("canary_bake_time", errs),
        step_percent: d.number("step_percent", errs),
        step_bake_time: d.str("step_bake_time", errs),
        circuit_breaker: d.bool("circuit_breaker", errs),
        rollback: d.bool("rollback", errs),
        minimum_healthy_percent: d.int("minimum_healthy_percent", errs),
        maximum_percent: d.int("maximum_percent", errs),
        gate: d.str("gate", errs),
        gate_timeout: d.str("gate_timeout", errs),
    }
}

fn read_monitor(m: &Table, errs: &mut Errors) -> RawMonitor {
    m.check_keys(&MONITOR, errs);
    let dimensions = m.table("dimensions", errs).map(|d| {
        let mut dims = BTreeMap::new();
        for (k, _) in d.items.iter() {
            let key_span = d
                .items
                .get_key_value(k)
                .and_then(|(key, _)| key.span())
                .unwrap_or(0..0);
            if let Some(v) = d.str(k, errs) {
                dims.insert(Spanned::new(key_span, k.to_string()), v);
            }
        }
        Spanned::new(d.span.clone(), dims)
    });
    RawMonitor {
        namespace: m.str("namespace", errs),
        dimensions,
    }
}

fn read_gateway(g: &Table, errs: &mut Errors) -> RawGateway {
    g.check_keys(&GATEWAY, errs);
    RawGateway {
        url: g.str("url", errs),
        test_url: g.str("test_url", errs),
        namespace: g.str("namespace", errs),
        health_path: g.str("health_path", errs),
        token_env: g.str("token_env", errs),
        jwt_secret_env: g.str("jwt_secret_env", errs),
        ping_interval: g.str("ping_interval", errs),
        ping_timeout: g.str("ping_timeout", errs),
        heartbeat_event: g.str("heartbeat_event", errs),
        heartbeat_interval: g.str("heartbeat_interval", errs),
        stickiness_rounds: g.int("stickiness_rounds", errs),
        targets: g.int("targets", errs),
        eio3: g.bool("eio3", errs),
        recovery: g.bool("recovery", errs),
        origins: g.strings("origins", errs),
    }
}

// ---------------------------------------------------------------------------------------------
// Environments: the overlay's keys win, key by key; tables merge, they do not replace.

fn table<T>(base: Option<S<T>>, over: Option<S<T>>, merge: fn(T, T) -> T) -> Option<S<T>> {
    match (base, over) {
        (Some(b), Some(o)) => {
            let span = b.span();
            Some(Spanned::new(span, merge(b.into_inner(), o.into_inner())))
        }
        (b, o) => o.or(b),
    }
}

/// `base` with `over`'s keys on top.
pub(super) fn overlay(base: RawConfig, over: RawConfig) -> RawConfig {
    RawConfig {
        aws: match (base.aws, over.aws) {
            (Some(b), Some(o)) => Some(RawAws {
                region: o.region.or(b.region),
                profile: o.profile.or(b.profile),
            }),
            (b, o) => o.or(b),
        },
        load_balancer: table(base.load_balancer, over.load_balancer, |b, o| {
            RawLoadBalancer {
                name: o.name.or(b.name),
                arn: o.arn.or(b.arn),
                idle_timeout: o.idle_timeout.or(b.idle_timeout),
            }
        }),
        // The cookie keys belong to the stickiness they were written with, and anomaly
        // mitigation to its algorithm: an environment that sets one takes none of the others
        // from the base (they would describe another cookie, or a pair AWS refuses).
        target_group: table(base.target_group, over.target_group, |b, o| {
            let own_cookie = o.stickiness.is_some();
            let own_algorithm = o.algorithm.is_some();
            RawTargetGroup {
                name: o.name.or(b.name),
                arn: o.arn.or(b.arn),
                stickiness: o.stickiness.or(b.stickiness),
                cookie_name: o.cookie_name.or(b.cookie_name.filter(|_| !own_cookie)),
                cookie_duration: o
                    .cookie_duration
                    .or(b.cookie_duration.filter(|_| !own_cookie)),
                algorithm: o.algorithm.or(b.algorithm),
                deregistration_delay: o.deregistration_delay.or(b.deregistration_delay),
                slow_start: o.slow_start.or(b.slow_start),
                anomaly_mitigation: o
                    .anomaly_mitigation
                    .or(b.anomaly_mitigation.filter(|_| !own_algorithm)),
            }
        }),
        ecs: table(base.ecs, over.ecs, |b, o| RawEcs {
            cluster: o.cluster.or(b.cluster),
            service: o.service.or(b.service),
            container: o.container.or(b.container),
            image: o.image.or(b.image),
            timeout: o.timeout.or(b.timeout),
            poll_interval: o.poll_interval.or(b.poll_interval),
            managed_env_prefix: o.managed_env_prefix.or(b.managed_env_prefix),
            max_failed_tasks: o.max_failed_tasks.or(b.max_failed_tasks),
            show_values: o.show_values.or(b.show_values),
            acknowledge: o.acknowledge.or(b.acknowledge),
            environment: table(b.environment, o.environment, |mut b, o| {
                for (k, v) in o {
                    b.remove(&k);
                    b.insert(k, v);
                }
                b
            }),
            deployment: table(b.deployment, o.deployment, overlay_deployment),
        }),
        gateway: table(base.gateway, over.gateway, |b, o| RawGateway {
            url: o.url.or(b.url),
            test_url: o.test_url.or(b.test_url),
            namespace: o.namespace.or(b.namespace),
            health_path: o.health_path.or(b.health_path),
            token_env: o.token_env.or(b.token_env),
            jwt_secret_env: o.jwt_secret_env.or(b.jwt_secret_env),
            ping_interval: o.ping_interval.or(b.ping_interval),
            ping_timeout: o.ping_timeout.or(b.ping_timeout),
            heartbeat_event: o.heartbeat_event.or(b.heartbeat_event),
            heartbeat_interval: o.heartbeat_interval.or(b.heartbeat_interval),
            stickiness_rounds: o.stickiness_rounds.or(b.stickiness_rounds),
            targets: o.targets.or(b.targets),
            eio3: o.eio3.or(b.eio3),
            recovery: o.recovery.or(b.recovery),
            origins: o.origins.or(b.origins),
        }),
        monitor: table(base.monitor, over.monitor, |b, o| RawMonitor {
            namespace: o.namespace.or(b.namespace),
            dimensions: o.dimensions.or(b.dimensions),
        }),
        probe: match (base.probe, over.probe) {
            (Some(b), Some(o)) => Some(probe::overlay_probe(b, o)),
            (b, o) => o.or(b),
        },
    }
}

/// The strategy's own keys belong to the strategy they were written with: an environment that
/// names `strategy` takes none of them from the base (a base canary's `canary_percent` would
/// be an error under an environment's `linear`). The gate and the service-wide keys layer.
fn overlay_deployment(b: RawDeployment, o: RawDeployment) -> RawDeployment {
    let own = o.strategy.is_some();
    let base = |v: Option<S<String>>| v.filter(|_| !own);
    let base_pct = |v: Option<S<f64>>| v.filter(|_| !own);
    RawDeployment {
        strategy: o.strategy.or(b.strategy),
        bake_time: o.bake_time.or(base(b.bake_time)),
        canary_percent: o.canary_percent.or(base_pct(b.canary_percent)),
        canary_bake_time: o.canary_bake_time.or(base(b.canary_bake_time)),
        step_percent: o.step_percent.or(base_pct(b.step_percent)),
        step_bake_time: o.step_bake_time.or(base(b.step_bake_time)),
        circuit_breaker: o.circuit_breaker.or(b.circuit_breaker),
        rollback: o.rollback.or(b.rollback),
        minimum_healthy_percent: o.minimum_healthy_percent.or(b.minimum_healthy_percent),
        maximum_percent: o.maximum_percent.or(b.maximum_percent),
        gate: o.gate.or(b.gate),
        gate_timeout: o.gate_timeout.or(b.gate_timeout),
    }
}
