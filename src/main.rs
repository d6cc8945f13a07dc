//! CLI entry: parse, load config, dispatch, map errors to the exit-code contract.
//!
//! Ctrl-C and SIGTERM (how CI runners cancel) are one interrupt: the run is marked
//! interrupted; a verb that can stop cleanly (it has a `Ui::wrap_up_on_interrupt` guard:
//! watching a rollout, verify, the probe, `full` between steps) gets up to [`WRAP_UP`] to stop,
//! write its reports and return; anything else is dropped at once, as nothing more may be
//! started in AWS. Either way the run says so, with the command to resume, and exits 130. A
//! second signal stops waiting.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use bosar_deploy::cli::{Cli, Command, FullArgs, PlanFlags, ReportCommand, RolloutFlags};
use bosar_deploy::exit::{self, Code};
use bosar_deploy::ui::Ui;
use bosar_deploy::{alb, aws, config, ecs, pipeline, traffic};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::from(0);
            }
            usage_error_document(&e);
            return ExitCode::from(Code::Usage.as_i32() as u8);
        }
    };
    let ui = Ui::new(&cli.global);
    let command = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .find(|name| std::env::args().skip(1).any(|a| a == *name));
    ui.context().update(|c| c.command = command);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        let mut signals = Signals::new();
        let work = dispatch(&cli, &ui);
        tokio::pin!(work);
        let done = tokio::select! {
            r = &mut work => Some(r),
            () = signals.next() => None,
        };
        if let Some(r) = done {
            return match r {
                Ok(code) => {
                    if !matches!(cli.command, Command::Completions { .. }) {
                        ui.emit_ending(code, None);
                    }
                    code
                }
                Err(err) => {
                    ui.error(exit::message_of(&err), exit::hint_of(&err));
                    let code = exit::code_of(&err);
                    ui.emit_ending(code, Some(&err));
                    code
                }
            };
        }
        ui.interrupt();
        let wrapped = if ui.wraps_up() {
            tokio::select! {
                r = tokio::time::timeout(ui.wrap_up_asked().unwrap_or(WRAP_UP).max(WRAP_UP), &mut work) => r.ok(),
                () = signals.next() => None,
            }
        } else {
            None
        };
        // `monitor` runs until stopped: its last record written, the stop is a success.
        if let (Command::Monitor(_), Some(Ok(code))) = (&cli.command, &wrapped) {
            ui.emit_ending(*code, None);
            return *code;
        }
        // `verify --until-stopped`: a stop during the hold is its planned end; the probe
        // says which it was (130 when it came before the hold).
        if let (Command::Verify(a), Some(Ok(code))) = (&cli.command, &wrapped) {
            if a.until_stopped && *code != Code::Interrupted {
                ui.emit_ending(*code, None);
                return *code;
            }
        }
        if let Some(Err(err)) = &wrapped {
            if exit::code_of(err) != Code::Interrupted {
                ui.error(exit::message_of(err), exit::hint_of(err));
            }
        }
        say_interrupted(&ui);
        ui.emit_ending(
            Code::Interrupted,
            Some(&anyhow::anyhow!("interrupted (Ctrl-C or SIGTERM)")),
        );
        Code::Interrupted
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code.as_i32() as u8)
}

/// `--output json` asked for and clap refused the command line: the envelope still comes,
/// with the usage error (clap's own text stays on stderr).
fn usage_error_document(e: &clap::Error) {
    let args: Vec<String> = std::env::args().collect();
    if !bosar_deploy::envelope::json_requested(&args) {
        return;
    }
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let ctx = bosar_deploy::envelope::Context {
        command: bosar_deploy::envelope::command_in(&args, &names),
        ..Default::default()
    };
    let message = bosar_deploy::envelope::usage_message(&e.render().to_string());
    let hint = Some("`bosar-deploy --help` lists the commands and their flags".to_string());
    let doc = bosar_deploy::envelope::Envelope::new(
        &ctx,
        Code::Usage,
        Some((
            bosar_deploy::envelope::ErrorDoc {
                message: message.clone(),
                hint: hint.clone(),
            },
            vec![bosar_deploy::envelope::ErrorItem::plain(message, hint)],
        )),
        Vec::new(),
        None,
    );
    bosar_deploy::ui::print_json(&doc);
}

