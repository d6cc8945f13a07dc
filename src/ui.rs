//! How the tool talks to people and CI. Results go to stdout (text or JSON); progress,
//! warnings and errors go to stderr, so `--output json | jq` always sees one clean document.
//! On a terminal: colours and progress bars. Otherwise (CI): plain timestamped lines,
//! printed only when something changed. Under GitHub Actions, warnings and errors are
//! also emitted as `::warning::`/`::error::` annotations.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use console::style;

use crate::cli::{GlobalArgs, OutputFormat};

#[derive(Debug)]
pub struct Ui {
    pub output: OutputFormat,
    pub quiet: bool,
    pub verbose: u8,
    /// stderr is a terminal: progress bars instead of timestamped lines.
    pub interactive: bool,
    pub github: bool,
    /// Warnings collected for reports.
    warnings: Mutex<Vec<String>>,
    /// How to resume what is being watched, printed on Ctrl-C.
    resume_hint: Mutex<Option<String>>,
    /// `bosar-deploy` with the run's `--config`, `--region`, `--profile`: the start of every
    /// command this run tells the user to type.
    command_prefix: Mutex<String>,
    /// When set, progress lines are kept here instead of printed (tests of what CI sees).
    captured: Option<Mutex<Vec<String>>>,
}

impl Ui {
    pub fn new(g: &GlobalArgs) -> Ui {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let color = !g.no_color && !no_color_env && interactive;
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        LOG_LEVEL.store(if g.quiet { 0 } else { g.verbose }, Ordering::Relaxed);
        LOG_INTERACTIVE.store(interactive, Ordering::Relaxed);
        Ui {
            output: g.output,
            quiet: g.quiet,
            verbose: g.verbose,
            interactive,
            github: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            warnings: Mutex::new(Vec::new()),
            resume_hint: Mutex::new(None),
            command_prefix: Mutex::new("bosar-deploy".into()),
            captured: None,
        }
    }

    /// A non-interactive Ui that records progress lines (without timestamps) for tests.
    pub fn capturing() -> Ui {
        Ui {
            quiet: false,
            captured: Some(Mutex::new(Vec::new())),
            ..Ui::silent()
        }
    }

