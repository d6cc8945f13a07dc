//! The timeline for the GitHub step summary: Mermaid `xychart-beta` charts (GitHub renders
//! them in Markdown), sessions held per target as lines and drops and reconnects per step,
//! then the targets' lines and the rollout's moments as a table. A chart carries only our
//! words and numbers (its title and labels quoted, `"` never in them); every outside text is
//! in the table, through [`outside::markdown_cell`].

use std::fmt::Write as _;

use super::scale::{nice_ceil, offset_text};
use super::Timeline;
use crate::outside;

/// Points on a chart's x axis at most (steps are grouped beyond).
pub const MAX_POINTS: usize = 60;

/// Steps per point and the points' labels.
fn grouping(t: &Timeline, steps: usize) -> (usize, Vec<String>) {
    let group = steps.div_ceil(MAX_POINTS).max(1);
    let labels = (0..steps.div_ceil(group))
        .map(|g| format!("\"{}\"", offset_text((g * group) as i64 * t.step_ms as i64)))
        .collect();
    (group, labels)
}

/// `values` grouped: the largest of each group (sessions held) or the sum (events).
fn grouped(values: &[u32], group: usize, points: usize, sum: bool) -> Vec<u64> {
    (0..points)
        .map(|g| {
            let part = values.iter().skip(g * group).take(group).map(|v| *v as u64);
            if sum {
                part.sum()
            } else {
                part.max().unwrap_or(0)
            }
        })
        .collect()
}

fn list(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Our words for a quoted Mermaid label: no quote, no line break, no markup.
fn label(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '\n' | '\r' | '<' | '>' | '`' | '#' | ';'))
        .collect()
}

/// The Markdown section (empty when there is nothing to draw).
pub fn section(t: &Timeline) -> String {
    let bands = t.bands();
    let steps = bands
        .iter()
        .map(|h| h.counts.len())
        .chain([t.drops.len(), t.reconnects.len()])
        .max()
        .unwrap_or(0);
    if steps == 0 && t.moments.is_empty() && t.traffic.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "#### Timeline: {}\n\n",
        outside::markdown_cell(&t.title, 200)
    );
    if steps > 0 {
        let (group, labels) = grouping(t, steps);
        let held: Vec<Vec<u64>> = bands
            .iter()
            .map(|h| grouped(&h.counts, group, labels.len(), false))
            .collect();
        let top = held.iter().flatten().copied().max().unwrap_or(0);
        let _ = write!(
            out,
            "```mermaid\nxychart-beta\n    title \"{}\"\n    x-axis \"time from the start\" [{}]\n    y-axis \"sessions\" 0 --> {}\n",
            label("Sessions held per target (one line each, in the order below)"),
            labels.join(", "),
            nice_ceil(top as f64)
        );
        for line in &held {
            let _ = writeln!(out, "    line [{}]", list(line));
        }
        out.push_str("```\n\n");
        let drops = grouped(&t.drops, group, labels.len(), true);
        let back = grouped(&t.reconnects, group, labels.len(), true);
        let top = drops.iter().chain(&back).copied().max().unwrap_or(0);
        let _ = write!(
            out,
            "```mermaid\nxychart-beta\n    title \"{}\"\n    x-axis \"time from the start\" [{}]\n    y-axis \"sessions\" 0 --> {}\n    bar [{}]\n    line [{}]\n```\n\n",
            label("Drops (bars) and reconnects (line)"),
            labels.join(", "),
            nice_ceil(top as f64),
            list(&drops),
            list(&back)
        );
        out.push_str("| line | target |\n|---|---|\n");
        for (i, h) in bands.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} |",
                i + 1,
                outside::markdown_cell(&h.target.shown(super::TEXT_CAP), super::TEXT_CAP + 40)
            );
        }
        out.push('\n');
    }
    out.push_str(&traffic(t));
    if !t.moments.is_empty() {
        out.push_str("| # | at | moment |\n|---|---|---|\n");
        for (i, m) in t.moments.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                i + 1,
                offset_text(m.at_ms),
                outside::markdown_cell(&m.label.shown(super::TEXT_CAP), super::TEXT_CAP + 40)
            );
        }
        out.push('\n');
    }
    out
}

/// Real-traffic series drawn at most (the page has them all).
pub const MAX_TRAFFIC_CHARTS: usize = 6;

/// One chart per real-traffic series (a point a minute), then which load balancer each is.
fn traffic(t: &Timeline) -> String {
    let lines: Vec<_> = t
        .traffic
        .iter()
        .filter(|l| !l.points.is_empty())
        .take(MAX_TRAFFIC_CHARTS)
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for line in &lines {
        let mut pts = line.points.clone();
        pts.sort_by_key(|p| p.0);
        let labels: Vec<String> = pts
            .iter()
            .map(|(at, _)| format!("\"{}\"", offset_text(*at)))
            .collect();
        let values: Vec<String> = pts.iter().map(|(_, v)| format!("{v}")).collect();
        let top = pts.iter().map(|p| p.1).fold(0.0, f64::max);
        let _ = write!(
            out,
            "```mermaid\nxychart-beta\n    title \"{}\"\n    x-axis \"minute from the start\" [{}]\n    y-axis {} --> {}\n    line [{}]\n```\n\n",
            label(&format!("{} per minute (CloudWatch)", line.label)),
            labels.join(", "),
            0,
            nice_ceil(top),
            values.join(", ")
        );
    }
    out.push_str("| chart | load balancer |\n|---|---|\n");
    for line in &lines {
        let _ = writeln!(
            out,
            "| {} | {} |",
            outside::markdown_cell(&line.label, 100),
            outside::markdown_cell(
                &line.load_balancer.shown(super::TEXT_CAP),
                super::TEXT_CAP + 40
            )
        );
    }
    out.push('\n');
    out
}

/// Appends [`section`] to `$GITHUB_STEP_SUMMARY` (never through a symlink); nothing when it
/// is not set or there is nothing to draw.
pub fn append_to_summary(t: &Timeline) -> std::io::Result<()> {
    let section = section(t);
    match std::env::var_os("GITHUB_STEP_SUMMARY") {
        Some(path) if !path.is_empty() && !section.is_empty() => {
            crate::files::append(std::path::Path::new(&path), section.as_bytes())
        }
        _ => Ok(()),
    }
}
