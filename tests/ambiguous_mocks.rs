//! Issue 22's ambiguous answers from AWS, on the SDK's mock layer with transport faults
//! (support::faults) and tokio's paused clock: a RegisterTaskDefinition whose answer was lost
//! (reset after sending, 500, a body cut short, no answer at all) is resolved by this run's tag
//! and never registered twice; a lost UpdateService answer by reading the service back; a
//! deployment in progress is watched when there is nothing to change; an interrupt during
//! UpdateService names the revision.

mod support;

use std::sync::{Arc, Mutex};

use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionError;
use aws_sdk_ecs::types::{Tag, TaskDefinition};
use aws_smithy_mocks::{mock, Rule};
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::ecs::deploy::{execute, plan, RolloutOptions, RUN_TAG};
use bosar_deploy::ui::Ui;
use support::faults::{aws_with_faults, Fault, Faults};
use support::mocks::*;

const TD43: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:43";

/// The run tag's value in the last RegisterTaskDefinition request.
#[derive(Clone, Default)]
struct SentTag(Arc<Mutex<Option<String>>>);

impl SentTag {
    fn get(&self) -> Option<String> {
        self.0.lock().unwrap().clone()
    }
    /// Records the run tag of each request it sees (always matches).
    fn recorder(
        &self,
    ) -> impl Fn(
        &aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput,
    ) -> bool
           + Send
           + Sync
           + 'static {
        let me = self.clone();
        move |r| {
            let tag = r.tags().iter().find(|t| t.key() == Some(RUN_TAG));
            *me.0.lock().unwrap() = tag.and_then(|t| t.value()).map(str::to_string);
            true
        }
    }
}

/// DescribeTaskDefinition of `arn` with the run tag the register call sent (`None`: another run's).
fn described(arn: &'static str, sent: Option<SentTag>) -> Rule {
    mock!(aws_sdk_ecs::Client::describe_task_definition)
        .match_requests(move |r| r.task_definition() == Some(arn))
        .then_output(move || {
            let run = sent
                .as_ref()
                .and_then(SentTag::get)
                .unwrap_or_else(|| "an-earlier-run".into());
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(arn)
                        .family("bosar-api")
                        .build(),
                )
                .tags(Tag::builder().key(RUN_TAG).value(run).build())
                .build()
        })
}

fn listed(arns: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_ecs::Client::list_task_definitions)
        .match_requests(|r| r.family_prefix() == Some("bosar-api"))
        .then_output(move || {
            ListTaskDefinitionsOutput::builder()
                .set_task_definition_arns(Some(arns.iter().map(|a| a.to_string()).collect()))
                .build()
        })
}

fn td41_rule() -> Rule {
    mock!(aws_sdk_ecs::Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(TD41))
        .then_output(td41)
}

const REGISTERED_43: &str = r#"{"taskDefinition":{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/bosar-api:43","family":"bosar-api","revision":43}}"#;

