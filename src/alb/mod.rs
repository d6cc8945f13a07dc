//! `alb-update`: the target group (and load balancer idle timeout) brought to deploy.toml's state.
//! Reads first, plans a diff ([`plan`]), applies only changed keys, reads back to confirm.

pub mod alternate;
mod apply;
pub mod plan;
mod read;

pub use apply::{apply, apply_reporting, ApplyReport, ChangeResult, ChangeStatus};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use console::style;
use serde::Serialize;

use crate::aws::{sdk_error, Aws};
use crate::cli::AlbUpdateArgs;
use crate::config::{Config, ResourceRef};
use crate::exit::{Code, Failure};
use crate::ui::Ui;
use plan::{AttributeChange, NotManaged};
use read::{read_with_retry, CompleteAnswer};

/// The target group as AWS reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetGroupInfo {
    pub arn: String,
    pub name: String,
    /// `HTTP`, `HTTPS`, `TCP`, …; none for lambda targets.
    pub protocol: Option<String>,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: Option<String>,
    pub load_balancer_arns: Vec<String>,
    pub health_check_path: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerPlan {
    pub arn: String,
    pub name: String,
    #[serde(rename = "type")]
    pub lb_type: String,
    pub idle_timeout_seconds: u64,
    pub changes: Vec<AttributeChange>,
    /// The idle timeout when `[load_balancer] idle_timeout` is absent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_managed: Vec<NotManaged>,
}

/// Everything `alb-update` would change, plus what it noticed.
#[derive(Debug, Clone, Serialize)]
pub struct AlbPlan {
    pub target_group: TargetGroupInfo,
    pub target_group_changes: Vec<AttributeChange>,
    /// Attributes deploy.toml leaves out: listed with their values, never changed.
    pub target_group_not_managed: Vec<NotManaged>,
    pub load_balancers: Vec<LoadBalancerPlan>,
    pub warnings: Vec<String>,
    /// The service's second target group (blue/green, canary, linear): managed with the same
    /// attributes (`None`: the service has no alternate target group, or no `[ecs]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate: Option<alternate::AlternatePlan>,
    /// The production and test listener rules the service's advancedConfiguration names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listener_rules: Vec<alternate::ListenerRuleView>,
    /// Why the tool will not change these resources (an NLB, a TCP or lambda target group):
    /// a plan with refusals is never applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

impl AlbPlan {
    pub fn change_count(&self) -> usize {
        self.target_group_changes.len()
            + self.alternate.as_ref().map_or(0, |a| a.changes.len())
            + self
                .load_balancers
                .iter()
                .map(|l| l.changes.len())
                .sum::<usize>()
    }
    pub fn in_sync(&self) -> bool {
        self.change_count() == 0
    }

    /// A failure (exit 1) naming every refusal; nothing has been changed when it is returned.
    pub fn ensure_not_refused(&self) -> Result<(), Failure> {
        if self.refused.is_empty() {
            return Ok(());
        }
        Err(Failure::failed(format!(
            "refused, nothing was changed: {}",
            self.refused.join("; ")
        ))
        .hint("check [target_group] and [load_balancer] in deploy.toml: they must name the ALB and the HTTP(S) target group of the ECS service"))
    }

