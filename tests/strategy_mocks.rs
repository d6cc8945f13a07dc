//! `[ecs.deployment]` on the wire, with aws-smithy-mocks (moto drops or ignores the strategy
//! members): UpdateService carries exactly the named members over the service's own, nothing
//! without the section, the configuration alone when nothing else changes, and the refusals
//! come before any UpdateService.

mod support;

use std::sync::{Arc, Mutex};

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::update_service::{UpdateServiceInput, UpdateServiceOutput};
use aws_sdk_ecs::types::{
    DeploymentAlarms, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentController,
    DeploymentControllerType, DeploymentStrategy, Service,
};
use aws_smithy_mocks::{mock, Rule};

use bosar_deploy::config::Config;
use bosar_deploy::ecs::deploy::{execute, plan, RolloutAction, RolloutOptions};
use bosar_deploy::ui::Ui;
use support::mocks::*;

/// The service's own configuration: rolling, breaker on without rollback, an alarm.
fn services_own() -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::Rolling)
        .maximum_percent(200)
        .minimum_healthy_percent(100)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(false)
                .build(),
        )
        .alarms(
            DeploymentAlarms::builder()
                .alarm_names("bosar-api-5xx")
                .enable(true)
                .rollback(true)
                .build()
                .unwrap(),
        )
        .build()
}

/// Revision 41, settled, with `configuration` and `controller`.
fn on_41_with(
    configuration: Option<DeploymentConfiguration>,
    controller: Option<DeploymentControllerType>,
) -> DescribeServicesOutput {
    let mut out = on_41();
    let s: &mut Service = &mut out.services.as_mut().unwrap()[0];
    s.deployment_configuration = configuration;
    s.deployment_controller =
        controller.map(|t| DeploymentController::builder().r#type(t).build().unwrap());
    out
}

/// UpdateService, keeping every request it is sent.
fn recording_update(sent: Arc<Mutex<Vec<UpdateServiceInput>>>) -> Rule {
    mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(move |r| {
            sent.lock().unwrap().push(r.clone());
            true
        })
        .then_output(|| {
            UpdateServiceOutput::builder()
                .service(
                    Service::builder()
                        .deployments(dep("ecs-svc/new", "PRIMARY", TD42, 0, None))
                        .build(),
                )
                .build()
        })
}

fn config(extra_ecs: &str, deployment: &str) -> Config {
    let text = format!(
        "[target_group]\nname = \"bosar-api-tg\"\n\
         [ecs]\ncluster = \"bosar-cluster\"\nservice = \"bosar-api\"\ncontainer = \"bosar-api\"\n{extra_ecs}\n{deployment}"
    );
    bosar_deploy::config::parse(std::path::Path::new("deploy.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"))
}

const NEW_ENV: &str = "[ecs.environment]\nWEBSOCKET_PING_INTERVAL = \"25000\"\n";

struct Run {
    plan: bosar_deploy::ecs::deploy::DeployPlan,
    result: bosar_deploy::ecs::deploy::DeployResult,
    err: Option<anyhow::Error>,
    sent: Vec<UpdateServiceInput>,
    registered: usize,
}

async fn deploy(cfg: &Config, service: DescribeServicesOutput) -> Run {
    let describe =
        mock!(aws_sdk_ecs::Client::describe_services).then_output(move || service.clone());
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td41);
    let register = registered_42();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let update = recording_update(sent.clone());
    let aws = aws(&[&describe, &td, &register, &update], &[]);
    let opts = RolloutOptions {
        no_wait: true,
        ..Default::default()
    };
    let ecs = cfg.ecs.as_ref().unwrap();
    let p = plan(&aws, ecs, &opts).await.unwrap();
    let (result, err) = execute(&aws, ecs, p.clone(), &opts, &Ui::silent()).await;
    let sent = sent.lock().unwrap().clone();
    Run {
        plan: p,
        result,
        err,
        sent,
        registered: register.num_calls(),
    }
}

