//! How the tool talks to people and CI. Results go to stdout (text or JSON); progress,
//! warnings and errors go to stderr, so `--output json | jq` always sees one clean document.
//! On a terminal: colours and progress bars. Otherwise (CI): plain timestamped lines,
//! printed only when something changed. Under GitHub Actions, warnings and errors are
//! also emitted as `::warning::`/`::error::` annotations.
//!
//! Every line written goes through [`crate::outside::clean`] (redacted, hidden characters
//! escaped, no workflow command at a line start); workflow commands are written only by
//! [`Ui::annotate`], through [`crate::outside::annotation`]. Writing to a closed pipe is not an
//! error. The run's interrupt (Ctrl-C, SIGTERM) is kept here too, so a verb can see it and
//! finish its reports ([`Ui::interrupted`], [`Ui::wrap_up_on_interrupt`]).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use console::style;

use crate::global::{GlobalArgs, OutputFormat};
use crate::outside;

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
    /// Set once by Ctrl-C or SIGTERM.
    interrupt: tokio::sync::watch::Sender<bool>,
    /// Verbs running now that finish their reports when interrupted (see `main`).
    wrapping_up: AtomicUsize,
    /// The longest wrap-up a running verb asked for, in ms (0: `main`'s default).
    wrap_up_ms: std::sync::atomic::AtomicU64,
    /// What to say when interrupted, and what to type next, if the verb set it.
    interrupt_note: Mutex<Option<(String, String)>>,
    /// What `--output json`'s envelope says about the run.
    context: crate::envelope::Shared,
}

/// While alive, an interrupt lets the verb finish its reports (see [`Ui::wrap_up_on_interrupt`]).
pub struct WrapUp<'a>(&'a Ui);

