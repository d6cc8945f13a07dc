//! bosar-deploy: ship the BoSar chat API (NestJS Socket.IO gateway on ECS Fargate behind an ALB).
//!
//! Layout: `config` (deploy.toml), `aws` (SDK wiring), `alb` (target group plan/apply),
//! `ecs` (rollout and watch), `gateway` (Socket.IO client, checks, load probe), `verify_cmd`
//! (verify: the checks or the probe), `under_load` (sessions held through a rollout: the
//! probe and the ECS watch run side by side, above both), `deploy_cmd` (deploy: with or
//! without `--under-load`), `monitor` (a canary holding sessions between deploys), `traffic` (the load balancer's CloudWatch metrics around a rollout), `report` and `ui`
//! (rendering), `outside` (the one way out for text
//! from servers and AWS: escaped, capped, redacted), `files` (reports written safely),
//! `pipeline` (full/plan), `global` (the options every verb shares: a base module, so `aws`
//! and `ui` never import `cli`).
//! Pure logic stays apart from I/O so it is testable.

pub mod alb;
pub mod aws;
pub mod cli;
pub mod config;
pub mod deploy_cmd;
pub mod duration;
pub mod ecs;
pub mod envelope;
pub mod exit;
pub mod files;
pub mod gate_judge;
pub mod gateway;
pub mod global;
pub mod image;
pub mod init;
pub mod merge_cmd;
pub mod monitor;
pub mod outside;
pub mod picture;
pub mod picture_of;
pub mod pipeline;
pub mod probe_ecs;
pub mod report;
pub mod traffic;
pub mod ui;
pub mod under_load;
pub mod verify_cmd;

/// The layers (docs/development.md "Layout"): the shared base never imports `cli` or a domain, and `cli`
/// imports no domain. Read from the sources on disk, so a new file is covered without a list.
#[cfg(test)]
mod layers {
    use std::path::{Path, PathBuf};

    const BASE: [&str; 13] = [
        "aws",
        "config",
        "ui.rs",
        "report.rs",
        "envelope.rs",
        "outside.rs",
        "outside",
        "duration.rs",
        "image.rs",
        "exit.rs",
        "files.rs",
        "global.rs",
        "lib.rs",
    ];
    const ABOVE_BASE: [&str; 16] = [
        "picture",
        "picture_of",
        "cli",
        "ecs",
        "alb",
        "gateway",
        "pipeline",
        "init",
        "deploy_cmd",
        "gate_judge",
        "verify_cmd",
        "under_load",
        "traffic",
        "monitor",
        "merge_cmd",
        "probe_ecs",
    ];

    fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                rust_files(&e.unwrap().path(), out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p.to_path_buf());
        }
    }

    /// The `crate::NAME` paths a source names outside its tests and comments.
    fn crate_refs(src: &str) -> Vec<String> {
        let code = src.split("#[cfg(test)]").next().unwrap_or(src);
        let mut refs = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                refs.push(name);
            }
        }
        refs
    }

    fn offenders(files: &[PathBuf], forbidden: &[&str]) -> Vec<String> {
        let mut bad = Vec::new();
        for f in files {
            let src = std::fs::read_to_string(f).unwrap();
            for r in crate_refs(&src) {
                if forbidden.contains(&r.as_str()) {
                    bad.push(format!("{} -> crate::{r}", f.display()));
                }
            }
        }
        bad
    }

    #[test]
    fn the_base_imports_no_verb_and_cli_no_domain() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut base = Vec::new();
        for b in BASE {
            rust_files(&src.join(b), &mut base);
        }
        assert!(base.len() > 20, "the base was not found: {base:?}");
        // lib.rs declares the modules; its own code (outside these tests) names none.
        let bad = offenders(&base, &ABOVE_BASE);
        assert!(
            bad.is_empty(),
            "the base imports above itself:\n{}",
            bad.join("\n")
        );
        let mut cli = Vec::new();
        rust_files(&src.join("cli"), &mut cli);
        assert!(cli.len() >= 2, "cli/ was not found: {cli:?}");
        let bad = offenders(&cli, &ABOVE_BASE[1..]);
        assert!(bad.is_empty(), "cli/ imports a domain:\n{}", bad.join("\n"));
        // The check itself can say no.
        assert_eq!(crate_refs("use crate::cli::GlobalArgs;"), vec!["cli"]);
        assert!(crate_refs("// crate::cli\n").is_empty());
    }
}
