//! Ctrl-C and SIGTERM (how CI runners cancel a job) take the same path: the run stops what it
//! was watching or probing, writes its reports, says so with the command to resume or rerun,
//! and exits 130. Signals are sent to the binary once its stderr shows it is in the phase under
//! test; each run must end within 15 s of that (its watch or hold would last minutes).

mod support;

use std::time::Duration;

use support::hostile::{Hostile, Script};
use support::{signal_when, Moto};

/// `deploy` watching a rollout that never completes (moto without MOTO_ECS_SERVICE_RUNNING).
#[test]
fn sigterm_during_deploys_watch_exits_130_with_the_resume_command() {
    let moto = Moto::start();
    let (_dir, cfg) = support::write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    for (i, signal) in [libc::SIGTERM, libc::SIGINT].into_iter().enumerate() {
        // A new image each time, so there is a rollout to watch.
        let image = format!("repo/bosar-api:2.0.{i}");
        // The second run as JSON: one document, status `interrupted`, exit code 130.
        let json = i == 1;
        let mut cmd = support::bosar(&moto.endpoint, "interrupt-deploy");
        if json {
            cmd.args(["--output", "json"]);
        }
        cmd.arg("--config")
            .arg(&cfg)
            .args(["deploy", "--image", &image]);
        let m = signal_when(
            &mut cmd,
            Duration::from_secs(60),
            Some(("Started deployment", signal)),
        );
        let err = &m.run.stderr;
        assert_eq!(m.run.code, 130, "signal {signal}: {err}");
        assert!(
            err.contains("interrupted: stopped watching; the rollout goes on in AWS"),
            "{err}"
        );
        assert!(
            err.contains("resume watching with: bosar-deploy --config")
                && err.contains("wait --deployment ecs-svc/"),
            "{err}"
        );
        assert!(m.elapsed < Duration::from_secs(15), "{:?}", m.elapsed);
        if json {
            let doc: serde_json::Value = serde_json::from_str(&m.run.stdout).unwrap();
            assert_eq!(doc["status"], "interrupted", "{doc:#}");
            assert_eq!(doc["exit_code"], 130);
        }
    }
}

/// `full` interrupted during its deploy step's watch: JUnit and the step summary are written,
/// the rest is skipped as interrupted, exit 130.
#[test]
fn sigterm_during_fulls_watch_writes_the_reports() {
    let moto = Moto::start();
    let (dir, cfg) = support::write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let junit = dir.path().join("junit.xml");
    let summary = dir.path().join("summary.md");
    let mut cmd = support::bosar(&moto.endpoint, "interrupt-full");
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .arg("--config")
        .arg(&cfg)
        .args([
            "full",
            "--skip-verify",
            "--image",
            "repo/bosar-api:2.0.0",
            "--junit",
        ])
        .arg(&junit);
    let m = signal_when(
        &mut cmd,
        Duration::from_secs(60),
        Some(("Started deployment", libc::SIGTERM)),
    );
    assert_eq!(m.run.code, 130, "{}", m.run.all());
    assert!(
        m.run.stderr.contains("resume watching with:"),
        "{}",
        m.run.stderr
    );
    assert!(
        m.run.stdout.contains("pipeline failed (exit 130)"),
        "{}",
        m.run.stdout
    );
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let deploy = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("deploy"))
        .expect("a deploy testcase");
    let failure = deploy
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure
            .attribute("message")
            .unwrap()
            .contains("interrupted"),
        "{xml}"
    );
    let md = std::fs::read_to_string(&summary).expect("summary written");
    assert!(md.contains("not run: interrupted"), "{md}");
    assert!(m.elapsed < Duration::from_secs(15), "{:?}", m.elapsed);
}

/// The probe interrupted during a 60 s hold: its sessions close, the report, JUnit and summary
/// are written (covering what ran), the message says how to run it again; 130.
#[test]
fn sigterm_during_a_probe_hold_closes_and_reports() {
    let h = Hostile::start(Script::default());
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = support::hostile::probe_config(dir.path(), &h.url, "BOSAR_INTERRUPT_TOKEN");
        let junit = dir.path().join("probe.xml");
        let summary = dir.path().join("summary.md");
        let mut cmd = std::process::Command::new(support::bin_path());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CI", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("BOSAR_INTERRUPT_TOKEN", "interrupt-test-token-0123456789")
            .arg("--config")
            .arg(&cfg)
            .args(["verify", "--connections", "2", "--hold", "60s", "--junit"])
            .arg(&junit);
        let m = signal_when(
            &mut cmd,
            Duration::from_secs(90),
            Some(("probe: holding", signal)),
        );
        let err = &m.run.stderr;
        assert_eq!(m.run.code, 130, "signal {signal}: {}", m.run.all());
        assert!(
            err.contains("interrupted: the probe stopped early"),
            "{err}"
        );
        assert!(
            err.contains("run it again with: bosar-deploy --config")
                && err.contains("verify --connections 2"),
            "{err}"
        );
        assert!(m.run.stdout.contains("interrupted;"), "{}", m.run.stdout);
        let xml = std::fs::read_to_string(&junit).expect("JUnit written");
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("testcase"))
                .count(),
            8,
            "{xml}"
        );
        assert!(std::fs::read_to_string(&summary).unwrap().contains("probe"));
        assert!(m.elapsed < Duration::from_secs(15), "{:?}", m.elapsed);
    }
}

