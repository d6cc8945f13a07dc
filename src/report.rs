//! Outcomes of checks and steps, and their renderers: text for people, JSON for machines,
//! JUnit XML for CI, and GitHub Actions' step summary, and [`publish`], the shared ending that
//! writes the reports last. Secrets never enter these types: evidence is built from what the
//! server said, never from the token sent, and outside text is redacted when it arrives
//! (`crate::outside`). Renderers take every string through `crate::outside` again.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use console::style;
use serde::Serialize;

use crate::outside;
use crate::ui::Ui;

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

/// Characters of a check's message in JUnit (attribute and text).
const JUNIT_MESSAGE_CAP: usize = 2000;
/// Characters of a name (step, check) in JUnit and the summary.
const NAME_CAP: usize = 100;
/// Characters of a message in a summary cell.
const CELL_CAP: usize = 500;
/// Bytes of one step summary; GitHub drops summaries over 1 MiB.
pub const SUMMARY_CAP: usize = 64 * 1024;

fn xml(s: &str) -> String {
    outside::xml_text(s, JUNIT_MESSAGE_CAP)
}

fn xml_name(s: &str) -> String {
    outside::xml_text(s, NAME_CAP)
}

/// JUnit XML: one testsuite per step, one testcase per check (a step without checks is
/// one testcase itself). Failures carry their message; warnings are `system-out`. Every
/// string goes through [`outside::xml_text`]: escaped, cut, no character XML forbids.
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
            xml_name(&step.name),
            cases.len(),
            secs(step.duration_ms)
        );
        for c in &cases {
            let _ = write!(
                out,
                "    <testcase classname=\"bosar-deploy.{}\" name=\"{}\" time=\"{}\"",
                xml_name(&step.name),
                xml_name(&c.name),
                secs(c.duration_ms)
            );
            let msg = xml(&c.message);
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

/// Writes the JUnit report (a temporary file renamed over `path`, never through a symlink).
pub fn write_junit(path: &Path, steps: &[Step]) -> std::io::Result<()> {
    crate::files::replace(path, junit(steps).as_bytes())
}

/// Markdown for `$GITHUB_STEP_SUMMARY`: every cell through [`outside::markdown_cell`] (a code
/// span: no HTML, no emphasis, no links or autolinks from outside text), at most
/// [`SUMMARY_CAP`] bytes (rows past it are counted, not shown).
pub fn markdown(title: &str, steps: &[Step]) -> String {
    let icon = |s: CheckStatus| match s {
        CheckStatus::Pass => "✅",
        CheckStatus::Warn => "⚠️",
        CheckStatus::Fail => "❌",
        CheckStatus::Skip => "⏭️",
    };
    let mut out = format!(
        "### {}\n\n| step / check | status | time | detail |\n|---|---|---|---|\n",
        outside::markdown_cell(title, NAME_CAP)
    );
    let mut rows: Vec<String> = Vec::new();
    for step in steps {
        rows.push(format!(
            "| **{}** | {} | {:.1}s | {} |\n",
            outside::markdown_cell(&step.name, NAME_CAP),
            icon(step.status),
            step.duration_ms as f64 / 1000.0,
            outside::markdown_cell(&step.message, CELL_CAP)
        ));
        for c in &step.checks {
            rows.push(format!(
                "| &nbsp;&nbsp;{} | {} | {} ms | {} |\n",
                outside::markdown_cell(&c.name, NAME_CAP),
                icon(c.status),
                c.duration_ms,
                outside::markdown_cell(&c.message, CELL_CAP)
            ));
        }
    }
    let total = rows.len();
    for (i, row) in rows.into_iter().enumerate() {
        if out.len() + row.len() > SUMMARY_CAP - 200 {
            let _ = writeln!(
                out,
                "| … | | | {} more row(s) not shown: the summary is kept under {} KiB |",
                total - i,
                SUMMARY_CAP / 1024
            );
            break;
        }
        out.push_str(&row);
    }
    out
}

/// Appends the summary to `$GITHUB_STEP_SUMMARY` (never through a symlink); does nothing when
/// it is not set.
pub fn github_step_summary(title: &str, steps: &[Step]) -> std::io::Result<()> {
    match std::env::var_os("GITHUB_STEP_SUMMARY") {
        Some(path) if !path.is_empty() => {
            crate::files::append(Path::new(&path), markdown(title, steps).as_bytes())
        }
        _ => Ok(()),
    }
}

/// The shared ending of a verb with checks, written after its result is printed: under GitHub
/// Actions one `::error` annotation per failed check (or failed step without checks), then the
/// JUnit report and the step summary. A report that cannot be written is a warning naming the
/// path; the run's exit code stands.
pub fn publish(ui: &Ui, title: &str, steps: &[Step], junit: Option<&Path>) {
    for s in steps {
        for c in s.checks.iter().filter(|c| c.status == CheckStatus::Fail) {
            ui.annotate("error", Some(&format!("{} {}", s.name, c.name)), &c.message);
        }
        if s.checks.is_empty() && s.status == CheckStatus::Fail {
            ui.annotate("error", Some(&s.name), &s.message);
        }
    }
    if let Some(path) = junit {
        match write_junit(path, steps) {
            Ok(()) => ui.detail(format!("JUnit report written to {}", path.display())),
            Err(e) => ui.warn(format!(
                "the JUnit report was not written to {}: {e}",
                path.display()
            )),
        }
    }
    if let Err(e) = github_step_summary(title, steps) {
        let path = std::env::var_os("GITHUB_STEP_SUMMARY").unwrap_or_default();
        ui.warn(format!(
            "the step summary was not written to {}: {e}",
            Path::new(&path).display()
        ));
    }
}

/// What a run of checks concluded, in the one `result` vocabulary every payload shares
/// (schema `$defs/result`): a passing run with warnings is `warned`, not a failure.
pub fn result_of_checks(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Pass => "succeeded",
        CheckStatus::Warn => "warned",
        CheckStatus::Fail => "failed",
        CheckStatus::Skip => "skipped",
    }
}

