//! `monitor` against the real peers: two NestJS gateway replicas behind the ALB-shaped
//! HAProxy, heartbeats every second, one record a second. A replica stopped mid-run shows up
//! in the next records as drops and reconnects, and its sessions move to the other replica
//! (the gateways' own counters are the ground truth); SIGTERM ends the run with exit 0 after
//! one last record; `--prometheus` serves OpenMetrics that a real Prometheus scrapes. A
//! server-side `disconnectSockets()` ("io server disconnect") is what socket.io-client never
//! reconnects after: counted as lost, never as reconnected, and replaced the interval after;
//! a reconnect refused with CONNECT_ERROR (an expired token) is lost and not tried again.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, SlotProxy};

const TOKEN_ENV: &str = "BOSAR_MONITOR_TEST_TOKEN";
const SECRET: &str = "verify-test-secret";

fn config(url: &str) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(
        url,
        TOKEN_ENV,
        "\n[monitor]\nnamespace = \"BoSar/Test\"\n\n[monitor.dimensions]\nService = \"chat-api\"\n",
    )
}

fn pair() -> (Gateway, Gateway) {
    let opts = |id: &str| GatewayOpts {
        instance_id: Some(id.into()),
        ..GatewayOpts::default()
    };
    (Gateway::start(&opts("gw-a")), Gateway::start(&opts("gw-b")))
}

