//! The steps of `full` after preflight: alb-update, the rollout (with the real traffic around
//! it and the picture of the run), and verify with its stickiness-duration check. Each is a
//! function over the run's report; `mod.rs` sequences them.

use super::*;

pub(super) async fn alb_step(run: &mut Run<'_>, aws: &Aws, pre: &Preflight) -> Result<(), Code> {
    heading(run.ui, "alb-update");
    let t = Instant::now();
    let attr_changes = pre.alb.change_count();
    if let Err(e) = alb::apply(aws, &pre.alb).await {
        run.push(
            Step::new(
                "alb-update",
                CheckStatus::Fail,
                t.elapsed(),
                crate::exit::message_of(&e),
            )
            .with_detail(&pre.alb),
        );
        return Err(crate::exit::code_of(&e));
    }
    let msg = if attr_changes == 0 {
        "in sync; nothing changed".to_string()
    } else {
        format!("applied {attr_changes} change(s); read back and confirmed")
    };
    let applied: Vec<&AttributeChange> = pre
        .alb
        .target_group_changes
        .iter()
        .chain(pre.alb.load_balancers.iter().flat_map(|l| l.changes.iter()))
        .collect();
    run.push(
        Step::new("alb-update", CheckStatus::Pass, t.elapsed(), msg)
            .with_detail(serde_json::json!({ "applied": applied })),
    );
    Ok(())
}

pub(super) async fn deploy_step(
    run: &mut Run<'_>,
    aws: &Aws,
    cfg: &Config,
    pre: Preflight,
    opts: &RolloutOptions,
    load: Option<&LoadSettings>,
    metrics: &traffic::TrafficOptions,
) -> Result<(), Code> {
    heading(run.ui, "deploy");
    let t = Instant::now();
    let ecs = cfg.ecs("full").map_err(|_| Code::Usage)?;
    if pre.deploy.action == RolloutAction::None {
        // Only the deploymentConfiguration may change: ECS starts no deployment for it.
        let msg = match ecs_deploy::apply_configuration(aws, &pre.deploy, run.ui).await {
            Ok(false) => format!(
                "{}; the service was not touched",
                deploy_summary(&pre, &run.report.config)
            ),
            Ok(true) => "deploymentConfiguration updated; no deployment was started".to_string(),
            Err(e) => {
                let step = Step::new(
                    "deploy",
                    CheckStatus::Fail,
                    t.elapsed(),
                    crate::exit::message_of(&e),
                );
                run.push(step.with_detail(&pre.deploy));
                return Err(crate::exit::code_of(&e));
            }
        };
        run.push(Step::new("deploy", CheckStatus::Pass, t.elapsed(), msg).with_detail(&pre.deploy));
        if load.is_some() {
            run.push(Step::skipped(
                "under-load",
                "nothing was deployed, so no load was held",
            ));
        }
        return Ok(());
    }
    let Some(load) = load else {
        let from = traffic::unix_now();
        let (result, err) = ecs_deploy::execute(aws, ecs, pre.deploy, opts, run.ui).await;
        let tg = &cfg.target_group.id;
        let real = traffic::after_deploy(aws, tg, run.ui, metrics, from, &result, err.as_ref());
        let real = real.await;
        keep_picture(run, aws, ecs, from, &result, None, real.as_ref()).await;
        let rolled = rollout_step(run, t, result, err);
        return traffic_step(run, real, rolled);
    };
    let tg = &cfg.target_group.id;
    under_load_step::run(run, aws, ecs, pre, opts, load, t, tg, metrics).await
}

/// With `--html`: the run's timeline, kept for the end of the run (before the result goes
/// to the deploy step).
pub(super) async fn keep_picture(
    run: &mut Run<'_>,
    aws: &Aws,
    ecs: &crate::config::EcsSection,
    from: i64,
    result: &ecs_deploy::DeployResult,
    under: Option<&crate::under_load::UnderLoad>,
    real: Option<&traffic::RealTraffic>,
) {
    if run.html {
        let title = format!("bosar-deploy {} {}", run.report.command, ecs.service);
        let t = crate::picture_of::deploy_timeline(aws, ecs, title, from, result, under, real);
        run.report.picture = Some(t.await);
    }
}

/// The `real-traffic` step after the deploy step; a threshold crossed fails the run.
pub(super) fn traffic_step(
    run: &mut Run<'_>,
    real: Option<traffic::RealTraffic>,
    rolled: Result<(), Code>,
) -> Result<(), Code> {
    let Some(real) = real else { return rolled };
    if !run.ui.json() {
        run.ui.out(real.text().trim_end());
    }
    let code = real.code();
    run.push(real.step());
    match rolled {
        Ok(()) if code != Code::Success => Err(code),
        other => other,
    }
}

