//! `deploy.toml`: the one config file. The schema is a user-facing contract: keys are added, never renamed.
//!
//! Parsing happens in two passes. Serde (with `deny_unknown_fields`) catches unknown keys and wrong
//! types; then [`validate`] checks every value against what AWS accepts, because the emulator
//! (moto) stores values that real AWS rejects. Every error names file, line, column and key.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::duration;
use crate::exit::Failure;

pub const ENV_CONFIG: &str = "BOSAR_DEPLOY_CONFIG";

// ---------------------------------------------------------------------------------------------
// Validated configuration

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub aws: AwsSection,
    pub load_balancer: Option<LoadBalancerSection>,
    pub target_group: TargetGroupSection,
    pub ecs: Option<EcsSection>,
    pub gateway: Option<GatewaySection>,
}

#[derive(Debug, Clone, Default)]
pub struct AwsSection {
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// A load balancer or target group named either way; ARNs skip the lookup by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceRef {
    Name(String),
    Arn(String),
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceRef::Name(n) => f.write_str(n),
            ResourceRef::Arn(a) => f.write_str(a),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadBalancerSection {
    pub id: ResourceRef,
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    LbCookie,
    AppCookie { cookie_name: String },
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

impl Algorithm {
    pub const ALL: [&'static str; 3] = [
        "round_robin",
        "least_outstanding_requests",
        "weighted_random",
    ];
    pub fn as_aws(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
            Algorithm::WeightedRandom => "weighted_random",
        }
    }
}

/// The target group's desired state. Every key is optional: a key the file leaves out is not
/// managed (never planned, applied or reset), so a group tuned by hand keeps what it has.
#[derive(Debug, Clone)]
pub struct TargetGroupSection {
    pub id: ResourceRef,
    pub stickiness: Option<Stickiness>,
    /// Only with `lb_cookie` or `app_cookie` stickiness.
    pub cookie_duration: Option<Duration>,
    pub algorithm: Option<Algorithm>,
    pub deregistration_delay: Option<Duration>,
    /// With least outstanding requests or weighted random it must be 0.
    pub slow_start: Option<Duration>,
    /// `load_balancing.algorithm.anomaly_mitigation`; only with `weighted_random`.
    pub anomaly_mitigation: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct EcsSection {
    pub cluster: String,
    pub service: String,
    pub container: String,
    pub image: Option<String>,
    /// Desired values for the container's environment, when `[ecs.environment]` is present:
    /// then variables with `managed_env_prefix` that are not listed are removed and all others
    /// kept. Absent, the container's environment is not touched at all.
    pub environment: Option<BTreeMap<String, String>>,
    pub managed_env_prefix: String,
    pub timeout: Duration,
    pub poll_interval: Duration,
    /// With the circuit breaker off, the watch fails once this many tasks of the new revision
    /// failed. `None`: twice the deployment's desired count.
    pub max_failed_tasks: Option<u32>,
    /// Environment variables whose values the plan shows in clear although their names look
    /// like credentials (a URL's user info is still hidden).
    pub show_values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GatewaySection {
    pub url: String,
    pub namespace: String,
    pub health_path: String,
    pub token_env: Option<String>,
    pub jwt_secret_env: Option<String>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub heartbeat_event: String,
    pub heartbeat_interval: Duration,
    /// Polling round trips in the stickiness check.
    pub stickiness_rounds: u32,
}

// ---------------------------------------------------------------------------------------------
// Errors with positions

/// A configuration error, rendered as `file:line:col: key: message` plus what is allowed.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
    pub allowed: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(allowed) = &self.allowed {
            write!(f, "\n  allowed: {allowed}")?;
        }
        Ok(())
    }
}

/// All errors found in one file, so a user fixes them in one round.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

struct Errors<'a> {
    file: &'a Path,
    source: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn at(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        allowed: Option<&str>,
    ) {
        let (line, column) = line_col(self.source, span.start);
        self.list.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            allowed: allowed.map(str::to_string),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Raw schema (what serde reads)

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    aws: Option<RawAws>,
    load_balancer: Option<S<RawLoadBalancer>>,
    target_group: Option<S<RawTargetGroup>>,
    ecs: Option<S<RawEcs>>,
    gateway: Option<S<RawGateway>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    region: Option<S<String>>,
    profile: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoadBalancer {
    name: Option<S<String>>,
    arn: Option<S<String>>,
    idle_timeout: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetGroup {
    name: Option<S<String>>,
    arn: Option<S<String>>,
    stickiness: Option<S<String>>,
    cookie_name: Option<S<String>>,
    cookie_duration: Option<S<String>>,
    algorithm: Option<S<String>>,
    deregistration_delay: Option<S<String>>,
    slow_start: Option<S<String>>,
    anomaly_mitigation: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEcs {
    cluster: Option<S<String>>,
    service: Option<S<String>>,
    container: Option<S<String>>,
    image: Option<S<String>>,
    timeout: Option<S<String>>,
    poll_interval: Option<S<String>>,
    managed_env_prefix: Option<S<String>>,
    max_failed_tasks: Option<S<i64>>,
    show_values: Option<S<Vec<S<String>>>>,
    environment: Option<S<BTreeMap<S<String>, S<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    url: Option<S<String>>,
    namespace: Option<S<String>>,
    health_path: Option<S<String>>,
    token_env: Option<S<String>>,
    jwt_secret_env: Option<S<String>>,
    ping_interval: Option<S<String>>,
    ping_timeout: Option<S<String>>,
    heartbeat_event: Option<S<String>>,
    heartbeat_interval: Option<S<String>>,
    stickiness_rounds: Option<S<i64>>,
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Where the config comes from: `--config`, else `$BOSAR_DEPLOY_CONFIG`, else `./deploy.toml`.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_CONFIG) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("deploy.toml"),
    }
}

/// Reads and validates the file. Every error is a usage error (exit 2).
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!("cannot read config {}: {e}", path.display())).hint(format!(
            "pass --config PATH or set {ENV_CONFIG}; the default is ./deploy.toml"
        ))
    })?;
    parse(path, &source).map_err(|errs| {
        Failure::usage(errs.to_string())
            .hint(format!(
                "fix {} and run again; nothing was called on AWS",
                path.display()
            ))
            .into()
    })
}

