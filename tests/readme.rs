//! The docs' examples are code (issue 17): every `toml` block in README.md and docs/ is a
//! deploy.toml that loads and validates (with each of its environments selected), and every
//! `json` block is JSON; one that is an envelope (`"tool": "bosar-deploy"`) is valid against
//! schema/output.schema.json. A block that must not be checked says so in its fence
//! (`toml fragment`), which this test lists so it stays rare.

mod support;

use std::path::{Path, PathBuf};

use bosar_deploy::config::parse_environment;

struct Block {
    file: PathBuf,
    line: usize,
    lang: String,
    text: String,
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![support::repo().join("README.md")];
    if let Ok(dir) = std::fs::read_dir(support::repo().join("docs")) {
        let mut docs: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    file: file.to_path_buf(),
                    line: i + 1,
                    lang: lang.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.push(open.take().unwrap()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{}: an unclosed code block", file.display());
    out
}

fn all_blocks() -> Vec<Block> {
    doc_files().iter().flat_map(|f| blocks(f)).collect()
}

/// `[environments.NAME…]` headers of a TOML document.
fn environments(text: &str) -> Vec<String> {
    let doc: toml::Table = toml::from_str(text).unwrap_or_default();
    doc.get("environments")
        .and_then(|e| e.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_toml_block_in_the_docs_is_a_valid_config() {
    let blocks: Vec<Block> = all_blocks()
        .into_iter()
        .filter(|b| b.lang == "toml")
        .collect();
    assert!(
        !blocks.is_empty(),
        "no toml block found: is the README there?"
    );
    let mut failures = Vec::new();
    for b in &blocks {
        let place = format!("{}:{}", b.file.display(), b.line);
        let path = Path::new("deploy.toml");
        if let Err(e) = parse_environment(path, &b.text, None) {
            failures.push(format!("{place}: {e}"));
        }
        for env in environments(&b.text) {
            if let Err(e) = parse_environment(path, &b.text, Some(&env)) {
                failures.push(format!("{place} (--env {env}): {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_environments_example_selects_staging_as_the_readme_says() {
    let b = all_blocks()
        .into_iter()
        .find(|b| b.lang == "toml" && b.text.contains("[environments.staging"))
        .expect("the README's environments example");
    let cfg = parse_environment(Path::new("deploy.toml"), &b.text, Some("staging"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ecs = cfg.ecs.as_ref().unwrap();
    assert_eq!(ecs.cluster, "staging");
    let env = ecs.environment.as_ref().unwrap();
    assert_eq!(env["WEBSOCKET_HEARTBEAT_INTERVAL"], "5000");
    assert_eq!(env["WEBSOCKET_PING_INTERVAL"], "25000");
}

#[test]
fn every_json_block_is_json_and_every_envelope_matches_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("schema/output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut envelopes = 0;
    let mut failures = Vec::new();
    for b in all_blocks().into_iter().filter(|b| b.lang == "json") {
        let place = format!("{}:{}", b.file.display(), b.line);
        let doc: serde_json::Value = match serde_json::from_str(&b.text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{place}: not JSON: {e}"));
                continue;
            }
        };
        if doc["tool"] == "bosar-deploy" {
            envelopes += 1;
            for err in validator.iter_errors(&doc) {
                failures.push(format!("{place}: {} at {}", err, err.instance_path()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(envelopes >= 1, "the README shows no envelope example");
}