/// How long an interrupted verb gets to stop and write its reports. CI runners send SIGINT,
/// then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that.
const WRAP_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// Ctrl-C (SIGINT) and SIGTERM, as one stream of interrupts.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The interrupt's message and what to type next.
fn say_interrupted(ui: &Ui) {
    if let Some(hint) = ui.resume_hint() {
        ui.error(
            "interrupted: stopped watching; the rollout goes on in AWS",
            Some(&format!("resume watching with: {hint}")),
        );
    } else if let Some((message, next)) = ui.interrupt_note() {
        ui.error(message, Some(&next));
    } else {
        ui.error(
            "interrupted; nothing more was started (calls already sent to AWS take effect there)",
            None,
        );
    }
}

/// The bytes of an output-only verb on stdout. A reader that went away (`| head`, `| true`)
/// wanted no more: success, as ripgrep does; any other write error is an I/O failure.
fn write_result(bytes: &[u8]) -> Code {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Code::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Code::Success,
        Err(_) => Code::Failed,
    }
}

async fn dispatch(cli: &Cli, ui: &Ui) -> anyhow::Result<Code> {
    if let Command::Completions { shell } = &cli.command {
        // Into a buffer first: clap_complete unwraps its writes, so a closed pipe
        // (`completions bash | true`) would panic (exit 101) inside it.
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "bosar-deploy", &mut script);
        return Ok(write_result(&script));
    }
    if let Command::Report(ReportCommand::Merge(args)) = &cli.command {
        // Files in, a report out: no config, no AWS.
        return bosar_deploy::merge_cmd::run(args, ui);
    }
    let environment = config::selected_environment(cli.global.environment.as_deref());
    if let Command::Init(args) = &cli.command {
        // No config yet: region and profile come from the flags and the AWS chain.
        let aws = aws::connect(&config::AwsSection::default(), &cli.global, ui).await?;
        let environment = cli.global.environment.as_deref();
        ui.context()
            .update(|c| c.environment = environment.map(str::to_string));
        return bosar_deploy::init::run(args, &aws, cli.global.config.as_deref(), environment, ui)
            .await;
    }
    let path = config::locate(cli.global.config.as_deref());
    ui.context().update(|c| {
        c.config = Some(path.display().to_string());
        c.environment = environment.clone();
    });
    let cfg = config::load(&path, environment.as_deref())?;
    ui.set_invocation(&path, &cli.global, environment.as_deref());
    ui.detail(match &environment {
        Some(env) => format!("config {} (environment {env})", path.display()),
        None => format!("config {}", path.display()),
    });
    match &cli.command {
        Command::AlbUpdate(args) => {
            let aws = aws::connect(&cfg.aws, &cli.global, ui).await?;
            alb::run(args, &cfg, &aws, ui).await
        }
        Command::Verify(args) => bosar_deploy::verify_cmd::run(args, &cfg, &cli.global, ui).await,
        Command::Deploy(args) => bosar_deploy::deploy_cmd::run(args, &cfg, &cli.global, ui).await,
        Command::Monitor(args) => bosar_deploy::monitor::run(args, &cfg, ui).await,
        Command::Wait(args) => {
            ecs::wait::run(
                args,
                &cfg,
                &aws::connect(&cfg.aws, &cli.global, ui).await?,
                ui,
            )
            .await
        }
        Command::Rollback(args) => {
            ecs::rollback::run(
                args,
                &cfg,
                &aws::connect(&cfg.aws, &cli.global, ui).await?,
                ui,
            )
            .await
        }
        Command::Status(args) => {
            let aws = aws::connect(&cfg.aws, &cli.global, ui).await?;
            let recent = traffic::recent::section(&aws, &cfg.target_group.id, !args.no_metrics, ui);
            ecs::status::run_with(&cfg, &aws, ui, recent).await
        }
        Command::Full(args) => pipeline::run(args, &cfg, &cli.global, ui, "full").await,
        Command::Plan(p) => {
            let args = FullArgs {
                plan: PlanFlags {
                    dry_run: true,
                    detailed_exitcode: p.detailed_exitcode,
                },
                rollout: RolloutFlags {
                    image: p.image.clone(),
                    force_new_deployment: p.force_new_deployment,
                    skip_preflight: p.skip_preflight.clone(),
                    ..Default::default()
                },
                junit: p.junit.clone(),
                skip_verify: true,
                ..Default::default()
            };
            pipeline::run(&args, &cfg, &cli.global, ui, "plan").await
        }
        Command::Completions { .. } | Command::Init(_) | Command::Report(_) => {
            unreachable!("handled above")
        }
    }
}