/// Parses and validates `source` as the contents of `file`.
pub fn parse(file: &Path, source: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => return Err(ConfigErrors(vec![serde_error(file, source, &e)])),
    };
    let mut errs = Errors {
        file,
        source,
        list: Vec::new(),
    };
    let cfg = validate(file, raw, &mut errs);
    if errs.list.is_empty() {
        Ok(cfg.expect("validated config without errors"))
    } else {
        Err(ConfigErrors(errs.list))
    }
}

fn serde_error(file: &Path, source: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = line_col(source, span.start);
    let mut message = e.message().to_string();
    let mut key = key_at(source, span.clone());
    let mut allowed = None;
    // serde says "unknown field `x`, expected one of `a`, `b`": split the list into `allowed`.
    if let Some(rest) = message.strip_prefix("unknown field ") {
        if let Some((field, expected)) = rest.split_once(", expected ") {
            allowed = Some(format!("keys {}", expected.trim_start_matches("one of ")));
            let field = field.trim_matches('`').to_string();
            message = format!("unknown key `{field}`");
            if !key.ends_with(&field) {
                key = if key.is_empty() {
                    field
                } else {
                    format!("{key}.{field}")
                };
            }
        }
    } else if message.starts_with("invalid type") {
        allowed = Some("a quoted string (durations carry units: \"30s\", \"24h\")".into());
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        key,
        message,
        allowed,
    }
}

/// Best-effort dotted key at a byte offset: the last `[table]` header above it plus the key on its line.
fn key_at(source: &str, span: Range<usize>) -> String {
    let start = span.start.min(source.len());
    let line_start = source[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = source[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(source.len());
    let line = source[line_start..line_end].trim();
    let table = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_string();
    match (table, key.is_empty()) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, false) => key,
        (None, true) => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

fn req<'a>(
    errs: &mut Errors,
    table: &S<impl Sized>,
    value: &'a Option<S<String>>,
    key: &str,
    allowed: &str,
) -> Option<&'a S<String>> {
    if value.is_none() {
        errs.at(table.span(), key, "missing required key", Some(allowed));
    }
    value.as_ref()
}

fn dur(
    errs: &mut Errors,
    value: &S<String>,
    key: &str,
    min: Duration,
    max: Duration,
    allowed: &str,
) -> Option<Duration> {
    match duration::parse(value.get_ref()) {
        Err(msg) => {
            errs.at(value.span(), key, msg, Some(allowed));
            None
        }
        Ok(d) if d < min || d > max => {
            errs.at(
                value.span(),
                key,
                format!("\"{}\" is out of range", value.get_ref()),
                Some(allowed),
            );
            None
        }
        Ok(d) => Some(d),
    }
}

