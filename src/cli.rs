//! Command-line definitions (clap). Each subcommand is an `Args` struct; the verbs live in their modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bosar-deploy",
    version,
    about = "Ship the BoSar chat API: ALB stickiness, ECS rollouts and Socket.IO gateway verification",
    after_help = "Exit codes: 0 success, 1 failed, 2 usage/config error (nothing called), \
                  3 changes pending (--detailed-exitcode), 4 timed out, 130 interrupted."
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

#[derive(Args, Debug, Clone, Default)]
pub struct AlbUpdateArgs {
    /// Show the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit 3 when changes are pending (0 when in sync)
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DeployArgs {
    /// Container image for the new revision (overrides [ecs] image)
    #[arg(long)]
    pub image: Option<String>,
    /// Show the task definition diff and the service update; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 3 when the dry run has changes
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Start the rollout and return without watching it
    #[arg(long)]
    pub no_wait: bool,
    /// How long to watch (overrides [ecs] timeout), e.g. 20m
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// On failure, update the service back to the previous revision and watch that too
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Skip one preflight check (image, roles, logs, secrets; repeatable): no call, a warning
    #[arg(long, value_enum, value_name = "CHECK")]
    pub skip_preflight: Vec<crate::ecs::preflight::CheckName>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct WaitArgs {
    /// The deployment to follow [default: the service's primary deployment]
    #[arg(long)]
    pub deployment: Option<String>,
    /// How long to watch (overrides [ecs] timeout)
    #[arg(long, value_parser = parse_duration)]
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
    /// How long to watch (overrides [ecs] timeout)
    #[arg(long, value_parser = parse_duration)]
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
    /// Show everything full would change; change nothing (same as `plan`)
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 3 when changes are pending (with --dry-run)
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Container image for the new revision (overrides [ecs] image)
    #[arg(long)]
    pub image: Option<String>,
    /// Skip the verify step
    #[arg(long)]
    pub skip_verify: bool,
    /// Gateway base URL for verify (overrides [gateway] url)
    #[arg(long)]
    pub url: Option<String>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// How long to watch the rollout (overrides [ecs] timeout)
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// If the rollout fails, update the service back to the previous revision and watch that
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Skip one preflight check (image, roles, logs, secrets; repeatable): no call, a warning
    #[arg(long, value_enum, value_name = "CHECK")]
    pub skip_preflight: Vec<crate::ecs::preflight::CheckName>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PlanArgs {
    /// Exit 3 when changes are pending
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Container image for the new revision (overrides [ecs] image)
    #[arg(long)]
    pub image: Option<String>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Skip one preflight check (image, roles, logs, secrets; repeatable): no call, a warning
    #[arg(long, value_enum, value_name = "CHECK")]
    pub skip_preflight: Vec<crate::ecs::preflight::CheckName>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
}
