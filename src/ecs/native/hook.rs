//! bosar-deploy's own PAUSE lifecycle hook, pure: built from the gate's settings, recognized
//! among the service's hooks by its marker, and merged so every other hook stays as it is.
//! Its timeout's action is ROLLBACK: a CI job that dies during the pause never leaves a
//! deployment half-shifted.

use std::collections::HashMap;

use aws_sdk_ecs::types::{
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookAction,
    DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentLifecycleHookTimeoutConfiguration,
};
use aws_smithy_types::Document;

use super::gate::GateSettings;
use super::stages::GateStage;

/// The `hookDetails` key and value that mark the hook as bosar-deploy's.
pub const OWNER_KEY: &str = "owner";
pub const OWNER: &str = "bosar-deploy";

/// The API's range of `timeoutInMinutes`.
pub const TIMEOUT_MINUTES: std::ops::RangeInclusive<u32> = 1..=20160;

/// The hook the gate owns: PAUSE at `stage`, ROLLBACK when nobody answers in time.
pub fn owned_hook(stage: GateStage, gate: GateSettings) -> DeploymentLifecycleHook {
    let details = HashMap::from([(OWNER_KEY.to_string(), Document::String(OWNER.into()))]);
    DeploymentLifecycleHook::builder()
        .target_type(DeploymentLifecycleHookTargetType::Pause)
        .lifecycle_stages(DeploymentLifecycleHookStage::from(stage.as_str()))
        .hook_details(Document::Object(details))
        .timeout_configuration(
            DeploymentLifecycleHookTimeoutConfiguration::builder()
                .timeout_in_minutes(gate.timeout_minutes as i32)
                .action(DeploymentLifecycleHookAction::Rollback)
                .build(),
        )
        .build()
}

/// Whether `h` is bosar-deploy's: a PAUSE hook whose details carry the owner marker.
pub fn is_owned(h: &DeploymentLifecycleHook) -> bool {
    let marked = match h.hook_details() {
        Some(Document::Object(m)) => m.get(OWNER_KEY) == Some(&Document::String(OWNER.to_string())),
        _ => false,
    };
    marked && h.target_type() == Some(&DeploymentLifecycleHookTargetType::Pause)
}

/// The hooks UpdateService should carry, or `None` to leave them untouched. With a gate:
/// every hook not ours as it is, plus exactly one of ours. Without a gate: untouched, unless
/// an owned hook is left from a gated deploy (it would pause every deployment until its
/// timeout rolls it back), which alone is removed. A PAUSE hook of someone else's at the
/// gate's stage is refused: whose `CONTINUE` would count could not be told apart.
pub fn hooks_for(
    existing: &[DeploymentLifecycleHook],
    gate: Option<(GateStage, GateSettings)>,
) -> Result<Option<Vec<DeploymentLifecycleHook>>, String> {
    let others: Vec<DeploymentLifecycleHook> =
        existing.iter().filter(|h| !is_owned(h)).cloned().collect();
    let Some((stage, settings)) = gate else {
        return Ok((others.len() != existing.len()).then_some(others));
    };
    if !TIMEOUT_MINUTES.contains(&settings.timeout_minutes) {
        return Err(format!(
            "the gate's timeout is {} minutes; ECS allows 1 to 20160",
            settings.timeout_minutes
        ));
    }
    let stage_enum = DeploymentLifecycleHookStage::from(stage.as_str());
    if others.iter().any(|h| {
        h.target_type() == Some(&DeploymentLifecycleHookTargetType::Pause)
            && h.lifecycle_stages().contains(&stage_enum)
    }) {
        return Err(format!(
            "the service has a PAUSE lifecycle hook of its own at {}, where bosar-deploy's gate pauses; remove it or drop `gate` from [ecs.deployment]",
            stage.as_str()
        ));
    }
    let mut hooks = others;
    hooks.push(owned_hook(stage, settings));
    Ok(Some(hooks))
}

/// UpdateService's deploymentConfiguration with the gate's hooks: `send` (what
/// `[ecs.deployment]` merged over the service's, `None` when it names nothing) or else the
/// service's `current` one, with [`hooks_for`]'s hooks. `Ok(send)` unchanged when the hooks
/// stay as they are, so a service without a gate gets no change from this.
pub fn with_gate(
    send: Option<DeploymentConfiguration>,
    current: Option<&DeploymentConfiguration>,
    gate: Option<(GateStage, GateSettings)>,
) -> Result<Option<DeploymentConfiguration>, String> {
    let existing = current.map(|c| c.lifecycle_hooks()).unwrap_or_default();
    let Some(hooks) = hooks_for(existing, gate)? else {
        return Ok(send);
    };
    let mut c = send
        .or_else(|| current.cloned())
        .unwrap_or_else(|| DeploymentConfiguration::builder().build());
    c.lifecycle_hooks = Some(hooks);
    Ok((Some(&c) != current).then_some(c))
}

/// The plan's line for the hooks, when UpdateService would change them.
pub fn plan_line(
    current: Option<&DeploymentConfiguration>,
    send: Option<&DeploymentConfiguration>,
) -> Option<crate::ecs::strategy::ConfigurationChange> {
    let before = current.map(|c| c.lifecycle_hooks()).unwrap_or_default();
    let after = send?.lifecycle_hooks();
    (before != after).then(|| crate::ecs::strategy::ConfigurationChange {
        key: "lifecycleHooks",
        current: describe_hooks(before),
        desired: describe_hooks(after),
    })
}

