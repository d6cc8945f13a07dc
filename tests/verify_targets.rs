//! `verify` judges every target (issue 23): two real gateway replicas behind the sticky HAProxy
//! (the ALB stand-in), one of them broken in each way the verdict matrix knows: `verify` fails
//! on every run, naming the broken replica; with both healthy it passes on every run and
//! reports 2 of 2 targets. Against moto, the healthy targets come from the target group: 3
//! healthy and 2 reachable fails, naming the missing one.
//!
//! The broken setups run side by side (one thread each, one shared healthy replica), so the
//! file's wall time is that of one setup's runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, Haproxy};
use support::{bosar, run, write_config, Moto, Run};

const SECRET_ENV: &str = "BOSAR_TARGETS_TEST_SECRET";
const SECRET: &str = "verify-test-secret";
/// Runs per setup: a balancer's pick cannot make one pass by luck.
const RUNS: usize = 5;

/// A deploy.toml matching the peers (ping 2 s / 3 s, heartbeat 1 s), without `[aws]`.
fn config(url: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    write_config(&format!(
        r#"
[target_group]
name = "bosar-api-tg"

[gateway]
url = "{url}"
jwt_secret_env = "{SECRET_ENV}"
ping_interval = "2s"
ping_timeout = "3s"
heartbeat_interval = "1s"
stickiness_rounds = 5
{extra}
"#
    ))
}

/// `bosar-deploy --output json --config CFG verify ARGS…` with a clean environment (no AWS).
fn verify(cfg: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .env(SECRET_ENV, SECRET)
        .stdin(Stdio::null())
        .args(["--output", "json", "--config"])
        .arg(cfg)
        .arg("verify")
        .args(args);
    run(&mut cmd)
}

fn payload(out: &Run) -> Value {
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.all()));
    doc["verify"].clone()
}

fn check<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str) {
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

/// The result of target `label` in the per-target table.
fn row<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["targets"]["table"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == label)
        .unwrap_or_else(|| panic!("no target {label} in {:#}", report["targets"]))
}

fn replica(id: &str, opts: GatewayOpts) -> Gateway {
    Gateway::start(&GatewayOpts {
        instance_id: Some(id.into()),
        ..opts
    })
}

/// One broken kind: how gw-b is started, the check it must fail, and the words of why.
struct Broken {
    what: &'static str,
    opts: GatewayOpts,
    check: &'static str,
    why: &'static str,
}

fn broken_kinds() -> Vec<Broken> {
    let ok = GatewayOpts::default();
    vec![
        Broken {
            what: "another JWT secret",
            opts: GatewayOpts {
                jwt_secret: "another-secret-of-this-task".into(),
                ..ok.clone()
            },
            check: "auth",
            why: "refused the configured token: CONNECT_ERROR \"unauthorized (bad signature)\"",
        },
        Broken {
            what: "heartbeat off",
            opts: GatewayOpts {
                heartbeat: false,
                ..ok.clone()
            },
            check: "heartbeat",
            why: "no \"heartbeat\" event within 2000 ms of joining /chat",
        },
        Broken {
            what: "another ping interval",
            opts: GatewayOpts {
                ping_interval_ms: 2500,
                ..ok.clone()
            },
            check: "handshake",
            why: "pingInterval is 2500 ms, configured 2000 ms",
        },
        Broken {
            what: "health 503",
            opts: GatewayOpts {
                health_status: 503,
                ..ok
            },
            check: "health",
            why: "answered HTTP 503",
        },
    ]
}

#[test]
fn a_fleet_with_one_broken_replica_never_passes_and_the_broken_one_is_named() {
    let healthy = replica("gw-a", GatewayOpts::default());
    std::thread::scope(|scope| {
        for kind in broken_kinds() {
            let healthy = &healthy;
            scope.spawn(move || {
                let sick = replica("gw-b", kind.opts.clone());
                // The target group's health check is not the gateway's health path here, so
                // the 503 replica still gets traffic (as it would behind such an ALB).
                let proxy = Haproxy::start_checking("sticky", [healthy, &sick], "/health/stats");
                let (_d, cfg) = config(&proxy.url, "targets = 2");
                for i in 0..RUNS {
                    let out = verify(&cfg, &[]);
                    let what = format!("{} (run {})", kind.what, i + 1);
                    assert_eq!(out.code, 1, "{what}: {}", out.all());
                    let report = payload(&out);
                    assert_eq!(check(&report, "targets").0, "pass", "{what}: {report:#}");
                    let (status, msg) = check(&report, kind.check);
                    assert_eq!(status, "fail", "{what}: {msg}");
                    assert!(
                        msg.starts_with("1 of 2 targets failed (gw-b): ") && msg.contains(kind.why),
                        "{what}: {msg}"
                    );
                    assert!(
                        msg.ends_with("1 of 2 targets passed (gw-a)"),
                        "{what}: {msg}"
                    );
                    assert_eq!(row(&report, "gw-b")["result"], "failed", "{what}");
                    assert_ne!(
                        row(&report, "gw-a")["result"],
                        "failed",
                        "{what}: {report:#}"
                    );
                }
            });
        }
    });
}

