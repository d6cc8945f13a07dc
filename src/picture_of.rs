//! `--html`: the run's own data gathered into a [`picture::Timeline`] and published (the page
//! at the path, the Mermaid chart in the GitHub step summary). It sits above the halves it
//! draws, as `under_load` does: the probe's session series (`gateway::probe`), the rollout's
//! moments (the deploy result, its native stages, ECS's service events of the run, read once
//! after it) and the real traffic (`crate::traffic`). The drawing itself is pure, in
//! `crate::picture`; the moments' sorting is pure here and tested.

use std::collections::HashSet;
use std::path::Path;

use crate::aws::Aws;
use crate::config::EcsSection;
use crate::duration::unix_ms;
use crate::ecs::deploy::DeployResult;
use crate::ecs::rollout::EventView;
use crate::ecs::watch::WatchOutcome;
use crate::gateway::probe::disruption::series::SessionSeries;
use crate::gateway::probe::ProbeReport;
use crate::outside::Outside;
use crate::picture::{self, Held, Moment, Timeline, TrafficLine};
use crate::traffic::RealTraffic;
use crate::ui::Ui;
use crate::under_load::UnderLoad;

/// ECS's service event messages and what each says about the rollout, in our words; the
/// first that matches (`deregistered` before `registered`, which it contains).
const EVENT_MOMENTS: [(&str, &str); 6] = [
    ("has started", "new tasks started"),
    ("deregistered", "targets deregistered"),
    ("registered", "targets registered"),
    ("has begun draining", "draining started"),
    ("has stopped", "old tasks stopped"),
    ("has reached a steady state", "steady state"),
];

/// The sessions of a probe as the picture's series.
fn with_series(t: &mut Timeline, s: &SessionSeries) {
    t.duration_ms = s.duration_ms;
    t.step_ms = s.step_ms;
    t.held = s
        .held
        .iter()
        .map(|(target, counts)| Held {
            target: target.clone(),
            counts: counts.clone(),
        })
        .collect();
    t.drops = s.drops.clone();
    t.reconnects = s.reconnects.clone();
}

fn started_text(unix_ms: i64) -> String {
    crate::duration::rfc3339_of_ms(unix_ms.max(0))
}

/// `verify --connections N --reconnect`: the sessions, and when all of them were open.
pub fn of_probe(report: &ProbeReport) -> Timeline {
    let mut t = Timeline {
        title: format!(
            "verify --connections {} --reconnect {}",
            report.connections, report.url
        ),
        duration_ms: report.duration_ms,
        step_ms: 1000,
        probed: true,
        ..Timeline::default()
    };
    if let Some(d) = &report.disruption {
        if let Some(s) = &d.series {
            with_series(&mut t, s);
            t.started = Some(started_text(s.started_unix_ms));
        }
        t.headline = format!(
            "{} of {} session(s) opened; {} dropped, {} back, {} lost{}",
            d.opened,
            report.connections,
            d.dropped.sessions,
            d.reconnected,
            d.lost,
            d.reconnect
                .map(|r| format!("; reconnect p50 {} ms, max {} ms", r.p50_ms, r.max_ms))
                .unwrap_or_default()
        );
    }
    if report.opened > 0 {
        t.moments.push(Moment {
            at_ms: report.open_phase_ms as i64,
            label: Outside::new("every session open"),
        });
    }
    t
}

/// What a deploy gives the picture: its result, the sessions held through it, the real
/// traffic, and ECS's service events (newest first, as DescribeServices lists them).
pub struct DeployRun<'a> {
    pub title: String,
    /// When the rollout started (ms since the Unix epoch).
    pub rollout_started_unix_ms: i64,
    pub result: &'a DeployResult,
    pub sessions: Option<&'a SessionSeries>,
    pub traffic: Option<&'a RealTraffic>,
    pub events: &'a [EventView],
}

