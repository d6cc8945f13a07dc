//! deploy against a real moto server: the new revision keeps every field, the service points
//! at it, dry run records no mutating call, missing service/cluster, timeout and Ctrl-C.

mod support;

use std::time::{Duration, Instant};

use support::{bosar, run, write_config, Moto};

const TASKDEFS: &str = r#"
import boto3, json
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
arns = ecs.list_task_definitions(familyPrefix="bosar-api")["taskDefinitionArns"]
tds = {}
for a in arns:
    r = ecs.describe_task_definition(taskDefinition=a, include=["TAGS"])
    td = r["taskDefinition"]; td["tags"] = r.get("tags", [])
    for k in ("registeredAt", "registeredBy", "deregisteredAt"):
        td.pop(k, None)
    tds[a.rsplit(":", 1)[1]] = td
print(json.dumps({"service_td": svc["taskDefinition"], "tds": tds}, default=str))
"#;

fn sandbox(moto: &Moto) -> (tempfile::TempDir, std::path::PathBuf) {
    let (d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    (d, cfg)
}

#[test]
fn deploy_registers_a_full_copy_with_new_env_and_image_and_succeeds() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = sandbox(&moto);

    // Dry run: the plan, and no mutating call.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "dep-dry")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--dry-run", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    for line in [
        "~ image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1.4.0 -> repo/bosar-api:1.5.0",
        "+ environment.WEBSOCKET_HEARTBEAT_INTERVAL: 5000",
        "~ environment.WEBSOCKET_PING_INTERVAL: 20000 -> 10000",
        "~ service bosar-api: update to the new revision",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?} in:\n{}", out.stdout);
    }
    let calls = moto.recorded_calls("dep-dry");
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "DescribeTaskDefinition"),
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|c| !c.mutating()),
        "dry run mutated: {calls:?}"
    );

    // The deploy.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "dep-go")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("deployment of bosar-api:2 succeeded"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("Registered bosar-api:2"),
        "{}",
        out.stderr
    );
    let mutating: Vec<String> = moto
        .recorded_calls("dep-go")
        .into_iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation)
        .collect();
    assert_eq!(mutating, vec!["RegisterTaskDefinition", "UpdateService"]);

    let state: serde_json::Value = serde_json::from_str(moto.python(TASKDEFS).trim()).unwrap();
    assert!(
        state["service_td"]
            .as_str()
            .unwrap()
            .ends_with("bosar-api:2"),
        "service points at the new revision"
    );
    let (old, new) = (&state["tds"]["1"], &state["tds"]["2"]);
    // Every field kept except the ones that identify the revision, and the app container.
    for key in [
        "cpu",
        "memory",
        "networkMode",
        "executionRoleArn",
        "taskRoleArn",
        "requiresCompatibilities",
        "volumes",
        "family",
        "runtimePlatform",
        "ephemeralStorage",
    ] {
        assert_eq!(old[key], new[key], "field {key} changed");
    }
    assert!(
        !old["tags"].as_array().unwrap().is_empty(),
        "fixture has tags"
    );
    // The tags are kept, and the run's id is added (what a lost answer is resolved by).
    let mut new_tags = new["tags"].as_array().unwrap().clone();
    let run_tag = new_tags
        .iter()
        .position(|t| t["key"] == "bosar-deploy:run-id")
        .expect("the run's tag");
    assert!(new_tags.remove(run_tag)["value"].as_str().unwrap().len() > 10);
    assert_eq!(old["tags"].as_array().unwrap(), &new_tags, "tags kept");
    let containers =
        |td: &serde_json::Value| td["containerDefinitions"].as_array().unwrap().clone();
    let (oc, nc) = (containers(old), containers(new));
    assert_eq!(oc.len(), nc.len());
    let app = |cs: &[serde_json::Value]| {
        cs.iter()
            .find(|c| c["name"] == "bosar-api")
            .unwrap()
            .clone()
    };
    let side = |cs: &[serde_json::Value]| {
        cs.iter()
            .find(|c| c["name"] == "log-router")
            .unwrap()
            .clone()
    };
    assert_eq!(side(&oc), side(&nc), "the sidecar is untouched");
    let (oa, na) = (app(&oc), app(&nc));
    assert_eq!(na["image"], "repo/bosar-api:1.5.0");
    for key in [
        "secrets",
        "logConfiguration",
        "portMappings",
        "essential",
        "healthCheck",
    ] {
        assert_eq!(oa[key], na[key], "container field {key} changed");
    }
    let env: std::collections::BTreeMap<String, String> = na["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv["name"].as_str().unwrap().to_string(),
                kv["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(env["WEBSOCKET_PING_INTERVAL"], "10000");
    assert_eq!(env["WEBSOCKET_PING_TIMEOUT"], "20000");
    assert_eq!(env["WEBSOCKET_HEARTBEAT_INTERVAL"], "5000");
    let old_other: Vec<&serde_json::Value> = oa["environment"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|kv| !kv["name"].as_str().unwrap().starts_with("WEBSOCKET_"))
        .collect();
    for kv in old_other {
        assert_eq!(
            env.get(kv["name"].as_str().unwrap()).map(String::as_str),
            kv["value"].as_str(),
            "non-managed env kept"
        );
    }

    // In sync now: a second deploy changes nothing and restarts nothing.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "dep-same")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["deploy"]["result"], "no_changes");
    assert_eq!(doc["deploy"]["plan"]["action"], "none");
    let calls = moto.recorded_calls("dep-same");
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|c| !c.mutating()), "{calls:?}");
    let out = run(bosar(&moto.endpoint, "dep-same-text")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:1.5.0"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("No changes:"), "{}", out.stdout);

    // --force-new-deployment restarts the tasks of the current revision.
    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "dep-force")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args([
            "deploy",
            "--image",
            "repo/bosar-api:1.5.0",
            "--force-new-deployment",
        ]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["deploy"]["plan"]["action"], "force_new_deployment");
    assert_eq!(doc["deploy"]["outcome"]["outcome"], "succeeded");
    let mutating: Vec<String> = moto
        .recorded_calls("dep-force")
        .into_iter()
        .filter(|c| c.mutating())
        .map(|c| c.operation)
        .collect();
    assert_eq!(mutating, vec!["UpdateService"]);
}

