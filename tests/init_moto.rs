//! `init` against moto (issue 12): the file it writes validates, `plan --detailed-exitcode`
//! right after changes nothing, no secret value from the task definition is written, an
//! existing file is not overwritten without `--force`, `--env` adds an environment table.

mod support;

use std::path::Path;

use support::{bosar, run, write_config, Moto};

fn init(moto: &Moto, app: &str, dir: &Path, extra: &[&str]) -> support::Run {
    run(bosar(&moto.endpoint, app)
        .current_dir(dir)
        .args([
            "init",
            "--cluster",
            "bosar-cluster",
            "--service",
            "bosar-api",
        ])
        .args(extra))
}

fn plan_exit(moto: &Moto, cfg: &Path, extra: &[&str]) -> support::Run {
    run(bosar(&moto.endpoint, "init-plan")
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .args(["plan", "--detailed-exitcode"]))
}

/// The sandbox's stack, with secret-looking values in the container's environment.
#[test]
fn init_writes_what_runs_today_and_plan_changes_nothing() {
    let moto = Moto::start();
    let (seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    moto.python(
        r#"
import boto3
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
c = td["containerDefinitions"][0]
c["environment"] += [{"name": "WEBSOCKET_AUTH_PASS", "value": "s3cr3t-pass"},
                     {"name": "WEBSOCKET_REDIS_URL", "value": "redis://:hunter2@redis.internal:6379"}]
keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
        "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage")
new = ecs.register_task_definition(**{k: td[k] for k in keep if k in td})
ecs.update_service(cluster="bosar-cluster", service="bosar-api", taskDefinition=new["taskDefinition"]["taskDefinitionArn"])
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = init(&moto, "init", dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let path = dir.path().join("deploy.toml");
    assert!(out.stdout.contains("Wrote deploy.toml"), "{}", out.stdout);
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in ["s3cr3t-pass", "hunter2"] {
        assert!(
            !text.contains(secret),
            "a secret value was written:\n{text}"
        );
    }
    assert!(
        text.contains(
            "stickiness = \"off\"                       # today; recommended: \"lb_cookie\""
        ),
        "{text}"
    );
    assert!(text.contains("container = \"bosar-api\""), "{text}");
    assert!(text.contains("log-router"), "the sidecar is named: {text}");
    bosar_deploy::config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let out = plan_exit(&moto, &path, &[]);
    assert_eq!(out.code, 0, "plan right after init: {}", out.all());
    assert!(!out.all().contains("s3cr3t-pass"));

    // An existing file is not replaced without --force.
    let again = init(&moto, "init-again", dir.path(), &[]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again.stderr.contains("exists; not overwritten"),
        "{}",
        again.stderr
    );
    assert!(init(&moto, "init-force", dir.path(), &["--force"]).code == 0);

    // --env adds an environment table that plan reads.
    let out = run(bosar(&moto.endpoint, "init-env")
        .current_dir(dir.path())
        .args([
            "--env",
            "staging",
            "init",
            "--cluster",
            "bosar-cluster",
            "--service",
            "bosar-api",
        ]));
    assert_eq!(out.code, 0, "{}", out.all());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[environments.staging.target_group]"),
        "{text}"
    );
    let out = plan_exit(&moto, &path, &["--env", "staging"]);
    assert_eq!(out.code, 0, "{}", out.all());
    drop(seed_dir);
}

/// A second shape: a target group tuned by hand and a task definition of two containers,
/// the gateway not first.
#[test]
fn init_keeps_a_hand_tuned_group_and_finds_the_container_behind_the_load_balancer() {
    let moto = Moto::start();
    let (_seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    moto.python(
        r#"
import boto3
elb, ecs = boto3.client("elbv2"), boto3.client("ecs")
arn = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
    {"Key": "load_balancing.algorithm.type", "Value": "weighted_random"},
    {"Key": "load_balancing.algorithm.anomaly_mitigation", "Value": "on"},
    {"Key": "deregistration_delay.timeout_seconds", "Value": "45"},
    {"Key": "stickiness.enabled", "Value": "true"},
    {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "3600"},
])
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
cs = td["containerDefinitions"]
cs.reverse()
keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "volumes",
        "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage")
new = ecs.register_task_definition(containerDefinitions=cs, **{k: td[k] for k in keep if k in td})
ecs.update_service(cluster="bosar-cluster", service="bosar-api", taskDefinition=new["taskDefinition"]["taskDefinitionArn"])
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = init(&moto, "init2", dir.path(), &["--output-file", "svc.toml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let path = dir.path().join("svc.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    for line in [
        "container = \"bosar-api\"",
        "algorithm = \"weighted_random\"",
        "anomaly_mitigation = true",
        "cookie_duration = \"1h\"",
        "deregistration_delay = \"45s\"",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    let out = plan_exit(&moto, &path, &[]);
    assert_eq!(out.code, 0, "plan right after init: {}", out.all());
    // A container that is not there is a usage error listing the ones that are.
    let out = init(
        &moto,
        "init3",
        dir.path(),
        &["--output-file", "-", "--container", "api"],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("it has log-router, bosar-api"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_config_points_at_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bosar("http://127.0.0.1:9", "noconf")
        .current_dir(dir.path())
        .arg("status"));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("bosar-deploy init --cluster CLUSTER --service SERVICE"),
        "{}",
        out.stderr
    );
}
