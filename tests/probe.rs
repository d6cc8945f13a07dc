//! `verify --connections N`, the load probe, against the real peers: two NestJS gateway
//! replicas behind the ALB-shaped sticky HAProxy, heartbeats every second. Correctness at small
//! N only; speed is measured by bench/probe, never asserted here.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, Haproxy};
use support::{run, Run};

const TOKEN_ENV: &str = "BOSAR_PROBE_TEST_TOKEN";
const SECRET: &str = "verify-test-secret";

/// A deploy.toml whose [gateway] matches the peers (ping 2 s / 3 s, heartbeat 1 s).
fn config(url: &str) -> (tempfile::TempDir, PathBuf) {
    support::write_config(&format!(
        r#"
[target_group]
name = "bosar-api-tg"
stickiness = "lb_cookie"
cookie_duration = "1d"
algorithm = "least_outstanding_requests"

[gateway]
url = "{url}"
namespace = "/chat"
health_path = "/health/websocket"
token_env = "{TOKEN_ENV}"
ping_interval = "2s"
ping_timeout = "3s"
heartbeat_event = "heartbeat"
heartbeat_interval = "1s"
"#
    ))
}

fn token(secret: &str) -> String {
    support::signed_token(secret, "probe-test")
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .stdin(Stdio::null());
    cmd
}

/// `bosar-deploy --config CFG GLOBAL… verify VERB…` with the token in the environment.
fn probe(cfg: &Path, token: &str, global: &[&str], verb: &[&str]) -> Run {
    let started = Instant::now();
    let out = run(bin()
        .env(TOKEN_ENV, token)
        .arg("--config")
        .arg(cfg)
        .args(global)
        .arg("verify")
        .args(verb));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the probe took {:?}",
        started.elapsed()
    );
    out
}

/// The `probe` payload of the JSON envelope: the report, its checks and its result.
fn json_of(out: &Run) -> Value {
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.all()));
    assert_eq!(doc["command"], "verify", "{doc:#}");
    assert_eq!(doc["exit_code"], out.code, "{doc:#}");
    doc["probe"].clone()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn pair() -> (Gateway, Gateway) {
    let a = GatewayOpts {
        instance_id: Some("gw-a".into()),
        ..GatewayOpts::default()
    };
    let b = GatewayOpts {
        instance_id: Some("gw-b".into()),
        ..GatewayOpts::default()
    };
    (Gateway::start(&a), Gateway::start(&b))
}

