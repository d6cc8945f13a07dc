//! How many targets `verify` must reach, read from the target group on the SDK's mock layer:
//! what moto cannot show (it reports every registered target healthy). Only healthy targets
//! count (unhealthy, draining and initial ones get no new requests from the ALB); their ids
//! are outside text; an error is kept, so the `targets` check fails with it.

mod support;

use aws_sdk_elasticloadbalancingv2::operation::describe_target_group_attributes::DescribeTargetGroupAttributesOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::{
    DescribeTargetHealthError, DescribeTargetHealthOutput,
};
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetGroup, TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
};
use aws_smithy_mocks::{mock, Rule};
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::config::ResourceRef;
use bosar_deploy::verify_cmd::from_target_group;
use support::mocks::{aws, TG};

fn group_rules() -> [Rule; 2] {
    [
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_groups).then_output(|| {
            DescribeTargetGroupsOutput::builder()
                .target_groups(
                    TargetGroup::builder()
                        .target_group_arn(TG)
                        .target_group_name("bosar-api-tg")
                        .build(),
                )
                .build()
        }),
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_group_attributes)
            .then_output(|| DescribeTargetGroupAttributesOutput::builder().build()),
    ]
}

fn target(id: &str, state: TargetHealthStateEnum) -> TargetHealthDescription {
    TargetHealthDescription::builder()
        .target(TargetDescription::builder().id(id).port(3000).build())
        .target_health(TargetHealth::builder().state(state).build())
        .build()
}

fn tg() -> ResourceRef {
    ResourceRef::Name("bosar-api-tg".into())
}

#[tokio::test(start_paused = true)]
async fn only_healthy_targets_count_and_their_ids_are_outside_text() {
    let [groups, attrs] = group_rules();
    let health =
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_output(|| {
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(target("10.0.1.10", TargetHealthStateEnum::Healthy))
                .target_health_descriptions(target("10.0.2.10", TargetHealthStateEnum::Unhealthy))
                .target_health_descriptions(target("10.0.3.10", TargetHealthStateEnum::Draining))
                .target_health_descriptions(target("10.0.4.10", TargetHealthStateEnum::Initial))
                .target_health_descriptions(target(
                    "\u{1b}[2J10.0.5.10",
                    TargetHealthStateEnum::Healthy,
                ))
                .build()
        });
    let aws = aws(&[], &[&groups, &attrs, &health]);
    let e = from_target_group(&aws, &tg()).await;
    assert_eq!(e.count, Some(2), "{e:?}");
    assert_eq!(e.source, "target group bosar-api-tg");
    assert!(e.error.is_none(), "{e:?}");
    let ids: Vec<String> = e.ids.iter().map(|i| i.shown(80)).collect();
    assert_eq!(ids[0], "10.0.1.10:3000");
    assert!(
        !ids[1].contains('\u{1b}') && ids[1].ends_with("10.0.5.10:3000"),
        "{ids:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_is_kept_and_the_count_stays_unknown() {
    let [groups, attrs] = group_rules();
    let health =
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_error(|| {
            DescribeTargetHealthError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform elasticloadbalancing:DescribeTargetHealth")
                    .build(),
            )
        });
    let aws = aws(&[], &[&groups, &attrs, &health]);
    let e = from_target_group(&aws, &tg()).await;
    assert_eq!(e.count, None);
    let error = e.error.expect("the error is kept");
    assert!(
        error.contains("DescribeTargetHealth") && error.contains("AccessDenied"),
        "{error}"
    );
}
