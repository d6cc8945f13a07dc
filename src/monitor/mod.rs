//! `bosar-deploy monitor`: a canary between deploys. It holds `--sessions K` Socket.IO sessions
//! through the load balancer as real users' clients would (`held`: reconnecting on
//! socket.io-client's schedule and by its rules, a session it would abandon counted as lost
//! and replaced in the next interval), opens one fresh session and asks the health endpoint every
//! interval, and every `--interval` makes one record (`record`): sessions up, drops by cause,
//! lost by cause and replaced, reconnect time p50/max, the largest heartbeat gap against the configured interval, the
//! handshake and health times, sessions per target. Records go out as plain timestamped lines,
//! JSON lines (`--output json`) or CloudWatch Embedded Metric Format lines (`--emit emf`), and
//! the totals as OpenMetrics on `--prometheus ADDR` (`prom`). It runs until SIGTERM or Ctrl-C
//! (then exits 0 after its last record) or for `--duration`. Memory stays flat: per interval a
//! fixed-size tally, per session its connection and a target name.
//!
//! A verb over the gateway base and the probe's backoff, like `verify`; it imports neither
//! `verify` nor ECS.

pub mod held;
pub mod prom;
pub mod record;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::cli::{Emit, MonitorArgs};
use crate::config::{Config, MonitorSection};
use crate::exit::{Code, Failure};
use crate::gateway::probe::Backoff;
use crate::gateway::VerifySettings;
use crate::ui::Ui;
use held::{Hold, State};
use prom::Totals;
use record::{Record, Tally};

/// How the output goes.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub emf: Option<MonitorSection>,
    pub json: bool,
}

/// What a run needs, apart from the command line.
pub struct Monitor {
    pub hold: Arc<Hold>,
    pub sessions: u32,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub outputs: Outputs,
}

/// The CLI verb.
pub async fn run(args: &MonitorArgs, cfg: &Config, ui: &Ui) -> anyhow::Result<Code> {
    let gw = cfg.gateway_or_url("monitor", args.url.as_deref())?;
    let verify = VerifySettings::from_config(&gw, args.url.as_deref(), args.allow_insecure_token)?;
    let backoff = match args.reconnect_delay {
        Some((min, max)) => Backoff {
            min,
            max,
            ..Backoff::default()
        },
        None => Backoff::default(),
    };
    let listener = match args.prometheus {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Failure::usage(format!("--prometheus {addr}: cannot listen: {e}"))
                .hint("pick a free address and port, like 127.0.0.1:9464")
        })?),
        None => None,
    };
    let m = Monitor {
        hold: Arc::new(Hold {
            request: request_timeout(&verify),
            verify,
            backoff,
        }),
        sessions: args.sessions,
        interval: args.interval,
        duration: args.duration,
        outputs: Outputs {
            emf: (args.emit == Some(Emit::Emf)).then(|| cfg.monitor.clone().unwrap_or_default()),
            json: ui.json(),
        },
    };
    if let Some(l) = &listener {
        if let Ok(a) = l.local_addr() {
            ui.line(format!("OpenMetrics on http://{a}/metrics"));
        }
    }
    ui.line(format!(
        "Holding {} session(s) through {}, a record every {}",
        m.sessions,
        m.hold.verify.shown_url(),
        crate::gateway::fmt_duration(m.interval)
    ));
    // Records are the output: no envelope after them.
    if m.outputs.json {
        ui.context().update(|c| c.emitted = true);
    }
    let _wrap_up = ui.wrap_up_on_interrupt();
    let stop = async {
        match m.duration {
            Some(d) => tokio::select! {
                () = ui.interrupted() => {},
                () = tokio::time::sleep(d) => {},
            },
            None => ui.interrupted().await,
        }
    };
    let totals = Arc::new(Mutex::new(Totals::default()));
    let records = monitor(&m, listener, totals, stop, |line| ui.record_line(line)).await;
    ui.line(format!("Stopped after {records} record(s)"));
    Ok(Code::Success)
}

fn request_timeout(v: &VerifySettings) -> Duration {
    (v.ping_interval + v.ping_timeout).clamp(Duration::from_secs(5), Duration::from_secs(30))
}

fn now_rfc3339() -> (String, u64) {
    let now = SystemTime::now();
    let ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (humantime::format_rfc3339_seconds(now).to_string(), ms)
}

/// Runs the sessions and the recorder until `stop` resolves; each record goes to `out` as one
/// line. After `stop`, one last record (of the partial interval). Returns the records made.
pub async fn monitor(
    m: &Monitor,
    listener: Option<tokio::net::TcpListener>,
    totals: Arc<Mutex<Totals>>,
    stop: impl std::future::Future<Output = ()>,
    out: impl Fn(&str),
) -> u64 {
    let state = Arc::new(Mutex::new(State {
        up: vec![None; m.sessions as usize],
        tally: Tally::default(),
    }));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Changes after each record: lost sessions are replaced then.
    let (tick_tx, tick_rx) = watch::channel(0u64);
    let mut tasks = Vec::new();
    for i in 0..m.sessions as usize {
        tasks.push(tokio::spawn(held::hold(
            i,
            m.hold.clone(),
            state.clone(),
            stop_rx.clone(),
            tick_rx.clone(),
        )));
    }
    let server = listener.map(|l| tokio::spawn(prom::serve(l, totals.clone())));
    tokio::pin!(stop);
    let mut records = 0;
    // Intervals on a fixed schedule: the probe's time does not push the next one back.
    let mut boundary = Instant::now();
    loop {
        let last = tokio::select! {
            () = &mut stop => true,
            () = tokio::time::sleep_until((boundary + m.interval).into()) => false,
        };
        let probe = if last {
            record::Probe::default()
        } else {
            held::probe(&m.hold).await
        };
        let (time, epoch_ms) = now_rfc3339();
        let (rec, tally) = {
            let mut st = state.lock().unwrap();
            let tally = std::mem::take(&mut st.tally);
            let interval_ms = boundary.elapsed().as_millis() as u64;
            let hb = m.hold.verify.heartbeat_interval.as_millis() as u64;
            let rec = Record::new(time, interval_ms, m.sessions, &st.up, &tally, probe, hb);
            (rec, tally)
        };
        // A record that took longer than an interval restarts the schedule from now.
        let next = boundary + m.interval;
        boundary = if Instant::now() > next + m.interval {
            Instant::now()
        } else {
            next
        };
        records += 1;
        totals.lock().unwrap().add(&rec, &tally);
        out(&render(&rec, epoch_ms, &m.outputs));
        let _ = tick_tx.send(records);
        if last {
            break;
        }
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if let Some(s) = server {
        s.abort();
    }
    records
}

/// One record as its line: EMF, JSON, or plain.
fn render(r: &Record, epoch_ms: u64, o: &Outputs) -> String {
    match (&o.emf, o.json) {
        (Some(section), _) => record::emf(r, epoch_ms, &section.namespace, &section.dimensions),
        (None, true) => serde_json::to_string(r).unwrap_or_default(),
        (None, false) => r.line(),
    }
}
