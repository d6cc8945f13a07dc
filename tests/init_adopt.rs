//! `init`'s file adopts cleanly (issue 17.3, 17.10): a recommendation is adopted by editing
//! one line and `plan` then shows exactly that change; after adopting them all, `--env
//! staging init` adds a valid environment whose block starts with its own sentence;
//! `--config PATH` is where init writes; duplicate keys are reported together; a service
//! without an ALB target group is told what init cannot adopt (exit 2).

mod support;

use std::path::Path;

use support::{bosar, run, write_config, Moto};

fn seeded() -> Moto {
    let moto = Moto::start();
    let (_seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    moto
}

fn bosar_in(moto: &Moto, dir: &Path, app: &str, args: &[&str]) -> support::Run {
    run(bosar(&moto.endpoint, app).current_dir(dir).args(args))
}

const INIT: [&str; 5] = [
    "init",
    "--cluster",
    "bosar-cluster",
    "--service",
    "bosar-api",
];

/// Replaces the one line starting with `from` by `to`; the edit is that line only.
fn adopt(text: &str, from: &str, to: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(from)).collect();
    assert_eq!(lines.len(), 1, "one line starts with {from:?}:\n{text}");
    text.replace(lines[0], to)
}

/// The plan's change lines (`~ key: a -> b`, `+ key: v`, `- key`).
fn changes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("~ ") || l.starts_with("+ ") || l.starts_with("- "))
        .map(str::to_string)
        .collect()
}

#[test]
fn adopting_one_recommendation_is_one_line_and_plan_shows_exactly_it() {
    let moto = seeded();
    let dir = tempfile::tempdir().unwrap();
    let out = bosar_in(&moto, dir.path(), "adopt-init", &INIT);
    assert_eq!(out.code, 0, "{}", out.all());
    let path = dir.path().join("deploy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Each key has one line (active, or commented out when not set today): uncommenting a
    // recommendation never makes a second one.
    for key in [
        "stickiness",
        "algorithm",
        "deregistration_delay",
        "idle_timeout",
    ] {
        let lines = text
            .lines()
            .filter(|l| l.trim_start_matches("# ").starts_with(&format!("{key} =")))
            .count();
        assert_eq!(lines, 1, "{key}:\n{text}");
    }
    let adopted = adopt(&text, "stickiness = \"off\"", "stickiness = \"lb_cookie\"");
    assert_eq!(
        text.lines()
            .zip(adopted.lines())
            .filter(|(a, b)| a != b)
            .count(),
        1
    );
    std::fs::write(&path, &adopted).unwrap();
    let out = bosar_in(
        &moto,
        dir.path(),
        "adopt-plan",
        &["plan", "--detailed-exitcode"],
    );
    assert_eq!(out.code, 3, "{}", out.all());
    assert_eq!(
        changes(&out.stdout),
        vec!["~ stickiness.enabled: false -> true".to_string()],
        "{}",
        out.stdout
    );
}

#[test]
fn config_path_is_where_init_writes() {
    let moto = seeded();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    let cfg = ["--config", "deploy/prod.toml"];
    let out = bosar_in(&moto, dir.path(), "cfg-init", &[&cfg[..], &INIT].concat());
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("Wrote deploy/prod.toml"),
        "{}",
        out.stdout
    );
    assert!(
        !dir.path().join("deploy.toml").exists(),
        "--config is the path"
    );
    let env_init = [&cfg[..], &["--env", "staging"], &INIT].concat();
    let out = bosar_in(&moto, dir.path(), "cfg-init2", &env_init);
    assert_eq!(out.code, 0, "{}", out.all());
    let text = std::fs::read_to_string(dir.path().join("deploy/prod.toml")).unwrap();
    assert!(text.contains("[environments.staging.ecs]"), "{text}");
    assert!(
        !dir.path().join("deploy.toml").exists(),
        "--config is the path"
    );
}

