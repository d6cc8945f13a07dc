//! The ending of a probe run, shared by `verify --connections` and `report merge`: the
//! verdicts, the result on stdout, the reports, the JSON document and the exit code.

use serde_json::{json, Value};

use super::report::ProbeReport;
use super::verdicts::ms_text;
use super::{checks, disruption};
use crate::exit::Code;
use crate::report::{Check, CheckStatus, Step};
use crate::ui::Ui;

/// The verdicts of a probe's report (one run's, or the merge of its shards'), the result on
/// stdout, the reports (annotations, JUnit, step summary), then the JSON document with `extra`
/// in the payload and `more` checks after the probe's own. Exit 1 when a check fails; 130 when the run was interrupted.
pub fn conclude(
    ui: &Ui,
    report: &ProbeReport,
    title: &str,
    junit: Option<&std::path::Path>,
    extra: Option<(&str, Value)>,
    more: Vec<Check>,
) -> Code {
    let checks: Vec<Check> = checks(report)
        .into_iter()
        .chain(more)
        .map(crate::gateway::redact)
        .collect();
    let status = crate::report::worst(&checks);
    let mut message = format!("{}; {}", headline(report), crate::report::summary(&checks));
    if report.interrupted {
        message = format!("interrupted; {message}");
    }
    print_result(ui, report, &checks, &message);
    let error = (status == CheckStatus::Fail || report.interrupted)
        .then(|| anyhow::anyhow!("verify --connections {}: {message}", report.connections));
    let mut payload = serde_json::to_value(report).unwrap_or_default();
    payload["result"] = json!(crate::report::result_of_checks(status));
    payload["checks"] = json!(checks);
    if let Some((key, value)) = extra {
        payload[key] = value;
    }
    let step = Step {
        name: "probe".into(),
        status,
        duration_ms: report.duration_ms,
        message,
        checks,
        detail: Value::Null,
    };
    crate::report::publish(ui, title, std::slice::from_ref(&step), junit);
    let code = if report.interrupted {
        Code::Interrupted
    } else if status == CheckStatus::Fail {
        Code::Failed
    } else {
        Code::Success
    };
    // After the reports: a report that cannot be written is a warning the document carries.
    ui.emit("probe", &payload, code, error.as_ref());
    code
}

/// `N of M session(s) held, R handshakes/s, connect p99 T`.
fn headline(report: &ProbeReport) -> String {
    format!(
        "{} of {} session(s) held, {}, connect p99 {}",
        report.opened.saturating_sub(report.dropped),
        report.connections,
        report
            .handshakes_per_s
            .map(|h| format!("{h:.0} handshakes/s"))
            .unwrap_or_else(|| "no handshake".into()),
        report
            .connect
            .map(|c| ms_text(c.p99_ms))
            .unwrap_or_else(|| "-".into())
    )
}

/// The result on stdout: one JSON document, or the checks, the failures by cause and the
/// closing line (`message` is the headline and the summary).
fn print_result(ui: &Ui, report: &ProbeReport, checks: &[Check], message: &str) {
    for c in checks {
        ui.out(c.line());
    }
    if let Some(d) = &report.disruption {
        let table = disruption::render_table(d);
        if !table.is_empty() {
            ui.out(table.trim_end());
        }
    }
    if !report.failures.is_empty() {
        ui.out("failures by cause:");
        for f in &report.failures {
            ui.out(format!("  {:>7} × {:<5} {}", f.count, f.phase, f.cause));
        }
    }
    ui.out(format!(
        "verify --connections {} {}: {message}",
        report.connections, report.url
    ));
}
