//! UpdateService, and what to do when its answer is lost: the request may have reached ECS
//! and started a deployment. The service is read back; if it points at the revision asked
//! for with a deployment that was not there before, that deployment is ours and is watched
//! (with its id and the `wait` command); otherwise the error says what the service runs.

use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::aws::{is_transient, sdk_error, Aws};
use crate::ecs::describe_service;
use crate::ecs::taskdef::revision_label;
use crate::ecs::watch::{self, WatchTarget};
use crate::exit::{hint_of, message_of, Failure};
use crate::ui::Ui;

/// One UpdateService call.
pub(crate) struct UpdateRequest<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub task_definition: &'a str,
    /// What the service ran before (a circuit-breaker rollback returns to it).
    pub previous: Option<&'a str>,
    pub force: bool,
    /// The service's deployments before the call: after a lost answer, a PRIMARY deployment
    /// not among them is the one the call started.
    pub known_deployments: &'a [String],
    /// `[ecs.deployment]` merged over the service's (`None`: not sent).
    pub deployment_configuration: Option<&'a aws_sdk_ecs::types::DeploymentConfiguration>,
}

/// Whether an error leaves open that the call took effect: no answer, a connection cut, a
/// 5xx or throttling (kept on the safe side), an answer that could not be read.
pub(crate) fn answer_lost<E>(e: &SdkError<E, HttpResponse>) -> bool
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata,
{
    is_transient(e) || matches!(e, SdkError::ServiceError(se) if se.raw().status().is_success())
}

pub(crate) async fn update_service(
    aws: &Aws,
    r: &UpdateRequest<'_>,
    ui: &Ui,
) -> anyhow::Result<WatchTarget> {
    let mut req = aws
        .ecs
        .update_service()
        .cluster(r.cluster)
        .service(r.service)
        .task_definition(r.task_definition);
    if r.force {
        req = req.force_new_deployment(true);
    }
    req = req.set_deployment_configuration(r.deployment_configuration.cloned());
    let deployment_id = match req.send().await {
        Ok(out) => match primary_of(&out) {
            Some(id) => id,
            None => {
                let lost = Failure::failed("UpdateService returned no primary deployment").into();
                resolve_lost(aws, r, lost, ui).await?
            }
        },
        Err(e) if answer_lost(&e) => {
            let lost = sdk_error("UpdateService", e);
            resolve_lost(aws, r, lost, ui).await?
        }
        Err(e) => return Err(sdk_error("UpdateService", e)),
    };
    ui.line(format!(
        "Started deployment {deployment_id} of {}",
        revision_label(r.task_definition)
    ));
    let target = WatchTarget {
        cluster: r.cluster.to_string(),
        service: r.service.to_string(),
        deployment_id,
        task_definition: r.task_definition.to_string(),
        previous_task_definition: r.previous.map(str::to_string),
    };
    ui.set_resume_hint(watch::resume_command(ui, &target));
    Ok(target)
}

/// UpdateService returns the service with the new deployment as PRIMARY.
fn primary_of(out: &UpdateServiceOutput) -> Option<String> {
    out.service()?
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))?
        .id()
        .map(str::to_string)
}

/// After a lost answer: the id of the deployment the call started, read from the service, or
/// an error saying what the service runs.
async fn resolve_lost(
    aws: &Aws,
    r: &UpdateRequest<'_>,
    lost: anyhow::Error,
    ui: &Ui,
) -> anyhow::Result<String> {
    let ours = revision_label(r.task_definition);
    let svc = match describe_service(aws, r.cluster, r.service).await {
        Ok(s) => s,
        Err(e) => {
            let e = anyhow::Error::from(e);
            return Err(Failure::failed(format!(
                "{}; whether the update reached ECS is unknown: reading the service failed too ({})",
                message_of(&lost),
                message_of(&e)
            ))
            .hint(format!(
                "`{}` shows whether the service points at {ours} and which deployment runs",
                ui.command("status")
            ))
            .into());
        }
    };
    // A new revision is ours alone: the service pointing at it means the update took effect
    // (moto keeps the old deployment's id); a forced deployment needs a new deployment.
    let points = svc.task_definition == r.task_definition;
    let primary = svc.primary().filter(|_| points);
    if let Some(d) = primary.filter(|d| !r.force || !r.known_deployments.contains(&d.id)) {
        let which = if r.known_deployments.contains(&d.id) {
            "primary deployment"
        } else {
            "new deployment"
        };
        ui.warn(format!(
            "{}; the service was read back: it points at {ours} with {which} {}, so the update reached ECS: watching it",
            message_of(&lost),
            d.id
        ));
        return Ok(d.id.clone());
    }
    let mut f = Failure::failed(format!(
        "{}; the service was read back: it runs {} with no new deployment, so the update did not take effect",
        message_of(&lost),
        revision_label(&svc.task_definition)
    ));
    f.hint = hint_of(&lost).map(str::to_string);
    Err(f.into())
}

/// UpdateService with the deploymentConfiguration alone (`[ecs.deployment]` changed, nothing
/// else): ECS starts no deployment for it. Not retried: a lost answer is reported as such,
/// and the next plan shows whether it took effect.
pub(crate) async fn update_configuration(
    aws: &Aws,
    plan: &super::DeployPlan,
    configuration: aws_sdk_ecs::types::DeploymentConfiguration,
    ui: &Ui,
) -> anyhow::Result<()> {
    let sent = aws
        .ecs
        .update_service()
        .cluster(&plan.cluster)
        .service(&plan.service)
        .deployment_configuration(configuration)
        .send()
        .await;
    if let Err(e) = sent {
        let lost = answer_lost(&e);
        let err = sdk_error("UpdateService", e);
        if !lost {
            return Err(err);
        }
        let mut f = Failure::failed(format!(
            "{}; whether the deploymentConfiguration change reached ECS is unknown",
            message_of(&err)
        ));
        f.hint = Some(format!(
            "`{}` compares the service's deploymentConfiguration with [ecs.deployment]",
            ui.command("plan")
        ));
        return Err(f.into());
    }
    ui.line(format!(
        "Updated the deploymentConfiguration of service {} ({} change(s)); no deployment was started",
        plan.service,
        plan.deployment_configuration.len()
    ));
    Ok(())
}