    /// terraform-style rendering: `~` changes, `+` additions, a summary line.
    pub fn render(&self, config: &std::path::Path) -> String {
        let mut out = String::new();
        let tg = &self.target_group;
        let _ = writeln!(out, "Target group {}", style(&tg.name).bold());
        let _ = writeln!(out, "  {}", style(&tg.arn).dim());
        render_changes(&mut out, &self.target_group_changes);
        render_not_managed(&mut out, &self.target_group_not_managed);
        if let Some(alt) = &self.alternate {
            let _ = writeln!(
                out,
                "Alternate target group {} (the service's other target group: traffic moves here on a deployment)",
                style(&alt.target_group.name).bold()
            );
            let _ = writeln!(out, "  {}", style(&alt.target_group.arn).dim());
            render_changes(&mut out, &alt.changes);
        }
        for r in &self.listener_rules {
            let targets: Vec<String> = r
                .forwards
                .iter()
                .map(|f| match f.weight {
                    Some(w) => format!("{} (weight {w})", f.target_group_arn),
                    None => f.target_group_arn.clone(),
                })
                .collect();
            let sticky = match (r.stickiness, r.stickiness_seconds) {
                (Some(true), Some(s)) => format!("target group stickiness {s}s"),
                (Some(true), None) => "target group stickiness on".to_string(),
                _ => "target group stickiness off".to_string(),
            };
            let _ = writeln!(
                out,
                "Listener rule ({}) {}
    {} -> {}; {sticky}",
                r.role,
                style(&r.arn).dim(),
                r.actions.join(", "),
                if targets.is_empty() {
                    "(no target group)".to_string()
                } else {
                    targets.join(", ")
                }
            );
        }
        for lb in &self.load_balancers {
            let _ = writeln!(
                out,
                "Load balancer {} (idle timeout {}s)",
                style(&lb.name).bold(),
                lb.idle_timeout_seconds
            );
            render_changes(&mut out, &lb.changes);
            render_not_managed(&mut out, &lb.not_managed);
        }
        for r in &self.refused {
            let _ = writeln!(out, "{} {r}", style("refused:").red().bold());
        }
        let n = self.change_count();
        if n == 0 {
            let _ = writeln!(
                out,
                "\nNo changes. The target group and load balancer match {}.",
                config.display()
            );
        } else {
            let _ = writeln!(
                out,
                "\nPlan: {n} attribute{} to change.",
                if n == 1 { "" } else { "s" }
            );
        }
        out
    }
}

/// Attributes left as they are, listed once with their values (dimmed: not part of the plan).
fn render_not_managed(out: &mut String, keys: &[NotManaged]) {
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "    {}",
        style("not managed (left as they are):").dim()
    );
    for k in keys {
        let _ = writeln!(out, "      {}", style(k).dim());
    }
}

fn render_changes(out: &mut String, changes: &[AttributeChange]) {
    if changes.is_empty() {
        let _ = writeln!(out, "    {}", style("(in sync)").dim());
    }
    for c in changes {
        let line = format!("    {c}");
        let styled = if c.marker() == '+' {
            style(line).green()
        } else {
            style(line).yellow()
        };
        let _ = writeln!(out, "{styled}");
    }
}

/// Finds the target group by name or ARN. Not found is a clear failure (exit 1).
pub async fn describe_target_group(aws: &Aws, id: &ResourceRef) -> anyhow::Result<TargetGroupInfo> {
    let req = aws.elb.describe_target_groups();
    let req = match id {
        ResourceRef::Name(n) => req.names(n),
        ResourceRef::Arn(a) => req.target_group_arns(a),
    };
    let out = match req.send().await {
        Ok(o) => o,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_target_group_not_found_exception()) =>
        {
            return Err(not_found_tg(aws, id));
        }
        Err(e) => return Err(sdk_error("DescribeTargetGroups", e)),
    };
    let Some(tg) = out.target_groups().first() else {
        return Err(not_found_tg(aws, id));
    };
    let arn = tg.target_group_arn().unwrap_or_default().to_string();
    let attrs = read_with_retry("DescribeTargetGroupAttributes", || {
        aws.elb
            .describe_target_group_attributes()
            .target_group_arn(&arn)
            .customize()
            .interceptor(CompleteAnswer("DescribeTargetGroupAttributesResponse"))
            .send()
    })
    .await?;
    Ok(TargetGroupInfo {
        name: tg.target_group_name().unwrap_or_default().to_string(),
        protocol: tg.protocol().map(|p| p.as_str().to_string()),
        target_type: tg.target_type().map(|t| t.as_str().to_string()),
        load_balancer_arns: tg.load_balancer_arns().to_vec(),
        health_check_path: tg.health_check_path().map(str::to_string),
        attributes: attributes_map(attrs.attributes().iter().map(|a| (a.key(), a.value()))),
        arn,
    })
}

