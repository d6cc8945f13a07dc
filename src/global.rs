//! The global options every verb shares (config, environment, region, profile, output,
//! verbosity, colour). A base module: `aws` and `ui` read them without importing `cli.rs`,
//! which re-exports them and adds the verbs on top.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Config file [default: $BOSAR_DEPLOY_CONFIG, else ./deploy.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Overlay [environments.NAME] of the config file [default: $BOSAR_DEPLOY_ENV]
    #[arg(long = "env", global = true, value_name = "NAME")]
    pub environment: Option<String>,
    /// AWS region (overrides [aws] region and the AWS chain)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile (overrides [aws] profile)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Output format of the result on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More detail: -v setup (config, region, credentials, endpoint), -vv every AWS call and
    /// gateway request, -vvv failed attempts
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
