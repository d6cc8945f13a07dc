//! `bosar-deploy deploy`: the verb's dispatch. Config rules and `--under-load`'s flags are
//! checked before any AWS call (usage errors, exit 2). Without `--under-load` the rollout is
//! [`ecs::deploy::run`]; with it, the same steps ([`ecs::deploy::prepare`], `execute`,
//! `finish`) with the rollout run inside [`under_load::around`] and the disruption reported
//! beside it (text, JSON key `under_load`, JUnit step `under-load`). After a watched rollout,
//! the load balancer's CloudWatch metrics around it (`crate::traffic`; key `real_traffic`,
//! step `real-traffic`).
//!
//! A file of its own, like `verify_cmd`, so that `ecs` never imports the gateway and the probe
//! never imports ECS: the two meet only here and in the pipeline.

use crate::cli::{DeployArgs, GlobalArgs};
use crate::config::Config;
use crate::ecs::deploy::{self, Beside, DeployResult, Prepared, RolloutAction};
use crate::exit::{Code, Failure};
use crate::report::{CheckStatus, Step};
use crate::traffic::{self, RealTraffic, TrafficOptions};
use crate::ui::Ui;
use crate::under_load::{self, LoadSettings, Rollout, UnderLoad};
use crate::{alb, aws};

/// The CLI verb.
pub async fn run(args: &DeployArgs, cfg: &Config, g: &GlobalArgs, ui: &Ui) -> anyhow::Result<Code> {
    // Config-only rules first: a usage error before any AWS call.
    let section = cfg.ecs("deploy")?;
    cfg.check_environment()?;
    if let Some(path) = &args.html {
        crate::picture::check_path(path)?;
    }
    let timeout = args.rollout.timeout.unwrap_or(section.timeout);
    let load = under_load::settings(
        &args.load,
        cfg,
        None,
        args.allow_insecure_token,
        timeout,
        "deploy",
    )?;
    if load.is_some() && (args.plan.dry_run || args.no_wait) {
        let flag = if args.no_wait {
            "--no-wait"
        } else {
            "--dry-run"
        };
        return Err(
            Failure::usage(format!("--under-load does not go with {flag}"))
                .hint(
                    "--under-load holds sessions through a rollout it watches; drop one of the two",
                )
                .into(),
        );
    }
    // The gate's judge (with `[ecs.deployment] gate`): a missing token is a usage error now.
    let judge = if args.plan.dry_run {
        None
    } else {
        crate::gate_judge::for_config(cfg, "deploy", None, args.allow_insecure_token)?
    };
    // Under load, production judgements also weigh the held sessions' thresholds.
    let judge = match (judge, &load) {
        (Some(j), Some(l)) => Some(l.gate(j)),
        (j, _) => j,
    };
    let aws = aws::connect(&cfg.aws, g, ui).await?;
    // Plan's target-group checks, so deploy never goes ahead where `plan` fails.
    crate::pipeline::preflight::deploy_target_group(cfg, &aws).await?;
    let traffic = TrafficOptions::from_flags(&args.metrics);
    match load {
        None => plain(args, cfg, &aws, ui, &traffic, judge).await,
        Some(load) => under_load(args, cfg, &aws, ui, &load, &traffic, judge).await,
    }
}

/// `deploy` without `--under-load`: the rollout, then the real traffic around it.
async fn plain(
    args: &DeployArgs,
    cfg: &Config,
    aws: &aws::Aws,
    ui: &Ui,
    traffic: &TrafficOptions,
    judge: Option<crate::ecs::native::gate::GateJudge>,
) -> anyhow::Result<Code> {
    let ready = match deploy::prepare(args, cfg, aws, ui, judge).await? {
        Prepared::Done(code) => return Ok(code),
        Prepared::Ready(r) => r,
    };
    let from = traffic::unix_now();
    let (mut result, err) = deploy::execute(aws, ready.ecs, ready.plan, &ready.opts, ui).await;
    result.preflight = ready.preflight;
    let real = traffic::after_deploy(
        aws,
        &cfg.target_group.id,
        ui,
        traffic,
        from,
        &result,
        err.as_ref(),
    )
    .await;
    let beside = real.iter().map(traffic_beside).collect();
    let picture = match &args.html {
        Some(_) => Some(timeline(aws, cfg, from, &result, None, real.as_ref()).await),
        None => None,
    };
    let code = deploy::finish(
        args,
        cfg,
        ui,
        &ready.opts,
        ready.started,
        result,
        err,
        beside,
    );
    print_traffic(ui, real.as_ref());
    publish_picture(args, ui, picture.as_ref());
    code
}

