//! `verify --connections N --shards K --on-ecs` end to end in the sandbox: the task runner
//! (`sandbox/runner.py --probe-bin`) turns RunTask of the probe's task definition into real
//! `bosar-deploy` shard processes, hands them the JWT secret from Secrets Manager (the
//! starting process has none), and writes their output into moto's CloudWatch Logs. One
//! runner, three runs: 2,000 sessions in 4 shards merged and matched against the gateways'
//! own counters; a shard killed mid-hold, named as missing from the merge; an interrupt that
//! stops every task.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::runner::TaskRunner;
use support::{bosar, run, signal_when, write_config};

const SECRET: &str = "probe-ecs-sandbox-secret-51c9";

/// The sandbox config pointed at the runner, with the probe's `[probe.ecs]`; the JWT secret's
/// variable is the one the runner's task definition names in `secrets`.
fn config(runner: &TaskRunner) -> String {
    let p = &runner.ready["probe"];
    support::sandbox_config()
        .replacen("url = \"http://127.0.0.1:8080\"", &format!("url = \"{}\"", runner.url), 1)
        .replacen(
            "jwt_secret_env = \"BOSAR_SANDBOX_JWT_SECRET\"",
            "jwt_secret_env = \"BOSAR_TEST_RUNNER_JWT_SECRET\"",
            1,
        )
        + &format!(
            "\n[probe.ecs]\ncluster = \"bosar-cluster\"\ntask_definition = \"bosar-probe\"\n\
             subnets = [\"{}\"]\nsecurity_groups = [\"{}\"]\nstart_delay = \"2s\"\ntimeout = \"3m\"\nlog_wait = \"5s\"\n",
            p["subnet"].as_str().unwrap(),
            p["security_group"].as_str().unwrap()
        )
}

/// `key` of `/health/stats` summed over the runner's first gateways (their own counters).
fn gateway_sum(runner: &TaskRunner, key: &str) -> u64 {
    runner.ready["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let port = t["port"].as_u64().unwrap() as u16;
            let (status, body) = support::http(port, "GET", "/health/stats", "");
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            v[key].as_u64().unwrap()
        })
        .sum()
}

fn total_connections(runner: &TaskRunner) -> u64 {
    gateway_sum(runner, "totalConnections")
}

