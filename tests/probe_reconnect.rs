//! `verify --connections N --reconnect` against the real peers: two NestJS gateway replicas
//! behind the ALB-shaped HAProxy with runtime target slots (the sandbox runner's template),
//! heartbeats every second. A replica is stopped with SIGTERM mid-hold; drained in HAProxy
//! first and then stopped; or every replica stays down past the end. The gateways' own counters
//! are the ground truth: the sessions a replica held at the moment it was stopped are the
//! report's `dropped`, and the sessions the surviving replica took are the report's
//! `reconnected`.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, SlotProxy};

const TOKEN_ENV: &str = "BOSAR_RECONNECT_TEST_TOKEN";
const SECRET: &str = "verify-test-secret";
const N: u64 = 40;

fn config(url: &str) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(url, TOKEN_ENV, "")
}

fn token() -> String {
    support::signed_token(SECRET, "reconnect-test")
}

fn pair() -> (Gateway, Gateway) {
    let opts = |id: &str| GatewayOpts {
        instance_id: Some(id.into()),
        ..GatewayOpts::default()
    };
    (Gateway::start(&opts("gw-a")), Gateway::start(&opts("gw-b")))
}

/// The probe, running: `--output json verify --connections N --reconnect …`.
struct Probe {
    child: Child,
    started: Instant,
}

