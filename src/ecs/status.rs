//! `status`: the service, its deployments, recent events and target health, once.

use serde::Serialize;

use super::rollout::ServiceView;
use super::{describe_service, target_health, TargetHealth};
use crate::aws::Aws;
use crate::config::Config;
use crate::exit::Code;
use crate::ui::Ui;

/// `status`'s payload in the JSON envelope.
#[derive(Serialize)]
struct Status<'a> {
    identity: Option<&'a crate::aws::Identity>,
    service: &'a ServiceView,
    target_health: &'a [TargetHealth],
}

pub async fn run(cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("status")?;
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    let health = target_health(aws, &svc.target_group_arns).await?;
    ui.out(render(&svc, &ecs.cluster, &health, aws));
    let doc = Status {
        identity: aws.identity.as_ref(),
        service: &svc,
        target_health: &health,
    };
    ui.emit("service", &doc, Code::Success, None);
    Ok(Code::Success)
}

/// The text of `status`. ECS's free text in it (events, rolloutStateReason, target health
/// descriptions) is [`crate::outside::Outside`]: escaped and capped; `Ui::out` cleans the lines.
fn render(svc: &ServiceView, cluster: &str, health: &[TargetHealth], aws: &Aws) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(id) = &aws.identity {
        let _ = writeln!(
            out,
            "AWS account {} in {}, as {}",
            id.account, aws.region, id.arn
        );
    }
    let _ = writeln!(
        out,
        "Service {} ({}) in {cluster}: {} desired, {} running, {} pending",
        svc.name, svc.status, svc.desired, svc.running, svc.pending
    );
    let _ = writeln!(out, "Deployments:");
    for d in &svc.deployments {
        let _ = writeln!(out, "  {} {}", d.id, d.summary());
        if let Some(r) = &d.rollout_state_reason {
            let _ = writeln!(out, "      {r}");
        }
    }
    let _ = writeln!(out, "Target health:");
    if health.is_empty() {
        let _ = writeln!(out, "  (the service has no load balancer target group)");
    }
    for h in health {
        let _ = writeln!(
            out,
            "  {}: {}/{} healthy",
            h.target_group_arn, h.healthy, h.total
        );
        for u in &h.unhealthy {
            let _ = writeln!(out, "      {u}");
        }
    }
    let _ = writeln!(out, "Recent events:");
    if svc.events.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for e in svc.events.iter().take(10) {
        let _ = writeln!(out, "  {} {}", e.created_at, e.message);
    }
    out.trim_end().to_string()
}
