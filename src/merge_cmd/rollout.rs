//! `report merge --deploy FILE`: the rollout the shards held beside, read from the JSON
//! document of the `deploy` (or `full`) that ran it (`rollout_started_at`, `rollout_ended_at`,
//! a native deployment's stages), and what the merge says of it: the `rollout window` check
//! and the table of drops by phase. The document is outside text: its names are bounded and
//! escaped where shown.

use serde_json::Value;

use crate::duration::unix_ms;
use crate::exit::Failure;
use crate::gateway::probe::attribution::RolloutWindow;
use crate::outside::Outside;

/// Stages read at most (a native deployment has about ten).
const MAX_STAGES: usize = 64;

/// The deploy result in a `deploy` document, or the `deploy` step's detail in a `full` one.
fn deploy_result(doc: &Value) -> Option<&Value> {
    if let Some(d) = doc.get("deploy").filter(|d| d.is_object()) {
        return Some(d);
    }
    doc.get("pipeline")?
        .get("steps")?
        .as_array()?
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some("deploy"))?
        .get("detail")
        .filter(|d| d.is_object())
}

/// The rollout of the deploy document `text` (from `name`).
pub fn window_of(name: &str, text: &str) -> anyhow::Result<RolloutWindow> {
    let bad = |why: &str| -> anyhow::Error {
        Failure::usage(format!("--deploy {name}: {why}"))
            .hint("give the `--output json` document of the deploy (or full) that ran while the shards held")
            .into()
    };
    let doc: Value = serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .next()
        .ok_or_else(|| bad("no JSON document"))?
        .map_err(|e| bad(&format!("not JSON: {e}")))?;
    let d = deploy_result(&doc).ok_or_else(|| {
        bad("not the JSON document of a deploy or full run (no deploy result in it)")
    })?;
    let field = |k: &str| d.get(k).and_then(Value::as_str);
    let started = field("rollout_started_at").ok_or_else(|| {
        bad("it names no rollout_started_at: that run started no rollout (a dry run, a plan with no change, a failure before UpdateService) or an older bosar-deploy wrote it")
    })?;
    let started_unix_ms =
        unix_ms(started).ok_or_else(|| bad("rollout_started_at is not an RFC 3339 time"))?;
    // Only a rollout followed to its outcome ended here; one left running (--no-wait, an
    // interrupt) has no end the shards can be held against.
    let ended_unix_ms = match (
        field("rollout_ended_at"),
        d.get("outcome").filter(|o| !o.is_null()),
    ) {
        (Some(e), Some(_)) => {
            Some(unix_ms(e).ok_or_else(|| bad("rollout_ended_at is not an RFC 3339 time"))?)
        }
        _ => None,
    };
    if ended_unix_ms.is_some_and(|e| e < started_unix_ms) {
        return Err(bad("rollout_ended_at is before rollout_started_at"));
    }
    let moments = d
        .get("stages")
        .and_then(Value::as_array)
        .map(|stages| {
            stages
                .iter()
                .take(MAX_STAGES)
                .filter_map(|s| {
                    let at = unix_ms(s.get("started")?.as_str()?)?;
                    let name = Outside::new(s.get("name")?.as_str()?).shown(60);
                    Some((at, format!("stage {name}")))
                })
                .collect()
        })
        .unwrap_or_default();
    let name = field("deployment_id")
        .map(|id| Outside::new(id).shown(120))
        .unwrap_or_else(|| "the rollout".into());
    Ok(RolloutWindow {
        name,
        started_unix_ms,
        ended_unix_ms,
        moments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deploy_and_full_documents() {
        let deploy = r#"{"command":"deploy","deploy":{"deployment_id":"ecs-svc/1","rollout_started_at":"2026-12-05T10:00:00.500Z","rollout_ended_at":"2026-12-05T10:02:00Z","outcome":{"result":"succeeded"},"stages":[{"name":"BAKE_TIME","started":"2026-12-05T10:01:00Z"},{"name":"X\u001b[31m","started":"nope"}]}}"#;
        let w = window_of("d.json", deploy).unwrap();
        assert_eq!(w.name, "ecs-svc/1");
        assert_eq!(w.ended_unix_ms.unwrap() - w.started_unix_ms, 119_500);
        assert_eq!(w.moments.len(), 1, "a stage without a time is left out");
        assert_eq!(w.moments[0].1, "stage BAKE_TIME");
        let full = r#"{"pipeline":{"steps":[{"name":"alb","detail":{}},{"name":"deploy","detail":{"rollout_started_at":"2026-12-05T10:00:00Z"}}]}}"#;
        let w = window_of("f.json", full).unwrap();
        assert_eq!((w.name.as_str(), w.ended_unix_ms), ("the rollout", None));
        // Not followed to its outcome (--no-wait, an interrupt): no end to hold the shards against.
        let no_wait = r#"{"deploy":{"rollout_started_at":"2026-12-05T10:00:00Z","rollout_ended_at":"2026-12-05T10:00:01Z"}}"#;
        assert_eq!(window_of("n.json", no_wait).unwrap().ended_unix_ms, None);
        for (bad, why) in [
            (
                r#"{"deploy":{"rollout_started_at":"2026-12-05T10:00:00Z","rollout_ended_at":"2026-12-05T09:00:00Z","outcome":{}}}"#,
                "before rollout_started_at",
            ),
            ("nope", "not JSON"),
            (r#"{"probe":{}}"#, "no deploy result"),
            (r#"{"deploy":{"dry_run":true}}"#, "rollout_started_at"),
            (
                r#"{"deploy":{"rollout_started_at":"soon"}}"#,
                "not an RFC 3339",
            ),
        ] {
            let e = window_of("x.json", bad).unwrap_err().to_string();
            assert!(e.contains("--deploy x.json") && e.contains(why), "{e}");
        }
    }
}
