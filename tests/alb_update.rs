//! alb-update against a real moto server: dry run, apply, in-sync rerun, by name and ARN,
//! missing target group, slow start with least outstanding requests.

mod support;

use support::{bosar, run, write_config, Moto};

const READ_ATTRS: &str = r#"
import boto3, json
elb = boto3.client("elbv2")
tg = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]
attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
lb = elb.describe_load_balancers(Names=["bosar-api-alb"])["LoadBalancers"][0]
lbattrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
print(json.dumps({"arn": tg["TargetGroupArn"], "attrs": attrs, "lb": lbattrs}))
"#;

fn read(moto: &Moto) -> serde_json::Value {
    serde_json::from_str(moto.python(READ_ATTRS).trim()).unwrap()
}

#[test]
fn dry_run_then_apply_then_in_sync() {
    let moto = Moto::start();
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let before = read(&moto);
    assert_eq!(before["attrs"]["stickiness.enabled"], "false");

    // Dry run: the plan, exit 3 with --detailed-exitcode, and only read calls.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "alb-dry")
        .args(["--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(out.code, 3, "{}", out.all());
    for line in [
        "~ stickiness.enabled: false -> true",
        "+ stickiness.lb_cookie.duration_seconds: 86400",
        "~ load_balancing.algorithm.type: round_robin -> least_outstanding_requests",
        "~ deregistration_delay.timeout_seconds: 300 -> 3",
        "~ idle_timeout.timeout_seconds: 60 -> 120",
        "Plan: 5 attributes to change.",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in:\n{}",
            out.stdout
        );
    }
    let calls = moto.recorded_calls("alb-dry");
    assert!(!calls.is_empty(), "the recorder saw the tool's calls");
    assert!(
        calls.iter().all(|c| !c.mutating()),
        "dry run made a mutating call: {calls:?}"
    );
    assert_eq!(
        read(&moto)["attrs"],
        before["attrs"],
        "dry run changed nothing"
    );

    // Dry run without --detailed-exitcode: 0.
    let out = run(bosar(&moto.endpoint, "alb-dry2")
        .args(["--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());

    // Apply: all five keys set (plus the idle timeout), exactly the planned calls.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "alb-apply")
        .args(["--config"])
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("read back and confirmed"),
        "{}",
        out.stdout
    );
    let after = read(&moto);
    assert_eq!(after["attrs"]["stickiness.enabled"], "true");
    assert_eq!(after["attrs"]["stickiness.type"], "lb_cookie");
    assert_eq!(
        after["attrs"]["stickiness.lb_cookie.duration_seconds"],
        "86400"
    );
    assert_eq!(
        after["attrs"]["load_balancing.algorithm.type"],
        "least_outstanding_requests"
    );
    assert_eq!(after["attrs"]["deregistration_delay.timeout_seconds"], "3");
    assert_eq!(after["lb"]["idle_timeout.timeout_seconds"], "120");
    let mut mutating: Vec<String> = moto
        .recorded_calls("alb-apply")
        .into_iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation)
        .collect();
    mutating.sort();
    assert_eq!(
        mutating,
        vec![
            "ModifyLoadBalancerAttributes",
            "ModifyTargetGroupAttributes"
        ]
    );

    // A drift check typed without --dry-run is a usage error that calls nothing.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "alb-drift")
        .args(["--config"])
        .arg(&cfg)
        .args(["alb-update", "--detailed-exitcode"]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--dry-run"), "{}", out.stderr);
    assert!(moto.recorded_calls("alb-drift").is_empty());

    // Second apply: in sync, no mutating call.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "alb-again")
        .args(["--config"])
        .arg(&cfg)
        .arg("alb-update"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("No changes."), "{}", out.stdout);
    let calls = moto.recorded_calls("alb-again");
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| !c.mutating()),
        "in-sync run mutated: {calls:?}"
    );

    // JSON output of the in-sync state.
    let out = run(bosar(&moto.endpoint, "alb-json")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0);
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["status"], "succeeded");
    let doc = &doc["alb_update"];
    assert_eq!(doc["result"], "no_changes");
    assert_eq!(doc["change_count"], 0);
    assert_eq!(doc["target_group"]["name"], "bosar-api-tg");
}

