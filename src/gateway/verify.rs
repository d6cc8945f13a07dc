//! `bosar-deploy verify`: proves from outside that the deployed gateway works. The checks live
//! in [`super::checks`]; this is the verb: settings, output (text, JSON, JUnit), exit code.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;

use super::checks::{self, Sink, NAMES};
use super::redact;
pub use super::token::Secret;
pub use super::VerifySettings;
use crate::cli::VerifyArgs;
use crate::config::GatewaySection;
use crate::exit::Code;
use crate::report::{self, Check, CheckStatus, Step};
use crate::ui::Ui;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs every check; never panics; every step is time-bounded. The result has one check per
/// name in [`NAMES`], in that order.
pub async fn verify(settings: &VerifySettings, ui: &Ui) -> Vec<Check> {
    let out = Mutex::new(Vec::new());
    let sink = Sink { ui, out: &out };
    let outcome = std::panic::AssertUnwindSafe(checks::run_all(settings, &sink))
        .catch_unwind()
        .await;
    let internal = outcome.err().map(|p| panic_message(p.as_ref()));
    let mut got = out.into_inner().unwrap_or_else(|e| e.into_inner());
    NAMES
        .iter()
        .map(|name| {
            let c = match got.iter().position(|c| c.name == *name) {
                Some(i) => got.remove(i),
                None => match &internal {
                    Some(m) => Check::new(
                        name,
                        CheckStatus::Fail,
                        Duration::ZERO,
                        format!("not run: internal error: {m}"),
                    ),
                    None => Check::new(name, CheckStatus::Skip, Duration::ZERO, "not run"),
                },
            };
            redact(c, settings.token.as_ref())
        })
        .collect()
}

/// `verify` without `--connections`: the checks, then text or JSON, JUnit and the GitHub step
/// summary. Exit 1 when a check fails. `gw` only says where the token came from.
pub async fn run(
    args: &VerifyArgs,
    settings: &VerifySettings,
    gw: &GatewaySection,
    ui: &Ui,
) -> anyhow::Result<Code> {
    ui.line(format!(
        "Verifying the gateway at {} (namespace {}, token {})",
        settings.url,
        settings.namespace,
        settings.token_source(gw)
    ));
    let started = Instant::now();
    let checks = verify(settings, ui).await;
    let elapsed = started.elapsed();
    let status = report::worst(&checks);
    let summary = report::summary(&checks);

    if ui.json() {
        crate::ui::print_json(&serde_json::json!({
            "command": "verify",
            "url": settings.url,
            "status": status,
            "duration_ms": elapsed.as_millis() as u64,
            "checks": checks,
        }));
    } else {
        for c in &checks {
            println!("{}", c.line());
            if ui.verbose > 0 && !c.evidence.is_null() {
                println!("{:>24}{}", "", c.evidence);
            }
        }
        println!("verify {}: {summary}", settings.url);
    }
    if let Some(path) = &args.junit {
        let step = Step {
            name: "verify".into(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: summary.clone(),
            checks: checks.clone(),
            detail: Value::Null,
        };
        report::write_junit(path, &[step])?;
        ui.detail(format!("JUnit report written to {}", path.display()));
    }
    report::github_step_summary(
        "bosar-deploy verify",
        &[Step {
            name: "verify".into(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: summary,
            checks: checks.clone(),
            detail: Value::Null,
        }],
    );
    Ok(if status == CheckStatus::Fail {
        Code::Failed
    } else {
        Code::Success
    })
}
