//! RegisterTaskDefinition, which is not idempotent: a call the SDK sends twice registers two
//! identical revisions, and `rollback` then goes back to the duplicate. So the call is sent
//! with the SDK's automatic retry off and a tag naming this run ([`RUN_TAG`]); when its answer
//! is lost (a timeout, a connection cut after the request went out, a 5xx, an answer that does
//! not parse) the newest revisions of the family are read and the one carrying this run's tag
//! is adopted instead of registering again. Only when none carries it is the call sent once
//! more (with the same tag, so that a late duplicate is still recognisable).

use std::time::Duration;

use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::types::{SortOrder, Tag};

use super::update::answer_lost;
use super::DeployPlan;
use crate::aws::{sdk_error, Aws};
use crate::ecs::describe_task_definition;
use crate::ecs::taskdef::{self, revision_label, revision_number};
use crate::exit::{message_of, Failure};
use crate::ui::Ui;

/// The tag key that marks a revision with the run that registered it.
pub const RUN_TAG: &str = "bosar-deploy:run-id";
/// ECS's limit on tags per resource (tags with the `aws:` prefix do not count).
const MAX_TAGS: usize = 50;
/// Newest revisions of the family described when looking for this run's.
const LOOKUP_REVISIONS: usize = 5;
/// One page of ListTaskDefinitions (its maximum): the newest are in it, sorted or not.
const LIST_PAGE: i32 = 100;
/// Sends of the call in all: a second one only after a lookup found nothing.
const SENDS: usize = 2;
/// Time given to AWS before looking: a call whose answer timed out may still be under way.
const SETTLE: Duration = Duration::from_secs(2);

/// A run id: UTC time to the second and 32 random bits (tag values allow `[\p{L}\p{N}_.:/=+\-@ ]`).
pub fn new_run_id() -> String {
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    let now = aws_smithy_types::DateTime::from_secs(now.secs());
    let stamp = now
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
        .replace(['-', ':'], "");
    format!("{stamp}-{:08x}", rand::random::<u32>())
}

/// The revision this run stands on: registered now, or found by its tag after a lost answer.
#[derive(Debug, Clone)]
pub struct Registration {
    pub arn: String,
    pub adopted: bool,
}

/// The tags of the new revision: the current revision's (an earlier run's id replaced by this
/// one's), or `None` for ours when the revision already has ECS's maximum of tags.
fn tags_with_run(tags: &[Tag], run_id: &str) -> (Vec<Tag>, bool) {
    let mut out: Vec<Tag> = tags
        .iter()
        .filter(|t| t.key() != Some(RUN_TAG))
        .cloned()
        .collect();
    let counted = out
        .iter()
        .filter(|t| {
            !t.key()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .starts_with("aws:")
        })
        .count();
    if counted >= MAX_TAGS {
        return (out, false);
    }
    out.push(Tag::builder().key(RUN_TAG).value(run_id).build());
    (out, true)
}

/// What one send of the call came to.
enum Sent {
    Registered(String),
    /// The answer was lost: the revision may exist.
    Lost(anyhow::Error),
    /// AWS refused it: nothing was registered.
    Refused(anyhow::Error),
}

async fn send(aws: &Aws, plan: &DeployPlan, tags: &[Tag]) -> Sent {
    let containers = taskdef::apply_changes(&plan.td, &plan.container, &plan.changes);
    let sent = taskdef::register_input(
        aws.ecs.register_task_definition(),
        &plan.td,
        tags,
        containers,
    )
    .customize()
    .config_override(aws_sdk_ecs::config::Builder::default().retry_config(RetryConfig::disabled()))
    .send()
    .await;
    match sent {
        Ok(out) => match out.task_definition().and_then(|t| t.task_definition_arn()) {
            Some(arn) => Sent::Registered(arn.to_string()),
            None => Sent::Lost(
                Failure::failed("RegisterTaskDefinition failed: the answer named no revision")
                    .into(),
            ),
        },
        Err(e) if answer_lost(&e) => Sent::Lost(sdk_error("RegisterTaskDefinition", e)),
        Err(e) => Sent::Refused(sdk_error("RegisterTaskDefinition", e)),
    }
}