/// A deploy's timeline: t = 0 is the probe's start with `--under-load`, else the rollout's.
pub fn of_deploy(run: &DeployRun) -> Timeline {
    let start = run
        .sessions
        .map_or(run.rollout_started_unix_ms, |s| s.started_unix_ms);
    let now = crate::traffic::unix_now() * 1000;
    let mut t = Timeline {
        title: run.title.clone(),
        started: Some(started_text(start)),
        duration_ms: (now - start).max(0) as u64,
        step_ms: 1000,
        headline: run
            .result
            .outcome
            .as_ref()
            .map(WatchOutcome::message)
            .unwrap_or_else(|| "the rollout was not watched".into()),
        ..Timeline::default()
    };
    if let Some(s) = run.sessions {
        with_series(&mut t, s);
        t.probed = true;
    }
    let rel = |unix: i64| unix - start;
    let mut moments = vec![Moment {
        at_ms: rel(run.rollout_started_unix_ms),
        label: Outside::new("rollout started"),
    }];
    if let Some(WatchOutcome::Succeeded {
        elapsed_ms,
        revision,
        healthy_targets,
    }) = &run.result.outcome
    {
        moments.push(Moment {
            at_ms: rel(run.rollout_started_unix_ms) + *elapsed_ms as i64,
            label: Outside::new(&format!(
                "new tasks healthy: {revision}, {healthy_targets} healthy target(s)"
            )),
        });
    }
    if let Some(native) = &run.result.native {
        for s in &native.stages {
            let stage = |when: &str, at: &str| {
                unix_ms(at).map(|ms| Moment {
                    at_ms: rel(ms),
                    label: Outside::new(&format!("{} stage {} {when}", native.strategy, s.name)),
                })
            };
            moments.extend(stage("started", &s.started));
            moments.extend(s.ended.as_deref().and_then(|e| stage("ended", e)));
        }
    }
    moments.extend(event_moments(
        run.events,
        &run.result.plan.seen_events,
        start,
        run.rollout_started_unix_ms,
    ));
    moments.sort_by_key(|m| m.at_ms);
    t.moments = moments;
    if let Some(real) = run.traffic {
        t.traffic = traffic_lines(real, start);
    }
    t
}

/// ECS's service events of this rollout (those not there when it was planned: `seen`) as
/// moments, each with ECS's words after ours. ECS stamps them to the second: one stamped in
/// the rollout's first second is placed at its start.
pub fn event_moments(
    events: &[EventView],
    seen: &HashSet<String>,
    start: i64,
    rollout_started: i64,
) -> Vec<Moment> {
    events
        .iter()
        .rev()
        .filter(|e| !seen.contains(&e.id))
        .filter_map(|e| {
            let at = unix_ms(&e.created_at)?;
            let (_, ours) = EVENT_MOMENTS
                .iter()
                .find(|(word, _)| e.message.contains(word))?;
            Some(Moment {
                at_ms: at.max(rollout_started) - start,
                label: e.message.with_prefix(&format!("{ours}: ")),
            })
        })
        .collect()
}

/// Every series of every load balancer with datapoints, minutes placed from `start`.
fn traffic_lines(real: &RealTraffic, start: i64) -> Vec<TrafficLine> {
    let mut out = Vec::new();
    for lb in &real.load_balancers {
        for s in lb.series.iter().filter(|s| !s.points.is_empty()) {
            out.push(TrafficLine {
                label: format!("{} ({})", s.metric, s.stat),
                load_balancer: Outside::new(&lb.load_balancer),
                points: s
                    .points
                    .iter()
                    .map(|(secs, v)| (secs * 1000 - start, *v))
                    .collect(),
            });
        }
    }
    out
}

/// ECS's service events for [`DeployRun::events`] (one DescribeServices); none when it
/// cannot be read: the page goes without them.
pub async fn service_events(aws: &Aws, cluster: &str, service: &str) -> Vec<EventView> {
    match crate::ecs::describe_service(aws, cluster, service).await {
        Ok(svc) => svc.events,
        Err(_) => Vec::new(),
    }
}