impl Drop for WrapUp<'_> {
    fn drop(&mut self) {
        self.0.wrapping_up.fetch_sub(1, Ordering::SeqCst);
    }
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
            interrupt: tokio::sync::watch::channel(false).0,
            wrapping_up: AtomicUsize::new(0),
            wrap_up_ms: std::sync::atomic::AtomicU64::new(0),
            interrupt_note: Mutex::new(None),
            context: Default::default(),
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
            interrupt: tokio::sync::watch::channel(false).0,
            wrapping_up: AtomicUsize::new(0),
            wrap_up_ms: std::sync::atomic::AtomicU64::new(0),
            interrupt_note: Mutex::new(None),
            context: Default::default(),
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

    /// The run's context for the JSON envelope (command, config, region, account).
    pub fn context(&self) -> &crate::envelope::Shared {
        &self.context
    }

    /// With `--output json`: the one document on stdout, the envelope around the verb's
    /// `payload` under `key`, ending with `code` (and `error`). Text output: nothing.
    pub fn emit<T: serde::Serialize>(
        &self,
        key: &str,
        payload: &T,
        code: crate::exit::Code,
        error: Option<&anyhow::Error>,
    ) {
        let value = serde_json::to_value(payload).unwrap_or(serde_json::Value::Null);
        self.emit_document(Some((key, value)), code, error);
    }

    /// The envelope without a payload (the run ended before it had one), unless a document
    /// was printed already.
    pub fn emit_ending(&self, code: crate::exit::Code, error: Option<&anyhow::Error>) {
        if !self.context.get().emitted {
            self.emit_document(None, code, error);
        }
    }

    fn emit_document(
        &self,
        payload: Option<(&str, serde_json::Value)>,
        code: crate::exit::Code,
        error: Option<&anyhow::Error>,
    ) {
        if !self.json() {
            return;
        }
        let ctx = self.context.get();
        let doc = crate::envelope::Envelope::new(
            &ctx,
            code,
            error.map(|e| {
                (
                    crate::envelope::ErrorDoc::of(e),
                    crate::envelope::ErrorItem::list_of(e),
                )
            }),
            self.warnings(),
            payload,
        );
        print_json(&doc);
        self.context.update(|c| c.emitted = true);
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Result text on stdout (one or more lines), cleaned; a closed pipe is not an error.
    /// With `--output json` stdout holds the one document only: nothing is printed.
    pub fn out(&self, text: impl AsRef<str>) {
        if self.json() {
            return;
        }
        let text = outside::clean(text.as_ref(), console::colors_enabled());
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// One streamed record on stdout (`monitor`'s lines: plain, JSON or EMF), in every output
    /// format, flushed at once (a log driver reads line by line); a closed pipe is not an
    /// error. Only for text built printable (escaped, or JSON).
    pub fn record_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// A document the user redirects (`init --output-file -`): its bytes as they are, since
    /// escaping would change what it says. Only for text built to be printable.
    pub fn out_document(&self, text: &str) {
        if self.json() {
            return;
        }
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    /// Text on stderr as it is (no timestamp), cleaned: details under an error.
    pub fn err(&self, text: impl AsRef<str>) {
        let text = outside::clean(text.as_ref(), console::colors_enabled_stderr());
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// A workflow command (`::error::`, `::warning::`) on stdout, under GitHub Actions and when
    /// stdout is not a JSON document; the only place this tool writes one.
    pub fn annotate(&self, kind: &str, title: Option<&str>, msg: &str) {
        if self.github && !self.json() {
            let line = outside::annotation(kind, title, msg);
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    /// A progress line on stderr; timestamped when not on a terminal.
    pub fn line(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let msg = outside::clean(msg.as_ref(), console::colors_enabled_stderr());
        if let Some(c) = &self.captured {
            c.lock().unwrap().push(msg);
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.interactive {
            let _ = writeln!(err, "{msg}");
        } else {
            let _ = writeln!(err, "{} {msg}", timestamp());
        }
    }

    /// -v or more.
    pub fn verbose(&self) -> bool {
        self.verbose > 0
    }

    /// Detail shown with -v.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 {
            self.line(msg);
        }
    }

    /// A warning: shown even with -q, kept for reports, annotated under GitHub Actions.
    pub fn warn(&self, msg: impl AsRef<str>) {
        let msg = outside::clean(msg.as_ref(), false);
        self.warnings.lock().unwrap().push(msg.clone());
        self.err(format!("{} {msg}", style("warning:").yellow().bold()));
        // Workflow commands are read from stdout; keep stdout clean for JSON by skipping there.
        self.annotate("warning", None, &msg);
    }

    /// An error line (the final error of a failed run).
    pub fn error(&self, msg: impl AsRef<str>, hint: Option<&str>) {
        let msg = msg.as_ref();
        self.err(format!("{} {msg}", style("error:").red().bold()));
        if let Some(h) = hint {
            self.err(format!("  {} {h}", style("hint:").cyan()));
        }
        self.annotate("error", None, msg);
    }

    pub fn set_resume_hint(&self, hint: String) {
        *self.resume_hint.lock().unwrap() = Some(hint);
    }

    /// What an interrupt prints for this verb: the message and the command to type next.
    pub fn set_interrupt_note(&self, message: impl Into<String>, next: impl Into<String>) {
        *self.interrupt_note.lock().unwrap() = Some((message.into(), next.into()));
    }

    pub fn interrupt_note(&self) -> Option<(String, String)> {
        self.interrupt_note.lock().unwrap().clone()
    }

    /// Marks the run interrupted (Ctrl-C or SIGTERM); verbs watching [`Ui::interrupted`] stop.
    pub fn interrupt(&self) {
        self.interrupt.send_replace(true);
    }

    pub fn is_interrupted(&self) -> bool {
        *self.interrupt.borrow()
    }

    /// Resolves once the run is interrupted (at once if it already is).
    pub async fn interrupted(&self) {
        let mut rx = self.interrupt.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// While the guard lives, an interrupt does not drop the verb: `main` waits (briefly) for
    /// it to stop, write its reports and return. Only for work that starts nothing new in AWS
    /// once it sees [`Ui::is_interrupted`].
    pub fn wrap_up_on_interrupt(&self) -> WrapUp<'_> {
        self.wrapping_up.fetch_add(1, Ordering::SeqCst);
        WrapUp(self)
    }

    /// Asks `main` for at least `d` to wrap up after an interrupt (a second signal still ends
    /// the wait): for work whose stop takes calls (tasks to stop on ECS) or a close that takes
    /// longer than the default.
    pub fn need_wrap_up(&self, d: std::time::Duration) {
        self.wrap_up_ms
            .fetch_max(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// The wrap-up a verb asked for (`None`: the default).
    pub fn wrap_up_asked(&self) -> Option<std::time::Duration> {
        let ms = self.wrap_up_ms.load(Ordering::SeqCst);
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    pub fn wraps_up(&self) -> bool {
        self.wrapping_up.load(Ordering::SeqCst) > 0
    }

    /// The watch is over: an interrupt no longer stops watching anything.
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

/// A detail line on stderr, formatted and cleaned as [`Ui::line`] does (it carries text from
/// AWS: request ids).
pub fn log_line(msg: &str) {
    let msg = outside::clean(msg, false);
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

/// Prints a serialisable value as pretty JSON on stdout: one document, lossless, safe for the
/// Actions runner ([`json_text`]).
pub fn print_json<T: serde::Serialize>(value: &T) {
    let text = json_text(value);
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Pretty JSON that the GitHub Actions runner cannot take for a workflow command and that
/// carries no registered secret. JSON escapes every line break in a string, and no line of it
/// starts with `:`; but the runner's legacy form `##[command]` counts anywhere in a line, so
/// `[` after `##` is written `\u005b`, the same string to any JSON reader.
pub fn json_text<T: serde::Serialize>(value: &T) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
        serde_json::json!({"error": format!("the report could not be serialised: {e}")}).to_string()
    });
    outside::redact(&text).replace("##[", "##\\u005b")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line the tool prints goes through `Ui` (and so through `outside::clean`): no
    /// `println!`/`eprintln!`/`print!`/`eprint!` and no direct stdout/stderr handle anywhere
    /// else in `src/` (outside tests). `main.rs` only lets clap print its own help and errors.
    #[test]
    fn output_goes_through_ui_only() {
        fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, files);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        assert!(files.len() > 30, "{files:?}");
        let forbidden = [
            "println!",
            "eprintln!",
            "print!(",
            "eprint!(",
            "io::stdout()",
            "io::stderr()",
        ];
        for f in files {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
            if rel == "ui.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if l.starts_with("//") {
                    continue;
                }
                for w in forbidden {
                    let allowed = rel == "main.rs" && w == "io::stdout()";
                    assert!(
                        allowed || !l.contains(w),
                        "src/{rel}:{}: `{w}` bypasses Ui: {l}",
                        n + 1
                    );
                }
            }
        }
    }

    #[test]
    fn json_output_is_lossless_and_never_a_workflow_command() {
        let v = serde_json::json!({"m": "a\n::error::x ##[add-mask]y \u{202e}", "::k": ["##[z]"]});
        let text = json_text(&v);
        assert!(outside::runner_commands(&text).is_empty(), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

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
