//! CLI entry: parse, load config, dispatch, map errors to the exit-code contract.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use bosar_deploy::cli::{Cli, Command, FullArgs};
use bosar_deploy::exit::{self, Code};
use bosar_deploy::ui::Ui;
use bosar_deploy::{alb, aws, config, ecs, pipeline};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Code::Usage.as_i32() as u8
            } else {
                0
            });
        }
    };
    let ui = Ui::new(&cli.global);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        tokio::select! {
            r = dispatch(&cli, &ui) => match r {
                Ok(code) => code,
                Err(err) => {
                    let code = exit::code_of(&err);
                    let msg = err.chain().map(|e| e.to_string()).collect::<Vec<_>>().join(": ");
                    ui.error(msg, exit::hint_of(&err));
                    code
                }
            },
            _ = tokio::signal::ctrl_c() => {
                match ui.resume_hint() {
                    Some(hint) => ui.error("interrupted: stopped watching; the rollout goes on in AWS", Some(&format!("resume watching with: {hint}"))),
                    None => ui.error("interrupted; nothing more was started (calls already sent to AWS take effect there)", None),
                }
                Code::Interrupted
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code.as_i32() as u8)
}

async fn dispatch(cli: &Cli, ui: &Ui) -> anyhow::Result<Code> {
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "bosar-deploy",
            &mut std::io::stdout(),
        );
        return Ok(Code::Success);
    }
    let path = config::locate(cli.global.config.as_deref());
    let cfg = config::load(&path)?;
    ui.detail(format!("config {}", path.display()));
    match &cli.command {
        Command::AlbUpdate(args) => {
            let aws = aws::connect(&cfg, &cli.global).await?;
            alb::run(args, &cfg, &aws, ui).await
        }
        Command::Verify(args) => bosar_deploy::gateway::verify::run(args, &cfg, ui).await,
        Command::Deploy(args) => {
            let (aws, preflight) = ecs::preflight::connect(&cfg, &cli.global).await?;
            ecs::deploy::run(args, &cfg, &aws, &preflight, ui).await
        }
        Command::Wait(args) => {
            ecs::deploy::run_wait(args, &cfg, &aws::connect(&cfg, &cli.global).await?, ui).await
        }
        Command::Rollback(args) => {
            ecs::deploy::run_rollback(args, &cfg, &aws::connect(&cfg, &cli.global).await?, ui).await
        }
        Command::Status => {
            ecs::status::run(&cfg, &aws::connect(&cfg, &cli.global).await?, ui).await
        }
        Command::Full(args) => pipeline::run(args, &cfg, &cli.global, ui, "full").await,
        Command::Plan(p) => {
            let args = FullArgs {
                dry_run: true,
                detailed_exitcode: p.detailed_exitcode,
                image: p.image.clone(),
                junit: p.junit.clone(),
                skip_preflight: p.skip_preflight.clone(),
                skip_verify: true,
                ..Default::default()
            };
            pipeline::run(&args, &cfg, &cli.global, ui, "plan").await
        }
        Command::Completions { .. } => unreachable!("handled above"),
    }
}