/// The run's timeline for `--html`, before the result goes to the report.
async fn timeline(
    aws: &aws::Aws,
    cfg: &Config,
    from: i64,
    result: &DeployResult,
    under: Option<&UnderLoad>,
    real: Option<&RealTraffic>,
) -> crate::picture::Timeline {
    let title = format!("bosar-deploy deploy {}", result.plan.service);
    match cfg.ecs.as_ref() {
        Some(ecs) => {
            crate::picture_of::deploy_timeline(aws, ecs, title, from, result, under, real).await
        }
        None => crate::picture::Timeline::default(),
    }
}

/// Writes the page and the summary's chart last (a failure is a warning; the code stands).
fn publish_picture(args: &DeployArgs, ui: &Ui, picture: Option<&crate::picture::Timeline>) {
    if let (Some(path), Some(t)) = (&args.html, picture) {
        crate::picture_of::publish(ui, path, t);
    }
}

/// The real traffic as what ran beside the rollout (key `real_traffic`, step `real-traffic`).
fn traffic_beside(r: &RealTraffic) -> Beside {
    Beside {
        key: traffic::KEY,
        json: r.json(),
        step: r.step(),
        code: r.code(),
        error: r.error(),
    }
}

fn print_traffic(ui: &Ui, real: Option<&RealTraffic>) {
    if let (Some(r), false) = (real, ui.json()) {
        ui.out(r.text().trim_end());
    }
}

/// `deploy --under-load N`.
async fn under_load(
    args: &DeployArgs,
    cfg: &Config,
    aws: &aws::Aws,
    ui: &Ui,
    load: &LoadSettings,
    traffic: &TrafficOptions,
    judge: Option<crate::ecs::native::gate::GateJudge>,
) -> anyhow::Result<Code> {
    let ready = match deploy::prepare(args, cfg, aws, ui, judge).await? {
        Prepared::Done(code) => return Ok(code),
        Prepared::Ready(r) => r,
    };
    let n = load.probe.connections;
    if ready.plan.refused.is_some() || ready.plan.action == RolloutAction::None {
        let (result, err) = deploy::execute(aws, ready.ecs, ready.plan, &ready.opts, ui).await;
        let why = "nothing was deployed, so no load was held";
        let step = Step::skipped("under-load", why);
        let beside = Beside {
            key: "under_load",
            json: serde_json::json!({ "connections": n, "status": CheckStatus::Skip, "message": why }),
            step,
            code: Code::Success,
            error: None,
        };
        return deploy::finish(
            args,
            cfg,
            ui,
            &ready.opts,
            ready.started,
            result,
            err,
            vec![beside],
        );
    }
    let delay = alb::describe_target_group(aws, &cfg.target_group.id)
        .await
        .ok()
        .and_then(|tg| under_load::deregistration_delay(&tg.attributes));
    let settle = under_load::settle_for(load, delay, ui);
    let plan = ready.plan.clone();
    let from = traffic::unix_now();
    let rollout = deploy::execute(aws, ready.ecs, ready.plan, &ready.opts, ui);
    let (done, under) = under_load::around(aws, load, settle, ui, rollout, outcome_of).await;
    let (result, err) = match done {
        Some(r) => r,
        None => (DeployResult::new(plan), Some(not_watched(&under, ui))),
    };
    let real = traffic::after_deploy(
        aws,
        &cfg.target_group.id,
        ui,
        traffic,
        from,
        &result,
        err.as_ref(),
    )
    .await;
    let picture = match &args.html {
        Some(_) => Some(timeline(aws, cfg, from, &result, Some(&under), real.as_ref()).await),
        None => None,
    };
    let beside = Beside {
        key: "under_load",
        json: under_load::json(&under),
        step: under.step(),
        code: under.code(),
        error: (under.code() != Code::Success)
            .then(|| format!("under load: {}", failed_checks(&under))),
    };
    let code = deploy::finish(
        args,
        cfg,
        ui,
        &ready.opts,
        ready.started,
        result,
        err,
        std::iter::once(beside)
            .chain(real.iter().map(traffic_beside))
            .collect(),
    );
    if !ui.json() {
        ui.out(under.text().trim_end());
    }
    print_traffic(ui, real.as_ref());
    publish_picture(args, ui, picture.as_ref());
    code
}

