//! `status`: the service, the running revision's image, its deployments, recent events and
//! target health (by target group name), once; and a section its caller adds (the last 15
//! minutes of real traffic, read by `traffic`, which sits above `ecs`: a [`Section`] keeps
//! this file from importing it).

use serde::Serialize;

use super::rollout::ServiceView;
use super::taskdef::revision_label;
use super::{describe_service, describe_task_definition, target_health, TargetHealth};
use crate::aws::Aws;
use crate::config::Config;
use crate::exit::Code;
use crate::outside::Outside;
use crate::ui::Ui;

/// `status`'s payload in the JSON envelope.
#[derive(Serialize)]
struct Status<'a> {
    /// The service's state in the one `result` vocabulary: `succeeded` (steady on one
    /// deployment), `in_progress` (a rollout runs), `failed` (the primary's rollout failed).
    result: &'static str,
    identity: Option<&'a crate::aws::Identity>,
    service: &'a ServiceView,
    /// The revision the service runs and the configured container's image in it.
    running: Running,
    target_health: Vec<NamedHealth<'a>>,
    /// A blue/green, canary or linear service's newest service deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    service_deployment: Option<DeploymentNow>,
    /// The load balancer's CloudWatch series of the last 15 minutes (`real_traffic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    real_traffic: Option<serde_json::Value>,
}

/// A section the caller adds to `status`: its text (after the rest) and its payload member.
#[derive(Debug, Clone)]
pub struct Section {
    pub text: String,
    pub json: serde_json::Value,
}

