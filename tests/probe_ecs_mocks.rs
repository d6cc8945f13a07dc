//! `verify --connections N --shards K --on-ecs` on the SDK's mock layer and tokio's paused
//! clock (moto cannot show tasks stopped by ECS or late log streams): the happy path and its
//! merge, no secret in RunTask, the token's `secrets` entry required, a task ECS stops, a
//! stream that arrives late, a document that never arrives. Stopping: probe_ecs_stop_mocks.rs.

#[path = "probe_ecs/common.rs"]
mod common;

use common::*;

#[tokio::test(start_paused = true)]
async fn three_shards_run_report_and_merge() {
    let r = run(3, &[], runs_and_ends, on_time).await;
    let lines = r.ui.captured().join("\n");
    assert_eq!(
        r.result.as_ref().map_err(message_of).ok(),
        Some(&Code::Success),
        "{lines}"
    );
    assert_eq!(r.sent.len(), 3, "one RunTask per shard");
    for (i, req) in r.sent.iter().enumerate() {
        assert_eq!(req.count(), Some(1));
        assert_eq!(req.task_definition(), Some(TD));
        assert_eq!(req.started_by(), Some("bosar-deploy-probe"));
        let cmd = req.overrides().unwrap().container_overrides()[0]
            .command()
            .join(" ");
        assert!(
            cmd.contains(&format!(
                "verify --connections 30 --shard {}/3 --start-at {START}",
                i + 1
            )),
            "{cmd}"
        );
        assert_eq!(req.overrides().unwrap().cpu(), Some("1024"));
    }
    for needle in [
        "shard 2/3 (task t2): running",
        "shard 3/3 (task t3): done (exit 0)",
        "3 shard(s): 3 pending, 0 running, 0 done",
        "3 shard(s): 0 pending, 0 running, 3 done",
        "merged 3 shard report(s) of run 2026-12-05T10:00:00Z/n30/k3",
        // Progress from the end of each running shard's stream.
        "shard 2/3 (task t2): holding 12 session(s)",
        "3 shard(s): 0 pending, 3 running, 0 done, 0 stopped otherwise; 36 session(s) open in 3 of them",
    ] {
        assert!(lines.contains(needle), "{needle} not in:\n{lines}");
    }
    assert!(r.stopped.is_empty(), "nothing to stop: {:?}", r.stopped);
}

