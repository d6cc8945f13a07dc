//! The validated configuration: what the verbs read. Every attribute the file may leave out is
//! an `Option`: absent means not managed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Failure;

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// The `[environments.NAME]` overlaid on the file (`--env`, `$BOSAR_DEPLOY_ENV`).
    pub environment: Option<String>,
    pub aws: AwsSection,
    pub load_balancer: Option<LoadBalancerSection>,
    pub target_group: TargetGroupSection,
    pub ecs: Option<EcsSection>,
    pub gateway: Option<GatewaySection>,
    /// `[monitor]`; `None`: the defaults ([`MonitorSection::default`]).
    pub monitor: Option<MonitorSection>,
}

/// Where `monitor --emit emf` publishes: a CloudWatch namespace and the dimensions every
/// metric carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSection {
    pub namespace: String,
    pub dimensions: std::collections::BTreeMap<String, String>,
}

/// `[monitor] namespace`'s default.
pub const DEFAULT_MONITOR_NAMESPACE: &str = "BoSar/Gateway";

impl Default for MonitorSection {
    fn default() -> Self {
        MonitorSection {
            namespace: DEFAULT_MONITOR_NAMESPACE.into(),
            dimensions: Default::default(),
        }
    }
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
    /// Advice the user has read and accepted (`[ecs] acknowledge`): it no longer warns.
    pub acknowledge: Vec<String>,
}

/// The advice `[ecs] acknowledge` can silence, each a standing property of the service that
/// would otherwise be repeated on every plan and deploy.
pub const ACKNOWLEDGEABLE: [&str; 1] = ["circuit_breaker_off"];

impl EcsSection {
    pub fn acknowledges(&self, advice: &str) -> bool {
        self.acknowledge.iter().any(|a| a == advice)
    }
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
    /// Healthy targets `verify` expects to reach when it cannot ask AWS (`None`: unknown).
    pub targets: Option<u32>,
}

/// `[gateway]`'s defaults: BoSar's gateway, and socket.io's own ping settings.
pub const GATEWAY_DEFAULT_NAMESPACE: &str = "/chat";
pub const GATEWAY_DEFAULT_HEALTH_PATH: &str = "/health/websocket";
pub const GATEWAY_DEFAULT_HEARTBEAT_EVENT: &str = "heartbeat";
pub const GATEWAY_DEFAULT_PING_INTERVAL_S: u64 = 25;
pub const GATEWAY_DEFAULT_PING_TIMEOUT_S: u64 = 20;
pub const GATEWAY_DEFAULT_HEARTBEAT_INTERVAL_S: u64 = 30;
pub const GATEWAY_DEFAULT_STICKINESS_ROUNDS: u32 = 20;

impl GatewaySection {
    /// `[gateway]` with every default around a URL given on the command line (`--url`
    /// without a `[gateway]` section): what `--url` "overrides [gateway] url" promises.
    pub fn with_url(url: &str) -> GatewaySection {
        GatewaySection {
            url: url.trim_end_matches('/').to_string(),
            namespace: GATEWAY_DEFAULT_NAMESPACE.into(),
            health_path: GATEWAY_DEFAULT_HEALTH_PATH.into(),
            token_env: None,
            jwt_secret_env: None,
            ping_interval: Duration::from_secs(GATEWAY_DEFAULT_PING_INTERVAL_S),
            ping_timeout: Duration::from_secs(GATEWAY_DEFAULT_PING_TIMEOUT_S),
            heartbeat_event: GATEWAY_DEFAULT_HEARTBEAT_EVENT.into(),
            heartbeat_interval: Duration::from_secs(GATEWAY_DEFAULT_HEARTBEAT_INTERVAL_S),
            stickiness_rounds: GATEWAY_DEFAULT_STICKINESS_ROUNDS,
            targets: None,
        }
    }
}

/// The gateway's variables that hold milliseconds, and the `[gateway]` key each must match.
pub const MILLISECOND_VARIABLES: [(&str, &str); 3] = [
    ("WEBSOCKET_PING_INTERVAL", "gateway.ping_interval"),
    ("WEBSOCKET_PING_TIMEOUT", "gateway.ping_timeout"),
    ("WEBSOCKET_HEARTBEAT_INTERVAL", "gateway.heartbeat_interval"),
];

/// The range of `[gateway] targets` and `verify --targets`.
pub const TARGETS_RANGE: (u32, u32) = (1, 100);

/// How long `deploy` watches by default, and the range `[ecs] timeout` and `--timeout` accept.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));
pub const TIMEOUT_ALLOWED: &str = "1s to 24h";

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
                    crate::duration::format(expected)
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
    /// The `[gateway]` section, or one of defaults around `--url`, or a usage error naming
    /// the command that needs it.
    pub fn gateway_or_url(
        &self,
        command: &str,
        url: Option<&str>,
    ) -> Result<std::borrow::Cow<'_, GatewaySection>, Failure> {
        match (&self.gateway, url) {
            (Some(gw), _) => Ok(std::borrow::Cow::Borrowed(gw)),
            (None, Some(url)) => Ok(std::borrow::Cow::Owned(GatewaySection::with_url(url))),
            (None, None) => Err(Failure::usage(format!(
                "{}: no [gateway] section; `{command}` needs at least gateway.url (or --url)",
                self.path.display()
            ))
            .hint(if command == "full" {
                "add [gateway] with url = \"https://…\" (README \"Configuration\"), pass --url, or pass --skip-verify to deploy without verifying; nothing was called on AWS"
            } else {
                "add [gateway] with url = \"https://…\" (README \"Configuration\"), or pass --url; nothing was called on AWS"
            })),
        }
    }
}
