//! The chart: panels stacked on one time axis (sessions held per target as stacked bands,
//! drops and reconnects as bars, each real-traffic series as a line), the rollout's moments
//! as numbered dashed lines across all of them. Coordinates with one decimal; outside text
//! only through [`super::text`].

use std::fmt::Write as _;

use super::scale::{count_ticks, nice_ceil, offset_text, time_ticks, Linear};
use super::{ours, text, Held, Timeline, TrafficLine};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
/// Room for the moments' numbers above the panels.
const MOMENT_BAND: f64 = 24.0;
/// Room for a panel's title above its plot.
const TITLE: f64 = 20.0;
const GAP: f64 = 18.0;
const AXIS_BAND: f64 = 28.0;
const HELD_HEIGHT: f64 = 200.0;
const CHURN_HEIGHT: f64 = 110.0;
const TRAFFIC_HEIGHT: f64 = 80.0;
const DROP_COLOUR: &str = "#cf222e";
const BACK_COLOUR: &str = "#1a7f37";
const TRAFFIC_COLOUR: &str = "#0969da";

const PALETTE: [&str; 12] = [
    "#0969da", "#bf8700", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#cf222e", "#4d2d00",
    "#6e7781", "#a40e26", "#2da44e", "#953800",
];

/// The colour of target band `i` (ours: no outside text reaches a style).
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The whole `<svg>` element.
pub fn chart(t: &Timeline) -> String {
    let (lo, hi) = t.span();
    let x = Linear::new((lo as f64, hi as f64), (LEFT, WIDTH - RIGHT));
    let mut body = String::new();
    let mut top = MOMENT_BAND;
    if t.probed {
        top = held_panel(&mut body, t, &x, top) + GAP;
        top = churn_panel(&mut body, t, &x, top) + GAP;
    } else if t.traffic.is_empty() {
        empty(
            &mut body,
            top,
            top + TITLE,
            "no session was held and no metric was read",
        );
        top += TITLE + GAP;
    }
    for line in &t.traffic {
        top = traffic_panel(&mut body, line, &x, top) + GAP;
    }
    let axis_y = top - GAP + 4.0;
    let height = axis_y + AXIS_BAND;
    time_axis(&mut body, &x, (lo, hi), axis_y);
    moments(&mut body, t, &x, axis_y);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height:.0}\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\" aria-label=\"the timeline of the run\">\n{body}</svg>\n"
    )
}

/// A panel's title, its y axis and grid; returns the plot's (top, bottom) and y scale.
fn frame(out: &mut String, title: &str, top: f64, height: f64, max: f64) -> (f64, f64, Linear) {
    let plot_top = top + TITLE;
    let bottom = plot_top + height;
    let y = Linear::new((0.0, max), (bottom, plot_top));
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{title}</text>",
        top + 13.0
    );
    for v in count_ticks(max) {
        let py = y.at(v);
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            count_text(v)
        );
    }
    (plot_top, bottom, y)
}

fn count_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn empty(out: &mut String, top: f64, bottom: f64, why: &str) {
    let _ = writeln!(
        out,
        "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        (top + bottom) / 2.0,
        ours(why)
    );
}

/// The x of the start of step `i`, clipped to the run.
fn step_x(t: &Timeline, x: &Linear, i: usize) -> f64 {
    x.at(((i as u64 * t.step_ms).min(t.duration_ms)) as f64)
}

/// Sessions held per target, stacked.
fn held_panel(out: &mut String, t: &Timeline, x: &Linear, top: f64) -> f64 {
    let bands = t.bands();
    let steps = bands.iter().map(|h| h.counts.len()).max().unwrap_or(0);
    let totals: Vec<u64> = (0..steps)
        .map(|i| bands.iter().map(|h| count(h, i) as u64).sum())
        .collect();
    let max = nice_ceil(totals.iter().copied().max().unwrap_or(0) as f64);
    let title = format!("sessions held per target (every {})", step_text(t.step_ms));
    let (plot_top, bottom, y) = frame(out, &ours(&title), top, HELD_HEIGHT, max);
    if totals.iter().all(|v| *v == 0) {
        empty(out, plot_top, bottom, "no session was held");
        return bottom;
    }
    let mut below = vec![0u64; steps];
    for (k, h) in bands.iter().enumerate() {
        let above: Vec<u64> = (0..steps).map(|i| below[i] + count(h, i) as u64).collect();
        let mut pts = Vec::with_capacity(steps * 2 + 4);
        for (i, v) in above.iter().enumerate() {
            pts.push((step_x(t, x, i), y.at(*v as f64)));
            pts.push((step_x(t, x, i + 1), y.at(*v as f64)));
        }
        for i in (0..steps).rev() {
            pts.push((step_x(t, x, i + 1), y.at(below[i] as f64)));
            pts.push((step_x(t, x, i), y.at(below[i] as f64)));
        }
        let _ = writeln!(
            out,
            "<polygon fill=\"{}\" fill-opacity=\"0.8\" points=\"{}\"><title>{}</title></polygon>",
            colour(k),
            points(&pts),
            text(&h.target)
        );
        below = above;
    }
    bottom
}

fn count(h: &Held, i: usize) -> u32 {
    h.counts.get(i).copied().unwrap_or(0)
}