/// `--until-stopped` (how `deploy --under-load --on-ecs` ends its shards): SIGTERM during the
/// hold is the planned end: the sessions close as after a full hold, the report is not
/// interrupted, the exit code is the checks' (0). The same stop before the hold (while
/// waiting for --start-at) still interrupts: 130.
#[test]
fn until_stopped_takes_sigterm_in_the_hold_as_its_end() {
    let h = Hostile::start(Script::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::hostile::probe_config(dir.path(), &h.url, "BOSAR_INTERRUPT_TOKEN");
    let cmd = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(support::bin_path());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CI", "true")
            .env("BOSAR_INTERRUPT_TOKEN", "interrupt-test-token-0123456789")
            .arg("--config")
            .arg(&cfg)
            .args([
                "--output",
                "json",
                "verify",
                "--connections",
                "2",
                "--hold",
                "60s",
            ])
            .args(["--until-stopped", "--reconnect"])
            .args(extra);
        cmd
    };
    let m = signal_when(
        &mut cmd(&[]),
        Duration::from_secs(90),
        Some(("probe: holding", libc::SIGTERM)),
    );
    assert_eq!(m.run.code, 0, "{}", m.run.all());
    let doc: serde_json::Value =
        serde_json::from_str(&m.run.stdout).unwrap_or_else(|e| panic!("{e}: {}", m.run.all()));
    assert_eq!(doc["status"], "succeeded", "{doc:#}");
    assert_eq!(doc["probe"]["interrupted"], false, "{doc:#}");
    assert_eq!(doc["probe"]["closed"], 2, "{doc:#}");
    // What was held until the stop, not the 60 s cap.
    let held = doc["probe"]["hold_ms"].as_u64().unwrap();
    assert!(held < 20_000, "hold_ms {held}");
    assert!(!m.run.stderr.contains("interrupted"), "{}", m.run.stderr);
    assert!(m.elapsed < Duration::from_secs(20), "{:?}", m.elapsed);
    // Stopped while waiting to start: nothing was held, an interrupt.
    let at =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(60))
            .to_string();
    let m = signal_when(
        &mut cmd(&["--shard", "1/1", "--start-at", &at]),
        Duration::from_secs(30),
        Some(("until --start-at", libc::SIGTERM)),
    );
    assert_eq!(m.run.code, 130, "{}", m.run.all());
}

/// Issue 17.8: `wait` interrupted keeps the deployment it followed and the command that
/// resumes it in the JSON payload (not `"wait": null, "hint": null`), as `deploy` does.
#[test]
fn sigterm_during_wait_keeps_the_deployment_and_the_resume_command() {
    let moto = Moto::start();
    let (_dir, cfg) = support::write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let mut cmd = support::bosar(&moto.endpoint, "interrupt-wait");
    cmd.args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("wait");
    let m = signal_when(
        &mut cmd,
        Duration::from_secs(60),
        Some(("Watching deployment", libc::SIGTERM)),
    );
    assert_eq!(m.run.code, 130, "{}", m.run.all());
    assert!(m.elapsed < Duration::from_secs(15), "{:?}", m.elapsed);
    let doc: serde_json::Value = serde_json::from_str(&m.run.stdout).unwrap();
    assert_eq!(doc["status"], "interrupted", "{doc:#}");
    let wait = &doc["wait"];
    let id = wait["deployment_id"].as_str().expect("the deployment id");
    assert!(id.starts_with("ecs-svc/"), "{doc:#}");
    assert_eq!(wait["result"], "interrupted", "{doc:#}");
    assert!(
        wait["task_definition"]
            .as_str()
            .unwrap()
            .contains("bosar-api:"),
        "{doc:#}"
    );
    let resume = wait["resume"].as_str().unwrap();
    assert!(
        resume.starts_with("bosar-deploy --config")
            && resume.ends_with(&format!("wait --deployment {id}")),
        "{resume}"
    );
    assert!(
        doc["error"]["hint"].as_str().unwrap().contains(resume),
        "{doc:#}"
    );
    let text = std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// An interrupted `rollback` keeps its deployment and the resume command in its payload too.
#[test]
fn sigterm_during_rollbacks_watch_keeps_the_resume_command() {
    let moto = Moto::start();
    let (_dir, cfg) = support::write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let out = support::run(
        support::bosar(&moto.endpoint, "interrupt-rb-dep")
            .arg("--config")
            .arg(&cfg)
            .args(["deploy", "--no-wait", "--image", "repo/bosar-api:3.0.0"]),
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let mut cmd = support::bosar(&moto.endpoint, "interrupt-rb");
    cmd.args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("rollback");
    let m = signal_when(
        &mut cmd,
        Duration::from_secs(60),
        Some(("Started deployment", libc::SIGTERM)),
    );
    assert_eq!(m.run.code, 130, "{}", m.run.all());
    let doc: serde_json::Value = serde_json::from_str(&m.run.stdout).unwrap();
    let rb = &doc["rollback"];
    assert_eq!(rb["result"], "interrupted", "{doc:#}");
    let id = rb["deployment_id"].as_str().unwrap();
    assert!(
        rb["resume"]
            .as_str()
            .unwrap()
            .ends_with(&format!("wait --deployment {id}")),
        "{doc:#}"
    );
    assert!(m.elapsed < Duration::from_secs(15), "{:?}", m.elapsed);
}
