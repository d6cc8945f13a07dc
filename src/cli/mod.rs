//! Command-line definitions (clap). Each subcommand is an `Args` struct; the verbs live in their modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::global::{GlobalArgs, OutputFormat};
use crate::report::PreflightSkip;

mod load;
pub use load::*;

const ABOUT: &str = "Deploy a Socket.IO gateway on ECS behind an Application Load Balancer: \
the target group in the sticky-WebSocket state, rollouts watched to real success, and a \
built-in Socket.IO client that proves the result from outside";

const LONG_ABOUT: &str = "Deploy a Socket.IO gateway on ECS behind an Application Load Balancer: \
the target group in the sticky-WebSocket state, rollouts watched to real success, and a \
built-in Socket.IO client that proves the result from outside.

Any service shaped like BoSar's chat API (a NestJS Socket.IO gateway on ECS Fargate, namespace \
/chat, JWT auth, server heartbeats, cookie stickiness) fits; deploy.toml describes yours. \
Start from what runs today with `bosar-deploy init`.";

const EXAMPLES: &str = "Getting started:
  bosar-deploy init --cluster prod --service chat-api   # write deploy.toml from what runs
  bosar-deploy plan                                      # everything that would change
  bosar-deploy alb-update                                # apply the target group state
  bosar-deploy full --image REGISTRY/REPO:TAG            # alb-update, deploy, verify

Exit codes: 0 success, 1 failed, 2 usage/config error (nothing changed), 3 changes pending \
(--dry-run --detailed-exitcode, plan --detailed-exitcode), 4 timed out, 130 interrupted \
(Ctrl-C or SIGTERM).";

#[derive(Parser, Debug)]
#[command(
    name = "bosar-deploy",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Bring the target group (and load balancer) to the state deploy.toml names
    #[command(after_help = "Examples:
  bosar-deploy alb-update --dry-run                      # the plan; nothing changes
  bosar-deploy alb-update --dry-run --detailed-exitcode  # drift check: 0 in sync, 3 pending
  bosar-deploy alb-update                                # apply, read back, confirm")]
    AlbUpdate(AlbUpdateArgs),
    /// Roll the ECS service and watch the new deployment until it really succeeded
    #[command(after_help = "Examples:
  bosar-deploy deploy --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api:1.5.0
  bosar-deploy deploy --dry-run                          # the revision diff; nothing changes
  bosar-deploy deploy --timeout 20m --rollback-on-failure")]
    Deploy(DeployArgs),
    /// Resume watching the service's newest (or a given) deployment
    #[command(after_help = "Example:
  bosar-deploy wait --deployment ecs-svc/8103441626201 --timeout 10m")]
    Wait(WaitArgs),
    /// Show the account, the service, its deployments, recent events and target health
    Status(StatusArgs),
    /// Roll back to the previous (or a named) task definition revision, watched like a deploy
    #[command(after_help = "Examples:
  bosar-deploy rollback --list           # the recent revisions, which one runs
  bosar-deploy rollback --dry-run        # the diff and preflight of the revision it would go back to
  bosar-deploy rollback --to 41")]
    Rollback(RollbackArgs),
    /// Verify the deployed gateway: health, handshake, cookies, stickiness, auth, heartbeat
    #[command(after_help = "Examples:
  bosar-deploy verify                                    # the nine checks against [gateway] url
  bosar-deploy verify --url https://api.example.com/realtime   # a path prefix works too
  bosar-deploy verify --connections 5000 --hold 30s --max-error-rate 0.001 --max-p99 1s")]
    Verify(VerifyArgs),
    /// The whole pipeline: preflight, alb-update, deploy, verify
    #[command(after_help = "Examples:
  bosar-deploy full --image REGISTRY/REPO:TAG --junit junit.xml
  bosar-deploy --output json full > report.json")]
    Full(FullArgs),
    /// Everything `full` would change, without changing it (same as `full --dry-run`)
    #[command(after_help = "Example:
  bosar-deploy plan --detailed-exitcode || [ $? -eq 3 ]   # 0 in sync, 3 changes pending")]
    Plan(PlanArgs),
    /// Write a deploy.toml for an existing service, from what runs today
    #[command(after_help = "Examples:
  bosar-deploy init --cluster prod --service chat-api
  bosar-deploy --env staging init --cluster staging --service chat-api   # add [environments.staging]
  bosar-deploy --region eu-west-1 init --cluster c --service s --output-file -")]
    Init(InitArgs),
    /// Work with reports: merge the JSON documents of `verify --connections N --shard I/K`
    #[command(subcommand)]
    Report(ReportCommand),
    /// Hold Socket.IO sessions through the load balancer and report what they see, every
    /// interval, until stopped: drops, reconnects, heartbeat gaps, handshake and health
    #[command(after_help = "Examples:
  bosar-deploy monitor                                   # 20 sessions, a line a minute
  bosar-deploy monitor --emit emf                        # CloudWatch metrics via the task's log
  bosar-deploy monitor --prometheus 0.0.0.0:9464 --interval 15s
  bosar-deploy --output json monitor --duration 10m      # JSON lines")]
    Monitor(MonitorArgs),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `--dry-run` and `--detailed-exitcode`, which needs it: a drift check can never apply.
