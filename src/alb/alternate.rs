//! Services deployed blue/green, canary or linear by ECS have two target groups: the one
//! `[target_group]` names and the alternate one in the service's
//! `loadBalancers[].advancedConfiguration`, and traffic moves between them by rewriting the
//! production (and test) listener rule. Both groups get `[target_group]`'s attributes, so
//! stickiness and the deregistration delay do not change when traffic moves. The rules are
//! read and judged (pure, below): ECS shifts only rules whose actions are all `forward`, and a
//! rule that forwards to two groups by weight needs target group stickiness, or a Socket.IO
//! session that polls hops between blue and green.

use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, Rule};
use serde::Serialize;

use super::plan::AttributeChange;
use super::TargetGroupInfo;
use crate::aws::{sdk_error, Aws};
use crate::config::{Config, Strategy};
use crate::exit::Failure;

/// The second target group and what `alb-update` would change on it.
#[derive(Debug, Clone, Serialize)]
pub struct AlternatePlan {
    pub target_group: TargetGroupInfo,
    pub changes: Vec<AttributeChange>,
}

/// What the service's load balancer entry says about the configured target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advanced {
    /// The other target group of the pair (the alternate one, or the production one when
    /// `[target_group]` names the alternate).
    pub other: String,
    pub production_rule: Option<String>,
    pub test_rule: Option<String>,
    /// The strategy the next deployment uses: `[ecs.deployment]`'s, else the service's.
    pub strategy: Strategy,
}

/// One target group a rule forwards to, with its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    pub target_group_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// A listener rule named in advancedConfiguration, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerRuleView {
    /// `production` or `test`.
    pub role: &'static str,
    pub arn: String,
    /// Each action's type (`forward`, `redirect`, `authenticate-oidc`, …).
    pub actions: Vec<String>,
    pub forwards: Vec<Forward>,
    /// `TargetGroupStickinessConfig`: enabled and its duration (`None`: not reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stickiness_seconds: Option<i32>,
}

/// The pair and the rules from the service's load balancer entry for `tg_arn` (as its
/// target group or as its alternate). `None`: no `[ecs]`, or no alternate target group.
pub async fn read_advanced(
    aws: &Aws,
    cfg: &Config,
    tg_arn: &str,
) -> anyhow::Result<Option<Advanced>> {
    let Some(ecs) = &cfg.ecs else {
        return Ok(None);
    };
    let (_, service) = crate::ecs::describe_service_full(aws, &ecs.cluster, &ecs.service)
        .await
        .map_err(anyhow::Error::from)?;
    let current = service.deployment_configuration();
    let strategy = crate::ecs::strategy::effective_strategy(ecs.deployment.as_ref(), current);
    Ok(advanced_of(&service, tg_arn, strategy))
}

/// [`read_advanced`]'s pure part.
pub fn advanced_of(
    service: &aws_sdk_ecs::types::Service,
    tg_arn: &str,
    strategy: Strategy,
) -> Option<Advanced> {
    service.load_balancers().iter().find_map(|lb| {
        let adv = lb.advanced_configuration()?;
        let production = lb.target_group_arn()?;
        let alternate = adv.alternate_target_group_arn()?;
        let other = if production == tg_arn {
            alternate
        } else if alternate == tg_arn {
            production
        } else {
            return None;
        };
        Some(Advanced {
            other: other.to_string(),
            production_rule: adv.production_listener_rule().map(str::to_string),
            test_rule: adv.test_listener_rule().map(str::to_string),
            strategy,
        })
    })
}

/// DescribeRules for the production and test rules. A rule that cannot be read is an error:
/// the plan does not judge what it has not seen.
pub async fn read_rules(aws: &Aws, adv: &Advanced) -> anyhow::Result<Vec<ListenerRuleView>> {
    let named: Vec<(&'static str, &String)> = [
        ("production", &adv.production_rule),
        ("test", &adv.test_rule),
    ]
    .into_iter()
    .filter_map(|(role, arn)| arn.as_ref().map(|a| (role, a)))
    .collect();
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let out = aws
        .elb
        .describe_rules()
        .set_rule_arns(Some(named.iter().map(|(_, a)| a.to_string()).collect()))
        .send()
        .await
        .map_err(|e| {
            let f = Failure::failed(format!(
                "{}; the listener rules named in the service's advancedConfiguration could not be read, so both target groups are left as they are",
                crate::exit::message_of(&sdk_error("DescribeRules", e))
            ));
            f.hint("the credentials need elasticloadbalancing:DescribeRules (README \"IAM policy\"); advancedConfiguration must name ALB listener rules")
        })?;
    named
        .iter()
        .map(|(role, arn)| {
            let rule = out.rules().iter().find(|r| r.rule_arn() == Some(arn.as_str()));
            match rule {
                Some(r) => Ok(rule_view(role, r)),
                None => Err(Failure::failed(format!(
                    "the {role} listener rule {arn} named in the service's advancedConfiguration was not returned by DescribeRules"
                ))
                .hint("check the service's loadBalancers[].advancedConfiguration: it must name an ALB listener rule (not a listener)")
                .into()),
            }
        })
        .collect()
}

