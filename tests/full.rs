//! `full` and `plan` end to end: moto for AWS, real gateway replicas behind HAProxy for
//! verify. The pipeline passes through the sticky proxy; through round robin it fails at
//! verify's stickiness check; plan mutates nothing; a preflight failure changes nothing.

mod support;

use std::path::PathBuf;

use support::peers::{Gateway, GatewayOpts, Haproxy};
use support::{bosar, run, write_config, Moto};

const SECRET: &str = "full-test-secret-4f1c";

fn config_text() -> String {
    support::fast_sandbox_config()
}

struct Stack {
    moto: Moto,
    _gw: [Gateway; 2],
    proxy: Haproxy,
    _dir: tempfile::TempDir,
    cfg: PathBuf,
}

fn stack(proxy: &str) -> Stack {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (dir, cfg) = write_config(&config_text());
    moto.seed(&cfg, &[]);
    let opts = GatewayOpts {
        jwt_secret: SECRET.into(),
        ..Default::default()
    };
    let gw = [
        Gateway::start(&GatewayOpts {
            instance_id: Some("gw-a".into()),
            ..opts.clone()
        }),
        Gateway::start(&GatewayOpts {
            instance_id: Some("gw-b".into()),
            ..opts
        }),
    ];
    let proxy = Haproxy::start(proxy, [&gw[0], &gw[1]]);
    Stack {
        moto,
        _gw: gw,
        proxy,
        _dir: dir,
        cfg,
    }
}

fn full(s: &Stack, app: &str, extra: &[&str]) -> (support::Run, tempfile::TempDir) {
    let out_dir = tempfile::tempdir().unwrap();
    let junit = out_dir.path().join("junit.xml");
    let mut cmd = bosar(&s.moto.endpoint, app);
    cmd.env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .args(["--output", "json", "--config"])
        .arg(&s.cfg)
        .args(["full", "--url", &s.proxy.url, "--junit"])
        .arg(&junit)
        .args(extra);
    (run(&mut cmd), out_dir)
}

fn step<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["pipeline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {doc}"))
}

#[test]
fn full_passes_through_the_sticky_proxy_with_json_and_junit_reports() {
    let s = stack("sticky");
    s.moto.start_recording();
    let (out, dir) = full(&s, "full-ok", &["--image", "repo/bosar-api:2.0.0"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["tool"], "bosar-deploy");
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["pipeline"]["result"], "succeeded");
    assert_eq!(doc["region"], "us-east-1");
    assert_eq!(doc["account"], "123456789012");
    let names: Vec<&str> = doc["pipeline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "preflight",
            "alb-update",
            "deploy",
            "real-traffic",
            "verify"
        ]
    );
    // moto cannot serve CloudWatch to the Rust SDK: the step says so and is skipped.
    let real = step(&doc, "real-traffic");
    assert_eq!(real["status"], "skip", "{real:#}");
    assert!(
        real["message"].as_str().unwrap().contains("RPC v2 CBOR"),
        "{real:#}"
    );
    for n in names.iter().filter(|n| **n != "real-traffic") {
        let st = step(&doc, n);
        assert!(
            st["status"] == "pass" || st["status"] == "warn",
            "{n}: {st}"
        );
        assert!(st["duration_ms"].is_u64());
    }
    let verify = step(&doc, "verify");
    let checks: Vec<&str> = verify["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // Every verify check, then the pipeline's read-back of the stickiness duration.
    let expected = bosar_deploy::gateway::verify::NAMES
        .iter()
        .copied()
        .chain(["stickiness_duration"]);
    for c in expected {
        assert!(checks.contains(&c), "verify check {c} missing: {checks:?}");
    }
    assert!(step(&doc, "deploy")["message"]
        .as_str()
        .unwrap()
        .contains("bosar-api:2 succeeded"));

    let mutating: Vec<String> = s
        .moto
        .recorded_calls("full-ok")
        .into_iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation)
        .collect();
    for op in [
        "ModifyTargetGroupAttributes",
        "ModifyLoadBalancerAttributes",
        "RegisterTaskDefinition",
        "UpdateService",
    ] {
        assert!(
            mutating.contains(&op.to_string()),
            "{op} not called: {mutating:?}"
        );
    }

    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let parsed = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let suites: Vec<&str> = parsed
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    // The steps, then the verify step's targets, one suite each.
    assert_eq!(
        suites,
        vec![
            "preflight",
            "alb-update",
            "deploy",
            "real-traffic",
            "verify",
            "verify gw-a",
            "verify gw-b"
        ]
    );
    assert_eq!(
        parsed
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0
    );
    assert!(
        parsed
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count()
            >= 15
    );
    assert!(
        !xml.contains(SECRET) && !out.all().contains(SECRET),
        "the JWT secret leaked"
    );
}

