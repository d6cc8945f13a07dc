//! `[gateway] eio3` against the real gateway (tests/gateway, socket.io 4.8 with `allowEIO3` on
//! or off, auth on or off) behind the ALB-shaped sticky HAProxy, each verdict compared with
//! what the official socket.io-client 2.x (npm `socket.io-client@2`, tests/gateway/
//! v2-client-check.mjs) does against the same gateway in the same test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::peers::{node, Gateway, GatewayOpts, Haproxy};
use support::Run;

const SECRET: &str = "verify-test-secret";
const TOKEN_ENV: &str = "BOSAR_EIO3_TEST_TOKEN";

fn config(url: &str, eio3: bool) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(url, TOKEN_ENV, &format!("eio3 = {eio3}"))
}

fn gateway(env: &[(&str, &str)], auth: bool) -> Gateway {
    Gateway::start(&GatewayOpts {
        auth,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..GatewayOpts::default()
    })
}

fn verify(cfg: &Path) -> (Run, Value) {
    support::verify_json(cfg, TOKEN_ENV, SECRET, "eio3-test")
}

/// Status and message of the `eio3` check.
fn eio3(report: &Value) -> (String, String) {
    support::check_of(report, "eio3")
}

/// The official socket.io-client 2.x against `g` with `token`: its JSON line.
fn v2_client(g: &Gateway, token: &str) -> Value {
    let dir = support::repo().join("tests/gateway");
    let out = Command::new(node())
        .arg(dir.join("v2-client-check.mjs"))
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("URL", &g.url)
        .env("TOKEN", token)
        .output()
        .expect("node v2-client-check.mjs");
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("{e}: {line}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn good_token() -> String {
    support::signed_token(SECRET, "v2-client")
}

fn forged_token() -> String {
    support::signed_token("not-the-secret", "v2-client")
}

#[test]
fn a_gateway_with_allow_eio3_serves_v2_clients_as_the_official_client_sees() {
    let g = gateway(&[("ALLOW_EIO3", "on")], true);
    let proxy = Haproxy::start("sticky", [&g, &g]);
    // The official 2.x client connects (polling, upgrade, its own pings answered, heartbeat
    // acked) and is refused with a forged token.
    let ok = v2_client(&g, &good_token());
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["transport"], "websocket", "{ok}");
    assert_eq!(ok["pong"], true, "{ok}");
    let forged = v2_client(&g, &forged_token());
    assert_eq!(
        (&forged["ok"], &forged["refused"]),
        (&false.into(), &true.into()),
        "{forged}"
    );
    // eio3 = true: the check passes, and the whole verify with it.
    let (_dir, cfg) = config(&proxy.url, true);
    let (out, report) = verify(&cfg);
    let (status, msg) = eio3(&report);
    eprintln!("eio3: {status} {msg}");
    assert_eq!(status, "pass", "{msg}\n{}", out.all());
    assert!(
        msg.contains("/chat joined with the token in the query, upgraded to websocket"),
        "{msg}"
    );
    assert!(msg.contains("a forged token refused"), "{msg}");
    assert_eq!(out.code, 0, "{}", out.all());
    // The gateway counted the forged CONNECT as refused: the check's and the client's.
    assert!(g.stats()["authRejected"].as_u64().unwrap() >= 2);
    // eio3 = false on the same gateway: it accepts v3 clients, so the check fails.
    let (_dir, cfg) = config(&proxy.url, false);
    let (out, report) = verify(&cfg);
    let (status, msg) = eio3(&report);
    eprintln!("eio3: {status} {msg}");
    assert_eq!(status, "fail", "{msg}");
    assert!(msg.contains("allowEIO3 is on"), "{msg}");
    assert_eq!(out.code, 1);
}

#[test]
fn a_gateway_without_allow_eio3_refuses_v2_clients_as_the_official_client_sees() {
    let g = gateway(&[], true);
    let proxy = Haproxy::start("sticky", [&g, &g]);
    let refused = v2_client(&g, &good_token());
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(
        refused["refused"], false,
        "the handshake, not the namespace: {refused}"
    );
    let (_dir, cfg) = config(&proxy.url, true);
    let (out, report) = verify(&cfg);
    let (status, msg) = eio3(&report);
    eprintln!("eio3: {status} {msg}");
    assert_eq!(status, "fail", "{msg}");
    assert!(msg.contains("set allowEIO3: true"), "{msg}");
    assert_eq!(out.code, 1);
    let (_dir, cfg) = config(&proxy.url, false);
    let (out, report) = verify(&cfg);
    let (status, msg) = eio3(&report);
    eprintln!("eio3: {status} {msg}");
    assert_eq!(status, "pass", "{msg}");
    assert!(msg.contains("refuses Engine.IO v3"), "{msg}");
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn a_forged_token_accepted_on_the_v2_path_fails_as_the_official_client_gets_in() {
    // Auth off: any token joins. The official 2.x client with a forged token gets in, and the
    // check says auth is not enforced for these clients.
    let g = gateway(&[("ALLOW_EIO3", "on")], false);
    let proxy = Haproxy::start("sticky", [&g, &g]);
    let forged = v2_client(&g, &forged_token());
    assert_eq!(forged["ok"], true, "{forged}");
    let (_dir, cfg) = config(&proxy.url, true);
    let (out, report) = verify(&cfg);
    let (status, msg) = eio3(&report);
    eprintln!("eio3: {status} {msg}");
    assert_eq!(status, "fail", "{msg}");
    assert!(
        msg.contains("auth not enforced for socket.io 2.x clients: /chat accepted a forged token"),
        "{msg}"
    );
    assert_eq!(out.code, 1);
}
