//! `[ecs.deployment]` as ECS's `deploymentConfiguration`, pure. Absent means unmanaged: with no
//! section (or a section that names nothing but the gate) the service's configuration is not
//! sent at all. A named member replaces the service's; every member the file does not name
//! (alarms, lifecycle hooks, early success, the breaker's thresholds…) is sent as the service
//! has it, because UpdateService takes the configuration as one value.

use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentStrategy,
    LinearConfiguration,
};

use serde::Serialize;

use crate::config::{whole_minutes, DeploymentSection, Strategy, Tenths};

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

/// The section that describes what the service uses today (`init` writes it): every member
/// ECS reports, as deploy.toml spells it, left out where the file could not say it (a
/// strategy's own keys under another strategy, a value outside deploy.toml's ranges, rollback
/// on with the breaker off, blue/green without its bake time), so the section validates and
/// plans no change.
pub fn section_of(current: &DeploymentConfiguration) -> DeploymentSection {
    use crate::config::{
        BAKE_TIME_MAX_MINUTES, CANARY_PERCENT_RANGE, MAXIMUM_PERCENT_RANGE,
        MINIMUM_HEALTHY_PERCENT_RANGE, STEP_PERCENT_RANGE,
    };
    let mut strategy = current_strategy(Some(current));
    let minutes = |m: Option<i32>| {
        m.and_then(|m| u64::try_from(m).ok())
            .filter(|m| *m <= BAKE_TIME_MAX_MINUTES)
            .map(|m| std::time::Duration::from_secs(m * 60))
    };
    let pct = |p: Option<f64>, (lo, hi): (Tenths, Tenths)| {
        p.filter(|p| (p * 10.0 - (p * 10.0).round()).abs() < 1e-6)
            .and_then(Tenths::from_f64)
            .filter(|t| (lo..=hi).contains(t))
    };
    let whole = |p: Option<i32>, (lo, hi): (u32, u32)| {
        p.and_then(|p| u32::try_from(p).ok())
            .filter(|p| (lo..=hi).contains(p))
    };
    let bake_time = minutes(current.bake_time_in_minutes())
        .filter(|_| strategy.is_some_and(|s| s.shifts_traffic()));
    if strategy == Some(Strategy::BlueGreen) && bake_time.is_none() {
        strategy = None;
    }
    let canary = current
        .canary_configuration()
        .filter(|_| strategy == Some(Strategy::Canary));
    let linear = current
        .linear_configuration()
        .filter(|_| strategy == Some(Strategy::Linear));
    let breaker = current.deployment_circuit_breaker();
    DeploymentSection {
        strategy,
        bake_time,
        canary_percent: canary.and_then(|c| pct(c.canary_percent(), CANARY_PERCENT_RANGE)),
        canary_bake_time: canary.and_then(|c| minutes(c.canary_bake_time_in_minutes())),
        step_percent: linear.and_then(|c| pct(c.step_percent(), STEP_PERCENT_RANGE)),
        step_bake_time: linear.and_then(|c| minutes(c.step_bake_time_in_minutes())),
        circuit_breaker: breaker.map(|b| b.enable()),
        rollback: breaker
            .filter(|b| b.enable() || !b.rollback())
            .map(|b| b.rollback()),
        minimum_healthy_percent: whole(
            current.minimum_healthy_percent(),
            MINIMUM_HEALTHY_PERCENT_RANGE,
        ),
        maximum_percent: whole(current.maximum_percent(), MAXIMUM_PERCENT_RANGE),
        gate: None,
    }
}

/// One member of deploymentConfiguration that `deploy` would change, keyed as deploy.toml
/// names it, with both values as text (`(unset)`: the service reports none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigurationChange {
    pub key: &'static str,
    pub current: String,
    pub desired: String,
}

impl std::fmt::Display for ConfigurationChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "~ {}: {} -> {}", self.key, self.current, self.desired)
    }
}

