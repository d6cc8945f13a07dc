//! `[ecs.deployment]`: the service's deployment strategy, with the ECS API model's ranges
//! (botocore `ecs/2014-11-13`: `DeploymentConfiguration`, `CanaryConfiguration`,
//! `LinearConfiguration`, `DeploymentLifecycleHookDuration`). A key that belongs to another
//! strategy than the one named, or to a strategy not named at all, is an error: it would be
//! refused by ECS or silently mean nothing.

use std::time::Duration;

use super::super::diagnostics::Errors;
use super::super::model::*;
use super::super::raw::{RawDeployment, S};
use super::dur;

const KEY: &str = "ecs.deployment";

pub(super) fn validate_deployment(
    errs: &mut Errors,
    d_s: &S<RawDeployment>,
) -> Option<DeploymentSection> {
    let d = d_s.get_ref();
    let before = errs.list.len();
    let strategy = d.strategy.as_ref().and_then(|v| strategy(errs, v));
    // A strategy the file names wrongly already has its error; its keys are not judged again.
    let named = d.strategy.is_none() || strategy.is_some();
    let belongs = |errs: &mut Errors, span: std::ops::Range<usize>, key: &str, to: &[Strategy]| {
        owned_by(errs, span, key, strategy, named, to)
    };
    let shifting = [Strategy::BlueGreen, Strategy::Canary, Strategy::Linear];
    let bake_time = d.bake_time.as_ref().and_then(|v| {
        belongs(errs, v.span(), "bake_time", &shifting);
        minutes(errs, v, "bake_time", 0, BAKE_TIME_MAX_MINUTES)
    });
    if strategy == Some(Strategy::BlueGreen) && d.bake_time.is_none() {
        let at = d.strategy.as_ref().map_or(d_s.span(), |s| s.span());
        errs.at(
            at,
            &format!("{KEY}.bake_time"),
            "missing required key: strategy = \"blue_green\" needs bake_time (ECS requires bakeTimeInMinutes for BLUE_GREEN)",
            Some("a whole number of minutes from \"0m\" to \"1440m\" (24h): how long blue keeps running after production traffic moved to green"),
        );
    }
    let canary_percent = d.canary_percent.as_ref().and_then(|v| {
        belongs(errs, v.span(), "canary_percent", &[Strategy::Canary]);
        percent(errs, v, "canary_percent", CANARY_PERCENT_RANGE)
    });
    let canary_bake_time = d.canary_bake_time.as_ref().and_then(|v| {
        belongs(errs, v.span(), "canary_bake_time", &[Strategy::Canary]);
        minutes(errs, v, "canary_bake_time", 0, BAKE_TIME_MAX_MINUTES)
    });
    let step_percent = d.step_percent.as_ref().and_then(|v| {
        belongs(errs, v.span(), "step_percent", &[Strategy::Linear]);
        percent(errs, v, "step_percent", STEP_PERCENT_RANGE)
    });
    let step_bake_time = d.step_bake_time.as_ref().and_then(|v| {
        belongs(errs, v.span(), "step_bake_time", &[Strategy::Linear]);
        minutes(errs, v, "step_bake_time", 0, BAKE_TIME_MAX_MINUTES)
    });
    let circuit_breaker = d.circuit_breaker.as_ref().map(|v| *v.get_ref());
    let rollback = d.rollback.as_ref().map(|v| *v.get_ref());
    if let (Some(false), Some(r)) = (circuit_breaker, d.rollback.as_ref()) {
        if *r.get_ref() {
            errs.at(
                r.span(),
                &format!("{KEY}.rollback"),
                "rollback = true has no effect with circuit_breaker = false: only a tripped circuit breaker rolls back",
                Some("circuit_breaker = true with rollback = true, or leave rollback out"),
            );
        }
    }
    let minimum_healthy_percent = d.minimum_healthy_percent.as_ref().and_then(|v| {
        whole_percent(
            errs,
            v,
            "minimum_healthy_percent",
            MINIMUM_HEALTHY_PERCENT_RANGE,
        )
    });
    let maximum_percent = d
        .maximum_percent
        .as_ref()
        .and_then(|v| whole_percent(errs, v, "maximum_percent", MAXIMUM_PERCENT_RANGE));
    let gate = gate(errs, d, strategy, named, &shifting);
    (errs.list.len() == before).then_some(DeploymentSection {
        strategy,
        bake_time,
        canary_percent,
        canary_bake_time,
        step_percent,
        step_bake_time,
        circuit_breaker,
        rollback,
        minimum_healthy_percent,
        maximum_percent,
        gate,
    })
}

fn strategy(errs: &mut Errors, v: &S<String>) -> Option<Strategy> {
    let s = Strategy::from_config(v.get_ref());
    if s.is_none() {
        let allowed: Vec<String> = Strategy::ALL.iter().map(|a| format!("\"{a}\"")).collect();
        errs.at(
            v.span(),
            &format!("{KEY}.strategy"),
            format!("unknown strategy \"{}\"", v.get_ref()),
            Some(&allowed.join(", ")),
        );
    }
    s
}

