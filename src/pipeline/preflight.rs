//! `full`/`plan` preflight: everything read before anything changes, as checks. A failed
//! check stops the run before the first mutating call; the plans it read are reused by the
//! later steps (no second round of reads).

use std::time::{Duration, Instant};

use crate::alb::{self, AlbPlan};
use crate::aws::Aws;
use crate::config::{Config, EcsSection, GatewaySection};
use crate::ecs::deploy::{self as ecs_deploy, DeployPlan, RolloutAction, RolloutOptions};
use crate::report::{Check, CheckStatus};

/// What preflight read, for the later steps.
pub struct Preflight {
    pub alb: AlbPlan,
    pub deploy: DeployPlan,
}

fn pass(name: &str, message: impl Into<String>) -> Check {
    Check::new(name, CheckStatus::Pass, Duration::ZERO, message)
}

fn fail(name: &str, message: impl Into<String>) -> Check {
    Check::new(name, CheckStatus::Fail, Duration::ZERO, message)
}

/// Config-only rules no anchor checks: the container's WEBSOCKET_* environment must announce
/// what verify expects, or the deploy ships a gateway verify will reject.
pub fn config_checks(cfg: &Config) -> Vec<Check> {
    let mut checks = vec![pass("config", format!("{} is valid", cfg.path.display()))];
    if cfg.ecs.as_ref().is_some_and(|e| e.environment.is_some()) && cfg.gateway.is_some() {
        let problems = cfg.environment_mismatches();
        checks.push(if problems.is_empty() {
            pass(
                "environment",
                "[ecs.environment] WEBSOCKET_* matches [gateway]",
            )
        } else {
            fail(
                "environment",
                format!(
                    "{}; verify would reject the deployed gateway",
                    problems.join("; ")
                ),
            )
        });
    }
    checks
}

/// The AWS half of preflight. `None` when a resource could not be read at all (its check
/// says why); otherwise the plans, with every problem found as a failed check.
pub async fn aws_checks(
    cfg: &Config,
    aws: &Aws,
    opts: &RolloutOptions,
    checks: &mut Vec<Check>,
) -> anyhow::Result<Option<Preflight>> {
    let ecs = cfg.ecs("full")?;
    if let Some(id) = &aws.identity {
        checks.push(pass(
            "credentials",
            format!(
                "AWS account {} in {}, as {}",
                id.account, aws.region, id.arn
            ),
        ));
    }
    let t = Instant::now();
    // Both sides read even when one is missing: every missing resource in one run.
    let (alb_plan, deploy_plan) =
        tokio::join!(alb::plan(aws, cfg), ecs_deploy::plan(aws, ecs, opts));
    let alb_plan = match alb_plan {
        Ok(p) => Some(p),
        Err(_) => {
            checks.extend(missing_alb_resources(cfg, aws, t.elapsed()).await);
            None
        }
    };
    if let Some(p) = &alb_plan {
        target_group_checks(p, t.elapsed(), checks);
    }
    let deploy_plan = match deploy_plan {
        Ok(p) => Some(p),
        Err(e) => {
            checks.push(Check::new(
                "service",
                CheckStatus::Fail,
                t.elapsed(),
                e.to_string(),
            ));
            None
        }
    };
    let (Some(alb_plan), Some(deploy_plan)) = (alb_plan, deploy_plan) else {
        return Ok(None);
    };
    checks.push(Check::new(
        "service",
        CheckStatus::Pass,
        t.elapsed(),
        format!(
            "{}/{} runs {} with container {}",
            ecs.cluster, ecs.service, deploy_plan.current_revision, ecs.container
        ),
    ));
    service_checks(&deploy_plan, ecs, checks);
    // The revision about to be registered (or restarted): image, roles, logs, secrets.
    if deploy_plan.refused.is_none() && deploy_plan.action != RolloutAction::None {
        if let Some(clients) = crate::ecs::preflight::clients_for(aws) {
            checks.extend(
                crate::ecs::preflight::check_plan(&clients, &deploy_plan, &opts.skip_preflight)
                    .await,
            );
        }
    }
    checks.push(wiring_check(&alb_plan, &deploy_plan, &ecs.service));
    if let Some(gw) = &cfg.gateway {
        gateway_checks(cfg, gw, &alb_plan, checks);
    }
    Ok(Some(Preflight {
        alb: alb_plan,
        deploy: deploy_plan,
    }))
}

