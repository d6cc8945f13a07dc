//! `[probe.ecs]` as written: where `verify --connections N --shards K --on-ecs` starts its
//! shards as Fargate tasks. Read like the rest of the file (unknown keys, wrong types).

use super::{spanned, Errors, Table, S};

#[derive(Default)]
pub(in crate::config) struct RawProbe {
    pub(in crate::config) ecs: Option<S<RawProbeEcs>>,
}

#[derive(Default)]
pub(in crate::config) struct RawProbeEcs {
    pub(in crate::config) cluster: Option<S<String>>,
    pub(in crate::config) task_definition: Option<S<String>>,
    pub(in crate::config) image: Option<S<String>>,
    pub(in crate::config) container: Option<S<String>>,
    pub(in crate::config) subnets: Option<S<Vec<S<String>>>>,
    pub(in crate::config) security_groups: Option<S<Vec<S<String>>>>,
    pub(in crate::config) assign_public_ip: Option<S<bool>>,
    pub(in crate::config) cpu: Option<S<i64>>,
    pub(in crate::config) memory: Option<S<i64>>,
    pub(in crate::config) log_group: Option<S<String>>,
    pub(in crate::config) log_stream_prefix: Option<S<String>>,
    pub(in crate::config) start_delay: Option<S<String>>,
    pub(in crate::config) timeout: Option<S<String>>,
    pub(in crate::config) log_wait: Option<S<String>>,
}

const PROBE: [&str; 1] = ["ecs"];
const PROBE_ECS: [&str; 14] = [
    "cluster",
    "task_definition",
    "image",
    "container",
    "subnets",
    "security_groups",
    "assign_public_ip",
    "cpu",
    "memory",
    "log_group",
    "log_stream_prefix",
    "start_delay",
    "timeout",
    "log_wait",
];

pub(super) fn read_probe(p: &Table, errs: &mut Errors) -> RawProbe {
    p.check_keys(&PROBE, errs);
    RawProbe {
        ecs: p.table("ecs", errs).map(|e| {
            e.check_keys(&PROBE_ECS, errs);
            let v = RawProbeEcs {
                cluster: e.str("cluster", errs),
                task_definition: e.str("task_definition", errs),
                image: e.str("image", errs),
                container: e.str("container", errs),
                subnets: e.strings("subnets", errs),
                security_groups: e.strings("security_groups", errs),
                assign_public_ip: e.bool("assign_public_ip", errs),
                cpu: e.int("cpu", errs),
                memory: e.int("memory", errs),
                log_group: e.str("log_group", errs),
                log_stream_prefix: e.str("log_stream_prefix", errs),
                start_delay: e.str("start_delay", errs),
                timeout: e.str("timeout", errs),
                log_wait: e.str("log_wait", errs),
            };
            spanned(&e, v)
        }),
    }
}

/// An environment's `[probe.ecs]` keys on top of the base's, key by key.
pub(super) fn overlay_probe(b: RawProbe, o: RawProbe) -> RawProbe {
    RawProbe {
        ecs: super::table(b.ecs, o.ecs, |b, o| RawProbeEcs {
            cluster: o.cluster.or(b.cluster),
            task_definition: o.task_definition.or(b.task_definition),
            image: o.image.or(b.image),
            container: o.container.or(b.container),
            subnets: o.subnets.or(b.subnets),
            security_groups: o.security_groups.or(b.security_groups),
            assign_public_ip: o.assign_public_ip.or(b.assign_public_ip),
            cpu: o.cpu.or(b.cpu),
            memory: o.memory.or(b.memory),
            log_group: o.log_group.or(b.log_group),
            log_stream_prefix: o.log_stream_prefix.or(b.log_stream_prefix),
            start_delay: o.start_delay.or(b.start_delay),
            timeout: o.timeout.or(b.timeout),
            log_wait: o.log_wait.or(b.log_wait),
        }),
    }
}