#[test]
fn after_adopting_everything_env_init_adds_a_valid_environment() {
    let moto = seeded();
    let dir = tempfile::tempdir().unwrap();
    let out = bosar_in(&moto, dir.path(), "env-init", &INIT);
    assert_eq!(out.code, 0, "{}", out.all());
    let path = dir.path().join("deploy.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [
        ("stickiness = ", "stickiness = \"lb_cookie\""),
        ("# cookie_duration = ", "cookie_duration = \"24h\""),
        ("algorithm = ", "algorithm = \"least_outstanding_requests\""),
        ("deregistration_delay = ", "deregistration_delay = \"30s\""),
        ("idle_timeout = ", "idle_timeout = \"120s\""),
    ] {
        text = adopt(&text, from, to);
    }
    std::fs::write(&path, &text).unwrap();
    let out = bosar_in(
        &moto,
        dir.path(),
        "env-plan",
        &["plan", "--detailed-exitcode"],
    );
    assert_eq!(out.code, 3, "{}", out.all());
    assert_eq!(changes(&out.stdout).len(), 5, "{}", out.stdout);

    let env_init = [&["--env", "staging"][..], &INIT].concat();
    let out = bosar_in(&moto, dir.path(), "env-init2", &env_init);
    assert_eq!(out.code, 0, "{}", out.all());
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&text), "the file above is kept:\n{after}");
    let block = &after[text.len()..];
    assert!(
        block.starts_with("\n# Environment \"staging\", written by `bosar-deploy init`"),
        "the block opens with its own sentence:\n{block}"
    );
    // Staging runs as the stack does today: nothing to change there.
    let plan = ["--env", "staging", "plan", "--detailed-exitcode"];
    let out = bosar_in(&moto, dir.path(), "env-plan2", &plan);
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn every_duplicate_key_is_reported_in_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let text = support::sandbox_config()
        .replace(
            "stickiness = \"lb_cookie\"",
            "stickiness = \"off\"\nstickiness = \"lb_cookie\"",
        )
        .replace(
            "algorithm = \"least_outstanding_requests\"",
            "algorithm = \"round_robin\"\nalgorithm = \"least_outstanding_requests\"",
        )
        .replace(
            "cluster = \"bosar-cluster\"",
            "cluster = \"bosar-cluster\"\nclustr = \"x\"\ncluster = \"again\"",
        );
    std::fs::write(dir.path().join("deploy.toml"), &text).unwrap();
    let out = run(bosar("http://127.0.0.1:9", "dups")
        .current_dir(dir.path())
        .arg("plan"));
    assert_eq!(out.code, 2, "{}", out.all());
    for want in [
        "duplicate key `stickiness` in table `target_group`",
        "duplicate key `algorithm` in table `target_group`",
        "duplicate key `cluster` in table `ecs`",
        "ecs.clustr: unknown key `clustr`; did you mean `cluster`?",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_service_without_an_alb_target_group_says_what_init_cannot_adopt() {
    let moto = seeded();
    moto.python(
        r#"
import boto3
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
ecs.create_service(cluster="bosar-cluster", serviceName="no-lb", taskDefinition=svc["taskDefinition"], desiredCount=1)
ecs.create_service(cluster="bosar-cluster", serviceName="classic", taskDefinition=svc["taskDefinition"], desiredCount=1,
    loadBalancers=[{"loadBalancerName": "legacy-elb", "containerName": "bosar-api", "containerPort": 3000}])
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    for (service, what) in [
        ("no-lb", "ECS service \"no-lb\" has no load balancer"),
        (
            "classic",
            "ECS service \"classic\" is behind a Classic Load Balancer (\"legacy-elb\")",
        ),
    ] {
        let args = ["init", "--cluster", "bosar-cluster", "--service", service];
        let out = bosar_in(&moto, dir.path(), "nolb", &args);
        assert_eq!(out.code, 2, "{}", out.all());
        assert!(out.stderr.contains(what), "{}", out.stderr);
        assert!(
            out.stderr
                .contains("init cannot write the [target_group] section"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("bug"), "{}", out.stderr);
        assert!(!dir.path().join("deploy.toml").exists());
    }
}

/// A duplicate inside an inline table cannot be stepped over (its line is not a whole
/// `key = value`): it is reported, and nothing is invented after it.
#[test]
fn a_duplicate_that_cannot_be_stepped_over_is_reported_alone() {
    let text = support::sandbox_config().replace(
        "[aws]\nregion = \"us-east-1\"",
        "[aws]\nregion = \"us-east-1\"\nx = { a = 1, a = 2 }\nregion = \"again\"",
    );
    let errs = bosar_deploy::config::parse(Path::new("deploy.toml"), &text).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(errs.0[0].message.contains("duplicate key `a`"), "{errs}");
}

/// `[ecs.environment]` takes the names ECS passes to a container (init writes them quoted);
/// a name with `=` or a space is refused with the rule.
#[test]
fn container_variable_names_follow_ecs_not_the_shell() {
    let with = |line: &str| {
        support::sandbox_config().replacen(
            "[ecs.environment]\n",
            &format!("[ecs.environment]\n{line}\n"),
            1,
        )
    };
    let path = Path::new("deploy.toml");
    for ok in [r#""WEBSOCKET_APP.MODE" = "x""#, r#"WEBSOCKET_A-B = "x""#] {
        let cfg = bosar_deploy::config::parse(path, &with(ok)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.ecs.unwrap().environment.unwrap().len(), 4, "{ok}");
    }
    for bad in [
        r#""WEBSOCKET_A=B" = "x""#,
        r#""WEBSOCKET A" = "x""#,
        "\"WEBSOCKET_\\n\" = \"x\"",
    ] {
        let errs = bosar_deploy::config::parse(path, &with(bad)).unwrap_err();
        assert!(
            errs.to_string()
                .contains("is not an environment variable name")
                && errs
                    .to_string()
                    .contains("printable ASCII without spaces or `=`"),
            "{bad}: {errs}"
        );
    }
}

/// An environment that sets stickiness (or the algorithm) takes none of the base's cookie
/// keys (or anomaly mitigation): they belong to the choice they were written with.
#[test]
fn an_environment_that_chooses_again_does_not_inherit_what_went_with_the_old_choice() {
    let text = support::sandbox_config().replacen(
        "algorithm = \"least_outstanding_requests\"",
        "algorithm = \"weighted_random\"\nanomaly_mitigation = true",
        1,
    ) + "\n[environments.staging.target_group]\nstickiness = \"off\"\nalgorithm = \"round_robin\"\n";
    let path = Path::new("deploy.toml");
    let base = bosar_deploy::config::parse(path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(base.target_group.cookie_duration.is_some());
    let staging = bosar_deploy::config::parse_environment(path, &text, Some("staging"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(staging.target_group.cookie_duration, None);
    assert_eq!(staging.target_group.anomaly_mitigation, None);
}

/// What AWS holds but deploy.toml cannot express is refused with the key, and nothing is
/// written; a base file that does not validate is not added to.
#[test]
fn a_file_that_would_not_validate_is_never_written() {
    let moto = seeded();
    moto.python(
        r#"
import boto3
elb = boto3.client("elbv2")
arn = elb.describe_target_groups(Names=["bosar-api-tg"])["TargetGroups"][0]["TargetGroupArn"]
elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
    {"Key": "stickiness.enabled", "Value": "true"},
    {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "999999999"},
])
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = bosar_in(&moto, dir.path(), "invalid", &INIT);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("does not validate, so it was not written")
            && out.stderr.contains("target_group.cookie_duration"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("deploy.toml").exists());

    let broken = support::sandbox_config().replace("region = \"us-east-1\"", "region = \"mars\"");
    std::fs::write(dir.path().join("deploy.toml"), &broken).unwrap();
    let env_init = [&["--env", "staging"][..], &INIT].concat();
    let out = bosar_in(&moto, dir.path(), "invalid2", &env_init);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("does not validate as it is") && out.stderr.contains("aws.region"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deploy.toml")).unwrap(),
        broken
    );
}
