//! Command-line definitions (clap). Each subcommand is an `Args` struct; the verbs live in their modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bosar-deploy",
    version,
    about = "Ship the BoSar chat API: ALB stickiness, ECS rollouts and Socket.IO gateway verification",
    after_help = "Exit codes: 0 success, 1 failed, 2 usage/config error (nothing called), \
                  3 changes pending (--detailed-exitcode), 4 timed out, 130 interrupted \
                  (Ctrl-C or SIGTERM)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Config file [default: $BOSAR_DEPLOY_CONFIG, else ./deploy.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// AWS region (overrides [aws] region and the AWS chain)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile (overrides [aws] profile)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Output format of the result on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More detail (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only results and errors; no progress
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// No colours (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Bring the target group (and load balancer) to the sticky-WebSocket state from deploy.toml
    AlbUpdate(AlbUpdateArgs),
    /// Roll the ECS service and watch the new deployment until it really succeeded
    Deploy(DeployArgs),
    /// Resume watching the service's newest (or a given) deployment
    Wait(WaitArgs),
    /// Show the service, its deployments, recent events and target health
    Status,
    /// Roll back to the previous (or a named) task definition revision, watched like a deploy
    Rollback(RollbackArgs),
    /// Verify the deployed gateway: health, handshake, cookies, stickiness, auth, heartbeat
    Verify(VerifyArgs),
    /// The whole pipeline: preflight, alb-update, deploy, verify
    Full(FullArgs),
    /// Everything `full` would change, without changing it (same as `full --dry-run`)
    Plan(PlanArgs),
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
    /// Show what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start the rollback and return without watching
    #[arg(long)]
    pub no_wait: bool,
    /// How long to watch (overrides [ecs] timeout; 1s to 24h)
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct VerifyArgs {
    /// Gateway base URL (overrides [gateway] url)
    #[arg(long)]
    pub url: Option<String>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Send the gateway token over plain http:// to a host that is not loopback (refused
    /// otherwise: anyone on the path could read it)
    #[arg(long)]
    pub allow_insecure_token: bool,
    /// Load probe: open this many sessions and hold them
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,
    /// Load probe: new sessions per second at most
    #[arg(long, value_name = "R", requires = "connections")]
    pub rate: Option<f64>,
    /// Load probe: handshakes in flight at once
    #[arg(long, value_name = "C", requires = "connections")]
    pub concurrency: Option<u32>,
    /// Load probe: how long to hold the sessions once all are open
    #[arg(long, value_parser = parse_duration, requires = "connections")]
    pub hold: Option<std::time::Duration>,
    /// Load probe: fail when more than this fraction of sessions failed (0.0-1.0)
    #[arg(long, requires = "connections")]
    pub max_error_rate: Option<f64>,
    /// Load probe: fail when connect latency p99 exceeds this, e.g. 500ms
    #[arg(long, value_parser = parse_duration, requires = "connections")]
    pub max_p99: Option<std::time::Duration>,
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
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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
}
