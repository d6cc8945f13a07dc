//! `[ecs]` and `[ecs.environment]`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::diagnostics::Errors;
use super::super::model::*;
use super::super::raw::{RawEcs, S};
use super::deployment::validate_deployment;
use super::{container_env_name, dur, non_empty, req};

pub(super) fn validate_ecs(errs: &mut Errors, e_s: &S<RawEcs>) -> Option<EcsSection> {
    let e = e_s.get_ref();
    let names = "the ECS resource's name";
    let cluster = req(errs, e_s, &e.cluster, "ecs.cluster", names)
        .and_then(|v| non_empty(errs, v, "ecs.cluster"));
    let service = req(errs, e_s, &e.service, "ecs.service", names)
        .and_then(|v| non_empty(errs, v, "ecs.service"));
    let container = req(
        errs,
        e_s,
        &e.container,
        "ecs.container",
        "the container's name in the task definition",
    )
    .and_then(|v| non_empty(errs, v, "ecs.container"));
    let image = e.image.as_ref().and_then(|v| image(errs, v));
    let timeout = match &e.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(v) => dur(
            errs,
            v,
            "ecs.timeout",
            TIMEOUT_RANGE.0,
            TIMEOUT_RANGE.1,
            TIMEOUT_ALLOWED,
        ),
    };
    let poll_interval = match &e.poll_interval {
        None => Some(Duration::from_secs(5)),
        Some(v) => dur(
            errs,
            v,
            "ecs.poll_interval",
            Duration::from_secs(1),
            Duration::from_secs(300),
            "1s to 5m (each poll is a DescribeServices call against the account's ECS rate limit)",
        ),
    };
    let managed_env_prefix = match &e.managed_env_prefix {
        None => "WEBSOCKET_".to_string(),
        Some(v) => v.get_ref().clone(),
    };
    let max_failed_tasks = max_failed_tasks(errs, &e.max_failed_tasks);
    let environment = e.environment.as_ref().map(|table| {
        let mut environment = BTreeMap::new();
        for (k, v) in table.get_ref() {
            let key = format!("ecs.environment.{}", k.get_ref());
            if let Some(name) = container_env_name(errs, k, &key) {
                if milliseconds(errs, &name, v, &key) {
                    environment.insert(name, v.get_ref().clone());
                }
            }
        }
        environment
    });
    let show_values = e
        .show_values
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .filter_map(|v| container_env_name(errs, v, "ecs.show_values"))
                .collect()
        })
        .unwrap_or_default();
    let acknowledge = e
        .acknowledge
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .filter_map(|v| acknowledged(errs, v))
                .collect()
        })
        .unwrap_or_default();
    let deployment = match &e.deployment {
        None => Some(None),
        Some(d) => validate_deployment(errs, d).map(Some),
    };
    Some(EcsSection {
        deployment: deployment?,
        show_values,
        acknowledge,
        cluster: cluster?,
        service: service?,
        container: container?,
        image,
        environment,
        managed_env_prefix,
        timeout: timeout?,
        poll_interval: poll_interval?,
        max_failed_tasks: max_failed_tasks?,
    })
}

/// `image`: a reference ECS can pull (the grammar of `crate::image`).
fn image(errs: &mut Errors, v: &S<String>) -> Option<String> {
    let img = v.get_ref();
    match crate::image::parse(img) {
        Ok(_) => Some(img.clone()),
        Err(why) => {
            errs.at(
                v.span(),
                "ecs.image",
                format!("\"{img}\" is not an image reference: {why}"),
                Some(crate::image::ACCEPTED_FORM),
            );
            None
        }
    }
}

/// `max_failed_tasks`: 1 to 10000; absent is `Some(None)` (twice the desired count).
fn max_failed_tasks(errs: &mut Errors, v: &Option<S<i64>>) -> Option<Option<u32>> {
    match v {
        None => Some(None),
        Some(v) if (1..=10_000).contains(v.get_ref()) => Some(Some(*v.get_ref() as u32)),
        Some(v) => {
            errs.at(
                v.span(),
                "ecs.max_failed_tasks",
                format!("{} is out of range", v.get_ref()),
                Some("1 to 10000 failed tasks"),
            );
            None
        }
    }
}

/// The gateway reads its intervals as milliseconds: `"30s"` there would become a 30 ms ping
/// (or NaN), so it is refused with the value in milliseconds, `[gateway]` or not.
fn milliseconds(errs: &mut Errors, name: &str, v: &S<String>, key: &str) -> bool {
    if !MILLISECOND_VARIABLES.iter().any(|(n, _)| *n == name) {
        return true;
    }
    let text = v.get_ref().trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    let allowed = match humantime::parse_duration(text) {
        Ok(d) => format!(
            "whole milliseconds: \"{}\" (the gateway reads {name} in ms)",
            d.as_millis()
        ),
        Err(_) => format!("whole milliseconds, like \"30000\" (the gateway reads {name} in ms)"),
    };
    errs.at(
        v.span(),
        key,
        format!("\"{text}\" is not a number of milliseconds"),
        Some(&allowed),
    );
    false
}

/// One id of `[ecs] acknowledge`: advice the tool knows, so a typo does not silence nothing.
fn acknowledged(errs: &mut Errors, v: &S<String>) -> Option<String> {
    if ACKNOWLEDGEABLE.contains(&v.get_ref().as_str()) {
        return Some(v.get_ref().clone());
    }
    let allowed: Vec<String> = ACKNOWLEDGEABLE.iter().map(|a| format!("\"{a}\"")).collect();
    errs.at(
        v.span(),
        "ecs.acknowledge",
        format!("\"{}\" is not advice bosar-deploy gives", v.get_ref()),
        Some(&allowed.join(", ")),
    );
    None
}
