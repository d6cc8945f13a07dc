//! `bosar-deploy report merge FILE…`: reads the JSON documents the shards of one
//! `verify --connections N --shard I/K` run wrote (`-` for stdin, which may hold several),
//! takes each one's `probe.shard` section, merges them ([`probe::merge`]) and ends like a
//! single run: the same checks, text/JSON/JUnit, the same exit codes. Inputs that are not
//! shard reports of one run are refused (exit 2) with the file and the reason. No AWS call.

use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};

use crate::cli::MergeArgs;
use crate::exit::{Code, Failure};
use crate::gateway::probe::{self, merge, shard::ShardPart};
use crate::ui::Ui;

pub mod rollout;
use crate::gateway::probe::attribution::{self, RolloutWindow};

/// Largest input read, per file (a shard document is a few tens of KiB).
const MAX_INPUT: u64 = 64 * 1024 * 1024;

pub fn run(args: &MergeArgs, ui: &Ui) -> anyhow::Result<Code> {
    let mut parts = Vec::new();
    for file in &args.files {
        let (name, text) = read(file)?;
        parts.extend(parts_of(&name, &text)?);
    }
    let window = match &args.deploy {
        Some(file) => {
            let (name, text) = read(file)?;
            Some(rollout::window_of(&name, &text)?)
        }
        None => None,
    };
    conclude_parts(&parts, window.as_ref(), args.junit.as_deref(), ui)
}

/// The merge of `parts` (of one run), ended like a single run: text, JSON, JUnit, exit code.
/// Shared with `verify --on-ecs`, whose parts come from the tasks' log streams. With
/// `window`, the disruption counts from the start of that rollout (`--deploy`).
pub fn conclude_parts(
    parts: &[ShardPart],
    window: Option<&RolloutWindow>,
    junit: Option<&Path>,
    ui: &Ui,
) -> anyhow::Result<Code> {
    let mut merged = merge::merge(parts).map_err(|why| {
        Failure::usage(format!("cannot merge these reports: {why}"))
            .hint("give the JSON documents of every shard of one run, each once")
    })?;
    if let Some(w) = window {
        merged.against(parts, w).map_err(|why| {
            Failure::usage(format!("--deploy: cannot place the drops against the rollout: {why}"))
                .hint("merge with --deploy the shards of `verify --connections N --shard I/K --reconnect` that held while the deploy ran")
        })?;
    }
    let report = merged.report();
    let mut more = Vec::new();
    if let Some(a) = &merged.attribution {
        ui.out(attribution::table(a).trim_end());
        more.push(attribution::check(a));
    }
    let first = &merged.first;
    ui.line(format!(
        "merged {} shard report(s) of run {} (bosar-deploy {}): {} session(s)",
        merged.shards, first.run_id, first.version, first.total_connections
    ));
    let extra = json!({
        "run_id": first.run_id,
        "version": first.version,
        "shards": merged.shards,
        "percentile_relative_error": crate::gateway::histogram::REL_ERROR,
    });
    let mut extra = extra;
    if let Some(a) = &merged.attribution {
        extra["attribution"] = json!(a);
    }
    Ok(probe::conclude(
        ui,
        &report,
        "bosar-deploy report merge",
        junit,
        Some(("merge", extra)),
        more,
    ))
}

fn read(file: &Path) -> anyhow::Result<(String, String)> {
    let name = if file == Path::new("-") {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let mut text = String::new();
    let result = if file == Path::new("-") {
        std::io::stdin().take(MAX_INPUT).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_INPUT).read_to_string(&mut text))
    };
    result.map_err(|e| Failure::usage(format!("{name}: cannot read it: {e}")))?;
    if text.len() as u64 >= MAX_INPUT {
        return Err(
            Failure::usage(format!("{name}: larger than 64 MiB: not a shard report")).into(),
        );
    }
    Ok((name, text))
}

/// The shard sections of the JSON documents in `text` (one or more, one after another).
pub fn parts_of(name: &str, text: &str) -> anyhow::Result<Vec<ShardPart>> {
    let not_shard = |why: String| -> anyhow::Error {
        Failure::usage(format!("{name}: {why}"))
            .hint("merge the documents of `bosar-deploy --output json verify --connections N --shard I/K …`")
            .into()
    };
    let mut parts = Vec::new();
    for (i, doc) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let doc = doc.map_err(|e| not_shard(format!("not JSON: {e}")))?;
        let section = doc
            .get("probe")
            .and_then(|p| p.get("shard"))
            .ok_or_else(|| {
                not_shard(format!(
                    "document {} has no probe.shard section (written without --shard?)",
                    i + 1
                ))
            })?;
        let part: ShardPart = serde_json::from_value(section.clone())
            .map_err(|e| not_shard(format!("document {}: probe.shard: {e}", i + 1)))?;
        if part.run_id.len() > 200 || part.version.len() > 64 {
            return Err(not_shard(format!(
                "document {}: run id or version too long",
                i + 1
            )));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Err(not_shard("no JSON document".into()));
    }
    Ok(parts)
}