/// The target group and its load balancers: found, of a kind this tool manages, attached.
fn target_group_checks(plan: &AlbPlan, elapsed: Duration, checks: &mut Vec<Check>) {
    let tg = &plan.target_group;
    let c = match alb::refusal_of_target_group(tg) {
        Some(r) => fail("target_group", r),
        None => pass(
            "target_group",
            format!(
                "{} found ({}, target type {})",
                tg.name,
                tg.protocol.as_deref().unwrap_or("?"),
                tg.target_type.as_deref().unwrap_or("?")
            ),
        ),
    };
    checks.push(
        Check {
            duration_ms: elapsed.as_millis() as u64,
            ..c
        }
        .with_evidence(serde_json::json!({"arn": tg.arn})),
    );
    for lb in &plan.load_balancers {
        let attached = tg.load_balancer_arns.contains(&lb.arn);
        checks.push(if lb.lb_type != "application" {
            fail(
                "load_balancer",
                plan.refused
                    .iter()
                    .find(|r| r.contains(&lb.name))
                    .cloned()
                    .unwrap_or_else(|| format!("{} is a {} load balancer", lb.name, lb.lb_type)),
            )
        } else if attached {
            pass(
                "load_balancer",
                format!("{} ({}) forwards to {}", lb.name, lb.lb_type, tg.name),
            )
        } else {
            fail(
                "load_balancer",
                format!("{} does not forward to target group {}", lb.name, tg.name),
            )
        });
    }
    if tg.load_balancer_arns.is_empty() {
        checks.push(fail(
            "load_balancer",
            format!("target group {} is attached to no load balancer", tg.name),
        ));
    }
}

/// Can this tool roll the service, and will a failing rollout stop by itself?
fn service_checks(plan: &DeployPlan, ecs: &EcsSection, checks: &mut Vec<Check>) {
    checks.push(match &plan.refused {
        Some(r) => fail("rollout", r.clone()),
        None => pass(
            "rollout",
            "ECS deployment controller with the ROLLING strategy: bosar-deploy can roll it",
        ),
    });
    checks.push(match plan.breaker_warning(ecs.max_failed_tasks) {
        Some(_) if ecs.acknowledges("circuit_breaker_off") => pass(
            "circuit_breaker",
            "the deployment circuit breaker is off, as acknowledged in [ecs] acknowledge; the watch fails the rollout after [ecs] max_failed_tasks failed tasks",
        ),
        Some(w) => Check::new("circuit_breaker", CheckStatus::Warn, Duration::ZERO, w),
        None => pass(
            "circuit_breaker",
            format!(
                "the deployment circuit breaker is on{}",
                if plan.circuit_breaker.is_some_and(|b| b.rollback) {
                    ", with rollback"
                } else {
                    " (without rollback)"
                }
            ),
        ),
    });
}

/// The target group and the load balancer deploy.toml names, each read alone after the plan
/// failed: one failed check per resource that cannot be read (the plan stops at the first).
async fn missing_alb_resources(cfg: &Config, aws: &Aws, elapsed: Duration) -> Vec<Check> {
    let lb = async {
        match &cfg.load_balancer {
            Some(lb) => alb::describe_load_balancers(aws, std::slice::from_ref(&lb.id))
                .await
                .err(),
            None => None,
        }
    };
    let (tg, lb) = tokio::join!(alb::describe_target_group(aws, &cfg.target_group.id), lb);
    let mut out = Vec::new();
    if let Err(e) = tg {
        out.push(Check::new(
            "target_group",
            CheckStatus::Fail,
            elapsed,
            e.to_string(),
        ));
    }
    if let Some(e) = lb {
        out.push(Check::new(
            "load_balancer",
            CheckStatus::Fail,
            elapsed,
            e.to_string(),
        ));
    }
    if out.is_empty() {
        // Both read alone: what failed was a later read of the plan; say so, not nothing.
        out.push(fail(
            "target_group",
            "the target group and load balancer plan could not be read",
        ));
    }
    out
}