    /// The lines recorded by a [`Ui::capturing`] Ui.
    pub fn captured(&self) -> Vec<String> {
        self.captured
            .as_ref()
            .map(|c| c.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// A quiet, non-interactive Ui for library callers and tests.
    pub fn silent() -> Ui {
        Ui {
            output: OutputFormat::Text,
            quiet: true,
            verbose: 0,
            interactive: false,
            github: false,
            warnings: Mutex::new(Vec::new()),
            resume_hint: Mutex::new(None),
            command_prefix: Mutex::new("bosar-deploy".into()),
            captured: None,
        }
    }

    /// Remembers the global flags a printed command must repeat: the config file when it is
    /// not the default `./deploy.toml` (given by flag or by `$BOSAR_DEPLOY_CONFIG`), the
    /// region and the profile when given as flags.
    pub fn set_invocation(
        &self,
        config: &std::path::Path,
        g: &GlobalArgs,
        environment: Option<&str>,
    ) {
        let mut prefix = String::from("bosar-deploy");
        if g.config.is_some() || config != std::path::Path::new("deploy.toml") {
            prefix.push_str(" --config ");
            prefix.push_str(&shell_quote(&config.to_string_lossy()));
        }
        if let Some(env) = environment {
            prefix.push_str(&format!(" --env {}", shell_quote(env)));
        }
        for (flag, v) in [("--region", &g.region), ("--profile", &g.profile)] {
            if let Some(v) = v {
                prefix.push_str(&format!(" {flag} {}", shell_quote(v)));
            }
        }
        *self.command_prefix.lock().unwrap() = prefix;
    }

    /// A command line to print: `bosar-deploy [global flags] {rest}`.
    pub fn command(&self, rest: &str) -> String {
        format!("{} {rest}", self.command_prefix.lock().unwrap())
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// A progress line on stderr; timestamped when not on a terminal.
    pub fn line(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let msg = msg.as_ref();
        if let Some(c) = &self.captured {
            c.lock().unwrap().push(msg.to_string());
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.interactive {
            let _ = writeln!(err, "{msg}");
        } else {
            let _ = writeln!(err, "{} {msg}", timestamp());
        }
    }

    /// Detail shown with -v.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 {
            self.line(msg);
        }
    }

    /// A warning: shown even with -q, kept for reports, annotated under GitHub Actions.
    pub fn warn(&self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        self.warnings.lock().unwrap().push(msg.to_string());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {msg}", style("warning:").yellow().bold());
        if self.github {
            // Workflow commands are read from stdout; keep stdout clean for JSON by skipping there.
            if !self.json() {
                println!("::warning::{}", escape_annotation(msg));
            }
        }
    }

    /// An error line (the final error of a failed run).
    pub fn error(&self, msg: impl AsRef<str>, hint: Option<&str>) {
        let msg = msg.as_ref();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {msg}", style("error:").red().bold());
        if let Some(h) = hint {
            let _ = writeln!(err, "  {} {h}", style("hint:").cyan());
        }
        if self.github && !self.json() {
            println!("::error::{}", escape_annotation(msg));
        }
    }

    pub fn set_resume_hint(&self, hint: String) {
        *self.resume_hint.lock().unwrap() = Some(hint);
    }

    /// The watch is over: an interrupt now has nothing to resume.
    pub fn clear_resume_hint(&self) {
        *self.resume_hint.lock().unwrap() = None;
    }

    pub fn resume_hint(&self) -> Option<String> {
        self.resume_hint.lock().unwrap().clone()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap().clone()
    }

    /// A bar of `len` steps (position and message set by the caller) on a terminal only;
    /// hidden otherwise, where the caller prints [`Ui::line`]s instead.
    pub fn bar(&self, len: u64) -> indicatif::ProgressBar {
        if self.interactive && !self.quiet {
            let pb = indicatif::ProgressBar::new(len);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner:.cyan} [{elapsed_precise}] {bar:30.cyan/blue} {pos:>6}/{len} {wide_msg}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            pb
        } else {
            indicatif::ProgressBar::hidden()
        }
    }
}

/// Verbosity for code that has no `Ui` at hand (the AWS call log, the gateway request log).
static LOG_LEVEL: AtomicU8 = AtomicU8::new(0);
static LOG_INTERACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether `-v` was given at least `level` times.
pub fn log_enabled(level: u8) -> bool {
    LOG_LEVEL.load(Ordering::Relaxed) >= level
}

/// A detail line on stderr, formatted as [`Ui::line`] does.
pub fn log_line(msg: &str) {
    let mut err = std::io::stderr().lock();
    if LOG_INTERACTIVE.load(Ordering::Relaxed) {
        let _ = writeln!(err, "{msg}");
    } else {
        let _ = writeln!(err, "{} {msg}", timestamp());
    }
}

/// RFC 3339 UTC timestamp with seconds, for CI logs.
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// `s` as one shell word: unchanged when it is plainly safe, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn escape_annotation(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Prints a serialisable value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_repeat_the_global_flags_quoted_for_a_shell() {
        let ui = Ui::silent();
        assert_eq!(ui.command("wait"), "bosar-deploy wait");
        let g = GlobalArgs {
            config: Some("conf/my deploy.toml".into()),
            region: Some("eu-west-1".into()),
            profile: Some("it's".into()),
            ..Default::default()
        };
        ui.set_invocation(std::path::Path::new("conf/my deploy.toml"), &g, None);
        assert_eq!(
            ui.command("wait --deployment ecs-svc/1"),
            r"bosar-deploy --config 'conf/my deploy.toml' --region eu-west-1 --profile 'it'\''s' wait --deployment ecs-svc/1"
        );
        // From $BOSAR_DEPLOY_CONFIG: the path is repeated too.
        ui.set_invocation(
            std::path::Path::new("/etc/bosar.toml"),
            &GlobalArgs::default(),
            Some("prod"),
        );
        assert_eq!(
            ui.command("status"),
            "bosar-deploy --config /etc/bosar.toml --env prod status"
        );
        ui.set_invocation(
            std::path::Path::new("deploy.toml"),
            &GlobalArgs::default(),
            None,
        );
        assert_eq!(ui.command("status"), "bosar-deploy status");
    }
}
