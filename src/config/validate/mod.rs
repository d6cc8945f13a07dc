//! The second pass: every value checked against what AWS accepts (the emulator stores values
//! real AWS rejects), and the validated [`Config`] built. One file per section.

mod deployment;
mod ecs;
mod gateway;
mod probe;
mod target_group;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::diagnostics::Errors;
use super::model::*;
use super::raw::{RawConfig, S};
use crate::duration;
use ecs::validate_ecs;
use gateway::validate_gateway;
use target_group::validate_target_group;

pub(super) fn req<'a>(
    errs: &mut Errors,
    table: &S<impl Sized>,
    value: &'a Option<S<String>>,
    key: &str,
    allowed: &str,
) -> Option<&'a S<String>> {
    if value.is_none() {
        errs.at(table.span(), key, "missing required key", Some(allowed));
    }
    value.as_ref()
}

pub(super) fn dur(
    errs: &mut Errors,
    value: &S<String>,
    key: &str,
    min: Duration,
    max: Duration,
    allowed: &str,
) -> Option<Duration> {
    match duration::parse(value.get_ref()) {
        Err(msg) => {
            errs.at(value.span(), key, msg, Some(allowed));
            None
        }
        Ok(d) if d < min || d > max => {
            errs.at(
                value.span(),
                key,
                format!("\"{}\" is out of range", value.get_ref()),
                Some(allowed),
            );
            None
        }
        Ok(d) => Some(d),
    }
}

pub(super) fn whole_seconds(
    errs: &mut Errors,
    value: &S<String>,
    key: &str,
    d: Option<Duration>,
) -> Option<Duration> {
    let d = d?;
    if d.subsec_millis() != 0 {
        errs.at(
            value.span(),
            key,
            format!("\"{}\" is not a whole number of seconds", value.get_ref()),
            Some("whole seconds; AWS stores this attribute in seconds"),
        );
        return None;
    }
    Some(d)
}

pub(super) fn non_empty(errs: &mut Errors, value: &S<String>, key: &str) -> Option<String> {
    let v = value.get_ref().trim();
    if v.is_empty() {
        errs.at(value.span(), key, "must not be empty", None);
        None
    } else {
        Some(v.to_string())
    }
}

pub(super) fn env_name(errs: &mut Errors, value: &S<String>, key: &str) -> Option<String> {
    let v = value.get_ref();
    let ok = !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Some(v.clone())
    } else {
        errs.at(value.span(), key, format!("\"{v}\" is not an environment variable name"), Some("letters, digits and _, not starting with a digit (the variable's name, never its value)"));
        None
    }
}

/// What a container's variable name may hold. ECS hands `environment` to the container as
/// `NAME=value` strings (Docker's `Env`; environment files are `NAME=VALUE` lines), so a name
/// with `=`, whitespace, a control or invisible character, or nothing in it does not reach the
/// container as written. Anything else printable is a name ECS passes on (`APP.MODE`, `A-B`).
pub const CONTAINER_ENV_NAME_RULE: &str =
    "a container variable's name is printable ASCII without spaces or `=`";

/// Why `name` is not a container variable name ECS passes on as written, if it is not.
pub fn container_env_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('=') {
        Some("it contains `=`, which ends a name in NAME=value")
    } else if !name.chars().all(|c| c.is_ascii_graphic()) {
        Some("it contains a space, a control character or a character outside printable ASCII")
    } else {
        None
    }
}

/// A name in `[ecs.environment]` or `show_values`: the container's rule, wider than a shell's.
pub(super) fn container_env_name(
    errs: &mut Errors,
    value: &S<String>,
    key: &str,
) -> Option<String> {
    let v = value.get_ref();
    match container_env_name_problem(v) {
        None => Some(v.clone()),
        Some(why) => {
            errs.at(
                value.span(),
                key,
                format!("\"{v}\" is not an environment variable name: {why}"),
                Some(CONTAINER_ENV_NAME_RULE),
            );
            None
        }
    }
}

pub(super) fn resource_ref(
    errs: &mut Errors,
    table: &Range<usize>,
    section: &str,
    name: &Option<S<String>>,
    arn: &Option<S<String>>,
    arn_marker: &str,
) -> Option<ResourceRef> {
    match (name, arn) {
        (Some(_), Some(a)) => {
            errs.at(
                a.span(),
                &format!("{section}.arn"),
                "set either `name` or `arn`, not both",
                None,
            );
            None
        }
        (None, None) => {
            errs.at(
                table.clone(),
                section,
                "missing `name` (or `arn`)",
                Some("name = \"...\" or arn = \"arn:aws:elasticloadbalancing:...\""),
            );
            None
        }
        (Some(n), None) => {
            let key = format!("{section}.name");
            let v = n.get_ref();
            let ok = (1..=32).contains(&v.len())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !v.starts_with('-')
                && !v.ends_with('-');
            if ok {
                Some(ResourceRef::Name(v.clone()))
            } else {
                errs.at(n.span(), &key, format!("\"{v}\" is not a valid name"), Some("1 to 32 letters, digits and hyphens, not starting or ending with a hyphen (AWS's rule)"));
                None
            }
        }
        (None, Some(a)) => {
            let v = a.get_ref();
            let ok = v.starts_with("arn:aws")
                && v.contains(":elasticloadbalancing:")
                && v.contains(arn_marker);
            if ok {
                Some(ResourceRef::Arn(v.clone()))
            } else {
                errs.at(
                    a.span(),
                    &format!("{section}.arn"),
                    format!("\"{v}\" is not a {section} ARN"),
                    Some(&format!(
                        "arn:aws:elasticloadbalancing:REGION:ACCOUNT:{arn_marker}..."
                    )),
                );
                None
            }
        }
    }
}