/// One `--skip-preflight` value: a whole check (`image`), or one container's part of a
/// per-container check (`image:sidecar`), so a sidecar from a registry the check cannot
/// judge does not take the check away from every other container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreflightSkip {
    pub check: CheckName,
    pub container: Option<String>,
}

impl PreflightSkip {
    /// The whole check.
    pub fn whole(check: CheckName) -> PreflightSkip {
        PreflightSkip {
            check,
            container: None,
        }
    }

    /// `CHECK` or `CHECK:CONTAINER` (image, logs, secrets: `roles` is about the task).
    pub fn parse(s: &str) -> Result<PreflightSkip, String> {
        let (name, container) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let check = CheckName::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                format!("{name:?} is not a check; allowed: image, roles, logs, secrets, or CHECK:CONTAINER for image, logs and secrets")
            })?;
        match container {
            None => Ok(PreflightSkip::whole(check)),
            Some("") => Err(format!("{s:?}: name the container after the colon ({name}:CONTAINER)")),
            Some(_) if check == CheckName::Roles => Err(
                "roles is about the task's roles, not a container: skip it whole (--skip-preflight roles)".into(),
            ),
            Some(c) => Ok(PreflightSkip {
                check,
                container: Some(c.to_string()),
            }),
        }
    }

    /// As given on the command line.
    pub fn flag(&self) -> String {
        match &self.container {
            Some(c) => format!("{}:{c}", self.check),
            None => self.check.to_string(),
        }
    }
}

/// Whether `--skip-preflight` skips `check` for every container.
pub fn skips_whole(skip: &[PreflightSkip], check: CheckName) -> bool {
    skip.iter()
        .any(|s| s.check == check && s.container.is_none())
}

/// The containers `--skip-preflight CHECK:CONTAINER` takes out of `check`.
pub fn skipped_containers(skip: &[PreflightSkip], check: CheckName) -> Vec<&str> {
    skip.iter()
        .filter(|s| s.check == check)
        .filter_map(|s| s.container.as_deref())
        .collect()
}

/// The preflight checks, by the name `--skip-preflight` takes and reports show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CheckName {
    Image,
    Roles,
    Logs,
    Secrets,
}

