//! The exit-code contract, the same for every command (README "Exit codes").
//! Scripts branch on these numbers: extend, never renumber.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Success; a dry run with nothing to change.
    Success = 0,
    /// The operation failed: an AWS error, a failed rollout or check.
    Failed = 1,
    /// Usage or configuration error; nothing was called on AWS.
    Usage = 2,
    /// Changes pending (only with `--detailed-exitcode`).
    ChangesPending = 3,
    /// Timed out waiting.
    TimedOut = 4,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// An error that carries its exit code and a hint telling the user what to do next.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Code::Failed, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code of any error: a `Failure` anywhere in the chain decides, else 1.
pub fn code_of(err: &anyhow::Error) -> Code {
    if let Some(f) = err.downcast_ref::<Failure>() {
        return f.code;
    }
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.code))
        .unwrap_or(Code::Failed)
}

/// The whole message of an error: its chain joined with ": ".
pub fn message_of(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The hint of the outermost `Failure` in the chain, if any.
pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    if let Some(f) = err.downcast_ref::<Failure>() {
        if f.hint.is_some() {
            return f.hint.as_deref();
        }
    }
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().and_then(|f| f.hint.as_deref()))
}