/// "1 hook(s), bosar-deploy's: PAUSE at POST_SCALE_UP, 60 min then ROLLBACK".
fn describe_hooks(hooks: &[DeploymentLifecycleHook]) -> String {
    let ours = hooks.iter().find(|h| is_owned(h)).map(|h| {
        let stages: Vec<&str> = h.lifecycle_stages().iter().map(|s| s.as_str()).collect();
        let minutes = h
            .timeout_configuration()
            .and_then(|t| t.timeout_in_minutes())
            .unwrap_or_default();
        format!(
            ", bosar-deploy's: PAUSE at {}, {minutes} min then ROLLBACK",
            stages.join("+")
        )
    });
    format!("{} hook(s){}", hooks.len(), ours.unwrap_or_default())
}

/// Whether a load balancer of the service names a test listener rule
/// (`advancedConfiguration.testListenerRule`): then green can be judged after the test
/// traffic shift, through the test listener.
pub fn has_test_listener_rule(service: &aws_sdk_ecs::types::Service) -> bool {
    service.load_balancers().iter().any(|l| {
        l.advanced_configuration()
            .and_then(|a| a.test_listener_rule())
            .is_some_and(|r| !r.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: GateSettings = GateSettings {
        timeout_minutes: 30,
    };

    fn lambda() -> DeploymentLifecycleHook {
        DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
            .hook_target_arn("arn:aws:lambda:us-east-1:123456789012:function:smoke")
            .role_arn("arn:aws:iam::123456789012:role/hooks")
            .lifecycle_stages(DeploymentLifecycleHookStage::PostScaleUp)
            .build()
    }

    #[test]
    fn the_owned_hook_pauses_once_and_rolls_back_on_timeout() {
        let h = owned_hook(GateStage::PostTestTrafficShift, GATE);
        assert!(is_owned(&h));
        assert_eq!(
            h.lifecycle_stages(),
            [DeploymentLifecycleHookStage::PostTestTrafficShift]
        );
        let t = h.timeout_configuration().unwrap();
        assert_eq!(t.timeout_in_minutes(), Some(30));
        assert_eq!(t.action(), Some(&DeploymentLifecycleHookAction::Rollback));
        assert!(!is_owned(&lambda()));
        // The marker alone is not enough: a Lambda hook with it is not ours.
        let fake = DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
            .set_hook_details(h.hook_details().cloned())
            .build();
        assert!(!is_owned(&fake));
    }

    #[test]
    fn other_hooks_are_kept_and_ours_appears_exactly_once() {
        let gate = Some((GateStage::PostScaleUp, GATE));
        let hooks = hooks_for(&[lambda()], gate).unwrap().unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0], lambda());
        // A second gated deploy replaces ours (a new timeout), never adds one.
        let again = hooks_for(
            &hooks,
            Some((
                GateStage::PostScaleUp,
                GateSettings {
                    timeout_minutes: 60,
                },
            )),
        )
        .unwrap()
        .unwrap();
        assert_eq!(again.iter().filter(|h| is_owned(h)).count(), 1);
        assert_eq!(again.len(), 2);
        assert_eq!(
            again[1]
                .timeout_configuration()
                .unwrap()
                .timeout_in_minutes(),
            Some(60)
        );
    }

    #[test]
    fn without_a_gate_hooks_are_untouched_but_a_leftover_of_ours_goes() {
        assert_eq!(hooks_for(&[lambda()], None).unwrap(), None);
        assert_eq!(hooks_for(&[], None).unwrap(), None);
        let left = [lambda(), owned_hook(GateStage::PostScaleUp, GATE)];
        assert_eq!(hooks_for(&left, None).unwrap(), Some(vec![lambda()]));
    }

    #[test]
    fn a_foreign_pause_at_our_stage_and_a_bad_timeout_are_refused() {
        let theirs = DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::Pause)
            .lifecycle_stages(DeploymentLifecycleHookStage::PostScaleUp)
            .build();
        let e = hooks_for(
            std::slice::from_ref(&theirs),
            Some((GateStage::PostScaleUp, GATE)),
        )
        .unwrap_err();
        assert!(
            e.contains("PAUSE lifecycle hook of its own at POST_SCALE_UP"),
            "{e}"
        );
        // At another stage it is kept.
        assert!(hooks_for(&[theirs], Some((GateStage::PostTestTrafficShift, GATE))).is_ok());
        for bad in [0, 20161] {
            let e = hooks_for(
                &[],
                Some((
                    GateStage::PostScaleUp,
                    GateSettings {
                        timeout_minutes: bad,
                    },
                )),
            )
            .unwrap_err();
            assert!(e.contains("1 to 20160"), "{e}");
        }
    }

    #[test]
    fn the_configuration_sent_carries_our_hook_and_nothing_else_changes() {
        let current = DeploymentConfiguration::builder()
            .bake_time_in_minutes(10)
            .lifecycle_hooks(lambda())
            .build();
        let gate = Some((GateStage::PostScaleUp, GATE));
        let sent = with_gate(None, Some(&current), gate).unwrap().unwrap();
        assert_eq!(
            sent.bake_time_in_minutes(),
            Some(10),
            "the service's own kept"
        );
        assert_eq!(sent.lifecycle_hooks().len(), 2);
        assert_eq!(sent.lifecycle_hooks()[0], lambda());
        // Already gated the same way: nothing to send.
        assert_eq!(with_gate(None, Some(&sent), gate).unwrap(), None);
        // No gate: `send` goes through untouched (and `None` stays `None`).
        assert_eq!(with_gate(None, Some(&current), None).unwrap(), None);
        let named = DeploymentConfiguration::builder()
            .bake_time_in_minutes(5)
            .build();
        assert_eq!(
            with_gate(Some(named.clone()), Some(&current), None).unwrap(),
            Some(named)
        );
    }
}
