//! `[ecs.deployment]` as ECS's `deploymentConfiguration`, pure. Absent means unmanaged: with no
//! section (or a section that names nothing but the gate) the service's configuration is not
//! sent at all. A named member replaces the service's; every member the file does not name
//! (alarms, lifecycle hooks, early success, the breaker's thresholds…) is sent as the service
//! has it, because UpdateService takes the configuration as one value.

use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentStrategy,
    LinearConfiguration,
};

use crate::config::{whole_minutes, DeploymentSection, Strategy};

/// The members `section` names, and only those, as the SDK's type: what a service without a
/// deploymentConfiguration of its own would be sent. `None` when the section names no member
/// (the gate alone is a lifecycle hook, not a member the file names).
pub fn named_configuration(section: &DeploymentSection) -> Option<DeploymentConfiguration> {
    section
        .names_configuration()
        .then(|| overlay(section, DeploymentConfiguration::builder().build()))
}

/// What UpdateService's `deploymentConfiguration` should be: the service's `current`
/// configuration with the named members over it. `None` when the section names nothing, or
/// when the result is what the service already has (nothing to send).
pub fn merged_configuration(
    section: &DeploymentSection,
    current: Option<&DeploymentConfiguration>,
) -> Option<DeploymentConfiguration> {
    if !section.names_configuration() {
        return None;
    }
    let base = current
        .cloned()
        .unwrap_or_else(|| DeploymentConfiguration::builder().build());
    let merged = overlay(section, base);
    (Some(&merged) != current).then_some(merged)
}

/// The strategy a deployment started now would use: the named one, else the service's
/// (absent means ROLLING, as ECS documents).
pub fn effective_strategy(
    section: Option<&DeploymentSection>,
    current: Option<&DeploymentConfiguration>,
) -> Strategy {
    section
        .and_then(|s| s.strategy)
        .or_else(|| current_strategy(current))
        .unwrap_or(Strategy::Rolling)
}

/// The service's strategy as ECS reports it (`None`: not reported, or one this tool does not
/// know).
pub fn current_strategy(current: Option<&DeploymentConfiguration>) -> Option<Strategy> {
    current
        .and_then(|c| c.strategy())
        .and_then(|s| Strategy::from_aws(s.as_str()))
}

fn sdk_strategy(s: Strategy) -> DeploymentStrategy {
    DeploymentStrategy::from(s.as_aws())
}

