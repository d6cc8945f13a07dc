//! `init` against an account holding hostile names and values (issue 22.1, 22.2): what AWS
//! holds is data in the file wherever it lands, never TOML code. The written file is read by
//! a second TOML parser (Python's `tomllib`) and compared with what AWS returns; nothing the
//! account wrote becomes `[gateway] url` or `[ecs] image`; `plan` right after changes nothing.

mod support;

use std::path::Path;

use support::{bosar, run, write_config, Moto};

/// Names and values that break out of a hand-written TOML line.
const SEED: &str = r#"
import boto3
elb, ecs = boto3.client("elbv2"), boto3.client("ecs")
arn = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group(TargetGroupArn=arn,
    HealthCheckPath='/h\n[ecs]\nimage = "evil/backdoor:latest"\n#')
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
c = td["containerDefinitions"][0]
c["environment"] += [
    {"name": "WEBSOCKET_NEWLINE", "value": 'x\n[gateway]\nurl = "http://attacker"\n'},
    {"name": "WEBSOCKET_QUOTES", "value": 'say "hi" ]"""'},
    {"name": "WEBSOCKET_LS", "value": "a\u2028b\u2029c\u202ed"},
    {"name": "WEBSOCKET_APP.MODE", "value": "dotted"},
    {"name": "WEBSOCKET_A-B", "value": "dash"},
    {"name": 'WEBSOCKET_]"""', "value": "odd name"},
    {"name": "OTHER_KEPT", "value": "not managed"},
] + EXTRA
keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
        "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage")
new = ecs.register_task_definition(**{k: td[k] for k in keep if k in td})
ecs.update_service(cluster="bosar-cluster", service="bosar-api", taskDefinition=new["taskDefinition"]["taskDefinitionArn"])
"#;

/// Reads `file` with tomllib and compares it with what AWS returns; prints `ok` or the
/// difference. `env_written`: whether `[ecs.environment]` should be there.
fn compare(moto: &Moto, file: &Path, env_written: bool) -> String {
    moto.python(&format!(
        r#"
import boto3, tomllib
doc = tomllib.load(open({file:?}, "rb"))
elb, ecs = boto3.client("elbv2"), boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
env = {{kv["name"]: kv["value"] for kv in td["containerDefinitions"][0]["environment"]}}
managed = {{k: v for k, v in env.items() if k.startswith("WEBSOCKET_")}}
problems = []
if {env_written}:
    if doc["ecs"].get("environment") != managed:
        problems.append(("environment", doc["ecs"].get("environment"), managed))
elif "environment" in doc["ecs"]:
    problems.append(("environment written", doc["ecs"]["environment"]))
want = {{"cluster": "bosar-cluster", "service": "bosar-api", "container": "bosar-api"}}
if {{k: doc["ecs"].get(k) for k in want}} != want or "image" in doc["ecs"]:
    problems.append(("ecs", doc["ecs"]))
if "gateway" in doc:
    problems.append(("gateway", doc["gateway"]))
if doc["target_group"]["name"] != "bosar-api-tg" or doc["aws"] != {{"region": "us-east-1"}}:
    problems.append(("target_group/aws", doc["target_group"], doc["aws"]))
print("ok" if not problems else problems)
"#,
        file = file.display().to_string(),
        env_written = if env_written { "True" } else { "False" },
    ))
    .trim()
    .to_string()
}

fn init(moto: &Moto, dir: &Path, extra: &[&str]) -> support::Run {
    run(bosar(&moto.endpoint, "init-hostile")
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

fn plan(moto: &Moto, file: &Path) -> support::Run {
    run(bosar(&moto.endpoint, "init-hostile-plan")
        .arg("--config")
        .arg(file)
        .args(["plan", "--detailed-exitcode"]))
}

#[test]
fn hostile_values_and_names_that_ecs_passes_on_are_written_as_data() {
    let moto = Moto::start();
    let (_seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    moto.python(&SEED.replace("EXTRA", "[]"));
    let dir = tempfile::tempdir().unwrap();
    let out = init(&moto, dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let file = dir.path().join("deploy.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(compare(&moto, &file, true), "ok", "{text}");
    assert!(
        text.contains("\"WEBSOCKET_APP.MODE\" = \"dotted\""),
        "{text}"
    );
    assert!(text.contains("WEBSOCKET_A-B = \"dash\""), "{text}");
    assert!(
        text.contains(r#"WEBSOCKET_LS = "a\u2028b\u2029c\u202Ed""#),
        "{text}"
    );
    // The health-check path is one escaped line in the commented-out [gateway].
    assert!(
        text.contains(r#"# health_path = "/h\n[ecs]\nimage = \"evil/backdoor:latest\"\n#""#),
        "{text}"
    );
    assert!(
        bosar_deploy::outside::runner_commands(&text).is_empty(),
        "{text}"
    );
    let out = plan(&moto, &file);
    assert_eq!(out.code, 0, "plan right after init: {}", out.all());

    // `--output-file -` prints exactly the bytes the file holds.
    let out = init(&moto, dir.path(), &["--output-file", "-"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout, text, "stdout is the file, byte for byte");
}

#[test]
fn a_name_that_ecs_does_not_pass_on_is_reported_and_never_written() {
    let moto = Moto::start();
    let (_seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    let evil = r#"[{"name": 'WEBSOCKET_ZZ = "1"\n[gateway]\nurl = "http://attacker"\n#', "value": "1"},
               {"name": 'WEBSOCKET_X\nimage = "evil/backdoor:latest"\n#', "value": "2"}]"#;
    moto.python(&SEED.replace("EXTRA", evil));
    let dir = tempfile::tempdir().unwrap();
    let out = init(&moto, dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("[ecs.environment] not written")
            && out
                .stderr
                .contains(r#""WEBSOCKET_ZZ = \"1\"\n[gateway]\nurl = \"http://attacker\"\n#""#),
        "{}",
        out.stderr
    );
    let file = dir.path().join("deploy.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(compare(&moto, &file, false), "ok", "{text}");
    assert!(!text.contains("\nurl = \"http://attacker\""), "{text}");
    let out = plan(&moto, &file);
    assert_eq!(out.code, 0, "plan right after init: {}", out.all());
    assert!(!out.all().contains("evil/backdoor"), "{}", out.all());
    // verify has no address the account wrote: [gateway] is the user's to write.
    let out = run(bosar(&moto.endpoint, "init-hostile-verify")
        .arg("--config")
        .arg(&file)
        .arg("verify"));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(!out.all().contains("attacker"), "{}", out.all());
}