/// The document is valid against schema/output.schema.json.
fn assert_schema(doc: &Value) {
    let text = std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

fn stopped_tasks(runner: &TaskRunner) -> Vec<Value> {
    runner
        .events()
        .into_iter()
        .filter(|e| e["event"] == "probe_task_stopped")
        .collect()
}

/// The task runner that runs the probe's RunTask tasks as this build's binary.
fn probe_runner() -> TaskRunner {
    let bin = support::bin_path().display().to_string();
    TaskRunner::start_with(
        &support::repo().join("sandbox/deploy.toml"),
        SECRET,
        &["--probe-bin", &bin],
        &[],
    )
}

#[test]
fn shards_on_ecs_run_merge_fail_by_name_and_stop_on_interrupt() {
    assert!(
        std::env::var_os("BOSAR_TEST_RUNNER_JWT_SECRET").is_none(),
        "the starting process must not hold the secret"
    );
    let runner = probe_runner();
    let (_dir, path) = write_config(&config(&runner));
    merged(&runner, &path);
    a_killed_shard_is_missing(&runner, &path);
    an_interrupt_stops_every_task(&runner, &path);
}

/// 2,000 sessions in 4 Fargate "tasks", merged and matched against the gateways' counters.
fn merged(runner: &TaskRunner, path: &Path) {
    let before = total_connections(runner);
    let out = run(bosar(&runner.endpoint, "probe-ecs-1")
        .arg("--config")
        .arg(path)
        .args([
            "--output",
            "json",
            "verify",
            "--connections",
            "2000",
            "--shards",
            "4",
        ])
        .args(["--on-ecs", "--hold", "3s"]));
    assert_eq!(out.code, 0, "{}\n{}", out.all(), runner.log());
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_schema(&doc);
    let p = &doc["probe"];
    assert_eq!(p["merge"]["shards"], 4, "{p:#}");
    assert_eq!(
        (p["opened"].as_u64(), p["closed"].as_u64()),
        (Some(2000), Some(2000))
    );
    assert_eq!(
        total_connections(runner) - before,
        2000,
        "the gateways' own count"
    );
    for i in 1..=4 {
        assert!(
            out.stderr.contains(&format!("shard {i}/4 (task ")),
            "{}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .contains("4 shard(s): 0 pending, 0 running, 4 done"),
        "{}",
        out.stderr
    );
    assert_eq!(stopped_tasks(runner).len(), 4);
}

/// Shard 3's process killed mid-hold: named, and the merge says what is missing.
fn a_killed_shard_is_missing(runner: &TaskRunner, path: &Path) {
    let mut cmd = bosar(&runner.endpoint, "probe-ecs-2");
    cmd.arg("--config").arg(path).args([
        "verify",
        "--connections",
        "200",
        "--shards",
        "4",
        "--on-ecs",
        "--hold",
        "20s",
    ]);
    let killer = {
        let handle = std::thread::spawn(move || run(&mut cmd));
        let started = runner
            .wait_for(
                |e| {
                    e["event"] == "probe_task_started"
                        && e["command"].as_array().unwrap().iter().any(|c| c == "3/4")
                        && runner_newer(e)
                },
                Duration::from_secs(60),
            )
            .expect("shard 3 started");
        std::thread::sleep(Duration::from_secs(6));
        // SAFETY: kills the runner's child, the shard process (as OOM would).
        unsafe {
            libc::kill(
                started["pid"].as_i64().unwrap() as libc::pid_t,
                libc::SIGKILL,
            )
        };
        handle
    };
    let out = killer.join().unwrap();
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("the merge is missing 1 of 4 shard report(s)"),
        "{}",
        out.stderr
    );
    assert!(
        // Its progress lines are there; its document never came.
        out.stderr.contains("shard 3/4: its log stream (")
            && out
                .stderr
                .contains("event(s)) holds no whole shard document"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("exit 137"), "{}", out.stderr);
}

/// An interrupt while the shards hold stops every task.
fn an_interrupt_stops_every_task(runner: &TaskRunner, path: &Path) {
    let before_stops = stopped_tasks(runner).len();
    let m = signal_when(
        bosar(&runner.endpoint, "probe-ecs-3")
            .arg("--config")
            .arg(path)
            .args([
                "verify",
                "--connections",
                "200",
                "--shards",
                "4",
                "--on-ecs",
                "--hold",
                "60s",
            ]),
        Duration::from_secs(120),
        Some(("4 shard(s): 0 pending, 4 running", libc::SIGINT)),
    );
    assert_eq!(m.run.code, 130, "{}", m.run.all());
    assert!(
        m.run.stderr.contains("stopped 4 of 4 task(s)"),
        "{}",
        m.run.stderr
    );
    assert!(m.elapsed < Duration::from_secs(60), "{:?}", m.elapsed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stopped_tasks(runner).len() < before_stops + 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stopped_tasks(runner).len(),
        before_stops + 4,
        "{}",
        runner.log()
    );
}

/// Events of the second run only: the first run's tasks have all stopped by then.
fn runner_newer(e: &Value) -> bool {
    e["command"].as_array().unwrap().iter().any(|c| c == "200")
}

/// A runner with the probe's task definition, and the sandbox config for a rollout under
/// load: a 2 s drain, a 60 s watch, the new revision's heartbeat every 1.5 s.
fn under_load_runner() -> (TaskRunner, tempfile::TempDir, std::path::PathBuf) {
    let runner = probe_runner();
    let mut text = config(&runner);
    for (from, to) in [
        (
            "deregistration_delay = \"3s\"",
            "deregistration_delay = \"2s\"",
        ),
        ("timeout = \"2m\"", "timeout = \"60s\""),
        (
            "WEBSOCKET_HEARTBEAT_INTERVAL = \"5000\"",
            "WEBSOCKET_HEARTBEAT_INTERVAL = \"1500\"",
        ),
        (
            "heartbeat_interval = \"5s\"",
            "heartbeat_interval = \"1500ms\"",
        ),
    ] {
        assert!(
            text.contains(from),
            "sandbox/deploy.toml no longer has {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    let (dir, path) = write_config(&text);
    (runner, dir, path)
}

/// `full --under-load 40 --shards 2 --on-ecs`: the pipeline's `under-load` step is the shards'
/// merge, with `rollout window` among its checks and in JUnit; its verify step runs here.
#[test]
fn full_under_load_with_its_shards_on_ecs() {
    let (runner, dir, path) = under_load_runner();
    let junit = dir.path().join("junit.xml");
    let out = run(bosar(&runner.endpoint, "ecs-load-full")
        .env("BOSAR_TEST_RUNNER_JWT_SECRET", SECRET)
        .arg("--config")
        .arg(&path)
        .args([
            "--output",
            "json",
            "full",
            "--under-load",
            "40",
            "--shards",
            "2",
            "--on-ecs",
        ])
        .args([
            "--reconnect-delay",
            "200ms..1s",
            "--settle",
            "3s",
            "--junit",
        ])
        .arg(&junit));
    assert_eq!(out.code, 0, "{}\n{}", out.all(), runner.log());
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
    assert_schema(&doc);
    let steps = doc["pipeline"]["steps"].as_array().unwrap();
    let step = steps
        .iter()
        .find(|s| s["name"] == "under-load")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(step["status"], "pass", "{step:#}");
    let d = &step["detail"]["probe"]["disruption"];
    assert_eq!(d["dropped"]["sessions"], 40, "{d:#}");
    assert_eq!(d["lost"], 0, "{d:#}");
    let verify = steps.iter().find(|s| s["name"] == "verify").unwrap();
    assert_eq!(verify["status"], "pass", "{verify:#}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("name=\"rollout window\""), "{xml}");
}

/// `deploy --under-load 40 --shards 2 --on-ecs`: two shard tasks hold the sessions, the deploy
/// replaces the gateways under them, the tasks are stopped once it settled and their documents
/// merged, the disruption counted from the rollout's start: every session the old gateways held
/// while draining dropped, none before the rollout, none lost. The starting process holds no
/// secret: the shards get theirs from the task definition.
#[test]
fn deploy_under_load_with_its_shards_on_ecs() {
    let (runner, _dir, path) = under_load_runner();
    let out = run(bosar(&runner.endpoint, "ecs-load-alb")
        .arg("--config")
        .arg(&path)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    // The first gateways, open sessions now (they drain, then stop).
    let held = || gateway_sum(&runner, "connections");
    let mut cmd = bosar(&runner.endpoint, "ecs-load-deploy");
    cmd.arg("--config").arg(&path).args([
        "--output",
        "json",
        "deploy",
        "--under-load",
        "40",
        "--shards",
        "2",
        "--on-ecs",
        "--reconnect-delay",
        "200ms..1s",
        "--settle",
        "4s",
    ]);
    let deploy = std::thread::spawn(move || run(&mut cmd));
    if runner
        .wait_for(|e| e["event"] == "draining", Duration::from_secs(120))
        .is_none()
    {
        let out = deploy.join().unwrap();
        panic!("no draining event:\n{}\n{}", out.all(), runner.log());
    }
    let draining = held();
    let out = deploy.join().unwrap();
    assert_eq!(out.code, 0, "{}\n{}", out.all(), runner.log());
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
    assert_schema(&doc);
    let ul = &doc["deploy"]["under_load"];
    assert_eq!(ul["status"], "pass", "{ul:#}");
    let names: Vec<&str> = ul["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["open", "disruption", "reconnect", "close", "rollout window"],
        "{ul:#}"
    );
    let d = &ul["probe"]["disruption"];
    assert_eq!(
        draining, 40,
        "the old gateways held every shard session while draining"
    );
    assert_eq!(d["dropped"]["sessions"], 40, "{d:#}");
    assert_eq!(d["lost"], 0, "{d:#}");
    assert_eq!(d["dropped_before_window"], 0, "{d:#}");
    // Where the drops fell: none before the rollout, every one in a phase of it.
    let phases = ul["attribution"]["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("{ul:#}"));
    assert_eq!(phases[0]["counted"], false);
    assert_eq!(phases[0]["drops"], 0, "{phases:?}");
    assert_eq!(
        phases
            .iter()
            .map(|p| p["drops"].as_u64().unwrap())
            .sum::<u64>(),
        d["dropped"]["events"].as_u64().unwrap(),
        "{phases:?}"
    );
    assert!(out.stdout.contains("\"attribution\""));
    assert_eq!(
        ul["settle_ms"].as_u64().map(|s| s >= 4000),
        Some(true),
        "{ul:#}"
    );
    // Both tasks ended by StopTask as the planned end of their hold: their own verdict's exit
    // code (1 here: their [gateway] heartbeat_interval is the new revision's, so the old
    // gateways' heartbeats look late to them), never 130 or a kill's 137.
    let stops: Vec<Value> = stopped_tasks(&runner);
    assert_eq!(stops.len(), 2, "{}", runner.log());
    assert!(
        stops
            .iter()
            .all(|e| e["exit_code"] == 0 || e["exit_code"] == 1),
        "{stops:?}"
    );
    // The shards' own progress, read from their streams while they open.
    assert!(
        out.stderr.contains("holding 20 session(s)") || out.stderr.contains("/20 session(s) open"),
        "{}",
        out.stderr
    );
    for needle in [
        "under load: starting 2 shard task(s)",
        "every shard task runs; the rollout starts once their sessions are open",
        "under load: 40 session(s) open in 2 shard task(s); starting the rollout",
        "the shards hold 4 s more (settle)",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            out.stderr
        );
    }
}