fn not_found_tg(aws: &Aws, id: &ResourceRef) -> anyhow::Error {
    Failure::failed(format!(
        "target group {id} not found in region {}",
        aws.region
    ))
    .hint("check [target_group] name/arn in deploy.toml and the region (--region, [aws] region)")
    .into()
}

fn attributes_map<'a>(
    it: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<String, String> {
    it.filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string())))
        .collect()
}

/// A load balancer as AWS reports it.
pub struct LoadBalancerInfo {
    pub arn: String,
    pub name: String,
    pub lb_type: String,
    pub dns_name: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

pub async fn describe_load_balancers(
    aws: &Aws,
    ids: &[ResourceRef],
) -> anyhow::Result<Vec<LoadBalancerInfo>> {
    let mut out = Vec::new();
    for id in ids {
        let req = aws.elb.describe_load_balancers();
        let req = match id {
            ResourceRef::Name(n) => req.names(n),
            ResourceRef::Arn(a) => req.load_balancer_arns(a),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_load_balancer_not_found_exception()) =>
            {
                return Err(Failure::failed(format!(
                    "load balancer {id} not found in region {}",
                    aws.region
                ))
                .hint("check [load_balancer] name/arn in deploy.toml")
                .into())
            }
            Err(e) => return Err(sdk_error("DescribeLoadBalancers", e)),
        };
        for lb in resp.load_balancers() {
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            let attrs = read_with_retry("DescribeLoadBalancerAttributes", || {
                aws.elb
                    .describe_load_balancer_attributes()
                    .load_balancer_arn(&arn)
                    .customize()
                    .interceptor(CompleteAnswer("DescribeLoadBalancerAttributesResponse"))
                    .send()
            })
            .await?;
            out.push(LoadBalancerInfo {
                name: lb.load_balancer_name().unwrap_or_default().to_string(),
                dns_name: lb.dns_name().map(str::to_string),
                lb_type: lb
                    .r#type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "application".into()),
                attributes: attributes_map(attrs.attributes().iter().map(|a| (a.key(), a.value()))),
                arn,
            });
        }
    }
    Ok(out)
}