#[derive(Args, Debug, Clone, Default)]
pub struct PlanFlags {
    /// Show the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit 3 when changes are pending, 0 when in sync
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,
}

/// How a rollout is made and watched (`deploy`, `full`).
#[derive(Args, Debug, Clone, Default)]
pub struct RolloutFlags {
    /// Container image for the new revision (overrides [ecs] image), e.g. REGISTRY/REPO:TAG
    #[arg(long, value_parser = parse_image)]
    pub image: Option<String>,
    /// How long to watch the rollout (overrides [ecs] timeout; 1s to 24h), e.g. 20m
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// If our rollout fails, go back to the previous revision and watch that (never after
    /// another deploy superseded ours; after a circuit-breaker rollback, watch that one)
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Restart the tasks even when the task definition has nothing to change
    #[arg(long)]
    pub force_new_deployment: bool,
    /// Skip one preflight check (image, roles, logs, secrets), or one container's part of it
    /// (image:sidecar; repeatable): no call, a warning
    #[arg(long, value_parser = PreflightSkip::parse, value_name = "CHECK[:CONTAINER]")]
    pub skip_preflight: Vec<PreflightSkip>,
}

/// The load balancer's CloudWatch metrics read after a rollout (`deploy`, `full`): how long
/// to wait for them and the thresholds on them (both off by default).
#[derive(Args, Debug, Clone, Default)]
pub struct MetricsFlags {
    /// Do not read the load balancer's CloudWatch metrics after the rollout
    #[arg(long)]
    pub no_metrics: bool,
    /// How long to wait for CloudWatch to publish the rollout's last minute (0s to 30m)
    /// [default: 3m]
    #[arg(long, value_name = "DURATION", value_parser = parse_metrics_wait, conflicts_with = "no_metrics")]
    pub metrics_wait: Option<std::time::Duration>,
    /// Fail the run when the load balancer answered more than N 5XX during the rollout
    #[arg(long, value_name = "N", conflicts_with = "no_metrics")]
    pub max_elb_5xx: Option<u64>,
    /// Fail the run when the peak minute of new connections is more than F times the
    /// baseline's per minute (a reconnect storm), e.g. 5
    #[arg(long, value_name = "F", value_parser = parse_ratio, conflicts_with = "no_metrics")]
    pub max_new_connections_ratio: Option<f64>,
}

/// `status`'s flags.
#[derive(Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// Do not read the load balancer's CloudWatch metrics of the last 15 minutes
    #[arg(long)]
    pub no_metrics: bool,
}