impl CheckName {
    pub const ALL: [CheckName; 4] = [
        CheckName::Image,
        CheckName::Roles,
        CheckName::Logs,
        CheckName::Secrets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Image => "image",
            CheckName::Roles => "roles",
            CheckName::Logs => "logs",
            CheckName::Secrets => "secrets",
        }
    }

    /// The IAM permission the check's calls need (docs/ci.md "IAM policy").
    pub fn permissions(self) -> &'static str {
        match self {
            CheckName::Image => "ecr:DescribeImages",
            CheckName::Roles => "iam:GetRole",
            CheckName::Logs => "logs:DescribeLogGroups",
            CheckName::Secrets => "ssm:GetParameters, secretsmanager:DescribeSecret",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_skip_names_a_whole_check_or_one_containers_part() {
        let p = |s: &str| PreflightSkip::parse(s);
        assert_eq!(p("image").unwrap(), PreflightSkip::whole(CheckName::Image));
        let one = p("image:sidecar").unwrap();
        assert_eq!(one.container.as_deref(), Some("sidecar"));
        assert_eq!(one.flag(), "image:sidecar");
        assert!(p("logs:web").is_ok() && p("secrets:web").is_ok());
        assert!(p("roles:web").unwrap_err().contains("skip it whole"));
        assert!(p("image:").unwrap_err().contains("name the container"));
        assert!(p("imagez").unwrap_err().contains("not a check"));
        let skip = [one, PreflightSkip::whole(CheckName::Logs)];
        assert!(
            !skips_whole(&skip, CheckName::Image),
            "one container is not the check"
        );
        assert!(skips_whole(&skip, CheckName::Logs));
        assert_eq!(skipped_containers(&skip, CheckName::Image), vec!["sidecar"]);
        assert!(skipped_containers(&skip, CheckName::Secrets).is_empty());
    }
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

    fn step_with(message: &str) -> Step {
        Step::new("verify", CheckStatus::Fail, Duration::ZERO, "1 failed").with_checks(vec![
            Check::new("health", CheckStatus::Fail, Duration::ZERO, message),
        ])
    }

    #[test]
    fn junit_drops_what_xml_forbids_and_stays_small() {
        let xml = junit(&[step_with("bad \u{fffe}\u{ffff}\u{0} end <x>")]);
        let doc = roxmltree::Document::parse(&xml).expect("valid XML");
        let failure = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(failure.attribute("message"), Some("bad  end <x>"));
        let xml = junit(&[step_with(&"x".repeat(900 * 1024))]);
        assert!(xml.len() < 8 * 1024, "{} bytes", xml.len());
        roxmltree::Document::parse(&xml).unwrap();
    }

    /// `markdown` as GitHub renders it: `cmark-gfm` (its renderer) with the table and autolink
    /// extensions. A missing `cmark-gfm` fails the test, never skips it.
    fn render_gfm(markdown: &str) -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new("cmark-gfm")
            .args(["-e", "table", "-e", "autolink"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cmark-gfm not runnable ({e}): run `bash scripts/setup.sh` (apt cmark-gfm)")
            });
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(markdown.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "cmark-gfm failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    const HOSTILE: &str = "instance <img src=x>[x](https://e.example)|`code`\\| *em* \
        www.evil.example admin@evil.example admin&#64;evil.example https://evil.example/x \
        mailto:a@evil.example xmpp:a@evil.example";

    #[test]
    fn the_summary_renders_server_text_as_text_and_is_capped() {
        let md = markdown("bosar-deploy verify", &[step_with(HOSTILE)]);
        let html = render_gfm(&md);
        for bad in ["<a ", "<img", "<em>", "<script"] {
            assert!(!html.contains(bad), "{bad} in {html}\nfrom {md}");
        }
        // The text is shown as it came, in a code span of the one detail cell of its row.
        let shown = HOSTILE
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(html.contains(&format!("<code>{shown}</code>")), "{html}");
        for row in html.split("<tr>").skip(1) {
            let cells = row.matches("<td").count() + row.matches("<th").count();
            assert_eq!(cells, 4, "{row}");
        }
        let many: Vec<Step> = (0..2000).map(|_| step_with(&"y".repeat(2000))).collect();
        let md = markdown("t", &many);
        assert!(md.len() <= SUMMARY_CAP, "{} bytes", md.len());
        assert!(
            md.contains("more row(s) not shown"),
            "{}",
            &md[md.len() - 200..]
        );
    }
}