/// `deploy`'s share of plan's target-group checks, so the two agree: the target group
/// deploy.toml names exists, is of a kind this tool manages, and the service registers its
/// tasks in it. Read calls only; a failure is the error that stops `deploy` before it
/// changes anything. A missing service or cluster is left to the deploy plan, which says so.
pub async fn deploy_target_group(cfg: &Config, aws: &Aws) -> anyhow::Result<()> {
    let ecs = cfg.ecs("deploy")?;
    let (tg, svc) = tokio::join!(
        alb::describe_target_group(aws, &cfg.target_group.id),
        crate::ecs::describe_service(aws, &ecs.cluster, &ecs.service)
    );
    let nothing = |m: String| {
        anyhow::Error::from(
            crate::exit::Failure::failed(format!("{m}; nothing was changed"))
                .hint("check [target_group] in deploy.toml (`bosar-deploy plan` runs every check)"),
        )
    };
    let tg = tg.map_err(|e| match crate::exit::hint_of(&e) {
        // Not found: its own hint names the keys and the region.
        Some(h) => crate::exit::Failure::failed(format!(
            "{}; nothing was changed",
            crate::exit::message_of(&e)
        ))
        .hint(format!("{h}; `bosar-deploy plan` runs every check"))
        .into(),
        None => nothing(crate::exit::message_of(&e)),
    })?;
    if let Some(r) = alb::refusal_of_target_group(&tg) {
        return Err(nothing(r));
    }
    let Ok(svc) = svc else { return Ok(()) };
    let c = wiring(&tg, &svc.target_group_arns, &ecs.service);
    match c.status {
        CheckStatus::Fail => Err(nothing(c.message)),
        _ => Ok(()),
    }
}

/// The service must send its traffic to this target group.
fn wiring_check(alb: &AlbPlan, deploy: &DeployPlan, service: &str) -> Check {
    wiring(&alb.target_group, &deploy.target_group_arns, service)
}

fn wiring(tg: &alb::TargetGroupInfo, registered: &[String], service: &str) -> Check {
    if registered.contains(&tg.arn) {
        return pass(
            "wiring",
            format!("service {service} registers its tasks in {}", tg.name),
        );
    }
    let actual = if registered.is_empty() {
        "no target group".to_string()
    } else {
        registered.join(", ")
    };
    fail(
        "wiring",
        format!(
            "service {service} registers its tasks in {actual}, not in target group {}: its stickiness settings would not apply",
            tg.name
        ),
    )
}

fn gateway_checks(cfg: &Config, gw: &GatewaySection, alb: &AlbPlan, checks: &mut Vec<Check>) {
    let idle = cfg
        .load_balancer
        .as_ref()
        .and_then(|l| l.idle_timeout)
        .map(|d| d.as_secs())
        .or_else(|| {
            alb.load_balancers
                .iter()
                .map(|l| l.idle_timeout_seconds)
                .min()
        });
    if let Some(idle) = idle {
        checks.push(idle_timeout_check(idle, gw));
    }
    let hc = alb
        .target_group
        .health_check_path
        .clone()
        .unwrap_or_default();
    checks.push(if hc == gw.health_path {
        pass("health_check", format!("target group health check is {hc}"))
    } else {
        Check::new(
            "health_check",
            CheckStatus::Warn,
            Duration::ZERO,
            format!(
                "target group health check path is {hc:?}, the gateway's is {}",
                gw.health_path
            ),
        )
    });
}

fn idle_timeout_check(idle_secs: u64, gw: &GatewaySection) -> Check {
    let longest = gw.ping_interval.max(gw.heartbeat_interval);
    let idle = Duration::from_secs(idle_secs);
    if idle <= longest {
        fail(
            "idle_timeout",
            format!(
                "load balancer idle timeout {idle_secs}s is not above the longest gateway interval ({}): idle WebSockets will be cut; set [load_balancer] idle_timeout",
                crate::duration::format(longest)
            ),
        )
    } else if let Some(w) = alb::plan::idle_timeout_warning(idle, gw) {
        Check::new("idle_timeout", CheckStatus::Warn, Duration::ZERO, w)
    } else {
        pass(
            "idle_timeout",
            format!("idle timeout {idle_secs}s is above ping and heartbeat intervals"),
        )
    }
}
