//! Issue 22's ambiguous answers from AWS, on the SDK's mock layer with transport faults
//! (support::faults) and tokio's paused clock: a RegisterTaskDefinition whose answer was lost
//! (reset after sending, 500, a body cut short, no answer at all) is resolved by this run's tag
//! and never registered twice.

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