/// The `deploy` step from the rollout's result.
pub(super) fn rollout_step(
    run: &mut Run<'_>,
    t: Instant,
    result: ecs_deploy::DeployResult,
    err: Option<anyhow::Error>,
) -> Result<(), Code> {
    if let Some(e) = err {
        run.push(
            Step::new(
                "deploy",
                CheckStatus::Fail,
                t.elapsed(),
                crate::exit::message_of(&e),
            )
            .with_detail(&result),
        );
        return Err(crate::exit::code_of(&e));
    }
    let outcome = result.outcome.clone().expect("watched");
    if !outcome.succeeded() {
        crate::ecs::watch::print_outcome(run.ui, &outcome);
    }
    let mut message = outcome.message();
    if let Some(back) = &result.rollback {
        message.push_str(&format!(
            "; rollback to {}: {}",
            result.plan.current_revision,
            back.message()
        ));
    }
    let status = if outcome.succeeded() {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    let mut step = Step::new("deploy", status, t.elapsed(), message.clone());
    if let Some(n) = &result.native {
        // JUnit and the step summary show the stages, the gate and the way back.
        step = step.with_checks(crate::ecs::native::checks::checks(status, &message, n));
    }
    run.push(step.with_detail(&result));
    if outcome.succeeded() {
        Ok(())
    } else {
        Err(outcome.code())
    }
}

pub(super) async fn verify_step(
    run: &mut Run<'_>,
    aws: &Aws,
    cfg: &Config,
    settings: Option<VerifySettings>,
) -> Code {
    let Some(settings) = settings else {
        run.push(Step::skipped("verify", "skipped (--skip-verify)"));
        return Code::Success;
    };
    let url = settings.shown_url();
    heading(run.ui, &format!("verify {url}"));
    let t = Instant::now();
    // Every healthy target of the target group (and of its alternate with a blue/green, canary
    // or linear service), each reached through its stickiness cookie.
    let expected = crate::verify_cmd::from_service_target_groups(aws, cfg).await;
    let fleet = verify::verify_targets(&settings, expected, run.ui).await;
    let (mut checks, table, targets) = (fleet.checks.clone(), fleet.table(), fleet.summary());
    run.report.target_suites = fleet.target_steps();
    if run.ui.is_interrupted() {
        let msg = format!("interrupted while verifying {url}");
        run.push(
            Step::new("verify", CheckStatus::Fail, t.elapsed(), msg)
                .with_checks(checks)
                .with_detail(table),
        );
        return Code::Interrupted;
    }
    checks.push(stickiness_duration_check(aws, cfg).await);
    let status = report::worst(&checks);
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    let msg = if failed == 0 {
        format!("{} checks passed against {url}; {targets}", checks.len())
    } else {
        format!(
            "{failed} of {} checks failed against {url}; {targets}",
            checks.len()
        )
    };
    run.push(
        Step::new("verify", status, t.elapsed(), msg)
            .with_checks(checks)
            .with_detail(table),
    );
    if failed == 0 {
        Code::Success
    } else {
        Code::Failed
    }
}

/// After verify: the target group's stickiness duration, read back, against the config
/// (the AWSALB Expires is not evidence of it; the attribute is). Skipped when deploy.toml does
/// not manage it.
async fn stickiness_duration_check(aws: &Aws, cfg: &Config) -> Check {
    let t = Instant::now();
    let skip = |why: &str| Check::new("stickiness_duration", CheckStatus::Skip, t.elapsed(), why);
    let tg = &cfg.target_group;
    let key = match (&tg.stickiness, tg.cookie_duration) {
        (Some(Stickiness::Off), _) => return skip("stickiness is off in deploy.toml"),
        (None, _) | (_, None) => {
            return skip("not managed: deploy.toml names no stickiness cookie_duration")
        }
        (Some(Stickiness::AppCookie { .. }), Some(_)) => alb::plan::APP_COOKIE_DURATION,
        (Some(Stickiness::LbCookie), Some(_)) => alb::plan::LB_COOKIE_DURATION,
    };
    let want = tg.cookie_duration.unwrap_or_default().as_secs().to_string();
    match alb::describe_target_group(aws, &tg.id).await {
        Err(e) => Check::new(
            "stickiness_duration",
            CheckStatus::Fail,
            t.elapsed(),
            e.to_string(),
        ),
        Ok(info) => {
            let attrs: BTreeMap<String, String> = info.attributes;
            match attrs.get(key) {
                Some(v) if *v == want => Check::new(
                    "stickiness_duration",
                    CheckStatus::Pass,
                    t.elapsed(),
                    format!("{key} = {v} s, as configured"),
                ),
                other => Check::new(
                    "stickiness_duration",
                    CheckStatus::Fail,
                    t.elapsed(),
                    format!("{key} is {other:?}, deploy.toml wants {want}"),
                ),
            }
        }
    }
}
