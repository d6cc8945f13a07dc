//! Safe on a real AWS account, against moto (issue 9): absent keys stay as they are, services
//! and load balancers the tool cannot handle are refused before any change, a teammate's newer
//! deployment is never undone, credentials are proven with STS. The moto recorder shows which
//! calls each run made; moto accepts things real AWS refuses (UpdateService on a CODE_DEPLOY
//! service, slow start with weighted random), so "no mutating call" is the tool's own doing.

mod support;

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{bosar, run, write_config, Moto};

fn sandbox(moto: &Moto, config: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (d, cfg) = write_config(config);
    moto.seed(&cfg, &[]);
    (d, cfg)
}

fn mutating(moto: &Moto, app: &str) -> Vec<String> {
    moto.recorded_calls(app)
        .into_iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation)
        .collect()
}

fn json(out: &support::Run) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", out.all()))
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["pipeline"]["steps"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no preflight check {name} in {doc}"))
}

const TG_ATTRS: &str = r#"
import boto3, json
elb = boto3.client("elbv2")
tg = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]
print(json.dumps({a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}))
"#;

fn tg_attrs(moto: &Moto) -> Value {
    serde_json::from_str(moto.python(TG_ATTRS).trim()).unwrap()
}

/// A target group tuned by hand, and a config that names only stickiness and its duration.
#[test]
fn a_hand_tuned_target_group_keeps_every_attribute_the_config_leaves_out() {
    let moto = Moto::start();
    let (_d, full_cfg) = sandbox(&moto, &support::sandbox_config());
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
arn = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
    {"Key": "load_balancing.algorithm.type", "Value": "weighted_random"},
    {"Key": "load_balancing.algorithm.anomaly_mitigation", "Value": "on"},
    {"Key": "deregistration_delay.timeout_seconds", "Value": "120"},
    {"Key": "stickiness.enabled", "Value": "true"},
    {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "3600"},
])
"#,
    );
    let _ = full_cfg;
    let (_d2, cfg) = write_config(
        "[load_balancer]\nname = \"bosar-api-alb\"\n\n[target_group]\nname = \"bosar-api-tg\"\nstickiness = \"lb_cookie\"\ncookie_duration = \"24h\"\n",
    );
    let before = tg_attrs(&moto);

    let out = run(bosar(&moto.endpoint, "tuned-dry")
        .arg("--config")
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("~ stickiness.lb_cookie.duration_seconds: 3600 -> 86400"),
        "{}",
        out.stdout
    );
    for line in [
        "not managed (left as they are):",
        "load_balancing.algorithm.type = weighted_random  (no target_group.algorithm in deploy.toml)",
        "deregistration_delay.timeout_seconds = 120  (no target_group.deregistration_delay in deploy.toml)",
        "idle_timeout.timeout_seconds = 60  (no load_balancer.idle_timeout in deploy.toml)",
        "Plan: 1 attribute to change.",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}:\n{}", out.stdout);
    }

    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "tuned-apply")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        mutating(&moto, "tuned-apply"),
        vec!["ModifyTargetGroupAttributes"]
    );
    let after = tg_attrs(&moto);
    let mut expected = before.clone();
    expected["stickiness.lb_cookie.duration_seconds"] = "86400".into();
    assert_eq!(after, expected, "only the named duration changed");
}

#[test]
fn weighted_random_turns_slow_start_off_and_manages_anomaly_mitigation() {
    let moto = Moto::start();
    let (_d, _full) = sandbox(&moto, &support::sandbox_config());
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
arn = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "slow_start.duration_seconds", "Value": "60"}])
"#,
    );
    let (_d2, cfg) = write_config(
        "[target_group]\nname = \"bosar-api-tg\"\nalgorithm = \"weighted_random\"\nanomaly_mitigation = true\n",
    );
    let out = run(bosar(&moto.endpoint, "wr")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(
            "~ slow_start.duration_seconds: 60 -> 0  # AWS rejects slow start together with weighted_random"
        ),
        "{}",
        out.stdout
    );
    let a = tg_attrs(&moto);
    assert_eq!(a["load_balancing.algorithm.type"], "weighted_random");
    assert_eq!(a["load_balancing.algorithm.anomaly_mitigation"], "on");
    assert_eq!(a["slow_start.duration_seconds"], "0");
    assert_eq!(
        a["deregistration_delay.timeout_seconds"], "300",
        "not named: kept"
    );
}

