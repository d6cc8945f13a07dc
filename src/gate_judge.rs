//! The gate's judge: the verify checks on every target it reaches (`gateway::verify`, as the
//! pipeline's verify step runs them) against green before production traffic
//! (`[gateway] test_url`, the test listener, else `url`) and against production (`url`) from
//! the shift to the end of the bake time, each production target against the revision it runs.
//! Above both `ecs` and `gateway`, like `deploy_cmd`: the ECS code only sees the trait.

use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::ecs::native::gate::{Audience, GateJudge, Judge, Judged};
use crate::gateway::probe::{self, disruption::Limits, live_check, LiveLoad, ProbeSettings};
use crate::gateway::verify::{self, Blue, Expected, Previous, VerifySettings};
use crate::report::{Check, CheckStatus};
use crate::ui::Ui;

/// The verify checks, per audience, on every target reached.
pub struct VerifyJudge {
    green: VerifySettings,
    production: VerifySettings,
    /// `[gateway] targets` when given; else unknown (every target the search reaches).
    expected: Expected,
    /// What blue serves when this deployment changes it (see `serving_before`).
    previous: Mutex<Option<Blue>>,
}

impl Judge for VerifyJudge {
    fn judge<'a>(&'a self, audience: Audience, ui: &'a Ui) -> Judged<'a> {
        Box::pin(async move {
            let fleet = match audience {
                Audience::Green => {
                    verify::verify_targets(&self.green, self.expected.clone(), ui).await
                }
                Audience::Production => {
                    let previous = self.previous.lock().map(|p| p.clone()).unwrap_or(None);
                    verify::verify_revisions(
                        &self.production,
                        previous.as_ref(),
                        self.expected.clone(),
                        ui,
                    )
                    .await
                }
            };
            Ok(fleet.checks)
        })
    }

    fn serving_before(&self, changed: &[(String, String)]) {
        let previous =
            Previous::from_changes(changed.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                .blue(&self.production);
        if let Ok(mut p) = self.previous.lock() {
            *p = previous;
        }
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
    let expected = match gw.targets {
        Some(n) => Expected::given(n, "[gateway] targets"),
        None => Expected::unknown("no [gateway] targets"),
    };
    Ok(Some(GateJudge(Arc::new(VerifyJudge {
        green,
        production,
        expected,
        previous: Mutex::new(None),
    }))))
}

/// A judge whose production judgements also weigh the sessions held under load: crossing
/// `--max-lost`, `--max-drop-rate` or `--max-reconnect-p99` during a bake time rolls back while
/// blue still runs. Green is judged by the inner judge alone (the held sessions are on blue).
struct LoadJudge {
    inner: GateJudge,
    live: LiveLoad,
    limits: Limits,
    /// The load probe against green: its settings and where green is.
    green: Option<(VerifySettings, ProbeSettings)>,
}

impl Judge for LoadJudge {
    fn judge<'a>(&'a self, audience: Audience, ui: &'a Ui) -> Judged<'a> {
        Box::pin(async move {
            let mut checks = self.inner.0.judge(audience, ui).await?;
            match (audience, &self.green) {
                (Audience::Production, _) => checks.push(live_check(self.live.now(), &self.limits)),
                (Audience::Green, Some((v, ps))) => checks.extend(green_load(v, ps, ui).await),
                (Audience::Green, None) => {}
            }
            Ok(checks)
        })
    }

    fn serving_before(&self, changed: &[(String, String)]) {
        self.inner.0.serving_before(changed);
    }
}

/// The load probe against green, its checks named `load open`, `load heartbeat`, …; a probe
/// that cannot start is a failed check (fail closed).
async fn green_load(v: &VerifySettings, ps: &ProbeSettings, ui: &Ui) -> Vec<Check> {
    match probe::probe(v, ps, ui, None).await {
        Ok(report) => probe::checks(&report)
            .into_iter()
            .map(|mut c| {
                c.name = format!("load {}", c.name);
                c
            })
            .collect(),
        Err(e) => vec![Check::new(
            "load",
            CheckStatus::Fail,
            std::time::Duration::ZERO,
            format!(
                "the load probe of green could not start: {}",
                crate::outside::Outside::new(&format!("{e:#}"))
            ),
        )],
    }
}

/// `judge` with the held sessions' thresholds in its production judgements and, when
/// `green` is given, the load probe in green's.
pub fn with_load(
    judge: GateJudge,
    live: LiveLoad,
    limits: Limits,
    green: (VerifySettings, ProbeSettings),
) -> GateJudge {
    GateJudge(Arc::new(LoadJudge {
        inner: judge,
        live,
        limits,
        green: Some(green),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::probe::LiveDisruption;

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

    fn loaded(live: LiveLoad) -> LoadJudge {
        LoadJudge {
            inner: GateJudge(Arc::new(Passes)),
            live,
            limits: limits(),
            green: None,
        }
    }

    fn blue_of(judge: &VerifyJudge) -> Blue {
        judge
            .previous
            .lock()
            .unwrap()
            .clone()
            .expect("blue differs")
    }

    /// The plan's changed WEBSOCKET_* values become blue's settings; unchanged ones none.
    #[test]
    fn blue_settings_come_from_the_plan() {
        let gw = crate::config::GatewaySection::with_url("http://127.0.0.1:1");
        let production = VerifySettings::from_config(&gw, None, false).unwrap();
        let judge = VerifyJudge {
            green: production.clone(),
            production: production.clone(),
            expected: Expected::unknown("test"),
            previous: Mutex::new(None),
        };
        judge.serving_before(&[("WEBSOCKET_PING_INTERVAL".into(), "7000".into())]);
        let blue = blue_of(&judge);
        assert_eq!(
            blue.settings.ping_interval,
            std::time::Duration::from_millis(7000)
        );
        assert_eq!(blue.settings.ping_timeout, production.ping_timeout);
        assert!(blue.unjudged.is_empty());
        judge.serving_before(&[("WEBSOCKET_HEARTBEAT_INTERVAL".into(), String::new())]);
        let blue = blue_of(&judge);
        assert_eq!(
            blue.unjudged,
            [("heartbeat", "WEBSOCKET_HEARTBEAT_INTERVAL")]
        );
        let same = production.ping_interval.as_millis().to_string();
        judge.serving_before(&[
            ("WEBSOCKET_PING_INTERVAL".into(), same),
            ("X".into(), "1".into()),
        ]);
        assert!(judge.previous.lock().unwrap().is_none());
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
        let judge = loaded(LiveLoad::fixed(lost));
        let prod = judge.judge(Audience::Production, &ui).await.unwrap();
        let names: Vec<&str> = prod.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["handshake", "under-load"]);
        assert_eq!(prod[1].status, CheckStatus::Fail, "{}", prod[1].message);
        let green = judge.judge(Audience::Green, &ui).await.unwrap();
        assert_eq!(green.len(), 1);

        let held = LiveDisruption { lost: 0, ..lost };
        let judge = loaded(LiveLoad::fixed(held));
        let prod = judge.judge(Audience::Production, &ui).await.unwrap();
        assert_eq!(prod[1].status, CheckStatus::Pass, "{}", prod[1].message);
    }
}
