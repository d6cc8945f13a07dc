//! `--output json`: one document, the same envelope for every verb and every exit path
//! (success, failure, dry run, `--no-wait`, usage and config errors), so a script parses any
//! output with one schema (`schema/output.schema.json`):
//!
//! ```json
//! {"tool": "bosar-deploy", "version": "…", "command": "deploy", "environment": null,
//!  "config": "deploy.toml", "region": "us-east-1", "account": "123456789012",
//!  "status": "succeeded", "exit_code": 0, "error": null, "warnings": [],
//!  "deploy": { … the verb's payload … }}
//! ```
//!
//! `status` is the exit code in words, the same in every verb; what a verb concluded in its
//! one vocabulary (`no_changes`, `succeeded`, `warned`…, the schema's `$defs/result`) is its
//! payload's `result`. Unknown values are
//! `null`, never empty strings. The payload's key is the verb's name with `_` for `-`
//! (`alb_update`); `plan` and `full` share `pipeline`, `verify --connections` is `probe`, and
//! `status` (a name the envelope uses itself) is `service`.

use std::sync::Mutex;

use serde::Serialize;

use crate::exit::Code;

/// What the run knows about itself, filled in as it goes (the config once read, the region
/// and account once connected).
#[derive(Debug, Default, Clone)]
pub struct Context {
    pub command: Option<String>,
    pub environment: Option<String>,
    pub config: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    /// Where the credentials came from, once connected.
    pub credentials: Option<CredentialSource>,
    /// A document was printed: `main` prints no second one.
    pub emitted: bool,
}

/// The run's context, shared by `main` and the verbs through `Ui`.
#[derive(Debug, Default)]
pub struct Shared(Mutex<Context>);

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut Context)) {
        if let Ok(mut c) = self.0.lock() {
            f(&mut c);
        }
    }
    pub fn get(&self) -> Context {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Where the credentials came from and why that source won, for `-v` and the envelope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CredentialSource {
    /// `profile prod`, or the SDK provider's name (`EnvironmentVariable`, `WebIdentityToken`…).
    pub source: String,
    /// Why it won: `--profile`, `[aws] profile`, `AWS_PROFILE`, or `the default chain`.
    pub chosen_by: String,
    /// Environment variables that were set but not used (names only).
    pub ignored: Vec<String>,
}

impl CredentialSource {
    pub fn describe(&self) -> String {
        let mut s = format!("{} (chosen by {})", self.source, self.chosen_by);
        if !self.ignored.is_empty() {
            s.push_str(&format!("; ignored {}", self.ignored.join(", ")));
        }
        s
    }
}

/// The exit code in words.
pub fn status_word(code: Code) -> &'static str {
    match code {
        Code::Success => "succeeded",
        Code::Failed => "failed",
        Code::Usage => "usage_error",
        Code::ChangesPending => "changes_pending",
        Code::TimedOut => "timed_out",
        Code::Interrupted => "interrupted",
    }
}

