//! One JSON envelope for every verb and every exit path (issue 12): each verb's `--output
//! json` on success, failure, dry run, `--no-wait`, usage error and config error, validated
//! against `schema/output.schema.json`, with the envelope's exit code equal to the process's.

mod support;

use std::path::Path;

use serde_json::Value;
use support::peers::{Gateway, GatewayOpts, Haproxy};
use support::{bosar, run, write_config, Moto};

const SECRET: &str = "schema-test-secret-7d2e";

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(support::repo().join("schema/output.schema.json"))
        .expect("schema/output.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn config_text() -> String {
    support::fast_sandbox_config()
}

struct Case<'a> {
    what: &'a str,
    config: &'a Path,
    args: Vec<&'a str>,
    code: i32,
    command: Option<&'a str>,
    payload: &'a str,
}

fn check(v: &jsonschema::Validator, moto: &Moto, url: &str, c: &Case) {
    let mut cmd = bosar(&moto.endpoint, "schema");
    cmd.env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .args(["--output", "json", "--config"])
        .arg(c.config)
        .args(c.args.iter().map(|a| if *a == "URL" { url } else { a }));
    let out = run(&mut cmd);
    assert_eq!(out.code, c.code, "{}: {}", c.what, out.all());
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: stdout is not one JSON document ({e}):\n{}",
            c.what,
            out.all()
        )
    });
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}\n{doc:#}", c.what);
    if c.what == "deploy" {
        // The sandbox says plainly that moto cannot give real traffic; the deploy stands.
        let real = &doc["deploy"]["real_traffic"];
        assert_eq!(real["status"], "skip", "{doc:#}");
        let msg = real["message"].as_str().unwrap();
        assert!(msg.contains("RPC v2 CBOR"), "{msg}");
        assert!(
            out.stderr
                .contains("Reading CloudWatch (AWS/ApplicationELB)"),
            "{}",
            out.stderr
        );
    }
    if c.what.starts_with("status") {
        // The last 15 minutes of real traffic: what moto cannot give is said, never a failure.
        let real = &doc["service"]["real_traffic"];
        assert_eq!(real["status"], "skip", "{doc:#}");
        let msg = real["message"].as_str().unwrap();
        let want = if c.args.contains(&"--no-metrics") {
            "not read (--no-metrics)"
        } else {
            "RPC v2 CBOR"
        };
        assert!(msg.contains(want), "{}: {msg}", c.what);
    }
    assert_eq!(doc["exit_code"], c.code, "{}", c.what);
    assert_eq!(doc["command"].as_str(), c.command, "{}", c.what);
    assert!(
        doc.as_object().unwrap().contains_key(c.payload),
        "{}: no {} payload: {doc:#}",
        c.what,
        c.payload
    );
}