/// A deploy's timeline (`deploy`, `full`), after the rollout: `from` is when it started (Unix
/// seconds, taken before it), refined to the millisecond by the probe's mark with
/// `--under-load`; ECS's events are read once, here.
pub async fn deploy_timeline(
    aws: &Aws,
    ecs: &EcsSection,
    title: String,
    from: i64,
    result: &DeployResult,
    under: Option<&UnderLoad>,
    traffic: Option<&RealTraffic>,
) -> Timeline {
    let disruption = under
        .and_then(|u| u.probe.as_ref())
        .and_then(|p| p.disruption.as_ref());
    let sessions = disruption.and_then(|d| d.series.as_ref());
    let rollout_started_unix_ms = match (disruption, sessions) {
        (Some(d), Some(s)) if d.targets.is_some() => s.started_unix_ms + d.since_ms as i64,
        _ => from * 1000,
    };
    let events = service_events(aws, &ecs.cluster, &ecs.service).await;
    let mut t = of_deploy(&DeployRun {
        title,
        rollout_started_unix_ms,
        result,
        sessions,
        traffic,
        events: &events,
    });
    if let Some(u) = under {
        t.headline = format!("{}; under load: {}", t.headline, u.message);
    }
    t
}

/// The page at `path` and the chart in the step summary. A page or summary that cannot be
/// written is a warning naming the path: the run's exit code stands.
pub fn publish(ui: &Ui, path: &Path, t: &Timeline) {
    match picture::write(path, t) {
        Ok(()) => ui.detail(format!("timeline page written to {}", path.display())),
        Err(e) => ui.warn(format!(
            "the timeline page was not written to {}: {e}",
            path.display()
        )),
    }
    if let Err(e) = picture::mermaid::append_to_summary(t) {
        ui.warn(format!(
            "the timeline was not added to the step summary: {e}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: &str, message: &str) -> EventView {
        EventView {
            id: at.into(),
            created_at: at.into(),
            message: Outside::new(message),
        }
    }

    #[test]
    fn ecs_events_of_the_rollout_become_moments() {
        let start = unix_ms("2026-12-05T09:00:00Z").unwrap();
        // Newest first, as ECS lists them; one there before the rollout (seen), one of a
        // kind that is no moment, one stamped in the rollout's first second.
        let events = [
            event(
                "2026-12-05T09:03:00Z",
                "(service gw) has reached a steady state.",
            ),
            event(
                "2026-12-05T09:02:30Z",
                "(service gw) has stopped 1 running tasks: (task <b>1</b>).",
            ),
            event(
                "2026-12-05T09:02:00Z",
                "(service gw) has begun draining connections on 1 tasks.",
            ),
            event(
                "2026-12-05T09:01:30Z",
                "(service gw) deregistered 1 targets in (target-group tg)",
            ),
            event(
                "2026-12-05T09:01:00Z",
                "(service gw) was unable to place a task.",
            ),
            event(
                "2026-12-05T09:00:00Z",
                "(service gw) has started 1 tasks: (task 0).",
            ),
            event(
                "2026-12-05T08:59:00Z",
                "(service gw) has reached a steady state.",
            ),
        ];
        let seen: HashSet<String> = ["2026-12-05T08:59:00Z".to_string()].into();
        let m = event_moments(&events, &seen, start - 10_000, start + 400);
        let shown: Vec<(i64, String)> = m.iter().map(|m| (m.at_ms, m.label.shown(200))).collect();
        assert_eq!(
            shown,
            vec![
                (
                    10_400,
                    "new tasks started: (service gw) has started 1 tasks: (task 0).".into()
                ),
                (
                    100_000,
                    "targets deregistered: (service gw) deregistered 1 targets in (target-group tg)"
                        .into()
                ),
                (
                    130_000,
                    "draining started: (service gw) has begun draining connections on 1 tasks."
                        .into()
                ),
                (
                    160_000,
                    "old tasks stopped: (service gw) has stopped 1 running tasks: (task <b>1</b>)."
                        .into()
                ),
                (
                    190_000,
                    "steady state: (service gw) has reached a steady state.".into()
                ),
            ]
        );
        assert_eq!(unix_ms("not a time"), None);
    }

    fn plan() -> crate::ecs::deploy::DeployPlan {
        crate::ecs::deploy::DeployPlan {
            cluster: "c".into(),
            service: "bosar-api".into(),
            container: "api".into(),
            current_task_definition: "bosar-api:1".into(),
            current_revision: "bosar-api:1".into(),
            action: crate::ecs::deploy::RolloutAction::NewRevision,
            changes: vec![],
            desired_count: 2,
            target_group_arns: vec![],
            circuit_breaker: None,
            deployment_configuration: vec![],
            refused: None,
            in_progress: None,
            run_id: "r".into(),
            strategy: Some("CANARY".into()),
            gate: None,
            send_configuration: None,
            td: aws_sdk_ecs::types::TaskDefinition::builder().build(),
            tags: vec![],
            seen_events: HashSet::new(),
            deployment_ids: vec![],
        }
    }

    #[test]
    fn a_deploy_has_its_moments_in_order_and_the_minutes_in_place() {
        use crate::ecs::native::stages::StageSpan;
        let mut result = DeployResult::new(plan());
        result.outcome = Some(WatchOutcome::Succeeded {
            revision: "bosar-api:2".into(),
            elapsed_ms: 95_000,
            healthy_targets: 2,
        });
        result.native = Some(crate::ecs::native::watch::NativeReport {
            strategy: "CANARY".into(),
            deployment_arn: "arn".into(),
            stages: vec![StageSpan {
                name: "BAKE_TIME".into(),
                started: "2026-12-05T09:01:00Z".into(),
                ended: None,
            }],
            gate: vec![],
            rollback: None,
        });
        let mut real = RealTraffic::skipped("x");
        real.load_balancers
            .push(crate::traffic::LoadBalancerTraffic {
                load_balancer: "app/<b>/1".into(),
                target_group: "tg".into(),
                series: vec![crate::traffic::SeriesView {
                    key: "new_connections",
                    metric: "NewConnectionCount",
                    stat: "Sum",
                    summary: crate::traffic::window::Summary {
                        datapoints: 2,
                        sum: None,
                        peak: None,
                        peak_at: None,
                        baseline_per_minute: None,
                        extreme: None,
                        baseline_extreme: None,
                    },
                    peak_minute: None,
                    points: vec![(unix_ms("2026-12-05T08:59:00Z").unwrap() / 1000, 60.0)],
                }],
            });
        let start = unix_ms("2026-12-05T09:00:00Z").unwrap();
        let t = of_deploy(&DeployRun {
            title: "deploy".into(),
            rollout_started_unix_ms: start,
            result: &result,
            sessions: None,
            traffic: Some(&real),
            events: &[],
        });
        assert!(!t.probed, "no session panels without --under-load");
        let m: Vec<(i64, String)> = t
            .moments
            .iter()
            .map(|m| (m.at_ms, m.label.shown(99)))
            .collect();
        assert_eq!(
            m,
            vec![
                (0, "rollout started".to_string()),
                (60_000, "CANARY stage BAKE_TIME started".to_string()),
                (
                    95_000,
                    "new tasks healthy: bosar-api:2, 2 healthy target(s)".to_string()
                ),
            ]
        );
        assert_eq!(t.traffic.len(), 1);
        assert_eq!(
            t.traffic[0].points,
            vec![(-60_000, 60.0)],
            "the minute before the start"
        );
        assert_eq!(t.traffic[0].label, "NewConnectionCount (Sum)");
        assert!(t.headline.contains("succeeded"), "{}", t.headline);
    }
}
