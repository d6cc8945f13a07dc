//! `[gateway] recovery` against the real gateway (tests/gateway, socket.io 4.8 with
//! connection state recovery on or off, the in-memory adapter) behind the ALB-shaped sticky
//! HAProxy, each verdict compared with what the official socket.io-client does against the
//! same gateways in the same test: recovered on the same task, a fresh session on another.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::peers::{node, Gateway, GatewayOpts, Haproxy};
use support::Run;

const SECRET: &str = "verify-test-secret";
const TOKEN_ENV: &str = "BOSAR_RECOVERY_TEST_TOKEN";

fn config(url: &str, recovery: bool) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(url, TOKEN_ENV, &format!("recovery = {recovery}"))
}

fn gateway(id: &str, recovery: bool) -> Gateway {
    Gateway::start(&GatewayOpts {
        instance_id: Some(id.into()),
        env: if recovery {
            vec![("GATEWAY_RECOVERY".into(), "on".into())]
        } else {
            Vec::new()
        },
        ..GatewayOpts::default()
    })
}

fn verify(cfg: &Path) -> (Run, Value) {
    support::verify_json(cfg, TOKEN_ENV, SECRET, "recovery-test")
}

/// The official socket.io-client at `url`: its JSON line.
fn official(url: &str) -> Value {
    let dir = support::repo().join("tests/gateway");
    let out = Command::new(node())
        .arg(dir.join("recovery-check.mjs"))
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("URL", url)
        .env("TOKEN", support::signed_token(SECRET, "official"))
        .output()
        .expect("node recovery-check.mjs");
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("{e}: {line}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// Recovery on, in-memory adapter: recovered on the same task, fresh on the other; the
/// official client agrees on both (straight to one task; through the balancer without a
/// cookie jar, its reconnect lands on the other task).
#[test]
fn recovery_works_on_the_same_task_only_as_the_official_client_finds() {
    let a = gateway("gw-a", true);
    let b = gateway("gw-b", true);
    let proxy = Haproxy::start("sticky", [&a, &b]);
    let (_d, cfg) = config(&proxy.url, true);
    let (out, report) = verify(&cfg);
    let (status, msg) = support::check_of(&report, "recovery");
    assert_eq!(status, "warn", "{msg}\n{}", out.all());
    assert!(msg.contains("recovered on the same task only"), "{msg}");
    assert!(msg.contains("not recovered (a fresh session)"), "{msg}");
    assert_eq!(out.code, 0, "{}", out.all());

    let same = official(&a.url);
    assert_eq!(same["recovered"], true, "{same}");
    let across = official(&proxy.url);
    assert_ne!(
        across["first"], across["then"],
        "the reconnect stayed on one task: {across}"
    );
    assert_eq!(across["recovered"], false, "{across}");
}

/// recovery = true on a gateway without it fails, naming what to turn on; recovery = false
/// passes there and fails on a gateway that enables it; the official client agrees.
#[test]
fn recovery_off_and_on_against_what_the_config_expects() {
    let off = gateway("gw-off", false);
    let on = gateway("gw-on", true);
    let (_d, cfg) = config(&off.url, true);
    let (out, report) = verify(&cfg);
    let (status, msg) = support::check_of(&report, "recovery");
    assert_eq!(status, "fail", "{msg}");
    assert!(msg.contains("no pid in the CONNECT answer"), "{msg}");
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(official(&off.url)["recovered"], false);

    let (_d, cfg) = config(&off.url, false);
    let (out, report) = verify(&cfg);
    assert_eq!(
        support::check_of(&report, "recovery").0,
        "pass",
        "{}",
        out.all()
    );
    assert_eq!(out.code, 0, "{}", out.all());

    let (_d, cfg) = config(&on.url, false);
    let (_out, report) = verify(&cfg);
    let (status, msg) = support::check_of(&report, "recovery");
    assert_eq!(status, "fail", "{msg}");
    assert!(msg.contains("recovery = false"), "{msg}");
    // One target, recovery on: recovered on it, the other task not tried.
    let (_d, cfg) = config(&on.url, true);
    let (_out, report) = verify(&cfg);
    let (status, msg) = support::check_of(&report, "recovery");
    assert_eq!(status, "pass", "{msg}");
    assert!(
        msg.ends_with(
            "recovered on the same task; another task was not tried (one target reached)"
        ),
        "{msg}"
    );
    assert_eq!(official(&on.url)["recovered"], true);
}
