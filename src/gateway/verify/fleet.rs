//! The verdict over every target: each check said "n of m targets", the failing targets named
//! with why ([`merge`]), and the `targets` check itself ([`targets_verdict`]): were all the
//! healthy targets reached. Pure functions over what the per-target runs found.

use std::time::Duration;

use serde_json::{json, Value};

use super::targets::{Expected, Search};
use crate::outside::Outside;
use crate::report::{Check, CheckStatus};

/// Targets whose messages a passing check shows; the rest are in the per-target table.
const SHOWN_PASSES: usize = 3;

/// The checks of one target, in report order, under its label.
#[derive(Debug, Clone)]
pub struct TargetRun {
    /// The instance id (escaped, bounded) or `target N`.
    pub label: String,
    /// The instance id its health answer or heartbeat named.
    pub instance: Option<Outside>,
    pub checks: Vec<Check>,
}

impl TargetRun {
    pub fn status(&self) -> CheckStatus {
        crate::report::worst(&self.checks)
    }

    /// One row of the per-target table: the target, its result and every check.
    pub fn row(&self) -> Value {
        json!({
            "target": self.label,
            "instance": self.instance,
            "result": crate::report::result_of_checks(self.status()),
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name,
                "status": c.status,
                "message": c.message,
            })).collect::<Vec<_>>(),
        })
    }
}

fn targets_word(m: usize) -> &'static str {
    if m == 1 {
        "target"
    } else {
        "targets"
    }
}

/// Check `name` over every target: the worst status; a message that says how many of the `m`
/// targets (the runs and the `unreached`) passed, and names those that did not, with why.
pub fn merge(name: &str, runs: &[TargetRun], unreached: usize) -> Check {
    let got: Vec<(&TargetRun, &Check)> = runs
        .iter()
        .filter_map(|r| r.checks.iter().find(|c| c.name == name).map(|c| (r, c)))
        .collect();
    let status = if got.iter().all(|(_, c)| c.status == CheckStatus::Skip) {
        CheckStatus::Skip
    } else {
        crate::report::worst(&got.iter().map(|(_, c)| (*c).clone()).collect::<Vec<_>>())
    };
    let all_passed = got.iter().all(|(_, c)| c.status == CheckStatus::Pass);
    let message = match got.as_slice() {
        [(r, c)] if unreached == 0 => {
            format!("1 of 1 target (the only one, {}): {}", r.label, c.message)
        }
        [_, ..] if all_passed && unreached == 0 => passed_message(&got),
        _ => mixed_message(&got, unreached),
    };
    let evidence = json!({
        "targets": got.iter().map(|(r, c)| json!({
            "target": r.label,
            "status": c.status,
            "message": c.message,
            "evidence": c.evidence,
        })).collect::<Vec<_>>(),
    });
    let mut c = Check::new(name, status, Duration::ZERO, message).with_evidence(evidence);
    c.duration_ms = got.iter().map(|(_, c)| c.duration_ms).max().unwrap_or(0);
    c
}

/// `n of m targets`.
fn of(k: usize, m: usize) -> String {
    format!("{k} of {m} {}", targets_word(m))
}

/// Every target passed: how many, and the first few targets' own words.
fn passed_message(got: &[(&TargetRun, &Check)]) -> String {
    let shown: Vec<String> = got
        .iter()
        .take(SHOWN_PASSES)
        .map(|(r, c)| format!("{}: {}", r.label, c.message))
        .collect();
    let mut msg = format!("{} passed; {}", of(got.len(), got.len()), shown.join("; "));
    let more = got.len().saturating_sub(SHOWN_PASSES);
    if more > 0 {
        msg.push_str(&format!("; {more} more in the per-target table"));
    }
    msg
}

/// Not all passed: the failures first (targets with the same words together), then the
/// warnings, the skips, the passes and the targets not reached.
fn mixed_message(got: &[(&TargetRun, &Check)], unreached: usize) -> String {
    let m = got.len() + unreached;
    let mut parts = Vec::new();
    for (status, verb) in [
        (CheckStatus::Fail, "failed"),
        (CheckStatus::Warn, "warned"),
        (CheckStatus::Skip, "skipped"),
    ] {
        for (message, labels) in grouped(got, status) {
            let n = of(labels.len(), m);
            parts.push(format!("{n} {verb} ({}): {message}", labels.join(", ")));
        }
    }
    let passed: Vec<&str> = got
        .iter()
        .filter(|(_, c)| c.status == CheckStatus::Pass)
        .map(|(r, _)| r.label.as_str())
        .collect();
    if !passed.is_empty() {
        parts.push(format!(
            "{} passed ({})",
            of(passed.len(), m),
            passed.join(", ")
        ));
    }
    if unreached > 0 {
        parts.push(format!(
            "{} not reached (see the targets check)",
            of(unreached, m)
        ));
    }
    parts.join("; ")
}