#[test]
fn a_healthy_fleet_passes_every_run_with_2_of_2_targets_and_a_table_per_target() {
    let a = replica("gw-a", GatewayOpts::default());
    let b = replica("gw-b", GatewayOpts::default());
    let proxy = Haproxy::start("sticky", [&a, &b]);
    let (dir, cfg) = config(&proxy.url, "");
    let junit = dir.path().join("v.xml");
    for i in 0..RUNS {
        let out = verify(
            &cfg,
            &["--targets", "2", "--junit", junit.to_str().unwrap()],
        );
        assert_eq!(out.code, 0, "run {}: {}", i + 1, out.all());
        let report = payload(&out);
        assert_eq!(report["result"], "succeeded", "{report:#}");
        let (status, msg) = check(&report, "targets");
        assert_eq!(status, "pass");
        assert!(
            msg.starts_with("reached all 2 healthy targets (") && msg.contains("(--targets)"),
            "{msg}"
        );
        for name in bosar_deploy::gateway::verify::NAMES {
            let (status, msg) = check(&report, name);
            assert_eq!(status, "pass", "{name}: {msg}");
            assert!(msg.starts_with("2 of 2 targets passed; "), "{name}: {msg}");
        }
        assert_eq!(report["targets"]["checked"], 2);
        assert_eq!(report["targets"]["expected"], 2);
        for t in ["gw-a", "gw-b"] {
            assert_eq!(row(&report, t)["result"], "succeeded");
        }
    }
    // JUnit: the merged suite, then one suite per target.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let mut suites: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    suites[1..].sort();
    assert_eq!(suites, ["verify", "verify gw-a", "verify gw-b"], "{xml}");
    assert!(!xml.contains(SECRET) && !xml.contains("AWSALB="), "{xml}");
}