fn lines(plan: &bosar_deploy::ecs::deploy::DeployPlan) -> Vec<String> {
    plan.deployment_configuration
        .iter()
        .map(|c| c.to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn named_members_go_out_with_the_deployment_over_the_services_own() {
    let cfg = config(
        NEW_ENV,
        "[ecs.deployment]\nrollback = true\nminimum_healthy_percent = 50\n",
    );
    let r = deploy(&cfg, on_41_with(Some(services_own()), None)).await;
    assert!(r.err.is_none(), "{:?}", r.err);
    assert_eq!(
        lines(&r.plan),
        [
            "~ rollback: false -> true",
            "~ minimum_healthy_percent: 100 -> 50"
        ]
    );
    assert!(r
        .plan
        .render()
        .contains("deploymentConfiguration ([ecs.deployment], with the deployment)"));
    assert_eq!(r.sent.len(), 1, "one UpdateService");
    let sent = &r.sent[0];
    assert_eq!(sent.task_definition(), Some(TD42));
    let mut want = services_own();
    want.minimum_healthy_percent = Some(50);
    want.deployment_circuit_breaker.as_mut().unwrap().rollback = true;
    // The two named members changed; strategy, maximum percent, breaker and alarms as they were.
    assert_eq!(sent.deployment_configuration(), Some(&want));
}

#[tokio::test(start_paused = true)]
async fn without_the_section_no_deployment_configuration_is_sent() {
    let cfg = config(NEW_ENV, "");
    let r = deploy(&cfg, on_41_with(Some(services_own()), None)).await;
    assert!(r.err.is_none(), "{:?}", r.err);
    assert!(r.plan.deployment_configuration.is_empty());
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.sent[0].deployment_configuration(), None);
    // A section naming only what the service already has sends nothing either.
    let cfg = config(
        NEW_ENV,
        "[ecs.deployment]\nstrategy = \"rolling\"\nmaximum_percent = 200\ncircuit_breaker = true\n",
    );
    let r = deploy(&cfg, on_41_with(Some(services_own()), None)).await;
    assert!(lines(&r.plan).is_empty(), "{:?}", lines(&r.plan));
    assert_eq!(r.sent[0].deployment_configuration(), None);
}

#[tokio::test(start_paused = true)]
async fn a_configuration_change_alone_is_sent_without_a_deployment() {
    let cfg = config("", "[ecs.deployment]\nmaximum_percent = 150\n");
    let r = deploy(&cfg, on_41_with(None, None)).await;
    assert!(r.err.is_none(), "{:?}", r.err);
    assert_eq!(r.plan.action, RolloutAction::None);
    assert!(!r.plan.changes_nothing());
    assert_eq!(lines(&r.plan), ["~ maximum_percent: (unset) -> 150"]);
    assert_eq!(r.registered, 0, "no new revision");
    assert_eq!(r.sent.len(), 1);
    let sent = &r.sent[0];
    assert_eq!(sent.task_definition(), None, "no new deployment");
    assert_eq!(sent.force_new_deployment(), None);
    // Exactly the named member: the service had no configuration of its own.
    assert_eq!(
        sent.deployment_configuration(),
        Some(
            &DeploymentConfiguration::builder()
                .maximum_percent(150)
                .build()
        )
    );
    assert!(r.result.configuration_updated);
}

#[tokio::test(start_paused = true)]
async fn traffic_shifting_strategies_are_deployed_and_followed_natively() {
    // Named in the config, on a rolling service: sent, and the plan names the strategy the
    // ECS-native watch follows (issue 18 lifted the refusal).
    let cfg = config(
        NEW_ENV,
        "[ecs.deployment]\nstrategy = \"canary\"\ncanary_percent = 10\n",
    );
    let r = deploy(&cfg, on_41_with(Some(services_own()), None)).await;
    assert_eq!(r.plan.refused, None);
    assert_eq!(r.plan.strategy.as_deref(), Some("CANARY"));
    assert_eq!(lines(&r.plan)[0], "~ strategy: rolling -> canary");
    assert_eq!(r.sent.len(), 1);

    // The service's own blue/green, with a section that names no strategy.
    let mut bg = services_own();
    bg.strategy = Some(DeploymentStrategy::BlueGreen);
    let cfg = config(NEW_ENV, "[ecs.deployment]\ncircuit_breaker = true\n");
    let r = deploy(&cfg, on_41_with(Some(bg.clone()), None)).await;
    assert_eq!(r.plan.refused, None);
    assert_eq!(r.plan.strategy.as_deref(), Some("BLUE_GREEN"));

    // A gate with --no-wait would leave the pause to its timeout: refused, nothing sent.
    let cfg = config(
        NEW_ENV,
        "[ecs.deployment]\nstrategy = \"blue_green\"\nbake_time = \"10m\"\ngate = \"verify\"\n",
    );
    let r = deploy(&cfg, on_41_with(Some(bg.clone()), None)).await;
    let err = r.err.expect("refused");
    assert!(
        format!("{err:#}").contains("--no-wait leaves nobody to answer it"),
        "{err:#}"
    );
    assert!(r.sent.is_empty() && r.registered == 0, "nothing changed");
    assert!(
        lines(&r.plan)
            .iter()
            .any(|l| l.contains("bosar-deploy's: PAUSE at POST_SCALE_UP, 60 min then ROLLBACK")),
        "{:?}",
        lines(&r.plan)
    );

    // Naming rolling moves it back, and is sent.
    let cfg = config(NEW_ENV, "[ecs.deployment]\nstrategy = \"rolling\"\n");
    let r = deploy(&cfg, on_41_with(Some(bg), None)).await;
    assert_eq!(r.plan.refused, None);
    assert_eq!(
        r.sent[0].deployment_configuration().unwrap().strategy(),
        Some(&DeploymentStrategy::Rolling)
    );
}

#[tokio::test(start_paused = true)]
async fn a_traffic_shifting_strategy_needs_the_ecs_controller() {
    let cfg = config(
        NEW_ENV,
        "[ecs.deployment]\nstrategy = \"blue_green\"\nbake_time = \"10m\"\n",
    );
    let r = deploy(
        &cfg,
        on_41_with(None, Some(DeploymentControllerType::CodeDeploy)),
    )
    .await;
    let refused = r.plan.refused.clone().expect("refused");
    assert!(
        refused.contains("strategy = \"blue_green\" needs the ECS deployment controller")
            && refused.contains("uses CODE_DEPLOY"),
        "{refused}"
    );
    assert!(r.sent.is_empty());
}