/// The targets with `status`, grouped by message (in the order first seen).
fn grouped<'a>(
    got: &[(&'a TargetRun, &'a Check)],
    status: CheckStatus,
) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (r, c) in got.iter().filter(|(_, c)| c.status == status) {
        match out.iter_mut().find(|(m, _)| *m == c.message) {
            Some((_, labels)) => labels.push(&r.label),
            None => out.push((&c.message, vec![&r.label])),
        }
    }
    out
}

/// The healthy targets the runs did not reach: those of the target group that no reached
/// instance names (by id, `id:port`, or EC2's `ip-a-b-c-d` host name); when none can be
/// matched, how many are missing.
pub fn unreached(expected: &Expected, runs: &[TargetRun]) -> (usize, Vec<String>) {
    let want = expected.count.unwrap_or(0);
    let missing = want.saturating_sub(runs.len());
    if missing == 0 {
        return (0, Vec::new());
    }
    let names: Vec<String> = runs
        .iter()
        .filter_map(|r| r.instance.as_ref().map(|i| i.shown(200)))
        .collect();
    let unmatched: Vec<String> = expected
        .ids
        .iter()
        .map(|id| id.shown(200))
        .filter(|id| !names.iter().any(|n| names_target(n, id)))
        .collect();
    if unmatched.len() == missing {
        (missing, unmatched)
    } else {
        (missing, Vec::new())
    }
}

/// Whether an instance id names target `id` (`10.0.1.10:3000`, `10.0.1.10`, `i-0abc`).
fn names_target(instance: &str, id: &str) -> bool {
    let host = id.rsplit_once(':').map_or(id, |(h, _)| h);
    instance == id || instance == host || instance == format!("ip-{}", host.replace('.', "-"))
}

