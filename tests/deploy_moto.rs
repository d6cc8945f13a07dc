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
    assert_valid(&doc);
    let doc = &doc["service"];
    assert!(doc["service"]["task_definition"]
        .as_str()
        .unwrap()
        .ends_with("bosar-api:2"));
    assert_eq!(doc["target_health"][0]["healthy"], 2);
    // Issue 17.9: the running revision's image and the target group by name.
    assert_eq!(doc["running"]["container"], "bosar-api");
    let image = doc["running"]["image"].as_str().unwrap().to_string();
    assert!(image.contains("bosar-api:"), "{doc:#}");
    assert_eq!(doc["target_health"][0]["target_group_name"], "bosar-api-tg");
    let out = run(bosar(&moto.endpoint, "st-text")
        .arg("--config")
        .arg(&cfg)
        .arg("status"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(&format!(
            "Running bosar-api:2, container bosar-api: image {image}"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  bosar-api-tg: 2/2 healthy"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("targetgroup/"), "{}", out.stdout);

    // Issue 17.7: the dry run shows the diff and the preflight of the revision it goes back
    // to, and --detailed-exitcode says a change is pending.
    let out = run(bosar(&moto.endpoint, "rb-dry")
        .arg("--config")
        .arg(&cfg)
        .args(["rollback", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(out.code, 3, "{}", out.all());
    for want in [
        "task definition bosar-api:2 -> bosar-api:1 (an existing revision), container bosar-api:",
        "~ environment.",
        "Preflight checks on the revision to go back to:",
        "~ service bosar-api: bosar-api:2 -> bosar-api:1",
        "dry run: nothing was changed",
    ] {
        assert!(out.stdout.contains(want), "{want}: {}", out.stdout);
    }
    let out = run(bosar(&moto.endpoint, "rb-dry-json")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["rollback", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_valid(&doc);
    let rb = &doc["rollback"];
    assert_eq!(rb["result"], "changes_pending", "{doc:#}");
    assert!(
        rb["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["change"] == "env_changed"
                || c["change"] == "env_added"
                || c["change"] == "env_removed"),
        "{doc:#}"
    );
    let names: Vec<&str> = rb["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["image", "roles", "logs", "secrets"], "{doc:#}");

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

/// Validates an envelope against schema/output.schema.json.
fn assert_valid(doc: &serde_json::Value) {
    let text = std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// Issue 17.7: `rollback --list` lists the revisions newest first with the container's image
/// and marks the running one and the rollback target; `--to` a revision that does not exist
/// says so, lists the recent ones and points at `--list`, and changes nothing.
#[test]
fn rollback_lists_revisions_and_names_a_missing_one() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = sandbox(&moto);
    let out = run(bosar(&moto.endpoint, "dep")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:9.9.9"]));
    assert_eq!(out.code, 0, "{}", out.all());

    let out = run(bosar(&moto.endpoint, "list")
        .arg("--config")
        .arg(&cfg)
        .args(["rollback", "--list"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("Revisions of bosar-api"),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].contains("  2  ACTIVE")
            && lines[1].contains("repo/bosar-api:9.9.9")
            && lines[1].ends_with("<- running"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].contains("  1  ACTIVE") && lines[2].ends_with("<- rollback target"),
        "{}",
        out.stdout
    );

    let out = run(bosar(&moto.endpoint, "list-json")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["rollback", "--list"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_valid(&doc);
    let revs = doc["rollback"]["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2, "{doc:#}");
    assert_eq!(revs[0]["revision"], 2);
    assert_eq!(revs[0]["image"], "repo/bosar-api:9.9.9");
    assert_eq!(revs[0]["running"], true);
    assert_eq!(revs[1]["rollback_target"], true);
    // moto records no registeredAt for task definitions (AWS does): the key is there, null.
    assert!(
        revs[1].as_object().unwrap().contains_key("registered_at"),
        "{doc:#}"
    );

    moto.start_recording();
    let out = run(bosar(&moto.endpoint, "rb-missing")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["rollback", "--to", "7"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("revision bosar-api:7 does not exist (recent revisions of bosar-api: 2, 1)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("rollback --list"), "{}", out.stderr);
    assert!(!out.stderr.contains("ClientException"), "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_valid(&doc);
    let calls = moto.recorded_calls("rb-missing");
    assert!(calls.iter().all(|c| !c.mutating()), "no mutating call");
}

/// Issue 17 point 9: a plan with nothing to change is one line (terraform's "No changes."),
/// plus advice not yet acknowledged; `[ecs] acknowledge` silences the circuit-breaker advice;
/// -v shows the whole plan; `deploy --dry-run` ends saying nothing was changed.
#[test]
fn an_in_sync_plan_is_one_line_and_acknowledged_advice_stays_quiet() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, seeded) = sandbox(&moto);
    // Absent means unmanaged: a file that names only the resources is in sync.
    let minimal = "[aws]\nregion = \"us-east-1\"\n[target_group]\nname = \"bosar-api-tg\"\n[ecs]\ncluster = \"bosar-cluster\"\nservice = \"bosar-api\"\ncontainer = \"bosar-api\"\n";
    let plan = |text: &str, extra: &[&str]| {
        let (dir, cfg) = write_config(text);
        let out = run(bosar(&moto.endpoint, "quiet")
            .args(extra)
            .arg("--config")
            .arg(&cfg)
            .arg("plan"));
        (out, cfg, dir)
    };
    let (out, cfg, _d1) = plan(minimal, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout.trim_end(),
        format!("No changes. AWS matches {}.", cfg.display())
    );
    let (out, _, _d2) = plan(minimal, &["-v"]);
    assert!(
        out.stdout.contains("bosar-deploy plan summary"),
        "{}",
        out.stdout
    );
    // The same service with its circuit breaker off: the advice is shown until acknowledged.
    moto.python(
        "import boto3\nboto3.client('ecs').update_service(cluster='bosar-cluster', service='bosar-api', deploymentConfiguration={'deploymentCircuitBreaker': {'enable': False, 'rollback': False}, 'maximumPercent': 200, 'minimumHealthyPercent': 100})",
    );
    let (out, _, _d3) = plan(minimal, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "WARN circuit_breaker: service bosar-api has the deployment circuit breaker off"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("[ecs] acknowledge = [\"circuit_breaker_off\"]"),
        "{}",
        out.stdout
    );
    let acknowledged = format!("{minimal}acknowledge = [\"circuit_breaker_off\"]\n");
    let (out, cfg, _d4) = plan(&acknowledged, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout.trim_end(),
        format!("No changes. AWS matches {}.", cfg.display())
    );
    assert!(!out.stderr.contains("circuit breaker"), "{}", out.stderr);
    // A typo acknowledges nothing: it is a config error.
    let (out, _, _d5) = plan(
        &format!("{minimal}acknowledge = [\"circuit_breaker\"]\n"),
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.all()
            .contains("ecs.acknowledge: \"circuit_breaker\" is not advice bosar-deploy gives"),
        "{}",
        out.all()
    );
    // A plan with changes still shows them in full, and the summary names the file used.
    let out = run(bosar(&moto.endpoint, "quiet-changes")
        .arg("--config")
        .arg(&seeded)
        .arg("plan"));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("bosar-deploy plan summary"),
        "{}",
        out.stdout
    );
    // deploy --dry-run ends by saying nothing was changed.
    let out = run(bosar(&moto.endpoint, "dry-close")
        .arg("--config")
        .arg(&seeded)
        .args(["deploy", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout.trim_end().lines().last(),
        Some("dry run: nothing was changed (run without --dry-run to deploy)"),
        "{}",
        out.stdout
    );
}

/// Issue 17.6: `deploy` runs plan's target-group checks, so a target group name that makes
/// `plan` fail stops `deploy` too (exit 1, nothing changed); `plan` reports every missing
/// resource (target group, load balancer, cluster) in one run.
#[test]
fn deploy_and_plan_agree_on_the_target_group_and_plan_names_every_missing_resource() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, seeded) = sandbox(&moto);
    let text = std::fs::read_to_string(&seeded).unwrap();
    let typo = text.replacen("name = \"bosar-api-tg\"", "name = \"bosar-api-tq\"", 1);
    assert_ne!(typo, text);
    let (_d1, cfg) = write_config(&typo);
    let out = run(bosar(&moto.endpoint, "tg-plan")
        .arg("--config")
        .arg(&cfg)
        .arg("plan"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("target group bosar-api-tq not found"),
        "{}",
        out.all()
    );
    moto.start_recording();
    for (app, extra) in [
        ("tg-deploy-dry", &["--dry-run"][..]),
        ("tg-deploy", &[][..]),
    ] {
        let out = run(bosar(&moto.endpoint, app)
            .arg("--config")
            .arg(&cfg)
            .args(["deploy", "--image", "repo/bosar-api:7.7.7"])
            .args(extra));
        assert_eq!(out.code, 1, "{app}: {}", out.all());
        assert!(
            out.stderr.contains("target group bosar-api-tq not found")
                && out.stderr.contains("nothing was changed"),
            "{app}: {}",
            out.stderr
        );
        let calls = moto.recorded_calls(app);
        assert!(
            !calls.is_empty() && calls.iter().all(|c| !c.mutating()),
            "{app}"
        );
    }

    // A target group that exists but is not the service's: both refuse (the wiring check).
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
vpc = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["VpcId"]
elb.create_target_group(Name="other-tg", Protocol="HTTP", Port=3000, VpcId=vpc, TargetType="ip")
"#,
    );
    let other = text.replacen("name = \"bosar-api-tg\"", "name = \"other-tg\"", 1);
    let (_d3, cfg) = write_config(&other);
    for verb in [
        &["plan"][..],
        &["deploy", "--image", "repo/bosar-api:7.7.7"][..],
    ] {
        let out = run(bosar(&moto.endpoint, "tg-wiring")
            .arg("--config")
            .arg(&cfg)
            .args(verb));
        assert_eq!(out.code, 1, "{verb:?}: {}", out.all());
        assert!(
            out.all()
                .contains("not in target group other-tg: its stickiness settings would not apply"),
            "{verb:?}: {}",
            out.all()
        );
    }

    // Every missing resource in one run.
    let all_wrong = typo
        .replacen("name = \"bosar-api-alb\"", "name = \"bosar-api-alx\"", 1)
        .replacen(
            "cluster = \"bosar-cluster\"",
            "cluster = \"bosar-clustex\"",
            1,
        );
    let (_d2, cfg) = write_config(&all_wrong);
    let out = run(bosar(&moto.endpoint, "all-plan")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("plan"));
    assert_eq!(out.code, 1, "{}", out.all());
    for want in [
        "target group bosar-api-tq not found",
        "load balancer bosar-api-alx not found",
        "ECS cluster bosar-clustex not found",
    ] {
        assert!(out.stdout.contains(want), "{want}: {}", out.stdout);
    }
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_valid(&doc);
}

/// Issue 17.7: the preflight checks run on the revision `rollback` goes back to: its image
/// deleted from ECR since it last ran stops the rollback (dry run or not) before any change;
/// going "back" to the revision that runs changes nothing (0 even with --detailed-exitcode).
#[test]
fn rollback_runs_preflight_on_the_revision_it_goes_back_to() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2")]);
    let (_d, cfg) = sandbox(&moto);
    let out = run(bosar(&moto.endpoint, "dep")
        .arg("--config")
        .arg(&cfg)
        .args(["deploy", "--image", "repo/bosar-api:9.9.9"]));
    assert_eq!(out.code, 0, "{}", out.all());
    moto.python(
        r#"
import boto3
boto3.client("ecr").batch_delete_image(repositoryName="bosar-api", imageIds=[{"imageTag": "1.4.0"}])
"#,
    );
    moto.start_recording();
    for (app, extra) in [("rb-pre-dry", &["--dry-run"][..]), ("rb-pre", &[][..])] {
        let out = run(bosar(&moto.endpoint, app)
            .arg("--config")
            .arg(&cfg)
            .arg("rollback")
            .args(extra));
        assert_eq!(out.code, 1, "{app}: {}", out.all());
        assert!(out.stdout.contains("FAIL image"), "{app}: {}", out.stdout);
        assert!(
            out.stderr.contains("preflight failed (image)"),
            "{app}: {}",
            out.stderr
        );
        let calls = moto.recorded_calls(app);
        assert!(
            calls.iter().all(|c| !c.mutating()),
            "{app}: a mutating call"
        );
    }
    let state: serde_json::Value = serde_json::from_str(moto.python(TASKDEFS).trim()).unwrap();
    assert!(state["service_td"]
        .as_str()
        .unwrap()
        .ends_with("bosar-api:2"));
    let out = run(bosar(&moto.endpoint, "rb-pre-json")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .arg("rollback"));
    assert_eq!(out.code, 1, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_valid(&doc);
    assert_eq!(doc["rollback"]["result"], "refused", "{doc:#}");
    assert_eq!(doc["rollback"]["preflight"][0]["status"], "fail", "{doc:#}");

    let out = run(bosar(&moto.endpoint, "rb-same")
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args(["rollback", "--to", "2", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_valid(&doc);
    assert_eq!(doc["rollback"]["result"], "no_changes", "{doc:#}");
}
