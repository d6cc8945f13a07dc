//! `verify --connections N --reconnect` judged against the official client: the probe and N
//! socket.io-client 4.8 sessions with their default reconnection (tests/gateway/
//! reconnect-clients.mjs) run side by side through the ALB-shaped HAProxy against the same
//! real NestJS replicas, which are then stopped. What each replica held at that moment is the
//! ground truth; the probe's counts (reconnected, lost and why) must be what the official
//! clients ended with, group by group.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::peers::{node, Gateway, GatewayOpts, SlotProxy};

const TOKEN_ENV: &str = "BOSAR_CLIENTS_TEST_TOKEN";
const SECRET: &str = "verify-test-secret";
/// Sessions on each side (the probe's and the official clients').
const N: u64 = 24;

fn config(url: &str) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(url, TOKEN_ENV, "")
}

fn gateway(id: &str, env: &[(&str, &str)]) -> Gateway {
    Gateway::start(&GatewayOpts {
        instance_id: Some(id.into()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..GatewayOpts::default()
    })
}

/// The probe, running; its JSON report at the end.
struct Probe {
    child: Child,
    started: Instant,
}

impl Probe {
    fn start(cfg: &Path, extra: &[&str]) -> Probe {
        let child = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CI", "true")
            .env(TOKEN_ENV, support::signed_token(SECRET, "clients-test"))
            .arg("--config")
            .arg(cfg)
            .args([
                "--output",
                "json",
                "verify",
                "--connections",
                &N.to_string(),
            ])
            // Every session starts at once: the open phase's budget is N / 100 per second, which
            // sessions waiting for a handshake slot can miss on a loaded machine.
            .args(["--concurrency", &N.to_string(), "--reconnect"])
            .args(["--reconnect-delay", "200ms..1s"])
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

    fn finish(mut self) -> (i32, Value, String) {
        let mut out = String::new();
        let mut stderr = self.child.stderr.take().unwrap();
        let t = std::thread::spawn(move || {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
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

/// N official socket.io-client sessions with default reconnection (reconnect-clients.mjs).
struct Official {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Official {
    fn start(url: &str) -> Official {
        let dir = support::repo().join("tests/gateway");
        let mut child = Command::new(node())
            .arg(dir.join("reconnect-clients.mjs"))
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("URL", url)
            .env("N", N.to_string())
            .env("JWT_SECRET", SECRET)
            // The probe's --reconnect-delay 200ms..1s; randomization stays 0.5 on both.
            .env("RECONNECT_DELAY_MS", "200")
            .env("RECONNECT_DELAY_MAX_MS", "1000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node reconnect-clients.mjs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Official {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Waits for `ready`: every session connected with its first heartbeat.
    fn ready(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the official clients did not get ready");
        let json = line.strip_prefix("ready ").expect(&line);
        serde_json::from_str(json).unwrap()
    }

    /// Ends the hold; what the clients ended with.
    fn end(mut self) -> Value {
        let mut stdin = self.stdin.take().unwrap();
        let _ = stdin.write_all(b"end\n");
        drop(stdin);
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("no report from the official clients");
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

impl Drop for Official {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connections(g: &Gateway) -> u64 {
    g.stats()["connections"].as_u64().unwrap()
}

/// Whether the replicas come to hold `want` sessions between them within 30 s.
fn all_open(gws: &[&Gateway], want: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if gws.iter().map(|g| connections(g)).sum::<u64>() == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn wait_all_open(gws: &[&Gateway], want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sum: u64 = gws.iter().map(|g| connections(g)).sum();
        if sum == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {sum} of {want} sessions open"
        );
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

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `{cause: count}` of a `[{cause, count}]` list.
fn by_cause(list: &Value) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["cause"].as_str().unwrap().to_string(), u(&c["count"])))
        .collect();
    v.sort();
    v
}

/// The probe's dropped sessions that went from `from` to `to`.
fn moved(d: &Value, from: &str, to: &str) -> u64 {
    d["moves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == from && m["to"] == to)
        .map(|m| u(&m["sessions"]))
        .sum()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["probe"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[test]
fn told_to_leave_is_lost_and_a_closed_server_comes_back_as_with_the_official_client() {
    // gw-a says goodbye with disconnectSockets() on SIGTERM, gw-b closes the server, gw-c
    // stays.
    let mut ga = gateway("gw-a", &[("GATEWAY_ON_SIGTERM", "disconnect-sockets")]);
    let mut gb = gateway("gw-b", &[("GATEWAY_ON_SIGTERM", "close")]);
    let gc = gateway("gw-c", &[]);
    let proxy = SlotProxy::start(&[&ga, &gb, &gc]);
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(&cfg, &["--hold", "9s"]);
    let official = Official::start(&proxy.url);
    let ready = official.ready();
    wait_all_open(&[&ga, &gb, &gc], 2 * N);
    let (held_a, held_b) = (connections(&ga), connections(&gb));
    let official_a = ready["by_instance"]["gw-a"].as_u64().unwrap_or(0);
    let official_b = ready["by_instance"]["gw-b"].as_u64().unwrap_or(0);
    assert!(held_a > official_a && held_b > official_b, "{ready}");
    assert!(official_a > 0 && official_b > 0, "{ready}");
    let (probe_a, probe_b) = (held_a - official_a, held_b - official_b);
    let c_before = u(&gc.stats()["totalConnections"]);
    ga.terminate();
    gb.terminate();
    wait_exited(&mut ga);
    wait_exited(&mut gb);
    // socket.io-client's first attempt comes 100-300 ms after the drop; gw-c answers at once.
    std::thread::sleep(Duration::from_secs(3));
    let ended = official.end();
    let (code, report, stderr) = probe.finish();
    eprintln!(
        "official: {ended:#}\nprobe: {:#}",
        report["probe"]["disruption"]
    );

    // The official clients: gw-a's never came back (told to leave), gw-b's all did.
    assert_eq!(u(&ended["opened"]), N, "{ended:#}");
    let fa = &ended["by_first_instance"]["gw-a"];
    let fb = &ended["by_first_instance"]["gw-b"];
    assert_eq!((u(&fa["lost"]), u(&fa["reconnected"])), (official_a, 0));
    assert_eq!((u(&fb["lost"]), u(&fb["reconnected"])), (0, official_b));
    assert_eq!(u(&ended["lost_by"]["server_disconnect"]), official_a);
    assert_eq!(
        u(&ended["drop_reasons"]["io server disconnect"]),
        official_a
    );
    // gw-b's drops are transport closes (an early attempt may land on a stopping replica and
    // drop again): never a reason socket.io-client does not come back from.
    assert!(u(&ended["drop_reasons"]["transport close"]) >= official_b);
    assert_eq!(
        ended["drop_reasons"].as_object().unwrap().len(),
        2,
        "{ended:#}"
    );

    // The probe ended with the same: its gw-a sessions lost, told to leave; gw-b's back.
    assert_eq!(code, 1, "lost sessions fail at --max-lost 0: {stderr}");
    let d = &report["probe"]["disruption"];
    assert_eq!(d["reconnect_like"], "browser");
    assert_eq!(u(&d["dropped"]["sessions"]), probe_a + probe_b, "{d:#}");
    assert_eq!(u(&d["lost"]), probe_a, "{d:#}");
    assert_eq!(u(&d["reconnected"]), probe_b, "{d:#}");
    assert_eq!(
        by_cause(&d["lost_by_cause"]),
        [("server_disconnect".to_string(), probe_a)]
    );
    assert_eq!(moved(d, "gw-a", "(lost)"), probe_a, "{d:#}");
    assert_eq!(moved(d, "gw-b", "gw-c"), probe_b, "{d:#}");
    let drops = by_cause(&d["dropped"]["by_cause"]);
    assert!(
        drops.contains(&("server_disconnect".to_string(), probe_a)),
        "{drops:?}"
    );
    assert_eq!(
        drops
            .iter()
            .filter(|(c, _)| c != "server_disconnect")
            .map(|(_, n)| n)
            .sum::<u64>(),
        probe_b,
        "gw-b's drops are transport closes: {drops:?}"
    );
    // Early attempts may meet the stopped replica's slot (HAProxy answers 503 until its checks
    // fail); every success is one of gw-b's sessions.
    assert_eq!(
        u(&d["attempts"]["made"]) - u(&d["attempts"]["failed"]),
        probe_b,
        "{d:#}"
    );
    // Ground truth: gw-c took exactly gw-b's sessions, the probe's and the official ones, and
    // none of gw-a's (neither side came back after being told to leave).
    assert_eq!(
        u(&gc.stats()["totalConnections"]),
        c_before + probe_b + official_b
    );
    let c = check(&report, "disruption");
    assert_eq!(c["status"], "fail");
    let msg = c["message"].as_str().unwrap();
    eprintln!(
        "disruption: {msg}\nreconnect: {}",
        check(&report, "reconnect")["message"]
    );
    for part in [
        format!("{probe_a} told to leave by the server"),
        "socket.io-client does not reconnect, so these users stay offline until they reload the page".into(),
        "close the server on SIGTERM (io.close()) instead of calling disconnectSockets()".into(),
    ] {
        assert!(msg.contains(&part), "{part}\n{msg}");
    }
    // The sessions' errors name the cause too.
    let errors = report["probe"].to_string();
    assert!(
        errors.contains("the server told the client to leave; socket.io-client does not reconnect"),
        "{errors}"
    );
}

#[test]
fn refused_on_reconnect_is_lost_as_the_official_client_gives_up() {
    // gw-b is a new task whose secret does not match the tokens: it refuses every reconnect.
    let mut ga = gateway("gw-a", &[]);
    let gb = gateway("gw-b", &[("JWT_SECRET", "rotated-secret")]);
    let proxy = SlotProxy::start(&[&ga, &gb]);
    proxy.command("set weight gateways/task2 0; set server gateways/task2 state maint");
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(&cfg, &["--hold", "8s"]);
    let official = Official::start(&proxy.url);
    official.ready();
    if !all_open(&[&ga], 2 * N) {
        let (code, report, stderr) = probe.finish();
        panic!(
            "not all open: gw-a {}; probe exit {code}: {report:#}\n{stderr}",
            connections(&ga)
        );
    }
    // The new task registers; then the old one stops.
    proxy.command("set server gateways/task2 state ready; set weight gateways/task2 1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy
        .status()
        .iter()
        .any(|(s, st)| s == "task2" && st.starts_with("UP"))
    {
        assert!(Instant::now() < deadline, "{:?}", proxy.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    ga.terminate();
    wait_exited(&mut ga);
    std::thread::sleep(Duration::from_secs(3));
    let ended = official.end();
    let (code, report, stderr) = probe.finish();
    let d = &report["probe"]["disruption"];
    eprintln!("official: {ended:#}\nprobe: {d:#}");

    // Each side's sessions all dropped and were refused once, then gave up: the new task
    // refused exactly one CONNECT per session.
    assert_eq!(u(&gb.stats()["authRejected"]), 2 * N);
    assert_eq!(u(&ended["lost"]), N, "{ended:#}");
    assert_eq!(u(&ended["lost_by"]["connect_error"]), N, "{ended:#}");
    assert_eq!(u(&ended["reconnected"]), 0);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(u(&d["lost"]), N, "{d:#}");
    assert_eq!(u(&d["reconnected"]), 0, "{d:#}");
    assert_eq!(
        by_cause(&d["lost_by_cause"]),
        [("connect_error".to_string(), N)]
    );
    assert_eq!(u(&d["attempts"]["made"]), N, "one attempt each: {d:#}");
    assert_eq!(
        by_cause(&d["attempts"]["failed_by_cause"]),
        [("connect_error".to_string(), N)]
    );
    let msg = check(&report, "disruption")["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "{N} refused on reconnect (CONNECT_ERROR from the namespace): socket.io-client gives up"
        )),
        "{msg}"
    );
}

#[test]
fn reconnect_like_always_brings_back_the_sessions_told_to_leave() {
    // The app that calls connect() again after "io server disconnect": the same stop now
    // costs nothing, and the report says whose rules it counted by.
    let mut ga = gateway("gw-a", &[("GATEWAY_ON_SIGTERM", "disconnect-sockets")]);
    let gc = gateway("gw-c", &[]);
    let proxy = SlotProxy::start(&[&ga, &gc]);
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(&cfg, &["--hold", "7s", "--reconnect-like", "always"]);
    wait_all_open(&[&ga, &gc], N);
    let held_a = connections(&ga);
    assert!(held_a > 0, "gw-a holds none");
    let c_before = u(&gc.stats()["totalConnections"]);
    ga.terminate();
    wait_exited(&mut ga);
    let (code, report, stderr) = probe.finish();
    let d = &report["probe"]["disruption"];
    assert_eq!(code, 0, "{d:#}\n{stderr}");
    assert_eq!(d["reconnect_like"], "always");
    assert_eq!(u(&d["lost"]), 0, "{d:#}");
    assert_eq!(u(&d["reconnected"]), held_a, "{d:#}");
    // Told to leave once each; a reconnect may land on gw-a again in the 500 ms before it
    // closes, and drop again with the transport.
    let drops = by_cause(&d["dropped"]["by_cause"]);
    assert!(
        drops.contains(&("server_disconnect".to_string(), held_a)),
        "{drops:?}"
    );
    assert_eq!(u(&d["dropped"]["sessions"]), held_a, "{d:#}");
    assert_eq!(moved(d, "gw-a", "gw-c"), held_a, "{d:#}");
    assert_eq!(u(&gc.stats()["totalConnections"]), c_before + held_a);
}

/// Connection state recovery on, one task, every connection cut at the balancer while the
/// task stays up (a network blip): every reconnect resumes its session, for the official
/// clients (`socket.recovered`), for the probe (`recovered`), and in the gateway's own count.
#[test]
fn recovered_reconnects_are_counted_as_the_official_client_counts_them() {
    let g = gateway("gw-r", &[("GATEWAY_RECOVERY", "on")]);
    let proxy = SlotProxy::start(&[&g]);
    let (_dir, cfg) = config(&proxy.url);
    let probe = Probe::start(&cfg, &["--hold", "8s"]);
    let official = Official::start(&proxy.url);
    official.ready();
    wait_all_open(&[&g], 2 * N);
    // A tick (the event with an offset) follows each heartbeat: every session has one.
    std::thread::sleep(Duration::from_millis(1500));
    proxy.command("shutdown sessions server gateways/task1");
    std::thread::sleep(Duration::from_secs(3));
    let ended = official.end();
    let (code, report, stderr) = probe.finish();
    let d = &report["probe"]["disruption"];
    eprintln!("official: {ended:#}\nprobe: {d:#}");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(u(&ended["reconnected"]), N, "{ended:#}");
    assert_eq!(u(&ended["recovered"]), N, "{ended:#}");
    assert_eq!(u(&d["reconnected"]), N, "{d:#}");
    assert_eq!(d["recovery_offered"], true, "{d:#}");
    assert_eq!(u(&d["recovered"]), N, "{d:#}");
    assert_eq!(u(&g.stats()["recovered"]), 2 * N, "the gateway's own count");
    let msg = check(&report, "reconnect")["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "{N} of {N} reconnect(s) resumed their session (connection state recovery), 0 started fresh"
        )),
        "{msg}"
    );
}
