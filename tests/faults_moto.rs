//! The fault-injecting proxy (support/fault_proxy.py) between the tool and moto: a
//! RegisterTaskDefinition that moto carried out but whose answer was lost leaves one revision,
//! adopted by its run tag, never a duplicate; a lost UpdateService answer is watched; a half
//! applied `alb-update` reports each change; the state left in moto is checked, and a rerun
//! without faults converges.

mod support;

use support::faults::FaultProxy;
use support::{bosar, run, write_config, Moto};

const STATE: &str = r#"
import boto3, json
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
arns = ecs.list_task_definitions(familyPrefix="bosar-api")["taskDefinitionArns"]
tags = {a.rsplit(":", 1)[1]: ecs.describe_task_definition(taskDefinition=a, include=["TAGS"]).get("tags", []) for a in arns}
print(json.dumps({"service_td": svc["taskDefinition"], "revisions": sorted(tags), "tags": tags}))
"#;

#[test]
fn a_register_answer_lost_after_moto_registered_is_adopted_not_duplicated() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let proxy = FaultProxy::start(&moto, &["RegisterTaskDefinition:reset:1"]);
    let out = run(bosar(&proxy.endpoint, "fault-register")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("Adopted bosar-api:2: RegisterTaskDefinition's answer was lost"),
        "{}",
        out.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["deploy"]["registration"], "adopted", "{doc:#}");
    let run_id = doc["deploy"]["plan"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    let state: serde_json::Value = serde_json::from_str(moto.python(STATE).trim()).unwrap();
    assert_eq!(
        state["revisions"],
        serde_json::json!(["1", "2"]),
        "no duplicate: {state}"
    );
    assert!(state["service_td"]
        .as_str()
        .unwrap()
        .ends_with("bosar-api:2"));
    assert!(
        state["tags"]["2"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "bosar-deploy:run-id" && t["value"] == run_id.as_str()),
        "{state}"
    );

    // A rerun without faults: nothing to change, nothing registered.
    let out = run(bosar(&moto.endpoint, "fault-register-rerun")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("No changes:"), "{}", out.all());
    let state: serde_json::Value = serde_json::from_str(moto.python(STATE).trim()).unwrap();
    assert_eq!(state["revisions"], serde_json::json!(["1", "2"]), "{state}");
}

#[test]
fn an_update_answer_lost_after_moto_applied_it_is_watched_not_reported_as_unreachable() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    // Each of the SDK's four attempts reaches moto; every answer is lost.
    let proxy = FaultProxy::start(&moto, &["UpdateService:reset:4"]);
    let out = run(bosar(&proxy.endpoint, "fault-update")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        // moto keeps the deployment's id when the revision changes (AWS starts a new one).
        out.stderr.contains(
            "the service was read back: it points at bosar-api:2 with primary deployment ecs-svc/"
        ) && out
            .stderr
            .contains("so the update reached ECS: watching it"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("deployment of bosar-api:2 succeeded"),
        "{}",
        out.all()
    );
    let state: serde_json::Value = serde_json::from_str(moto.python(STATE).trim()).unwrap();
    assert_eq!(state["revisions"], serde_json::json!(["1", "2"]), "{state}");
    assert!(state["service_td"]
        .as_str()
        .unwrap()
        .ends_with("bosar-api:2"));

    let out = run(bosar(&moto.endpoint, "fault-update-rerun")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("No changes:"), "{}", out.all());
}

const ALB_STATE: &str = r#"
import boto3, json
elb = boto3.client("elbv2")
tg = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]
attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
lb = elb.describe_load_balancers(Names=["bosar-api-alb"])["LoadBalancers"][0]
lbattrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
print(json.dumps({"tg": attrs, "lb": lbattrs}))
"#;

