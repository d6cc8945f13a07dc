//! A real rollout: the sandbox task runner (`sandbox/runner.py`) runs the ECS service's tasks
//! as gateway processes behind an ALB-shaped HAProxy and replaces them as ECS does (start,
//! health, register, drain for the deregistration delay, deregister, SIGTERM). `deploy`
//! changes WEBSOCKET_HEARTBEAT_INTERVAL; afterwards the old processes are gone, only new
//! instances answer through HAProxy, with the new interval, and `deploy` reported success
//! only after the old processes had stopped.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;
use support::runner::TaskRunner;
use support::{bosar, run, write_config};

const SECRET: &str = "rollout-test-secret-7d2e";
/// The new revision's heartbeat (ms); seed's "before" revision has none (the gateway's 30000).
const HEARTBEAT_MS: u64 = 1500;
/// AWSALB value prefix of tests/support/haproxy/runner.cfg.tmpl (then base64 of the slot name).
const COOKIE_PREFIX: &str = "hK3pV9qZ+tW2mN8xR4yB7cL1dF6gJ0sA/eU5iO3nQ9wT2vX8zY4bC7kM1pD6rH0a";

fn edit(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "sandbox/deploy.toml no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

/// The sandbox config with a 1 s drain and the new heartbeat (polling stays at 1 s, the least
/// the tool accepts).
fn config() -> String {
    let text = support::sandbox_config();
    let text = edit(
        text,
        "deregistration_delay = \"3s\"",
        "deregistration_delay = \"1s\"",
    );
    let text = edit(text, "timeout = \"2m\"", "timeout = \"60s\"");
    let text = edit(
        text,
        "WEBSOCKET_HEARTBEAT_INTERVAL = \"5000\"",
        &format!("WEBSOCKET_HEARTBEAT_INTERVAL = \"{HEARTBEAT_MS}\""),
    );
    edit(
        text,
        "heartbeat_interval = \"5s\"",
        &format!("heartbeat_interval = \"{HEARTBEAT_MS}ms\""),
    )
}

fn slot_cookie(slot: &str) -> String {
    format!(
        "{COOKIE_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(slot)
    )
}

/// GET through HAProxy, optionally with an AWSALB cookie; the JSON body.
fn get_json(port: u16, path: &str, awsalb: Option<&str>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to HAProxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie = awsalb
        .map(|v| format!("Cookie: AWSALB={v}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {buf}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Whether a process runs (a zombie counts as stopped).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn deploy_replaces_the_gateways_and_succeeds_only_after_the_old_ones_stopped() {
    let started = Instant::now();
    let (_dir, cfg) = write_config(&config());
    let runner = TaskRunner::start(&cfg, SECRET);
    let first_deployment = field(&runner.ready, "deployment").to_string();
    let old: Vec<Value> = runner.ready["tasks"].as_array().unwrap().clone();
    assert_eq!(old.len(), 2, "{}", runner.ready);
    for t in &old {
        assert_eq!(t["revision"], "bosar-api:1");
        assert!(
            alive(t["pid"].as_u64().unwrap()),
            "old gateway not running: {t}"
        );
    }
    let old_ids: Vec<&str> = old.iter().map(|t| field(t, "instance_id")).collect();
    let ready_at = started.elapsed();

    // What `full` does first: the target group's deregistration delay (1 s) is what the
    // runner drains for.
    let out = run(bosar(&runner.endpoint, "rollout-alb")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());

    // deploy, with each stdout line timestamped as it arrives.
    let deploy_started = Instant::now();
    let mut child = bosar(&runner.endpoint, "rollout-deploy")
        .arg("--config")
        .arg(&cfg)
        .arg("deploy")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bosar-deploy");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| (SystemTime::now(), l))
            .collect::<Vec<_>>()
    });
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("deploy still running after 90 s; runner:\n{}", runner.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let deploy_took = deploy_started.elapsed();
    let out_lines = out_lines.join().unwrap();
    let err_text = err_text.join().unwrap();
    let all = format!(
        "{}\n{err_text}\n--- runner ---\n{}",
        out_lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        runner.log()
    );
    assert_eq!(status.code(), Some(0), "{all}");
    let (success_at, success) = out_lines
        .iter()
        .find(|(_, l)| l.contains("deployment of bosar-api:2 succeeded"))
        .unwrap_or_else(|| panic!("no success line:\n{all}"));
    assert!(success.contains("2 healthy target(s)"), "{success}");
    // The tool followed a rollout in progress, with ECS's events, not an instant completion.
    for needle in [
        "PRIMARY bosar-api:2 running 0/2",
        "IN_PROGRESS (this deploy)",
        "has started 2 tasks",
        "has begun draining connections on 2 tasks.",
        "has stopped 2 running tasks",
        "has reached a steady state.",
    ] {
        assert!(err_text.contains(needle), "missing {needle:?} in:\n{all}");
    }

    // The runner's account: two new tasks running, the old two drained for 1 s and stopped,
    // and all of that before deploy said "succeeded".
    let wait = Duration::from_secs(5);
    let completed = runner
        .wait_for(
            |e| {
                e["event"] == "deployment_completed" && e["deployment"] != first_deployment.as_str()
            },
            wait,
        )
        .unwrap_or_else(|| panic!("no deployment_completed:\n{}", runner.log()));
    assert_eq!(completed["revision"], "bosar-api:2");
    let drain = runner
        .wait_for(|e| e["event"] == "draining", wait)
        .expect("draining event");
    assert_eq!(
        drain["delay_s"], 1,
        "the drain uses the delay alb-update set"
    );
    let events = runner.events();
    let new: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "task_running" && e["deployment"] == completed["deployment"])
        .collect();
    assert_eq!(new.len(), 2, "{events:?}");
    let new_ids: Vec<&str> = new.iter().map(|t| field(t, "instance_id")).collect();
    assert!(new_ids.iter().all(|id| !old_ids.contains(id)));
    let success_t = epoch(*success_at);
    let last_new_running = new
        .iter()
        .map(|e| e["t"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let mut last_old_stop = 0.0_f64;
    for t in &old {
        let stopped = events
            .iter()
            .find(|e| e["event"] == "task_stopped" && e["task"] == t["task"])
            .unwrap_or_else(|| panic!("old task {} was not stopped: {events:?}", t["task"]));
        let at = stopped["t"].as_f64().unwrap();
        assert!(
            at >= last_new_running,
            "old task stopped before the new ones ran"
        );
        assert!(
            at >= drain["t"].as_f64().unwrap() + 1.0,
            "old task stopped before its 1 s drain ended"
        );
        last_old_stop = last_old_stop.max(at);
        // Gone, not just deregistered.
        let pid = t["pid"].as_u64().unwrap();
        assert!(!alive(pid), "old gateway pid {pid} still runs");
    }
    assert!(
        last_old_stop <= success_t,
        "deploy reported success {:.3} s before the last old gateway stopped",
        last_old_stop - success_t
    );
    assert!(completed["t"].as_f64().unwrap() <= success_t);

    // Through HAProxy: only new instances answer, each with the new heartbeat. A cookie naming
    // a new task's slot pins to it; one naming an old (now empty) slot is re-routed.
    for t in &new {
        let stats = get_json(
            runner.front_port,
            "/health/stats",
            Some(&slot_cookie(field(t, "slot"))),
        );
        assert_eq!(stats["instanceId"], t["instance_id"], "{stats}");
        assert_eq!(stats["heartbeatInterval"], HEARTBEAT_MS, "{stats}");
    }
    for t in &old {
        let cookie = slot_cookie(field(t, "slot"));
        let stats = get_json(runner.front_port, "/health/stats", Some(&cookie));
        assert!(new_ids.contains(&field(&stats, "instanceId")), "{stats}");
    }
    for _ in 0..4 {
        let stats = get_json(runner.front_port, "/health/stats", None);
        assert!(new_ids.contains(&field(&stats, "instanceId")), "{stats}");
        assert_eq!(stats["heartbeatInterval"], HEARTBEAT_MS);
    }

    // The emulator agrees: two healthy targets (the new tasks), one PRIMARY deployment.
    let out = run(bosar(&runner.endpoint, "rollout-status")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("status"));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: Value = serde_json::from_str(&out.stdout).expect("status JSON");
    let doc = &doc["service"];
    assert_eq!(doc["target_health"][0]["healthy"], 2, "{doc}");
    assert_eq!(doc["target_health"][0]["total"], 2, "{doc}");
    let deployments = doc["service"]["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{doc}");
    assert_eq!(deployments[0]["rollout_state"], "COMPLETED");

    // Dropping the runner stops everything it started.
    let mut pids: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "task_started")
        .map(|e| e["pid"].as_u64().unwrap())
        .collect();
    pids.push(runner.ready["haproxy_pid"].as_u64().unwrap());
    pids.push(runner.pid() as u64);
    drop(runner);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived the runner");
    }
    eprintln!(
        "runner ready in {:.1} s, deploy took {:.1} s, test {:.1} s",
        ready_at.as_secs_f64(),
        deploy_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