/// The `targets` check: every healthy target reached (pass), one missing (fail, naming it when
/// the target group's ids allow), the count unknown (warn), the count unreadable (fail).
pub fn targets_verdict(
    expected: &Expected,
    search: &Search,
    runs: &[TargetRun],
) -> (CheckStatus, String) {
    let labels = runs
        .iter()
        .map(|r| r.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let reached = match runs.len() {
        0 => "0 targets".to_string(),
        n => format!("{n} ({labels})"),
    };
    let cost = search.cost();
    if let Some(e) = &expected.error {
        let msg = format!(
            "could not learn how many targets are healthy: {e}; reached {reached} in {cost}"
        );
        return (CheckStatus::Fail, msg);
    }
    if let Some(dup) = same_instance_twice(runs) {
        return (
            CheckStatus::Fail,
            format!("two of the targets found are the same instance {dup}: the targets could not be told apart (the health answer names no instance id and the stickiness cookie changes per response)"),
        );
    }
    let Some(n) = expected.count else {
        return (
            CheckStatus::Warn,
            format!("reached {reached} in {cost}; how many targets are healthy is unknown ({}), so some may not have been checked", expected.source),
        );
    };
    let source = &expected.source;
    match runs.len() {
        _ if n == 0 => (CheckStatus::Fail, format!("{source} has no healthy target")),
        k if k < n => (CheckStatus::Fail, missing_message(expected, search, runs)),
        k if k > n => (
            CheckStatus::Warn,
            format!("reached {reached}, more than the {n} healthy ones {source} counts"),
        ),
        _ if n == 1 => (
            CheckStatus::Pass,
            format!("reached the only healthy target ({labels}) in {cost}: one target serves the gateway ({source})"),
        ),
        _ => (
            CheckStatus::Pass,
            format!("reached all {n} healthy targets ({labels}) in {cost} ({source})"),
        ),
    }
}

/// Some healthy targets not reached within the bound: which (or how many), and why the search
/// ended.
fn missing_message(expected: &Expected, search: &Search, runs: &[TargetRun]) -> String {
    let n = expected.count.unwrap_or(0);
    let (missing, names) = unreached(expected, runs);
    let which = if names.is_empty() {
        format!("{missing} not reached")
    } else {
        format!("not reached: {}", names.join(", "))
    };
    let why = match (&search.first_error, search.timed_out) {
        (_, true) => format!(
            "; the search's {} ran out",
            crate::gateway::fmt_duration(super::targets::SEARCH_TIME)
        ),
        (Some(e), _) => format!("; the first failed GET: {e}"),
        _ => String::new(),
    };
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    let labels = match labels.as_slice() {
        [] => String::new(),
        l => format!(" ({})", l.join(", ")),
    };
    format!(
        "reached {} of {n} healthy targets{labels} within {}: {which}{why}",
        runs.len(),
        search.cost()
    )
}

/// An instance id two runs share, if any.
fn same_instance_twice(runs: &[TargetRun]) -> Option<String> {
    runs.iter().enumerate().find_map(|(i, r)| {
        let id = r.instance.as_ref()?;
        runs[i + 1..]
            .iter()
            .any(|o| o.instance.as_ref() == Some(id))
            .then(|| id.shown(80))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, statuses: &[(&str, CheckStatus, &str)]) -> TargetRun {
        TargetRun {
            label: label.into(),
            instance: Some(Outside::new(label)),
            checks: statuses
                .iter()
                .map(|(n, s, m)| Check::new(n, *s, Duration::from_millis(5), *m))
                .collect(),
        }
    }

    fn search(attempts: u32) -> Search {
        Search {
            attempts,
            max_attempts: 30,
            ..Search::default()
        }
    }

    #[test]
    fn a_failing_target_is_named_with_why() {
        let refused =
            "/chat refused the configured token: CONNECT_ERROR \"unauthorized (bad signature)\"";
        let runs = [
            run("gw-a", &[("auth", CheckStatus::Pass, "accepted")]),
            run("gw-b", &[("auth", CheckStatus::Fail, refused)]),
        ];
        let c = merge("auth", &runs, 0);
        assert_eq!(c.status, CheckStatus::Fail);
        assert_eq!(
            c.message,
            format!("1 of 2 targets failed (gw-b): {refused}; 1 of 2 targets passed (gw-a)")
        );
        assert_eq!(c.evidence["targets"][1]["target"], "gw-b");
    }

    #[test]
    fn passes_say_n_of_m_and_the_only_target_says_so() {
        let runs = [
            run("gw-a", &[("ping", CheckStatus::Pass, "ping a")]),
            run("gw-b", &[("ping", CheckStatus::Pass, "ping b")]),
        ];
        let c = merge("ping", &runs, 0);
        assert_eq!(c.status, CheckStatus::Pass);
        assert_eq!(
            c.message,
            "2 of 2 targets passed; gw-a: ping a; gw-b: ping b"
        );
        let c = merge("ping", &runs[..1], 0);
        assert_eq!(c.message, "1 of 1 target (the only one, gw-a): ping a");
        // Identical failures are grouped; an unreached target is counted.
        let same = [
            run("a", &[("auth", CheckStatus::Fail, "refused")]),
            run("b", &[("auth", CheckStatus::Fail, "refused")]),
        ];
        let c = merge("auth", &same, 1);
        assert_eq!(c.message, "2 of 3 targets failed (a, b): refused; 1 of 3 targets not reached (see the targets check)");
        let skipped = [run("a", &[("auth", CheckStatus::Skip, "no token")])];
        assert_eq!(merge("auth", &skipped, 0).status, CheckStatus::Skip);
    }

    #[test]
    fn the_targets_verdict() {
        let runs = [run("10.0.1.10", &[]), run("10.0.2.10", &[])];
        let mut e = Expected::given(2, "--targets");
        let (s, m) = targets_verdict(&e, &search(2), &runs);
        assert_eq!(s, CheckStatus::Pass, "{m}");
        assert!(m.starts_with("reached all 2 healthy targets (10.0.1.10, 10.0.2.10) in 2 attempts (bound 30 attempts, 30 s)"), "{m}");
        e.count = Some(3);
        e.source = "target group tg".into();
        let (s, m) = targets_verdict(&e, &search(40), &runs);
        assert_eq!(s, CheckStatus::Fail);
        assert!(
            m.ends_with("3 not reached") || m.contains("1 not reached"),
            "{m}"
        );
        e.ids = ["10.0.1.10:3000", "10.0.2.10:3000", "10.0.3.10:3000"]
            .map(Outside::new)
            .to_vec();
        let (_, m) = targets_verdict(&e, &search(40), &runs);
        assert!(m.contains("not reached: 10.0.3.10:3000"), "{m}");
        let (s, m) = targets_verdict(&Expected::given(1, "--targets"), &search(1), &runs[..1]);
        assert_eq!(s, CheckStatus::Pass);
        assert!(
            m.starts_with("reached the only healthy target (10.0.1.10)"),
            "{m}"
        );
        let (s, _) = targets_verdict(&Expected::unknown("no --targets"), &search(8), &runs);
        assert_eq!(s, CheckStatus::Warn);
        let err = Expected {
            error: Some("AccessDenied".into()),
            ..Expected::default()
        };
        assert_eq!(
            targets_verdict(&err, &search(8), &runs).0,
            CheckStatus::Fail
        );
        let twice = [run("x", &[]), run("x", &[])];
        assert_eq!(
            targets_verdict(&Expected::given(2, "--targets"), &search(2), &twice).0,
            CheckStatus::Fail
        );
        assert_eq!(
            targets_verdict(&Expected::given(0, "tg"), &search(2), &[]).0,
            CheckStatus::Fail
        );
        assert!(names_target("ip-10-0-1-10", "10.0.1.10:3000"));
        assert!(!names_target("10.0.1.100", "10.0.1.10:3000"));
    }
}
