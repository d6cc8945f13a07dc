//! `init`: write a `deploy.toml` for a service that already runs, from what runs today (as
//! ecspresso's `init` does). Reads the service, its task definition, its target group and load
//! balancer and their attributes (read calls only), decides what to write ([`sections`]),
//! builds it as a TOML document ([`render`]), parses it back and checks it against what was
//! read and that it validates, and writes it (to `--output-file`, else the `--config` path),
//! never over an existing file unless `--force`. With `--env NAME` it adds an
//! `[environments.NAME]` block to the existing file instead. A service without an ALB target
//! group is refused with what init cannot adopt (exit 2).

pub mod readback;
pub mod render;
pub mod sections;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::alb;
use crate::aws::Aws;
use crate::cli::InitArgs;
use crate::config::{self, ResourceRef};
use crate::ecs::{describe_service_full, describe_task_definition};
use crate::exit::{Code, Failure};
use crate::ui::Ui;
use sections::{Discovered, Layout, LoadBalancerFacts, TargetGroupFacts};

/// The container to manage: `--container`, else the one the service's load balancer entry
/// names, else the only one; otherwise the choice is the user's. The errors name AWS's
/// containers as outside text (a line break in a name cannot start a log line).
fn pick_container(
    containers: &[String],
    wanted: Option<&str>,
    behind_lb: Option<&str>,
) -> Result<String, Failure> {
    let list = containers
        .iter()
        .map(|c| crate::outside::Outside::new(c).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(w) = wanted {
        return containers.iter().find(|c| *c == w).cloned().ok_or_else(|| {
            Failure::usage(format!(
                "--container {w}: the task definition has no such container; it has {list}"
            ))
        });
    }
    if let Some(c) = behind_lb.filter(|c| containers.iter().any(|x| x == c)) {
        return Ok(c.to_string());
    }
    match containers {
        [one] => Ok(one.clone()),
        _ => Err(Failure::usage(format!(
            "the task definition has {} containers ({list}) and none is behind a load balancer",
            containers.len()
        ))
        .hint("name the gateway's container with --container NAME")),
    }
}

/// The target group: `--target-group` (name or ARN), else the service's only one.
fn pick_target_group(arns: &[String], wanted: Option<&str>) -> Result<String, Failure> {
    let name_of = |arn: &str| arn.split('/').nth(1).unwrap_or(arn).to_string();
    let names = || {
        arns.iter()
            .map(|a| name_of(a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        return arns
            .iter()
            .find(|a| *a == w || name_of(a) == w)
            .cloned()
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--target-group {w}: the service registers its tasks in {}",
                    names()
                ))
            });
    }
    match arns {
        [one] => Ok(one.clone()),
        _ => Err(Failure::usage(format!(
            "the service registers its tasks in {} target groups: {}",
            arns.len(),
            names()
        ))
        .hint("name the gateway's with --target-group NAME")),
    }
}

/// A service without an ALB target group: what init cannot adopt, and why. `classic` are the
/// Classic Load Balancers its entries name.
fn no_target_group(service: &str, classic: &[String]) -> Failure {
    let what = if classic.is_empty() {
        "has no load balancer".to_string()
    } else {
        let names: Vec<String> = classic.iter().map(|n| render::basic_string(n)).collect();
        format!(
            "is behind a Classic Load Balancer ({}), not an Application Load Balancer target group",
            names.join(", ")
        )
    };
    Failure::usage(format!(
        "ECS service {} {what}: bosar-deploy manages a service behind an ALB target group (stickiness, algorithm, deregistration delay), so init cannot write the [target_group] section deploy.toml requires; nothing was written",
        render::basic_string(service)
    ))
    .hint("put the service behind an Application Load Balancer target group first, then run init again")
}

/// The Classic Load Balancer names of the service's load balancer entries (read only when it
/// has no target group, to say what it has instead).
async fn classic_load_balancers(aws: &Aws, cluster: &str, service: &str) -> Vec<String> {
    let Ok(out) = aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
    else {
        return Vec::new();
    };
    out.services()
        .iter()
        .flat_map(|s| s.load_balancers())
        .filter_map(|l| l.load_balancer_name().map(str::to_string))
        .collect()
}

