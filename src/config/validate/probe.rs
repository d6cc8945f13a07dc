//! `[probe.ecs]`: what RunTask accepts, checked before any call.

use std::time::Duration;

use super::super::diagnostics::Errors;
use super::super::model::*;
use super::super::raw::{RawProbeEcs, S};
use super::{dur, non_empty, req};

pub(super) fn validate_probe_ecs(
    errs: &mut Errors,
    e_s: &S<RawProbeEcs>,
) -> Option<ProbeEcsSection> {
    let e = e_s.get_ref();
    let cluster = req(
        errs,
        e_s,
        &e.cluster,
        "probe.ecs.cluster",
        "the cluster's name or ARN",
    )
    .and_then(|v| non_empty(errs, v, "probe.ecs.cluster"));
    let task_definition = task_definition(errs, e_s);
    let container = e
        .container
        .as_ref()
        .and_then(|v| non_empty(errs, v, "probe.ecs.container"));
    let subnets = subnets(errs, e_s);
    let security_groups = ids(
        errs,
        &e.security_groups,
        "probe.ecs.security_groups",
        "sg-",
        5,
    );
    let (cpu, memory) = task_size(errs, e);
    let log_group = e
        .log_group
        .as_ref()
        .and_then(|v| non_empty(errs, v, "probe.ecs.log_group"));
    let log_stream_prefix = e
        .log_stream_prefix
        .as_ref()
        .and_then(|v| non_empty(errs, v, "probe.ecs.log_stream_prefix"));
    let (start_delay, timeout) = durations(errs, e);
    Some(ProbeEcsSection {
        cluster: cluster?,
        task_definition: task_definition?,
        container,
        subnets: subnets?,
        security_groups: security_groups.unwrap_or_default(),
        assign_public_ip: e.assign_public_ip.as_ref().is_some_and(|v| *v.get_ref()),
        cpu,
        memory,
        log_group,
        log_stream_prefix,
        start_delay: start_delay?,
        timeout: timeout?,
        log_wait: match &e.log_wait {
            None => PROBE_ECS_DEFAULT_LOG_WAIT,
            Some(v) => dur(
                errs,
                v,
                "probe.ecs.log_wait",
                Duration::from_secs(1),
                Duration::from_secs(600),
                "1s to 10m (how long a stopped task's log stream may take to show its document)",
            )?,
        },
    })
}

/// `subnets`: required, 1 to 16 `subnet-` IDs.
fn subnets(errs: &mut Errors, e_s: &S<RawProbeEcs>) -> Option<Vec<String>> {
    let e = e_s.get_ref();
    let subnets = ids(errs, &e.subnets, "probe.ecs.subnets", "subnet-", 16);
    if e.subnets.is_none() {
        errs.at(
            e_s.span(),
            "probe.ecs.subnets",
            "missing required key",
            Some("the subnets the tasks run in (awsvpc), like [\"subnet-0abc\"]; 1 to 16"),
        );
    } else if subnets.as_ref().is_some_and(Vec::is_empty) {
        let span = e.subnets.as_ref().map(S::span).unwrap_or_default();
        errs.at(
            span,
            "probe.ecs.subnets",
            "must name at least one subnet",
            Some("1 to 16 subnet IDs, like [\"subnet-0abc\"]"),
        );
    }
    subnets
}

/// `cpu` and `memory`: Fargate's task sizes.
fn task_size(errs: &mut Errors, e: &RawProbeEcs) -> (Option<u32>, Option<u32>) {
    let cpu = e.cpu.as_ref().and_then(|v| {
        let ok = u32::try_from(*v.get_ref())
            .ok()
            .filter(|c| FARGATE_CPU.contains(c));
        if ok.is_none() {
            errs.at(
                v.span(),
                "probe.ecs.cpu",
                format!("{} is not a Fargate task CPU value", v.get_ref()),
                Some("256, 512, 1024, 2048, 4096, 8192 or 16384 (CPU units; 1024 is one vCPU)"),
            );
        }
        ok
    });
    let memory = e.memory.as_ref().and_then(|v| {
        let ok = u32::try_from(*v.get_ref())
            .ok()
            .filter(|m| (512..=122_880).contains(m));
        if ok.is_none() {
            errs.at(
                v.span(),
                "probe.ecs.memory",
                format!("{} is out of range", v.get_ref()),
                Some("512 to 122880 (MiB; Fargate's sizes for the task's CPU)"),
            );
        }
        ok
    });
    (cpu, memory)
}