/// `disruption: 3 lost, more than --max-lost 0; …`: the checks of the load that failed, else
/// its headline.
fn failed_checks(under: &UnderLoad) -> String {
    let failed: Vec<String> = under
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    if failed.is_empty() {
        under.message.clone()
    } else {
        failed.join("; ")
    }
}

/// Whether the rollout succeeded (then the sessions settle) or not.
fn outcome_of((result, err): &(DeployResult, Option<anyhow::Error>)) -> Rollout {
    match (&result.outcome, err) {
        (Some(o), None) if o.succeeded() => Rollout::Succeeded,
        _ => Rollout::Failed,
    }
}

/// Why the rollout has no result: interrupted while watching (it goes on in AWS), or never
/// started because no session opened.
fn not_watched(under: &UnderLoad, ui: &Ui) -> anyhow::Error {
    if under.interrupted {
        let (msg, hint) = match ui.resume_hint() {
            Some(h) if under.rollout_started => (
                "interrupted: stopped watching; the rollout goes on in AWS",
                Some(format!("resume watching with: {h}")),
            ),
            _ => (
                "interrupted before the rollout started; nothing was deployed",
                None,
            ),
        };
        let mut f = Failure::new(Code::Interrupted, msg);
        f.hint = hint;
        return f.into();
    }
    Failure::failed(format!(
        "{}; nothing was deployed",
        under.error.as_deref().unwrap_or(&under.message)
    ))
    .hint("check [gateway] url and the token; `bosar-deploy verify` shows what the gateway answers")
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CheckStatus;

    #[test]
    fn real_traffic_beside_the_rollout_fails_the_run_only_for_a_threshold_crossed() {
        let mut r = RealTraffic::skipped("x");
        r.status = CheckStatus::Warn;
        let b = traffic_beside(&r);
        assert_eq!(
            (b.key, b.code, b.error),
            ("real_traffic", Code::Success, None)
        );
        assert_eq!(b.step.name, "real-traffic");
        r.status = CheckStatus::Fail;
        r.checks.push(crate::report::Check::new(
            "elb-5xx",
            CheckStatus::Fail,
            std::time::Duration::ZERO,
            "ELB 5XX: 14 in the window, more than --max-elb-5xx 10",
        ));
        let b = traffic_beside(&r);
        assert_eq!(b.code, Code::Failed);
        assert_eq!(
            b.error.as_deref(),
            Some("real traffic: ELB 5XX: 14 in the window, more than --max-elb-5xx 10")
        );
        assert_eq!(b.json["status"], "fail");
    }

    #[test]
    fn an_interrupt_before_the_rollout_changed_nothing() {
        let ui = Ui::silent();
        let under = UnderLoad {
            connections: 10,
            status: CheckStatus::Fail,
            message: "x".into(),
            settle_ms: 0,
            rollout_started: false,
            interrupted: true,
            duration_ms: 0,
            checks: vec![],
            probe: None,
            attribution: None,
            error: None,
        };
        let e = not_watched(&under, &ui);
        assert_eq!(crate::exit::code_of(&e), Code::Interrupted);
        assert!(e.to_string().contains("nothing was deployed"), "{e}");
        let under = UnderLoad {
            interrupted: false,
            error: Some("none of the 10 session(s) opened".into()),
            ..under
        };
        let e = not_watched(&under, &ui);
        assert_eq!(crate::exit::code_of(&e), Code::Failed);
        assert!(
            e.to_string()
                .starts_with("none of the 10 session(s) opened; nothing was deployed"),
            "{e}"
        );
    }
}