fn whole_seconds(
    errs: &mut Errors,
    value: &S<String>,
    key: &str,
    d: Option<Duration>,
) -> Option<Duration> {
    let d = d?;
    if d.subsec_millis() != 0 {
        errs.at(
            value.span(),
            key,
            format!("\"{}\" is not a whole number of seconds", value.get_ref()),
            Some("whole seconds; AWS stores this attribute in seconds"),
        );
        return None;
    }
    Some(d)
}

fn non_empty(errs: &mut Errors, value: &S<String>, key: &str) -> Option<String> {
    let v = value.get_ref().trim();
    if v.is_empty() {
        errs.at(value.span(), key, "must not be empty", None);
        None
    } else {
        Some(v.to_string())
    }
}

fn env_name(errs: &mut Errors, value: &S<String>, key: &str) -> Option<String> {
    let v = value.get_ref();
    let ok = !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Some(v.clone())
    } else {
        errs.at(value.span(), key, format!("\"{v}\" is not an environment variable name"), Some("letters, digits and _, not starting with a digit (the variable's name, never its value)"));
        None
    }
}

fn resource_ref(
    errs: &mut Errors,
    table: &Range<usize>,
    section: &str,
    name: &Option<S<String>>,
    arn: &Option<S<String>>,
    arn_marker: &str,
) -> Option<ResourceRef> {
    match (name, arn) {
        (Some(_), Some(a)) => {
            errs.at(
                a.span(),
                &format!("{section}.arn"),
                "set either `name` or `arn`, not both",
                None,
            );
            None
        }
        (None, None) => {
            errs.at(
                table.clone(),
                section,
                "missing `name` (or `arn`)",
                Some("name = \"...\" or arn = \"arn:aws:elasticloadbalancing:...\""),
            );
            None
        }
        (Some(n), None) => {
            let key = format!("{section}.name");
            let v = n.get_ref();
            let ok = (1..=32).contains(&v.len())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !v.starts_with('-')
                && !v.ends_with('-');
            if ok {
                Some(ResourceRef::Name(v.clone()))
            } else {
                errs.at(n.span(), &key, format!("\"{v}\" is not a valid name"), Some("1 to 32 letters, digits and hyphens, not starting or ending with a hyphen (AWS's rule)"));
                None
            }
        }
        (None, Some(a)) => {
            let v = a.get_ref();
            let ok = v.starts_with("arn:aws")
                && v.contains(":elasticloadbalancing:")
                && v.contains(arn_marker);
            if ok {
                Some(ResourceRef::Arn(v.clone()))
            } else {
                errs.at(
                    a.span(),
                    &format!("{section}.arn"),
                    format!("\"{v}\" is not a {section} ARN"),
                    Some(&format!(
                        "arn:aws:elasticloadbalancing:REGION:ACCOUNT:{arn_marker}..."
                    )),
                );
                None
            }
        }
    }
}

/// A region code's shape ("us-east-1", "eu-central-2", "us-gov-west-1").
pub fn is_region(v: &str) -> bool {
    v.len() >= 9
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && v.matches('-').count() >= 2
        && v.ends_with(|c: char| c.is_ascii_digit())
}

const MAX_COOKIE: Duration = Duration::from_secs(604_800);