/// `--metrics-wait`: 0s (read once) to 30m.
fn parse_metrics_wait(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::duration::parse(s)?;
    if d > std::time::Duration::from_secs(1800) {
        return Err(format!("\"{s}\" is out of range: 0s to 30m"));
    }
    Ok(d)
}

/// `--max-new-connections-ratio`: a finite number, at least 1.
fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => Ok(f),
        _ => Err(format!(
            "\"{s}\" is not a ratio of at least 1, like 5 or 2.5"
        )),
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct AlbUpdateArgs {
    #[command(flatten)]
    pub plan: PlanFlags,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DeployArgs {
    #[command(flatten)]
    pub plan: PlanFlags,
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// Start the rollout and return without watching it
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub load: UnderLoadFlags,
    #[command(flatten)]
    pub metrics: MetricsFlags,
    /// With --under-load: send the gateway token over plain http:// to a host that is not
    /// loopback (refused otherwise: anyone on the path could read it)
    #[arg(long, requires = "under_load")]
    pub allow_insecure_token: bool,
    /// Write a JUnit XML report here (the rollout, and the load with --under-load)
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the run's timeline here as one self-contained HTML page (the rollout's moments,
    /// the sessions with --under-load, the real traffic); the step summary gets it as a chart
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct InitArgs {
    /// The ECS cluster the service runs in
    #[arg(long)]
    pub cluster: String,
    /// The ECS service behind the load balancer
    #[arg(long)]
    pub service: String,
    /// The gateway's container [default: the one behind the load balancer, or the only one]
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// The gateway's target group (name or ARN) [default: the service's only one]
    #[arg(long, value_name = "NAME")]
    pub target_group: Option<String>,
    /// The gateway's public URL, for the commented-out [gateway] section
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// Where to write ("-" for stdout) [default: the --config path, else ./deploy.toml]
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,
    /// Replace an existing file
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct WaitArgs {
    /// The deployment to follow [default: the service's primary deployment]
    #[arg(long)]
    pub deployment: Option<String>,
    /// How long to watch (overrides [ecs] timeout; 1s to 24h)
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RollbackArgs {
    /// Revision number or family:revision to roll back to [default: the one before the current]
    #[arg(long)]
    pub to: Option<String>,
    /// Show what would change (the diff and the preflight of that revision); change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit 3 when the rollback would change the service, 0 when it runs it
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,
    /// List the recent revisions (image, registration time, status, which one runs); change nothing
    #[arg(long, conflicts_with_all = ["to", "dry_run", "no_wait", "timeout"])]
    pub list: bool,
    /// Start the rollback and return without watching
    #[arg(long)]
    pub no_wait: bool,
    /// How long to watch (overrides [ecs] timeout; 1s to 24h)
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// Skip one preflight check (image, roles, logs, secrets), or one container's part of it
    /// (image:sidecar; repeatable): no call, a warning
    #[arg(long, value_parser = PreflightSkip::parse, value_name = "CHECK[:CONTAINER]")]
    pub skip_preflight: Vec<PreflightSkip>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FullArgs {
    #[command(flatten)]
    pub plan: PlanFlags,
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// Skip the verify step
    #[arg(long)]
    pub skip_verify: bool,
    /// Gateway base URL for verify (overrides [gateway] url)
    #[arg(long)]
    pub url: Option<String>,
    /// Send the gateway token over plain http:// to a host that is not loopback (refused
    /// otherwise: anyone on the path could read it)
    #[arg(long)]
    pub allow_insecure_token: bool,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub load: UnderLoadFlags,
    #[command(flatten)]
    pub metrics: MetricsFlags,
    /// Write the run's timeline here as one self-contained HTML page (the rollout's moments,
    /// the sessions with --under-load, the real traffic); the step summary gets it as a chart
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PlanArgs {
    /// Exit 3 when changes are pending
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Container image for the new revision (overrides [ecs] image)
    #[arg(long, value_parser = parse_image)]
    pub image: Option<String>,
    /// Plan a restart of the tasks even when the task definition has nothing to change
    #[arg(long)]
    pub force_new_deployment: bool,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Skip one preflight check (image, roles, logs, secrets), or one container's part of it
    /// (image:sidecar; repeatable): no call, a warning
    #[arg(long, value_parser = PreflightSkip::parse, value_name = "CHECK[:CONTAINER]")]
    pub skip_preflight: Vec<PreflightSkip>,
}

pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}

/// `--timeout`: the range `[ecs] timeout` accepts.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::duration::parse(s)?;
    let (min, max) = crate::config::TIMEOUT_RANGE;
    if d < min || d > max {
        return Err(format!(
            "\"{s}\" is out of range: {}",
            crate::config::TIMEOUT_ALLOWED
        ));
    }
    Ok(d)
}

/// `--image`: the container image reference grammar, as `[ecs] image`.
fn parse_image(s: &str) -> Result<String, String> {
    crate::image::parse(s)
        .map(|_| s.to_string())
        .map_err(|why| format!("{why}; accepted: {}", crate::image::ACCEPTED_FORM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bosar-deploy").chain(args.iter().copied()))
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn detailed_exitcode_needs_dry_run_except_on_plan() {
        for verb in ["alb-update", "deploy", "full"] {
            let e = parse(&[verb, "--detailed-exitcode"]).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{verb}"
            );
            assert!(e.to_string().contains("--dry-run"), "{e}");
            assert!(parse(&[verb, "--dry-run", "--detailed-exitcode"]).is_ok());
        }
        assert!(parse(&["plan", "--detailed-exitcode"]).is_ok());
    }

    #[test]
    fn timeout_and_image_are_checked_like_the_config() {
        for bad in ["0s", "30d", "25h"] {
            let e = parse(&["deploy", "--timeout", bad]).unwrap_err();
            assert!(e.to_string().contains("1s to 24h"), "{bad}: {e}");
        }
        assert!(parse(&["wait", "--timeout", "0s"]).is_err());
        assert!(parse(&["full", "--timeout", "20m"]).is_ok());
        for bad in ["repo/app:", "UPPER/app:1", "app@sha256:xyz"] {
            let e = parse(&["deploy", "--image", bad]).unwrap_err();
            assert!(e.to_string().contains("accepted: [REGISTRY"), "{bad}: {e}");
            assert!(parse(&["plan", "--image", bad]).is_err());
        }
        assert!(parse(&["deploy", "--image", "repo/app:1.5.0"]).is_ok());
    }

    #[test]
    fn status_reads_metrics_unless_told_not_to() {
        for (args, skip) in [
            (&["status"][..], false),
            (&["status", "--no-metrics"][..], true),
        ] {
            let Command::Status(a) = parse(args).unwrap().command else {
                panic!("{args:?}")
            };
            assert_eq!(a.no_metrics, skip, "{args:?}");
        }
        assert!(parse(&["status", "--metrics-wait", "1m"]).is_err());
    }

    #[test]
    fn metrics_flags_are_bounded_and_no_metrics_takes_none_of_them() {
        let cli = parse(&["deploy", "--metrics-wait", "5m", "--max-elb-5xx", "10"]).unwrap();
        let Command::Deploy(d) = cli.command else {
            panic!()
        };
        assert_eq!(
            d.metrics.metrics_wait,
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(d.metrics.max_elb_5xx, Some(10));
        for bad in ["31m", "1h"] {
            let e = parse(&["full", "--metrics-wait", bad]).unwrap_err();
            assert!(e.to_string().contains("0s to 30m"), "{bad}: {e}");
        }
        assert!(parse(&["deploy", "--metrics-wait", "0s"]).is_ok());
        for bad in ["0.5", "inf", "NaN", "x"] {
            let e = parse(&["deploy", "--max-new-connections-ratio", bad]).unwrap_err();
            assert!(e.to_string().contains("at least 1"), "{bad}: {e}");
        }
        let e = parse(&["deploy", "--no-metrics", "--max-elb-5xx", "1"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
    }

    #[test]
    fn monitor_flags_have_their_defaults_and_bounds() {
        let cli = parse(&["monitor"]).unwrap();
        let Command::Monitor(m) = cli.command else {
            panic!()
        };
        assert_eq!((m.sessions, m.interval.as_secs()), (20, 60));
        assert!(m.emit.is_none() && m.prometheus.is_none() && m.duration.is_none());
        assert!(parse(&["monitor", "--sessions", "0"]).is_err());
        assert!(parse(&["monitor", "--sessions", "1001"]).is_err());
        for bad in ["500ms", "2h"] {
            let e = parse(&["monitor", "--interval", bad]).unwrap_err();
            assert!(e.to_string().contains("1s to 1h"), "{bad}: {e}");
        }
        assert!(parse(&["monitor", "--emit", "statsd"]).is_err());
        assert!(parse(&["monitor", "--prometheus", "localhost"]).is_err());
        let cli = parse(&["monitor", "--emit", "emf", "--prometheus", "127.0.0.1:9464"]).unwrap();
        let Command::Monitor(m) = cli.command else {
            panic!()
        };
        assert_eq!(m.emit, Some(Emit::Emf));
    }

    #[test]
    fn reconnect_and_under_load_flags() {
        let cli = parse(&[
            "verify",
            "--connections",
            "10",
            "--reconnect",
            "--reconnect-delay",
            "500ms..2s",
            "--max-lost",
            "3",
        ])
        .unwrap();
        let Command::Verify(v) = cli.command else {
            panic!()
        };
        assert!(v.reconnect);
        assert_eq!(
            v.comeback.reconnect_delay,
            Some((
                std::time::Duration::from_millis(500),
                std::time::Duration::from_secs(2)
            ))
        );
        assert_eq!(v.comeback.max_lost, Some(3));
        assert_eq!(
            v.comeback.reconnect_like, None,
            "browser by default, applied later"
        );
        for (word, like) in [
            ("browser", ReconnectLike::Browser),
            ("always", ReconnectLike::Always),
        ] {
            let cli = parse(&[
                "verify",
                "--connections",
                "1",
                "--reconnect",
                "--reconnect-like",
                word,
            ])
            .unwrap();
            let Command::Verify(v) = cli.command else {
                panic!()
            };
            assert_eq!(v.comeback.reconnect_like, Some(like));
        }
        let e = parse(&[
            "verify",
            "--connections",
            "1",
            "--reconnect",
            "--reconnect-like",
            "curl",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{e}");
        // --reconnect needs --connections.
        assert!(parse(&["verify", "--reconnect"]).is_err());
        for bad in ["5s..1s", "0ms..1s", "1s..11m", "1s", "1s..", "x..5s"] {
            let e = parse(&[
                "verify",
                "--connections",
                "1",
                "--reconnect",
                "--reconnect-delay",
                bad,
            ])
            .unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}: {e}"
            );
        }
        for verb in ["deploy", "full"] {
            let cli = parse(&[
                verb,
                "--under-load",
                "200",
                "--settle",
                "10s",
                "--max-reconnect-p99",
                "5s",
                "--concurrency",
                "50",
            ])
            .unwrap();
            let load = match cli.command {
                Command::Deploy(d) => d.load,
                Command::Full(f) => f.load,
                _ => unreachable!(),
            };
            assert_eq!(load.under_load, Some(200));
            assert_eq!(load.concurrency, Some(50));
            assert_eq!(load.stray(), None);
            let cli = parse(&[verb, "--settle", "10s"]).unwrap();
            let load = match cli.command {
                Command::Deploy(d) => d.load,
                Command::Full(f) => f.load,
                _ => unreachable!(),
            };
            assert_eq!(load.stray(), Some("--settle"));
            assert!(parse(&[verb, "--under-load", "many"]).is_err());
        }
        assert!(parse(&["plan", "--under-load", "10"]).is_err());
    }
}
