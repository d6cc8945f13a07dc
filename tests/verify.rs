//! `verify` against the real peers: NestJS gateway replicas (node) behind HAProxy shaped like
//! the ALB (sticky, and round robin without stickiness), with short intervals so each run takes
//! about two seconds. Each broken setup must fail the check that names the cause.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::peers::{Gateway, GatewayOpts, Haproxy, TestCa};
use support::{run, Run};

const SECRET_ENV: &str = "BOSAR_VERIFY_TEST_SECRET";
const TOKEN_ENV: &str = "BOSAR_VERIFY_TEST_TOKEN";

/// A deploy.toml whose [gateway] matches the peers' settings (ping 2 s / 3 s, heartbeat 1 s).
fn config(url: &str, token_key: &str) -> (tempfile::TempDir, PathBuf) {
    support::write_config(&format!(
        r#"
[target_group]
name = "bosar-api-tg"
stickiness = "lb_cookie"
cookie_duration = "1d"
algorithm = "least_outstanding_requests"
deregistration_delay = "30s"

[gateway]
url = "{url}"
namespace = "/chat"
health_path = "/health/websocket"
{token_key}
ping_interval = "2s"
ping_timeout = "3s"
heartbeat_event = "heartbeat"
heartbeat_interval = "1s"
stickiness_rounds = 20
"#
    ))
}

fn secret_config(url: &str) -> (tempfile::TempDir, PathBuf) {
    config(url, &format!("jwt_secret_env = \"{SECRET_ENV}\""))
}

/// The binary with a clean environment: PATH, CI=true and the variables given.
fn verify(cfg: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    verify_with(cfg, env, args, &[])
}

/// `bosar-deploy --config CFG GLOBAL… verify VERB…`.
fn verify_with(cfg: &Path, env: &[(&str, &str)], args: &[&str], verb: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .stdin(Stdio::null())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .arg("verify")
        .args(verb);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let out = run(&mut cmd);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "verify took {:?}",
        started.elapsed()
    );
    out
}

fn secret_env() -> [(&'static str, &'static str); 1] {
    [(SECRET_ENV, "verify-test-secret")]
}

/// The `verify` payload of the JSON envelope (the envelope's command checked on the way).
fn json_of(out: &Run) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.all()));
    assert_eq!(doc["command"], "verify", "{doc:#}");
    assert_eq!(doc["exit_code"], out.code, "{doc:#}");
    doc["verify"].clone()
}

/// The status and message of check `name` in a JSON report.
fn check<'a>(report: &'a serde_json::Value, name: &str) -> (&'a str, &'a str) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"));
    (
        c["status"].as_str().unwrap(),
        c["message"].as_str().unwrap(),
    )
}

fn pair(opts: &GatewayOpts) -> (Gateway, Gateway) {
    let a = GatewayOpts {
        instance_id: Some("gw-a".into()),
        ..opts.clone()
    };
    let b = GatewayOpts {
        instance_id: Some("gw-b".into()),
        ..opts.clone()
    };
    (Gateway::start(&a), Gateway::start(&b))
}