fn no_wait() -> RolloutOptions {
    RolloutOptions {
        no_wait: true,
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_register_answer_adopts_the_revision_with_this_runs_tag() {
    // Each way the answer gets lost, after AWS registered :42: the connection reset after
    // sending, a 500, a body cut short, no answer within the attempt timeout.
    let cases: [(&str, Option<Fault>, u16, &str); 4] = [
        ("reset", Some(Fault::Reset), 200, REGISTERED_43),
        (
            "500",
            None,
            500,
            "{\"__type\":\"ServerException\",\"message\":\"internal\"}",
        ),
        (
            "truncated",
            None,
            200,
            "{\"taskDefinition\":{\"taskDefinitionArn\":\"arn:aws:e",
        ),
        ("hang", Some(Fault::Hang), 200, REGISTERED_43),
    ];
    for (name, fault, status, body) in cases {
        let cfg = config();
        let sent = SentTag::default();
        let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(on_41);
        // Were the call sent twice, the second would register :43, a duplicate.
        let register = mock!(aws_sdk_ecs::Client::register_task_definition)
            .match_requests(sent.recorder())
            .sequence()
            .http_status(status, Some(body.to_string()))
            .http_status(200, Some(REGISTERED_43.to_string()))
            .build();
        let ours = described(TD42, Some(sent.clone()));
        let list = listed(&[TD42, TD41]);
        let update = update_to(TD42, "ecs-svc/new");
        let td = td41_rule();
        let faults = match fault {
            Some(f) => Faults::new().on("RegisterTaskDefinition", &[f]),
            None => Faults::new(),
        };
        let aws = aws_with_faults(
            &[&describe, &td, &ours, &list, &register, &update],
            &[],
            &faults,
        );
        let ui = Ui::capturing();
        let p = plan(&aws, ecs(&cfg), &no_wait()).await.unwrap();
        let (result, err) = execute(&aws, ecs(&cfg), p, &no_wait(), &ui).await;
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(register.num_calls(), 1, "{name}: sent once, never retried");
        assert_eq!(update.num_calls(), 1, "{name}");
        assert_eq!(
            result.registered_task_definition.as_deref(),
            Some(TD42),
            "{name}"
        );
        assert_eq!(result.registration, Some("adopted"), "{name}");
        let run_id = sent.get().expect("the request carries the run tag");
        assert_eq!(result.plan.run_id, run_id);
        let lines = ui.captured().join("\n");
        assert!(lines.contains(&format!("Adopted bosar-api:42: RegisterTaskDefinition's answer was lost, and bosar-api:42 carries this run's tag bosar-deploy:run-id={run_id}")), "{name}: {lines}");
        let warned = ui.warnings().join("\n");
        assert!(
            warned.contains("a revision may have been registered; looking for the one tagged"),
            "{name}: {warned}"
        );
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["registration"], "adopted", "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_with_no_tagged_revision_registers_once_more_then_stops() {
    let cfg = config();
    let sent = SentTag::default();
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(on_41);
    // :42 belongs to an earlier run: not ours.
    let other = described(TD42, None);
    let list = listed(&[TD42, TD41]);
    let td = td41_rule();
    let update = update_to(TD43, "ecs-svc/new");
    // First 503 then the second send answers :43.
    let register = mock!(aws_sdk_ecs::Client::register_task_definition)
        .match_requests(sent.recorder())
        .sequence()
        .http_status(503, None)
        .http_status(200, Some(REGISTERED_43.to_string()))
        .build();
    let aws = aws_with_faults(
        &[&describe, &td, &other, &list, &register, &update],
        &[],
        &Faults::new(),
    );
    let ui = Ui::capturing();
    let p = plan(&aws, ecs(&cfg), &no_wait()).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &no_wait(), &ui).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(register.num_calls(), 2);
    assert_eq!(list.num_calls(), 1, "looked before sending again");
    assert_eq!(result.registered_task_definition.as_deref(), Some(TD43));
    assert_eq!(result.registration, Some("registered"));
    let warned = ui.warnings().join("\n");
    assert!(
        warned.contains("no revision of bosar-api carries this run's tag: registering once more"),
        "{warned}"
    );

    // Lost twice, and nothing tagged: the run stops before UpdateService and says what it knows.
    let register = mock!(aws_sdk_ecs::Client::register_task_definition)
        .sequence()
        .http_status(500, None)
        .times(2)
        .build();
    let update = update_to(TD42, "ecs-svc/new");
    let aws = aws_with_faults(
        &[&describe, &td, &other, &list, &register, &update],
        &[],
        &Faults::new(),
    );
    let p = plan(&aws, ecs(&cfg), &no_wait()).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &no_wait(), &Ui::silent()).await;
    let err = err.expect("failed");
    let msg = bosar_deploy::exit::message_of(&err);
    assert!(
        msg.contains("RegisterTaskDefinition failed: HTTP 500"),
        "{msg}"
    );
    assert!(
        msg.contains("no revision carries this run's tag yet"),
        "{msg}"
    );
    let hint = bosar_deploy::exit::hint_of(&err).unwrap_or_default();
    assert!(
        hint.contains("aws ecs list-task-definitions --family-prefix bosar-api --sort DESC"),
        "{hint}"
    );
    assert_eq!(register.num_calls(), 2);
    assert_eq!(update.num_calls(), 0);
    assert!(result.registered_task_definition.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_refused_register_is_neither_looked_up_nor_retried() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(on_41);
    let td = td41_rule();
    let list = listed(&[TD41]);
    let register = mock!(aws_sdk_ecs::Client::register_task_definition).then_error(|| {
        RegisterTaskDefinitionError::generic(
            ErrorMetadata::builder()
                .code("ClientException")
                .message("Too many tags")
                .build(),
        )
    });
    let aws = aws_with_faults(&[&describe, &td, &list, &register], &[], &Faults::new());
    let p = plan(&aws, ecs(&cfg), &no_wait()).await.unwrap();
    let (_, err) = execute(&aws, ecs(&cfg), p, &no_wait(), &Ui::silent()).await;
    let msg = bosar_deploy::exit::message_of(&err.unwrap());
    assert!(
        msg.contains("RegisterTaskDefinition failed: ClientException: Too many tags"),
        "{msg}"
    );
    assert_eq!(register.num_calls(), 1);
    assert_eq!(list.num_calls(), 0);
}

/// The service read back after a lost UpdateService answer: on :42 with the new deployment.
fn on_42_started() -> aws_sdk_ecs::operation::describe_services::DescribeServicesOutput {
    completed()
}

#[tokio::test(start_paused = true)]
async fn a_lost_update_answer_that_reached_ecs_is_watched_by_its_deployment_id() {
    for (name, fault) in [("503", None), ("reset", Some(Fault::Reset))] {
        let cfg = config();
        let describe = mock!(aws_sdk_ecs::Client::describe_services)
            .sequence()
            .output(on_41)
            .output(on_42_started)
            .repeatedly()
            .build();
        let td = td41_rule();
        let register = registered_42();
        // Every attempt of the SDK's four fails (a 503, or the connection reset after sending).
        let update = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(503, None)
            .times(4)
            .build();
        let faults = match fault {
            Some(f) => Faults::new().on("UpdateService", &[f; 4]),
            None => Faults::new(),
        };
        let health = healthy_rule();
        let aws = aws_with_faults(&[&describe, &td, &register, &update], &[&health], &faults);
        let ui = Ui::capturing();
        let opts = RolloutOptions::default();
        let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
        let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &ui).await;
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(
            result.deployment_id.as_deref(),
            Some("ecs-svc/new"),
            "{name}"
        );
        assert!(
            result.outcome.as_ref().unwrap().succeeded(),
            "{name}: {:?}",
            result.outcome
        );
        let warned = ui.warnings().join("\n");
        assert!(
            warned.contains("UpdateService failed")
                && warned.contains("the service was read back: it points at bosar-api:42 with new deployment ecs-svc/new, so the update reached ECS: watching it"),
            "{name}: {warned}"
        );
        let lines = ui.captured().join("\n");
        assert!(
            lines.contains("Started deployment ecs-svc/new of bosar-api:42"),
            "{name}: {lines}"
        );
        assert_eq!(ui.resume_hint(), None, "{name}: the watch ended");
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_update_answer_that_did_not_take_effect_says_what_the_service_runs() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(on_41);
    let td = td41_rule();
    let register = registered_42();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(500, None)
        .times(4)
        .build();
    let aws = aws_with_faults(&[&describe, &td, &register, &update], &[], &Faults::new());
    let opts = RolloutOptions::default();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    let msg = bosar_deploy::exit::message_of(&err.expect("failed"));
    assert!(msg.contains("UpdateService failed: HTTP 500"), "{msg}");
    assert!(
        msg.contains("the service was read back: it runs bosar-api:41 with no new deployment, so the update did not take effect"),
        "{msg}"
    );
    assert!(
        msg.contains("bosar-api:42 was registered but the service still runs bosar-api:41"),
        "{msg}"
    );
    assert_eq!(result.deployment_id, None);
}

/// Revision 42 as deploy.toml describes it (`WEBSOCKET_PING_INTERVAL` 25000): nothing to change.
fn td42_in_sync() -> DescribeTaskDefinitionOutput {
    let mut out = td41();
    let td = out.task_definition.take().unwrap();
    let mut c = td.container_definitions()[0].clone();
    c.environment = Some(vec![aws_sdk_ecs::types::KeyValuePair::builder()
        .name("WEBSOCKET_PING_INTERVAL")
        .value("25000")
        .build()]);
    DescribeTaskDefinitionOutput::builder()
        .task_definition(
            TaskDefinition::builder()
                .task_definition_arn(TD42)
                .family("bosar-api")
                .container_definitions(c)
                .build(),
        )
        .build()
}

#[tokio::test(start_paused = true)]
async fn nothing_to_change_while_a_deployment_rolls_out_watches_it() {
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(in_progress)
        .times(2)
        .output(completed)
        .build();
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td42_in_sync);
    let register = registered_42();
    let update = update_to(TD42, "ecs-svc/other");
    let health = healthy_rule();
    let aws = aws_with_faults(
        &[&describe, &td, &register, &update],
        &[&health],
        &Faults::new(),
    );
    let ui = Ui::capturing();
    let opts = RolloutOptions::default();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    assert_eq!(p.action, bosar_deploy::ecs::deploy::RolloutAction::None);
    assert!(p.render().contains("deployment ecs-svc/new of bosar-api:42 is in progress on the service: deploy watches it"), "{}", p.render());
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &ui).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        register.num_calls() + update.num_calls(),
        0,
        "nothing is changed"
    );
    assert_eq!(result.deployment_id.as_deref(), Some("ecs-svc/new"));
    let outcome = result.outcome.as_ref().expect("watched");
    assert!(outcome.succeeded(), "{outcome:?}");
    let lines = ui.captured().join("\n");
    assert!(lines.contains("Nothing to change, but deployment ecs-svc/new of bosar-api:42 is in progress on the service (ECS does not say who started it"), "{lines}");
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["plan"]["in_progress"]["id"], "ecs-svc/new");
    assert_eq!(json["outcome"]["outcome"], "succeeded");

    // Settled: "No changes", nothing watched.
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(completed);
    let aws = aws_with_faults(&[&describe, &td], &[], &Faults::new());
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    assert!(p.in_progress.is_none());
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    assert!(err.is_none() && result.outcome.is_none());
    assert_eq!(describe.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_during_update_service_names_the_registered_revision() {
    use bosar_deploy::exit::{code_of, message_of, Code};
    let cfg = config();
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(on_41);
    let td = td41_rule();
    let register = registered_42();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(200, Some("{}".into()))
        .build();
    let faults = Faults::new().on("UpdateService", &[Fault::Hang]);
    let aws = aws_with_faults(&[&describe, &td, &register, &update], &[], &faults);
    let ui = Ui::capturing();
    let opts = RolloutOptions::default();
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let ((result, err), ()) = tokio::join!(execute(&aws, ecs(&cfg), p, &opts, &ui), async {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert!(
            ui.wraps_up(),
            "the run reports the revision instead of being dropped"
        );
        ui.interrupt();
    });
    let err = err.expect("interrupted");
    assert_eq!(code_of(&err), Code::Interrupted);
    let msg = message_of(&err);
    assert!(msg.contains("interrupted during UpdateService; bosar-api:42 was registered; whether the service points at it is unknown"), "{msg}");
    assert_eq!(result.registered_task_definition.as_deref(), Some(TD42));
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["registered_task_definition"], TD42);
    let (note, next) = ui.interrupt_note().expect("an interrupt note");
    assert!(
        note.contains("interrupted after bosar-api:42 was registered"),
        "{note}"
    );
    assert!(
        next.contains("aws ecs deregister-task-definition --task-definition bosar-api:42"),
        "{next}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_forced_deployment_without_a_new_deployment_did_not_take_effect() {
    let cfg = config();
    // Settled on :42, which is what deploy.toml describes.
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(completed);
    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(td42_in_sync);
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(500, None)
        .times(4)
        .build();
    let aws = aws_with_faults(&[&describe, &td, &update], &[], &Faults::new());
    let opts = RolloutOptions {
        force_new_deployment: true,
        ..Default::default()
    };
    let p = plan(&aws, ecs(&cfg), &opts).await.unwrap();
    let (result, err) = execute(&aws, ecs(&cfg), p, &opts, &Ui::silent()).await;
    let msg = bosar_deploy::exit::message_of(&err.expect("failed"));
    assert!(
        msg.contains(
            "it runs bosar-api:42 with no new deployment, so the update did not take effect"
        ),
        "{msg}"
    );
    assert_eq!(result.deployment_id, None);
}