/// `base` with every member `section` names replaced. A canary or linear configuration that
/// belongs to another strategy than the resulting one is dropped: ECS takes each only with its
/// own strategy.
fn overlay(section: &DeploymentSection, mut c: DeploymentConfiguration) -> DeploymentConfiguration {
    if let Some(s) = section.strategy {
        c.strategy = Some(sdk_strategy(s));
    }
    if let Some(b) = section.bake_time {
        c.bake_time_in_minutes = Some(whole_minutes(b));
    }
    if section.canary_percent.is_some() || section.canary_bake_time.is_some() {
        let mut canary = c
            .canary_configuration
            .take()
            .unwrap_or_else(|| CanaryConfiguration::builder().build());
        if let Some(p) = section.canary_percent {
            canary.canary_percent = Some(p.as_f64());
        }
        if let Some(b) = section.canary_bake_time {
            canary.canary_bake_time_in_minutes = Some(whole_minutes(b));
        }
        c.canary_configuration = Some(canary);
    }
    if section.step_percent.is_some() || section.step_bake_time.is_some() {
        let mut linear = c
            .linear_configuration
            .take()
            .unwrap_or_else(|| LinearConfiguration::builder().build());
        if let Some(p) = section.step_percent {
            linear.step_percent = Some(p.as_f64());
        }
        if let Some(b) = section.step_bake_time {
            linear.step_bake_time_in_minutes = Some(whole_minutes(b));
        }
        c.linear_configuration = Some(linear);
    }
    if section.circuit_breaker.is_some() || section.rollback.is_some() {
        // Both halves are required members: the one not named keeps the service's value
        // (off when the service has no breaker), and so do the breaker's other settings.
        let mut breaker = c
            .deployment_circuit_breaker
            .take()
            .unwrap_or_else(|| DeploymentCircuitBreaker::builder().build());
        if let Some(e) = section.circuit_breaker {
            breaker.enable = e;
        }
        if let Some(r) = section.rollback {
            breaker.rollback = r;
        }
        c.deployment_circuit_breaker = Some(breaker);
    }
    if let Some(p) = section.minimum_healthy_percent {
        c.minimum_healthy_percent = Some(p as i32);
    }
    if let Some(p) = section.maximum_percent {
        c.maximum_percent = Some(p as i32);
    }
    let strategy = c
        .strategy
        .as_ref()
        .and_then(|s| Strategy::from_aws(s.as_str()));
    if strategy.is_some() && strategy != Some(Strategy::Canary) {
        c.canary_configuration = None;
    }
    if strategy.is_some() && strategy != Some(Strategy::Linear) {
        c.linear_configuration = None;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tenths;
    use std::time::Duration;

    fn min(m: u64) -> Option<Duration> {
        Some(Duration::from_secs(m * 60))
    }

    #[test]
    fn an_empty_section_sends_nothing() {
        let s = DeploymentSection::default();
        assert_eq!(named_configuration(&s), None);
        let current = DeploymentConfiguration::builder()
            .maximum_percent(200)
            .build();
        assert_eq!(merged_configuration(&s, Some(&current)), None);
    }

    #[test]
    fn only_the_named_members_are_set() {
        let s = DeploymentSection {
            strategy: Some(Strategy::Canary),
            canary_percent: Some(Tenths(125)),
            bake_time: min(15),
            ..Default::default()
        };
        let c = named_configuration(&s).unwrap();
        assert_eq!(c.strategy(), Some(&DeploymentStrategy::Canary));
        assert_eq!(c.bake_time_in_minutes(), Some(15));
        let canary = c.canary_configuration().unwrap();
        assert_eq!(canary.canary_percent(), Some(12.5));
        assert_eq!(canary.canary_bake_time_in_minutes(), None);
        assert_eq!(c.deployment_circuit_breaker(), None);
        assert_eq!(c.minimum_healthy_percent(), None);
        assert_eq!(c.maximum_percent(), None);
        assert_eq!(c.linear_configuration(), None);
        assert!(c.lifecycle_hooks().is_empty());
    }

    #[test]
    fn named_members_go_over_what_the_service_has_and_the_rest_stays() {
        let current = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Canary)
            .canary_configuration(
                CanaryConfiguration::builder()
                    .canary_percent(5.0)
                    .canary_bake_time_in_minutes(10)
                    .build(),
            )
            .deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(true)
                    .rollback(false)
                    .reset_on_healthy_task(false)
                    .build(),
            )
            .maximum_percent(200)
            .build();
        let s = DeploymentSection {
            canary_bake_time: min(3),
            rollback: Some(true),
            ..Default::default()
        };
        let c = merged_configuration(&s, Some(&current)).unwrap();
        let canary = c.canary_configuration().unwrap();
        assert_eq!(canary.canary_percent(), Some(5.0));
        assert_eq!(canary.canary_bake_time_in_minutes(), Some(3));
        let b = c.deployment_circuit_breaker().unwrap();
        assert!(b.enable() && b.rollback());
        assert_eq!(
            b.reset_on_healthy_task(),
            Some(false),
            "the breaker's other settings stay"
        );
        assert_eq!(c.maximum_percent(), Some(200));
        assert_eq!(c.strategy(), Some(&DeploymentStrategy::Canary));
    }

    #[test]
    fn what_the_service_already_has_is_not_sent_again() {
        let current = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Rolling)
            .maximum_percent(200)
            .build();
        let s = DeploymentSection {
            strategy: Some(Strategy::Rolling),
            maximum_percent: Some(200),
            ..Default::default()
        };
        assert_eq!(merged_configuration(&s, Some(&current)), None);
        let s = DeploymentSection {
            maximum_percent: Some(150),
            ..s
        };
        let c = merged_configuration(&s, Some(&current)).unwrap();
        assert_eq!(c.maximum_percent(), Some(150));
    }

    #[test]
    fn a_new_strategy_drops_the_old_strategys_own_configuration() {
        let current = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Canary)
            .canary_configuration(CanaryConfiguration::builder().canary_percent(5.0).build())
            .build();
        let s = DeploymentSection {
            strategy: Some(Strategy::Linear),
            step_percent: Some(Tenths(250)),
            ..Default::default()
        };
        let c = merged_configuration(&s, Some(&current)).unwrap();
        assert_eq!(c.canary_configuration(), None);
        assert_eq!(c.linear_configuration().unwrap().step_percent(), Some(25.0));
    }

    #[test]
    fn the_effective_strategy_is_the_named_one_else_the_services_else_rolling() {
        let canary = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Canary)
            .build();
        assert_eq!(effective_strategy(None, None), Strategy::Rolling);
        assert_eq!(effective_strategy(None, Some(&canary)), Strategy::Canary);
        let s = DeploymentSection {
            strategy: Some(Strategy::BlueGreen),
            ..Default::default()
        };
        assert_eq!(
            effective_strategy(Some(&s), Some(&canary)),
            Strategy::BlueGreen
        );
        let unnamed = DeploymentSection::default();
        assert_eq!(
            effective_strategy(Some(&unnamed), Some(&canary)),
            Strategy::Canary
        );
    }
}