#[test]
fn missing_service_and_cluster_are_clear_errors() {
    let moto = Moto::start();
    let (_d, cfg) = sandbox(&moto);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (_d2, no_svc) =
        write_config(&text.replacen("service = \"bosar-api\"", "service = \"nope\"", 1));
    let out = run(bosar(&moto.endpoint, "dep-nosvc")
        .arg("--config")
        .arg(&no_svc)
        .arg("deploy"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("ECS service nope not found in cluster bosar-cluster (MISSING)"),
        "{}",
        out.stderr
    );
    // --output json prints a document on the error path too.
    let out = run(bosar(&moto.endpoint, "dep-nosvc-json")
        .args(["--output", "json", "--config"])
        .arg(&no_svc)
        .arg("deploy"));
    assert_eq!(out.code, 1, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["exit_code"], 1);
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ECS service nope not found"));

    let (_d3, no_cluster) =
        write_config(&text.replacen("cluster = \"bosar-cluster\"", "cluster = \"nope\"", 1));
    let out = run(bosar(&moto.endpoint, "dep-nocl")
        .arg("--config")
        .arg(&no_cluster)
        .arg("deploy"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("ECS cluster nope not found in region us-east-1"),
        "{}",
        out.stderr
    );

    let (_d4, no_container) =
        write_config(&text.replacen("container = \"bosar-api\"", "container = \"api\"", 1));
    let out = run(bosar(&moto.endpoint, "dep-noct")
        .arg("--config")
        .arg(&no_container)
        .args(["deploy", "--dry-run"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(
            "container api is not in task definition bosar-api:1; it has: bosar-api, log-router"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_rollout_that_never_completes_times_out_with_exit_4_and_ctrl_c_exits_130() {
    // Without MOTO_ECS_SERVICE_RUNNING, moto's deployments stay IN_PROGRESS forever.
    let moto = Moto::start();
    let (_d, cfg) = sandbox(&moto);
    let start = Instant::now();
    let out = run(bosar(&moto.endpoint, "dep-timeout")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--timeout", "2s"]));
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.stderr
            .contains("timed out after 2s waiting for deployment"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("IN_PROGRESS"),
        "state at timeout: {}",
        out.stderr
    );
    // The resume command repeats the --config the run was given.
    let resume = format!(
        "resume watching with: bosar-deploy --config {} wait --deployment ",
        cfg.display()
    );
    assert!(out.stderr.contains(&resume), "{}", out.stderr);
    assert!(start.elapsed() < Duration::from_secs(30));

    // Ctrl-C once the watch has started (read from the progress lines, not a fixed sleep).
    // The service already runs the new revision: restart its tasks to have a rollout.
    let mut child = bosar(&moto.endpoint, "dep-int")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--timeout", "5m", "--force-new-deployment"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut progress, &mut line).unwrap();
        assert!(n > 0, "deploy ended before watching: {seen}");
        seen.push_str(&line);
        if line.contains("IN_PROGRESS") {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut progress, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = seen + &rest;
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped watching; the rollout goes on in AWS"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{resume}ecs-svc/")), "{stderr}");
}

#[test]
fn status_and_rollback() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = sandbox(&moto);
    let out = run(bosar(&moto.endpoint, "dep-1")
        .arg("--config")
        .arg(&cfg)
        .arg("deploy"));
    assert_eq!(out.code, 0, "{}", out.all());

    let out = run(bosar(&moto.endpoint, "st")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("status"));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let doc = &doc["service"];
    assert!(doc["service"]["task_definition"]
        .as_str()
        .unwrap()
        .ends_with("bosar-api:2"));
    assert_eq!(doc["target_health"][0]["healthy"], 2);

    let out = run(bosar(&moto.endpoint, "rb")
        .arg("--config")
        .arg(&cfg)
        .arg("rollback"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("~ service bosar-api: bosar-api:2 -> bosar-api:1"),
        "{}",
        out.stdout
    );
    let state: serde_json::Value = serde_json::from_str(moto.python(TASKDEFS).trim()).unwrap();
    assert!(state["service_td"]
        .as_str()
        .unwrap()
        .ends_with("bosar-api:1"));

    let out = run(bosar(&moto.endpoint, "rb2")
        .arg("--config")
        .arg(&cfg)
        .args(["rollback", "--to", "2", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("bosar-api:1 -> bosar-api:2"),
        "{}",
        out.stdout
    );
}