#[tokio::test(start_paused = true)]
async fn no_secret_value_travels_in_run_task() {
    let r = run(3, &[], runs_and_ends, on_time).await;
    assert!(r.result.is_ok());
    for req in &r.sent {
        let o = &req.overrides().unwrap().container_overrides()[0];
        let mut texts: Vec<String> = o.command().to_vec();
        for e in o.environment() {
            texts.push(format!(
                "{}={}",
                e.name().unwrap_or(""),
                e.value().unwrap_or("")
            ));
        }
        texts.push(format!("{req:?}"));
        for t in &texts {
            assert!(
                !t.contains(TOKEN),
                "the token's value travels in RunTask: {t}"
            );
        }
        // The shard reads the token by reference: the variable's name is in its config.
        let env = o.environment();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name(), Some("BOSAR_DEPLOY_CONFIG_TOML"));
        assert!(env[0]
            .value()
            .unwrap()
            .contains(&format!("token_env = \"{TOKEN_VAR}\"")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_definition_without_the_token_secret_is_refused_before_any_task() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let rules = [td_rule(&[]), run_task_rule(sent.clone(), &[])];
    let err = run_on(&engine(&rules, &[logs_rule(on_time)]))
        .await
        .0
        .unwrap_err();
    assert_eq!(code_of(&err), Code::Usage);
    let msg = message_of(&err);
    assert!(
        msg.contains(&format!("has no `secrets` entry named {TOKEN_VAR}")),
        "{msg}"
    );
    assert!(sent.lock().unwrap().is_empty(), "no task started");
}

fn shard_2_killed(call: usize, shard: u32) -> (&'static str, Option<i32>, Option<&'static str>) {
    match (call, shard) {
        (c, 2) if c >= 2 => (
            "STOPPED",
            Some(137),
            Some("OutOfMemoryError: Container killed due to memory usage"),
        ),
        _ => runs_and_ends(call, shard),
    }
}

/// Shard 2 was killed before it wrote its document.
fn shard_2_empty(i: u32, n: usize) -> Option<Vec<String>> {
    if i == 2 {
        Some(vec!["shard started".into()])
    } else {
        on_time(i, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_ecs_stopped_is_named_with_its_reason_and_the_merge_says_what_is_missing() {
    let r = run(3, &[], shard_2_killed, shard_2_empty).await;
    let err = r.result.unwrap_err();
    assert_eq!(code_of(&err), Code::Failed);
    let msg = message_of(&err);
    assert!(
        msg.contains("the merge is missing 1 of 3 shard report(s)"),
        "{msg}"
    );
    assert!(
        msg.contains("shard 2/3: its log stream (1 event(s)) holds no whole shard document"),
        "{msg}"
    );
    assert!(msg.contains("exit 137: OutOfMemoryError"), "{msg}");
    assert!(has(&r.ui, "shard 2/3 (task t2): stopped, exit 137"));
}

/// Shard 1's stream appears on the third read; the others are there at once.
fn shard_1_late(i: u32, n: usize) -> Option<Vec<String>> {
    if i == 1 && n < 2 {
        None
    } else {
        on_time(i, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_arrives_late_is_waited_for() {
    let r = run(3, &[], runs_and_ends, shard_1_late).await;
    let lines = r.ui.captured().join("\n");
    assert_eq!(
        r.result.as_ref().map_err(message_of).ok(),
        Some(&Code::Success),
        "{lines}"
    );
    assert!(lines.contains("merged 3 shard report(s)"), "{lines}");
}

fn shard_3_never(i: u32, n: usize) -> Option<Vec<String>> {
    if i == 3 {
        None
    } else {
        on_time(i, n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_document_that_never_arrives_is_named_as_missing() {
    let started = tokio::time::Instant::now();
    let r = run(3, &[], runs_and_ends, shard_3_never).await;
    let err = r.result.unwrap_err();
    let msg = message_of(&err);
    assert!(msg.contains("the merge is missing 1 of 3"), "{msg}");
    let gone = format!(
        "shard 3/3: its log stream /bosar/probe:{} does not exist after 60 s",
        stream(3)
    );
    assert!(msg.contains(&gone), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn without_probe_ecs_on_ecs_is_refused_with_what_to_add() {
    let cfg = bosar_deploy::config::parse(
        std::path::Path::new("deploy.toml"),
        "[target_group]\nname = \"tg\"\n[gateway]\nurl = \"https://chat.example.com\"\n",
    )
    .unwrap();
    let err = settings(&args(30, 3), &cfg).unwrap_err();
    assert_eq!(code_of(&err), Code::Usage);
    assert!(message_of(&err).contains("has no [probe.ecs] section"));
    assert!(bosar_deploy::exit::hint_of(&err)
        .unwrap()
        .contains("add [probe.ecs] with cluster, task_definition"));
}

/// The binary: without `[probe.ecs]` the run is refused (exit 2, the JSON envelope too) before
/// any call; with it, the starting machine needs no token (it fails at AWS, not at the
/// token's variable).
#[test]
fn the_cli_refuses_without_probe_ecs_and_needs_no_token_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = dir.path().join("deploy.toml");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_bosar-deploy"))
            .arg("--config")
            .arg(&path)
            .args(["--output", "json", "verify", "--connections", "30"])
            .args(["--shards", "3", "--on-ecs"])
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("MOCKS_CLI_TOKEN")
            .output()
            .unwrap()
    };
    let gateway = "[target_group]\nname = \"tg\"\n[gateway]\nurl = \"https://chat.example.com\"\ntoken_env = \"MOCKS_CLI_TOKEN\"\n";
    let out = run(gateway);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no [probe.ecs] section"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["exit_code"], 2);
    let out = run(&format!(
        "{gateway}[probe.ecs]\ncluster = \"c\"\ntask_definition = \"td\"\nsubnets = [\"subnet-1\"]\n"
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GetCallerIdentity failed"), "{stderr}");
    assert!(
        !stderr.contains("MOCKS_CLI_TOKEN"),
        "the starting machine needs no token: {stderr}"
    );
}