/// The family's revision carrying `run_id`, among the newest [`LOOKUP_REVISIONS`] newer than
/// `after` (the revision the plan started from), from one page of ListTaskDefinitions.
async fn find_ours(
    aws: &Aws,
    family: &str,
    after: Option<i32>,
    run_id: &str,
) -> anyhow::Result<Option<String>> {
    let list = aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .sort(SortOrder::Desc)
        .max_results(LIST_PAGE)
        .send()
        .await
        .map_err(|e| sdk_error("ListTaskDefinitions", e))?;
    // Newest first by number, whatever order the answer came in (moto ignores `sort`).
    let mut candidates: Vec<(i32, &String)> = list
        .task_definition_arns()
        .iter()
        .filter(|arn| revision_label(arn).rsplit_once(':').map(|(f, _)| f) == Some(family))
        .filter_map(|arn| Some((revision_number(arn)?, arn)))
        .filter(|(n, _)| after.is_none_or(|a| *n > a))
        .collect();
    candidates.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    for (_, arn) in candidates.into_iter().take(LOOKUP_REVISIONS) {
        let (_, tags) = describe_task_definition(aws, arn).await?;
        if tags
            .iter()
            .any(|t| t.key() == Some(RUN_TAG) && t.value() == Some(run_id))
        {
            return Ok(Some(arn.clone()));
        }
    }
    Ok(None)
}

/// Registers the plan's revision once, resolving a lost answer by this run's tag (see the
/// module's doc). The error says whether a revision may exist.
pub(super) async fn register(
    aws: &Aws,
    plan: &DeployPlan,
    ui: &Ui,
) -> anyhow::Result<Registration> {
    let (tags, marked) = tags_with_run(&plan.tags, &plan.run_id);
    let family = plan.td.family().unwrap_or_default().to_string();
    let after = revision_number(&plan.current_task_definition);
    let listing = format!(
        "aws ecs list-task-definitions --family-prefix {} --sort DESC",
        crate::ui::shell_quote(&family)
    );
    for sent in 1..=SENDS {
        let lost = match send(aws, plan, &tags).await {
            Sent::Registered(arn) => {
                return Ok(Registration {
                    arn,
                    adopted: false,
                })
            }
            Sent::Refused(e) => return Err(e),
            Sent::Lost(e) => e,
        };
        if !marked {
            return Err(unknown(lost, &format!("the revision already has {MAX_TAGS} tags, so this run's tag could not be added and a revision it registered cannot be told apart"), &listing));
        }
        ui.warn(format!(
            "{}: a revision may have been registered; looking for the one tagged {RUN_TAG}={}",
            message_of(&lost),
            plan.run_id
        ));
        tokio::time::sleep(SETTLE).await;
        match find_ours(aws, &family, after, &plan.run_id).await {
            Ok(Some(arn)) => return Ok(Registration { arn, adopted: true }),
            Ok(None) if sent < SENDS => ui.warn(format!(
                "no revision of {family} carries this run's tag: registering once more"
            )),
            Ok(None) => {
                return Err(unknown(
                    lost,
                    "no revision carries this run's tag yet, so none was registered as far as ECS lists",
                    &listing,
                ))
            }
            Err(e) => {
                return Err(unknown(
                    lost,
                    &format!("looking for this run's revision failed too ({})", message_of(&e)),
                    &listing,
                ))
            }
        }
    }
    unreachable!("the loop returns on its last send")
}

/// A lost answer that could not be resolved: whether a revision exists is unknown.
fn unknown(lost: anyhow::Error, why: &str, listing: &str) -> anyhow::Error {
    Failure::failed(format!("{}; {why}", message_of(&lost)))
        .hint(format!(
            "the service was not updated; `{listing}` shows the newest revisions (one tagged {RUN_TAG} with this run's id is a duplicate to deregister); deploy again once AWS answers"
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build()
    }

    #[test]
    fn the_run_tag_replaces_an_earlier_runs_and_respects_the_limit() {
        let (tags, marked) = tags_with_run(&[tag("team", "rt"), tag(RUN_TAG, "old")], "new");
        assert!(marked);
        assert_eq!(tags, vec![tag("team", "rt"), tag(RUN_TAG, "new")]);

        let full: Vec<Tag> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
        let (tags, marked) = tags_with_run(&full, "new");
        assert!(!marked);
        assert_eq!(tags.len(), 50);

        // `aws:` tags do not count against the limit.
        let mut with_aws: Vec<Tag> = (0..49).map(|i| tag(&format!("k{i}"), "v")).collect();
        with_aws.push(tag("aws:cloudformation:stack-name", "s"));
        let (tags, marked) = tags_with_run(&with_aws, "new");
        assert!(marked);
        assert_eq!(tags.len(), 51);
    }

    #[test]
    fn run_ids_are_valid_tag_values_and_differ() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_ne!(a, b);
        assert!(a.len() <= 256);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:/=+-@ ".contains(c)),
            "{a}"
        );
    }
}