/// Reads AWS and computes the plan. Makes only read calls; independent reads run
/// concurrently (target group and load balancer), so the plan costs two round trips.
pub async fn plan(aws: &Aws, cfg: &Config) -> anyhow::Result<AlbPlan> {
    let configured = cfg.load_balancer.as_ref();
    let (tg, configured_lbs) =
        tokio::join!(describe_target_group(aws, &cfg.target_group.id), async {
            match configured {
                Some(lb) => describe_load_balancers(aws, std::slice::from_ref(&lb.id))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        });
    let tg = tg?;
    // Without [load_balancer], the load balancers that matter are the ones the target group is attached to.
    let lbs = match configured_lbs? {
        Some(lbs) => lbs,
        None => {
            let ids: Vec<ResourceRef> = tg
                .load_balancer_arns
                .iter()
                .cloned()
                .map(ResourceRef::Arn)
                .collect();
            describe_load_balancers(aws, &ids).await?
        }
    };
    let target_group_changes = plan::plan_target_group(&tg.attributes, &cfg.target_group);
    let target_group_not_managed =
        plan::not_managed_target_group(&tg.attributes, &cfg.target_group, &target_group_changes);
    let mut warnings = Vec::new();
    let mut refused: Vec<String> = refusal_of_target_group(&tg).into_iter().collect();
    let (alternate, listener_rules) = plan_pair(aws, cfg, &tg, &mut warnings, &mut refused).await?;
    if tg.load_balancer_arns.is_empty() {
        warnings.push(format!(
            "target group {} is attached to no load balancer: its stickiness settings take effect only once a listener rule forwards to it",
            tg.name
        ));
    }
    let mut load_balancers = Vec::new();
    for lb in lbs {
        if configured.is_some()
            && !tg.load_balancer_arns.contains(&lb.arn)
            && !tg.load_balancer_arns.is_empty()
        {
            warnings.push(format!(
                "target group {} is not attached to load balancer {} (it is attached to {})",
                tg.name,
                lb.name,
                tg.load_balancer_arns.join(", ")
            ));
        }
        refused.extend(refusal_of_load_balancer(&lb));
        load_balancers.push(plan_load_balancer(lb, configured, cfg, &mut warnings));
    }
    Ok(AlbPlan {
        target_group: tg,
        target_group_changes,
        target_group_not_managed,
        load_balancers,
        warnings,
        refused,
        alternate,
        listener_rules,
    })
}

/// The service's other target group (same attributes as `[target_group]`) and its listener
/// rules, judged: refusals for rules ECS cannot shift, a warning for a weighted split without
/// stickiness.
async fn plan_pair(
    aws: &Aws,
    cfg: &Config,
    tg: &TargetGroupInfo,
    warnings: &mut Vec<String>,
    refused: &mut Vec<String>,
) -> anyhow::Result<(
    Option<alternate::AlternatePlan>,
    Vec<alternate::ListenerRuleView>,
)> {
    let Some(adv) = alternate::read_advanced(aws, cfg, &tg.arn).await? else {
        return Ok((None, Vec::new()));
    };
    let other_id = ResourceRef::Arn(adv.other.clone());
    let (other, rules) = tokio::join!(
        describe_target_group(aws, &other_id),
        alternate::read_rules(aws, &adv)
    );
    let (other, rules) = (other?, rules?);
    refused.extend(refusal_of_target_group(&other));
    for r in &rules {
        refused.extend(alternate::rule_refusal(r, [&tg.arn, &other.arn]));
        warnings.extend(alternate::stickiness_warning(r, adv.strategy));
    }
    let changes = plan::plan_target_group(&other.attributes, &cfg.target_group);
    Ok((
        Some(alternate::AlternatePlan {
            target_group: other,
            changes,
        }),
        rules,
    ))
}

fn plan_load_balancer(
    lb: LoadBalancerInfo,
    configured: Option<&crate::config::LoadBalancerSection>,
    cfg: &Config,
    warnings: &mut Vec<String>,
) -> LoadBalancerPlan {
    let idle_current = lb
        .attributes
        .get(plan::IDLE_TIMEOUT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(plan::DEFAULT_IDLE_TIMEOUT_SECS);
    let desired_idle = configured.and_then(|c| c.idle_timeout);
    let changes: Vec<AttributeChange> = plan::plan_idle_timeout(&lb.attributes, desired_idle)
        .into_iter()
        .collect();
    let not_managed = match desired_idle {
        Some(_) => Vec::new(),
        None => vec![NotManaged {
            config_key: "load_balancer.idle_timeout",
            attribute: plan::IDLE_TIMEOUT,
            current: idle_current.to_string(),
        }],
    };
    let effective_idle = desired_idle.map(|d| d.as_secs()).unwrap_or(idle_current);
    if let Some(gw) = &cfg.gateway {
        if let Some(w) = plan::idle_timeout_warning(Duration::from_secs(effective_idle), gw) {
            warnings.push(format!("{}: {w}", lb.name));
        }
    }
    LoadBalancerPlan {
        arn: lb.arn,
        name: lb.name,
        lb_type: lb.lb_type,
        idle_timeout_seconds: idle_current,
        changes,
        not_managed,
    }
}

/// Cookie stickiness, the routing algorithm and slow start exist only for HTTP/HTTPS target
/// groups with instance or ip targets (behind an Application Load Balancer); AWS rejects them
/// elsewhere, so such a group is refused before any call that changes it.
pub fn refusal_of_target_group(tg: &TargetGroupInfo) -> Option<String> {
    if tg.target_type.as_deref() == Some("lambda") {
        return Some(format!(
            "target group {} has lambda targets: stickiness, the routing algorithm, slow start and the deregistration delay do not apply to them; bosar-deploy manages target groups of ECS tasks (target type ip or instance)",
            tg.name
        ));
    }
    match tg.protocol.as_deref() {
        Some("HTTP" | "HTTPS") | None => None,
        Some(other) => Some(format!(
            "target group {} uses protocol {other}: cookie stickiness, the routing algorithm and slow start exist only for HTTP/HTTPS target groups behind an Application Load Balancer; manage a Network Load Balancer's target group (source_ip stickiness) with your infrastructure code instead",
            tg.name
        )),
    }
}

/// The idle timeout this tool manages is an Application Load Balancer attribute.
fn refusal_of_load_balancer(lb: &LoadBalancerInfo) -> Option<String> {
    (lb.lb_type != "application").then(|| {
        format!(
            "load balancer {} is a {} load balancer: bosar-deploy manages Application Load Balancers (idle_timeout.timeout_seconds and cookie stickiness are ALB features); point [load_balancer] at the ALB in front of the gateway",
            lb.name, lb.lb_type
        )
    })
}

/// `alb-update`'s payload in the JSON envelope.
#[derive(Serialize)]
struct AlbUpdateReport<'a> {
    dry_run: bool,
    /// "no_changes", "changes_pending" (dry run), "applied", "refused" or "failed".
    result: &'static str,
    change_count: usize,
    /// After an apply that failed: each change as applied, not applied or unknown.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    change_results: &'a [ChangeResult],
    #[serde(flatten)]
    plan: &'a AlbPlan,
}

/// The `alb-update` verb.
pub async fn run(args: &AlbUpdateArgs, cfg: &Config, aws: &Aws, ui: &Ui) -> anyhow::Result<Code> {
    ui.line(format!(
        "Reading target group {} in {}",
        cfg.target_group.id, aws.region
    ));
    let plan = plan(aws, cfg).await?;
    for w in &plan.warnings {
        ui.warn(w);
    }
    let report = |result, change_results| AlbUpdateReport {
        dry_run: args.plan.dry_run,
        result,
        change_count: plan.change_count(),
        change_results,
        plan: &plan,
    };
    if !ui.json() {
        // Attribute values are AWS's text: `Ui::out` shows them escaped.
        ui.out(plan.render(&cfg.path).trim_end());
    }
    if !plan.refused.is_empty() {
        let err: anyhow::Error = plan.ensure_not_refused().unwrap_err().into();
        ui.emit(
            "alb_update",
            &report("refused", &[]),
            Code::Failed,
            Some(&err),
        );
        return Err(err);
    }
    let result = if plan.in_sync() {
        "no_changes"
    } else if args.plan.dry_run {
        "changes_pending"
    } else {
        ui.line(format!("Applying {} change(s)", plan.change_count()));
        let applied = apply_reporting(aws, &plan).await;
        if let Some(err) = applied.error {
            ui.out("What AWS holds after the failure (read back):");
            for c in &applied.changes {
                ui.out(format!("  {c}"));
            }
            ui.emit(
                "alb_update",
                &report("failed", &applied.changes),
                crate::exit::code_of(&err),
                Some(&err),
            );
            return Err(err);
        }
        ui.out(format!(
            "Applied {} change(s); read back and confirmed.",
            plan.change_count()
        ));
        "applied"
    };
    let code = if args.plan.dry_run && args.plan.detailed_exitcode && !plan.in_sync() {
        Code::ChangesPending
    } else {
        Code::Success
    };
    ui.emit("alb_update", &report(result, &[]), code, None);
    Ok(code)
}
