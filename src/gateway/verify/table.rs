//! What `verify` found over every target, in the shapes its outputs need: the checks merged
//! across targets (`targets` first, then [`super::NAMES`]), the per-target table for the JSON
//! envelope, one line per target for text, one JUnit suite per target, and the summary's
//! "targets checked / healthy".

use serde_json::{json, Value};

use super::fleet::{self, TargetRun};
use super::targets::{Expected, Search, SEARCH_TIME};
use super::NAMES;
use crate::report::{Check, CheckStatus, Step};

/// Every target's checks and the verdict over all of them.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// `targets`, then each of [`NAMES`] over every target.
    pub checks: Vec<Check>,
    pub runs: Vec<TargetRun>,
    pub expected: Expected,
    pub search: Search,
    /// Healthy targets not reached: how many, and their ids when the target group's allow.
    pub unreached: (usize, Vec<String>),
}

impl FleetReport {
    pub fn new(expected: Expected, search: Search, runs: Vec<TargetRun>) -> FleetReport {
        // With no target found, the one run is a stand-in (an empty jar, to say why the checks
        // fail): it was not reached as a target.
        let reached: &[TargetRun] = if search.found.is_empty() { &[] } else { &runs };
        let unreached = fleet::unreached(&expected, reached);
        let (status, msg) = fleet::targets_verdict(&expected, &search, reached);
        let not_run = expected.count.unwrap_or(0).saturating_sub(runs.len());
        let evidence = json!({
            "expected": expected.count,
            "source": expected.source,
            "reached": reached.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
            "attempts": search.attempts,
        });
        let mut targets =
            Check::new("targets", status, search.elapsed, msg).with_evidence(evidence);
        targets = crate::gateway::redact(targets);
        let mut checks = vec![targets];
        checks.extend(NAMES.iter().map(|n| fleet::merge(n, &runs, not_run)));
        // `eio3` and `cors` run only when the config asks: then every run has them.
        for name in super::OPTIONAL {
            if runs.iter().any(|r| r.checks.iter().any(|c| c.name == name)) {
                checks.push(fleet::merge(name, &runs, not_run));
            }
        }
        FleetReport {
            checks,
            runs,
            expected,
            search,
            unreached,
        }
    }

    /// Targets found and checked (not the stand-in run when none was found).
    pub fn reached(&self) -> usize {
        if self.search.found.is_empty() {
            0
        } else {
            self.runs.len()
        }
    }

    /// `targets 2 checked / 2 healthy` (`? healthy` when unknown).
    pub fn summary(&self) -> String {
        format!(
            "targets {} checked / {} healthy",
            self.reached(),
            self.expected
                .count
                .map_or("?".to_string(), |n| n.to_string())
        )
    }

    /// The per-target table of the JSON envelope.
    pub fn table(&self) -> Value {
        json!({
            "expected": self.expected.count,
            "source": self.expected.source,
            "checked": self.reached(),
            "unreached": self.unreached.0,
            "unreached_ids": self.unreached.1,
            "attempts": self.search.attempts,
            "max_attempts": self.search.max_attempts,
            "search_ms": self.search.elapsed.as_millis() as u64,
            "search_bound_ms": SEARCH_TIME.as_millis() as u64,
            "table": self.runs.iter().map(TargetRun::row).collect::<Vec<_>>(),
        })
    }

    /// One text line per target: its result and what failed or warned.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("per target ({}):", self.summary())];
        for r in &self.runs {
            let mut what = crate::report::summary(&r.checks);
            for (status, verb) in [(CheckStatus::Fail, "failed"), (CheckStatus::Warn, "warned")] {
                let names: Vec<&str> = r
                    .checks
                    .iter()
                    .filter(|c| c.status == status)
                    .map(|c| c.name.as_str())
                    .collect();
                if !names.is_empty() {
                    what.push_str(&format!("; {verb}: {}", names.join(", ")));
                }
            }
            out.push(format!("  {} {:<24} {what}", r.status().label(), r.label));
        }
        if self.unreached.0 > 0 {
            let names = if self.unreached.1.is_empty() {
                String::new()
            } else {
                format!(": {}", self.unreached.1.join(", "))
            };
            out.push(format!(
                "  {} {} not reached{names}",
                CheckStatus::Fail.label(),
                self.unreached.0
            ));
        }
        out
    }

    /// One JUnit suite per target (`verify gw-a`), after the merged one.
    pub fn target_steps(&self) -> Vec<Step> {
        self.runs
            .iter()
            .map(|r| {
                let elapsed = std::time::Duration::from_millis(
                    r.checks.iter().map(|c| c.duration_ms).max().unwrap_or(0),
                );
                Step::new(
                    &format!("verify {}", r.label),
                    r.status(),
                    elapsed,
                    crate::report::summary(&r.checks),
                )
                .with_checks(r.checks.clone())
            })
            .collect()
    }
}