impl Probe {
    fn start(cfg: &Path, extra: &[&str]) -> Probe {
        let n = N.to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CI", "true")
            .env(TOKEN_ENV, token())
            .arg("--config")
            .arg(cfg)
            .args(["--output", "json", "verify", "--connections", &n])
            .args(["--concurrency", "20", "--reconnect"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bosar-deploy");
        Probe {
            child,
            started: Instant::now(),
        }
    }

    /// Waits for the exit (at most 60 s); exit code, the JSON report, stderr.
    fn finish(mut self) -> (i32, Value, String) {
        let mut out = String::new();
        let mut err = String::new();
        let mut stdout = self.child.stdout.take().unwrap();
        let mut stderr = self.child.stderr.take().unwrap();
        let t = std::thread::spawn(move || {
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let _ = stdout.read_to_string(&mut out);
        let err = t.join().unwrap();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if self.started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("the probe ran over 60 s:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let report = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}\n{err}"));
        (status.code().unwrap_or(-1), report, err)
    }
}

fn connections(g: &Gateway) -> u64 {
    g.stats()["connections"].as_u64().unwrap()
}

/// Until the replicas hold all N sessions between them (the probe is in its hold).
fn wait_all_open(gws: &[&Gateway]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sum: u64 = gws.iter().map(|g| connections(g)).sum();
        if sum == N {
            return;
        }
        assert!(Instant::now() < deadline, "only {sum} of {N} sessions open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exited(g: &mut Gateway) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !g.exited() {
        assert!(Instant::now() < deadline, "gateway did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["probe"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The assertions every replica-stop case shares: the report's counts against the ground
/// truth (`held` sessions on the stopped replica), and every session back on the survivor.
fn assert_replica_stop(report: &Value, held: u64, survivor: &Gateway, before: u64) {
    let p = &report["probe"];
    eprintln!("held {held}; disruption: {:#}", p["disruption"]);
    let d = &p["disruption"];
    assert_eq!(u(&p["opened"]), N, "{p:#}");
    assert_eq!(
        u(&d["dropped"]["sessions"]),
        held,
        "dropped vs the gateway's count: {d:#}"
    );
    assert_eq!(u(&d["dropped"]["events"]), held, "{d:#}");
    assert_eq!(u(&d["reconnected"]) + u(&d["lost"]), held, "{d:#}");
    assert_eq!(u(&d["lost"]), 0, "{d:#}");
    assert_eq!(u(&d["reconnected"]), held, "{d:#}");
    assert_eq!(u(&d["moved"]), held, "{d:#}");
    // From→to: every dropped session went from gw-a to gw-b.
    let moves = d["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{moves:#?}");
    assert_eq!(moves[0]["from"], "gw-a");
    assert_eq!(moves[0]["to"], "gw-b");
    assert_eq!(u(&moves[0]["sessions"]), held);
    let landed = d["landed"].as_array().unwrap();
    assert_eq!(landed.len(), 1, "{landed:#?}");
    assert_eq!(landed[0]["target"], "gw-b");
    assert_eq!(u(&landed[0]["reconnects"]), held);
    let t = &d["reconnect"];
    assert_eq!(u(&t["count"]), held);
    assert!(u(&t["p50_ms"]) <= u(&t["p99_ms"]) && u(&t["p99_ms"]) <= u(&t["max_ms"]));
    // socket.io-client's schedule with 200ms..1s: the first attempt 100-300 ms after the drop.
    assert!(u(&t["p50_ms"]) >= 100, "{t}");
    assert!(u(&t["max_ms"]) < 5_000, "{t}");
    assert!(u(&d["longest_heartbeat_gap_ms"]) >= 1_000, "{d:#}");
    // The drop shape: one replica stopped, so its sessions dropped within one second, and
    // their reconnects (200 ms..1 s apart) landed on the survivor within a few seconds.
    let shape = &d["drop_shape"];
    assert_eq!(u(&shape["peak_drops_per_s"]), held, "{shape:#}");
    assert!(u(&shape["span_ms"]) < 1_000, "{shape:#}");
    assert!(
        u(&shape["peak_reconnects_per_s"]) >= 1
            && u(&shape["peak_reconnects_per_s"]) <= u(&landed[0]["reconnects"]),
        "{shape:#}"
    );
    assert_eq!(
        shape["storm"],
        u(&shape["peak_reconnects_per_s"]) * 2 >= held && held >= 10,
        "{shape:#}"
    );
    // Every session ends on the live replica, held to the end and closed cleanly.
    let targets = p["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{targets:#?}");
    assert_eq!(targets[0]["instance"], "gw-b");
    assert_eq!(u(&targets[0]["sessions"]), N);
    assert_eq!(u(&p["closed"]), N, "{p:#}");
    assert_eq!(u(&p["errors"]), 0, "{p:#}");
    // The survivor's own count: the sessions it had, plus exactly the reconnected ones.
    let total = u(&survivor.stats()["totalConnections"]);
    assert_eq!(total, before + held, "gw-b's connections in all");
    // Heartbeats were acked again on the new sessions: the gateway counted every ack.
    let hb = &p["heartbeats"];
    assert_eq!(hb["received"], hb["acked"], "{hb:#}");
    for name in ["disruption", "reconnect", "hold", "errors", "close"] {
        assert_eq!(
            check(report, name)["status"],
            "pass",
            "{:#}",
            check(report, name)
        );
    }
}

#[test]
fn a_replica_stopped_mid_hold_its_sessions_come_back_on_the_other() {
    let (mut ga, gb) = pair();
    let proxy = SlotProxy::start(&[&ga, &gb]);
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(&cfg, &["--hold", "8s", "--reconnect-delay", "200ms..1s"]);
    wait_all_open(&[&ga, &gb]);
    std::thread::sleep(Duration::from_millis(1500));
    // Ground truth at the moment of the stop.
    let held = connections(&ga);
    let before = u(&gb.stats()["totalConnections"]);
    assert!(held > 0 && held < N, "gw-a holds {held}");
    ga.terminate();
    wait_exited(&mut ga);
    let (code, report, stderr) = probe.finish();
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_replica_stop(&report, held, &gb, before);
    let d = &report["probe"]["disruption"];
    // A gateway stopping closes its sockets itself: close frames or the end of the stream.
    for c in d["dropped"]["by_cause"].as_array().unwrap() {
        assert!(
            ["close_frame", "eof", "server_close", "reset"].contains(&c["cause"].as_str().unwrap()),
            "{c}"
        );
    }
    // The text table in the progress: a drop line appears while holding.
    assert!(stderr.contains(" drop(s), "), "{stderr}");
}

#[test]
fn a_replica_drained_first_then_stopped() {
    let (mut ga, gb) = pair();
    let proxy = SlotProxy::start(&[&ga, &gb]);
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(&cfg, &["--hold", "8s", "--reconnect-delay", "200ms..1s"]);
    wait_all_open(&[&ga, &gb]);
    // Draining: no new sessions on gw-a, but the open ones stay (for the deregistration delay).
    proxy.drain(1);
    let held = connections(&ga);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(connections(&ga), held, "draining cut sessions");
    let before = u(&gb.stats()["totalConnections"]);
    ga.terminate();
    wait_exited(&mut ga);
    let (code, report, stderr) = probe.finish();
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_replica_stop(&report, held, &gb, before);
    // The load balancer never sends a reconnect to the drained target (its cookie is
    // re-routed): not one attempt failed.
    let d = &report["probe"]["disruption"];
    assert_eq!(u(&d["attempts"]["failed"]), 0, "{d:#}");
    assert_eq!(u(&d["attempts"]["made"]), held, "{d:#}");
}

#[test]
fn every_replica_down_past_the_end_loses_every_session() {
    let (mut ga, mut gb) = pair();
    let proxy = SlotProxy::start(&[&ga, &gb]);
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(
        &cfg,
        &[
            "--hold",
            "5s",
            "--reconnect-delay",
            "200ms..1s",
            "--max-reconnect-p99",
            "3s",
        ],
    );
    wait_all_open(&[&ga, &gb]);
    std::thread::sleep(Duration::from_millis(1000));
    let held = connections(&ga) + connections(&gb);
    assert_eq!(held, N);
    ga.terminate();
    gb.terminate();
    wait_exited(&mut ga);
    wait_exited(&mut gb);
    let (code, report, stderr) = probe.finish();
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let p = &report["probe"];
    let d = &p["disruption"];
    assert_eq!(u(&d["dropped"]["sessions"]), N, "{d:#}");
    assert_eq!(u(&d["lost"]), N, "{d:#}");
    assert_eq!(u(&d["reconnected"]), 0, "{d:#}");
    assert!(d["reconnect"].is_null(), "{d:#}");
    // Each kept trying until the end: the load balancer answered 503 (no healthy target) or
    // the attempt failed otherwise; every failure is counted by cause.
    let made = u(&d["attempts"]["made"]);
    let failed = u(&d["attempts"]["failed"]);
    assert!(made >= N, "{d:#}");
    assert!(failed + N >= made, "{d:#}");
    let by_cause: u64 = d["attempts"]["failed_by_cause"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| u(&c["count"]))
        .sum();
    assert_eq!(by_cause, failed);
    assert!(
        d["attempts"]["failed_by_cause"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["cause"] == "http503"),
        "{d:#}"
    );
    let moves = d["moves"].as_array().unwrap();
    assert!(moves.iter().all(|m| m["to"] == "(lost)"), "{moves:#?}");
    assert_eq!(moves.iter().map(|m| u(&m["sessions"])).sum::<u64>(), N);
    assert_eq!(check(&report, "disruption")["status"], "fail");
    assert!(
        check(&report, "disruption")["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{N} lost, more than --max-lost 0")),
        "{report:#}"
    );
    // The p99 threshold cannot be measured with nothing back: it fails too.
    assert_eq!(check(&report, "reconnect")["status"], "fail");
    assert_eq!(u(&p["dropped"]), N, "lost sessions are the probe's drops");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["probe"]["result"], "failed");
}
