//! `init` writes the service's deploymentConfiguration as `[ecs.deployment]`: the file
//! validates, says what ECS says (values as data), and plans no change; a service that
//! reports none gets the table commented out. Against moto: what UpdateService stored comes
//! back through init, and `plan` right after changes nothing.

mod support;

use std::path::Path;

use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentStrategy,
};
use bosar_deploy::config::{parse, Strategy, Tenths};
use bosar_deploy::ecs::strategy::{merged_configuration, plan_changes, section_of};
use bosar_deploy::init::{readback, render, sections};
use support::{bosar, run, write_config, Moto};

fn discovered(deployment: Option<&DeploymentConfiguration>) -> sections::Discovered {
    sections::Discovered {
        region: "us-east-1".into(),
        cluster: "bosar-cluster".into(),
        service: "bosar-api".into(),
        container: "bosar-api".into(),
        target_group: Some(sections::TargetGroupFacts {
            name: "bosar-api-tg".into(),
            ..Default::default()
        }),
        deployment: deployment.map(section_of),
        ..Default::default()
    }
}

fn written(d: &sections::Discovered) -> String {
    let layout = sections::file(d);
    let text = render::document(&layout).unwrap();
    readback::check(&text, &render::expected(&layout.sections)).unwrap();
    text
}

#[test]
fn a_canary_service_is_written_as_it_runs_and_plans_no_change() {
    let today = DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::Canary)
        .bake_time_in_minutes(15)
        .canary_configuration(
            CanaryConfiguration::builder()
                .canary_percent(12.5)
                .canary_bake_time_in_minutes(10)
                .build(),
        )
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .minimum_healthy_percent(100)
        .maximum_percent(200)
        .build();
    let text = written(&discovered(Some(&today)));
    for line in [
        "[ecs.deployment]",
        "strategy = \"canary\"",
        "bake_time = \"15m\"",
        "canary_percent = 12.5",
        "canary_bake_time = \"10m\"",
        "circuit_breaker = true",
        "rollback = true",
        "minimum_healthy_percent = 100",
        "maximum_percent = 200",
        "# gate = \"verify\"",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let cfg = parse(Path::new("deploy.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let d = cfg.ecs.unwrap().deployment.unwrap();
    assert_eq!(d.strategy, Some(Strategy::Canary));
    assert_eq!(d.canary_percent, Some(Tenths(125)));
    assert_eq!(d.gate, None, "the gate is offered, not written");
    assert!(plan_changes(&d, Some(&today)).is_empty());
    assert_eq!(
        merged_configuration(&d, Some(&today)),
        None,
        "nothing to send"
    );
}

#[test]
fn a_service_without_a_configuration_gets_the_table_commented_out() {
    let text = written(&discovered(None));
    assert!(text.contains("# [ecs.deployment]"), "{text}");
    assert!(text.contains("# strategy = \"rolling\""), "{text}");
    let cfg = parse(Path::new("deploy.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.ecs.unwrap().deployment, None, "absent: unmanaged");
}

#[test]
fn init_against_moto_writes_what_update_service_stored_and_plan_is_clean() {
    let moto = Moto::start();
    let (_seed_dir, seed_cfg) = write_config(&support::sandbox_config());
    moto.seed(&seed_cfg, &[]);
    moto.python(
        r#"
import boto3
ecs = boto3.client("ecs")
ecs.update_service(cluster="bosar-cluster", service="bosar-api", deploymentConfiguration={
    "maximumPercent": 150, "minimumHealthyPercent": 50,
    "deploymentCircuitBreaker": {"enable": True, "rollback": False}})
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(bosar(&moto.endpoint, "init-strat")
        .current_dir(dir.path())
        .args([
            "init",
            "--cluster",
            "bosar-cluster",
            "--service",
            "bosar-api",
        ]));
    assert_eq!(out.code, 0, "{}", out.all());
    let path = dir.path().join("deploy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    for line in [
        "maximum_percent = 150",
        "minimum_healthy_percent = 50",
        "circuit_breaker = true",
        "rollback = false",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let out = run(bosar(&moto.endpoint, "init-strat-plan")
        .arg("--config")
        .arg(&path)
        .args(["deploy", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(out.code, 0, "no change right after init: {}", out.all());
}