/// The newest service deployment (ListServiceDeployments, DescribeServiceDeployments): its
/// status, stage and the hooks that await an action; `note` when it could not be read.
#[derive(Serialize, Default)]
struct DeploymentNow {
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    waiting: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

async fn deployment_now(aws: &Aws, cluster: &str, service: &str) -> DeploymentNow {
    use super::native::read;
    let read_it = async {
        let briefs = read::list(aws, cluster, service).await?;
        let Some(newest) = briefs.first() else {
            return Ok(DeploymentNow {
                note: Some("ECS lists no service deployment".into()),
                ..Default::default()
            });
        };
        let o = read::describe(aws, &newest.arn).await?;
        Ok::<_, super::DescribeError>(DeploymentNow {
            arn: Some(newest.arn.clone()),
            status: Some(o.status.clone()),
            stage: o.stage.clone(),
            waiting: o
                .hooks
                .iter()
                .filter(|h| h.status == "AWAITING_ACTION")
                .map(|h| {
                    format!(
                        "hook {} ({}) awaits an action until {}",
                        h.hook_id, h.target_type, h.expires_at
                    )
                })
                .collect(),
            note: None,
        })
    };
    read_it.await.unwrap_or_else(|e| DeploymentNow {
        note: Some(format!(
            "the service deployments could not be read: {}",
            crate::exit::message_of(&anyhow::Error::from(e))
        )),
        ..Default::default()
    })
}

/// What the service runs: `image` is `null` when the revision could not be read or has no
/// container of that name (`note` says which).
#[derive(Serialize)]
struct Running {
    task_definition: String,
    container: String,
    image: Option<Outside>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// Target health with the target group's name beside its ARN.
#[derive(Serialize)]
struct NamedHealth<'a> {
    target_group_name: String,
    #[serde(flatten)]
    health: &'a TargetHealth,
}

/// The name in a target group ARN (`…:targetgroup/NAME/ID`); the whole text if it is not one.
pub fn target_group_name(arn: &str) -> String {
    let name = arn
        .split_once(":targetgroup/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(arn);
    Outside::new(name).to_string()
}

/// The configured container's image in the running revision.
async fn running(aws: &Aws, task_definition: &str, container: &str) -> Running {
    let (image, note) = match describe_task_definition(aws, task_definition).await {
        Ok((td, _)) => match td
            .container_definitions()
            .iter()
            .find(|c| c.name() == Some(container))
        {
            Some(c) => (c.image().map(Outside::new), None),
            None => (
                None,
                Some(format!(
                    "container {container} is not in {}",
                    Outside::new(&revision_label(task_definition))
                )),
            ),
        },
        Err(e) => (
            None,
            Some(format!(
                "the running revision could not be read: {}",
                crate::exit::message_of(&e)
            )),
        ),
    };
    Running {
        task_definition: task_definition.to_string(),
        container: container.to_string(),
        image,
        note,
    }
}

pub async fn run(cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    run_with(cfg, aws, ui, std::future::ready(None)).await
}

/// `status` with the real-traffic section `extra` (read beside the ECS calls; it never fails
/// the verb).
pub async fn run_with(
    cfg: &Config,
    aws: &Aws,
    ui: &Ui,
    extra: impl std::future::Future<Output = Option<Section>>,
) -> anyhow::Result<Code> {
    let ecs = cfg.ecs("status")?;
    let svc = describe_service(aws, &ecs.cluster, &ecs.service).await?;
    let (health, running, extra) = tokio::join!(
        target_health(aws, &svc.target_group_arns),
        running(aws, &svc.task_definition, &ecs.container),
        extra
    );
    let health = health?;
    let named: Vec<NamedHealth> = health
        .iter()
        .map(|h| NamedHealth {
            target_group_name: target_group_name(&h.target_group_arn),
            health: h,
        })
        .collect();
    let native = match svc.strategy.as_deref() {
        Some(s) if s != "ROLLING" => Some(deployment_now(aws, &ecs.cluster, &ecs.service).await),
        _ => None,
    };
    ui.out(render(&svc, &ecs.cluster, &running, &named, aws));
    if let Some(n) = &native {
        ui.out(render_now(svc.strategy.as_deref().unwrap_or_default(), n));
    }
    if let Some(x) = &extra {
        ui.out(x.text.trim_end());
    }
    let doc = Status {
        result: service_result(&svc),
        identity: aws.identity.as_ref(),
        service: &svc,
        running,
        target_health: named,
        service_deployment: native,
        real_traffic: extra.map(|x| x.json),
    };
    ui.emit("service", &doc, Code::Success, None);
    Ok(Code::Success)
}

/// The text of `status`. ECS's free text in it (events, rolloutStateReason, target health
/// descriptions, the image) is [`crate::outside::Outside`]: escaped and capped; `Ui::out`
/// cleans the lines.
fn render(
    svc: &ServiceView,
    cluster: &str,
    running: &Running,
    health: &[NamedHealth],
    aws: &Aws,
) -> String {
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
    let image = match (&running.image, &running.note) {
        (Some(i), _) => i.to_string(),
        (None, Some(n)) => format!("unknown ({n})"),
        (None, None) => "(none)".to_string(),
    };
    let _ = writeln!(
        out,
        "Running {}, container {}: image {image}",
        revision_label(&running.task_definition),
        running.container
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
            h.target_group_name, h.health.healthy, h.health.total
        );
        for u in &h.health.unhealthy {
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

/// The newest service deployment of a blue/green, canary or linear service, as text.
fn render_now(strategy: &str, n: &DeploymentNow) -> String {
    let mut out = format!("Service deployment ({strategy}):");
    match (&n.arn, &n.note) {
        (Some(arn), _) => {
            out.push_str(&format!(
                "\n  {arn} {} at {}",
                n.status.as_deref().unwrap_or("?"),
                n.stage.as_deref().unwrap_or("no stage yet")
            ));
            for w in &n.waiting {
                out.push_str(&format!("\n  {w}"));
            }
        }
        (None, Some(note)) => out.push_str(&format!("\n  ({note})")),
        (None, None) => {}
    }
    out
}

/// `status`'s `result`: what the service's deployments say about it now.
fn service_result(svc: &ServiceView) -> &'static str {
    let primary = svc.deployments.iter().find(|d| d.status == "PRIMARY");
    match primary.and_then(|d| d.rollout_state.as_deref()) {
        Some("FAILED") => "failed",
        Some("IN_PROGRESS") => "in_progress",
        _ if svc.deployments.len() > 1 => "in_progress",
        _ => "succeeded",
    }
}

#[cfg(test)]
mod tests {
    use super::{render_now, target_group_name, DeploymentNow};

    #[test]
    fn a_native_service_shows_its_newest_deployment_or_why_not() {
        let n = DeploymentNow {
            arn: Some("arn:sd/1".into()),
            status: Some("IN_PROGRESS".into()),
            stage: Some("POST_SCALE_UP".into()),
            waiting: vec!["hook h (PAUSE) awaits an action until T".into()],
            note: None,
        };
        assert_eq!(
            render_now("BLUE_GREEN", &n),
            "Service deployment (BLUE_GREEN):\n  arn:sd/1 IN_PROGRESS at POST_SCALE_UP\n  hook h (PAUSE) awaits an action until T"
        );
        let n = DeploymentNow {
            note: Some("the service deployments could not be read: AccessDenied".into()),
            ..Default::default()
        };
        assert!(render_now("CANARY", &n)
            .ends_with("(the service deployments could not be read: AccessDenied)"));
    }

    #[test]
    fn the_name_comes_out_of_the_arn() {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/bosar-api-tg/50dc6c495c0c9188";
        assert_eq!(target_group_name(arn), "bosar-api-tg");
        assert_eq!(target_group_name("not-an-arn"), "not-an-arn");
    }
}