fn validate(file: &Path, raw: RawConfig, errs: &mut Errors) -> Option<Config> {
    let aws = match &raw.aws {
        None => AwsSection::default(),
        Some(a) => AwsSection {
            region: a.region.as_ref().and_then(|r| {
                let v = r.get_ref();
                let ok = is_region(v);
                if !ok {
                    errs.at(
                        r.span(),
                        "aws.region",
                        format!("\"{v}\" is not an AWS region"),
                        Some("a region code such as \"us-east-1\" or \"eu-central-1\""),
                    );
                }
                ok.then(|| v.clone())
            }),
            profile: a
                .profile
                .as_ref()
                .and_then(|p| non_empty(errs, p, "aws.profile")),
        },
    };

    let load_balancer = raw.load_balancer.as_ref().map(|lb| {
        let span = lb.span();
        let lb = lb.get_ref();
        let id = resource_ref(
            errs,
            &span,
            "load_balancer",
            &lb.name,
            &lb.arn,
            "loadbalancer/",
        );
        let idle_timeout = lb.idle_timeout.as_ref().and_then(|v| {
            let d = dur(
                errs,
                v,
                "load_balancer.idle_timeout",
                Duration::from_secs(1),
                Duration::from_secs(4000),
                "1s to 4000s (the ALB's idle_timeout.timeout_seconds range)",
            );
            whole_seconds(errs, v, "load_balancer.idle_timeout", d)
        });
        (id, idle_timeout)
    });

    let target_group = match &raw.target_group {
        None => {
            errs.at(0..0, "target_group", "missing section [target_group]", Some("[target_group] with name (or arn), and the attributes to manage: stickiness, cookie_duration, algorithm, deregistration_delay, slow_start"));
            None
        }
        Some(tg_s) => validate_target_group(errs, tg_s),
    };

    let ecs = raw.ecs.as_ref().map(|e| validate_ecs(errs, e));
    let gateway = raw.gateway.as_ref().map(|g| validate_gateway(errs, g));

    if !errs.list.is_empty() {
        return None;
    }
    Some(Config {
        path: file.to_path_buf(),
        aws,
        load_balancer: load_balancer.map(|(id, idle_timeout)| LoadBalancerSection {
            id: id.unwrap(),
            idle_timeout,
        }),
        target_group: target_group.unwrap(),
        ecs: ecs.map(Option::unwrap),
        gateway: gateway.map(Option::unwrap),
    })
}

fn validate_target_group(
    errs: &mut Errors,
    tg_s: &S<RawTargetGroup>,
) -> Option<TargetGroupSection> {
    let span = tg_s.span();
    let tg = tg_s.get_ref();
    let id = resource_ref(
        errs,
        &span,
        "target_group",
        &tg.name,
        &tg.arn,
        "targetgroup/",
    );
    let stickiness = tg
        .stickiness
        .as_ref()
        .map(|s| stickiness_of(errs, s, &tg.cookie_name));
    if let (Some(n), Some(Some(Stickiness::LbCookie | Stickiness::Off)) | None) =
        (&tg.cookie_name, &stickiness)
    {
        errs.at(
            n.span(),
            "target_group.cookie_name",
            "cookie_name is only used with stickiness = \"app_cookie\"",
            Some("remove it, or set stickiness = \"app_cookie\""),
        );
    }
    let cookie_duration = tg
        .cookie_duration
        .as_ref()
        .map(|v| cookie_duration_of(errs, v, stickiness.as_ref()));
    let algorithm = tg.algorithm.as_ref().map(|a| algorithm_of(errs, a));
    let deregistration_delay = tg.deregistration_delay.as_ref().map(|v| {
        let d = dur(
            errs,
            v,
            "target_group.deregistration_delay",
            Duration::ZERO,
            Duration::from_secs(3600),
            "0s to 3600s (AWS's range for deregistration_delay.timeout_seconds)",
        );
        whole_seconds(errs, v, "target_group.deregistration_delay", d)
    });
    let slow_start = tg
        .slow_start
        .as_ref()
        .map(|v| slow_start_of(errs, v, algorithm.flatten()));
    let anomaly_mitigation = tg.anomaly_mitigation.as_ref().map(|v| {
        if algorithm.flatten() == Some(Algorithm::WeightedRandom) {
            Some(*v.get_ref())
        } else {
            errs.at(v.span(), "target_group.anomaly_mitigation", "anomaly mitigation exists only with algorithm = \"weighted_random\"", Some("set algorithm = \"weighted_random\" in this section, or remove anomaly_mitigation"));
            None
        }
    });
    Some(TargetGroupSection {
        id: id?,
        stickiness: transpose(stickiness)?,
        cookie_duration: transpose(cookie_duration)?,
        algorithm: transpose(algorithm)?,
        deregistration_delay: transpose(deregistration_delay)?,
        slow_start: transpose(slow_start)?,
        anomaly_mitigation: transpose(anomaly_mitigation)?,
    })
}

/// A key that was absent stays `Some(None)` (valid, not managed); a present key that failed
/// validation is `None` (an error was recorded).
fn transpose<T>(v: Option<Option<T>>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(None) => None,
        Some(Some(x)) => Some(Some(x)),
    }
}

