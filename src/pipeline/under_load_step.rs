//! `full --under-load`: the deploy step with sessions held around the rollout, then the
//! `under-load` step beside it (the rollout's step first, the real traffic, then the load's).

use std::time::{Duration, Instant};

use super::preflight::Preflight;
use super::{rollout_step, Run};
use crate::alb;
use crate::aws::Aws;
use crate::cli::FullArgs;
use crate::config::{Config, EcsSection, ResourceRef};
use crate::ecs::deploy::{self as ecs_deploy, RolloutOptions};
use crate::exit::Code;
use crate::report::{CheckStatus, Step};
use crate::traffic::TrafficOptions;
use crate::under_load::{self, LoadSettings, UnderLoad};

/// `--under-load`, checked before anything is called (usage errors): never with a dry run.
pub(super) fn load_settings(args: &FullArgs, cfg: &Config) -> anyhow::Result<Option<LoadSettings>> {
    if args.plan.dry_run {
        let given = args
            .load
            .under_load
            .map(|_| "--under-load")
            .or(args.load.stray());
        if let Some(flag) = given {
            return Err(crate::exit::Failure::usage(format!(
                "{flag} does not go with a dry run: nothing is rolled out to hold sessions through"
            ))
            .into());
        }
        return Ok(None);
    }
    let timeout = args
        .rollout
        .timeout
        .or(cfg.ecs.as_ref().map(|e| e.timeout))
        .unwrap_or(crate::config::DEFAULT_TIMEOUT);
    under_load::settings(
        &args.load,
        cfg,
        args.url.as_deref(),
        args.allow_insecure_token,
        timeout,
        "full",
    )
}

/// The rollout under load: the sessions open, the rollout runs beside them, they settle.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    run: &mut Run<'_>,
    aws: &Aws,
    ecs: &EcsSection,
    pre: Preflight,
    opts: &RolloutOptions,
    load: &LoadSettings,
    t: Instant,
    tg: &ResourceRef,
    metrics: &TrafficOptions,
) -> Result<(), Code> {
    let from = crate::traffic::unix_now();
    let settle = under_load::settle_for(load, deregistration_after(&pre.alb), run.ui);
    let plan = pre.deploy.clone();
    // The deploy step times the rollout alone (not the opening and the settle around it).
    let rollout = async {
        let t = Instant::now();
        let (result, err) = ecs_deploy::execute(aws, ecs, pre.deploy, opts, run.ui).await;
        (result, err, t.elapsed())
    };
    let (done, under) =
        under_load::around(aws, load, settle, run.ui, rollout, |(r, e, _)| {
            match (&r.outcome, e) {
                (Some(o), None) if o.succeeded() => under_load::Rollout::Succeeded,
                _ => under_load::Rollout::Failed,
            }
        })
        .await;
    let rolled = match done {
        Some((result, err, took)) => {
            let t = Instant::now().checked_sub(took).unwrap_or(t);
            let real =
                crate::traffic::after_deploy(aws, tg, run.ui, metrics, from, &result, err.as_ref());
            let real = real.await;
            super::keep_picture(run, aws, ecs, from, &result, Some(&under), real.as_ref()).await;
            let rolled = rollout_step(run, t, result, err);
            super::traffic_step(run, real, rolled)
        }
        None => not_rolled(run, &under, plan, t),
    };
    if !run.ui.json() {
        if let Some(d) = under.probe.as_ref().and_then(|p| p.disruption.as_ref()) {
            let table = crate::gateway::probe::disruption::render_table(d);
            if !table.is_empty() {
                run.ui.out(table.trim_end());
            }
        }
    }
    let failed = under.code();
    run.push(under.step());
    match rolled {
        Err(code) => Err(code),
        Ok(()) if failed != Code::Success => Err(failed),
        Ok(()) => Ok(()),
    }
}

/// The deploy step when the rollout has no result: interrupted (it goes on in AWS), or never
/// started because no session opened.
fn not_rolled(
    run: &mut Run<'_>,
    under: &UnderLoad,
    plan: ecs_deploy::DeployPlan,
    t: Instant,
) -> Result<(), Code> {
    let (msg, code) = if under.interrupted {
        (
            match run.ui.resume_hint() {
                Some(hint) if under.rollout_started => format!(
                    "interrupted: stopped watching; the rollout goes on in AWS; resume watching with: {hint}"
                ),
                _ => "interrupted before the rollout started; nothing was deployed".into(),
            },
            Code::Interrupted,
        )
    } else {
        (format!("not started: {}", under.message), Code::Failed)
    };
    run.push(
        Step::new("deploy", CheckStatus::Fail, t.elapsed(), msg)
            .with_detail(ecs_deploy::DeployResult::new(plan)),
    );
    Err(code)
}

/// The deregistration delay the target group has once alb-update ran: the planned value when
/// it changes, else the one read.
fn deregistration_after(alb: &alb::AlbPlan) -> Option<Duration> {
    let planned = alb
        .target_group_changes
        .iter()
        .find(|c| c.key == under_load::DEREGISTRATION_DELAY)
        .and_then(|c| c.desired.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    planned.or_else(|| under_load::deregistration_delay(&alb.target_group.attributes))
}
