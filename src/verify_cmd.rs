//! `bosar-deploy verify`: the verb's dispatch. It reads `[gateway]` into the settings, learns
//! how many healthy targets serve the gateway ([`expected`]), then runs either the checks on
//! every target ([`gateway::verify::run`]) or, with `--connections N`, the load probe
//! ([`gateway::probe::run`]), drawn with `--html` (`crate::picture_of`).
//!
//! The choice lives here, above both, so that `gateway::verify` and `gateway::probe` import
//! only the gateway base and never each other; so does the AWS lookup of the healthy targets,
//! which the gateway code never makes. `full`'s verify step uses [`from_service_target_groups`] too.

use crate::aws::{self, sdk_error, Aws};
use crate::cli::{GlobalArgs, VerifyArgs};
use crate::config::{Config, ResourceRef};
use crate::exit::Code;
use crate::gateway::verify::Expected;
use crate::gateway::{self, VerifySettings};
use crate::outside::Outside;
use crate::ui::Ui;

/// The CLI verb: settings from `[gateway]` (and `--url`), then the checks or the probe.
pub async fn run(args: &VerifyArgs, cfg: &Config, g: &GlobalArgs, ui: &Ui) -> anyhow::Result<Code> {
    if args.on_ecs {
        // The shards read the token in their tasks; this process needs none.
        return crate::probe_ecs::run(args, cfg, g, ui).await;
    }
    let gw = cfg.gateway_or_url("verify", args.url.as_deref())?;
    let settings =
        VerifySettings::from_config(&gw, args.url.as_deref(), args.allow_insecure_token)?;
    if args.connections.is_some() {
        // An unwritable --html is a usage error before any session opens.
        if let Some(path) = &args.html {
            crate::picture::check_path(path)?;
        }
        let (code, report) = gateway::probe::run(args, &settings, ui).await?;
        if let Some(path) = &args.html {
            crate::picture_of::publish(ui, path, &crate::picture_of::of_probe(&report));
        }
        Ok(code)
    } else {
        let expected = expected(args, cfg, g, ui).await;
        gateway::verify::run(args, &settings, &gw, expected, ui).await
    }
}

/// How many healthy targets to reach: `--targets N`; else, when AWS is configured, the target
/// group's healthy targets; else `[gateway] targets`; else unknown.
async fn expected(args: &VerifyArgs, cfg: &Config, g: &GlobalArgs, ui: &Ui) -> Expected {
    if let Some(n) = args.targets {
        return Expected::given(n, "--targets");
    }
    if aws_configured(cfg, g) {
        return match aws::connect(&cfg.aws, g, ui).await {
            Ok(aws) => from_service_target_groups(&aws, cfg).await,
            Err(e) => Expected {
                source: format!("target group {}", cfg.target_group.id),
                error: Some(format!(
                    "{} (pass --targets N to verify without AWS)",
                    crate::exit::message_of(&e)
                )),
                ..Expected::default()
            },
        };
    }
    match cfg.gateway.as_ref().and_then(|gw| gw.targets) {
        Some(n) => Expected::given(n, "[gateway] targets"),
        None => {
            Expected::unknown("no AWS region configured, no --targets and no [gateway] targets")
        }
    }
}

/// AWS counts as configured when a region or profile is given: `--region`/`--profile`,
/// `[aws]`, or `AWS_REGION`/`AWS_DEFAULT_REGION`/`AWS_PROFILE` in the environment.
fn aws_configured(cfg: &Config, g: &GlobalArgs) -> bool {
    let env = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    g.region.is_some()
        || g.profile.is_some()
        || cfg.aws.region.is_some()
        || cfg.aws.profile.is_some()
        || ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"]
            .iter()
            .any(|k| env(k))
}

/// The healthy targets behind production: those of `[target_group]`, and with a blue/green,
/// canary or linear service also those of its alternate target group
/// (`loadBalancers[].advancedConfiguration.alternateTargetGroupArn`): ECS swaps the two
/// groups' roles every deployment, so after an even number of them production forwards to
/// the alternate one.
pub async fn from_service_target_groups(aws: &Aws, cfg: &Config) -> Expected {
    let mut e = from_target_group(aws, &cfg.target_group.id).await;
    let Some(alt) = alternate_target_group(aws, cfg).await else {
        return e;
    };
    let a = from_target_group(aws, &ResourceRef::Arn(alt)).await;
    if e.error.is_some() || a.error.is_some() {
        e.error = e.error.or(a.error);
        return e;
    }
    e.count = Some(e.count.unwrap_or_default() + a.count.unwrap_or_default());
    e.source = format!("{} and its alternate {}", e.source, a.source);
    e.ids.extend(a.ids);
    e
}

/// The service's alternate target group, when it has one; `None` when the service cannot be
/// read (the configured target group alone is then counted, as before).
async fn alternate_target_group(aws: &Aws, cfg: &Config) -> Option<String> {
    let ecs = cfg.ecs.as_ref()?;
    let out = aws
        .ecs
        .describe_services()
        .cluster(&ecs.cluster)
        .services(&ecs.service)
        .send()
        .await
        .ok()?;
    out.services()
        .first()?
        .load_balancers()
        .iter()
        .find_map(|lb| lb.advanced_configuration()?.alternate_target_group_arn())
        .map(str::to_string)
}

/// The target group's healthy targets (DescribeTargetHealth); an error is kept in the
/// result, so the `targets` check fails with it.
pub async fn from_target_group(aws: &Aws, tg: &ResourceRef) -> Expected {
    match healthy_targets(aws, tg).await {
        Ok((name, ids)) => Expected {
            count: Some(ids.len()),
            source: format!("target group {name}"),
            ids,
            error: None,
        },
        Err(e) => Expected {
            source: format!("target group {tg}"),
            error: Some(crate::exit::message_of(&e)),
            ..Expected::default()
        },
    }
}

/// The name of the target group (escaped, bounded) and its healthy targets, `id:port` as ELB
/// lists them (outside text).
async fn healthy_targets(aws: &Aws, tg: &ResourceRef) -> anyhow::Result<(String, Vec<Outside>)> {
    let info = crate::alb::describe_target_group(aws, tg).await?;
    let resp = aws
        .elb
        .describe_target_health()
        .target_group_arn(&info.arn)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTargetHealth", e))?;
    let ids = resp
        .target_health_descriptions()
        .iter()
        .filter(|d| {
            d.target_health()
                .and_then(|h| h.state())
                .is_some_and(|s| s.as_str() == "healthy")
        })
        .map(|d| {
            let id = d.target().and_then(|t| t.id()).unwrap_or("?");
            match d.target().and_then(|t| t.port()) {
                Some(p) => Outside::new(&format!("{id}:{p}")),
                None => Outside::new(id),
            }
        })
        .collect();
    Ok((Outside::new(&info.name).shown(100), ids))
}