#[test]
fn all_checks_pass_through_the_sticky_proxy() {
    let (g1, g2) = pair(&GatewayOpts::default());
    let proxy = Haproxy::start("sticky", [&g1, &g2]);
    let (dir, cfg) = secret_config(&proxy.url);
    let junit = dir.path().join("verify.xml");
    let junit_arg = junit.to_str().unwrap();
    let out = verify_with(
        &cfg,
        &secret_env(),
        &["--output", "json"],
        &["--junit", junit_arg, "--targets", "2"],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let report = json_of(&out);
    assert_eq!(report["url"], proxy.url.as_str());
    assert_eq!(report["result"], "succeeded", "{report:#}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "targets",
            "health",
            "handshake",
            "cookies",
            "stickiness",
            "auth",
            "upgrade",
            "heartbeat",
            "ping",
            "disconnect"
        ]
    );
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    assert!(check(&report, "stickiness")
        .1
        .contains("gw-a: stickiness holds"));
    assert!(check(&report, "cookies")
        .1
        .contains("AWSALBCORS set with SameSite=None; Secure"));

    let xml = std::fs::read_to_string(&junit).expect("junit written");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("JUnit XML: {e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    // The merged suite (10 checks), then one suite of 9 per target.
    assert_eq!(root.attribute("tests"), Some("28"), "{xml}");
    assert_eq!(root.attribute("failures"), Some("0"), "{xml}");
    let suite = root
        .children()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("name"), Some("verify"));
    let cases: Vec<&str> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(cases, names);

    // The gateways really got the heartbeat acks.
    let acks: u64 = [&g1, &g2]
        .iter()
        .map(|g| {
            let (_, body) = support::http(g.port, "GET", "/health/stats", "");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["heartbeatAcks"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(acks >= 1, "no heartbeat ack reached the gateways");

    // Minted token and secret never appear.
    let all = format!("{}{}{xml}", out.stdout, out.stderr);
    assert!(!all.contains("eyJ"), "a JWT leaked:\n{all}");
    assert!(!all.contains("verify-test-secret"), "the secret leaked");
}

#[test]
fn stickiness_fails_through_round_robin() {
    let (g1, g2) = pair(&GatewayOpts::default());
    let proxy = Haproxy::start("roundrobin", [&g1, &g2]);
    let (_d, cfg) = secret_config(&proxy.url);
    let out = verify(&cfg, &secret_env(), &["--output", "json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let report = json_of(&out);
    assert_eq!(report["result"], "failed");
    let (status, msg) = check(&report, "stickiness");
    assert_eq!(status, "fail");
    assert!(
        msg.contains("reached a target that did not know the session"),
        "{msg}"
    );
    assert_eq!(check(&report, "cookies").0, "fail");
    // Auth is tested over websocket-only sessions, which need no stickiness.
    assert_eq!(check(&report, "auth").0, "pass", "{report:#}");
}

#[test]
fn auth_fails_when_the_gateway_does_not_enforce_it() {
    let (g1, g2) = pair(&GatewayOpts {
        auth: false,
        ..GatewayOpts::default()
    });
    let proxy = Haproxy::start("sticky", [&g1, &g2]);
    let (_d, cfg) = secret_config(&proxy.url);
    let out = verify_with(
        &cfg,
        &secret_env(),
        &["--output", "json"],
        &["--targets", "2"],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    let report = json_of(&out);
    let (status, msg) = check(&report, "auth");
    assert_eq!(status, "fail");
    assert!(
        msg.starts_with("2 of 2 targets failed (gw-a, gw-b): auth not enforced"),
        "{msg}"
    );
    assert!(
        msg.contains("without a token and with a forged token"),
        "{msg}"
    );
    for other in ["health", "handshake", "stickiness", "heartbeat", "ping"] {
        assert_eq!(check(&report, other).0, "pass", "{other}: {report:#}");
    }
}

#[test]
fn handshake_fails_on_other_ping_settings() {
    let g = Gateway::start(&GatewayOpts {
        ping_interval_ms: 2500,
        ..GatewayOpts::default()
    });
    let (_d, cfg) = secret_config(&g.url);
    let out = verify(&cfg, &secret_env(), &["--output", "json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let report = json_of(&out);
    let (status, msg) = check(&report, "handshake");
    assert_eq!(status, "fail");
    assert!(
        msg.contains("pingInterval is 2500 ms, configured 2000 ms (gateway.ping_interval)"),
        "{msg}"
    );
    assert_eq!(check(&report, "ping").0, "pass", "{report:#}");
}

#[test]
fn heartbeat_fails_when_off() {
    let g = Gateway::start(&GatewayOpts {
        heartbeat: false,
        ..GatewayOpts::default()
    });
    let (_d, cfg) = secret_config(&g.url);
    let out = verify(&cfg, &secret_env(), &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" heartbeat "))
        .unwrap_or_else(|| panic!("{}", out.all()));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        line.contains("no \"heartbeat\" event within 2000 ms of joining /chat"),
        "{line}"
    );
    assert!(
        out.stdout.lines().any(|l| l.starts_with("PASS ping")),
        "{}",
        out.stdout
    );
}

/// `-vv`: a line per gateway request, without the token or any cookie value.
#[test]
fn very_verbose_shows_each_gateway_request_and_no_secret() {
    let g = Gateway::start(&GatewayOpts::default());
    let token = bosar_deploy::gateway::token::mint(&bosar_deploy::gateway::token::Secret::new(
        "verify-test-secret",
    ));
    let token = token.expose().to_string();
    let (_d, cfg) = config(&g.url, &format!("token_env = \"{TOKEN_ENV}\""));
    let out = verify(&cfg, &[(TOKEN_ENV, token.as_str())], &["-vv"]);
    assert_eq!(out.code, 0, "{}", out.all());
    for want in [
        "gateway: GET /health/websocket HTTP 200 in ",
        "gateway: GET /socket.io/?EIO=4&transport=polling",
        "gateway: POST /socket.io/?EIO=4&transport=polling&t=",
        "gateway: GET (websocket) /socket.io/?EIO=4&transport=websocket",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?}:\n{}",
            out.stderr
        );
    }
    assert!(!out.all().contains(&token), "the token was printed");
    assert!(!out.all().contains("AWSALB="), "a cookie value was printed");
}

#[test]
fn direct_to_one_replica_passes_with_the_stickiness_warning() {
    let g = Gateway::start(&GatewayOpts::default());
    let (_d, cfg) = secret_config(&g.url);
    let out = verify(&cfg, &secret_env(), &["--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let report = json_of(&out);
    assert_eq!(report["result"], "warned");
    let (status, msg) = check(&report, "stickiness");
    assert_eq!(status, "warn");
    assert!(
        msg.contains("only one target reached or stickiness not exercised"),
        "{msg}"
    );
    // Without AWS, --targets or [gateway] targets, how many targets there are is unknown.
    let (status, msg) = check(&report, "targets");
    assert_eq!(status, "warn");
    assert!(
        msg.contains("how many targets are healthy is unknown"),
        "{msg}"
    );
    assert_eq!(check(&report, "cookies").0, "warn");
    for name in [
        "health",
        "handshake",
        "auth",
        "upgrade",
        "heartbeat",
        "ping",
        "disconnect",
    ] {
        assert_eq!(check(&report, name).0, "pass", "{name}: {report:#}");
    }
}

#[test]
fn the_token_never_appears_in_any_output() {
    let (g1, g2) = pair(&GatewayOpts::default());
    let proxy = Haproxy::start("sticky", [&g1, &g2]);
    let token = bosar_deploy::gateway::token::mint(&bosar_deploy::gateway::token::Secret::new(
        "verify-test-secret",
    ));
    let token = token.expose().to_string();
    let (dir, cfg) = config(&proxy.url, &format!("token_env = \"{TOKEN_ENV}\""));
    let junit = dir.path().join("v.xml");
    let mut outputs = String::new();
    for args in [&["-v"][..], &["--output", "json"][..]] {
        let out = verify_with(
            &cfg,
            &[(TOKEN_ENV, token.as_str())],
            args,
            &["--junit", junit.to_str().unwrap()],
        );
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr.contains("token from gateway.token_env"),
            "{}",
            out.stderr
        );
        outputs.push_str(&out.all());
        outputs.push_str(&std::fs::read_to_string(&junit).unwrap());
    }
    assert!(outputs.contains("PASS auth"), "{outputs}");
    assert!(!outputs.contains(&token), "the token leaked:\n{outputs}");
    assert!(
        !outputs.contains(token.split('.').nth(2).unwrap()),
        "the signature leaked"
    );
}

#[test]
fn an_unset_token_variable_is_a_usage_error() {
    let (_d, cfg) = config(
        "http://127.0.0.1:9",
        &format!("token_env = \"{TOKEN_ENV}\""),
    );
    let out = verify(&cfg, &[], &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains(TOKEN_ENV), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

/// The polling path alone (what verify falls back to when the upgrade fails): pings answered
/// while a long poll is pending, heartbeats acked over POST, clean close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_only_session_answers_pings_and_acks_heartbeats() {
    use bosar_deploy::gateway::polling::{new_jar, Polling};
    use bosar_deploy::gateway::session::{NsReply, Session};
    use bosar_deploy::gateway::token::{mint, Secret};
    use std::time::{Duration, Instant};

    let g = Gateway::start(&GatewayOpts::default());
    let base = url::Url::parse(&g.url).unwrap();
    let http = Polling::new(&base, Some(new_jar()), Duration::from_secs(2)).unwrap();
    let (mut s, _) = Session::open_polling(http).await.unwrap();
    s.watch("/chat", "heartbeat");
    let token = mint(&Secret::new("verify-test-secret"));
    let auth = serde_json::json!({ "token": token.expose() });
    let reply = s.connect_namespace("/chat", Some(auth)).await.unwrap();
    assert!(matches!(reply, NsReply::Connected { .. }), "{reply:?}");
    let deadline = Instant::now() + Duration::from_millis(2600);
    while s.step(deadline).await.unwrap() {}
    assert!(s.events.len() >= 2, "heartbeats: {:?}", s.events);
    for e in &s.events {
        assert!(e.ack_id.is_some() && e.acked.is_ok(), "{e:?}");
        assert!(
            e.payload.as_ref().unwrap()["instanceId"].is_string(),
            "{e:?}"
        );
    }
    assert!(
        !s.pings.is_empty() && s.last_pong.is_some(),
        "pings: {:?}",
        s.pings
    );
    assert!(s.pong_errors.is_empty(), "{:?}", s.pong_errors);
    let how = s.disconnect(Some("/chat")).await.unwrap();
    assert!(how.contains("Session ID unknown"), "{how}");
    let (_, stats) = support::http(g.port, "GET", "/health/stats", "");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["heartbeatAcks"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["connections"], 0, "{stats}");
}

#[test]
fn https_through_the_sticky_proxy_verifies_tls_and_the_secure_cors_cookie() {
    let ca = TestCa::new();
    let (g1, g2) = pair(&GatewayOpts::default());
    let proxy = Haproxy::start_tls("sticky", [&g1, &g2], &ca.server_pem);
    assert!(proxy.url.starts_with("https://"));
    let (_d, cfg) = secret_config(&proxy.url);
    let ca_path = ca.ca.to_str().unwrap();

    // Trusting the test CA: every check passes over https and wss, and the AWSALBCORS rule
    // that only applies over https (SameSite=None; Secure) is checked for real.
    let env = [secret_env()[0], ("SSL_CERT_FILE", ca_path)];
    let out = verify_with(&cfg, &env, &["--output", "json"], &["--targets", "2"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let report = json_of(&out);
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    assert!(check(&report, "cookies")
        .1
        .contains("AWSALBCORS set with SameSite=None; Secure"));
    assert!(check(&report, "upgrade")
        .1
        .contains("upgraded to websocket"));

    // Without the CA the certificate is not trusted: the checks fail, nothing is skipped silently.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let env = [
        secret_env()[0],
        ("SSL_CERT_FILE", empty.path().to_str().unwrap()),
    ];
    let out = verify(&cfg, &env, &["--output", "json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let report = json_of(&out);
    let (status, message) = check(&report, "health");
    assert_eq!(status, "fail");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}