/// The rule as the plan shows and judges it.
pub fn rule_view(role: &'static str, r: &Rule) -> ListenerRuleView {
    let mut forwards = Vec::new();
    let mut stickiness = None;
    let mut stickiness_seconds = None;
    for a in r.actions() {
        if a.r#type() != Some(&ActionTypeEnum::Forward) {
            continue;
        }
        match a.forward_config() {
            Some(fc) if !fc.target_groups().is_empty() => {
                forwards.extend(fc.target_groups().iter().filter_map(|t| {
                    Some(Forward {
                        target_group_arn: t.target_group_arn()?.to_string(),
                        weight: t.weight(),
                    })
                }));
                if let Some(s) = fc.target_group_stickiness_config() {
                    stickiness = s.enabled();
                    stickiness_seconds = s.duration_seconds();
                }
            }
            _ => forwards.extend(a.target_group_arn().map(|t| Forward {
                target_group_arn: t.to_string(),
                weight: None,
            })),
        }
    }
    ListenerRuleView {
        role,
        arn: r.rule_arn().unwrap_or_default().to_string(),
        actions: r
            .actions()
            .iter()
            .map(|a| {
                a.r#type()
                    .map_or("unknown".to_string(), |t| t.as_str().to_string())
            })
            .collect(),
        forwards,
        stickiness,
        stickiness_seconds,
    }
}

/// Why ECS could not shift traffic on this rule (or the tool cannot judge it), with what to
/// change: only `forward` actions, forwarding to the pair and nothing else.
pub fn rule_refusal(rule: &ListenerRuleView, pair: [&str; 2]) -> Option<String> {
    let other: Vec<&String> = rule.actions.iter().filter(|a| *a != "forward").collect();
    if !other.is_empty() || rule.actions.is_empty() {
        let listed: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
        return Some(format!(
            "the {} listener rule {} has {} action(s): ECS shifts traffic only on rules whose actions are all forward; change the rule to a forward action to the service's target group (move authentication or redirects to another rule or the listener)",
            rule.role,
            rule.arn,
            if listed.is_empty() { "no".to_string() } else { listed.join(", ") }
        ));
    }
    let stray: Vec<&str> = rule
        .forwards
        .iter()
        .map(|f| f.target_group_arn.as_str())
        .filter(|t| !pair.contains(t))
        .collect();
    if rule.forwards.is_empty() || !stray.is_empty() {
        return Some(format!(
            "the {} listener rule {} forwards to {}, not to the service's two target groups: bosar-deploy cannot judge where ECS moves traffic; make it forward to {} (and, by weight, {})",
            rule.role,
            rule.arn,
            if stray.is_empty() { "nothing".to_string() } else { stray.join(", ") },
            pair[0],
            pair[1]
        ));
    }
    None
}