/// The points of a polygon or polyline, repeated ones dropped.
fn points(pts: &[(f64, f64)]) -> String {
    let mut out = String::new();
    let mut last: Option<String> = None;
    for (px, py) in pts {
        let p = format!("{px:.1},{py:.1}");
        if last.as_deref() != Some(p.as_str()) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&p);
            last = Some(p);
        }
    }
    out
}

fn step_text(ms: u64) -> String {
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// Drops (red) and reconnects (green) per step, side by side.
fn churn_panel(out: &mut String, t: &Timeline, x: &Linear, top: f64) -> f64 {
    let biggest = t
        .drops
        .iter()
        .chain(&t.reconnects)
        .copied()
        .max()
        .unwrap_or(0);
    let max = nice_ceil(biggest as f64);
    let title = format!(
        "<tspan fill=\"{DROP_COLOUR}\">drops</tspan> and <tspan fill=\"{BACK_COLOUR}\">reconnects</tspan> per {}",
        step_text(t.step_ms)
    );
    let (plot_top, bottom, y) = frame(out, &title, top, CHURN_HEIGHT, max);
    if biggest == 0 {
        empty(out, plot_top, bottom, "no session dropped");
        return bottom;
    }
    for (series, colour, half) in [
        (&t.drops, DROP_COLOUR, 0.0),
        (&t.reconnects, BACK_COLOUR, 0.5),
    ] {
        for (i, v) in series.iter().enumerate().filter(|(_, v)| **v > 0) {
            let (x0, x1) = (step_x(t, x, i), step_x(t, x, i + 1));
            let w = ((x1 - x0) / 2.0).max(1.0);
            let top = y.at(*v as f64);
            let _ = writeln!(
                out,
                "<rect fill=\"{colour}\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{v} at {}</title></rect>",
                x0 + half * (x1 - x0),
                bottom - top,
                offset_text((i as u64 * t.step_ms) as i64)
            );
        }
    }
    bottom
}

/// One CloudWatch series as a line with its minutes marked.
fn traffic_panel(out: &mut String, line: &TrafficLine, x: &Linear, top: f64) -> f64 {
    let biggest = line.points.iter().map(|p| p.1).fold(0.0, f64::max);
    let title = format!(
        "{} · {} (CloudWatch, per minute)",
        ours(&line.label),
        text(&line.load_balancer)
    );
    let (plot_top, bottom, y) = frame(out, &title, top, TRAFFIC_HEIGHT, nice_ceil(biggest));
    if line.points.is_empty() {
        empty(out, plot_top, bottom, "no datapoint in the window");
        return bottom;
    }
    let mut pts = line.points.clone();
    pts.sort_by_key(|p| p.0);
    let xy: Vec<(f64, f64)> = pts
        .iter()
        .map(|(t, v)| (x.at(*t as f64), y.at(*v)))
        .collect();
    let _ = writeln!(
        out,
        "<polyline fill=\"none\" stroke=\"{TRAFFIC_COLOUR}\" stroke-width=\"2\" points=\"{}\"/>",
        points(&xy)
    );
    for ((t, v), (px, py)) in pts.iter().zip(&xy) {
        let _ = writeln!(
            out,
            "<circle fill=\"{TRAFFIC_COLOUR}\" cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\"><title>{} at {}</title></circle>",
            count_text(*v),
            offset_text(*t)
        );
    }
    bottom
}

fn time_axis(out: &mut String, x: &Linear, (lo, hi): (i64, i64), axis_y: f64) {
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{axis_y:.1}\" y2=\"{axis_y:.1}\"/>",
        WIDTH - RIGHT
    );
    for tick in time_ticks(lo, hi) {
        let px = x.at(tick as f64);
        let _ = writeln!(
            out,
            "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            axis_y + 16.0,
            offset_text(tick)
        );
    }
}

/// Moments closer than this (pixels) share one label (`1–4`).
const LABEL_ROOM: f64 = 18.0;

/// The label of moments `first..=last` at `px`.
fn flush(out: &mut String, label: Option<(f64, usize, usize)>) {
    if let Some((px, first, last)) = label {
        let n = if first == last {
            format!("{}", first + 1)
        } else {
            format!("{}–{}", first + 1, last + 1)
        };
        let _ = writeln!(
            out,
            "<text class=\"moment-n\" x=\"{px:.1}\" y=\"14\" text-anchor=\"middle\">{n}</text>"
        );
    }
}

/// The moments: a dashed line each, numbered as in the table under the chart; moments too
/// close to tell apart share a label.
fn moments(out: &mut String, t: &Timeline, x: &Linear, axis_y: f64) {
    let mut label: Option<(f64, usize, usize)> = None;
    for (i, m) in t.moments.iter().enumerate() {
        let px = x.at(m.at_ms as f64);
        let _ = writeln!(
            out,
            "<line class=\"moment\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{axis_y:.1}\"><title>{} {}</title></line>",
            MOMENT_BAND - 4.0,
            offset_text(m.at_ms),
            text(&m.label),
        );
        label = match label {
            Some((lx, first, _)) if (px - lx).abs() < LABEL_ROOM => Some((lx, first, i)),
            other => {
                flush(out, other);
                Some((px, i, i))
            }
        };
    }
    flush(out, label);
}