fn stats(g: &Gateway) -> Value {
    let (status, body) = support::http(g.port, "GET", "/health/stats", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn fifty_sessions_through_the_sticky_proxy_spread_over_both_replicas() {
    let (g1, g2) = pair();
    let proxy = Haproxy::start("sticky", [&g1, &g2]);
    let (dir, cfg) = config(&proxy.url);
    let junit = dir.path().join("probe.xml");
    let token = token(SECRET);
    let out = probe(
        &cfg,
        &token,
        &["--output", "json"],
        &[
            "--connections",
            "50",
            "--concurrency",
            "10",
            "--hold",
            "3s",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let report = json_of(&out);
    assert_eq!(report["result"], "succeeded", "{report:#}");
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    let p = &report;

    // Every session opened, held and closed; nothing failed.
    assert_eq!(p["connections"], 50);
    assert_eq!(p["opened"], 50, "{p:#}");
    assert_eq!(p["open_failed"], 0);
    assert_eq!(p["dropped"], 0);
    assert_eq!(p["closed"], 50);
    assert_eq!(p["close_failed"], 0);
    assert_eq!(p["errors"], 0);
    assert_eq!(num(&p["error_rate"]), 0.0);
    assert!(p["failures"].as_array().unwrap().is_empty());
    assert!(num(&p["handshakes_per_s"]) > 0.0);

    // Percentiles are ordered.
    let c = &p["connect"];
    assert_eq!(c["count"], 50);
    let order = ["min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"].map(|k| num(&c[k]));
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{c:#}");

    // Both replicas hold sessions, by their heartbeats' instance ids; the counts sum to N.
    let targets = p["targets"].as_array().unwrap();
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["instance"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gw-a") && names.contains(&"gw-b"),
        "{targets:?}"
    );
    let sum: u64 = targets
        .iter()
        .map(|t| t["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 50, "{targets:?}");
    assert_eq!(p["unknown_target"], 0);

    // Each handshake set AWSALB through the proxy; each value pins the replica its sessions
    // are on (asked on the health endpoint with that cookie).
    let cookies = &p["cookies"];
    assert_eq!(cookies["name"], "AWSALB");
    assert_eq!(cookies["set"], 50);
    assert_eq!(cookies["distinct_values"], 2, "{cookies:#}");
    assert_eq!(cookies["consistent"], true, "{cookies:#}");

    // Heartbeats: all due during the hold arrived; every one was acked, and the gateways
    // counted exactly those acks and no ack timeout (the sessions left right after an ack).
    let hb = &p["heartbeats"];
    let ratio = num(&hb["delivery_ratio"]);
    assert!((0.98..=1.02).contains(&ratio), "{hb:#}");
    assert!(num(&hb["expected_in_hold"]) >= 100.0, "{hb:#}");
    assert_eq!(hb["received"], hb["acked"], "{hb:#}");
    let lateness = &hb["lateness"];
    assert!(num(&lateness["p50_ms"]) <= num(&lateness["p99_ms"]));
    assert!(num(&lateness["p99_ms"]) <= num(&lateness["max_ms"]));

    let acked = hb["acked"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let (acks, timeouts, total, connected) = loop {
        let (s1, s2) = (stats(&g1), stats(&g2));
        let sum = |k: &str| s1[k].as_u64().unwrap() + s2[k].as_u64().unwrap();
        let now = (
            sum("heartbeatAcks"),
            sum("heartbeatAckTimeouts"),
            sum("totalConnections"),
            sum("connections"),
        );
        // Both replicas took sessions (the gateways' own count, not the probe's).
        assert!(s1["totalConnections"].as_u64().unwrap() > 0, "{s1}");
        assert!(s2["totalConnections"].as_u64().unwrap() > 0, "{s2}");
        if (now.0 == acked && now.3 == 0) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(acks, acked, "gateway acks vs the probe's");
    assert_eq!(timeouts, 0, "heartbeat ack timeouts on the gateways");
    assert_eq!(total, 50);
    assert_eq!(connected, 0, "sessions still connected after the probe");

    // Progress for CI: timestamped lines on stderr.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("20") && l.contains(" probe: ")),
        "{}",
        out.stderr
    );

    // JUnit: one testcase per check, all passing.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(
        cases,
        [
            "open",
            "latency",
            "hold",
            "heartbeat",
            "spread",
            "cookies",
            "close",
            "errors"
        ]
    );
    assert!(!xml.contains("<failure"), "{xml}");

    // The token never appears.
    let all = format!("{}{xml}", out.all());
    assert!(!all.contains(&token), "the token leaked");
    assert!(!all.contains(token.split('.').nth(2).unwrap()));
}

#[test]
fn thresholds_make_it_a_ci_gate() {
    let (g1, g2) = pair();
    let proxy = Haproxy::start("sticky", [&g1, &g2]);
    let (_dir, cfg) = config(&proxy.url);

    // A p99 above --max-p99 fails (nothing answers within 0 ms), in text output.
    let out = probe(
        &cfg,
        &token(SECRET),
        &[],
        &["--connections", "10", "--hold", "1s", "--max-p99", "0ms"],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("FAIL latency") && l.contains("above --max-p99 0.0 ms")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("PASS errors"), "{}", out.stdout);

    // A token the gateway refuses: every session fails, grouped under one cause.
    let forged = token("not-the-secret");
    let args = [
        "--connections",
        "10",
        "--hold",
        "1s",
        "--max-error-rate",
        "0.5",
    ];
    let out = probe(&cfg, &forged, &["--output", "json"], &args);
    assert_eq!(out.code, 1, "{}", out.all());
    let report = json_of(&out);
    assert_eq!(report["result"], "failed");
    assert_eq!(check(&report, "errors")["status"], "fail");
    assert_eq!(check(&report, "open")["status"], "fail");
    let p = &report;
    assert_eq!(p["opened"], 0);
    assert_eq!(p["open_failed"], 10);
    assert_eq!(num(&p["error_rate"]), 1.0);
    let failures = p["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["count"], 10);
    assert_eq!(failures[0]["phase"], "open");
    assert_eq!(
        failures[0]["cause"],
        "/chat refused the CONNECT: unauthorized (bad signature)"
    );
    assert!(!out.all().contains(&forged), "the token leaked");

    // Within the allowed error rate it passes with a warning: 10 fail of 10 is 100%, so
    // allow everything.
    let args = [
        "--connections",
        "10",
        "--hold",
        "1s",
        "--max-error-rate",
        "1",
    ];
    let out = probe(&cfg, &forged, &["--output", "json"], &args);
    assert_eq!(out.code, 0, "{}", out.all());
    let report = json_of(&out);
    assert_eq!(check(&report, "errors")["status"], "pass");
    assert_eq!(check(&report, "open")["status"], "warn");
}

#[test]
fn more_sessions_than_open_files_is_a_usage_error() {
    // No peer needed: the limit is read before anything is contacted.
    let (_dir, cfg) = config("http://127.0.0.1:9");
    let bin = env!("CARGO_BIN_EXE_bosar-deploy");
    let out = run(bin_prlimit()
        .env(TOKEN_ENV, "x.y.z-placeholder-token")
        .args(["--nofile=100:100", "--", bin, "--config"])
        .arg(&cfg)
        .args(["verify", "--connections", "500"]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains(
            "--connections 500 needs about 564 open files (one socket per session plus 64 for the process), but the open-file limit is 100 (hard limit 100)"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ulimit -n 564"), "{}", out.stderr);
    assert!(
        out.stderr.contains("lower --connections to at most 36"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // Under the hard limit the soft one is raised for the run (here the run then fails to
    // connect: nothing listens on port 9; exit 1, not 2).
    let out = run(bin_prlimit()
        .env(TOKEN_ENV, "x.y.z-placeholder-token")
        .args(["--nofile=100:1000", "--", bin, "-v", "--config"])
        .arg(&cfg)
        .args(["verify", "--connections", "200", "--hold", "1s"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("raised the open-file soft limit from 100 to 264"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("cannot connect"), "{}", out.stdout);
}

/// `prlimit` (util-linux) with the same clean environment as [`bin`].
fn bin_prlimit() -> Command {
    let path = ["/usr/bin/prlimit", "/bin/prlimit"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("prlimit (util-linux) not found");
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn probe_over_https_and_wss_with_a_verified_certificate() {
    let ca = support::peers::TestCa::new();
    let (g1, g2) = pair();
    let proxy = Haproxy::start_tls("sticky", [&g1, &g2], &ca.server_pem);
    let (_d, cfg) = config(&proxy.url);
    let started = Instant::now();
    let out = run(bin()
        .env(TOKEN_ENV, token(SECRET))
        .env("SSL_CERT_FILE", &ca.ca)
        .arg("--config")
        .arg(&cfg)
        .args([
            "--output",
            "json",
            "verify",
            "--connections",
            "20",
            "--hold",
            "2s",
        ]));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.all());
    let report = json_of(&out);
    let p = &report;
    assert_eq!(p["opened"], 20, "{p:#}");
    assert_eq!(p["errors"], 0, "{p:#}");
    assert_eq!(check(&report, "cookies")["status"], "pass", "{report:#}");
}
