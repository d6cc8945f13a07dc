//! Outcomes of checks and steps, and their renderers: text for people, JSON for machines,
//! JUnit XML for CI, and GitHub Actions' step summary. Secrets never enter these types:
//! evidence is built from what the server said, never from the token sent.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use console::style;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl CheckStatus {
    pub fn label(self) -> console::StyledObject<&'static str> {
        match self {
            CheckStatus::Pass => style("PASS").green().bold(),
            CheckStatus::Warn => style("WARN").yellow().bold(),
            CheckStatus::Fail => style("FAIL").red().bold(),
            CheckStatus::Skip => style("SKIP").dim(),
        }
    }
}

/// One check with its time and evidence (what was observed).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub duration_ms: u64,
    pub message: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub evidence: serde_json::Value,
}

impl Check {
    pub fn new(
        name: &str,
        status: CheckStatus,
        elapsed: Duration,
        message: impl Into<String>,
    ) -> Check {
        Check {
            name: name.to_string(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: message.into(),
            evidence: serde_json::Value::Null,
        }
    }
    pub fn with_evidence(mut self, evidence: serde_json::Value) -> Check {
        self.evidence = evidence;
        self
    }
    pub fn line(&self) -> String {
        format!(
            "{} {:<16} {:>6} ms  {}",
            self.status.label(),
            self.name,
            self.duration_ms,
            self.message
        )
    }
}

/// A pipeline step (or a single command) with its checks.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub status: CheckStatus,
    pub duration_ms: u64,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl Step {
    /// A step that took `elapsed`, without checks or detail.
    pub fn new(
        name: &str,
        status: CheckStatus,
        elapsed: Duration,
        message: impl Into<String>,
    ) -> Step {
        Step {
            name: name.to_string(),
            status,
            duration_ms: elapsed.as_millis() as u64,
            message: message.into(),
            checks: Vec::new(),
            detail: serde_json::Value::Null,
        }
    }
    /// A step that did not run, and why.
    pub fn skipped(name: &str, why: impl Into<String>) -> Step {
        Step::new(name, CheckStatus::Skip, Duration::ZERO, why)
    }
    pub fn with_checks(mut self, checks: Vec<Check>) -> Step {
        self.checks = checks;
        self
    }
    pub fn with_detail(mut self, detail: impl Serialize) -> Step {
        self.detail = serde_json::to_value(detail).unwrap_or_default();
        self
    }
}

pub fn worst(checks: &[Check]) -> CheckStatus {
    worst_of(checks.iter().map(|c| c.status))
}

/// The worst status over steps; skipped steps do not count.
pub fn worst_step(steps: &[Step]) -> CheckStatus {
    worst_of(steps.iter().map(|s| s.status))
}

/// Fail over Warn over Pass; Skip does not count.
fn worst_of(statuses: impl Iterator<Item = CheckStatus>) -> CheckStatus {
    let mut worst = CheckStatus::Pass;
    for s in statuses {
        match s {
            CheckStatus::Fail => return CheckStatus::Fail,
            CheckStatus::Warn => worst = CheckStatus::Warn,
            _ => {}
        }
    }
    worst
}

/// The one-line tally of a run's checks: `N passed, N warned, N failed, N skipped`.
pub fn summary(checks: &[Check]) -> String {
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    format!(
        "{} passed, {} warned, {} failed, {} skipped",
        count(CheckStatus::Pass),
        count(CheckStatus::Warn),
        count(CheckStatus::Fail),
        count(CheckStatus::Skip)
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one testsuite per step, one testcase per check (a step without checks is
/// one testcase itself). Failures carry their message; warnings are `system-out`.
pub fn junit(steps: &[Step]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total: usize = steps.iter().map(|s| s.checks.len().max(1)).sum();
    let failures: usize = steps
        .iter()
        .map(|s| {
            if s.checks.is_empty() {
                usize::from(s.status == CheckStatus::Fail)
            } else {
                s.checks
                    .iter()
                    .filter(|c| c.status == CheckStatus::Fail)
                    .count()
            }
        })
        .sum();
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let _ = writeln!(
        out,
        "<testsuites name=\"bosar-deploy\" tests=\"{total}\" failures=\"{failures}\" time=\"{}\">",
        secs(steps.iter().map(|s| s.duration_ms).sum())
    );
    for step in steps {
        let cases: Vec<Check> = if step.checks.is_empty() {
            vec![Check {
                name: step.name.clone(),
                status: step.status,
                duration_ms: step.duration_ms,
                message: step.message.clone(),
                evidence: serde_json::Value::Null,
            }]
        } else {
            step.checks.clone()
        };
        let f = cases
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .count();
        let s = cases
            .iter()
            .filter(|c| c.status == CheckStatus::Skip)
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\" time=\"{}\">",
            xml_escape(&step.name),
            cases.len(),
            secs(step.duration_ms)
        );
        for c in &cases {
            let _ = write!(
                out,
                "    <testcase classname=\"bosar-deploy.{}\" name=\"{}\" time=\"{}\"",
                xml_escape(&step.name),
                xml_escape(&c.name),
                secs(c.duration_ms)
            );
            let msg = xml_escape(&c.message);
            match c.status {
                CheckStatus::Pass => {
                    let _ = writeln!(out, "/>");
                }
                CheckStatus::Fail => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{msg}\">{msg}</failure>\n    </testcase>"
                    );
                }
                CheckStatus::Skip => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{msg}\"/>\n    </testcase>"
                    );
                }
                CheckStatus::Warn => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>WARN: {msg}</system-out>\n    </testcase>"
                    );
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

pub fn write_junit(path: &Path, steps: &[Step]) -> anyhow::Result<()> {
    std::fs::write(path, junit(steps)).map_err(|e| {
        crate::exit::Failure::failed(format!("cannot write JUnit report {}: {e}", path.display()))
            .into()
    })
}

/// Markdown for `$GITHUB_STEP_SUMMARY`.
pub fn markdown(title: &str, steps: &[Step]) -> String {
    let icon = |s: CheckStatus| match s {
        CheckStatus::Pass => "✅",
        CheckStatus::Warn => "⚠️",
        CheckStatus::Fail => "❌",
        CheckStatus::Skip => "⏭️",
    };
    let mut out =
        format!("### {title}\n\n| step / check | status | time | detail |\n|---|---|---|---|\n");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for step in steps {
        let _ = writeln!(
            out,
            "| **{}** | {} | {:.1}s | {} |",
            step.name,
            icon(step.status),
            step.duration_ms as f64 / 1000.0,
            cell(&step.message)
        );
        for c in &step.checks {
            let _ = writeln!(
                out,
                "| &nbsp;&nbsp;{} | {} | {} ms | {} |",
                c.name,
                icon(c.status),
                c.duration_ms,
                cell(&c.message)
            );
        }
    }
    out
}

/// Appends the summary under GitHub Actions; silently does nothing elsewhere.
pub fn github_step_summary(title: &str, steps: &[Step]) {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(markdown(title, steps).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_has_one_testcase_per_check_and_escapes() {
        let steps = vec![
            Step {
                name: "alb-update".into(),
                status: CheckStatus::Pass,
                duration_ms: 10,
                message: "in sync".into(),
                checks: vec![],
                detail: serde_json::Value::Null,
            },
            Step {
                name: "verify".into(),
                status: CheckStatus::Fail,
                duration_ms: 900,
                message: "1 check failed".into(),
                checks: vec![
                    Check::new("health", CheckStatus::Pass, Duration::from_millis(5), "200"),
                    Check::new(
                        "stickiness",
                        CheckStatus::Fail,
                        Duration::from_millis(50),
                        "requests with <AWSALB> & cookies lost the session",
                    ),
                ],
                detail: serde_json::Value::Null,
            },
        ];
        let xml = junit(&steps);
        assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
        assert!(
            xml.contains("<testcase classname=\"bosar-deploy.verify\" name=\"stickiness\""),
            "{xml}"
        );
        assert!(xml.contains("&lt;AWSALB&gt; &amp; cookies"), "{xml}");
        assert!(!xml.contains("<AWSALB>"));
    }
}