const UNSET: &str = "(unset)";

fn minutes_text(m: Option<i32>) -> String {
    m.map_or(UNSET.into(), |m| format!("{m}m"))
}

fn percent_text(p: Option<f64>) -> String {
    p.and_then(Tenths::from_f64)
        .map_or(UNSET.into(), |t| t.to_string())
}

fn int_text(p: Option<i32>) -> String {
    p.map_or(UNSET.into(), |p| p.to_string())
}

fn bool_text(b: Option<bool>) -> String {
    b.map_or(UNSET.into(), |b| b.to_string())
}

/// Each member `section` names whose value differs from the service's `current` one, in the
/// order deploy.toml lists them. Strategies are shown as deploy.toml spells them.
pub fn plan_changes(
    section: &DeploymentSection,
    current: Option<&DeploymentConfiguration>,
) -> Vec<ConfigurationChange> {
    let c = current
        .cloned()
        .unwrap_or_else(|| DeploymentConfiguration::builder().build());
    let canary = c.canary_configuration();
    let linear = c.linear_configuration();
    let breaker = c.deployment_circuit_breaker();
    let strategy_text = |s: Option<&DeploymentStrategy>| {
        s.map_or(UNSET.into(), |s| {
            Strategy::from_aws(s.as_str()).map_or(s.as_str().to_string(), |k| k.as_config().into())
        })
    };
    let named_minutes =
        |d: Option<std::time::Duration>| d.map(|d| format!("{}m", whole_minutes(d)));
    let text = |v: Option<&dyn ToString>| v.map(|v| v.to_string());
    let rows: [(&'static str, Option<String>, String); 10] = [
        (
            "strategy",
            section.strategy.map(|s| s.as_config().to_string()),
            strategy_text(c.strategy()),
        ),
        (
            "bake_time",
            named_minutes(section.bake_time),
            minutes_text(c.bake_time_in_minutes()),
        ),
        (
            "canary_percent",
            text(section.canary_percent.as_ref().map(|p| p as _)),
            percent_text(canary.and_then(|x| x.canary_percent())),
        ),
        (
            "canary_bake_time",
            named_minutes(section.canary_bake_time),
            minutes_text(canary.and_then(|x| x.canary_bake_time_in_minutes())),
        ),
        (
            "step_percent",
            text(section.step_percent.as_ref().map(|p| p as _)),
            percent_text(linear.and_then(|x| x.step_percent())),
        ),
        (
            "step_bake_time",
            named_minutes(section.step_bake_time),
            minutes_text(linear.and_then(|x| x.step_bake_time_in_minutes())),
        ),
        (
            "circuit_breaker",
            text(section.circuit_breaker.as_ref().map(|b| b as _)),
            bool_text(breaker.map(|b| b.enable())),
        ),
        (
            "rollback",
            text(section.rollback.as_ref().map(|b| b as _)),
            bool_text(breaker.map(|b| b.rollback())),
        ),
        (
            "minimum_healthy_percent",
            text(section.minimum_healthy_percent.as_ref().map(|p| p as _)),
            int_text(c.minimum_healthy_percent()),
        ),
        (
            "maximum_percent",
            text(section.maximum_percent.as_ref().map(|p| p as _)),
            int_text(c.maximum_percent()),
        ),
    ];
    rows.into_iter()
        .filter_map(|(key, desired, current)| {
            let desired = desired?;
            (desired != current).then_some(ConfigurationChange {
                key,
                current,
                desired,
            })
        })
        .collect()
}

/// Why `[ecs.deployment]` cannot be applied to a service with deployment controller
/// `controller` (`None`: ECS): blue/green, canary and linear exist only under the ECS
/// controller. Says what to change.
pub fn controller_refusal(
    section: Option<&DeploymentSection>,
    service: &str,
    controller: Option<&str>,
) -> Option<String> {
    let strategy = section?.strategy.filter(|s| s.shifts_traffic())?;
    match controller {
        None | Some("ECS") => None,
        Some(other) => Some(format!(
            "[ecs.deployment] strategy = \"{}\" needs the ECS deployment controller, and service {service} uses {other}: ECS offers {} only to services with deploymentController ECS; move the service to the ECS controller (a new service, or UpdateService's deploymentController where ECS allows it), or remove strategy from [ecs.deployment]",
            strategy.as_config(),
            strategy.as_aws()
        )),
    }
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
    fn the_plan_lists_named_members_that_differ() {
        let current = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Rolling)
            .maximum_percent(200)
            .minimum_healthy_percent(100)
            .deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(true)
                    .rollback(true)
                    .build(),
            )
            .build();
        let s = DeploymentSection {
            strategy: Some(Strategy::Canary),
            canary_percent: Some(Tenths(50)),
            bake_time: min(10),
            maximum_percent: Some(200),
            rollback: Some(false),
            ..Default::default()
        };
        let lines: Vec<String> = plan_changes(&s, Some(&current))
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "~ strategy: rolling -> canary",
                "~ bake_time: (unset) -> 10m",
                "~ canary_percent: (unset) -> 5.0",
                "~ rollback: true -> false",
            ]
        );
        assert!(plan_changes(&DeploymentSection::default(), Some(&current)).is_empty());
    }

    #[test]
    fn shifting_strategies_need_the_ecs_controller() {
        let s = DeploymentSection {
            strategy: Some(Strategy::BlueGreen),
            bake_time: min(5),
            ..Default::default()
        };
        let r = controller_refusal(Some(&s), "api", Some("CODE_DEPLOY")).unwrap();
        assert!(r.contains("needs the ECS deployment controller"), "{r}");
        assert!(r.contains("uses CODE_DEPLOY"), "{r}");
        assert_eq!(controller_refusal(Some(&s), "api", Some("ECS")), None);
        assert_eq!(controller_refusal(Some(&s), "api", None), None);
        let rolling = DeploymentSection {
            strategy: Some(Strategy::Rolling),
            ..Default::default()
        };
        assert_eq!(
            controller_refusal(Some(&rolling), "api", Some("EXTERNAL")),
            None
        );
        assert_eq!(controller_refusal(None, "api", Some("EXTERNAL")), None);
    }

    #[test]
    fn the_section_of_a_service_plans_no_change_and_leaves_out_what_the_file_cannot_say() {
        let canary = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Canary)
            .bake_time_in_minutes(5)
            .canary_configuration(
                CanaryConfiguration::builder()
                    .canary_percent(12.5)
                    .canary_bake_time_in_minutes(10)
                    .build(),
            )
            // Left over from an earlier linear configuration: not the canary's key.
            .linear_configuration(LinearConfiguration::builder().step_percent(10.0).build())
            .deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(false)
                    .rollback(true)
                    .build(),
            )
            .maximum_percent(200)
            .minimum_healthy_percent(100)
            .build();
        let s = section_of(&canary);
        assert_eq!(s.strategy, Some(Strategy::Canary));
        assert_eq!(s.canary_percent, Some(Tenths(125)));
        assert_eq!(s.canary_bake_time, min(10));
        assert_eq!(s.bake_time, min(5));
        assert_eq!(s.step_percent, None);
        assert_eq!((s.circuit_breaker, s.rollback), (Some(false), None));
        assert_eq!(
            (s.minimum_healthy_percent, s.maximum_percent),
            (Some(100), Some(200))
        );
        assert!(plan_changes(&s, Some(&canary)).is_empty());
        // Blue/green without its required bake time: the strategy is left unmanaged.
        let bg = DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::BlueGreen)
            .maximum_percent(5000)
            .build();
        let s = section_of(&bg);
        assert_eq!(s.strategy, None);
        assert_eq!(s.maximum_percent, None, "outside deploy.toml's range");
        assert!(!s.names_configuration());
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
