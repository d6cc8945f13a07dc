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
    /// `[probe.ecs]`; `None`: `verify --on-ecs` is refused with what to add.
    pub probe_ecs: Option<ProbeEcsSection>,
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
    /// `[ecs.deployment]`: `None` leaves the service's deploymentConfiguration as it is.
    pub deployment: Option<DeploymentSection>,
}

/// ECS's deployment strategies (`deploymentConfiguration.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Rolling,
    BlueGreen,
    Canary,
    Linear,
}

impl Strategy {
    /// As `deploy.toml` spells them.
    pub const ALL: [&'static str; 4] = ["rolling", "blue_green", "canary", "linear"];

    pub fn from_config(v: &str) -> Option<Strategy> {
        match v {
            "rolling" => Some(Strategy::Rolling),
            "blue_green" => Some(Strategy::BlueGreen),
            "canary" => Some(Strategy::Canary),
            "linear" => Some(Strategy::Linear),
            _ => None,
        }
    }
    /// ECS's spelling, which is also what DescribeServices returns.
    pub fn from_aws(v: &str) -> Option<Strategy> {
        match v {
            "ROLLING" => Some(Strategy::Rolling),
            "BLUE_GREEN" => Some(Strategy::BlueGreen),
            "CANARY" => Some(Strategy::Canary),
            "LINEAR" => Some(Strategy::Linear),
            _ => None,
        }
    }
    pub fn as_config(self) -> &'static str {
        Strategy::ALL[self as usize]
    }
    pub fn as_aws(self) -> &'static str {
        match self {
            Strategy::Rolling => "ROLLING",
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Canary => "CANARY",
            Strategy::Linear => "LINEAR",
        }
    }
    /// Blue/green, canary and linear shift traffic between two target groups.
    pub fn shifts_traffic(self) -> bool {
        self != Strategy::Rolling
    }
}

/// A percentage in tenths of a percent (`50` is 5.0 %): ECS takes multiples of 0.1, and a
/// whole number of tenths compares exactly where a float would not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tenths(pub u16);

impl Tenths {
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 10.0
    }
    /// The nearest tenths of an API value (ECS answers with a double).
    pub fn from_f64(v: f64) -> Option<Tenths> {
        let t = (v * 10.0).round();
        (0.0..=f64::from(u16::MAX))
            .contains(&t)
            .then_some(Tenths(t as u16))
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

/// What judges a gated deployment. `verify` is the only judge for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateKind {
    /// bosar-deploy owns a PAUSE lifecycle hook and answers it with `verify`'s verdict.
    Verify,
}

/// `gate` and `gate_timeout`: present only when `[ecs.deployment] gate` is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSection {
    pub kind: GateKind,
    /// The PAUSE hook's `timeoutConfiguration.timeoutInMinutes` (its action is ROLLBACK), so
    /// a CI job that dies never leaves a deployment half-shifted. Whole minutes.
    pub timeout: Duration,
}

/// `[ecs.deployment]`, validated. Every member is optional: what the file leaves out stays
/// as the service has it (a strategy's own keys are only accepted with that strategy named).
/// Durations are whole minutes, as ECS stores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentSection {
    pub strategy: Option<Strategy>,
    /// `bakeTimeInMinutes`: blue/green, canary, linear (required for blue/green).
    pub bake_time: Option<Duration>,
    pub canary_percent: Option<Tenths>,
    pub canary_bake_time: Option<Duration>,
    pub step_percent: Option<Tenths>,
    pub step_bake_time: Option<Duration>,
    /// `deploymentCircuitBreaker.enable` and `.rollback`.
    pub circuit_breaker: Option<bool>,
    pub rollback: Option<bool>,
    pub minimum_healthy_percent: Option<u32>,
    pub maximum_percent: Option<u32>,
    /// `None`: no gate (ECS shifts traffic on its own; bosar-deploy watches).
    pub gate: Option<GateSection>,
}

impl DeploymentSection {
    /// Whether the section names any member of deploymentConfiguration (the gate aside).
    pub fn names_configuration(&self) -> bool {
        let DeploymentSection {
            strategy,
            bake_time,
            canary_percent,
            canary_bake_time,
            step_percent,
            step_bake_time,
            circuit_breaker,
            rollback,
            minimum_healthy_percent,
            maximum_percent,
            gate: _,
        } = self;
        strategy.is_some()
            || bake_time.is_some()
            || canary_percent.is_some()
            || canary_bake_time.is_some()
            || step_percent.is_some()
            || step_bake_time.is_some()
            || circuit_breaker.is_some()
            || rollback.is_some()
            || minimum_healthy_percent.is_some()
            || maximum_percent.is_some()
    }
}

