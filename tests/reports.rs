//! Reports are written last and safely: whatever happens to `--junit` or the step summary (a
//! missing directory, a symlink, a read-only directory), the run's own exit code and stdout
//! stand, a write failure is a warning naming the path, and a symlink is replaced, never
//! followed.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::hostile::{Hostile, Script};
use support::{measure, Measured, Moto};

/// `verify ARGS --junit JUNIT` against `url`, the summary going to `summary`.
fn verify(url: &str, args: &[&str], junit: &Path, summary: &Path) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::hostile::probe_config(dir.path(), url, "BOSAR_REPORTS_TOKEN");
    let mut cmd = Command::new(support::bin_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .env("GITHUB_STEP_SUMMARY", summary)
        .env("BOSAR_REPORTS_TOKEN", "reports-test-token-0123456789")
        .arg("--config")
        .arg(&cfg)
        .arg("verify")
        .args(args)
        .arg("--junit")
        .arg(junit);
    measure(&mut cmd, Duration::from_secs(60))
}

fn probe_args() -> [&'static str; 4] {
    ["--connections", "2", "--hold", "2s"]
}

/// Finding 5: a passing probe (exit 0) and a failing verify (exit 1) keep their exit codes
/// and their stdout when `--junit` names a missing directory or the summary cannot be written.
#[test]
fn a_junit_or_summary_that_cannot_be_written_leaves_the_exit_code_alone() {
    let h = Hostile::start(Script::default());
    let dir = tempfile::tempdir().unwrap();
    let missing = Path::new("/nonexistent/dir/probe.xml");
    let summary = dir.path().join("summary.md");
    let m = verify(&h.url, &probe_args(), missing, &summary);
    assert_eq!(m.run.code, 0, "{}", m.run.all());
    assert!(m.run.stdout.contains("0 failed"), "{}", m.run.stdout);
    assert!(
        m.run
            .stderr
            .contains("warning: the JUnit report was not written to /nonexistent/dir/probe.xml"),
        "{}",
        m.run.stderr
    );
    assert!(std::fs::read_to_string(&summary).unwrap().contains("probe"));

    // The summary in a missing directory: a warning, the exit code stands.
    let junit = dir.path().join("ok.xml");
    let m = verify(
        &h.url,
        &probe_args(),
        &junit,
        Path::new("/nonexistent/s.md"),
    );
    assert_eq!(m.run.code, 0, "{}", m.run.all());
    assert!(
        m.run
            .stderr
            .contains("the step summary was not written to /nonexistent/s.md"),
        "{}",
        m.run.stderr
    );
    assert!(junit.exists());

    // A failing verify (nothing listens) stays 1.
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let m = verify(&closed, &[], missing, &summary);
    assert_eq!(m.run.code, 1, "{}", m.run.all());
    assert!(m.run.stdout.contains("FAIL health"), "{}", m.run.stdout);
    assert!(m.run.stderr.contains("JUnit report was not written"));
}

/// Finding 5: `--junit` at a symlink replaces the link with the report; its target is not
/// touched.
#[test]
fn junit_at_a_symlink_replaces_the_link_not_its_target() {
    let h = Hostile::start(Script::default());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("junit.xml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let m = verify(&h.url, &probe_args(), &link, &dir.path().join("s.md"));
    assert_eq!(m.run.code, 0, "{}", m.run.all());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(!std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    roxmltree::Document::parse(&std::fs::read_to_string(&link).unwrap()).unwrap();
}

/// Finding 5: `--junit` in a read-only directory. Not root: the write fails, a warning says
/// so, the exit code stands. Root writes anyway (permissions do not bind it): the report is
/// there and the exit code is the same.
#[test]
fn junit_in_a_read_only_directory_leaves_the_exit_code_alone() {
    use std::os::unix::fs::PermissionsExt;
    let h = Hostile::start(Script::default());
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let junit = ro.join("junit.xml");
    let m = verify(&h.url, &probe_args(), &junit, &dir.path().join("s.md"));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(m.run.code, 0, "{}", m.run.all());
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        assert!(
            m.run.stderr.contains("JUnit report was not written"),
            "{}",
            m.run.stderr
        );
        assert!(!junit.exists());
    } else {
        assert!(junit.exists());
    }
}

/// Finding 5, as found: `full --output json --skip-verify --junit /nonexistent/dir/full.xml`
/// applied its changes and then exited 1 with nothing on stdout. Now: exit 0, the JSON
/// document, the step summary, and a warning naming the path.
#[test]
fn full_with_an_unwritable_junit_still_prints_its_report_and_exits_0() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (dir, cfg) = support::write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let summary = dir.path().join("summary.md");
    let mut cmd = support::bosar(&moto.endpoint, "reports-full");
    cmd.env("GITHUB_STEP_SUMMARY", &summary)
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args([
            "full",
            "--skip-verify",
            "--junit",
            "/nonexistent/dir/full.xml",
        ]);
    let m = measure(&mut cmd, Duration::from_secs(90));
    assert_eq!(m.run.code, 0, "{}", m.run.all());
    let doc: serde_json::Value = serde_json::from_str(&m.run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", m.run.all()));
    assert_eq!(doc["exit_code"], 0);
    assert!(
        m.run
            .stderr
            .contains("the JUnit report was not written to /nonexistent/dir/full.xml"),
        "{}",
        m.run.stderr
    );
    assert!(std::fs::read_to_string(&summary)
        .unwrap()
        .contains("bosar-deploy full"));
}
