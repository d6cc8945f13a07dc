//! `[gateway] origins` against the real gateway (tests/gateway) behind the ALB-shaped sticky
//! HAProxy, configured with CORS credentials on (every Origin answered exactly, with
//! credentials) and off (`*` without credentials): the `cors` check passes, warns or fails as a
//! browser on each origin would fare.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, Haproxy};
use support::Run;

const SECRET: &str = "verify-test-secret";
const TOKEN_ENV: &str = "BOSAR_CORS_TEST_TOKEN";

fn config(url: &str, origins: &str) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(url, TOKEN_ENV, &format!("origins = {origins}"))
}

fn gateway(cors: &str) -> Gateway {
    Gateway::start(&GatewayOpts {
        env: vec![("GATEWAY_CORS".into(), cors.into())],
        ..GatewayOpts::default()
    })
}

fn verify(cfg: &Path) -> (Run, Value) {
    support::verify_json(cfg, TOKEN_ENV, SECRET, "cors-test")
}

fn cors(report: &Value) -> (String, String) {
    let (status, msg) = support::check_of(report, "cors");
    eprintln!("cors: {status} {msg}");
    (status, msg)
}

#[test]
fn credentials_on_a_same_site_origin_passes_and_another_site_warns() {
    let g = gateway("credentials");
    let proxy = Haproxy::start("sticky", [&g, &g]);
    // Same site as the gateway (127.0.0.1): nothing to warn about.
    let (_dir, cfg) = config(&proxy.url, r#"["http://127.0.0.1:5173"]"#);
    let (out, report) = verify(&cfg);
    let (status, msg) = cors(&report);
    assert_eq!(status, "pass", "{msg}\n{}", out.all());
    assert!(
        msg.contains("http://127.0.0.1:5173: exact Access-Control-Allow-Origin and credentials"),
        "{msg}"
    );
    assert_eq!(out.code, 0, "{}", out.all());
    // Another site: the cookie is third-party there.
    let (_dir, cfg) = config(
        &proxy.url,
        r#"["http://127.0.0.1:5173", "https://app.bosar.click"]"#,
    );
    let (_, report) = verify(&cfg);
    let (status, msg) = cors(&report);
    assert_eq!(status, "warn", "{msg}");
    assert!(
        msg.contains("https://app.bosar.click: works, but bosar.click and the gateway's 127.0.0.1 are different sites"),
        "{msg}"
    );
}

#[test]
fn a_wildcard_without_credentials_fails() {
    let g = gateway("wildcard");
    let proxy = Haproxy::start("sticky", [&g, &g]);
    let (_dir, cfg) = config(&proxy.url, r#"["http://127.0.0.1:5173"]"#);
    let (out, report) = verify(&cfg);
    let (status, msg) = cors(&report);
    assert_eq!(status, "fail", "{msg}");
    assert!(
        msg.contains("the polling handshake, the CONNECT POST and the poll: Access-Control-Allow-Origin is *, which browsers refuse with credentials"),
        "{msg}"
    );
    assert!(
        msg.contains("Access-Control-Allow-Credentials is absent, not true"),
        "{msg}"
    );
    assert_eq!(out.code, 1);
}