/// Canary and linear steps (and any rule forwarding to both groups now) split traffic by
/// weight: without the rule's target group stickiness, a polling Socket.IO session's next
/// request may land in the other group, whose tasks do not know its sid.
pub fn stickiness_warning(rule: &ListenerRuleView, strategy: Strategy) -> Option<String> {
    if rule.role != "production" || rule.stickiness == Some(true) {
        return None;
    }
    let split = rule.forwards.len() >= 2 || matches!(strategy, Strategy::Canary | Strategy::Linear);
    split.then(|| {
        format!(
            "the production listener rule {} splits traffic between blue and green by weight (canary and linear steps) with target group stickiness off: a Socket.IO session that polls can hop to the other target group and lose its session; set the rule's forward action TargetGroupStickinessConfig to Enabled=true with DurationSeconds at least a session's length (for example 3600): aws elbv2 modify-rule --rule-arn {} --actions '[{{\"Type\":\"forward\",\"ForwardConfig\":{{\"TargetGroups\":[…],\"TargetGroupStickinessConfig\":{{\"Enabled\":true,\"DurationSeconds\":3600}}}}}}]'",
            rule.arn, rule.arn
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLUE: &str = "arn:tg/blue";
    const GREEN: &str = "arn:tg/green";

    fn view(actions: &[&str], forwards: &[&str], sticky: Option<bool>) -> ListenerRuleView {
        ListenerRuleView {
            role: "production",
            arn: "arn:rule/1".into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            forwards: forwards
                .iter()
                .map(|t| Forward {
                    target_group_arn: t.to_string(),
                    weight: Some(50),
                })
                .collect(),
            stickiness: sticky,
            stickiness_seconds: None,
        }
    }

    #[test]
    fn the_pair_is_found_from_either_target_group() {
        use aws_sdk_ecs::types::{AdvancedConfiguration, LoadBalancer, Service};
        let service = Service::builder()
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(BLUE)
                    .advanced_configuration(
                        AdvancedConfiguration::builder()
                            .alternate_target_group_arn(GREEN)
                            .production_listener_rule("arn:rule/prod")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let from_blue = advanced_of(&service, BLUE, Strategy::Canary).unwrap();
        assert_eq!(from_blue.other, GREEN);
        assert_eq!(from_blue.production_rule.as_deref(), Some("arn:rule/prod"));
        assert_eq!(from_blue.test_rule, None);
        assert_eq!(
            advanced_of(&service, GREEN, Strategy::Canary)
                .unwrap()
                .other,
            BLUE
        );
        assert_eq!(
            advanced_of(&service, "arn:tg/other", Strategy::Canary),
            None
        );
        let rolling = Service::builder()
            .load_balancers(LoadBalancer::builder().target_group_arn(BLUE).build())
            .build();
        assert_eq!(
            advanced_of(&rolling, BLUE, Strategy::Rolling),
            None,
            "one target group"
        );
    }

    #[test]
    fn only_forward_rules_to_the_pair_are_accepted() {
        assert_eq!(
            rule_refusal(&view(&["forward"], &[BLUE, GREEN], None), [BLUE, GREEN]),
            None
        );
        assert_eq!(
            rule_refusal(&view(&["forward"], &[BLUE], None), [BLUE, GREEN]),
            None
        );
        let r = rule_refusal(
            &view(&["authenticate-oidc", "forward"], &[BLUE], None),
            [BLUE, GREEN],
        )
        .unwrap();
        assert!(
            r.contains("has authenticate-oidc action(s)")
                && r.contains("change the rule to a forward action"),
            "{r}"
        );
        let r = rule_refusal(&view(&["redirect"], &[], None), [BLUE, GREEN]).unwrap();
        assert!(r.contains("redirect"), "{r}");
        let r = rule_refusal(
            &view(&["forward"], &[BLUE, "arn:tg/other"], None),
            [BLUE, GREEN],
        )
        .unwrap();
        assert!(r.contains("forwards to arn:tg/other"), "{r}");
        let r = rule_refusal(&view(&["forward"], &[], None), [BLUE, GREEN]).unwrap();
        assert!(r.contains("forwards to nothing"), "{r}");
    }

    #[test]
    fn a_weighted_split_without_stickiness_is_warned_about() {
        let split = view(&["forward"], &[BLUE, GREEN], Some(false));
        let w = stickiness_warning(&split, Strategy::BlueGreen).unwrap();
        assert!(
            w.contains("TargetGroupStickinessConfig to Enabled=true"),
            "{w}"
        );
        assert_eq!(
            stickiness_warning(
                &view(&["forward"], &[BLUE, GREEN], Some(true)),
                Strategy::Canary
            ),
            None
        );
        // One group today, but canary and linear will split it.
        let one = view(&["forward"], &[BLUE], None);
        assert!(stickiness_warning(&one, Strategy::Linear).is_some());
        assert_eq!(stickiness_warning(&one, Strategy::BlueGreen), None);
        let mut test = split.clone();
        test.role = "test";
        assert_eq!(stickiness_warning(&test, Strategy::Canary), None);
    }
}
