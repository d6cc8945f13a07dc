//! bosar-deploy's own PAUSE lifecycle hook, pure: built from the gate's settings, recognized
//! among the service's hooks by its marker, and merged so every other hook stays as it is.
//! Its timeout's action is ROLLBACK: a CI job that dies during the pause never leaves a
//! deployment half-shifted.

use std::collections::HashMap;

use aws_sdk_ecs::types::{
    DeploymentLifecycleHook, DeploymentLifecycleHookAction, DeploymentLifecycleHookStage,
    DeploymentLifecycleHookTargetType, DeploymentLifecycleHookTimeoutConfiguration,
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
}
