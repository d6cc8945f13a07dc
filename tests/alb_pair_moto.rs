//! Both target groups of a blue/green service, against moto (which keeps a service's
//! `loadBalancers[].advancedConfiguration` and serves listener rules): `alb-update` plans and
//! applies `[target_group]` on the production and the alternate group, shows the listener
//! rules, warns about a weighted split without stickiness, and refuses a rule ECS cannot
//! shift before any change.

mod support;

use support::{bosar, run, write_config, Moto};

/// A green target group, a production rule forwarding blue 100 / green 0 (stickiness off), a
/// test rule, and service `bosar-api-bg` naming them in advancedConfiguration. `TEST_ACTION`
/// is the test rule's action.
const PAIR: &str = r#"
import boto3, json, sys
elb = boto3.client("elbv2"); ecs = boto3.client("ecs")
blue = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]
green = elb.create_target_group(Name="bosar-api-tg-green", Protocol="HTTP", Port=blue["Port"],
    VpcId=blue["VpcId"], TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
lb = blue["LoadBalancerArns"][0]
lis = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=8080,
    DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])["Listeners"][0]["ListenerArn"]
fwd = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
    {"TargetGroupArn": blue["TargetGroupArn"], "Weight": 100}, {"TargetGroupArn": green, "Weight": 0}],
    "TargetGroupStickinessConfig": {"Enabled": False}}}
prod = elb.create_rule(ListenerArn=lis, Priority=1, Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
    Actions=[fwd])["Rules"][0]["RuleArn"]
test_action = TEST_ACTION
test = elb.create_rule(ListenerArn=lis, Priority=2, Conditions=[{"Field": "host-header", "Values": ["test.example.com"]}],
    Actions=[test_action])["Rules"][0]["RuleArn"]
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
lbe = dict(svc["loadBalancers"][0])
lbe["advancedConfiguration"] = {"alternateTargetGroupArn": green, "productionListenerRule": prod,
    "testListenerRule": test, "roleArn": "arn:aws:iam::123456789012:role/ecs-infrastructure"}
ecs.create_service(cluster="bosar-cluster", serviceName="bosar-api-bg", taskDefinition=svc["taskDefinition"],
    desiredCount=1, loadBalancers=[lbe])
print(json.dumps({"green": green, "prod": prod, "test": test}))
"#;

const GREEN_ATTRS: &str = r#"
import boto3, json
elb = boto3.client("elbv2")
arn = elb.describe_target_groups(Names=["bosar-api-tg-green"])["TargetGroups"][0]["TargetGroupArn"]
print(json.dumps({a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}))
"#;

fn stack(
    test_action: &str,
) -> (
    Moto,
    tempfile::TempDir,
    std::path::PathBuf,
    serde_json::Value,
) {
    let moto = Moto::start();
    let text = support::sandbox_config().replacen(
        "service = \"bosar-api\"",
        "service = \"bosar-api-bg\"",
        1,
    );
    assert!(text.contains("bosar-api-bg"));
    let (seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    drop(seed_dir);
    let ids = moto.python(&PAIR.replace("TEST_ACTION", test_action));
    let ids: serde_json::Value = serde_json::from_str(ids.trim()).unwrap();
    let (dir, cfg) = write_config(&text);
    (moto, dir, cfg, ids)
}

const FORWARD_BLUE: &str = r#"{"Type": "forward", "TargetGroupArn": blue["TargetGroupArn"]}"#;

#[test]
fn both_target_groups_get_the_attributes_and_the_rules_are_shown() {
    let (moto, _dir, cfg, ids) = stack(FORWARD_BLUE);
    let out = run(bosar(&moto.endpoint, "pair-dry")
        .arg("--config")
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    for line in [
        "Alternate target group bosar-api-tg-green",
        "~ stickiness.enabled: false -> true",
        "Listener rule (production)",
        "Listener rule (test)",
        "forward -> ",
        "(weight 100)",
        "target group stickiness off",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in:\n{}",
            out.stdout
        );
    }
    // The production rule splits by weight without stickiness: warned, with what to set.
    assert!(
        out.stderr.contains("splits traffic between blue and green")
            && out
                .stderr
                .contains("TargetGroupStickinessConfig to Enabled=true"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains(ids["prod"].as_str().unwrap()),
        "{}",
        out.stdout
    );
    // The JSON payload names both groups and the rules, as the schema says.
    let out = run(bosar(&moto.endpoint, "pair-json")
        .arg("--config")
        .arg(&cfg)
        .args(["--output", "json", "alb-update", "--dry-run"]));
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc}");
    let alb = &doc["alb_update"];
    assert_eq!(
        alb["alternate"]["target_group"]["arn"], ids["green"],
        "{alb}"
    );
    assert_eq!(alb["listener_rules"][0]["role"], "production", "{alb}");
    assert_eq!(alb["listener_rules"][1]["actions"][0], "forward", "{alb}");

    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "pair-go")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    let modified: Vec<String> = moto
        .recorded_calls("pair-go")
        .into_iter()
        .filter(|c| c.operation == "ModifyTargetGroupAttributes")
        .map(|c| c.body)
        .collect();
    assert_eq!(modified.len(), 2, "production and alternate: {modified:?}");
    let green: serde_json::Value = serde_json::from_str(moto.python(GREEN_ATTRS).trim()).unwrap();
    assert_eq!(green["stickiness.enabled"], "true", "{green}");
    assert_eq!(green["stickiness.type"], "lb_cookie", "{green}");
    assert_eq!(
        green["deregistration_delay.timeout_seconds"], "3",
        "{green}"
    );
    // Both in sync now.
    let out = run(bosar(&moto.endpoint, "pair-again")
        .arg("--config")
        .arg(&cfg)
        .args(["alb-update", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn a_rule_ecs_cannot_shift_is_refused_before_any_change() {
    let redirect = r#"{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}"#;
    let (moto, _dir, cfg, _ids) = stack(redirect);
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "pair-refused")
        .arg("--config")
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("the test listener rule")
            && out.stderr.contains("has redirect action(s)")
            && out.stderr.contains("change the rule to a forward action"),
        "{}",
        out.stderr
    );
    let calls = moto.recorded_calls("pair-refused");
    assert!(
        calls.iter().any(|c| c.operation == "DescribeRules"),
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|c| !c.mutating()),
        "nothing changed: {calls:?}"
    );
}