#[test]
fn every_verb_on_every_path_prints_one_document_the_schema_accepts() {
    let v = validator();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&config_text());
    moto.seed(&cfg, &[]);
    let opts = GatewayOpts {
        jwt_secret: SECRET.into(),
        ..Default::default()
    };
    let gw = [Gateway::start(&opts), Gateway::start(&opts)];
    let proxy = Haproxy::start("sticky", [&gw[0], &gw[1]]);
    let url = proxy.url.as_str();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (_d2, no_svc) =
        write_config(&text.replacen("service = \"bosar-api\"", "service = \"nope\"", 1));
    let (_d3, bad) =
        write_config(&text.replacen("cookie_duration = \"24h\"", "cookie_duration = \"8d\"", 1));
    let (_d4, no_tg) =
        write_config(&text.replacen("name = \"bosar-api-tg\"", "name = \"nope-tg\"", 1));
    // `deploy --under-load` reaches the gateways by [gateway] url.
    let (_d5, loaded) = write_config(&text.replacen(
        "url = \"http://127.0.0.1:8080\"",
        &format!("url = \"{url}\""),
        1,
    ));
    let c = |what, config, args: &[&'static str], code, command, payload| Case {
        what,
        config,
        args: args.to_vec(),
        code,
        command,
        payload,
    };
    let cases = [
        c(
            "plan, changes pending",
            &cfg,
            &["plan", "--detailed-exitcode"],
            3,
            Some("plan"),
            "pipeline",
        ),
        c(
            "alb-update dry run",
            &cfg,
            &["alb-update", "--dry-run"],
            0,
            Some("alb-update"),
            "alb_update",
        ),
        c(
            "alb-update, missing group",
            &no_tg,
            &["alb-update"],
            1,
            Some("alb-update"),
            "alb_update",
        ),
        c(
            "alb-update",
            &cfg,
            &["alb-update"],
            0,
            Some("alb-update"),
            "alb_update",
        ),
        c(
            "deploy dry run",
            &cfg,
            &["deploy", "--dry-run", "--detailed-exitcode"],
            3,
            Some("deploy"),
            "deploy",
        ),
        c(
            "deploy, missing service",
            &no_svc,
            &["deploy"],
            1,
            Some("deploy"),
            "deploy",
        ),
        c("deploy", &cfg, &["deploy"], 0, Some("deploy"), "deploy"),
        c(
            "deploy, no changes",
            &cfg,
            &["deploy"],
            0,
            Some("deploy"),
            "deploy",
        ),
        c(
            "deploy --no-wait",
            &cfg,
            &["deploy", "--force-new-deployment", "--no-wait"],
            0,
            Some("deploy"),
            "deploy",
        ),
        c(
            "deploy --under-load",
            &loaded,
            &[
                "deploy",
                "--force-new-deployment",
                "--under-load",
                "4",
                "--settle",
                "1s",
            ],
            0,
            Some("deploy"),
            "deploy",
        ),
        c("wait", &cfg, &["wait"], 0, Some("wait"), "wait"),
        c("status", &cfg, &["status"], 0, Some("status"), "service"),
        c(
            "status --no-metrics",
            &cfg,
            &["status", "--no-metrics"],
            0,
            Some("status"),
            "service",
        ),
        c(
            "rollback dry run",
            &cfg,
            &["rollback", "--dry-run"],
            0,
            Some("rollback"),
            "rollback",
        ),
        c(
            "rollback --no-wait",
            &cfg,
            &["rollback", "--no-wait"],
            0,
            Some("rollback"),
            "rollback",
        ),
        c(
            "verify",
            &cfg,
            &["verify", "--url", "URL"],
            0,
            Some("verify"),
            "verify",
        ),
        c(
            "verify, nothing there",
            &cfg,
            &["verify", "--url", "http://127.0.0.1:9"],
            1,
            Some("verify"),
            "verify",
        ),
        c(
            "probe",
            &cfg,
            &[
                "verify",
                "--url",
                "URL",
                "--connections",
                "4",
                "--hold",
                "1s",
            ],
            0,
            Some("verify"),
            "probe",
        ),
        c(
            "probe --reconnect",
            &cfg,
            &[
                "verify",
                "--url",
                "URL",
                "--connections",
                "4",
                "--hold",
                "1s",
                "--reconnect",
            ],
            0,
            Some("verify"),
            "probe",
        ),
        c(
            "full",
            &cfg,
            &["full", "--url", "URL"],
            0,
            Some("full"),
            "pipeline",
        ),
        c(
            "full --under-load",
            &cfg,
            &[
                "full",
                "--url",
                "URL",
                "--force-new-deployment",
                "--under-load",
                "4",
                "--settle",
                "1s",
            ],
            0,
            Some("full"),
            "pipeline",
        ),
        c(
            "init to stdout",
            &cfg,
            &[
                "init",
                "--cluster",
                "bosar-cluster",
                "--service",
                "bosar-api",
                "--output-file",
                "-",
            ],
            0,
            Some("init"),
            "init",
        ),
        c(
            "config error",
            &bad,
            &["status"],
            2,
            Some("status"),
            "service",
        ),
        c(
            "usage error",
            &cfg,
            &["deploy", "--bogus"],
            2,
            Some("deploy"),
            "deploy",
        ),
        c(
            "drift check without --dry-run",
            &cfg,
            &["alb-update", "--detailed-exitcode"],
            2,
            Some("alb-update"),
            "alb_update",
        ),
    ];
    for case in &cases {
        check(&v, &moto, url, case);
    }
}