/// Text output of a mixed fleet, and one healthy target saying it is the only one.
#[test]
fn text_shows_the_mixed_fleet_per_target_and_a_single_target_says_so() {
    let a = replica("gw-a", GatewayOpts::default());
    let b = replica(
        "gw-b",
        GatewayOpts {
            jwt_secret: "another-secret-of-this-task".into(),
            ..GatewayOpts::default()
        },
    );
    let proxy = Haproxy::start("sticky", [&a, &b]);
    let (_d, cfg) = config(&proxy.url, "targets = 2");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .env(SECRET_ENV, SECRET)
        .arg("--config")
        .arg(&cfg)
        .arg("verify");
    let out = run(&mut cmd);
    assert_eq!(out.code, 1, "{}", out.all());
    let line = |start: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?}:\n{}", out.stdout))
    };
    assert!(line("FAIL auth").contains("1 of 2 targets failed (gw-b)"));
    assert!(line("PASS targets").contains("reached all 2 healthy targets"));
    assert!(line("per target").contains("targets 2 checked / 2 healthy"));
    assert!(
        line("verify ").ends_with("targets 2 checked / 2 healthy"),
        "{}",
        out.stdout
    );
    assert!(
        line("  FAIL gw-b").contains("failed: auth, heartbeat"),
        "{}",
        out.stdout
    );
    assert!(line("  PASS gw-a").contains("9 passed"), "{}", out.stdout);

    // The load probe on the same fleet names the target that refused its sessions: every
    // failure is on gw-b (its cookie looked up on the health endpoint), none on gw-a.
    let out = verify(&cfg, &["--connections", "16", "--hold", "1s"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let probe = &doc["probe"];
    let failed = probe["open_failed"].as_u64().unwrap();
    assert!(failed > 0, "{probe:#}");
    assert_eq!(
        probe["open_failed_by_target"],
        serde_json::json!([{"instance": "gw-b", "sessions": failed}]),
        "{probe:#}"
    );
    let open = probe["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "open")
        .unwrap();
    assert_eq!(open["status"], "fail");
    assert!(
        open["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("; failed per target: gw-b {failed} of {failed}")),
        "{open:#}"
    );

    // --targets is range-checked before anything is called.
    let out = verify(&cfg, &["--targets", "0"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.all().contains("--targets"), "{}", out.all());

    // Straight to gw-a: one target, and every check says it was the only one.
    let (_d, cfg) = config(&a.url, "targets = 1");
    let out = verify(&cfg, &[]);
    let report = payload(&out);
    let (status, msg) = check(&report, "targets");
    assert_eq!(status, "pass", "{msg}");
    assert!(
        msg.starts_with("reached the only healthy target (gw-a)"),
        "{msg}"
    );
    assert!(
        check(&report, "auth")
            .1
            .starts_with("1 of 1 target (the only one, gw-a): "),
        "{report:#}"
    );
}

/// With AWS configured, the target group says how many targets are healthy (moto reports
/// registered targets healthy): 3 healthy, 2 replicas behind the proxy, the missing one named;
/// the same 2 pass once the group lists only them; and `full`'s verify step judges every
/// target too (one moto for the three).
#[test]
fn the_target_group_counts_the_targets_and_full_judges_every_one() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&support::fast_sandbox_config());
    moto.seed(
        &cfg,
        &["--targets", "10.0.1.10:3000,10.0.2.10:3000,10.0.3.10:3000"],
    );
    let opts = GatewayOpts {
        jwt_secret: SECRET.into(),
        ..GatewayOpts::default()
    };
    let a = replica("10.0.1.10", opts.clone());
    let b = replica("10.0.2.10", opts);
    let proxy = Haproxy::start("sticky", [&a, &b]);
    let bosar_at = |app: &str, url: &str, verb: &[&str]| {
        let mut cmd = bosar(&moto.endpoint, app);
        cmd.env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
            .args(["--output", "json", "--config"])
            .arg(&cfg)
            .args(verb)
            .args(["--url", url]);
        run(&mut cmd)
    };
    moto.start_recording();
    let out = bosar_at("targets-3", &proxy.url, &["verify"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let report = payload(&out);
    let (status, msg) = check(&report, "targets");
    assert_eq!(status, "fail", "{msg}");
    assert!(
        msg.starts_with("reached 2 of 3 healthy targets (")
            && msg.contains("not reached: 10.0.3.10:3000"),
        "{msg}"
    );
    assert_eq!(report["targets"]["unreached_ids"][0], "10.0.3.10:3000");
    assert!(check(&report, "auth")
        .1
        .contains("1 of 3 targets not reached"));
    let ops: Vec<String> = moto
        .recorded_calls("targets-3")
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert!(ops.iter().any(|o| o == "DescribeTargetHealth"), "{ops:?}");
    let read_only = |o: &String| ["Describe", "List", "Get"].iter().any(|p| o.starts_with(p));
    assert!(
        ops.iter().all(read_only),
        "verify changed something: {ops:?}"
    );

    // A target group that cannot be read fails the targets check: the count is not guessed.
    let (_d2, nope) = write_config(&support::fast_sandbox_config().replacen(
        "name = \"bosar-api-tg\"",
        "name = \"bosar-api-nope\"",
        1,
    ));
    let mut cmd = bosar(&moto.endpoint, "targets-nope");
    cmd.env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .args(["--output", "json", "--config"])
        .arg(&nope)
        .args(["verify", "--url", &proxy.url]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 1, "{}", out.all());
    let report = payload(&out);
    let (status, msg) = check(&report, "targets");
    assert_eq!(status, "fail");
    assert!(
        msg.starts_with("could not learn how many targets are healthy: ")
            && msg.contains("bosar-api-nope"),
        "{msg}"
    );

    // The same two replicas pass once the target group lists only them.
    moto.seed(&cfg, &["--targets", "10.0.1.10:3000,10.0.2.10:3000"]);
    let out = bosar_at("targets-2", &proxy.url, &["verify"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let msg = check(&payload(&out), "targets").1.to_string();
    assert!(
        msg.starts_with("reached all 2 healthy targets")
            && msg.contains("target group bosar-api-tg"),
        "{msg}"
    );

    // full: the rollout passes, and its verify step fails on the replica with another secret.
    let sick = replica(
        "10.0.2.10",
        GatewayOpts {
            jwt_secret: "another-secret-of-this-task".into(),
            ..GatewayOpts::default()
        },
    );
    let mixed = Haproxy::start("sticky", [&a, &sick]);
    let junit = _d.path().join("full.xml");
    let out = bosar_at(
        "targets-full",
        &mixed.url,
        &["full", "--junit", junit.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let step = |name: &str| {
        doc["pipeline"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name}: {doc:#}"))
    };
    assert_eq!(step("deploy")["status"], "pass", "{doc:#}");
    let verify = step("verify");
    assert_eq!(verify["status"], "fail");
    assert!(
        verify["message"]
            .as_str()
            .unwrap()
            .ends_with("targets 2 checked / 2 healthy"),
        "{verify:#}"
    );
    let auth = verify["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "auth")
        .unwrap();
    assert!(
        auth["message"]
            .as_str()
            .unwrap()
            .starts_with("1 of 2 targets failed (10.0.2.10): /chat refused the configured token"),
        "{auth:#}"
    );
    // JUnit: a suite per target after the steps, the sick one with its failures.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sick_suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some("verify 10.0.2.10"))
        .unwrap_or_else(|| panic!("no suite for the sick target: {xml}"));
    assert_eq!(sick_suite.attribute("failures"), Some("2"), "{xml}");
    let rows = verify["detail"]["table"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["target"] == "10.0.2.10" && r["result"] == "failed"),
        "{verify:#}"
    );
}

/// Production during a canary step serves two revisions: a blue task started with another
/// ping interval is judged against blue's settings (the plan's values before), so a good
/// green is not rolled back for it; a broken green still fails beside blue; a broken blue is
/// a warning (the gate judges the new revision).
#[test]
fn production_targets_are_judged_against_the_revision_they_run() {
    use bosar_deploy::config::GatewaySection;
    use bosar_deploy::gateway::verify::{verify_revisions, Expected, Previous, Secret};
    use bosar_deploy::gateway::VerifySettings;

    let green = replica("gw-a", GatewayOpts::default());
    let blue = replica(
        "gw-b",
        GatewayOpts {
            ping_interval_ms: 2500,
            ..GatewayOpts::default()
        },
    );
    let broken_green = replica(
        "gw-c",
        GatewayOpts {
            jwt_secret: "another-secret-of-this-task".into(),
            ..GatewayOpts::default()
        },
    );
    let broken_blue = replica(
        "gw-d",
        GatewayOpts {
            ping_interval_ms: 2500,
            jwt_secret: "another-secret-of-this-task".into(),
            ..GatewayOpts::default()
        },
    );
    let settings = |url: &str| {
        let mut gw = GatewaySection::with_url(url);
        gw.ping_interval = std::time::Duration::from_secs(2);
        gw.ping_timeout = std::time::Duration::from_secs(3);
        gw.heartbeat_interval = std::time::Duration::from_secs(1);
        gw.stickiness_rounds = 5;
        let mut s = VerifySettings::from_config(&gw, None, true).unwrap();
        s.token = Some(Secret::new(support::signed_token(SECRET, "canary")));
        s
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ui = bosar_deploy::ui::Ui::silent();
    let judge = |url: &str, previous: bool| {
        let new = settings(url);
        let old = Previous::from_changes([("WEBSOCKET_PING_INTERVAL", "2500")]).blue(&new);
        assert!(old.is_some());
        let fleet = rt.block_on(verify_revisions(
            &new,
            old.as_ref().filter(|_| previous),
            Expected::given(2, "the test"),
            &ui,
        ));
        fleet
            .checks
            .into_iter()
            .map(|c| (c.name, c.status, c.message))
            .collect::<Vec<_>>()
    };
    let failed = |checks: &[(String, bosar_deploy::report::CheckStatus, String)]| {
        checks
            .iter()
            .filter(|c| c.1 == bosar_deploy::report::CheckStatus::Fail)
            .map(|c| format!("{}: {}", c.0, c.2))
            .collect::<Vec<_>>()
    };

    let mixed = Haproxy::start("sticky", [&green, &blue]);
    // Judged by the new settings alone, blue fails the handshake.
    let alone = judge(&mixed.url, false);
    let f = failed(&alone);
    assert!(
        f.iter()
            .any(|m| m.starts_with("handshake: 1 of 2 targets failed (gw-b)")),
        "{f:#?}"
    );
    // Each by its own revision: every check passes, blue's saying how it was judged.
    let by_revision = judge(&mixed.url, true);
    assert!(failed(&by_revision).is_empty(), "{by_revision:#?}");
    let handshake = by_revision.iter().find(|c| c.0 == "handshake").unwrap();
    assert!(
        handshake.2.contains("as the previous revision: "),
        "{handshake:?}"
    );

    // A broken green beside blue fails the gate, naming it.
    let broken = Haproxy::start("sticky", [&broken_green, &blue]);
    let f = failed(&judge(&broken.url, true));
    assert!(
        f.iter()
            .any(|m| m.starts_with("auth: 1 of 2 targets failed (gw-c)")),
        "{f:#?}"
    );
    // A broken blue is reported, not rolled back for.
    let sick_blue = Haproxy::start("sticky", [&green, &broken_blue]);
    let checks = judge(&sick_blue.url, true);
    assert!(failed(&checks).is_empty(), "{checks:#?}");
    let auth = checks.iter().find(|c| c.0 == "auth").unwrap();
    assert_eq!(auth.1, bosar_deploy::report::CheckStatus::Warn, "{auth:?}");
    assert!(
        auth.2.contains("not this deployment's to judge"),
        "{auth:?}"
    );
}
