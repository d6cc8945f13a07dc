//! The gate's judge: the verify checks (`gateway::verify`, as the pipeline's verify step runs
//! them) against green before production traffic (`[gateway] test_url`, the test listener,
//! else `url`) and against production (`url`) from the shift to the end of the bake time.
//! Above both `ecs` and `gateway`, like `deploy_cmd`: the ECS code only sees the trait.

use std::sync::Arc;

use crate::config::Config;
use crate::ecs::native::gate::{Audience, GateJudge, Judge, Judged};
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