#[test]
fn full_through_round_robin_fails_at_stickiness_after_the_earlier_steps() {
    let s = stack("roundrobin");
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let junit = out_dir.path().join("junit.xml");
    // Text output under GitHub Actions: annotations and a step summary.
    let out = run(bosar(&s.moto.endpoint, "full-rr")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", summary.path())
        .arg("--config")
        .arg(&s.cfg)
        .args(["full", "--url", &s.proxy.url, "--junit"])
        .arg(&junit));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("::error title=verify stickiness::"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("pipeline failed (exit 1)"),
        "{}",
        out.stdout
    );
    let md = std::fs::read_to_string(summary.path()).unwrap();
    assert!(md.contains("| **` verify `** | ❌"), "{md}");
    assert!(md.contains("| **` deploy `** | ✅"), "{md}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let parsed = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let failed: Vec<&str> = parsed
        .descendants()
        .filter(|n| n.has_tag_name("testcase") && n.children().any(|c| c.has_tag_name("failure")))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert!(
        failed.contains(&"stickiness"),
        "failed testcases: {failed:?}\n{xml}"
    );
    let deploy_ok = parsed.descendants().any(|n| {
        n.has_tag_name("testcase")
            && n.attribute("name") == Some("deploy")
            && !n.children().any(|c| c.has_tag_name("failure"))
    });
    assert!(deploy_ok, "deploy ran and passed before verify: {xml}");
}

#[test]
fn plan_records_no_mutating_call_and_reports_pending_changes() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&config_text());
    moto.seed(&cfg, &[]);
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "plan")
        .arg("--config")
        .arg(&cfg)
        .args(["plan", "--detailed-exitcode"]));
    assert_eq!(out.code, 3, "{}", out.all());
    for line in [
        "~ stickiness.enabled: false -> true",
        "~ idle_timeout.timeout_seconds: 60 -> 120",
        "~ environment.WEBSOCKET_PING_INTERVAL: 20000 -> 2000",
        "~ service bosar-api: update to the new revision",
        "dry run: ",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?}:\n{}",
            out.stdout
        );
    }
    let calls = moto.recorded_calls("plan");
    assert!(calls.len() >= 5, "{calls:?}");
    assert!(
        calls.iter().all(|c| !c.mutating()),
        "plan mutated: {calls:?}"
    );

    // JSON: the whole plan in one document, same as full --dry-run.
    let out = run(bosar(&moto.endpoint, "plan2")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["full", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["pipeline"]["dry_run"], true);
    assert!(
        doc["pipeline"]["changes_pending"].as_u64().unwrap() >= 8,
        "{doc}"
    );
    assert_eq!(step(&doc, "deploy")["detail"]["action"], "new_revision");
    assert!(
        moto.recorded_calls("plan2").is_empty()
            || moto.recorded_calls("plan2").iter().all(|c| !c.mutating())
    );
}

#[test]
fn preflight_failure_wrong_target_group_changes_nothing() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&config_text());
    moto.seed(&cfg, &[]);
    // A second target group on the same load balancer, which the service does not use.
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
tg = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]
other = elb.create_target_group(Name="other-tg", Protocol="HTTP", Port=3000, VpcId=tg["VpcId"], TargetType="ip", HealthCheckPath="/health/websocket")["TargetGroups"][0]
listener = elb.describe_listeners(LoadBalancerArn=tg["LoadBalancerArns"][0])["Listeners"][0]
elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=10, Conditions=[{"Field": "path-pattern", "Values": ["/other/*"]}], Actions=[{"Type": "forward", "TargetGroupArn": other["TargetGroupArn"]}])
"#,
    );
    let text = config_text().replacen("name = \"bosar-api-tg\"", "name = \"other-tg\"", 1);
    let (_d2, wrong) = write_config(&text);
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "pre")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .arg("--config")
        .arg(&wrong)
        .arg("full"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("registers its tasks in")
            && out.stdout.contains("not in target group other-tg"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("preflight failed; nothing was changed"),
        "{}",
        out.stdout
    );
    let calls = moto.recorded_calls("pre");
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| !c.mutating()),
        "preflight mutated: {calls:?}"
    );
}

#[test]
fn inconsistent_environment_is_a_config_error_before_any_call() {
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let text = config_text().replacen(
        "WEBSOCKET_PING_INTERVAL = \"2000\"",
        "WEBSOCKET_PING_INTERVAL = \"25000\"",
        1,
    );
    let (_d, cfg) = write_config(&text);
    let out = run(
        bosar(&format!("http://{}", trap.local_addr().unwrap()), "incons")
            .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
            .arg("--config")
            .arg(&cfg)
            .arg("full"),
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stdout.contains("[ecs.environment] WEBSOCKET_PING_INTERVAL = \"25000\" but gateway.ping_interval = \"2s\" (2000 ms)"), "{}", out.stdout);
    assert!(trap.accept().is_err(), "no AWS call for a config error");
}

