//! The image check and ECR pull-through caches (issue 17.10), on the paused clock: moto
//! serves no DescribePullThroughCacheRules. A repository under a rule's prefix is created on
//! the first pull, so its absence is information; under no rule it stays a failure.

use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::operation::describe_pull_through_cache_rules::{
    DescribePullThroughCacheRulesError, DescribePullThroughCacheRulesOutput,
};
use aws_sdk_ecr::types::error::{ImageNotFoundException, RepositoryNotFoundException};
use aws_sdk_ecr::types::PullThroughCacheRule;
use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::ecs::preflight::{image, Clients, Finding};
use bosar_deploy::report::CheckStatus;

const CACHED: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:1.27";
const OWN: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:9";

fn td(image: &str) -> TaskDefinition {
    TaskDefinition::builder()
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(image)
                .build(),
        )
        .build()
}

fn no_repository() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
        DescribeImagesError::RepositoryNotFoundException(
            RepositoryNotFoundException::builder()
                .message("The repository does not exist")
                .build(),
        )
    })
}

fn no_image() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
        DescribeImagesError::ImageNotFoundException(
            ImageNotFoundException::builder()
                .message("The image does not exist")
                .build(),
        )
    })
}

/// Two pages: the Docker Hub rule on the second.
fn rules() -> Rule {
    let rule = |prefix: &str, upstream: &str| {
        PullThroughCacheRule::builder()
            .ecr_repository_prefix(prefix)
            .upstream_registry_url(upstream)
            .build()
    };
    let (ghcr, hub) = (
        rule("ghcr", "ghcr.io"),
        rule("docker-hub", "registry-1.docker.io"),
    );
    mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules)
        .sequence()
        .output(move || {
            DescribePullThroughCacheRulesOutput::builder()
                .pull_through_cache_rules(ghcr.clone())
                .next_token("more")
                .build()
        })
        .output(move || {
            DescribePullThroughCacheRulesOutput::builder()
                .pull_through_cache_rules(hub.clone())
                .build()
        })
        .build()
}

async fn check(image_: &str, rules: &[&Rule]) -> Finding {
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let clients = Clients::new(&sdk).with_ecr(mock_client!(aws_sdk_ecr, RuleMode::MatchAny, rules));
    let mut found = image::check(&clients, &td(image_)).await;
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[tokio::test(start_paused = true)]
async fn a_repository_a_pull_through_rule_creates_on_first_pull_is_information() {
    let (describe, rules) = (no_repository(), rules());
    let f = check(CACHED, &[&describe, &rules]).await;
    assert_eq!(f.status, CheckStatus::Skip, "{f:?}");
    assert!(
        f.message
            .contains("pull-through cache rule docker-hub (registry-1.docker.io)"),
        "{f:?}"
    );
    assert_eq!(f.evidence["pull_through_prefix"], "docker-hub");
    assert_eq!(rules.num_calls(), 2, "every page of rules is read");
}

#[tokio::test(start_paused = true)]
async fn a_tag_not_cached_yet_is_information_too() {
    let (describe, rules) = (no_image(), rules());
    let f = check(CACHED, &[&describe, &rules]).await;
    assert_eq!(f.status, CheckStatus::Skip, "{f:?}");
}

#[tokio::test(start_paused = true)]
async fn a_repository_under_no_rule_still_fails() {
    let (describe, rules) = (no_repository(), rules());
    let f = check(OWN, &[&describe, &rules]).await;
    assert_eq!(f.status, CheckStatus::Fail, "{f:?}");
    assert!(f.message.contains("does not exist"), "{f:?}");
    let (describe, rules) = (no_image(), self::rules());
    let f = check(OWN, &[&describe, &rules]).await;
    assert_eq!(f.status, CheckStatus::Fail, "{f:?}");
    assert!(f.message.contains("push it first"), "{f:?}");
}

#[tokio::test(start_paused = true)]
async fn rules_that_cannot_be_read_keep_the_failure_and_say_why() {
    let describe = no_repository();
    let denied = mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules).then_error(|| {
        DescribePullThroughCacheRulesError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform: ecr:DescribePullThroughCacheRules")
                .build(),
        )
    });
    let f = check(CACHED, &[&describe, &denied]).await;
    assert_eq!(f.status, CheckStatus::Fail, "fail closed: {f:?}");
    assert!(
        f.message
            .contains("pull-through cache rules could not be read"),
        "{f:?}"
    );
}

/// `--skip-preflight image:sidecar` leaves the sidecar out of the image check and no other
/// container: the web container's missing image still fails it, and no call is made for the
/// sidecar's.
#[tokio::test(start_paused = true)]
async fn a_skipped_container_leaves_the_check_to_the_others() {
    use bosar_deploy::ecs::preflight::{check_revision, PreflightSkip};
    let (describe, rules) = (no_image(), rules());
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let clients = Clients::new(&sdk).with_ecr(mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&describe, &rules]
    ));
    let revision = TaskDefinition::builder()
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(OWN)
                .build(),
        )
        .container_definitions(
            ContainerDefinition::builder()
                .name("sidecar")
                .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:7")
                .build(),
        )
        .build();
    let skip = [
        PreflightSkip::parse("image:sidecar").unwrap(),
        PreflightSkip::parse("roles").unwrap(),
        PreflightSkip::parse("logs").unwrap(),
        PreflightSkip::parse("secrets").unwrap(),
    ];
    let checks = check_revision(&clients, &revision, &skip).await;
    let image = checks.iter().find(|c| c.name == "image").unwrap();
    assert_eq!(image.status, CheckStatus::Fail, "{image:?}");
    assert!(image.message.starts_with("web:"), "{image:?}");
    assert_eq!(
        describe.num_calls(),
        1,
        "the sidecar's image is not looked up"
    );
    let findings = image.evidence["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["subject"] == "sidecar"
            && f["message"] == "not checked (--skip-preflight image:sidecar)"),
        "{findings:?}"
    );
}