/// `bosar-deploy … monitor …`, its stdout lines as they come.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Monitor {
    fn start(cfg: &Path, global: &[&str], args: &[&str]) -> Monitor {
        Monitor::start_with(
            cfg,
            global,
            args,
            &support::signed_token(SECRET, "monitor-test"),
        )
    }

    /// With this token (e.g. one that expires during the run).
    fn start_with(cfg: &Path, global: &[&str], args: &[&str], token: &str) -> Monitor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CI", "true")
            .env(TOKEN_ENV, token)
            .arg("--config")
            .arg(cfg)
            .args(global)
            .arg("monitor")
            .args(["--interval", "1s", "--reconnect-delay", "200ms..1s"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bosar-deploy");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Monitor {
            child,
            lines,
            stderr,
        }
    }

    /// The next record (JSON line), within 10 s.
    fn record(&self) -> Value {
        let l = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a record within 10 s");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    }

    /// Waits for the exit (at most 20 s): its code, the remaining lines, stderr.
    fn finish(mut self) -> (i32, Vec<String>, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("monitor did not stop within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest = self.lines.try_iter().collect();
        let err = self.stderr.join().unwrap();
        (status.code().unwrap_or(-1), rest, err)
    }

    fn terminate(&self) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

fn connections(g: &Gateway) -> u64 {
    g.stats()["connections"].as_u64().unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn a_replica_stopped_mid_run_shows_as_drops_and_reconnects_in_the_next_records() {
    let (mut a, b) = pair();
    let proxy = SlotProxy::start(&[&a, &b]);
    let (_d, cfg) = config(&proxy.url);
    let m = Monitor::start(&cfg, &["--output", "json"], &["--sessions", "10"]);
    // Every session up and heartbeats flowing on both replicas.
    let mut first = m.record();
    let deadline = Instant::now() + Duration::from_secs(15);
    // ... and a heartbeat gap measured (two heartbeats of a session in one interval).
    while u(&first["sessions_up"]) < 10
        || first["sessions_per_target"].get("unknown").is_some()
        || !first["heartbeat_gap_max_ms"].is_u64()
    {
        assert!(
            Instant::now() < deadline,
            "sessions never all up: {first:#}"
        );
        first = m.record();
    }
    assert_eq!(u(&first["drops"]), 0, "{first:#}");
    assert_eq!(first["health_status"], 200, "{first:#}");
    assert!(first["handshake_ms"].is_u64(), "{first:#}");
    assert!(u(&first["heartbeat_gap_max_ms"]) >= 900, "{first:#}");
    assert_eq!(u(&first["heartbeat_interval_ms"]), 1000);
    let held = u(&first["sessions_per_target"]["gw-a"]);
    assert!(held > 0, "the balancer put nothing on gw-a: {first:#}");
    // The gateway's own count agrees (the interval's fresh handshake may be open a moment).
    let on_a = connections(&a);
    assert!(
        on_a == held || on_a == held + 1,
        "gw-a holds {on_a}, the record says {held}"
    );
    let before_b = u(&b.stats()["totalConnections"]);
    a.terminate();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.exited() {
        assert!(Instant::now() < deadline, "gw-a did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next records: the drops, then the sessions back on gw-b.
    let (mut drops, mut reconnects) = (0, 0);
    let mut last = first.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    while reconnects < held || last["sessions_per_target"]["gw-b"] != 10 {
        assert!(Instant::now() < deadline, "never all back: {last:#}");
        last = m.record();
        eprintln!("{last}");
        drops += u(&last["drops"]);
        reconnects += u(&last["reconnects"]);
        if u(&last["reconnects"]) > 0 {
            assert!(u(&last["reconnect_max_ms"]) < 5_000, "{last:#}");
            assert!(
                last["reconnect_p50_ms"].as_u64().unwrap() >= 100,
                "{last:#}"
            );
        }
    }
    assert_eq!(drops, held, "drops vs the sessions gw-a held");
    assert_eq!(reconnects, held);
    assert_eq!(last["sessions_per_target"]["gw-b"], 10, "{last:#}");
    assert!(
        last["sessions_per_target"].get("gw-a").is_none(),
        "{last:#}"
    );
    // gw-b's own count: at least the reconnected sessions came (plus fresh handshakes).
    assert!(u(&b.stats()["totalConnections"]) >= before_b + held);
    m.terminate();
    let (code, rest, err) = m.finish();
    assert_eq!(code, 0, "{err}");
    let last: Value = serde_json::from_str(rest.last().expect("a last record after SIGTERM"))
        .expect("the last record is JSON");
    assert!(last["sessions_up"].is_u64(), "{last}");
    assert!(err.contains("Stopped after"), "{err}");
}

/// Waits for a record with every session up on a known target and a heartbeat gap.
fn all_up(m: &Monitor, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = m.record();
        if u(&r["sessions_up"]) == n
            && r["sessions_per_target"].get("unknown").is_none()
            && r["heartbeat_gap_max_ms"].is_u64()
        {
            return r;
        }
        assert!(Instant::now() < deadline, "sessions never all up: {r:#}");
    }
}

#[test]
fn a_server_side_disconnect_sockets_is_lost_never_reconnected_and_replaced_next_interval() {
    let opts = |id: &str| GatewayOpts {
        instance_id: Some(id.into()),
        env: vec![("GATEWAY_ADMIN".into(), "on".into())],
        ..GatewayOpts::default()
    };
    let (a, b) = (Gateway::start(&opts("gw-a")), Gateway::start(&opts("gw-b")));
    let proxy = SlotProxy::start(&[&a, &b]);
    let (_d, cfg) = config(&proxy.url);
    let m = Monitor::start(&cfg, &["--output", "json"], &["--sessions", "10"]);
    let first = all_up(&m, 10);
    let held = u(&first["sessions_per_target"]["gw-a"]);
    assert!(held > 0, "the balancer put nothing on gw-a: {first:#}");
    // gw-a sends every /chat socket a namespace DISCONNECT and stays up.
    let (status, body) = support::http(a.port, "POST", "/admin/disconnect-sockets", "");
    assert_eq!(status, 200, "{body}");
    let told: Value = serde_json::from_str(&body).unwrap();
    // The gateway's own count: the held sessions (and perhaps the interval's fresh one).
    assert!(u(&told["disconnected"]) >= held, "{told} vs {held} held");
    let (mut lost, mut lost_told, mut dropped_told, mut reconnects, mut replaced) = (0, 0, 0, 0, 0);
    let mut last = first;
    let deadline = Instant::now() + Duration::from_secs(15);
    while replaced < held || u(&last["sessions_up"]) < 10 {
        assert!(Instant::now() < deadline, "never replaced: {last:#}");
        last = m.record();
        eprintln!("{last}");
        let lost_now = u(&last["lost"]);
        lost += lost_now;
        lost_told += u(&last["lost_by_cause"]["server_disconnect"]);
        dropped_told += u(&last["drops_by_cause"]["server_disconnect"]);
        reconnects += u(&last["reconnects"]);
        replaced += u(&last["replaced"]);
        // A lost session stays down for the rest of its interval: no client brought it back.
        assert!(u(&last["sessions_up"]) + lost_now <= 10, "{last:#}");
    }
    assert_eq!(
        lost_told, held,
        "lost as io server disconnect vs gw-a's sessions"
    );
    assert_eq!(lost, held, "no other loss");
    assert_eq!(dropped_told, held);
    assert_eq!(
        reconnects, 0,
        "socket.io-client does not reconnect after io server disconnect"
    );
    assert_eq!(replaced, held);
    assert_eq!(u(&last["sessions_up"]), 10, "{last:#}");
    m.terminate();
    let (code, _, err) = m.finish();
    assert_eq!(code, 0, "{err}");
}

/// A token that expires `secs` from now.
fn expiring_token(secs: u64) -> (String, std::time::SystemTime) {
    let exp = std::time::SystemTime::now() + Duration::from_secs(secs);
    let claims = serde_json::json!({
        "sub": "monitor-test",
        "exp": exp.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
    });
    let token = bosar_deploy::gateway::token::sign_hs256(SECRET.as_bytes(), &claims.to_string());
    (token.expose().to_string(), exp)
}

#[test]
fn a_reconnect_refused_with_connect_error_is_lost_and_not_tried_again() {
    let (a, b) = pair();
    let proxy = SlotProxy::start(&[&a, &b]);
    let (_d, cfg) = config(&proxy.url);
    let (token, exp) = expiring_token(8);
    let m = Monitor::start_with(&cfg, &["--output", "json"], &["--sessions", "10"], &token);
    let deadline = Instant::now() + Duration::from_secs(7);
    let first = loop {
        let r = m.record();
        if u(&r["sessions_up"]) == 10 && r["sessions_per_target"].get("unknown").is_none() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "not all up before the token expired: {r:#}"
        );
    };
    let held = u(&first["sessions_per_target"]["gw-a"]);
    assert!(held > 0, "the balancer put nothing on gw-a: {first:#}");
    // Once the token has expired, gw-a closes its server: its sessions see a transport close
    // and reconnect, and gw-b's namespace middleware refuses them (CONNECT_ERROR).
    while std::time::SystemTime::now() < exp + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
    }
    a.terminate();
    let (mut lost_refused, mut reconnects, mut failed, mut replaced) = (0, 0, 0, 0);
    let mut last = first;
    let deadline = Instant::now() + Duration::from_secs(15);
    while lost_refused < held {
        assert!(Instant::now() < deadline, "never lost: {last:#}");
        last = m.record();
        eprintln!("{last}");
        lost_refused += u(&last["lost_by_cause"]["connect_error"]);
        reconnects += u(&last["reconnects"]);
        failed += u(&last["failed_attempts"]);
        replaced += u(&last["replaced"]);
    }
    // Two more intervals: nothing tries them again but the replacement, refused too.
    for _ in 0..2 {
        last = m.record();
        reconnects += u(&last["reconnects"]);
        failed += u(&last["failed_attempts"]);
        replaced += u(&last["replaced"]);
        assert_eq!(u(&last["lost"]), 0, "{last:#}");
    }
    assert_eq!(lost_refused, held);
    assert_eq!(u(&last["drops_by_cause"]["transport_close"]), 0);
    assert_eq!(reconnects, 0, "refused sessions are not reconnects");
    // One refused attempt each ends the trying (the transport-level failures before it, if
    // the balancer sent one to the stopping gw-a, are retried).
    assert!(
        failed >= held,
        "{failed} failed attempts for {held} sessions"
    );
    assert_eq!(
        replaced, 0,
        "a replacement with the expired token is refused too"
    );
    assert_eq!(u(&last["sessions_up"]), 10 - held, "{last:#}");
    assert_eq!(u(&last["sessions_per_target"]["gw-b"]), 10 - held);
    m.terminate();
    let (code, _, err) = m.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn emf_lines_carry_the_configured_namespace_and_duration_ends_the_run() {
    let (a, b) = pair();
    let proxy = SlotProxy::start(&[&a, &b]);
    let (_d, cfg) = config(&proxy.url);
    let started = Instant::now();
    let m = Monitor::start(
        &cfg,
        &[],
        &["--sessions", "4", "--emit", "emf", "--duration", "3s"],
    );
    let (code, lines, err) = m.finish();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!((3..=5).contains(&lines.len()), "{lines:#?}");
    for l in &lines {
        let d = &l["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "BoSar/Test");
        assert_eq!(d["Dimensions"][0][0], "Service");
        assert_eq!(l["Service"], "chat-api");
        assert!(l["SessionsUp"].is_number(), "{l}");
    }
    assert_eq!(lines[lines.len() - 2]["SessionsUp"], 4.0, "{lines:#?}");
}

/// A real Prometheus on a free loopback port scraping `target` every second.
struct Prometheus {
    port: u16,
    _peer: support::Peer,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let bin = support::peers::which("prometheus")
            .unwrap_or_else(|| panic!("prometheus not found on PATH: run `bash scripts/setup.sh` (apt-get install prometheus)"));
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: bosar-monitor\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = support::free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let peer = support::Peer {
            child,
            name: "prometheus".into(),
        };
        support::wait_listening(port, "prometheus", 20);
        Prometheus {
            port,
            _peer: peer,
            _dir: dir,
        }
    }

    /// The value of an instant query's first sample, if any.
    fn query(&self, q: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={q}");
        let (status, body) = support::http(self.port, "GET", &path, "");
        // 503 while it starts up.
        if status == 503 {
            return None;
        }
        assert_eq!(status, 200, "{body}");
        let json = &body[body.find('{')?..=body.rfind('}')?];
        let v: Value = serde_json::from_str(json).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

#[test]
fn prometheus_scrapes_the_sessions_held_and_promtool_accepts_the_exposition() {
    let (a, b) = pair();
    let proxy = SlotProxy::start(&[&a, &b]);
    let (_d, cfg) = config(&proxy.url);
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let m = Monitor::start(&cfg, &[], &["--sessions", "4", "--prometheus", &addr]);
    let prom = Prometheus::start(&addr);
    // Through Prometheus's HTTP API: the sessions the monitor holds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if prom.query("bosar_monitor_sessions_up") == Some(4.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw 4 sessions up"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(prom.query("sum(bosar_monitor_target_sessions)"), Some(4.0));
    assert_eq!(
        prom.query("bosar_monitor_drops_total{cause=\"transport_close\"}"),
        Some(0.0)
    );
    // Asked for OpenMetrics (as Prometheus asks): that format, ending with `# EOF`.
    let open_metrics = {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    assert!(
        open_metrics.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{open_metrics}"
    );
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    assert!(open_metrics.contains("# UNIT bosar_monitor_reconnect_seconds seconds"));
    // The classic text format (no Accept), through promtool's linter.
    let (status, text) = support::http(port, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(text.contains("bosar_monitor_sessions_up 4\n"), "{text}");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = support::http(port, "GET", "/nope", "");
    assert_eq!(status, 404);
    m.terminate();
    let (code, _, err) = m.finish();
    assert_eq!(code, 0, "{err}");
}