/// `start_delay` and `timeout`, with their defaults.
fn durations(errs: &mut Errors, e: &RawProbeEcs) -> (Option<Duration>, Option<Duration>) {
    let start_delay = match &e.start_delay {
        None => Some(PROBE_ECS_DEFAULT_START_DELAY),
        Some(v) => dur(errs, v, "probe.ecs.start_delay", Duration::ZERO, Duration::from_secs(3600), "0s to 1h (how far ahead the shards' common --start-at is; Fargate takes a minute or two to start a task)"),
    };
    let timeout = match &e.timeout {
        None => Some(PROBE_ECS_DEFAULT_TIMEOUT),
        Some(v) => dur(
            errs,
            v,
            "probe.ecs.timeout",
            Duration::from_secs(60),
            Duration::from_secs(24 * 3600),
            "1m to 24h (how long to wait for every task to stop)",
        ),
    };
    (start_delay, timeout)
}

/// `task_definition` names what RunTask starts; `image` alone cannot (RunTask takes no image),
/// so it is refused with what to register.
fn task_definition(errs: &mut Errors, e_s: &S<RawProbeEcs>) -> Option<String> {
    let e = e_s.get_ref();
    if let (None, Some(image)) = (&e.task_definition, &e.image) {
        errs.at(image.span(), "probe.ecs.image", "RunTask starts a task definition, not an image", Some(&format!(
            "register a Fargate task definition with a container of {} (awslogs logging, the gateway token as a `secrets` entry) and set task_definition = \"FAMILY\" (docs/distribution.md)",
            crate::outside::Outside::new(image.get_ref()).shown(200)
        )));
        return None;
    }
    let v = req(errs, e_s, &e.task_definition, "probe.ecs.task_definition", "the task definition holding the bosar-deploy image: \"family\", \"family:revision\" or its ARN")?;
    let t = v.get_ref().trim();
    let ok = !t.is_empty()
        && (t.starts_with("arn:aws") && t.contains(":task-definition/")
            || t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c))
                && t.len() <= 255);
    if !ok {
        errs.at(v.span(), "probe.ecs.task_definition", format!("\"{}\" is not a task definition", crate::outside::Outside::new(t).shown(100)), Some("\"family\", \"family:revision\" (letters, digits, - and _) or a task definition ARN"));
        return None;
    }
    Some(t.to_string())
}

/// Resource IDs with their prefix (`subnet-`, `sg-`), at most `max`.
fn ids(
    errs: &mut Errors,
    v: &Option<S<Vec<S<String>>>>,
    key: &str,
    prefix: &str,
    max: usize,
) -> Option<Vec<String>> {
    let list = v.as_ref()?;
    if list.get_ref().len() > max {
        errs.at(
            list.span(),
            key,
            format!("more than {max}"),
            Some(&format!("at most {max} (RunTask's limit)")),
        );
        return None;
    }
    let mut out = Vec::new();
    for id in list.get_ref() {
        let s = id.get_ref();
        let ok = s.starts_with(prefix)
            && s.len() > prefix.len()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            out.push(s.clone());
        } else {
            errs.at(
                id.span(),
                key,
                format!(
                    "\"{}\" is not an ID starting with {prefix}",
                    crate::outside::Outside::new(s).shown(80)
                ),
                Some(&format!("IDs like \"{prefix}0abc123\"")),
            );
        }
    }
    (out.len() == list.get_ref().len()).then_some(out)
}
