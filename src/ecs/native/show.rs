//! Progress of an ECS-native deployment: on a terminal one bar over the stages AWS documents,
//! in CI one timestamped line per stage, hook wait, traffic step and gate decision, and a
//! "still waiting" line at least once a minute so a log never looks hung.

use std::time::Duration;

use tokio::time::Instant;

use super::stages::{Event, Observation};
use crate::ui::Ui;

/// The stages in the order AWS documents them (the bar's length).
const ORDER: [&str; 10] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

const STILL_WAITING_EVERY: Duration = Duration::from_secs(60);

pub struct Progress<'a> {
    ui: &'a Ui,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_output: Instant,
}

impl<'a> Progress<'a> {
    pub fn new(ui: &'a Ui) -> Progress<'a> {
        let bar = (ui.interactive && !ui.quiet).then(|| {
            let b = indicatif::ProgressBar::new(ORDER.len() as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner:.cyan} {elapsed:>4} [{bar:20.green}] {msg}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            ui,
            bar,
            started: Instant::now(),
            last_output: Instant::now(),
        }
    }

    /// A line: above the bar on a terminal, timestamped in CI.
    pub fn line(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(crate::outside::clean(msg, console::colors_enabled_stderr())),
            None => self
                .ui
                .line(format!("[{:>4}s] {msg}", self.started.elapsed().as_secs())),
        }
        self.last_output = Instant::now();
    }

    pub fn event(&mut self, e: &Event, o: &Observation) {
        let msg = match e {
            Event::Status(s) => format!("status {s}"),
            Event::StageStarted(s) => {
                if let Some(b) = &self.bar {
                    let at = ORDER.iter().position(|x| x == s).unwrap_or(0);
                    b.set_position(at as u64);
                    b.set_message(format!("{s} ({})", o.status));
                }
                format!("stage {s} started")
            }
            Event::StageEnded { stage, took_secs } => format!(
                "stage {stage} ended after {}",
                crate::duration::format(Duration::from_secs((*took_secs).max(0) as u64))
            ),
            Event::HookWaiting {
                hook_id,
                stage,
                expires_at,
            } => format!("lifecycle hook {hook_id} waits at {stage} until {expires_at}"),
            Event::HookEnded { hook_id, status } => format!("lifecycle hook {hook_id}: {status}"),
            Event::Step { weight } => format!("production traffic on the new revision: {weight}%"),
            Event::Decide(_) => return,
            Event::Finished(_) => {
                if let Some(b) = &self.bar {
                    b.set_position(ORDER.len() as u64);
                }
                format!("deployment {}", o.status)
            }
        };
        self.line(&msg);
    }

    /// In CI, "still waiting" once a minute when nothing else was printed.
    pub fn still_waiting(&mut self, state: String) {
        if self.bar.is_none() && self.last_output.elapsed() >= STILL_WAITING_EVERY {
            self.line(&format!("still waiting: {state}"));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