fn stickiness_of(
    errs: &mut Errors,
    s: &S<String>,
    cookie_name: &Option<S<String>>,
) -> Option<Stickiness> {
    match s.get_ref().as_str() {
        "lb_cookie" => Some(Stickiness::LbCookie),
        "off" => Some(Stickiness::Off),
        "app_cookie" => match cookie_name {
            None => {
                errs.at(s.span(), "target_group.cookie_name", "stickiness = \"app_cookie\" needs the application's cookie name", Some("cookie_name = \"SESSION\" (any name not starting with AWSALB, AWSALBAPP or AWSALBTG)"));
                None
            }
            Some(n) => {
                let v = n.get_ref();
                let reserved = ["AWSALB", "AWSALBAPP", "AWSALBTG"]
                    .iter()
                    .any(|p| v.starts_with(p));
                if v.is_empty()
                    || reserved
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == ';' || c == ',' || c == '=')
                {
                    errs.at(n.span(), "target_group.cookie_name", format!("\"{v}\" cannot be used as the application cookie name"), Some("a cookie name not starting with AWSALB, AWSALBAPP or AWSALBTG (AWS reserves them)"));
                    None
                } else {
                    Some(Stickiness::AppCookie {
                        cookie_name: v.clone(),
                    })
                }
            }
        },
        other => {
            errs.at(
                s.span(),
                "target_group.stickiness",
                format!("unknown stickiness \"{other}\""),
                Some("\"lb_cookie\", \"app_cookie\" or \"off\""),
            );
            None
        }
    }
}

/// The duration key depends on the stickiness type, so the type must be named with it.
fn cookie_duration_of(
    errs: &mut Errors,
    v: &S<String>,
    stickiness: Option<&Option<Stickiness>>,
) -> Option<Duration> {
    let key = "target_group.cookie_duration";
    match stickiness {
        None => {
            errs.at(v.span(), key, "cookie_duration needs stickiness in the same section (the duration attribute depends on the cookie type)", Some("stickiness = \"lb_cookie\" or \"app_cookie\" next to it"));
            return None;
        }
        Some(Some(Stickiness::Off)) => {
            errs.at(
                v.span(),
                key,
                "cookie_duration has no effect with stickiness = \"off\"",
                Some("remove cookie_duration, or turn stickiness on"),
            );
            return None;
        }
        _ => {}
    }
    let d = dur(
        errs,
        v,
        key,
        Duration::from_secs(1),
        MAX_COOKIE,
        "1s to 7d (AWS's range for the stickiness cookie duration)",
    );
    whole_seconds(errs, v, key, d)
}

fn algorithm_of(errs: &mut Errors, a: &S<String>) -> Option<Algorithm> {
    match a.get_ref().as_str() {
        "round_robin" => Some(Algorithm::RoundRobin),
        "least_outstanding_requests" => Some(Algorithm::LeastOutstandingRequests),
        "weighted_random" => Some(Algorithm::WeightedRandom),
        other => {
            errs.at(
                a.span(),
                "target_group.algorithm",
                format!("unknown algorithm \"{other}\""),
                Some("\"round_robin\", \"least_outstanding_requests\" or \"weighted_random\""),
            );
            None
        }
    }
}

/// 0 (off) or 30s-900s; AWS refuses slow start with least outstanding requests and with
/// weighted random.
fn slow_start_of(
    errs: &mut Errors,
    v: &S<String>,
    algorithm: Option<Algorithm>,
) -> Option<Duration> {
    let key = "target_group.slow_start";
    let allowed = "\"0s\" (off) or 30s to 900s";
    let d = dur(
        errs,
        v,
        key,
        Duration::ZERO,
        Duration::from_secs(900),
        allowed,
    )?;
    if d != Duration::ZERO && d < Duration::from_secs(30) {
        errs.at(
            v.span(),
            key,
            format!("\"{}\" is out of range", v.get_ref()),
            Some(allowed),
        );
        return None;
    }
    if d != Duration::ZERO {
        if let Some(a @ (Algorithm::LeastOutstandingRequests | Algorithm::WeightedRandom)) =
            algorithm
        {
            errs.at(
                v.span(),
                key,
                format!(
                    "slow start cannot be combined with algorithm = \"{}\" (AWS rejects the pair)",
                    a.as_aws()
                ),
                Some("\"0s\", or algorithm = \"round_robin\""),
            );
            return None;
        }
    }
    whole_seconds(errs, v, key, Some(d))
}