#[test]
fn by_arn_and_missing_target_group() {
    let moto = Moto::start();
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let arn = read(&moto)["arn"].as_str().unwrap().to_string();

    let by_arn = support::sandbox_config().replacen(
        "name = \"bosar-api-tg\"",
        &format!("arn = \"{arn}\""),
        1,
    );
    let (_d2, cfg_arn) = write_config(&by_arn);
    let out = run(bosar(&moto.endpoint, "alb-arn")
        .args(["--output", "json", "--config"])
        .arg(&cfg_arn)
        .args(["alb-update"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["alb_update"]["result"], "applied");
    assert_eq!(doc["alb_update"]["change_count"], 5);
    assert_eq!(read(&moto)["attrs"]["stickiness.enabled"], "true");

    let missing =
        support::sandbox_config().replacen("name = \"bosar-api-tg\"", "name = \"no-such-tg\"", 1);
    let (_d3, cfg_missing) = write_config(&missing);
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "alb-missing")
        .args(["--config"])
        .arg(&cfg_missing)
        .args(["alb-update"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("target group no-such-tg not found in region us-east-1"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert!(moto
        .recorded_calls("alb-missing")
        .iter()
        .all(|c| !c.mutating()));
}

#[test]
fn slow_start_is_turned_off_with_least_outstanding_requests() {
    let moto = Moto::start();
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
arn = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "slow_start.duration_seconds", "Value": "60"}])
"#,
    );
    let out = run(bosar(&moto.endpoint, "alb-ss")
        .args(["--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert!(
        out.stdout
            .contains("~ slow_start.duration_seconds: 60 -> 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("AWS rejects slow start together with least_outstanding_requests"),
        "{}",
        out.stdout
    );
    let out = run(bosar(&moto.endpoint, "alb-ss2")
        .args(["--config"])
        .arg(&cfg)
        .args(["alb-update"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let after = read(&moto);
    assert_eq!(after["attrs"]["slow_start.duration_seconds"], "0");
    assert_eq!(
        after["attrs"]["load_balancing.algorithm.type"],
        "least_outstanding_requests"
    );
}

#[test]
fn warns_when_idle_timeout_is_too_short_for_the_heartbeat() {
    let moto = Moto::start();
    let text = support::sandbox_config()
        .replacen("idle_timeout = \"120s\"", "", 1)
        .replacen(
            "heartbeat_interval = \"5s\"",
            "heartbeat_interval = \"55s\"",
            1,
        );
    let (_d, cfg) = write_config(&text);
    moto.seed(&cfg, &[]);
    let out = run(bosar(&moto.endpoint, "alb-idle")
        .args(["--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("warning:")
            && out
                .stderr
                .contains("idle timeout 60s is not comfortably above"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("idle_timeout to at least 90s"),
        "{}",
        out.stderr
    );
}

#[test]
fn warns_when_the_target_group_is_attached_to_no_load_balancer() {
    let moto = Moto::start();
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
tg = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]
elb.create_target_group(Name="lonely-tg", Protocol="HTTP", Port=3000, VpcId=tg["VpcId"], TargetType="ip")
"#,
    );
    // No [load_balancer] section: the load balancers are the ones the target group is attached to.
    let text = support::sandbox_config()
        .replacen(
            "[load_balancer]\nname = \"bosar-api-alb\"\nidle_timeout = \"120s\"\n",
            "",
            1,
        )
        .replacen("name = \"bosar-api-tg\"", "name = \"lonely-tg\"", 1);
    assert!(!text.contains("[load_balancer]"), "fixture edit applied");
    let (_d2, lonely) = write_config(&text);
    let out = run(bosar(&moto.endpoint, "alb-lonely")
        .arg("--config")
        .arg(&lonely)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("warning: target group lonely-tg is attached to no load balancer"),
        "{}",
        out.stderr
    );
}