#[test]
fn missing_token_secret_is_a_usage_error() {
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let (_d, cfg) = write_config(&config_text());
    let out = run(bosar(
        &format!("http://{}", trap.local_addr().unwrap()),
        "nosecret",
    )
    .env_remove("BOSAR_SANDBOX_JWT_SECRET")
    .arg("--config")
    .arg(&cfg)
    .arg("full"));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("BOSAR_SANDBOX_JWT_SECRET"),
        "{}",
        out.stderr
    );
    assert!(trap.accept().is_err());
}

#[test]
fn full_reports_a_rollout_timeout_with_exit_4_and_skips_verify() {
    // Without MOTO_ECS_SERVICE_RUNNING, moto's rollouts never complete.
    let moto = Moto::start();
    let (_d, cfg) = write_config(&config_text());
    moto.seed(&cfg, &[]);
    let out = run(bosar(&moto.endpoint, "full-timeout")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["full", "--url", "http://127.0.0.1:9", "--timeout", "2s"]));
    assert_eq!(out.code, 4, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["exit_code"], 4);
    assert_eq!(step(&doc, "alb-update")["status"], "pass");
    let deploy = step(&doc, "deploy");
    assert_eq!(deploy["status"], "fail");
    assert!(
        deploy["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s"),
        "{deploy}"
    );
    assert_eq!(deploy["detail"]["outcome"]["outcome"], "timed_out");
    let resume = format!("bosar-deploy --config {} wait --deployment ", cfg.display());
    assert!(deploy["detail"]["outcome"]["resume"]
        .as_str()
        .unwrap()
        .starts_with(&resume));
    assert_eq!(step(&doc, "verify")["status"], "skip");
    assert!(
        out.stderr
            .contains(&format!("resume watching with: {resume}")),
        "{}",
        out.stderr
    );
}

#[test]
fn warnings_reach_the_json_report() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    // No idle_timeout to apply, and a 45 s heartbeat: AWS's default 60 s idle timeout is
    // above it, but not comfortably.
    let text = config_text()
        .replacen("idle_timeout = \"120s\"\n", "", 1)
        .replacen(
            "WEBSOCKET_HEARTBEAT_INTERVAL = \"1000\"",
            "WEBSOCKET_HEARTBEAT_INTERVAL = \"45000\"",
            1,
        )
        .replacen(
            "heartbeat_interval = \"1s\"",
            "heartbeat_interval = \"45s\"",
            1,
        );
    let (_d, cfg) = write_config(&text);
    moto.seed(&cfg, &[]);
    let out = run(bosar(&moto.endpoint, "warn")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("plan"));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("idle timeout 60s is not comfortably above")),
        "{warnings:?}"
    );
    assert!(out.stderr.contains("warning:"), "{}", out.stderr);
}

/// The config without its `[gateway]` table (what `init` writes: it comments it out).
fn without_gateway(text: &str) -> String {
    let start = text.find("\n[gateway]").expect("[gateway] in the config");
    let rest = &text[start + 1..];
    let end = rest
        .find("\n[")
        .map(|i| start + 1 + i)
        .unwrap_or(text.len());
    format!("{}{}", &text[..start + 1], &text[end..])
}

/// Issue 17 point 4: `full` verifies, so without `[gateway]` (or `--url`) it refuses before
/// any call instead of passing unverified; `--skip-verify` is the way to deploy without it.
#[test]
fn full_without_a_gateway_refuses_before_any_call_unless_told_to_skip_verify() {
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let text = without_gateway(&config_text());
    assert!(!text.lines().any(|l| l.starts_with("[gateway]")), "{text}");
    let (_d, cfg) = write_config(&text);
    let endpoint = format!("http://{}", trap.local_addr().unwrap());
    for args in [vec!["full"], vec!["full", "--dry-run"]] {
        let out = run(bosar(&endpoint, "nogw")
            .args(["--output", "json", "--config"])
            .arg(&cfg)
            .args(&args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let msg = doc["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("no [gateway] section; `full` needs at least gateway.url (or --url)"),
            "{msg}"
        );
        let hint = doc["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("--skip-verify"), "{hint}");
        assert!(trap.accept().is_err(), "no AWS call for a config error");
    }
    // `verify --url` without [gateway] uses the URL with [gateway]'s defaults: it reaches
    // the (closed) URL and fails there, instead of refusing for want of a section.
    let closed = support::free_port();
    let out = run(bosar(&endpoint, "nogw-verify")
        .env("BOSAR_TOKEN", "x".repeat(40))
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--url", &format!("http://127.0.0.1:{closed}")]));
    assert!(
        !out.all().contains("no [gateway] section"),
        "--url overrides [gateway] url: {}",
        out.all()
    );
    assert!(
        out.all().contains(&format!("127.0.0.1:{closed}")),
        "{}",
        out.all()
    );
    assert_ne!(out.code, 0, "{}", out.all());
}