fn validate_ecs(errs: &mut Errors, e_s: &S<RawEcs>) -> Option<EcsSection> {
    let e = e_s.get_ref();
    let names = "the ECS resource's name";
    let cluster = req(errs, e_s, &e.cluster, "ecs.cluster", names)
        .and_then(|v| non_empty(errs, v, "ecs.cluster"));
    let service = req(errs, e_s, &e.service, "ecs.service", names)
        .and_then(|v| non_empty(errs, v, "ecs.service"));
    let container = req(
        errs,
        e_s,
        &e.container,
        "ecs.container",
        "the container's name in the task definition",
    )
    .and_then(|v| non_empty(errs, v, "ecs.container"));
    let image = e.image.as_ref().and_then(|v| {
        let img = v.get_ref();
        match crate::image::parse(img) {
            Ok(_) => Some(img.clone()),
            Err(why) => {
                errs.at(
                    v.span(),
                    "ecs.image",
                    format!("\"{img}\" is not an image reference: {why}"),
                    Some(crate::image::ACCEPTED_FORM),
                );
                None
            }
        }
    });
    let timeout = match &e.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(v) => dur(
            errs,
            v,
            "ecs.timeout",
            TIMEOUT_RANGE.0,
            TIMEOUT_RANGE.1,
            TIMEOUT_ALLOWED,
        ),
    };
    let poll_interval = match &e.poll_interval {
        None => Some(Duration::from_secs(5)),
        Some(v) => dur(
            errs,
            v,
            "ecs.poll_interval",
            Duration::from_secs(1),
            Duration::from_secs(300),
            "1s to 5m (each poll is a DescribeServices call against the account's ECS rate limit)",
        ),
    };
    let managed_env_prefix = match &e.managed_env_prefix {
        None => "WEBSOCKET_".to_string(),
        Some(v) => v.get_ref().clone(),
    };
    let max_failed_tasks = match &e.max_failed_tasks {
        None => Some(None),
        Some(v) if (1..=10_000).contains(v.get_ref()) => Some(Some(*v.get_ref() as u32)),
        Some(v) => {
            errs.at(
                v.span(),
                "ecs.max_failed_tasks",
                format!("{} is out of range", v.get_ref()),
                Some("1 to 10000 failed tasks"),
            );
            None
        }
    };
    let environment = e.environment.as_ref().map(|table| {
        let mut environment = BTreeMap::new();
        for (k, v) in table.get_ref() {
            let key = format!("ecs.environment.{}", k.get_ref());
            if let Some(name) = env_name(errs, k, &key) {
                environment.insert(name, v.get_ref().clone());
            }
        }
        environment
    });
    let show_values = e
        .show_values
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .filter_map(|v| env_name(errs, v, "ecs.show_values"))
                .collect()
        })
        .unwrap_or_default();
    Some(EcsSection {
        show_values,
        cluster: cluster?,
        service: service?,
        container: container?,
        image,
        environment,
        managed_env_prefix,
        timeout: timeout?,
        poll_interval: poll_interval?,
        max_failed_tasks: max_failed_tasks?,
    })
}

/// How long `deploy` watches by default, and the range `[ecs] timeout` and `--timeout` accept.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));
pub const TIMEOUT_ALLOWED: &str = "1s to 24h";