const CONTAINER_ENV: &str = r#"
import boto3, json
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"], include=["TAGS"])
c = [c for c in td["taskDefinition"]["containerDefinitions"] if c["name"] == "bosar-api"][0]
print(json.dumps({"td": svc["taskDefinition"], "image": c["image"], "env": c.get("environment", []),
    "accelerators": td["taskDefinition"].get("inferenceAccelerators", []), "tags": td.get("tags", [])}))
"#;

fn container(moto: &Moto) -> Value {
    serde_json::from_str(moto.python(CONTAINER_ENV).trim()).unwrap()
}

/// No `[ecs.environment]`: `deploy --image` changes the image and nothing else, and the copy
/// keeps inference accelerators and every tag but the reserved `aws:` ones.
#[test]
fn without_ecs_environment_only_the_image_changes_and_the_copy_is_complete() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let config = support::sandbox_config();
    let (_d, full) = sandbox(&moto, &config);
    let _ = full;
    // A revision with inference accelerators and a reserved tag, as CloudFormation leaves them.
    moto.python(
        r#"
import boto3
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"], include=["TAGS"])["taskDefinition"]
keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
        "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage")
new = ecs.register_task_definition(**{k: td[k] for k in keep if k in td},
    inferenceAccelerators=[{"deviceName": "device_1", "deviceType": "eia2.medium"}],
    tags=[{"key": "team", "value": "chat"}, {"key": "aws:cloudformation:stack-name", "value": "bosar"}])
ecs.update_service(cluster="bosar-cluster", service="bosar-api",
    taskDefinition=new["taskDefinition"]["taskDefinitionArn"])
"#,
    );
    let before = container(&moto);
    let text = config[..config.find("\n[ecs.environment]\n").unwrap()].to_string()
        + &config[config.find("\n[gateway]\n").unwrap()..];
    let (_d2, cfg) = write_config(&text);
    let out = run(bosar(&moto.endpoint, "img-only")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        !out.stdout.contains("environment."),
        "no environment line in the plan: {}",
        out.stdout
    );
    let after = container(&moto);
    assert_ne!(after["td"], before["td"], "a new revision");
    assert_eq!(after["image"], "repo/bosar-api:1.5.0");
    assert_eq!(after["env"], before["env"], "the environment is untouched");
    assert_eq!(after["accelerators"], before["accelerators"]);
    assert_eq!(after["accelerators"][0]["deviceName"], "device_1");
    let tags: Vec<&str> = after["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        vec!["team", "bosar-deploy:run-id"],
        "aws: tags are not copied; the run's tag is added"
    );
}

const TD_COUNT: &str = r#"
import boto3
print(len(boto3.client("ecs").list_task_definitions(familyPrefix="bosar-api")["taskDefinitionArns"]))
"#;