#[test]
fn the_schema_refuses_what_the_envelope_must_not_be() {
    let v = validator();
    let good = serde_json::json!({
        "tool": "bosar-deploy", "version": "0.1.0", "command": "status", "environment": null,
        "config": "deploy.toml", "region": "us-east-1", "account": null, "status": "failed",
        "exit_code": 1, "error": {"message": "DescribeServices failed", "hint": null},
        "errors": [{"message": "DescribeServices failed", "hint": null, "file": null,
                    "line": null, "column": null, "key": null}],
        "warnings": [],
        "credentials": {"source": "profile prod (ProfileFile)", "chosen_by": "--profile",
                        "ignored": ["AWS_ACCESS_KEY_ID"]},
        "service": null
    });
    assert!(v.is_valid(&good));
    for (what, key, value) in [
        (
            "status not the exit code's",
            "status",
            serde_json::json!("succeeded"),
        ),
        ("a failure without its error", "error", Value::Null),
        ("an empty region", "region", serde_json::json!("")),
        (
            "a failure without its errors",
            "errors",
            serde_json::json!([]),
        ),
        (
            "errors as one string",
            "errors",
            serde_json::json!("a.toml:1:1: x\na.toml:2:1: y"),
        ),
        (
            "credentials without why",
            "credentials",
            serde_json::json!({"source": "ProfileFile", "ignored": []}),
        ),
    ] {
        let mut bad = good.clone();
        bad[key] = value;
        assert!(!v.is_valid(&bad), "{what} was accepted");
    }
    let mut two = good.clone();
    two["deploy"] = Value::Null;
    assert!(!v.is_valid(&two), "two payloads were accepted");
}

/// An ECS-native deploy payload (issue 18): strategy, stages, the gate's decisions and the way
/// back, as the types serialize them, is what `$defs/deploy` accepts; a rollback without its
/// reason, an unknown action and an unknown strategy are refused.
#[test]
fn the_native_deploy_payload_matches_the_schema() {
    use bosar_deploy::ecs::native::gate::{Action, Audience, CheckLine, Decision};
    use bosar_deploy::ecs::native::stages::StageSpan;
    use bosar_deploy::ecs::native::watch::{NativeReport, RollbackReport};
    use bosar_deploy::report::CheckStatus;
    let text = std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    let schema = serde_json::json!({ "$ref": "#/$defs/deploy", "$defs": root["$defs"] });
    let v = jsonschema::validator_for(&schema).unwrap();
    let report = NativeReport {
        strategy: "CANARY".into(),
        deployment_arn: "arn:aws:ecs:us-east-1:1:service-deployment/c/s/x".into(),
        stages: vec![StageSpan {
            name: "BAKE_TIME".into(),
            started: "2026-12-05T07:00:00Z".into(),
            ended: Some("2026-12-05T07:01:00Z".into()),
        }],
        gate: vec![Decision {
            stage: "BAKE_TIME".into(),
            weight: Some(5.0),
            audience: Audience::Production,
            checks: vec![CheckLine {
                name: "auth".into(),
                status: CheckStatus::Fail,
                message: "rejected".into(),
            }],
            action: Action::StopRollback,
            at: "2026-12-05T07:00:30Z".into(),
            error: None,
        }],
        rollback: Some(RollbackReport {
            reason: "the gate's checks failed at BAKE_TIME: auth: rejected".into(),
            by: "bosar-deploy".into(),
            requested: Some("2026-12-05T07:00:30Z".into()),
            completed: Some("2026-12-05T07:01:00Z".into()),
            took_ms: Some(30_000),
            succeeded: true,
        }),
    };
    let mut doc = serde_json::to_value(&report).unwrap();
    doc["dry_run"] = false.into();
    doc["result"] = "failed".into();
    doc["plan"] = serde_json::json!({"cluster": "c", "service": "s", "action": "new_revision", "changes": []});
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
    for (path, bad) in [
        ("/rollback/reason", Value::Null),
        ("/gate/0/action", "SHIFT".into()),
        ("/strategy", "ROLLING".into()),
    ] {
        let mut d = doc.clone();
        *d.pointer_mut(path).unwrap() = bad;
        if path == "/rollback/reason" {
            d["rollback"].as_object_mut().unwrap().remove("reason");
        }
        assert!(!v.is_valid(&d), "{path} accepted");
    }
}