/// A region code's shape ("us-east-1", "eu-central-2", "us-gov-west-1").
pub fn is_region(v: &str) -> bool {
    v.len() >= 9
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && v.matches('-').count() >= 2
        && v.ends_with(|c: char| c.is_ascii_digit())
}

pub(super) const MAX_COOKIE: Duration = Duration::from_secs(604_800);

pub(super) fn validate(file: &Path, raw: RawConfig, errs: &mut Errors) -> Option<Config> {
    let aws = match &raw.aws {
        None => AwsSection::default(),
        Some(a) => AwsSection {
            region: a.region.as_ref().and_then(|r| {
                let v = r.get_ref();
                let ok = is_region(v);
                if !ok {
                    errs.at(
                        r.span(),
                        "aws.region",
                        format!("\"{v}\" is not an AWS region"),
                        Some("a region code such as \"us-east-1\" or \"eu-central-1\""),
                    );
                }
                ok.then(|| v.clone())
            }),
            profile: a
                .profile
                .as_ref()
                .and_then(|p| non_empty(errs, p, "aws.profile")),
        },
    };

    let load_balancer = raw.load_balancer.as_ref().map(|lb| {
        let span = lb.span();
        let lb = lb.get_ref();
        let id = resource_ref(
            errs,
            &span,
            "load_balancer",
            &lb.name,
            &lb.arn,
            "loadbalancer/",
        );
        let idle_timeout = lb.idle_timeout.as_ref().and_then(|v| {
            let d = dur(
                errs,
                v,
                "load_balancer.idle_timeout",
                Duration::from_secs(1),
                Duration::from_secs(4000),
                "1s to 4000s (the ALB's idle_timeout.timeout_seconds range)",
            );
            whole_seconds(errs, v, "load_balancer.idle_timeout", d)
        });
        (id, idle_timeout)
    });

    let target_group = match &raw.target_group {
        None => {
            errs.at(0..0, "target_group", "missing section [target_group]", Some("[target_group] with name (or arn), and the attributes to manage: stickiness, cookie_duration, algorithm, deregistration_delay, slow_start"));
            None
        }
        Some(tg_s) => validate_target_group(errs, tg_s),
    };

    let ecs = raw.ecs.as_ref().map(|e| validate_ecs(errs, e));
    let gateway = raw.gateway.as_ref().map(|g| validate_gateway(errs, g));
    let monitor = raw.monitor.as_ref().map(|m| validate_monitor(errs, m));
    let probe_ecs = raw
        .probe
        .as_ref()
        .and_then(|p| p.ecs.as_ref())
        .map(|e| probe::validate_probe_ecs(errs, e));

    if !errs.list.is_empty() {
        return None;
    }
    Some(Config {
        path: file.to_path_buf(),
        environment: None,
        aws,
        load_balancer: load_balancer.map(|(id, idle_timeout)| LoadBalancerSection {
            id: id.unwrap(),
            idle_timeout,
        }),
        target_group: target_group.unwrap(),
        ecs: ecs.map(Option::unwrap),
        gateway: gateway.map(Option::unwrap),
        monitor,
        probe_ecs: probe_ecs.map(Option::unwrap),
    })
}

/// CloudWatch's limits on what EMF names: a namespace of 1-255 printable ASCII characters not
/// starting with `:`, at most 30 dimensions, names 1-255 and values 1-1024 ASCII characters,
/// no control characters.
fn validate_monitor(
    errs: &mut Errors,
    m: &S<super::raw::RawMonitor>,
) -> crate::config::MonitorSection {
    let m = m.get_ref();
    let ascii = |s: &str, max: usize| {
        !s.trim().is_empty()
            && s.len() <= max
            && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
    };
    let mut out = crate::config::MonitorSection::default();
    if let Some(ns) = &m.namespace {
        if ascii(ns.get_ref(), 255) && !ns.get_ref().starts_with(':') {
            out.namespace = ns.get_ref().clone();
        } else {
            errs.at(
                ns.span(),
                "monitor.namespace",
                format!("\"{}\" is not a CloudWatch namespace", crate::outside::Outside::new(ns.get_ref()).shown(80)),
                Some("1 to 255 printable ASCII characters, not starting with ':', like \"BoSar/Gateway\""),
            );
        }
    }
    if let Some(dims) = &m.dimensions {
        if dims.get_ref().len() > 30 {
            errs.at(
                dims.span(),
                "monitor.dimensions",
                "more than 30 dimensions",
                Some("at most 30 (CloudWatch's limit)"),
            );
        }
        for (k, v) in dims.get_ref() {
            let key = format!("monitor.dimensions.{}", k.get_ref());
            if !ascii(k.get_ref(), 255) || k.get_ref().starts_with(':') {
                errs.at(
                    k.span(),
                    &key,
                    "not a CloudWatch dimension name",
                    Some("1 to 255 printable ASCII characters, not starting with ':'"),
                );
            } else if !ascii(v.get_ref(), 1024) {
                errs.at(
                    v.span(),
                    &key,
                    "not a CloudWatch dimension value",
                    Some("1 to 1024 printable ASCII characters"),
                );
            } else {
                out.dimensions
                    .insert(k.get_ref().clone(), v.get_ref().clone());
            }
        }
    }
    out
}