fn validate_gateway(errs: &mut Errors, g_s: &S<RawGateway>) -> Option<GatewaySection> {
    let g = g_s.get_ref();
    let url = req(
        errs,
        g_s,
        &g.url,
        "gateway.url",
        "the gateway's base URL, like \"https://api.bosar.click\"",
    )
    .and_then(|v| match url::Url::parse(v.get_ref()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            Some(v.get_ref().trim_end_matches('/').to_string())
        }
        _ => {
            errs.at(
                v.span(),
                "gateway.url",
                format!(
                    "\"{}\" is not an http(s) URL",
                    crate::gateway::shown_url(v.get_ref())
                ),
                Some("\"https://host[:port]\""),
            );
            None
        }
    });
    let path_key =
        |errs: &mut Errors, v: &Option<S<String>>, key: &str, default: &str| -> Option<String> {
            match v {
                None => Some(default.to_string()),
                Some(s)
                    if s.get_ref().starts_with('/')
                        && !s.get_ref().contains(char::is_whitespace) =>
                {
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
        };
    let namespace = path_key(errs, &g.namespace, "gateway.namespace", "/chat");
    let health_path = path_key(
        errs,
        &g.health_path,
        "gateway.health_path",
        "/health/websocket",
    );
    let token_env = g
        .token_env
        .as_ref()
        .and_then(|v| env_name(errs, v, "gateway.token_env"));
    let jwt_secret_env = g
        .jwt_secret_env
        .as_ref()
        .and_then(|v| env_name(errs, v, "gateway.jwt_secret_env"));
    let ms =
        |errs: &mut Errors, v: &Option<S<String>>, key: &str, default: u64| -> Option<Duration> {
            match v {
                None => Some(Duration::from_secs(default)),
                Some(s) => dur(
                    errs,
                    s,
                    key,
                    Duration::from_millis(100),
                    Duration::from_secs(3600),
                    "100ms to 1h",
                ),
            }
        };
    let ping_interval = ms(errs, &g.ping_interval, "gateway.ping_interval", 25);
    let ping_timeout = ms(errs, &g.ping_timeout, "gateway.ping_timeout", 20);
    let heartbeat_interval = ms(
        errs,
        &g.heartbeat_interval,
        "gateway.heartbeat_interval",
        30,
    );
    let heartbeat_event = match &g.heartbeat_event {
        None => Some("heartbeat".to_string()),
        Some(v) => non_empty(errs, v, "gateway.heartbeat_event"),
    };
    let stickiness_rounds = match &g.stickiness_rounds {
        None => Some(20),
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
    };
    Some(GatewaySection {
        url: url?,
        namespace: namespace?,
        health_path: health_path?,
        token_env,
        jwt_secret_env,
        ping_interval: ping_interval?,
        ping_timeout: ping_timeout?,
        heartbeat_event: heartbeat_event?,
        heartbeat_interval: heartbeat_interval?,
        stickiness_rounds: stickiness_rounds?,
    })
}

impl Config {
    /// `[ecs.environment]` values of the gateway's intervals that disagree with `[gateway]`:
    /// such a deploy ships a gateway that `verify` rejects. Empty when `[ecs.environment]`,
    /// a variable or `[gateway]` is absent.
    pub fn environment_mismatches(&self) -> Vec<String> {
        let (Some(env), Some(gw)) = (
            self.ecs.as_ref().and_then(|e| e.environment.as_ref()),
            &self.gateway,
        ) else {
            return Vec::new();
        };
        [
            (
                "WEBSOCKET_PING_INTERVAL",
                gw.ping_interval,
                "gateway.ping_interval",
            ),
            (
                "WEBSOCKET_PING_TIMEOUT",
                gw.ping_timeout,
                "gateway.ping_timeout",
            ),
            (
                "WEBSOCKET_HEARTBEAT_INTERVAL",
                gw.heartbeat_interval,
                "gateway.heartbeat_interval",
            ),
        ]
        .into_iter()
        .filter_map(|(var, expected, key)| {
            let want = expected.as_millis().to_string();
            let v = env.get(var)?;
            (v.trim() != want).then(|| {
                format!(
                    "[ecs.environment] {var} = \"{v}\" but {key} = \"{}\" ({want} ms)",
                    duration::format(expected)
                )
            })
        })
        .collect()
    }

    /// The consistency rule as a usage error (exit 2, before any AWS call).
    pub fn check_environment(&self) -> Result<(), Failure> {
        let problems = self.environment_mismatches();
        if problems.is_empty() {
            return Ok(());
        }
        Err(Failure::usage(format!(
            "{}: {}; verify would reject the deployed gateway",
            self.path.display(),
            problems.join("; ")
        ))
        .hint("make [ecs.environment] and [gateway] agree (milliseconds in the environment, durations in [gateway]); nothing was called on AWS"))
    }

    /// The `[ecs]` section, or a usage error naming the command that needs it.
    pub fn ecs(&self, command: &str) -> Result<&EcsSection, Failure> {
        self.ecs.as_ref().ok_or_else(|| {
            Failure::usage(format!(
                "{}: no [ecs] section; `{command}` needs cluster, service and container",
                self.path.display()
            ))
        })
    }
    /// The `[gateway]` section, or a usage error naming the command that needs it.
    pub fn gateway(&self, command: &str) -> Result<&GatewaySection, Failure> {
        self.gateway.as_ref().ok_or_else(|| {
            Failure::usage(format!(
                "{}: no [gateway] section; `{command}` needs at least gateway.url",
                self.path.display()
            ))
        })
    }
}
