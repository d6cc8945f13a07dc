//! `bosar-deploy verify`: the verb's dispatch. It reads `[gateway]` into the settings, then
//! runs either the single check run ([`gateway::verify::run`]: nine checks on one session) or,
//! with `--connections N`, the load probe ([`gateway::probe::run`]).
//!
//! The choice lives here, above both, so that `gateway::verify` and `gateway::probe` import
//! only the gateway base and never each other. It is a file of its own rather than a few lines
//! in `main.rs` so the entry point keeps one line per verb, as for the others.

use crate::cli::VerifyArgs;
use crate::config::Config;
use crate::exit::Code;
use crate::gateway::{self, VerifySettings};
use crate::ui::Ui;

/// The CLI verb: settings from `[gateway]` (and `--url`), then the checks or the probe.
pub async fn run(args: &VerifyArgs, cfg: &Config, ui: &Ui) -> anyhow::Result<Code> {
    let gw = cfg.gateway_or_url("verify", args.url.as_deref())?;
    let settings =
        VerifySettings::from_config(&gw, args.url.as_deref(), args.allow_insecure_token)?;
    if args.connections.is_some() {
        gateway::probe::run(args, &settings, ui).await
    } else {
        gateway::verify::run(args, &settings, &gw, ui).await
    }
}