/// Reads what runs today. Read calls only.
async fn discover(aws: &Aws, args: &InitArgs) -> anyhow::Result<Discovered> {
    let (svc, raw) = describe_service_full(aws, &args.cluster, &args.service).await?;
    let (td, _) = describe_task_definition(aws, &svc.task_definition).await?;
    let containers: Vec<String> = td
        .container_definitions()
        .iter()
        .filter_map(|c| c.name().map(str::to_string))
        .collect();
    if svc.target_group_arns.is_empty() {
        let classic = classic_load_balancers(aws, &args.cluster, &args.service).await;
        return Err(no_target_group(&args.service, &classic).into());
    }
    let tg_arn = pick_target_group(&svc.target_group_arns, args.target_group.as_deref())?;
    let behind_lb = svc.container_behind(Some(&tg_arn));
    let container = pick_container(&containers, args.container.as_deref(), behind_lb.as_deref())?;
    let environment = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container.as_str()))
        .map(|c| {
            c.environment()
                .iter()
                .filter_map(|kv| {
                    Some((kv.name()?.to_string(), kv.value().unwrap_or("").to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut d = Discovered {
        region: aws.region.clone(),
        cluster: args.cluster.clone(),
        service: args.service.clone(),
        other_containers: containers
            .iter()
            .filter(|c| **c != container)
            .cloned()
            .collect(),
        container,
        environment,
        gateway_url: args.gateway_url.clone(),
        deployment: raw
            .deployment_configuration()
            .map(crate::ecs::strategy::section_of),
        ..Default::default()
    };
    {
        let tg = alb::describe_target_group(aws, &ResourceRef::Arn(tg_arn)).await?;
        let lbs: Vec<ResourceRef> = tg
            .load_balancer_arns
            .iter()
            .take(1)
            .cloned()
            .map(ResourceRef::Arn)
            .collect();
        if let Some(lb) = alb::describe_load_balancers(aws, &lbs)
            .await?
            .into_iter()
            .next()
        {
            d.load_balancer = Some(LoadBalancerFacts {
                idle_timeout_secs: lb
                    .attributes
                    .get(alb::plan::IDLE_TIMEOUT)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(alb::plan::DEFAULT_IDLE_TIMEOUT_SECS),
                name: lb.name,
                dns_name: lb.dns_name,
            });
        }
        d.target_group = Some(TargetGroupFacts {
            name: tg.name,
            health_check_path: tg.health_check_path,
            attributes: tg.attributes,
        });
    }
    Ok(d)
}

/// Writes `text` to `path` through a temporary file in the same directory, never through a
/// symlink, so a failed write leaves nothing half-written.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Failure::failed(format!("cannot write in {}: {e}", dir.display())))?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path)
        .map_err(|e| Failure::failed(format!("cannot write {}: {}", path.display(), e.error)))?;
    Ok(())
}

/// The file's new text: the whole file, or `existing` with the environment's block added;
/// parsed back and compared with what was read before it is returned.
fn build(
    d: &Discovered,
    environment: Option<&str>,
    existing: Option<&str>,
) -> Result<(String, Layout), Failure> {
    match environment {
        Some(env) => {
            let layout = sections::environment(env, d);
            let before = existing.unwrap_or("");
            let text = render::merge_environment(before, env, &layout)?;
            readback::check_merge(before, &text, env, &render::expected(&layout.sections))?;
            Ok((text, layout))
        }
        None => {
            let layout = sections::file(d);
            let text = render::document(&layout)?;
            readback::check(&text, &render::expected(&layout.sections))?;
            Ok((text, layout))
        }
    }
}

/// Whether init may write `path`: never over a file without `--force`, `--env` only into a
/// file that exists and validates as it is. Nothing has been read from AWS yet.
fn may_write(
    path: &Path,
    existing: Option<&str>,
    environment: Option<&str>,
    force: bool,
    to_stdout: bool,
) -> Result<(), Failure> {
    if environment.is_none() && existing.is_some() && !force {
        return Err(Failure::usage(format!("{} exists; not overwritten", path.display()))
            .hint("pass --force to replace it, --output-file PATH to write elsewhere, or --env NAME to add an environment to it")
            );
    }
    if environment.is_some() && existing.is_none() && !to_stdout {
        return Err(Failure::usage(format!(
            "--env writes an [environments.NAME] table into an existing file, and {} does not exist",
            path.display()
        ))
        .hint("run `bosar-deploy init` without --env first")
        );
    }
    if let (Some(_), Some(base)) = (environment, existing) {
        config::parse(path, base).map_err(|e| {
            Failure::usage(format!(
                "{} does not validate as it is, so init --env does not add to it: {e}",
                path.display()
            ))
            .hint("fix it first (`bosar-deploy plan` shows the same errors); nothing was read or written")
        })?;
    }
    Ok(())
}

/// Where init writes: `--output-file`, else the config path (`--config`, then
/// `$BOSAR_DEPLOY_CONFIG`, then `./deploy.toml`), the file the other verbs will read.
pub fn output_path(args: &InitArgs, config_flag: Option<&Path>) -> PathBuf {
    args.output_file
        .clone()
        .unwrap_or_else(|| config::locate(config_flag))
}

/// The `init` verb.
pub async fn run(
    args: &InitArgs,
    aws: &Aws,
    config_flag: Option<&Path>,
    environment: Option<&str>,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let path = output_path(args, config_flag);
    let to_stdout = path.as_os_str() == "-";
    let existing = (!to_stdout)
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten();
    may_write(
        &path,
        existing.as_deref(),
        environment,
        args.force,
        to_stdout,
    )?;
    ui.line(format!(
        "Reading service {} in cluster {} ({})",
        args.service, args.cluster, aws.region
    ));
    let d = discover(aws, args).await?;
    let (text, layout) = build(&d, environment, existing.as_deref())?;
    if !layout.refused_names.is_empty() {
        let names: Vec<String> = layout
            .refused_names
            .iter()
            .map(|n| render::basic_string(n))
            .collect();
        ui.warn(format!(
            "[ecs.environment] not written: the container has variables whose names ECS does not pass on as written ({}: {}); deploy leaves the environment as it is until you fix them on AWS",
            config::CONTAINER_ENV_NAME_RULE,
            names.join(", ")
        ));
    }
    // Never write a file bosar-deploy itself would refuse.
    if environment.is_none() || existing.is_some() {
        config::parse_environment(&path, &text, environment).map_err(|e| {
            Failure::failed(format!(
                "the file init built from what runs today does not validate, so it was not written: {e}"
            ))
            .hint("AWS holds a value deploy.toml cannot express (the message names it); change it on AWS or write that key by hand")
        })?;
    }
    if to_stdout {
        ui.out_document(&text);
        let doc = serde_json::json!({"path": null, "environment": environment, "content": text});
        ui.emit("init", &doc, Code::Success, None);
        return Ok(Code::Success);
    }
    write_new(&path, &text)?;
    let doc = serde_json::json!({
        "path": path.display().to_string(),
        "environment": environment,
        "content": null,
    });
    ui.emit("init", &doc, Code::Success, None);
    let env = environment
        .map(|e| format!(" --env {}", crate::ui::shell_quote(e)))
        .unwrap_or_default();
    let quoted = crate::ui::shell_quote(&path.to_string_lossy());
    ui.out(format!(
        "Wrote {}. Next: review it, then `bosar-deploy --config {quoted}{env} plan` (no attribute change until you edit it), and `bosar-deploy --config {quoted}{env} alb-update` to apply what you adopt.",
        path.display(),
    ));
    Ok(Code::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_behind_the_load_balancer_is_the_choice() {
        let cs = vec!["bosar-api".to_string(), "log-router".to_string()];
        assert_eq!(
            pick_container(&cs, None, Some("bosar-api")).unwrap(),
            "bosar-api"
        );
        assert_eq!(
            pick_container(&cs, Some("log-router"), Some("bosar-api")).unwrap(),
            "log-router"
        );
        let e = pick_container(&cs, None, None).unwrap_err();
        assert!(
            e.message.contains("2 containers (bosar-api, log-router)"),
            "{}",
            e.message
        );
        assert!(pick_container(&cs, Some("nope"), None).is_err());
        assert_eq!(pick_container(&cs[..1], None, None).unwrap(), "bosar-api");
    }

    #[test]
    fn container_names_in_errors_stay_on_their_line() {
        let forged = "x\n2026-01-01T00:00:00Z error: forged";
        let cs = vec![forged.to_string(), "log-router".to_string()];
        for e in [
            pick_container(&cs, None, None).unwrap_err(),
            pick_container(&cs, Some("nope"), None).unwrap_err(),
        ] {
            assert!(!e.message.contains('\n'), "{}", e.message);
            assert!(
                e.message
                    .contains(r"x\n2026-01-01T00:00:00Z error: forged, log-router"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn several_target_groups_need_a_name() {
        let a = |n: &str| format!("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/{n}/abc");
        let arns = vec![a("api-tg"), a("admin-tg")];
        let e = pick_target_group(&arns, None).unwrap_err();
        assert!(
            e.message.contains("2 target groups: api-tg, admin-tg"),
            "{}",
            e.message
        );
        assert_eq!(
            pick_target_group(&arns, Some("admin-tg")).unwrap(),
            a("admin-tg")
        );
    }
}
