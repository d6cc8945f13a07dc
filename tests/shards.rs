//! `verify --connections N --shard I/K` and `report merge`, against the real peers: two NestJS
//! gateway replicas behind the ALB-shaped sticky HAProxy. Four shards run as separate
//! processes with one `--start-at`; the merge's counts equal N and the gateways' own counters,
//! its exit code is a single run's; missing and duplicate shards are refused by name.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, Haproxy};
use support::{run, Run};

const TOKEN_ENV: &str = "BOSAR_SHARD_TEST_TOKEN";
const N: u64 = 200;
const K: u32 = 4;

fn config(url: &str) -> (tempfile::TempDir, PathBuf) {
    support::write_config(&format!(
        r#"
[target_group]
name = "bosar-api-tg"
stickiness = "lb_cookie"
cookie_duration = "1d"

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

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

fn merge(files: &[&Path]) -> Run {
    run(bin()
        .args(["--output", "json", "report", "merge"])
        .args(files))
}

fn doc_of(out: &Run) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.all()))
}

/// The document is valid against schema/output.schema.json.
fn assert_schema(doc: &Value) {
    let text = std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

fn stats(g: &Gateway) -> Value {
    let (status, body) = support::http(g.port, "GET", "/health/stats", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn four_shards_started_apart_open_together_and_merge_to_n() {
    let opts = |id: &str| GatewayOpts {
        instance_id: Some(id.into()),
        ..GatewayOpts::default()
    };
    let (g1, g2) = (Gateway::start(&opts("gw-a")), Gateway::start(&opts("gw-b")));
    let proxy = Haproxy::start("sticky", [&g1, &g2]);
    let (dir, cfg) = config(&proxy.url);
    let token = support::signed_token("verify-test-secret", "shard-test");
    // One start time for all: a few seconds ahead, so every process is up before it.
    let at = SystemTime::now() + Duration::from_secs(4);
    let at_text = humantime::format_rfc3339_seconds(at).to_string();
    let started = Instant::now();
    let children: Vec<(PathBuf, std::process::Child)> = (1..=K)
        .map(|i| {
            let file = dir.path().join(format!("shard-{i}.json"));
            let child = bin()
                .env(TOKEN_ENV, &token)
                .arg("--config")
                .arg(&cfg)
                .args([
                    "--output",
                    "json",
                    "verify",
                    "--connections",
                    &N.to_string(),
                ])
                .args(["--shard", &format!("{i}/{K}"), "--start-at", &at_text])
                // Paced: the open budget assumes 100 handshakes/s unless --rate is lower, and
                // four shards on a loaded 2-core machine can fall below that.
                .args(["--concurrency", "20", "--rate", "25", "--hold", "2s"])
                .stdout(std::fs::File::create(&file).unwrap())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (file, child)
        })
        .collect();
    let mut files = Vec::new();
    for (file, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let doc = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stderr}\n{doc}",
            file.display()
        );
        assert!(stderr.contains("until --start-at"), "{stderr}");
        files.push(file);
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    // Each shard held its share: 50 each; its section says which shard of which run.
    for (i, f) in files.iter().enumerate() {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert_schema(&doc);
        let p = &doc["probe"];
        assert_eq!(p["connections"], N / K as u64, "{p:#}");
        assert_eq!(p["shard"]["shard"]["index"], i as u64 + 1);
        assert_eq!(p["shard"]["run_id"], format!("{at_text}/n{N}/k{K}"));
    }

    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = merge(&paths);
    assert_eq!(out.code, 0, "{}", out.all());
    let doc = doc_of(&out);
    assert_eq!(doc["command"], "report");
    assert_schema(&doc);
    let p = &doc["probe"];
    assert_eq!(p["result"], "succeeded", "{p:#}");
    assert_eq!(p["merge"]["shards"], K);
    assert_eq!(p["connections"], N);
    assert_eq!(p["opened"], N, "{p:#}");
    assert_eq!(p["closed"], N);
    assert_eq!(p["errors"], 0);
    assert_eq!(p["connect"]["count"], N);
    let on_targets: u64 = p["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(on_targets, N, "{p:#}");
    // The gateways' own counters: every merged session was one they accepted.
    let total = stats(&g1)["totalConnections"].as_u64().unwrap()
        + stats(&g2)["totalConnections"].as_u64().unwrap();
    assert_eq!(total, N);
    let acked: u64 = p["heartbeats"]["acked"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let gw_acks = stats(&g1)["heartbeatAcks"].as_u64().unwrap()
            + stats(&g2)["heartbeatAcks"].as_u64().unwrap();
        if gw_acks == acked || Instant::now() > deadline {
            assert_eq!(gw_acks, acked, "gateway acks vs the merged report's");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The same documents through stdin, one after another: the same counts.
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let mut child = bin()
        .args(["--output", "json", "report", "merge", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(all.as_bytes())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    let piped: Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(piped["probe"]["opened"], N);

    // The thresholds are the shards' own, judged on the total: the same documents with a
    // --max-p99 of 1 ms (below any connect through the proxy) merge to a failed run, exit 1.
    let strict: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut doc: Value =
                serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            doc["probe"]["shard"]["settings"]["max_p99_ms"] = 1.into();
            let to = dir.path().join(format!("strict-{i}.json"));
            std::fs::write(&to, doc.to_string()).unwrap();
            to
        })
        .collect();
    let strict: Vec<&Path> = strict.iter().map(PathBuf::as_path).collect();
    let out = merge(&strict);
    assert_eq!(out.code, 1, "{}", out.all());
    let doc = doc_of(&out);
    assert_eq!(doc["probe"]["result"], "failed");
    assert_eq!(doc["probe"]["opened"], N);

    // A shard missing, a shard twice: refused, named, exit 2, no report.
    let out = merge(&paths[..2]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("missing shard(s) 3/4, 4/4"),
        "{}",
        out.stderr
    );
    let out = merge(&[paths[0], paths[1], paths[1], paths[2], paths[3]]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("shard 2/4 is given more than once"),
        "{}",
        out.stderr
    );
    // Not a shard report.
    let out = merge(&[cfg.as_path()]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("not JSON"), "{}", out.stderr);
}

#[test]
fn shard_flags_are_checked() {
    let (_dir, cfg) = config("http://127.0.0.1:9");
    let verify = |extra: &[&str]| {
        run(bin()
            .env(
                TOKEN_ENV,
                support::signed_token("verify-test-secret", "flags"),
            )
            .arg("--config")
            .arg(&cfg)
            .args(["verify", "--connections", "3"])
            .args(extra))
    };
    for (flags, says) in [
        (&["--shard", "5/4", "--run-id", "r"][..], "I must be 1 to K"),
        (
            &["--shard", "2/4"][..],
            "--shard needs --run-id or --start-at",
        ),
        (
            &["--shard", "4/4", "--run-id", "r"][..],
            "leave this one none",
        ),
        (&["--start-at", "soon"][..], "--start-at"),
    ] {
        let out = verify(flags);
        assert_eq!(out.code, 2, "{flags:?}: {}", out.all());
        assert!(out.stderr.contains(says), "{flags:?}: {}", out.stderr);
    }
}

/// Four shards of N = 2,000 with `--reconnect`, one replica stopped mid-hold: the merged
/// disruption is what the replicas saw (every session the stopped one held dropped once and
/// came back on the other; the survivor accepted exactly those), and the merged reconnect
/// times stay within the histogram's documented bound of the shards' own.
#[test]
fn shards_holding_2000_through_a_stopped_replica_merge_to_what_the_gateways_saw() {
    const BIG: u64 = 2_000;
    let opts = |id: &str| GatewayOpts {
        instance_id: Some(id.into()),
        // Fewer heartbeats for 2,000 sessions on a 2-core machine.
        heartbeat_interval_ms: 5_000,
        ..GatewayOpts::default()
    };
    let (g1, g2) = (Gateway::start(&opts("gw-a")), Gateway::start(&opts("gw-b")));
    let proxy = Haproxy::start_sized("sticky", [&g1, &g2], 4_000);
    let (dir, cfg) = support::gateway_config(&proxy.url, TOKEN_ENV, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("heartbeat_interval = \"1s\"", "heartbeat_interval = \"5s\"");
    std::fs::write(&cfg, text).unwrap();
    let token = support::signed_token("verify-test-secret", "shard-test");
    let at = SystemTime::now() + Duration::from_secs(4);
    let at_text = humantime::format_rfc3339_seconds(at).to_string();
    let children: Vec<(PathBuf, std::process::Child)> = (1..=K)
        .map(|i| {
            let file = dir.path().join(format!("big-{i}.json"));
            let child = bin()
                .env(TOKEN_ENV, &token)
                .arg("--config")
                .arg(&cfg)
                .args(["--output", "json", "verify", "--connections"])
                .arg(BIG.to_string())
                .args(["--shard", &format!("{i}/{K}"), "--start-at", &at_text])
                .args(["--concurrency", "50", "--rate", "250", "--hold", "12s"])
                .args(["--reconnect", "--reconnect-delay", "200ms..1s"])
                .stdout(std::fs::File::create(&file).unwrap())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (file, child)
        })
        .collect();
    // Every session open (2 s of opening at 250/s per shard after the start time), then
    // gw-a goes away.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let open = stats(&g1)["connections"].as_u64().unwrap()
            + stats(&g2)["connections"].as_u64().unwrap();
        if open == BIG {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {open} of {BIG} sessions open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let held_a = stats(&g1)["connections"].as_u64().unwrap();
    let b_before = stats(&g2)["totalConnections"].as_u64().unwrap();
    assert!(held_a > 0, "gw-a holds none of the sessions");
    g1.terminate();
    let mut files = Vec::new();
    for (file, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", file.display());
        files.push(file);
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = merge(&paths);
    assert_eq!(out.code, 0, "{}", out.all());
    let doc = doc_of(&out);
    let p = &doc["probe"];
    let d = &p["disruption"];
    assert_eq!(p["opened"], BIG, "{p:#}");
    assert_eq!(d["dropped"]["sessions"], held_a, "{d:#}");
    assert_eq!(d["reconnected"], held_a, "{d:#}");
    assert_eq!(d["lost"], 0, "{d:#}");
    // The survivor accepted exactly the sessions that came back.
    assert_eq!(
        stats(&g2)["totalConnections"].as_u64().unwrap() - b_before,
        held_a
    );
    // Merged percentiles against the shards': a quantile of the union lies between the shards'
    // quantiles, widened by the histogram's bound (0.79 %, src/gateway/histogram.rs) and
    // a millisecond of rounding.
    let p99s: Vec<f64> = files
        .iter()
        .map(|f| {
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            doc["probe"]["disruption"]["reconnect"]["p99_ms"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let lo = p99s.iter().cloned().fold(f64::MAX, f64::min);
    let hi = p99s.iter().cloned().fold(0.0, f64::max);
    let merged = d["reconnect"]["p99_ms"].as_f64().unwrap();
    assert!(
        merged >= lo * 0.99 - 1.0 && merged <= hi * 1.01 + 1.0,
        "merged p99 {merged} outside the shards' {lo}..{hi}"
    );
}