/// The payload's key for a command.
pub fn payload_key(command: &str) -> String {
    match command {
        "plan" | "full" => "pipeline".into(),
        // `status` is the envelope's own field.
        "status" => "service".into(),
        other => other.replace('-', "_"),
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorDoc {
    pub message: String,
    pub hint: Option<String>,
}

impl ErrorDoc {
    pub fn of(e: &anyhow::Error) -> ErrorDoc {
        ErrorDoc {
            message: crate::exit::message_of(e),
            hint: crate::exit::hint_of(e).map(str::to_string),
        }
    }
}

/// One error of `errors`: every error of a config file is its own item with its place, so a
/// script lists them without splitting a string; any other failure is one item.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorItem {
    pub message: String,
    pub hint: Option<String>,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub key: Option<String>,
}

impl ErrorItem {
    pub fn list_of(e: &anyhow::Error) -> Vec<ErrorItem> {
        if let Some(list) = e
            .chain()
            .find_map(|c| c.downcast_ref::<crate::config::ConfigErrors>())
        {
            return list
                .0
                .iter()
                .map(|c| ErrorItem {
                    message: c.message.clone(),
                    hint: c.allowed.as_ref().map(|a| format!("allowed: {a}")),
                    file: Some(c.file.display().to_string()),
                    line: Some(c.line),
                    column: Some(c.column),
                    key: Some(c.key.clone()).filter(|k| !k.is_empty()),
                })
                .collect();
        }
        let doc = ErrorDoc::of(e);
        vec![ErrorItem::plain(doc.message, doc.hint)]
    }

    pub fn plain(message: String, hint: Option<String>) -> ErrorItem {
        ErrorItem {
            message,
            hint,
            file: None,
            line: None,
            column: None,
            key: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Envelope {
    pub tool: &'static str,
    pub version: &'static str,
    pub command: Option<String>,
    pub environment: Option<String>,
    pub config: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub status: &'static str,
    pub exit_code: i32,
    pub error: Option<ErrorDoc>,
    /// Every error, one item each (config errors with file, line, column and key); empty on
    /// success. `error` stays the whole message, for scripts written before `errors`.
    pub errors: Vec<ErrorItem>,
    pub warnings: Vec<String>,
    /// Where the credentials came from and why (null before connecting to AWS).
    pub credentials: Option<CredentialSource>,
    /// The verb's payload under its one key (`null` when the run ended before it had one).
    #[serde(flatten)]
    pub payload: serde_json::Map<String, serde_json::Value>,
}

impl Envelope {
    /// The document for `ctx` ending with `code`; `key` names the payload (`None`: the
    /// command's own key, with `null`).
    pub fn new(
        ctx: &Context,
        code: Code,
        error: Option<(ErrorDoc, Vec<ErrorItem>)>,
        warnings: Vec<String>,
        payload: Option<(&str, serde_json::Value)>,
    ) -> Envelope {
        let mut map = serde_json::Map::new();
        match payload {
            Some((key, value)) => {
                map.insert(key.to_string(), value);
            }
            None => {
                if let Some(c) = &ctx.command {
                    map.insert(payload_key(c), serde_json::Value::Null);
                }
            }
        }
        let (error, errors) = match error {
            Some((doc, items)) => (Some(doc), items),
            None => (None, Vec::new()),
        };
        Envelope {
            tool: "bosar-deploy",
            version: env!("CARGO_PKG_VERSION"),
            command: ctx.command.clone(),
            environment: ctx.environment.clone(),
            config: ctx.config.clone(),
            region: ctx.region.clone().filter(|r| !r.is_empty()),
            account: ctx.account.clone().filter(|a| !a.is_empty()),
            status: status_word(code),
            exit_code: code.as_i32(),
            error,
            errors,
            warnings,
            credentials: ctx.credentials.clone(),
            payload: map,
        }
    }
}

/// clap's rendered usage error as one line: its first line, with the lines indented below it
/// (the arguments a "required arguments were not provided" names), without the usage block.
pub fn usage_message(rendered: &str) -> String {
    let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
    let Some(first) = lines.next() else {
        return "invalid command line".into();
    };
    let mut message = first.trim_start_matches("error: ").trim_end().to_string();
    let named: Vec<&str> = lines
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !named.is_empty() {
        message = format!("{}: {}", message.trim_end_matches(':'), named.join(", "));
    }
    message
}

/// `--output json` as the user typed it, read from the raw arguments: a usage error clap
/// reports happens before the flags are parsed, and it gets a document too.
pub fn json_requested(args: &[String]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--output" && w[1] == "json")
        || args.iter().any(|a| a == "--output=json")
}

/// The subcommand in raw arguments: the first word that is one of `names`.
pub fn command_in(args: &[String], names: &[String]) -> Option<String> {
    args.iter().skip(1).find(|a| names.contains(a)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_null_and_the_payload_key_is_the_verbs() {
        let ctx = Context {
            command: Some("alb-update".into()),
            region: Some(String::new()),
            ..Default::default()
        };
        let doc =
            serde_json::to_value(Envelope::new(&ctx, Code::Usage, None, vec![], None)).unwrap();
        assert_eq!(doc["status"], "usage_error");
        assert_eq!(doc["exit_code"], 2);
        assert!(doc["region"].is_null(), "an empty region is unknown: {doc}");
        assert!(doc["error"].is_null());
        assert!(doc.as_object().unwrap().contains_key("alb_update"));
        assert!(doc["alb_update"].is_null());
        assert_eq!(payload_key("plan"), "pipeline");
    }

    #[test]
    fn a_usage_message_names_the_missing_arguments() {
        let rendered = "error: the following required arguments were not provided:\n  --image <IMAGE>\n  --cluster <C>\n\nUsage: bosar-deploy deploy --image <IMAGE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_message(rendered),
            "the following required arguments were not provided: --image <IMAGE>, --cluster <C>"
        );
        assert_eq!(
            usage_message("error: unexpected argument '--bogus' found\n\nUsage: x\n"),
            "unexpected argument '--bogus' found"
        );
        assert_eq!(usage_message(""), "invalid command line");
    }

    #[test]
    fn config_errors_are_one_item_each_with_their_place() {
        let errs = crate::config::parse(
            std::path::Path::new("d.toml"),
            "[target_group]\nname = 1\nbogus = true\n",
        )
        .unwrap_err();
        let items = ErrorItem::list_of(&anyhow::Error::new(errs));
        assert_eq!(items.len(), 3, "{items:?}");
        let name = items
            .iter()
            .find(|i| i.key.as_deref() == Some("target_group.name"))
            .unwrap();
        assert_eq!(name.file.as_deref(), Some("d.toml"));
        assert_eq!((name.line, name.column), (Some(2), Some(8)));
        assert!(name.hint.as_deref().unwrap().starts_with("allowed: "));
        let bogus = items
            .iter()
            .find(|i| i.key.as_deref() == Some("target_group.bogus"))
            .unwrap();
        assert_eq!(bogus.line, Some(3));
        let one = ErrorItem::list_of(&anyhow::anyhow!("boom"));
        assert_eq!(one, vec![ErrorItem::plain("boom".into(), None)]);
    }

    #[test]
    fn output_json_is_found_in_raw_arguments() {
        let a = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert!(json_requested(&a(
            "bosar-deploy --output json deploy --bogus"
        )));
        assert!(json_requested(&a("bosar-deploy deploy --output=json")));
        assert!(!json_requested(&a("bosar-deploy deploy --output text")));
        let names = vec!["deploy".to_string(), "plan".to_string()];
        assert_eq!(
            command_in(&a("bosar-deploy --output json deploy"), &names).as_deref(),
            Some("deploy")
        );
    }
}
