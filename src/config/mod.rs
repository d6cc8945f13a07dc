//! `deploy.toml`: the one config file. The schema is a user-facing contract: keys are added,
//! never renamed.
//!
//! Two passes. [`raw`] reads the file as written, every value with its place, and reports
//! every unknown key (with the nearest known one) and wrong type together; the selected
//! `[environments.NAME]` table is overlaid on it key by key. Then [`validate`] checks every
//! value against what AWS accepts, because the emulator stores values real AWS rejects. Every
//! error names file, line, column and key (`environments.NAME.…` for a value from an
//! environment), and all of a file's errors are reported together.

mod diagnostics;
mod model;
mod raw;
mod validate;

use std::path::{Path, PathBuf};

pub use diagnostics::{ConfigError, ConfigErrors};
pub use model::*;
pub use validate::{container_env_name_problem, is_region, CONTAINER_ENV_NAME_RULE};

use crate::exit::Failure;
use diagnostics::Errors;

pub const ENV_CONFIG: &str = "BOSAR_DEPLOY_CONFIG";
/// The whole config as TOML text, for a process without a file: a shard task that
/// `verify --on-ecs` starts (the image has no shell to write one). Read when neither
/// `--config` nor `$BOSAR_DEPLOY_CONFIG` is given; it names only variables, never a secret.
pub const ENV_CONFIG_TOML: &str = "BOSAR_DEPLOY_CONFIG_TOML";
/// The name errors give a config read from [`ENV_CONFIG_TOML`].
const INLINE_PATH: &str = "$BOSAR_DEPLOY_CONFIG_TOML";
/// Selects an `[environments.NAME]` table when `--env` is not given.
pub const ENV_SELECT: &str = "BOSAR_DEPLOY_ENV";

/// Where the config comes from: `--config`, else `$BOSAR_DEPLOY_CONFIG`, else the text in
/// `$BOSAR_DEPLOY_CONFIG_TOML`, else `./deploy.toml`.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(ENV_CONFIG) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ if std::env::var_os(ENV_CONFIG_TOML).is_some_and(|v| !v.is_empty()) => {
            PathBuf::from(INLINE_PATH)
        }
        _ => PathBuf::from("deploy.toml"),
    }
}

/// The config file's text, or [`ENV_CONFIG_TOML`]'s when `path` stands for it.
fn read_source(path: &Path) -> std::io::Result<String> {
    if path == Path::new(INLINE_PATH) {
        return std::env::var(ENV_CONFIG_TOML).map_err(std::io::Error::other);
    }
    std::fs::read_to_string(path)
}

/// The environment to overlay: `--env`, else `$BOSAR_DEPLOY_ENV`, else none.
pub fn selected_environment(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string).or_else(|| {
        std::env::var(ENV_SELECT)
            .ok()
            .filter(|v| !v.trim().is_empty())
    })
}

/// Reads and validates the file with `environment` overlaid. Every error is a usage error
/// (exit 2); nothing has been called on AWS.
pub fn load(path: &Path, environment: Option<&str>) -> anyhow::Result<Config> {
    let source = read_source(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            format!("write one for an existing service with `bosar-deploy init --cluster CLUSTER --service SERVICE`, or pass --config PATH (or set {ENV_CONFIG}); the default is ./deploy.toml")
        } else {
            format!("pass --config PATH or set {ENV_CONFIG}; the default is ./deploy.toml")
        };
        Failure::usage(format!("cannot read config {}: {e}", path.display())).hint(hint)
    })?;
    parse_environment(path, &source, environment).map_err(|errs| {
        let fix = match environment {
            Some(env) => format!(
                "fix {} (environment {env}) and run again; nothing was called on AWS",
                path.display()
            ),
            None => format!(
                "fix {} and run again; nothing was called on AWS",
                path.display()
            ),
        };
        Failure::usage(errs.to_string()).hint(fix).into()
    })
}

/// Parses and validates `source` as the contents of `file`, without an environment.
pub fn parse(file: &Path, source: &str) -> Result<Config, ConfigErrors> {
    parse_environment(file, source, None)
}

/// Parses `source`, overlays `environment` and validates the result.
pub fn parse_environment(
    file: &Path,
    source: &str,
    environment: Option<&str>,
) -> Result<Config, ConfigErrors> {
    let mut errs = Errors::new(file, source);
    let Some(raw) = raw::read(source, &mut errs) else {
        return Err(ConfigErrors(errs.list));
    };
    let names: Vec<String> = raw.environments.iter().map(|e| e.name.clone()).collect();
    // An unknown name points at the file's first environment, not at line 1.
    let env_span = raw
        .environments
        .first()
        .map(|e| e.span.clone())
        .unwrap_or(0..0);
    let mut base = raw.base;
    if let Some(env) = environment {
        let Some(overlay) = raw.environments.into_iter().find(|e| e.name == env) else {
            let allowed = if names.is_empty() {
                "the file has no [environments.NAME] tables".to_string()
            } else {
                format!("environments {}", names.join(", "))
            };
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            let message = match diagnostics::did_you_mean(env, &known) {
                Some(near) => format!(
                    "unknown environment \"{env}\" (--env / ${ENV_SELECT}); did you mean \"{near}\"?"
                ),
                None => format!("unknown environment \"{env}\" (--env / ${ENV_SELECT})"),
            };
            errs.at(env_span, "environments", message, Some(&allowed));
            return Err(ConfigErrors(errs.list));
        };
        errs.environment = Some((overlay.name.clone(), overlay.span.clone()));
        base = raw::overlay(base, overlay.config);
    }
    let cfg = validate::validate(file, base, &mut errs);
    if errs.list.is_empty() {
        let mut cfg = cfg.expect("validated config without errors");
        cfg.environment = environment.map(str::to_string);
        Ok(cfg)
    } else {
        Err(ConfigErrors(errs.list))
    }
}