#[test]
fn alb_update_half_applied_reports_each_change_and_a_rerun_converges() {
    let moto = Moto::start();
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    // The target group's call goes through; the load balancer's gets 503 on every attempt.
    let proxy = FaultProxy::start(&moto, &["ModifyLoadBalancerAttributes:503:4"]);
    let out = run(bosar(&proxy.endpoint, "fault-alb")
        .args(["--config"])
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 1, "{}", out.all());
    for line in [
        "What AWS holds after the failure (read back):",
        "applied     bosar-api-tg stickiness.enabled = true",
        "not applied bosar-api-alb idle_timeout.timeout_seconds = 120",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?}:\n{}",
            out.all()
        );
    }
    assert!(
        out.stderr.contains("ModifyLoadBalancerAttributes failed: ServerException: injected by fault_proxy: the change may have been applied")
            && out.stderr.contains("of 5 change(s): 4 applied, 1 not applied, 0 unknown"),
        "{}",
        out.stderr
    );
    let state: serde_json::Value = serde_json::from_str(moto.python(ALB_STATE).trim()).unwrap();
    assert_eq!(state["tg"]["stickiness.enabled"], "true", "{state}");
    assert_ne!(
        state["lb"]["idle_timeout.timeout_seconds"], "120",
        "{state}"
    );

    // The same fault, as JSON: each change with its status.
    let proxy = FaultProxy::start(&moto, &["ModifyLoadBalancerAttributes:503:4"]);
    let out = run(bosar(&proxy.endpoint, "fault-alb-json")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 1, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let results = doc["alb_update"]["change_results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        1,
        "only the idle timeout is still planned: {doc:#}"
    );
    assert_eq!(results[0]["status"], "not_applied");
    assert_eq!(results[0]["read_back"], "60");

    // Without faults: only what is still different is applied, then in sync.
    let out = run(bosar(&moto.endpoint, "fault-alb-rerun")
        .args(["--config"])
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("Applied 1 change(s); read back and confirmed."),
        "{}",
        out.all()
    );
    let state: serde_json::Value = serde_json::from_str(moto.python(ALB_STATE).trim()).unwrap();
    assert_eq!(
        state["lb"]["idle_timeout.timeout_seconds"], "120",
        "{state}"
    );
}

/// Read calls ride out server errors and lost answers (the SDK retries them): `status` and
/// `plan` through 503s and resets print what they print without faults, as one JSON
/// document with the same exit code.
#[test]
fn read_verbs_through_503s_and_resets_answer_as_without_faults() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let json = |endpoint: &str, app: &str, verb: &str| {
        let out = run(bosar(endpoint, app)
            .args(["--output", "json", "--config"])
            .arg(&cfg)
            .arg(verb));
        let doc: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{verb}: one JSON document ({e}): {}", out.all()));
        (out.code, doc)
    };
    let (status_code, status) = json(&moto.endpoint, "fault-status-clean", "status");
    let (plan_code, plan) = json(&moto.endpoint, "fault-plan-clean", "plan");
    let proxy = FaultProxy::start(
        &moto,
        &[
            "DescribeServices:503:2",
            "DescribeTaskDefinition:reset:1",
            "DescribeTargetHealth:reset:1",
        ],
    );
    // The faults were met: -vvv logs each failed attempt before its retry.
    let out = run(bosar(&proxy.endpoint, "fault-status-vvv")
        .args(["-vvv", "--config"])
        .arg(&cfg)
        .arg("status"));
    assert_eq!(out.code, status_code, "{}", out.all());
    assert!(
        out.stderr.contains("DescribeServices") && out.stderr.contains("503"),
        "{}",
        out.stderr
    );
    let proxy = FaultProxy::start(
        &moto,
        &[
            "DescribeServices:503:2",
            "DescribeTaskDefinition:reset:1",
            "DescribeTargetHealth:reset:1",
        ],
    );
    let (code, doc) = json(&proxy.endpoint, "fault-status", "status");
    assert_eq!(code, status_code, "{doc:#}");
    assert_eq!(
        doc["service"]["result"], status["service"]["result"],
        "{doc:#}"
    );
    assert_eq!(
        doc["service"]["task_definition"], status["service"]["task_definition"],
        "{doc:#}"
    );
    let proxy = FaultProxy::start(
        &moto,
        &[
            "DescribeServices:503:1",
            "DescribeTargetGroupAttributes:503:2",
            "DescribeLoadBalancerAttributes:reset:1",
        ],
    );
    let (code, doc) = json(&proxy.endpoint, "fault-plan", "plan");
    assert_eq!(code, plan_code, "{doc:#}");
    assert_eq!(
        doc["pipeline"]["result"], plan["pipeline"]["result"],
        "{doc:#}"
    );
    assert!(doc["error"].is_null(), "{doc:#}");
}

/// `rollback` shares deploy's UpdateService: an answer lost after moto applied it is
/// resolved by reading the service back and watching, and the service ends on the revision
/// asked for, with no extra revision registered.
#[test]
fn a_rollback_whose_update_answer_is_lost_is_watched_to_its_end() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let out = run(bosar(&moto.endpoint, "fault-rb-deploy")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let proxy = FaultProxy::start(&moto, &["UpdateService:reset:4"]);
    let out = run(bosar(&proxy.endpoint, "fault-rollback")
        .arg("--config")
        .arg(&cfg)
        .args(["rollback", "--skip-preflight", "image"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("the service was read back: it points at bosar-api:1"),
        "{}",
        out.stderr
    );
    let state: serde_json::Value = serde_json::from_str(moto.python(STATE).trim()).unwrap();
    assert!(
        state["service_td"]
            .as_str()
            .unwrap()
            .ends_with("bosar-api:1"),
        "{state}"
    );
    assert_eq!(state["revisions"], serde_json::json!(["1", "2"]), "{state}");
}
