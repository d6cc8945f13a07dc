//! Issue 22's ambiguous answers on read calls, on the SDK's mock layer with transport faults
//! (support::faults) and tokio's paused clock: the watch's deadline bounds a hanging poll and
//! its timeout says what the polls saw; describe errors carry hints; `alb-update` reports each
//! change as applied, not applied or unknown after a failed call, and never plans from an
//! attributes answer cut short.

mod support;

use aws_smithy_mocks::{mock, Rule};
use aws_smithy_types::error::ErrorMetadata;

use bosar_deploy::ecs::deploy::{plan, RolloutOptions};
use bosar_deploy::ui::Ui;
use support::faults::{aws_with_faults, Fault, Faults};
use support::mocks::*;
fn watch_for(timeout_secs: u64) -> bosar_deploy::ecs::watch::WatchOptions {
    bosar_deploy::ecs::watch::WatchOptions {
        poll_interval: std::time::Duration::from_secs(5),
        timeout: std::time::Duration::from_secs(timeout_secs),
        max_failed_tasks: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_poll_is_cancelled_at_the_watchs_deadline() {
    use bosar_deploy::ecs::watch::{watch, WatchOutcome};
    use std::time::Duration;
    // The first poll never answers (no SDK timeout shorter than the watch's).
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(in_progress);
    let faults = Faults::new().on("DescribeServices", &[Fault::Hang]);
    let aws = aws_with_faults(&[&describe], &[], &faults);
    let started = tokio::time::Instant::now();
    let out = watch(
        &aws,
        &target(),
        watch_for(5),
        &Ui::silent(),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "not the 20 s attempt timeout"
    );
    let WatchOutcome::TimedOut { message, state, .. } = &out else {
        panic!("{out:?}")
    };
    assert!(message.starts_with("timed out after 5s waiting for deployment ecs-svc/new; no call was answered: the first was still waiting at the deadline"), "{message}");
    assert_eq!(state, &vec!["no answer from ECS".to_string()]);

    // Answers that come 8 s late, with a 20 s timeout: the poll sent at 13 s is cut at 20 s.
    let faults = Faults::new().on(
        "DescribeServices",
        &[Fault::Delay(Duration::from_secs(8)); 3],
    );
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(in_progress);
    let aws = aws_with_faults(&[&describe], &[], &faults);
    let started = tokio::time::Instant::now();
    let out = watch(
        &aws,
        &target(),
        watch_for(20),
        &Ui::silent(),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    assert!(
        out.message()
            .contains("; the last poll had no answer by the deadline and was cancelled"),
        "{}",
        out.message()
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_during_which_every_poll_failed_says_what_they_saw() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
    use bosar_deploy::ecs::watch::watch;
    let throttled = || {
        DescribeServicesError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    };
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .error(throttled)
        .repeatedly()
        .build();
    let aws = aws_with_faults(&[&describe], &[], &Faults::new());
    let out = watch(
        &aws,
        &target(),
        watch_for(60),
        &Ui::silent(),
        Default::default(),
    )
    .await
    .unwrap();
    assert!(
        out.message()
            .contains("; every DescribeServices call was throttled ("),
        "{}",
        out.message()
    );

    // 500s: every poll failed, and the last error is named.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let aws = aws_with_faults(&[&describe], &[], &Faults::new());
    let out = watch(
        &aws,
        &target(),
        watch_for(60),
        &Ui::silent(),
        Default::default(),
    )
    .await
    .unwrap();
    assert!(
        out.message().contains("; every poll failed (")
            && out
                .message()
                .contains("the last: DescribeServices failed: HTTP 500"),
        "{}",
        out.message()
    );
}

mod alb {
    //! `alb-update` after a failed or lost modify call (issue 22.9), and a truncated
    //! attributes answer (issue 22.10).
    use super::*;
    use aws_sdk_elasticloadbalancingv2 as elbv2;
    use bosar_deploy::alb::{apply_reporting, ChangeStatus};
    use elbv2::operation::describe_load_balancer_attributes::DescribeLoadBalancerAttributesOutput;
    use elbv2::operation::describe_load_balancers::DescribeLoadBalancersOutput;
    use elbv2::operation::describe_target_group_attributes::DescribeTargetGroupAttributesOutput;
    use elbv2::operation::describe_target_groups::DescribeTargetGroupsOutput;
    use elbv2::operation::modify_target_group_attributes::ModifyTargetGroupAttributesOutput;
    use elbv2::types::{
        LoadBalancer, LoadBalancerAttribute, LoadBalancerTypeEnum, ProtocolEnum, TargetGroup,
        TargetGroupAttribute, TargetTypeEnum,
    };

    const LB: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/bosar-api-alb/1";

    pub fn alb_config() -> bosar_deploy::config::Config {
        bosar_deploy::config::parse(
            std::path::Path::new("deploy.toml"),
            "[load_balancer]\nname = \"bosar-api-alb\"\nidle_timeout = \"120s\"\n\
             [target_group]\nname = \"bosar-api-tg\"\nstickiness = \"lb_cookie\"\ncookie_duration = \"24h\"\n\
             algorithm = \"least_outstanding_requests\"\nderegistration_delay = \"3s\"\n",
        )
        .unwrap()
    }

    fn tg_attrs(pairs: &[(&str, &str)]) -> DescribeTargetGroupAttributesOutput {
        DescribeTargetGroupAttributesOutput::builder()
            .set_attributes(Some(
                pairs
                    .iter()
                    .map(|(k, v)| TargetGroupAttribute::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .build()
    }

    pub fn defaults() -> DescribeTargetGroupAttributesOutput {
        tg_attrs(&[
            ("deregistration_delay.timeout_seconds", "300"),
            ("stickiness.enabled", "false"),
            ("stickiness.type", "lb_cookie"),
            ("load_balancing.algorithm.type", "round_robin"),
            ("slow_start.duration_seconds", "0"),
        ])
    }

    fn applied() -> DescribeTargetGroupAttributesOutput {
        tg_attrs(&[
            ("deregistration_delay.timeout_seconds", "3"),
            ("stickiness.enabled", "true"),
            ("stickiness.type", "lb_cookie"),
            ("stickiness.lb_cookie.duration_seconds", "86400"),
            (
                "load_balancing.algorithm.type",
                "least_outstanding_requests",
            ),
            ("slow_start.duration_seconds", "0"),
        ])
    }

    pub fn target_groups() -> Rule {
        mock!(elbv2::Client::describe_target_groups).then_output(|| {
            DescribeTargetGroupsOutput::builder()
                .target_groups(
                    TargetGroup::builder()
                        .target_group_arn(TG)
                        .target_group_name("bosar-api-tg")
                        .protocol(ProtocolEnum::Http)
                        .target_type(TargetTypeEnum::Ip)
                        .load_balancer_arns(LB)
                        .build(),
                )
                .build()
        })
    }

    pub fn load_balancers() -> Rule {
        mock!(elbv2::Client::describe_load_balancers).then_output(|| {
            DescribeLoadBalancersOutput::builder()
                .load_balancers(
                    LoadBalancer::builder()
                        .load_balancer_arn(LB)
                        .load_balancer_name("bosar-api-alb")
                        .r#type(LoadBalancerTypeEnum::Application)
                        .build(),
                )
                .build()
        })
    }

    fn idle(secs: &str) -> DescribeLoadBalancerAttributesOutput {
        DescribeLoadBalancerAttributesOutput::builder()
            .attributes(
                LoadBalancerAttribute::builder()
                    .key("idle_timeout.timeout_seconds")
                    .value(secs)
                    .build(),
            )
            .build()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_modify_after_another_was_applied_reports_each_change() {
        let cfg = alb_config();
        let tgs = target_groups();
        let lbs = load_balancers();
        let tg_read = mock!(elbv2::Client::describe_target_group_attributes)
            .sequence()
            .output(defaults)
            .output(applied)
            .repeatedly()
            .build();
        let tg_modify = mock!(elbv2::Client::modify_target_group_attributes)
            .then_output(|| ModifyTargetGroupAttributesOutput::builder().build());
        // The load balancer's call: 503 on each of the SDK's four attempts.
        let lb_modify = mock!(elbv2::Client::modify_load_balancer_attributes)
            .sequence()
            .http_status(503, None)
            .times(4)
            .build();
        let lb_read =
            mock!(elbv2::Client::describe_load_balancer_attributes).then_output(|| idle("60"));
        let aws = aws_with_faults(
            &[],
            &[&tgs, &lbs, &tg_read, &tg_modify, &lb_modify, &lb_read],
            &Faults::new(),
        );
        let plan = bosar_deploy::alb::plan(&aws, &cfg).await.unwrap();
        assert_eq!(plan.change_count(), 5);
        let report = apply_reporting(&aws, &plan).await;
        let err = report.error.expect("the load balancer's call failed");
        let msg = bosar_deploy::exit::message_of(&err);
        assert!(
            msg.contains("ModifyLoadBalancerAttributes failed: HTTP 503"),
            "{msg}"
        );
        assert!(msg.contains("the change may have been applied"), "{msg}");
        assert!(
            msg.contains("of 5 change(s): 4 applied, 1 not applied, 0 unknown"),
            "{msg}"
        );
        let by_key = |k: &str| report.changes.iter().find(|c| c.key == k).unwrap();
        assert_eq!(by_key("stickiness.enabled").status, ChangeStatus::Applied);
        let idle_change = by_key("idle_timeout.timeout_seconds");
        assert_eq!(idle_change.status, ChangeStatus::NotApplied);
        assert_eq!(
            idle_change.to_string(),
            "not applied bosar-api-alb idle_timeout.timeout_seconds = 120 (reads back 60)"
        );
        let json = serde_json::to_value(&report.changes).unwrap();
        assert_eq!(json[4]["status"], "not_applied", "{json}");
        assert_eq!(json[0]["status"], "applied", "{json}");

        // The read-back fails too: unknown, never "applied" or "not applied" by guess.
        let lb_read = mock!(elbv2::Client::describe_load_balancer_attributes)
            .sequence()
            .output(|| idle("60"))
            .http_status(500, None)
            .repeatedly()
            .build();
        let lb_modify = mock!(elbv2::Client::modify_load_balancer_attributes)
            .sequence()
            .http_status(503, None)
            .times(4)
            .build();
        let tg_read = mock!(elbv2::Client::describe_target_group_attributes)
            .sequence()
            .output(defaults)
            .output(applied)
            .repeatedly()
            .build();
        let aws = aws_with_faults(
            &[],
            &[&tgs, &lbs, &tg_read, &tg_modify, &lb_modify, &lb_read],
            &Faults::new(),
        );
        let plan = bosar_deploy::alb::plan(&aws, &cfg).await.unwrap();
        let report = apply_reporting(&aws, &plan).await;
        let msg = bosar_deploy::exit::message_of(&report.error.unwrap());
        assert!(
            msg.contains("of 5 change(s): 4 applied, 0 not applied, 1 unknown"),
            "{msg}"
        );
        let idle_change = report
            .changes
            .iter()
            .find(|c| c.key == "idle_timeout.timeout_seconds")
            .unwrap();
        assert_eq!(idle_change.status, ChangeStatus::Unknown);
        assert!(idle_change
            .to_string()
            .ends_with("(could not be read back)"));
    }

    /// An answer cut short after two members: what a lenient reader would take for the state.
    const TRUNCATED: &str = "<DescribeTargetGroupAttributesResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeTargetGroupAttributesResult><Attributes><member><Key>stickiness.enabled</Key><Value>true</Value></member><member><Key>deregistration_delay.timeout_seconds</Key><Value>3</Value></member><mem";

    #[tokio::test(start_paused = true)]
    async fn a_truncated_attributes_answer_is_read_again_and_never_planned_from() {
        let cfg = alb_config();
        let tgs = target_groups();
        let lbs = load_balancers();
        let lb_read =
            mock!(elbv2::Client::describe_load_balancer_attributes).then_output(|| idle("120"));
        let tg_read = mock!(elbv2::Client::describe_target_group_attributes)
            .sequence()
            .http_status(200, Some(TRUNCATED.into()))
            .output(defaults)
            .build();
        let aws = aws_with_faults(&[], &[&tgs, &lbs, &tg_read, &lb_read], &Faults::new());
        let plan = bosar_deploy::alb::plan(&aws, &cfg).await.unwrap();
        assert_eq!(tg_read.num_calls(), 2, "read again");
        assert_eq!(
            plan.target_group.attributes["deregistration_delay.timeout_seconds"],
            "300"
        );
        assert_eq!(plan.change_count(), 4, "{:?}", plan.target_group_changes);

        // Cut short every time: no plan at all.
        let tg_read = mock!(elbv2::Client::describe_target_group_attributes)
            .sequence()
            .http_status(200, Some(TRUNCATED.into()))
            .repeatedly()
            .build();
        let aws = aws_with_faults(&[], &[&tgs, &lbs, &tg_read, &lb_read], &Faults::new());
        let err = bosar_deploy::alb::plan(&aws, &cfg).await.unwrap_err();
        let msg = bosar_deploy::exit::message_of(&err);
        assert!(msg.contains("DescribeTargetGroupAttributes failed: HTTP 200 with a body that is not a DescribeTargetGroupAttributes answer"), "{msg}");
        assert_eq!(tg_read.num_calls(), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn describe_services_and_target_health_errors_carry_a_hint() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthError;
    use bosar_deploy::exit::hint_of;
    let cfg = config();
    let opts = RolloutOptions::default();
    // Transient past the SDK's retries.
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let aws = aws_with_faults(&[&describe], &[], &Faults::new());
    let err = plan(&aws, ecs(&cfg), &opts).await.unwrap_err();
    let hint = hint_of(&err).unwrap_or_default();
    assert!(
        hint.contains("it is a read: run the command again"),
        "{err}: {hint}"
    );
    // Refused, with no hint of AWS's own.
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_error(|| {
        DescribeServicesError::generic(
            ErrorMetadata::builder()
                .code("InvalidParameterException")
                .message("Invalid identifier")
                .build(),
        )
    });
    let aws = aws_with_faults(&[&describe], &[], &Faults::new());
    let err = plan(&aws, ecs(&cfg), &opts).await.unwrap_err();
    let hint = hint_of(&err).unwrap_or_default();
    assert!(
        hint.contains("check [ecs] cluster and service in deploy.toml"),
        "{err}: {hint}"
    );
    // DescribeTargetHealth in the watch.
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_output(completed);
    let health =
        mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health).then_error(|| {
            DescribeTargetHealthError::generic(
                ErrorMetadata::builder()
                    .code("TargetGroupNotFound")
                    .message("One or more target groups not found")
                    .build(),
            )
        });
    let aws = aws_with_faults(&[&describe], &[&health], &Faults::new());
    let err =
        bosar_deploy::ecs::watch::watch(&aws, &target(), OPTS, &Ui::silent(), Default::default())
            .await
            .unwrap_err();
    let hint = hint_of(&err).unwrap_or_default();
    assert!(
        hint.contains("target groups exist in this region"),
        "{err}: {hint}"
    );
}