/// A key that only some strategies take: an error when the named strategy is another one, or
/// when no strategy is named (what the key means would depend on the service's strategy).
fn owned_by(
    errs: &mut Errors,
    span: std::ops::Range<usize>,
    key: &str,
    strategy: Option<Strategy>,
    named: bool,
    to: &[Strategy],
) {
    let wanted: Vec<String> = to
        .iter()
        .map(|s| format!("strategy = \"{}\"", s.as_config()))
        .collect();
    let allowed = format!("{key} only with {}", wanted.join(" or "));
    match strategy {
        Some(s) if to.contains(&s) => {}
        Some(s) => errs.at(
            span,
            &format!("{KEY}.{key}"),
            format!("{key} does not belong to strategy = \"{}\"", s.as_config()),
            Some(&allowed),
        ),
        None if named => errs.at(
            span,
            &format!("{KEY}.{key}"),
            format!("{key} needs the strategy it belongs to named in [ecs.deployment]"),
            Some(&allowed),
        ),
        None => {}
    }
}

/// A duration ECS stores in whole minutes, from `min` to `max` minutes.
fn minutes(errs: &mut Errors, v: &S<String>, key: &str, min: u64, max: u64) -> Option<Duration> {
    let full = format!("{KEY}.{key}");
    let allowed = format!("whole minutes from \"{min}m\" to \"{max}m\" (ECS stores minutes)");
    let d = dur(
        errs,
        v,
        &full,
        Duration::from_secs(min * 60),
        Duration::from_secs(max * 60),
        &allowed,
    )?;
    if d.as_millis() % 60_000 != 0 {
        errs.at(
            v.span(),
            &full,
            format!("\"{}\" is not a whole number of minutes", v.get_ref()),
            Some(&allowed),
        );
        return None;
    }
    Some(d)
}

/// A percentage in steps of 0.1 within `range`.
fn percent(
    errs: &mut Errors,
    v: &S<f64>,
    key: &str,
    (min, max): (Tenths, Tenths),
) -> Option<Tenths> {
    let x = *v.get_ref();
    let allowed = format!("multiples of 0.1 from {min} to {max} (the ECS API's range)");
    let tenths = x * 10.0;
    let whole = x.is_finite() && (tenths - tenths.round()).abs() < 1e-6;
    let t = Tenths::from_f64(x).filter(|_| whole);
    match t {
        Some(t) if t >= min && t <= max => Some(t),
        Some(_) => {
            errs.at(
                v.span(),
                &format!("{KEY}.{key}"),
                format!("{x} is out of range"),
                Some(&allowed),
            );
            None
        }
        None => {
            errs.at(
                v.span(),
                &format!("{KEY}.{key}"),
                format!("{x} is not a multiple of 0.1"),
                Some(&allowed),
            );
            None
        }
    }
}

fn whole_percent(errs: &mut Errors, v: &S<i64>, key: &str, (min, max): (u32, u32)) -> Option<u32> {
    let x = *v.get_ref();
    if (i64::from(min)..=i64::from(max)).contains(&x) {
        return Some(x as u32);
    }
    let why = if key == "maximum_percent" {
        "at least 100 (ECS may run all desired tasks), at most 1000"
    } else {
        "a percentage of the desired tasks that stay healthy"
    };
    errs.at(
        v.span(),
        &format!("{KEY}.{key}"),
        format!("{x} is out of range"),
        Some(&format!("{min} to {max}: {why}")),
    );
    None
}

/// `gate` and `gate_timeout`: a gate pauses before production traffic, which only the
/// strategies that shift traffic have.
fn gate(
    errs: &mut Errors,
    d: &RawDeployment,
    strategy: Option<Strategy>,
    named: bool,
    shifting: &[Strategy],
) -> Option<GateSection> {
    let timeout = match &d.gate_timeout {
        None => Some(GATE_TIMEOUT_DEFAULT),
        Some(v) => {
            if d.gate.is_none() {
                errs.at(
                    v.span(),
                    &format!("{KEY}.gate_timeout"),
                    "gate_timeout without gate: there is no hook to time out",
                    Some("gate = \"verify\" with it, or leave gate_timeout out"),
                );
            }
            let (min, max) = GATE_TIMEOUT_RANGE_MINUTES;
            minutes(errs, v, "gate_timeout", min, max)
        }
    };
    let g = d.gate.as_ref()?;
    owned_by(errs, g.span(), "gate", strategy, named, shifting);
    let kind = match g.get_ref().as_str() {
        "verify" => Some(GateKind::Verify),
        other => {
            errs.at(
                g.span(),
                &format!("{KEY}.gate"),
                format!("unknown gate \"{other}\""),
                Some("\"verify\" (bosar-deploy pauses the deployment and judges green with verify); leave gate out for no gate"),
            );
            None
        }
    };
    Some(GateSection {
        kind: kind?,
        timeout: timeout?,
    })
}
