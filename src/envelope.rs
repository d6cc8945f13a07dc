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
//! own terms (`in_sync`, `no_changes`, `pass`…) is its payload's `result`. Unknown values are
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
    pub warnings: Vec<String>,
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
        error: Option<ErrorDoc>,
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
            warnings,
            payload: map,
        }
    }
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
