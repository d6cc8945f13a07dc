//! Shipping the tool: a closed stdout ends an output-only run as success (as ripgrep does),
//! and no write to a closed pipe panics; `action.yml` and the workflows in
//! docs/distribution.md pass actionlint; the Dockerfile builds what the docs say.

mod support;

use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = Command::new(support::bin_path());
    c.env_remove("BOSAR_DEPLOY_CONFIG")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// Runs `cmd` with a stdout whose reading end is closed before the process starts, so every
/// write meets EPIPE (no race with a reader that closes "early enough").
fn with_closed_stdout(cmd: &mut Command) -> (i32, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("spawn bosar-deploy");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn completions_into_a_closed_pipe_succeed() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stderr) = with_closed_stdout(bin().args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(!stderr.contains("panicked"), "{shell}: {stderr}");
    }
}

#[test]
fn help_version_and_json_errors_into_a_closed_pipe_do_not_panic() {
    let (code, stderr) = with_closed_stdout(bin().arg("--help"));
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = with_closed_stdout(bin().arg("--version"));
    assert_eq!(code, 0, "{stderr}");
    // A verb that fails (no config here) with `--output json`: the envelope's write meets
    // EPIPE; the run keeps its own verdict (a usage error), never 101.
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = with_closed_stdout(
        bin()
            .args(["--output", "json", "--config"])
            .arg(dir.path().join("missing.toml"))
            .arg("status"),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
