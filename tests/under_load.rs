//! `full --under-load N` and `deploy --under-load N` in the sandbox's arrangement: the task
//! runner (`sandbox/runner.py`: moto, HAProxy shaped like the ALB, gateway processes as the
//! service's tasks) really replaces the gateways, draining the old ones for the target group's
//! deregistration delay, cutting what is left and stopping them. The old gateways' own
//! counters, read while they drain (no session can arrive or leave then), are the ground truth
//! of what the rollout dropped. A rollout that changes WEBSOCKET_HEARTBEAT_INTERVAL ends with
//! every session on the new processes, their heartbeats spaced at the new interval.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::runner::TaskRunner;
use support::{bosar, run, write_config};

const SECRET: &str = "under-load-test-secret-4b1c";
const HEARTBEAT_MS: u64 = 1500;
const N: u64 = 40;

fn edit(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "sandbox/deploy.toml no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

/// The sandbox config: a 2 s drain, the new heartbeat, the runner's URL.
fn config(url: &str) -> String {
    let text = support::sandbox_config();
    let text = edit(
        text,
        "deregistration_delay = \"3s\"",
        "deregistration_delay = \"2s\"",
    );
    let text = edit(text, "timeout = \"2m\"", "timeout = \"60s\"");
    let text = edit(
        text,
        "WEBSOCKET_HEARTBEAT_INTERVAL = \"5000\"",
        &format!("WEBSOCKET_HEARTBEAT_INTERVAL = \"{HEARTBEAT_MS}\""),
    );
    let text = edit(
        text,
        "heartbeat_interval = \"5s\"",
        &format!("heartbeat_interval = \"{HEARTBEAT_MS}ms\""),
    );
    edit(
        text,
        "url = \"http://127.0.0.1:8080\"",
        &format!("url = \"{url}\""),
    )
}

/// A bosar-deploy child with the runner's environment and the gateways' secret.
fn spawn(runner: &TaskRunner, cfg: &Path, app: &str, args: &[&str]) -> Child {
    bosar(&runner.endpoint, app)
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bosar-deploy")
}

/// Waits (at most 120 s) for the child; exit code, stdout, stderr.
fn finish(mut child: Child, runner: &TaskRunner) -> (i32, String, String) {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bosar-deploy ran over 120 s; runner:\n{}", runner.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

fn connections_at(port: u64) -> Option<u64> {
    let (status, body) = support::http(port as u16, "GET", "/health/stats", "");
    if status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body).ok()?["connections"].as_u64()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn strs(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    s.sort();
    s
}

#[test]
fn full_under_load_every_session_ends_on_the_new_gateways() {
    let started = Instant::now();
    let runner = TaskRunner::start(Path::new("sandbox/deploy.toml"), SECRET);
    let (dir, cfg) = write_config(&config(&runner.url));
    // The runner was seeded from the committed sandbox config; its names are the same.
    let junit = dir.path().join("junit.xml");
    let page = dir.path().join("timeline.html");
    let old: Vec<Value> = runner.ready["tasks"].as_array().unwrap().clone();
    let mut old_ids: Vec<String> = old
        .iter()
        .map(|t| t["instance_id"].as_str().unwrap().to_string())
        .collect();
    old_ids.sort();
    let n = N.to_string();
    let child = spawn(
        &runner,
        &cfg,
        "under-load-full",
        &[
            "--output",
            "json",
            "full",
            "--junit",
            junit.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
            "--under-load",
            &n,
            "--concurrency",
            "20",
            "--reconnect-delay",
            "200ms..1s",
        ],
    );
    // Ground truth: what the old gateways hold while they drain (no new session reaches a
    // draining target, none leaves until the cut).
    let drain = runner
        .wait_for(|e| e["event"] == "draining", Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no draining event:\n{}", runner.log()));
    let held: u64 = old
        .iter()
        .map(|t| connections_at(t["port"].as_u64().unwrap()).expect("old gateway stats"))
        .sum();
    assert_eq!(drain["delay_s"], 2);
    let (code, stdout, stderr) = finish(child, &runner);
    let all = format!("{stdout}\n{stderr}\n--- runner ---\n{}", runner.log());
    assert_eq!(code, 0, "{all}");
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let names: Vec<&str> = doc["pipeline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "preflight",
            "alb-update",
            "deploy",
            "real-traffic",
            "under-load",
            "verify"
        ]
    );
    let steps = &doc["pipeline"]["steps"];
    assert_eq!(steps[3]["status"], "skip", "moto serves no CloudWatch");
    let step = &steps[4];
    assert_eq!(step["status"], "pass", "{step:#}");
    // The deploy step times the rollout alone, not the opening and the settle around it.
    assert!(
        steps[2]["duration_ms"].as_u64() < step["duration_ms"].as_u64(),
        "{steps:#}"
    );
    let checks: Vec<&str> = step["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["open", "disruption", "reconnect", "close"]);

    // The counts against the ground truth: every session sat on an old task and was cut.
    let d = &step["detail"]["probe"]["disruption"];
    assert_eq!(
        held, N,
        "the old gateways held every session while draining"
    );
    assert_eq!(u(&d["dropped"]["sessions"]), held, "{d:#}");
    assert_eq!(u(&d["reconnected"]) + u(&d["lost"]), held, "{d:#}");
    assert_eq!(u(&d["lost"]), 0, "{d:#}");
    assert!(
        d["since_ms"].as_u64().unwrap() > 0,
        "the window starts at the rollout"
    );
    assert_eq!(u(&d["dropped_before_window"]), 0);

    // Old and new targets: the runner's tasks of each revision.
    let events = runner.events();
    let mut new_ids: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "task_running" && e["revision"] == "bosar-api:2")
        .map(|e| e["instance_id"].as_str().unwrap().to_string())
        .collect();
    new_ids.sort();
    assert_eq!(new_ids.len(), 2, "{events:?}");
    let t = &d["targets"];
    assert_eq!(strs(&t["old"]), old_ids, "{t:#}");
    assert_eq!(strs(&t["new"]), new_ids, "{t:#}");
    assert_eq!(u(&t["ended_on_new"]), N, "{t:#}");
    assert_eq!(u(&t["ended_on_old"]), 0, "{t:#}");
    assert_eq!(t["rollout_succeeded"], true);
    for m in d["moves"].as_array().unwrap() {
        assert!(
            old_ids.contains(&m["from"].as_str().unwrap().to_string()),
            "{m}"
        );
        assert!(
            new_ids.contains(&m["to"].as_str().unwrap().to_string()),
            "{m}"
        );
    }
    assert_eq!(u(&d["moved"]), N);
    // Every session on the new processes, their heartbeats at the new interval.
    let ended = d["ended_on"].as_array().unwrap();
    assert_eq!(
        ended.iter().map(|e| u(&e["sessions"])).sum::<u64>(),
        N,
        "{ended:#?}"
    );
    for e in ended {
        assert!(
            new_ids.contains(&e["target"].as_str().unwrap().to_string()),
            "{e}"
        );
        let spacing = u(&e["heartbeat_spacing_ms"]);
        assert!(
            spacing.abs_diff(HEARTBEAT_MS) <= 300,
            "heartbeat spacing {spacing} ms on {e}"
        );
    }
    let probe = &step["detail"]["probe"];
    let targets = probe["targets"].as_array().unwrap();
    for tc in targets {
        assert!(
            new_ids.contains(&tc["instance"].as_str().unwrap().to_string()),
            "{tc}"
        );
    }
    // The settle time defaulted to the drain + two heartbeats + 5 s: 2 + 3 + 5 = 10 s.
    assert_eq!(step["detail"]["settle_ms"], 10_000, "{step:#}");
    // The gateways that took the reconnects counted them (and the verify step's sessions).
    let new_ports: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "task_running" && e["revision"] == "bosar-api:2")
        .map(|e| e["port"].as_u64().unwrap())
        .collect();
    let total: u64 = new_ports
        .iter()
        .map(|p| {
            let (_, body) = support::http(*p as u16, "GET", "/health/stats", "");
            u(&serde_json::from_str::<Value>(&body).unwrap()["totalConnections"])
        })
        .sum();
    assert!(total >= N, "the new gateways counted {total} connections");

    // JUnit: the under-load step is a testsuite with its four checks.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some("under-load"))
        .unwrap_or_else(|| panic!("{xml}"));
    let cases: Vec<&str> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(cases, ["open", "disruption", "reconnect", "close"]);
    // Progress for CI: the opening, the start of the rollout, the drops as they happen.
    for needle in [
        "under load: opening 40 session(s)",
        "starting the rollout",
        "rollout succeeded; holding the sessions 10 s more (settle)",
        " drop(s), ",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?}:\n{stderr}");
    }
    // --html: the timeline of the run, the old gateways' bands and the new ones', the drops,
    // the rollout's moments in order.
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}: {all}"));
    for id in old_ids.iter().chain(&new_ids) {
        assert!(
            html.contains(&format!("<title>{id}</title>")),
            "no band for {id}: {html}"
        );
    }
    assert!(
        html.matches("<rect").count() >= 2,
        "drops and reconnects: {html}"
    );
    let started_at = html.find("rollout started").expect("the rollout's start");
    let healthy_at = html.find("new tasks healthy").expect("new tasks healthy");
    assert!(started_at < healthy_at, "moments in order: {html}");
    assert!(!html.to_ascii_lowercase().contains("<script"));
    // Chromium draws it with ECS's own event messages in it: nothing fetched, nothing logged.
    let r = support::chromium::render(&page, dir.path());
    assert!(r.urls.is_empty(), "the page made requests: {:?}", r.urls);
    assert!(r.console.is_empty(), "console: {:?}", r.console);
    assert!(r.dom.contains("draining started: (service "), "{}", r.dom);
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn deploy_under_load_interrupted_reports_what_it_saw() {
    let runner = TaskRunner::start(Path::new("sandbox/deploy.toml"), SECRET);
    // A URL with user info: its password is never shown.
    let url = runner.url.replacen("http://", "http://ops:pw-hunter2@", 1);
    let (_dir, cfg) = write_config(&config(&url).replace(
        "deregistration_delay = \"2s\"",
        "deregistration_delay = \"30s\"",
    ));
    // The long drain is what alb-update would set; apply it so the rollout waits.
    let out = run(bosar(&runner.endpoint, "under-load-alb")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    let child = spawn(
        &runner,
        &cfg,
        "under-load-deploy",
        &["--output", "json", "deploy", "--under-load", "20"],
    );
    // Interrupt while the old tasks drain: the sessions are still on them.
    runner
        .wait_for(|e| e["event"] == "draining", Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no draining event:\n{}", runner.log()));
    std::thread::sleep(Duration::from_millis(500));
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (code, stdout, stderr) = finish(child, &runner);
    assert_eq!(code, 130, "{stdout}\n{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("pw-hunter2")
            && !format!("{stdout}{stderr}").contains("ops:"),
        "the URL's user info was shown:\n{stdout}\n{stderr}"
    );
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(doc["command"], "deploy");
    assert_eq!(doc["exit_code"], 130);
    assert_eq!(doc["status"], "interrupted");
    assert_eq!(doc["deploy"]["result"], "interrupted");
    let ul = &doc["deploy"]["under_load"];
    assert_eq!(ul["interrupted"], true, "{ul:#}");
    assert_eq!(ul["rollout_started"], true);
    assert_eq!(ul["status"], "fail");
    let p = &ul["probe"];
    assert_eq!(u(&p["opened"]), 20, "{p:#}");
    // Nothing was cut yet, and every session was closed cleanly before the exit.
    assert_eq!(u(&p["disruption"]["dropped"]["sessions"]), 0, "{p:#}");
    assert_eq!(u(&p["closed"]), 20, "{p:#}");
    assert!(
        stderr.contains("interrupted: stopped watching; the rollout goes on in AWS"),
        "{stderr}"
    );
    assert!(
        stderr.contains("resume watching with: bosar-deploy"),
        "{stderr}"
    );
}

#[test]
fn a_failed_rollout_still_reports_what_the_sessions_saw() {
    let runner = TaskRunner::start(Path::new("sandbox/deploy.toml"), SECRET);
    // A revision whose gateways cannot start (the gateway refuses a non-numeric backlog): the
    // runner's circuit breaker fails the deployment after 3 failed tasks and rolls back.
    let text = config(&runner.url).replace(
        "[ecs.environment]\n",
        "[ecs.environment]\nHTTP_BACKLOG = \"not-a-number\"\n",
    );
    let (_dir, cfg) = write_config(&text);
    let child = spawn(
        &runner,
        &cfg,
        "under-load-failed",
        &["--output", "json", "deploy", "--under-load", "20"],
    );
    let (code, stdout, stderr) = finish(child, &runner);
    assert_eq!(code, 1, "{stdout}\n{stderr}\n{}", runner.log());
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(doc["status"], "failed", "{doc:#}");
    assert_eq!(doc["deploy"]["result"], "failed", "{doc:#}");
    let ul = &doc["deploy"]["under_load"];
    assert_eq!(ul["rollout_started"], true, "{ul:#}");
    assert_eq!(ul["interrupted"], false);
    // No settle after a failure: the sessions stop at once, and what they saw is reported.
    assert_eq!(ul["settle_ms"], 0);
    let p = &ul["probe"];
    assert_eq!(u(&p["opened"]), 20, "{p:#}");
    assert_eq!(u(&p["closed"]), 20, "{p:#}");
    let d = &p["disruption"];
    // The old gateways kept serving: nothing dropped, every session still on an old target.
    assert_eq!(u(&d["dropped"]["sessions"]), 0, "{d:#}");
    assert_eq!(d["targets"]["rollout_succeeded"], false, "{d:#}");
    assert_eq!(u(&d["targets"]["ended_on_old"]), 20, "{d:#}");
    assert!(d["targets"]["new"].as_array().unwrap().is_empty(), "{d:#}");
    let checks: Vec<&str> = ul["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["open", "disruption", "reconnect", "close"]);
}

#[test]
fn under_load_flags_are_checked_before_anything_is_called() {
    // No peer: every case is a usage error (exit 2) before any AWS call.
    let (_dir, cfg) = write_config(&config("http://127.0.0.1:9"));
    let cases: [(&[&str], &str); 11] = [
        (&["deploy", "--shards", "2"], "--shards needs --under-load"),
        (
            &["deploy", "--under-load", "10", "--shards", "2"],
            "--shards needs --on-ecs",
        ),
        (
            &["deploy", "--under-load", "10", "--on-ecs"],
            "has no [probe.ecs] section",
        ),
        (
            &["full", "--under-load", "10", "--shards", "0", "--on-ecs"],
            "0 is not in 1..=1000",
        ),
        (&["deploy", "--settle", "5s"], "--settle needs --under-load"),
        (
            &["deploy", "--max-lost", "2"],
            "--max-lost needs --under-load",
        ),
        (
            &["deploy", "--under-load", "0"],
            "--under-load 0 is out of range",
        ),
        (
            &["deploy", "--under-load", "10", "--no-wait"],
            "--under-load does not go with --no-wait",
        ),
        (
            &["deploy", "--under-load", "10", "--settle", "2h"],
            "--settle 2 h is too long",
        ),
        (
            &["full", "--dry-run", "--under-load", "10"],
            "--under-load does not go with a dry run",
        ),
        (
            &["full", "--under-load", "10", "--max-drop-rate", "2"],
            "--max-drop-rate 2 is not a fraction",
        ),
    ];
    for (args, needle) in cases {
        let out = run(bosar("http://127.0.0.1:9", "under-load-usage")
            .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
            .arg("--config")
            .arg(&cfg)
            .args(args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    let out = run(bosar("http://127.0.0.1:9", "under-load-usage")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--connections", "5", "--max-lost", "1"]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("--max-lost needs --reconnect"),
        "{}",
        out.stderr
    );
}

/// Shards held beside a deploy that runs in another process (a CI matrix beside the deploy
/// job): two `verify --shard I/2 --reconnect` processes open together, the deploy replaces
/// the gateways under them, and `report merge --deploy` counts the drops from the rollout's
/// start, as `deploy --under-load` would, against the old gateways' own count while draining.
#[test]
fn shards_beside_a_deploy_merge_against_its_rollout() {
    let runner = TaskRunner::start(Path::new("sandbox/deploy.toml"), SECRET);
    let (dir, cfg) = write_config(&config(&runner.url));
    // The 2 s drain is what alb-update sets (the deploy job of such a pipeline runs `full`).
    let out = run(bosar(&runner.endpoint, "shards-alb")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    let old: Vec<Value> = runner.ready["tasks"].as_array().unwrap().clone();
    let start_at =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(2))
            .to_string();
    let n = N.to_string();
    let shards: Vec<Child> = (1..=2)
        .map(|i| {
            let shard = format!("{i}/2");
            let args = [
                "--output",
                "json",
                "verify",
                "--connections",
                &n,
                "--shard",
                &shard,
                "--start-at",
                &start_at,
                "--reconnect",
                "--reconnect-delay",
                "200ms..1s",
                "--hold",
                "20s",
            ];
            spawn(&runner, &cfg, "shard", &args)
        })
        .collect();
    // The deploy starts once every shard session is open on the old gateways.
    let t = Instant::now();
    let held = || -> u64 {
        old.iter()
            .map(|t| connections_at(t["port"].as_u64().unwrap()).unwrap_or(0))
            .sum()
    };
    while held() < N {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the shards never opened:\n{}",
            runner.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deploy = spawn(&runner, &cfg, "deploy", &["--output", "json", "deploy"]);
    runner
        .wait_for(|e| e["event"] == "draining", Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no draining event:\n{}", runner.log()));
    let draining = held();
    let (code, stdout, stderr) = finish(deploy, &runner);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    eprintln!(
        "shards opened and the deploy ran in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let deploy_doc = dir.path().join("deploy.json");
    std::fs::write(&deploy_doc, &stdout).unwrap();
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert!(doc["deploy"]["rollout_started_at"].is_string(), "{doc:#}");
    assert!(doc["deploy"]["rollout_ended_at"].is_string(), "{doc:#}");
    let files: Vec<std::path::PathBuf> = shards
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (code, out, err) = finish(c, &runner);
            assert_eq!(code, 0, "shard {}: {out}\n{err}", i + 1);
            let f = dir.path().join(format!("shard{}.json", i + 1));
            std::fs::write(&f, out).unwrap();
            f
        })
        .collect();
    let merge = |deploy: &Path| {
        let out = run(bosar(&runner.endpoint, "merge")
            .args(["--output", "json", "report", "merge", "--deploy"])
            .arg(deploy)
            .args(&files));
        let doc: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
        (out.code, doc, out.all())
    };
    let (code, merged, all) = merge(&deploy_doc);
    assert_eq!(code, 0, "{all}");
    let p = &merged["probe"];
    let d = &p["disruption"];
    // Ground truth: every shard session sat on an old gateway while it drained, and was cut.
    assert_eq!(draining, N, "{}", runner.log());
    assert_eq!(u(&d["dropped"]["sessions"]), draining, "{d:#}");
    assert_eq!(u(&d["lost"]), 0, "{d:#}");
    assert_eq!(u(&d["dropped_before_window"]), 0, "{d:#}");
    let a = &p["merge"]["attribution"];
    let phases = a["phases"].as_array().unwrap();
    assert_eq!(phases[0]["counted"], false);
    assert_eq!(
        u(&phases[0]["drops"]),
        0,
        "nothing dropped before the rollout: {a:#}"
    );
    assert_eq!(
        phases.iter().map(|p| u(&p["drops"])).sum::<u64>(),
        u(&d["dropped"]["events"]),
        "every drop in one phase: {a:#}"
    );
    assert_eq!(a["uncovered"].as_array().unwrap().len(), 0, "{a:#}");
    let window = p["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rollout window")
        .unwrap_or_else(|| panic!("{p:#}"));
    assert_eq!(window["status"], "pass", "{window:#}");

    // The same shards against a rollout that began after the cuts: nothing is this deploy's.
    let mut later = doc.clone();
    // Two seconds after the real end, whole seconds clear of the last cut (rows count by second).
    let ended = later["deploy"]["rollout_ended_at"].as_str().unwrap();
    let ended = humantime::parse_rfc3339_weak(ended.trim_end_matches('Z')).unwrap();
    let at = |s: u64| {
        Value::from(humantime::format_rfc3339_millis(ended + Duration::from_secs(s)).to_string())
    };
    later["deploy"]["rollout_started_at"] = at(2);
    later["deploy"]["rollout_ended_at"] = at(3);
    let later_doc = dir.path().join("later.json");
    std::fs::write(&later_doc, later.to_string()).unwrap();
    let (code, merged, all) = merge(&later_doc);
    assert_eq!(code, 0, "{all}");
    let d = &merged["probe"]["disruption"];
    assert_eq!(u(&d["dropped"]["sessions"]), 0, "{d:#}");
    assert_eq!(u(&d["dropped_before_window"]), draining, "{d:#}");

    // Against a rollout that ended after the shards stopped holding: the check fails, naming them.
    let mut long = doc.clone();
    long["deploy"]["rollout_ended_at"] = Value::from("2099-01-01T00:00:00Z");
    let long_doc = dir.path().join("long.json");
    std::fs::write(&long_doc, long.to_string()).unwrap();
    let (code, merged, all) = merge(&long_doc);
    assert_eq!(code, 1, "{all}");
    let checks = merged["probe"]["checks"].as_array().unwrap();
    let window = checks
        .iter()
        .find(|c| c["name"] == "rollout window")
        .unwrap();
    assert_eq!(window["status"], "fail");
    let msg = window["message"].as_str().unwrap();
    assert!(
        msg.contains("1/2: it stopped holding") && msg.contains("2/2: it stopped holding"),
        "{msg}"
    );
}
