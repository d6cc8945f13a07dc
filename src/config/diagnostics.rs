//! Configuration errors with their place: `file:line:col: key: message`, what is allowed, and
//! a "did you mean" for a misspelt key. Every error of a file is collected and shown together.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration error, rendered as `file:line:col: key: message` plus what is allowed.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
    pub allowed: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(allowed) = &self.allowed {
            write!(f, "\n  allowed: {allowed}")?;
        }
        Ok(())
    }
}

/// All errors found in one file, so a user fixes them in one round.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

pub(super) struct Errors<'a> {
    pub(super) file: &'a Path,
    pub(super) source: &'a str,
    pub(super) list: Vec<ConfigError>,
    /// The environment overlaid on the file and where its table is: errors on a value that
    /// came from it name it (`environments.production.target_group.cookie_duration`).
    pub(super) environment: Option<(String, Range<usize>)>,
}

impl<'a> Errors<'a> {
    pub(super) fn new(file: &'a Path, source: &'a str) -> Errors<'a> {
        Errors {
            file,
            source,
            list: Vec::new(),
            environment: None,
        }
    }

    pub(super) fn at(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        allowed: Option<&str>,
    ) {
        let (line, column) = line_col(self.source, span.start);
        let key = match &self.environment {
            Some((name, table))
                if table.contains(&span.start) && !key.starts_with("environments.") =>
            {
                format!("environments.{name}.{key}")
            }
            _ => key.to_string(),
        };
        let error = ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            message: message.into(),
            allowed: allowed.map(str::to_string),
        };
        // The same value can be read twice (the base and an environment's copy of it).
        if !self
            .list
            .iter()
            .any(|e| e.line == error.line && e.column == error.column && e.message == error.message)
        {
            self.list.push(error);
        }
    }
}

/// The allowed key closest to `key` by edit distance, when it is close enough to be a typo.
pub(super) fn did_you_mean<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over characters, case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_near_key_only() {
        let keys = ["cookie_duration", "cookie_name", "stickiness", "algorithm"];
        assert_eq!(
            did_you_mean("cookie_duraton", &keys),
            Some("cookie_duration")
        );
        assert_eq!(did_you_mean("stickyness", &keys), Some("stickiness"));
        assert_eq!(did_you_mean("algoritm", &keys), Some("algorithm"));
        assert_eq!(did_you_mean("region", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
