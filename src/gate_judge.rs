//! The gate's judge: the verify checks (`gateway::verify`, as the pipeline's verify step runs
//! them) against green before production traffic (`[gateway] test_url`, the test listener,
//! else `url`) and against production (`url`) from the shift to the end of the bake time.
//! Above both `ecs` and `gateway`, like `deploy_cmd`: the ECS code only sees the trait.

use std::sync::Arc;

use crate::config::Config;
use crate::ecs::native::gate::{Audience, GateJudge, Judge, Judged};
use crate::gateway::probe::{disruption::Limits, live_check, LiveLoad};
use crate::gateway::verify::{self, VerifySettings};
use crate::ui::Ui;

/// The verify checks, per audience.
pub struct VerifyJudge {
    green: VerifySettings,
    production: VerifySettings,
}

impl Judge for VerifyJudge {
    fn judge<'a>(&'a self, audience: Audience, ui: &'a Ui) -> Judged<'a> {
        let settings = match audience {
            Audience::Green => &self.green,
            Audience::Production => &self.production,
        };
        Box::pin(async move { Ok(verify::verify(settings, ui).await) })
    }
}

/// The judge for `command` when `[ecs.deployment] gate` is named (`None` without a gate).
/// The gateway settings are resolved now, so a missing token is a usage error before any
/// change.
pub fn for_config(
    cfg: &Config,
    command: &str,
    url: Option<&str>,
    allow_insecure_token: bool,
) -> anyhow::Result<Option<GateJudge>> {
    let gated = cfg
        .ecs
        .as_ref()
        .and_then(|e| e.deployment.as_ref())
        .is_some_and(|d| d.gate.is_some());
    if !gated {
        return Ok(None);
    }
    let gw = cfg.gateway_or_url(command, url)?;
    let production = VerifySettings::from_config(&gw, url, allow_insecure_token)?;
    let mut green = production.clone();
    if let Some(t) = &gw.test_url {
        green.url = t.clone();
    }
    Ok(Some(GateJudge(Arc::new(VerifyJudge { green, production }))))
}

/// A judge whose production judgements also weigh the sessions held under load: crossing
/// `--max-lost`, `--max-drop-rate` or `--max-reconnect-p99` during a bake time rolls back while
/// blue still runs. Green is judged by the inner judge alone (the held sessions are on blue).
struct LoadJudge {
    inner: GateJudge,
    live: LiveLoad,
    limits: Limits,
}

impl Judge for LoadJudge {
    fn judge<'a>(&'a self, audience: Audience, ui: &'a Ui) -> Judged<'a> {
        Box::pin(async move {
            let mut checks = self.inner.0.judge(audience, ui).await?;
            if audience == Audience::Production {
                checks.push(live_check(self.live.now(), &self.limits));
            }
            Ok(checks)
        })
    }
}

/// `judge` with the held sessions' thresholds in its production judgements.
pub fn with_load(judge: GateJudge, live: LiveLoad, limits: Limits) -> GateJudge {
    GateJudge(Arc::new(LoadJudge {
        inner: judge,
        live,
        limits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::probe::LiveDisruption;
    use crate::report::{Check, CheckStatus};

    struct Passes;
    impl Judge for Passes {
        fn judge<'a>(&'a self, _: Audience, _: &'a Ui) -> Judged<'a> {
            Box::pin(async {
                Ok(vec![Check::new(
                    "handshake",
                    CheckStatus::Pass,
                    std::time::Duration::ZERO,
                    "ok",
                )])
            })
        }
    }

    fn limits() -> Limits {
        Limits {
            max_lost: 0,
            max_drop_rate: None,
            max_reconnect_p99_ms: None,
        }
    }

    /// Production gets the under-load check (a lost session fails it); green does not.
    #[tokio::test]
    async fn production_weighs_the_held_sessions_and_green_does_not() {
        let ui = Ui::silent();
        let lost = LiveDisruption {
            opened: 10,
            dropped_sessions: 1,
            lost: 1,
            ..LiveDisruption::default()
        };
        let judge = with_load(GateJudge(Arc::new(Passes)), LiveLoad::fixed(lost), limits());
        let prod = judge.0.judge(Audience::Production, &ui).await.unwrap();
        let names: Vec<&str> = prod.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["handshake", "under-load"]);
        assert_eq!(prod[1].status, CheckStatus::Fail, "{}", prod[1].message);
        let green = judge.0.judge(Audience::Green, &ui).await.unwrap();
        assert_eq!(green.len(), 1);

        let held = LiveDisruption { lost: 0, ..lost };
        let judge = with_load(GateJudge(Arc::new(Passes)), LiveLoad::fixed(held), limits());
        let prod = judge.0.judge(Audience::Production, &ui).await.unwrap();
        assert_eq!(prod[1].status, CheckStatus::Pass, "{}", prod[1].message);
    }
}
