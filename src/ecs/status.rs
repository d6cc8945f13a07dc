//! `status`: the service, its deployments, recent events and target health, once.

use serde::Serialize;

use super::rollout::ServiceView;
use super::{describe_service, target_health, TargetHealth};
use crate::aws::Aws;
use crate::config::Config;
use crate::exit::Code;
use crate::ui::Ui;

#[derive(Serialize)]
struct Status<'a> {
    command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<&'a crate::aws::Identity>,
    service: &'a ServiceView,
    target_health: &'a [TargetHealth],
}

pub async fn run(cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("status")?;
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    let health = target_health(aws, &svc.target_group_arns).await?;
    if ui.json() {
        crate::ui::print_json(&Status {
            command: "status",
            identity: aws.identity.as_ref(),
            service: &svc,
            target_health: &health,
        });
        return Ok(Code::Success);
    }
    if let Some(id) = &aws.identity {
        println!(
            "AWS account {} in {}, as {}",
            id.account, aws.region, id.arn
        );
    }
    println!(
        "Service {} ({}) in {}: {} desired, {} running, {} pending",
        svc.name, svc.status, ecs.cluster, svc.desired, svc.running, svc.pending
    );
    println!("Deployments:");
    for d in &svc.deployments {
        println!("  {} {}", d.id, d.summary());
        if let Some(r) = &d.rollout_state_reason {
            println!("      {r}");
        }
    }
    println!("Target health:");
    if health.is_empty() {
        println!("  (the service has no load balancer target group)");
    }
    for h in &health {
        println!(
            "  {}: {}/{} healthy",
            h.target_group_arn, h.healthy, h.total
        );
        for u in &h.unhealthy {
            println!("      {u}");
        }
    }
    println!("Recent events:");
    if svc.events.is_empty() {
        println!("  (none)");
    }
    for e in svc.events.iter().take(10) {
        println!("  {} {}", e.created_at, e.message);
    }
    Ok(Code::Success)
}