/// CODE_DEPLOY and EXTERNAL controllers and the ECS blue/green strategy: refused before any
/// mutating call, no revision registered, and shown as a failed check by `plan`.
#[test]
fn services_the_tool_cannot_roll_are_refused_before_any_change() {
    let moto = Moto::start();
    let (_d, cfg) = sandbox(&moto, &support::sandbox_config());
    moto.python(
        r#"
import boto3
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
for name, ctrl in (("cd-api", "CODE_DEPLOY"), ("ext-api", "EXTERNAL"), ("bg-api", "ECS")):
    ecs.create_service(cluster="bosar-cluster", serviceName=name, taskDefinition=svc["taskDefinition"],
        desiredCount=1, loadBalancers=svc["loadBalancers"], deploymentController={"type": ctrl})
ecs.update_service(cluster="bosar-cluster", service="bg-api",
    deploymentConfiguration={"strategy": "BLUE_GREEN", "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
"#,
    );
    let tds_before = moto.python(TD_COUNT);
    let text = std::fs::read_to_string(&cfg).unwrap();
    for (service, words) in [
        ("cd-api", "uses the CODE_DEPLOY deployment controller"),
        ("ext-api", "uses the EXTERNAL deployment controller"),
        // bg-api (BLUE_GREEN) is no longer refused: the ECS-native watch follows it (issue 18).
    ] {
        let (_d, c) = write_config(&text.replacen(
            "service = \"bosar-api\"",
            &format!("service = \"{service}\""),
            1,
        ));
        let app = format!("refuse-{service}");
        moto.start_recording();
        let out = run(bosar(&moto.endpoint, &app).arg("--config").arg(&c).args([
            "deploy",
            "--image",
            "repo/bosar-api:9",
        ]));
        assert_eq!(out.code, 1, "{service}: {}", out.all());
        assert!(out.stderr.contains(words), "{service}: {}", out.stderr);
        assert!(
            out.stderr.contains("refused, nothing was changed"),
            "{}",
            out.stderr
        );
        assert!(
            mutating(&moto, &app).is_empty(),
            "{service}: {:?}",
            mutating(&moto, &app)
        );
        // --output json: a document on this path too.
        let out = run(bosar(&moto.endpoint, &format!("{app}-json"))
            .args(["--output", "json", "--config"])
            .arg(&c)
            .args(["deploy", "--image", "repo/bosar-api:9"]));
        assert_eq!(out.code, 1, "{}", out.all());
        let doc = json(&out);
        assert_eq!(doc["deploy"]["result"], "refused", "{doc}");
        assert_eq!(doc["exit_code"], 1);
        assert!(
            doc["error"]["message"].as_str().unwrap().contains(words),
            "{doc}"
        );
        assert!(doc["deploy"]["plan"]["refused"]
            .as_str()
            .unwrap()
            .contains(words));
        // plan: the refusal is a failed preflight check.
        let out = run(bosar(&moto.endpoint, &format!("{app}-plan"))
            .args(["--output", "json", "--config"])
            .arg(&c)
            .arg("plan"));
        assert_eq!(out.code, 1, "{}", out.all());
        let doc = json(&out);
        let rollout = check(&doc, "rollout");
        assert_eq!(rollout["status"], "fail", "{rollout}");
        assert!(rollout["message"].as_str().unwrap().contains(words));
    }
    assert_eq!(moto.python(TD_COUNT), tds_before, "no revision registered");
}

/// An NLB with a TCP target group, and a lambda target group: refused, nothing changed.
#[test]
fn network_load_balancers_and_tcp_or_lambda_target_groups_are_refused() {
    let moto = Moto::start();
    let (_d, _cfg) = sandbox(&moto, &support::sandbox_config());
    moto.python(
        r#"
import boto3
ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["CidrBlock"].startswith("10.0.")]
vpc = ec2.describe_subnets(SubnetIds=subnets)["Subnets"][0]["VpcId"]
nlb = elb.create_load_balancer(Name="bosar-nlb", Subnets=subnets, Type="network")["LoadBalancers"][0]
tg = elb.create_target_group(Name="bosar-tcp", Protocol="TCP", Port=3000, VpcId=vpc, TargetType="ip")["TargetGroups"][0]
elb.create_listener(LoadBalancerArn=nlb["LoadBalancerArn"], Protocol="TCP", Port=80,
    DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
elb.create_target_group(Name="bosar-fn", TargetType="lambda")
"#,
    );
    let cases = [
        (
            "[load_balancer]\nname = \"bosar-nlb\"\nidle_timeout = \"120s\"\n\n[target_group]\nname = \"bosar-tcp\"\nstickiness = \"lb_cookie\"\ncookie_duration = \"24h\"\nalgorithm = \"least_outstanding_requests\"\n",
            ["uses protocol TCP", "is a network load balancer"].as_slice(),
        ),
        (
            "[target_group]\nname = \"bosar-fn\"\nstickiness = \"lb_cookie\"\n",
            ["has lambda targets"].as_slice(),
        ),
    ];
    for (i, (text, words)) in cases.iter().enumerate() {
        let (_d, cfg) = write_config(text);
        let app = format!("nlb-{i}");
        moto.start_recording();
        for args in [
            ["alb-update", "--dry-run"].as_slice(),
            ["alb-update"].as_slice(),
        ] {
            let out = run(bosar(&moto.endpoint, &app)
                .arg("--config")
                .arg(&cfg)
                .args(args));
            assert_eq!(out.code, 1, "{args:?}: {}", out.all());
            for w in *words {
                assert!(out.all().contains(w), "missing {w:?}: {}", out.all());
            }
        }
        assert!(
            mutating(&moto, &app).is_empty(),
            "{:?}",
            mutating(&moto, &app)
        );
    }
}

/// A teammate's deployment started while we watch: ours is superseded (exit 1) and
/// `--rollback-on-failure` does not undo theirs.
#[test]
fn a_newer_deployment_started_mid_watch_supersedes_ours_and_is_not_undone() {
    // Without MOTO_ECS_SERVICE_RUNNING, moto's rollouts stay IN_PROGRESS until touched.
    let moto = Moto::start();
    let (_d, cfg) = sandbox(&moto, &support::sandbox_config());
    moto.start_recording();
    let mut child = bosar(&moto.endpoint, "ours")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--timeout", "60s", "--rollback-on-failure"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = progress.read_line(&mut line).unwrap();
        assert!(n > 0, "deploy ended before watching: {seen}");
        seen.push_str(&line);
        if line.contains("IN_PROGRESS") {
            break;
        }
    }
    let started = Instant::now();
    // The teammate: another deployment of the service, by another client.
    moto.python(
        r#"
import boto3
boto3.client("ecs").update_service(cluster="bosar-cluster", service="bosar-api", forceNewDeployment=True)
"#,
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut progress, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = seen + &rest;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "ended by the watch, not the timeout"
    );
    assert!(
        stderr.contains("was superseded by deployment ecs-svc/"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not rolling back: another deployment superseded this one"),
        "{stderr}"
    );
    let ours = mutating(&moto, "ours");
    assert_eq!(
        ours,
        vec!["RegisterTaskDefinition", "UpdateService"],
        "no rollback call after a superseding deploy"
    );
}

/// `deploy --dry-run` checks `[ecs.environment]` against `[gateway]` before any call.
#[test]
fn deploy_dry_run_refuses_an_inconsistent_environment_before_any_call() {
    let moto = Moto::start();
    let (_d, cfg) = sandbox(&moto, &support::sandbox_config());
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "WEBSOCKET_PING_INTERVAL = \"10000\"",
        "WEBSOCKET_PING_INTERVAL = \"9000\"",
        1,
    );
    let (_d2, bad) = write_config(&text);
    moto.start_recording();
    for args in [vec!["deploy", "--dry-run"], vec!["deploy"]] {
        let out = run(bosar(&moto.endpoint, "env-mismatch")
            .arg("--config")
            .arg(&bad)
            .args(&args));
        assert_eq!(out.code, 2, "{}", out.all());
        assert!(
            out.stderr.contains(
                "[ecs.environment] WEBSOCKET_PING_INTERVAL = \"9000\" but gateway.ping_interval = \"10s\" (10000 ms)"
            ),
            "{}",
            out.stderr
        );
    }
    assert!(
        moto.recorded_calls("env-mismatch").is_empty(),
        "no call at all"
    );
}

/// STS proves the credentials: `status` names the account and caller; revoked keys fail
/// there with exit 2, before anything else is read.
#[test]
fn credentials_are_proven_with_sts_and_revoked_ones_exit_2() {
    let moto = Moto::start();
    let (_d, cfg) = sandbox(&moto, &support::sandbox_config());
    let out = run(bosar(&moto.endpoint, "sts")
        .arg("--config")
        .arg(&cfg)
        .arg("status"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(
            "AWS account 123456789012 in us-east-1, as arn:aws:sts::123456789012:user/moto"
        ),
        "{}",
        out.stdout
    );
    // moto with authentication on: unknown keys are refused as AWS refuses revoked ones.
    let strict = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    for verb in [
        vec!["status"],
        vec!["alb-update", "--dry-run"],
        vec!["plan"],
    ] {
        let out = run(bosar(&strict.endpoint, "revoked")
            .env("AWS_ACCESS_KEY_ID", "AKIAREVOKEDREVOKED00")
            .arg("--config")
            .arg(&cfg)
            .args(&verb));
        assert_eq!(out.code, 2, "{verb:?}: {}", out.all());
        assert!(
            out.all()
                .contains("AWS rejected the credentials: InvalidClientTokenId"),
            "{verb:?}: {}",
            out.all()
        );
    }
}
