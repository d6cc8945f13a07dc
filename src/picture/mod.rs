//! `--html PATH` (`deploy`, `full`, `verify --reconnect`): one self-contained page with the
//! timeline of the run, and the same timeline as a Mermaid chart for the GitHub step summary.
//!
//! Pure: a [`Timeline`] (the data the run already has, gathered by the verb) becomes a string.
//! The page is inline SVG and CSS, no script, no image, font or style sheet from anywhere, and
//! a Content-Security-Policy of `default-src 'none'; style-src 'unsafe-inline'` says so to
//! the browser. Every outside text (instance ids, AWS names and messages) is an [`Outside`]
//! and reaches the page through [`outside::html_text`] over its escaped form, so `<script>` or
//! `</svg>` in an instance id stays text. The chart is in `svg`, its scales in `scale`, the
//! summary's chart in `mermaid`.

use std::fmt::Write as _;
use std::path::Path;

use crate::exit::Failure;
use crate::outside::{self, Outside};

pub mod mermaid;
pub mod scale;
mod svg;

/// Characters of one outside text on the page.
pub const TEXT_CAP: usize = 120;
/// Targets drawn apart; the rest are summed into one band.
pub const MAX_TARGETS: usize = 12;

/// The sessions one target held, one count per step of the series.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub target: Outside,
    pub counts: Vec<u32>,
}

/// A moment of the rollout: new tasks healthy, draining started, a native stage began.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    /// Milliseconds from the run's start (negative: before it).
    pub at_ms: i64,
    /// Our words with AWS's in them: outside text.
    pub label: Outside,
}

/// One real-traffic series (CloudWatch, a point a minute).
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficLine {
    /// Our words: the series' label and the load balancer (outside text).
    pub label: String,
    pub load_balancer: Outside,
    /// (ms from the run's start, value).
    pub points: Vec<(i64, f64)>,
}

/// What the page shows. The series start at the run's start (t = 0) and are `step_ms` apart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Our words: the verb and what it ran against.
    pub title: String,
    /// The run's start (RFC 3339), when known.
    pub started: Option<String>,
    pub duration_ms: u64,
    pub step_ms: u64,
    pub held: Vec<Held>,
    pub drops: Vec<u32>,
    pub reconnects: Vec<u32>,
    pub moments: Vec<Moment>,
    pub traffic: Vec<TrafficLine>,
    /// Our one-line verdict of the run (`3 dropped, 3 back, p99 1.2 s`).
    pub headline: String,
    /// Sessions were held (a probe ran): their panels are drawn, empty or not.
    pub probed: bool,
}

impl Timeline {
    /// The time axis: the run, widened to every moment and traffic point given.
    pub fn span(&self) -> (i64, i64) {
        let mut lo = 0i64;
        let mut hi = self.duration_ms as i64;
        let times = self.moments.iter().map(|m| m.at_ms).chain(
            self.traffic
                .iter()
                .flat_map(|t| t.points.iter().map(|p| p.0)),
        );
        for t in times {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        (lo, hi.max(lo + 1_000))
    }

    /// The targets as drawn: the [`MAX_TARGETS`] - 1 that held the most, then the rest summed
    /// (named "(N other targets)", our words) when there are more.
    pub fn bands(&self) -> Vec<Held> {
        let mut all = self.held.clone();
        if all.len() <= MAX_TARGETS {
            return all;
        }
        all.sort_by_key(|h| std::cmp::Reverse(h.counts.iter().map(|c| *c as u64).sum::<u64>()));
        let rest = all.split_off(MAX_TARGETS - 1);
        let len = rest.iter().map(|h| h.counts.len()).max().unwrap_or(0);
        let mut counts = vec![0u32; len];
        for h in &rest {
            for (i, c) in h.counts.iter().enumerate() {
                counts[i] = counts[i].saturating_add(*c);
            }
        }
        all.push(Held {
            target: Outside::new(&format!("({} other targets)", rest.len())),
            counts,
        });
        all
    }
}

/// Outside text for the page: escaped for a terminal first (control characters visible,
/// capped), then for HTML.
pub fn text(o: &Outside) -> String {
    outside::html_text(&o.shown(TEXT_CAP), TEXT_CAP + 40)
}

/// Our own words for the page (they may still carry a name from outside): HTML-escaped.
pub fn ours(s: &str) -> String {
    outside::html_text(s, 4 * TEXT_CAP)
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328;background:#fff}\
h1{font-size:20px;margin:0 0 4px}p.meta{color:#59636e;margin:0 0 16px}\
svg{display:block;max-width:100%;height:auto}svg text{font-size:12px;fill:#1f2328}\
svg .axis{stroke:#d1d9e0}svg .moment{stroke:#8250df;stroke-dasharray:4 3}\
svg .moment-n{fill:#8250df;font-weight:bold}svg .empty{fill:#59636e;font-style:italic}\
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px 18px}\
ul.legend span{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle}\
table{border-collapse:collapse;margin-top:12px}td,th{border:1px solid #d1d9e0;padding:3px 8px;text-align:left;font-size:13px}";

/// The whole page.
pub fn page(t: &Timeline) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let title = ours(&t.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p class=\"meta\">{}{}</p>\n",
        t.started
            .as_deref()
            .map(|s| format!("started {} · ", ours(s)))
            .unwrap_or_default(),
        ours(&t.headline)
    );
    out.push_str(&svg::chart(t));
    out.push_str(&legend(t));
    out.push_str(&moments_table(t));
    out.push_str("</body></html>\n");
    out
}

/// The targets' colours and names.
fn legend(t: &Timeline) -> String {
    let bands = t.bands();
    if bands.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"legend\">");
    for (i, h) in bands.iter().enumerate() {
        let _ = write!(
            out,
            "<li><span style=\"background:{}\"></span>{}</li>",
            svg::colour(i),
            text(&h.target)
        );
    }
    out.push_str("</ul>\n");
    out
}

/// The rollout's moments, numbered as on the chart.
fn moments_table(t: &Timeline) -> String {
    if t.moments.is_empty() {
        return String::new();
    }
    let mut out = String::from("<table><tr><th>#</th><th>at</th><th>moment</th></tr>");
    for (i, m) in t.moments.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            scale::offset_text(m.at_ms),
            text(&m.label)
        );
    }
    out.push_str("</table>\n");
    out
}

/// `--html PATH` checked before anything runs: a usage error (exit 2) naming the flag when
/// the page could not be written there (a directory, or a folder that is missing or not
/// writable). Nothing is left behind.
pub fn check_path(path: &Path) -> anyhow::Result<()> {
    let usage = |why: String| -> anyhow::Error {
        Failure::usage(format!("--html {}: {why}", path.display()))
            .hint("give a file path in a folder this run can write to, like --html deploy.html")
            .into()
    };
    if path.is_dir() {
        return Err(usage("is a folder".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(usage(format!(
            "the folder {} does not exist",
            dir.display()
        )));
    }
    let probe = dir.join(format!(
        ".bosar-html-check.{}.{:x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(usage(format!("cannot write in {}: {e}", dir.display()))),
    }
}

/// Writes the page (never through a symlink, never half-written). A page that cannot be
/// written is the caller's warning: it never changes the exit code.
pub fn write(path: &Path, t: &Timeline) -> std::io::Result<()> {
    crate::files::replace(path, page(t).as_bytes())
}

#[cfg(test)]
mod tests;
