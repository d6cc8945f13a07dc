//! `[ecs.deployment]` against a real moto server, with its recorder: a config without the
//! section sends no deploymentConfiguration at all (absent means unmanaged), and a named
//! section reaches the service with UpdateService alone, after which the plan is clean.

mod support;

use support::{bosar, run, write_config, Moto};

const READ_BACK: &str = r#"
import boto3, json
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
print(json.dumps(svc.get("deploymentConfiguration", {})))
"#;

#[test]
fn without_the_section_update_service_carries_no_deployment_configuration() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "strat-none")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        !out.stdout.contains("deploymentConfiguration"),
        "{}",
        out.stdout
    );
    let updates: Vec<_> = moto
        .recorded_calls("strat-none")
        .into_iter()
        .filter(|c| c.operation == "UpdateService")
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(
        updates[0].body.contains("\"taskDefinition\""),
        "{}",
        updates[0].body
    );
    assert!(
        !updates[0].body.contains("deploymentConfiguration"),
        "absent means unmanaged: {}",
        updates[0].body
    );
}

/// The UpdateService calls of `app`, as JSON bodies, and how many calls mutated.
fn updates(moto: &Moto, app: &str) -> (Vec<serde_json::Value>, usize) {
    let calls = moto.recorded_calls(app);
    let mutating = calls.iter().filter(|c| c.mutating()).count();
    let bodies = calls
        .into_iter()
        .filter(|c| c.operation == "UpdateService")
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .collect();
    (bodies, mutating)
}

#[test]
fn a_named_section_goes_with_the_deployment_then_alone_and_the_next_plan_is_clean() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let section = "\n[ecs.deployment]\ncircuit_breaker = true\nmaximum_percent = 150\n";
    let text = format!("{}{section}", support::sandbox_config());
    let (d, cfg) = write_config(&text);
    moto.seed(&cfg, &[]);
    let before: serde_json::Value = serde_json::from_str(moto.python(READ_BACK).trim()).unwrap();

    // The seeded service runs other variables: a new revision, and the configuration with it.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "strat-dry")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    for line in [
        "~ service bosar-api: deploymentConfiguration ([ecs.deployment], with the deployment):",
        "~ maximum_percent: 200 -> 150",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in:\n{}",
            out.stdout
        );
    }
    assert!(moto
        .recorded_calls("strat-dry")
        .iter()
        .all(|c| !c.mutating()));

    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "strat-go")
        .arg("--config")
        .arg(&cfg)
        .arg("deploy"));
    assert_eq!(out.code, 0, "{}", out.all());
    let (bodies, _) = updates(&moto, "strat-go");
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let body = &bodies[0];
    assert!(
        body["taskDefinition"]
            .as_str()
            .unwrap()
            .ends_with("bosar-api:2"),
        "{body}"
    );
    let sent = &body["deploymentConfiguration"];
    assert_eq!(sent["maximumPercent"], 150, "{body}");
    // What the file does not name (or names as it is) is sent as the service had it.
    assert_eq!(
        sent["deploymentCircuitBreaker"], before["deploymentCircuitBreaker"],
        "{body}"
    );
    assert_eq!(
        sent["minimumHealthyPercent"], before["minimumHealthyPercent"],
        "{body}"
    );
    let after: serde_json::Value = serde_json::from_str(moto.python(READ_BACK).trim()).unwrap();
    assert_eq!(after["maximumPercent"], 150, "{after}");

    // Only the configuration differs now: UpdateService with it alone, no deployment.
    std::fs::write(
        &cfg,
        text.replace("maximum_percent = 150", "maximum_percent = 120"),
    )
    .unwrap();
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "strat-alone")
        .arg("--config")
        .arg(&cfg)
        .args(["--output", "json", "deploy"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["deploy"]["result"], "succeeded", "{doc}");
    assert_eq!(doc["deploy"]["configuration_updated"], true, "{doc}");
    let (bodies, mutating) = updates(&moto, "strat-alone");
    assert_eq!((bodies.len(), mutating), (1, 1), "{bodies:?}");
    assert_eq!(
        bodies[0].get("taskDefinition"),
        None,
        "no new deployment: {}",
        bodies[0]
    );
    assert_eq!(bodies[0]["deploymentConfiguration"]["maximumPercent"], 120);

    let out = run(bosar(&moto.endpoint, "strat-again")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(out.code, 0, "in sync after the update: {}", out.all());
    assert!(
        !out.stdout.contains("deploymentConfiguration"),
        "{}",
        out.stdout
    );
    drop(d);
}
