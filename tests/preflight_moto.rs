//! Preflight checks (issue 13) through the binary against moto: the image tag or repository
//! that is not in ECR, a missing execution role, a role that trusts another service, an
//! awslogs group that is missing (with and without awslogs-create-group), SSM parameters and
//! Secrets Manager secrets that exist and that do not, denied permissions, --skip-preflight,
//! and `plan` showing the checks. The recorder proves a failed check made no mutating call,
//! and that no GetSecretValue and no WithDecryption is ever sent.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{bosar, run, write_config, Call, Moto};

const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const SECRET: &str = "preflight-test-secret";

struct Sandbox {
    moto: Moto,
    _dir: tempfile::TempDir,
    cfg: PathBuf,
}

/// moto with the sandbox seeded (repository bosar-api with tag 1.4.0, both roles, both log
/// groups, the JWT secret), plus tag 1 pushed.
fn sandbox() -> Sandbox {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (dir, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    moto.python(
        r#"
import boto3, json
ecr = boto3.client("ecr")
m = ecr.batch_get_image(repositoryName="bosar-api", imageIds=[{"imageTag": "1.4.0"}])["images"][0]["imageManifest"]
ecr.put_image(repositoryName="bosar-api", imageManifest=m, imageTag="1")
"#,
    );
    Sandbox {
        moto,
        _dir: dir,
        cfg,
    }
}

/// Registers a copy of the service's task definition with `mutation` applied (Python on
/// `t`, the copy's arguments, and `c`, the app container) and points the service at it.
fn revise(moto: &Moto, mutation: &str) -> String {
    let code = format!(
        r#"
import boto3, json
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
cur = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
keep = ["family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
        "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage"]
t = {{k: cur[k] for k in keep if k in cur}}
c = next(x for x in t["containerDefinitions"] if x["name"] == "bosar-api")
{mutation}
arn = ecs.register_task_definition(**t)["taskDefinition"]["taskDefinitionArn"]
ecs.update_service(cluster="bosar-cluster", service="bosar-api", taskDefinition=arn)
print(arn)
"#
    );
    moto.python(&code).trim().to_string()
}

fn task_definition_count(moto: &Moto) -> usize {
    moto.python(
        r#"
import boto3
print(len(boto3.client("ecs").list_task_definitions(familyPrefix="bosar-api")["taskDefinitionArns"]))
"#,
    )
    .trim()
    .parse()
    .unwrap()
}

fn deploy(s: &Sandbox, app: &str, args: &[&str]) -> support::Run {
    run(bosar(&s.moto.endpoint, app)
        .arg("--config")
        .arg(&s.cfg)
        .arg("deploy")
        .args(args))
}

fn deploy_json(s: &Sandbox, app: &str, args: &[&str]) -> (support::Run, serde_json::Value) {
    let out = run(bosar(&s.moto.endpoint, app)
        .args(["--output", "json", "--config"])
        .arg(&s.cfg)
        .arg("deploy")
        .args(args));
    let doc = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", out.all()));
    (out, doc)
}

/// The preflight check `name` of a deploy JSON document.
fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["deploy"]["preflight"]
        .as_array()
        .unwrap_or_else(|| panic!("no preflight in {doc}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

/// Every call of the process was a read, and none asked for a secret value.
fn assert_read_only(calls: &[Call]) {
    assert!(!calls.is_empty(), "no calls recorded");
    let mutating: Vec<&str> = calls
        .iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation.as_str())
        .collect();
    assert!(mutating.is_empty(), "mutating calls: {mutating:?}");
    assert_no_secret_values(calls);
}

fn assert_no_secret_values(calls: &[Call]) {
    for c in calls {
        assert_ne!(c.operation, "GetSecretValue", "{calls:?}");
        assert!(
            !c.body.contains("WithDecryption"),
            "{} sent WithDecryption: {}",
            c.operation,
            c.body
        );
    }
}

fn ops(calls: &[Call]) -> Vec<&str> {
    calls.iter().map(|c| c.operation.as_str()).collect()
}

#[test]
fn an_image_tag_not_in_ecr_fails_in_seconds_before_any_change_and_a_pushed_one_passes() {
    let s = sandbox();
    let before = task_definition_count(&s.moto);

    // The typo: tag 2 was never pushed. Not a dry run: nothing may be registered.
    s.moto.start_recording();
    let started = Instant::now();
    let out = deploy(
        &s,
        "pf-tag2",
        &["--image", &format!("{REGISTRY}/bosar-api:2")],
    );
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}:\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains(
            "bosar-api: tag 2 is not in ECR repository bosar-api (account 123456789012, us-east-1); push it first"
        ),
        "{}",
        out.all()
    );
    assert!(
        out.stderr
            .contains("preflight failed (image); nothing was registered"),
        "{}",
        out.stderr
    );
    let calls = s.moto.recorded_calls("pf-tag2");
    assert_read_only(&calls);
    assert!(ops(&calls).contains(&"DescribeImages"), "{calls:?}");
    assert!(
        !ops(&calls).contains(&"BatchGetImage"),
        "a pull, not a read"
    );
    assert_eq!(task_definition_count(&s.moto), before, "nothing registered");

    // A repository name typo, dry run, JSON: the same stop, with evidence.
    let (out, doc) = deploy_json(
        &s,
        "pf-repo",
        &["--dry-run", "--image", &format!("{REGISTRY}/bosar-apu:1")],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    let image = check(&doc, "image");
    assert_eq!(image["status"], "fail", "{image}");
    assert!(
        image["message"]
            .as_str()
            .unwrap()
            .contains("ECR repository bosar-apu (account 123456789012, us-east-1) does not exist"),
        "{image}"
    );
    let finding = &image["evidence"]["findings"][0];
    assert_eq!(finding["evidence"]["repository"], "bosar-apu");
    assert_eq!(finding["evidence"]["tag"], "1");

    // Tag 1 is there: the deploy goes through, and the sidecar's public image is information.
    s.moto.start_recording();
    let out = deploy(
        &s,
        "pf-tag1",
        &["--image", &format!("{REGISTRY}/bosar-api:1")],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    for line in [
        "bosar-api: tag 1 is in ECR repository bosar-api",
        "log-router: public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0 is not in a private ECR registry (public.ecr.aws); existence not checked",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}:\n{}", out.stdout);
    }
    let calls = s.moto.recorded_calls("pf-tag1");
    assert_no_secret_values(&calls);
    let mutating: Vec<&str> = calls
        .iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation.as_str())
        .collect();
    assert_eq!(mutating, ["RegisterTaskDefinition", "UpdateService"]);
    assert_eq!(task_definition_count(&s.moto), before + 1);

    // By digest: the digest of tag 1, and one that is not there.
    let digest = s
        .moto
        .python(
            r#"
import boto3
print(boto3.client("ecr").describe_images(repositoryName="bosar-api", imageIds=[{"imageTag": "1"}])["imageDetails"][0]["imageDigest"])
"#,
        )
        .trim()
        .to_string();
    let out = deploy(
        &s,
        "pf-digest",
        &[
            "--dry-run",
            "--image",
            &format!("{REGISTRY}/bosar-api@{digest}"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(&format!("digest {digest} is in ECR")),
        "{}",
        out.stdout
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let out = deploy(
        &s,
        "pf-nodigest",
        &[
            "--dry-run",
            "--image",
            &format!("{REGISTRY}/bosar-api:1@{missing}"),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout
            .contains(&format!("digest {missing} is not in ECR")),
        "{}",
        out.stdout
    );
}

#[test]
fn an_ecr_image_in_another_region_is_checked_there() {
    let s = sandbox();
    s.moto.python(
        r#"
import boto3, json
src = boto3.client("ecr")
m = src.batch_get_image(repositoryName="bosar-api", imageIds=[{"imageTag": "1.4.0"}])["images"][0]["imageManifest"]
eu = boto3.client("ecr", region_name="eu-west-1")
eu.create_repository(repositoryName="mirror/bosar-api")
eu.put_image(repositoryName="mirror/bosar-api", imageManifest=m, imageTag="7")
"#,
    );
    let eu = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/bosar-api";
    let out = deploy(&s, "pf-eu", &["--dry-run", "--image", &format!("{eu}:7")]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(
            "tag 7 is in ECR repository mirror/bosar-api (account 123456789012, eu-west-1)"
        ),
        "{}",
        out.stdout
    );
    // The same repository name does not exist in us-east-1: the region decides.
    let out = deploy(
        &s,
        "pf-us",
        &[
            "--dry-run",
            "--image",
            &format!("{REGISTRY}/mirror/bosar-api:7"),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.all());
}

#[test]
fn a_missing_execution_role_and_a_role_trusting_another_service_fail() {
    let s = sandbox();
    s.moto.python(
        r#"
import boto3
boto3.client("iam").delete_role(RoleName="bosar-api-task-execution")
"#,
    );
    s.moto.start_recording();
    let out = deploy(&s, "pf-norole", &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains(
            "execution role bosar-api-task-execution: does not exist (IAM NoSuchEntity); create it"
        ),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("preflight failed (roles)"),
        "{}",
        out.stderr
    );
    let calls = s.moto.recorded_calls("pf-norole");
    assert_read_only(&calls);
    assert!(ops(&calls).contains(&"GetRole"), "{calls:?}");

    // Back, but the task role now trusts Lambda only.
    s.moto.python(
        r#"
import boto3, json
iam = boto3.client("iam")
ecs_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
iam.create_role(RoleName="bosar-api-task-execution", AssumeRolePolicyDocument=json.dumps(ecs_trust))
lambda_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": "sts:AssumeRole"}]}
iam.update_assume_role_policy(RoleName="bosar-api-task", PolicyDocument=json.dumps(lambda_trust))
"#,
    );
    let (out, doc) = deploy_json(&s, "pf-trust", &["--dry-run"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let roles = check(&doc, "roles");
    assert_eq!(roles["status"], "fail");
    let msg = roles["message"].as_str().unwrap();
    assert!(
        msg.contains("task role bosar-api-task: its trust policy does not let ecs-tasks.amazonaws.com assume it (it trusts lambda.amazonaws.com)"),
        "{msg}"
    );
    assert!(
        !msg.contains("bosar-api-task-execution"),
        "the execution role passes: {msg}"
    );
    let findings = roles["evidence"]["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["status"] == "pass"
                && f["subject"] == "execution role bosar-api-task-execution"),
        "{roles}"
    );

    // The ECS service's own principal (`ecs.amazonaws.com`) is not the tasks' one (issue 22's
    // point 11): an execution role that trusts it fails too.
    s.moto.python(
        r#"
import boto3, json
ecs_service = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
boto3.client("iam").update_assume_role_policy(RoleName="bosar-api-task-execution", PolicyDocument=json.dumps(ecs_service))
"#,
    );
    let (out, doc) = deploy_json(&s, "pf-trust-ecs", &["--dry-run"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let roles = check(&doc, "roles");
    assert_eq!(roles["status"], "fail");
    let msg = roles["message"].as_str().unwrap();
    assert!(
        msg.contains("execution role bosar-api-task-execution: its trust policy does not let ecs-tasks.amazonaws.com assume it (it trusts ecs.amazonaws.com)"),
        "{msg}"
    );
}

#[test]
fn an_awslogs_group_that_is_missing_fails_unless_ecs_may_create_it() {
    let s = sandbox();
    // /ecs/bosar-api goes; /ecs/bosar-api/log-router (same prefix) stays.
    s.moto.python(
        r#"
import boto3
boto3.client("logs").delete_log_group(logGroupName="/ecs/bosar-api")
"#,
    );
    s.moto.start_recording();
    let out = deploy(&s, "pf-nolog", &["--dry-run"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("bosar-api: log group /ecs/bosar-api does not exist in us-east-1; create it (aws logs create-log-group --log-group-name /ecs/bosar-api --region us-east-1) or set awslogs-create-group = \"true\""),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout
            .contains("log-router: log group /ecs/bosar-api/log-router does not exist"),
        "{}",
        out.stdout
    );
    let calls = s.moto.recorded_calls("pf-nolog");
    assert_read_only(&calls);
    assert!(ops(&calls).contains(&"DescribeLogGroups"));

    // Also as a real deploy: stopped before RegisterTaskDefinition.
    s.moto.start_recording();
    let out = deploy(&s, "pf-nolog-go", &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_read_only(&s.moto.recorded_calls("pf-nolog-go"));

    // With awslogs-create-group, ECS creates it at first start: no failure.
    revise(
        &s.moto,
        r#"c["logConfiguration"]["options"]["awslogs-create-group"] = "true""#,
    );
    let (out, doc) = deploy_json(&s, "pf-create", &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let logs = check(&doc, "logs");
    assert_eq!(logs["status"], "pass", "{logs}");
    assert!(
        logs["message"]
            .as_str()
            .unwrap()
            .contains("awslogs-create-group is true, ECS creates it if missing"),
        "{logs}"
    );

    // A group in another region (awslogs-region) is looked for there.
    s.moto.python(
        r#"
import boto3
boto3.client("logs", region_name="eu-west-1").create_log_group(logGroupName="/ecs/bosar-api")
"#,
    );
    revise(
        &s.moto,
        r#"c["logConfiguration"]["options"].pop("awslogs-create-group"); c["logConfiguration"]["options"]["awslogs-region"] = "eu-west-1""#,
    );
    let out = deploy(&s, "pf-eulog", &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("bosar-api: log group /ecs/bosar-api exists (eu-west-1)"),
        "{}",
        out.stdout
    );
}

#[test]
fn secrets_that_exist_pass_and_missing_ones_fail_without_reading_any_value() {
    let s = sandbox();
    let fixtures = s.moto.python(
        r#"
import boto3, json
ssm = boto3.client("ssm")
ssm.put_parameter(Name="/bosar/api/db-url", Value="postgres://sandbox-only", Type="SecureString")
ssm.put_parameter(Name="redis-url", Value="redis://sandbox-only", Type="String")
for i in range(11):
    ssm.put_parameter(Name=f"/bosar/api/flag-{i}", Value="on", Type="String")
boto3.client("ssm", region_name="eu-west-1").put_parameter(Name="/bosar/shared/key", Value="eu-only", Type="SecureString")
sm = boto3.client("secretsmanager")
jwt = sm.describe_secret(SecretId="bosar-api/jwt-secret")["ARN"]
db = sm.create_secret(Name="bosar-api/db", SecretString=json.dumps({"password": "sandbox-only"}))["ARN"]
gone = sm.create_secret(Name="bosar-api/old", SecretString="x")["ARN"]
sm.delete_secret(SecretId=gone, RecoveryWindowInDays=7)
print(json.dumps({"jwt": jwt, "db": db, "gone": gone}))
"#,
    );
    let arns: serde_json::Value = serde_json::from_str(fixtures.trim()).unwrap();
    let (jwt, db, gone) = (
        arns["jwt"].as_str().unwrap(),
        arns["db"].as_str().unwrap(),
        arns["gone"].as_str().unwrap(),
    );
    // All references that exist, in every form: 1 + 11 + 1 SSM names in us-east-1 (two
    // GetParameters calls: 10 at most each), an ARN in eu-west-1, Secrets Manager by ARN,
    // with a JSON key and stage, and through /aws/reference/secretsmanager.
    let mut good = vec![
        ("JWT_SECRET".to_string(), jwt.to_string()),
        ("DB_URL".into(), "/bosar/api/db-url".into()),
        ("REDIS_URL".into(), "redis-url".into()),
        (
            "SHARED_KEY".into(),
            "arn:aws:ssm:eu-west-1:123456789012:parameter/bosar/shared/key".into(),
        ),
        ("DB_PASSWORD".into(), format!("{db}:password:AWSCURRENT:")),
        (
            "DB_VIA_SSM".into(),
            "/aws/reference/secretsmanager/bosar-api/db".into(),
        ),
    ];
    for i in 0..11 {
        good.push((format!("FLAG_{i}"), format!("/bosar/api/flag-{i}")));
    }
    let secrets_py = |list: &[(String, String)]| {
        serde_json::to_string(
            &list
                .iter()
                .map(|(n, v)| serde_json::json!({"name": n, "valueFrom": v}))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    revise(&s.moto, &format!("c[\"secrets\"] = {}", secrets_py(&good)));
    s.moto.start_recording();
    let (out, doc) = deploy_json(&s, "pf-sec-ok", &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let secrets = check(&doc, "secrets");
    assert_eq!(secrets["status"], "pass", "{secrets}");
    let findings = secrets["evidence"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), good.len(), "{secrets}");
    let by_name = |n: &str| {
        findings
            .iter()
            .find(|f| f["evidence"]["name"] == n)
            .unwrap_or_else(|| panic!("no finding for {n}: {secrets}"))
    };
    assert_eq!(by_name("SHARED_KEY")["evidence"]["region"], "eu-west-1");
    assert!(by_name("DB_PASSWORD")["message"]
        .as_str()
        .unwrap()
        .contains("JSON key password not checked"));
    assert_eq!(by_name("DB_VIA_SSM")["evidence"]["kind"], "secretsmanager");
    let calls = s.moto.recorded_calls("pf-sec-ok");
    assert_read_only(&calls);
    let count = |op: &str| calls.iter().filter(|c| c.operation == op).count();
    assert_eq!(
        count("GetParameters"),
        3,
        "2 in us-east-1 (13 names), 1 in eu-west-1: {calls:?}"
    );
    assert!(count("DescribeSecret") >= 2, "{calls:?}");
    let text = out.all();
    for value in ["sandbox-only", "eu-only", "redis://"] {
        assert!(!text.contains(value), "a value leaked: {value}");
    }

    // References that do not exist: each named, the others still pass.
    let bad = vec![
        ("JWT_SECRET".to_string(), jwt.to_string()),
        ("DB_URL".into(), "/bosar/api/nope".into()),
        (
            "API_KEY".into(),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:bosar-api/nope-AbCdEf".into(),
        ),
        ("OLD".into(), gone.to_string()),
        (
            "EU_MISSING".into(),
            "arn:aws:ssm:eu-west-1:123456789012:parameter/bosar/api/db-url".into(),
        ),
    ];
    revise(&s.moto, &format!("c[\"secrets\"] = {}", secrets_py(&bad)));
    s.moto.start_recording();
    let out = deploy(&s, "pf-sec-bad", &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    for line in [
        "bosar-api DB_URL: SSM parameter /bosar/api/nope (us-east-1) does not exist",
        "bosar-api API_KEY: Secrets Manager secret arn:aws:secretsmanager:us-east-1:123456789012:secret:bosar-api/nope-AbCdEf (us-east-1) does not exist (ResourceNotFoundException)",
        "bosar-api OLD: Secrets Manager secret",
        "is scheduled for deletion",
        "bosar-api EU_MISSING: SSM parameter arn:aws:ssm:eu-west-1:123456789012:parameter/bosar/api/db-url (eu-west-1) does not exist",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}:\n{}", out.stdout);
    }
    assert!(
        !out.stdout.contains("bosar-api JWT_SECRET"),
        "only what is wrong is in a failing check's message:\n{}",
        out.stdout
    );
    let calls = s.moto.recorded_calls("pf-sec-bad");
    assert_read_only(&calls);
}

#[test]
fn denied_permissions_are_warnings_naming_the_permission() {
    let s = sandbox();
    // A deploying user that may do everything but these three reads, then moto enforces IAM.
    let keys = s.moto.python(
        r#"
import boto3, json
iam = boto3.client("iam")
iam.create_user(UserName="deployer")
iam.put_user_policy(UserName="deployer", PolicyName="deploy", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["iam:GetRole", "ecr:DescribeImages", "ssm:GetParameters"], "Resource": "*"},
    ]}))
k = iam.create_access_key(UserName="deployer")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#,
    );
    let (id, secret) = keys.trim().split_once(' ').unwrap();
    revise(
        &s.moto,
        r#"c["secrets"].append({"name": "DB_URL", "valueFrom": "/bosar/api/db-url"})"#,
    );
    let (status, _) = support::http(s.moto.port, "POST", "/moto-api/reset-auth", "0");
    assert_eq!(status, 200);
    let out = run(bosar(&s.moto.endpoint, "pf-denied")
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .args(["--output", "json", "--config"])
        .arg(&s.cfg)
        .args([
            "deploy",
            "--dry-run",
            "--image",
            &format!("{REGISTRY}/bosar-api:2"),
        ]));
    assert_eq!(out.code, 0, "warnings do not stop a deploy:\n{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for (name, permission) in [
        ("image", "ecr:DescribeImages denied"),
        ("roles", "iam:GetRole denied"),
        ("secrets", "ssm:GetParameters denied"),
    ] {
        let c = check(&doc, name);
        assert_eq!(c["status"], "warn", "{c}");
        let msg = c["message"].as_str().unwrap();
        assert!(msg.contains(permission), "{msg}");
        assert!(msg.contains(&format!("--skip-preflight {name}")), "{msg}");
    }
    // What was allowed still ran: the secret by DescribeSecret, the log groups.
    assert_eq!(check(&doc, "logs")["status"], "pass");
}

#[test]
fn skip_preflight_skips_one_check_with_a_warning_in_every_report() {
    let s = sandbox();
    let image = format!("{REGISTRY}/bosar-api:2");
    let out = deploy(
        &s,
        "pf-skip",
        &["--dry-run", "--skip-preflight", "image", "--image", &image],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("warning: preflight check image skipped (--skip-preflight image)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("skipped (--skip-preflight image): not checked before deploying"),
        "{}",
        out.stdout
    );

    // plan: the pipeline's report has the warning and the check.
    s.moto.start_recording();
    let out = run(bosar(&s.moto.endpoint, "pf-plan-skip")
        .args(["--output", "json", "--config"])
        .arg(&s.cfg)
        .args(["plan", "--skip-preflight", "image", "--image", &image]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("--skip-preflight image")),
        "{doc}"
    );
    let calls = s.moto.recorded_calls("pf-plan-skip");
    assert_read_only(&calls);
    assert!(
        !ops(&calls).contains(&"DescribeImages"),
        "a skipped check makes no call: {calls:?}"
    );

    // An unknown name is a usage error.
    let out = deploy(
        &s,
        "pf-skip-bad",
        &["--dry-run", "--skip-preflight", "imgae"],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("image, roles, logs, secrets"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_shows_the_preflight_checks_and_full_stops_before_any_change() {
    let s = sandbox();
    s.moto.start_recording();
    let out = run(bosar(&s.moto.endpoint, "pf-plan")
        .arg("--config")
        .arg(&s.cfg)
        .arg("plan"));
    assert_eq!(out.code, 0, "{}", out.all());
    for name in ["image", "roles", "logs", "secrets"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains("PASS") && l.split_whitespace().nth(1) == Some(name)),
            "no passing {name} check in:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains(
            "bosar-api JWT_SECRET: Secrets Manager secret arn:aws:secretsmanager:us-east-1:123456789012:secret:bosar-api/jwt-secret-"
        ),
        "{}",
        out.stdout
    );
    assert_read_only(&s.moto.recorded_calls("pf-plan"));

    // JSON: the checks are in the preflight step, with their evidence.
    let out = run(bosar(&s.moto.endpoint, "pf-plan-json")
        .args(["--output", "json", "--config"])
        .arg(&s.cfg)
        .arg("plan"));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let pre = doc["pipeline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "preflight")
        .unwrap();
    for name in ["image", "roles", "logs", "secrets"] {
        let c = pre["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {pre}"));
        assert!(c["evidence"]["findings"].is_array(), "{c}");
    }

    // full with a broken image: preflight fails, alb-update and deploy never run.
    s.moto.start_recording();
    let out = run(bosar(&s.moto.endpoint, "pf-full")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .arg("--config")
        .arg(&s.cfg)
        .args([
            "full",
            "--skip-verify",
            "--image",
            &format!("{REGISTRY}/bosar-api:2"),
        ]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("preflight failed; nothing was changed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("bosar-api: tag 2 is not in ECR repository bosar-api"),
        "{}",
        out.stdout
    );
    assert_read_only(&s.moto.recorded_calls("pf-full"));
}
