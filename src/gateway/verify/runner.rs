//! The run of the checks, in report order: one main session carries the story a browser lives
//! through (handshake over polling with the load balancer's cookies, polling round trips,
//! upgrade to websocket, joining the namespace with the token, heartbeats and pings,
//! disconnect); side sessions do the controls. Results go to a [`Sink`] as they are made.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use url::Url;

use super::auth::auth;
use super::cookies::{cookies_facts, cookies_verdict};
use super::handshake::handshake_check;
use super::health::health;
use super::heartbeat::heartbeat_and_ping;
use super::stickiness::{
    control_without_cookies, rounds_with_cookies, stickiness_verdict, Control,
};
use super::{check, ms, NAMES};
use crate::gateway::polling::{self, Polling};
use crate::gateway::session::Session;
use crate::gateway::{request_timeout, VerifySettings};
use crate::report::{Check, CheckStatus};
use crate::ui::Ui;

/// Where results go as they are made; `verify` orders them and fills in what is missing.
pub struct Sink<'a> {
    pub ui: &'a Ui,
    pub out: &'a Mutex<Vec<Check>>,
}

impl Sink<'_> {
    fn push(&self, c: Check) {
        self.ui.line(format!(
            "verify: {} {} ({} ms)",
            c.name,
            status_word(c.status),
            c.duration_ms
        ));
        if let Ok(mut out) = self.out.lock() {
            out.push(c);
        }
    }
    fn skip_rest(&self, names: &[&str], why: &str) {
        for n in names {
            self.push(Check::new(
                n,
                CheckStatus::Skip,
                Duration::ZERO,
                format!("not run: {why}"),
            ));
        }
    }
}

pub fn status_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "pass",
        CheckStatus::Warn => "warn",
        CheckStatus::Fail => "fail",
        CheckStatus::Skip => "skip",
    }
}

pub async fn run_all(s: &VerifySettings, sink: &Sink<'_>) {
    let request = request_timeout(s);
    let base = match Url::parse(&s.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => {
            sink.push(Check::new(
                "health",
                CheckStatus::Fail,
                Duration::ZERO,
                format!("{:?} is not an http(s) URL", s.url),
            ));
            sink.skip_rest(&NAMES[1..], "no valid URL");
            return;
        }
    };
    let jar = polling::new_jar();
    let http = match Polling::new(&base, Some(jar.clone()), request) {
        Ok(p) => p,
        Err(e) => {
            sink.push(Check::new(
                "health",
                CheckStatus::Fail,
                Duration::ZERO,
                e.to_string(),
            ));
            sink.skip_rest(&NAMES[1..], "no HTTP client");
            return;
        }
    };

    // health
    sink.ui.line(format!(
        "verify: GET {}{}",
        base.as_str().trim_end_matches('/'),
        s.health_path
    ));
    let (c, health_instance) = health(&http, &s.health_path).await;
    sink.push(c);

    // handshake (opens the main session)
    sink.ui.line("verify: Engine.IO handshake over polling");
    let started = Instant::now();
    let (mut main, reply) = match Session::open_polling(http.clone()).await {
        Ok(x) => x,
        Err(e) => {
            sink.push(check(
                "handshake",
                CheckStatus::Fail,
                started,
                format!("no Engine.IO session: {e}"),
            ));
            sink.skip_rest(&NAMES[2..], "no Engine.IO session (the handshake failed)");
            return;
        }
    };
    sink.push(handshake_check(&main.handshake, &reply, s, started));

    // stickiness: rounds with cookies on the main session, then the control without cookies
    sink.ui.line(format!(
        "verify: {} polling round trips with cookies, then the control without",
        s.stickiness_rounds
    ));
    let started = Instant::now();
    let with = rounds_with_cookies(&mut main, &http, s, health_instance.is_some()).await;
    let control = control_without_cookies(&base, request, s.stickiness_rounds).await;
    let elapsed = started.elapsed();
    let engine = http.engine_url("polling", None);
    let cookies = cookies_facts(&jar, &engine);
    let control_lost = matches!(control, Control::Lost { .. });
    let (status, msg, evidence) = cookies_verdict(&cookies, base.scheme() == "https", control_lost);
    sink.push(Check::new("cookies", status, reply.elapsed, msg).with_evidence(evidence));
    let (status, msg, evidence) = stickiness_verdict(&with, &control, cookies.awsalb.is_some());
    sink.push(Check::new("stickiness", status, elapsed, msg).with_evidence(evidence));

    // auth
    sink.ui.line(format!(
        "verify: CONNECT {} with the token, without one, and with a forged one",
        s.namespace
    ));
    sink.push(auth(&http, s).await);

    // upgrade
    sink.ui
        .line("verify: upgrade to websocket with the cookies");
    let started = Instant::now();
    let upgrade = if let Some(why) = &main.broken {
        check(
            "upgrade",
            CheckStatus::Skip,
            started,
            format!("not run: the polling session was lost ({why})"),
        )
    } else {
        match main.upgrade().await {
            Ok(u) => check(
                "upgrade",
                CheckStatus::Pass,
                started,
                format!(
                    "upgraded to websocket with the cookies in {} ms (2probe, 3probe, pending poll ended with {}, 5)",
                    ms(u.elapsed),
                    if u.pending_poll_ended_with.is_empty() { "nothing".into() } else { u.pending_poll_ended_with.clone() }
                ),
            )
            .with_evidence(json!({"pending_poll_ended_with": u.pending_poll_ended_with})),
            Err(e) => check(
                "upgrade",
                CheckStatus::Fail,
                started,
                format!("websocket upgrade failed: {e}"),
            ),
        }
    };
    sink.push(upgrade);

    // heartbeat and ping (on the main session; on a fresh websocket one if it was lost)
    let mut note = String::new();
    if let Some(why) = main.broken.clone() {
        match Session::open_ws(http.clone()).await {
            Ok(fresh) => {
                main = fresh;
                note = " (on a fresh websocket session: the polling session was lost)".into();
                sink.ui.line(format!("verify: the polling session was lost ({why}); going on with a fresh websocket session"));
            }
            Err(e) => {
                let why = format!(
                    "the polling session was lost ({why}) and a websocket session failed ({e})"
                );
                for n in ["heartbeat", "ping", "disconnect"] {
                    sink.push(Check::new(
                        n,
                        CheckStatus::Fail,
                        Duration::ZERO,
                        format!("not run: {why}"),
                    ));
                }
                return;
            }
        }
    }
    sink.ui.line(format!(
        "verify: join {} over {} and wait for \"{}\" and the Engine.IO ping",
        s.namespace,
        main.transport.name(),
        s.heartbeat_event
    ));
    let (hb, ping, joined) = heartbeat_and_ping(&mut main, s, &note).await;
    sink.push(hb);
    sink.push(ping);

    // disconnect
    let started = Instant::now();
    let ns = joined.then_some(s.namespace.as_str());
    let c = match main.disconnect(ns).await {
        Ok(how) => check(
            "disconnect",
            CheckStatus::Pass,
            started,
            format!(
                "{}closed the {} session: {how}{note}",
                if joined {
                    format!("left {} (DISCONNECT), ", s.namespace)
                } else {
                    String::new()
                },
                main.transport.name()
            ),
        ),
        Err(e) => check(
            "disconnect",
            CheckStatus::Fail,
            started,
            format!("no clean disconnect: {e}"),
        ),
    };
    sink.push(c);
}