/// Whole minutes of a validated duration (bake times and the gate's timeout).
pub fn whole_minutes(d: Duration) -> i32 {
    i32::try_from(d.as_secs() / 60).unwrap_or(i32::MAX)
}

/// Ranges of `[ecs.deployment]`, from the ECS API model (botocore `ecs/2014-11-13`).
pub const BAKE_TIME_MAX_MINUTES: u64 = 1440;
pub const CANARY_PERCENT_RANGE: (Tenths, Tenths) = (Tenths(1), Tenths(1000));
pub const STEP_PERCENT_RANGE: (Tenths, Tenths) = (Tenths(30), Tenths(1000));
/// `DeploymentLifecycleHookDuration`: 1 to 20160 minutes.
pub const GATE_TIMEOUT_RANGE_MINUTES: (u64, u64) = (1, 20_160);
pub const GATE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60 * 60);
/// The model gives no range for these two; their documented meaning does: at most all of the
/// desired tasks may be required healthy, and at least all of them may run. The upper bound
/// of `maximum_percent` is this tool's, to catch a stray digit.
pub const MINIMUM_HEALTHY_PERCENT_RANGE: (u32, u32) = (0, 100);
pub const MAXIMUM_PERCENT_RANGE: (u32, u32) = (100, 1000);

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
    /// `test_url`: where green answers before production traffic (the test listener of a
    /// blue/green, canary or linear service); the gate judges green there. `None`: `url`.
    pub test_url: Option<String>,
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
    /// Whether the gateway must serve Engine.IO v3 (socket.io 2.x) clients: `true` adds an
    /// `eio3` check that connects as one, `false` one that passes when EIO=3 is refused
    /// (`None`: not checked).
    pub eio3: Option<bool>,
    /// `recovery`: `true` runs a `recovery` check that expects connection state recovery
    /// (socket.io 4.6+) on the same task, `false` one that passes when the gateway offers none
    /// (`None`: not checked).
    pub recovery: Option<bool>,
    /// `origins`: the web app's origins (`https://app.bosar.click`); each gets a `cors` check
    /// as a browser on it would connect (empty: no browser checks).
    pub origins: Vec<String>,
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
            test_url: None,
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
            eio3: None,
            recovery: None,
            origins: Vec::new(),
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
                "add [gateway] with url = \"https://…\" (docs/config.md), pass --url, or pass --skip-verify to deploy without verifying; nothing was called on AWS"
            } else {
                "add [gateway] with url = \"https://…\" (docs/config.md), or pass --url; nothing was called on AWS"
            })),
        }
    }
}

/// `[probe.ecs]`: where `verify --connections N --shards K --on-ecs` starts its K shards, each
/// a Fargate task of a task definition that holds the bosar-deploy image (docs/distribution.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEcsSection {
    pub cluster: String,
    /// `family` or `family:revision`, or a task definition ARN.
    pub task_definition: String,
    /// The bosar-deploy container; `None`: the task definition's only (or first) container.
    pub container: Option<String>,
    pub subnets: Vec<String>,
    /// Empty: the VPC's default security group.
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// Task-level CPU units and memory (MiB) overrides; `None`: the task definition's.
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    /// Where the shards' documents are read; `None`: the container's awslogs `logConfiguration`.
    pub log_group: Option<String>,
    pub log_stream_prefix: Option<String>,
    /// How far ahead of now the shards' common `--start-at` is: Fargate takes a minute or two
    /// to pull and start a task.
    pub start_delay: Duration,
    /// How long to wait for every task to stop, from the first RunTask.
    pub timeout: Duration,
    /// How long a stopped task's log stream may take to show its document.
    pub log_wait: Duration,
}

/// `[probe.ecs] start_delay` and `timeout` defaults.
pub const PROBE_ECS_DEFAULT_START_DELAY: Duration = Duration::from_secs(180);
pub const PROBE_ECS_DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `[probe.ecs] log_wait` default: CloudWatch Logs shows a stream's last events within seconds.
pub const PROBE_ECS_DEFAULT_LOG_WAIT: Duration = Duration::from_secs(60);
/// Fargate's task CPU units.
pub const FARGATE_CPU: [u32; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];
