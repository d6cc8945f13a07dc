//! `[target_group]`: every key optional (absent means unmanaged), AWS's ranges and the
//! pairs AWS refuses.

use std::time::Duration;

use super::super::diagnostics::Errors;
use super::super::model::*;
use super::super::raw::{RawTargetGroup, S};
use super::{dur, resource_ref, whole_seconds, MAX_COOKIE};

pub(super) fn validate_target_group(
    errs: &mut Errors,
    tg_s: &S<RawTargetGroup>,
) -> Option<TargetGroupSection> {
    let span = tg_s.span();
    let tg = tg_s.get_ref();
    let id = resource_ref(
        errs,
        &span,
        "target_group",
        &tg.name,
        &tg.arn,
        "targetgroup/",
    );
    let stickiness = tg
        .stickiness
        .as_ref()
        .map(|s| stickiness_of(errs, s, &tg.cookie_name));
    if let (Some(n), Some(Some(Stickiness::LbCookie | Stickiness::Off)) | None) =
        (&tg.cookie_name, &stickiness)
    {
        errs.at(
            n.span(),
            "target_group.cookie_name",
            "cookie_name is only used with stickiness = \"app_cookie\"",
            Some("remove it, or set stickiness = \"app_cookie\""),
        );
    }
    let cookie_duration = tg
        .cookie_duration
        .as_ref()
        .map(|v| cookie_duration_of(errs, v, stickiness.as_ref()));
    let algorithm = tg.algorithm.as_ref().map(|a| algorithm_of(errs, a));
    let deregistration_delay = tg.deregistration_delay.as_ref().map(|v| {
        let d = dur(
            errs,
            v,
            "target_group.deregistration_delay",
            Duration::ZERO,
            Duration::from_secs(3600),
            "0s to 3600s (AWS's range for deregistration_delay.timeout_seconds)",
        );
        whole_seconds(errs, v, "target_group.deregistration_delay", d)
    });
    let slow_start = tg
        .slow_start
        .as_ref()
        .map(|v| slow_start_of(errs, v, algorithm.flatten()));
    let anomaly_mitigation = tg.anomaly_mitigation.as_ref().map(|v| {
        if algorithm.flatten() == Some(Algorithm::WeightedRandom) {
            Some(*v.get_ref())
        } else {
            errs.at(v.span(), "target_group.anomaly_mitigation", "anomaly mitigation exists only with algorithm = \"weighted_random\"", Some("set algorithm = \"weighted_random\" in this section, or remove anomaly_mitigation"));
            None
        }
    });
    Some(TargetGroupSection {
        id: id?,
        stickiness: transpose(stickiness)?,
        cookie_duration: transpose(cookie_duration)?,
        algorithm: transpose(algorithm)?,
        deregistration_delay: transpose(deregistration_delay)?,
        slow_start: transpose(slow_start)?,
        anomaly_mitigation: transpose(anomaly_mitigation)?,
    })
}

/// A key that was absent stays `Some(None)` (valid, not managed); a present key that failed
/// validation is `None` (an error was recorded).
fn transpose<T>(v: Option<Option<T>>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(None) => None,
        Some(Some(x)) => Some(Some(x)),
    }
}

fn stickiness_of(
    errs: &mut Errors,
    s: &S<String>,
    cookie_name: &Option<S<String>>,
) -> Option<Stickiness> {
    match s.get_ref().as_str() {
        "lb_cookie" => Some(Stickiness::LbCookie),
        "off" => Some(Stickiness::Off),
        "app_cookie" => match cookie_name {
            None => {
                errs.at(s.span(), "target_group.cookie_name", "stickiness = \"app_cookie\" needs the application's cookie name", Some("cookie_name = \"SESSION\" (any name not starting with AWSALB, AWSALBAPP or AWSALBTG)"));
                None
            }
            Some(n) => {
                let v = n.get_ref();
                let reserved = ["AWSALB", "AWSALBAPP", "AWSALBTG"]
                    .iter()
                    .any(|p| v.starts_with(p));
                if v.is_empty()
                    || reserved
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == ';' || c == ',' || c == '=')
                {
                    errs.at(n.span(), "target_group.cookie_name", format!("\"{v}\" cannot be used as the application cookie name"), Some("a cookie name not starting with AWSALB, AWSALBAPP or AWSALBTG (AWS reserves them)"));
                    None
                } else {
                    Some(Stickiness::AppCookie {
                        cookie_name: v.clone(),
                    })
                }
            }
        },
        other => {
            errs.at(
                s.span(),
                "target_group.stickiness",
                format!("unknown stickiness \"{other}\""),
                Some("\"lb_cookie\", \"app_cookie\" or \"off\""),
            );
            None
        }
    }
}

/// The duration key depends on the stickiness type, so the type must be named with it.
fn cookie_duration_of(
    errs: &mut Errors,
    v: &S<String>,
    stickiness: Option<&Option<Stickiness>>,
) -> Option<Duration> {
    let key = "target_group.cookie_duration";
    match stickiness {
        None => {
            errs.at(v.span(), key, "cookie_duration needs stickiness in the same section (the duration attribute depends on the cookie type)", Some("stickiness = \"lb_cookie\" or \"app_cookie\" next to it"));
            return None;
        }
        Some(Some(Stickiness::Off)) => {
            errs.at(
                v.span(),
                key,
                "cookie_duration has no effect with stickiness = \"off\"",
                Some("remove cookie_duration, or turn stickiness on"),
            );
            return None;
        }
        _ => {}
    }
    let d = dur(
        errs,
        v,
        key,
        Duration::from_secs(1),
        MAX_COOKIE,
        "1s to 7d (AWS's range for the stickiness cookie duration)",
    );
    whole_seconds(errs, v, key, d)
}

fn algorithm_of(errs: &mut Errors, a: &S<String>) -> Option<Algorithm> {
    match a.get_ref().as_str() {
        "round_robin" => Some(Algorithm::RoundRobin),
        "least_outstanding_requests" => Some(Algorithm::LeastOutstandingRequests),
        "weighted_random" => Some(Algorithm::WeightedRandom),
        other => {
            errs.at(
                a.span(),
                "target_group.algorithm",
                format!("unknown algorithm \"{other}\""),
                Some("\"round_robin\", \"least_outstanding_requests\" or \"weighted_random\""),
            );
            None
        }
    }
}

/// 0 (off) or 30s-900s; AWS refuses slow start with least outstanding requests and with
/// weighted random.
fn slow_start_of(
    errs: &mut Errors,
    v: &S<String>,
    algorithm: Option<Algorithm>,
) -> Option<Duration> {
    let key = "target_group.slow_start";
    let allowed = "\"0s\" (off) or 30s to 900s";
    let d = dur(
        errs,
        v,
        key,
        Duration::ZERO,
        Duration::from_secs(900),
        allowed,
    )?;
    if d != Duration::ZERO && d < Duration::from_secs(30) {
        errs.at(
            v.span(),
            key,
            format!("\"{}\" is out of range", v.get_ref()),
            Some(allowed),
        );
        return None;
    }
    if d != Duration::ZERO {
        if let Some(a @ (Algorithm::LeastOutstandingRequests | Algorithm::WeightedRandom)) =
            algorithm
        {
            errs.at(
                v.span(),
                key,
                format!(
                    "slow start cannot be combined with algorithm = \"{}\" (AWS rejects the pair)",
                    a.as_aws()
                ),
                Some("\"0s\", or algorithm = \"round_robin\""),
            );
            return None;
        }
    }
    whole_seconds(errs, v, key, Some(d))
}
