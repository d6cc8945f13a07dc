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
use crate::gateway::polling::{Jar, Polling, Reply};
use crate::gateway::session::Session;
use crate::gateway::{request_timeout, VerifySettings};
use crate::report::{Check, CheckStatus};
use crate::ui::Ui;

/// Where results go as they are made; `verify` orders them and fills in what is missing.
pub struct Sink<'a> {
    pub ui: &'a Ui,
    pub out: &'a Mutex<Vec<Check>>,
    /// The target these checks run on, for the progress lines (`verify [gw-a]: …`).
    pub target: Option<&'a str>,
}

impl Sink<'_> {
    /// A progress line, with the target's label when there is one.
    fn line(&self, what: impl std::fmt::Display) {
        match self.target {
            Some(t) => self.ui.line(format!("verify [{t}]: {what}")),
            None => self.ui.line(format!("verify: {what}")),
        }
    }

    fn push(&self, c: Check) {
        self.line(format_args!(
            "{} {} ({} ms)",
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

/// Runs the checks in report order, pushing each result as it is made. Every request carries
/// the cookies of `jar`: the one that pins a target, or an empty jar. `spread`: how many
/// targets requests without cookies already reached (then no control session is needed). A
/// step that leaves the rest nothing to go on (no URL, no HTTP client, no session) settles the
/// rest and stops. `other`: the jar of another target (the `recovery` check's other task).
pub async fn run_all(
    s: &VerifySettings,
    sink: &Sink<'_>,
    jar: Jar,
    spread: usize,
    other: Option<Jar>,
) {
    let Some(run) = Run::new(s, sink, jar) else {
        return;
    };
    let health_instance = run.health().await;
    let Some((mut main, reply)) = run.handshake().await else {
        return;
    };
    run.stickiness_and_cookies(&mut main, &reply, health_instance.is_some(), spread)
        .await;
    run.auth().await;
    let rest = async {
        run.upgrade(&mut main).await;
        let Some((mut main, note)) = run.usable_session(main).await else {
            return;
        };
        let joined = run.heartbeat_and_ping(&mut main, &note).await;
        run.disconnect(&mut main, joined, &note).await;
    };
    // The socket.io 2.x client waits for a heartbeat too: beside the main session.
    match s.eio3 {
        Some(expect) => {
            tokio::join!(rest, run.eio3(expect));
        }
        None => rest.await,
    }
    if !s.origins.is_empty() {
        run.cors().await;
    }
    if let Some(expect) = s.recovery {
        run.recovery(expect, other).await;
    }
}

/// One run: the settings, where results go, and the HTTP client with the cookie jar that the
/// main session and the side sessions share.
struct Run<'a, 's> {
    s: &'a VerifySettings,
    sink: &'a Sink<'s>,
    request: Duration,
    base: Url,
    jar: Jar,
    http: Polling,
}

impl<'a, 's> Run<'a, 's> {
    /// The base URL and the HTTP client; without them every check is settled here.
    fn new(s: &'a VerifySettings, sink: &'a Sink<'s>, jar: Jar) -> Option<Self> {
        let request = request_timeout(s);
        let base = match Url::parse(&s.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            _ => {
                sink.push(Check::new(
                    "health",
                    CheckStatus::Fail,
                    Duration::ZERO,
                    format!("\"{}\" is not an http(s) URL", s.shown_url()),
                ));
                sink.skip_rest(&NAMES[1..], "no valid URL");
                return None;
            }
        };
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
                return None;
            }
        };
        Some(Run {
            s,
            sink,
            request,
            base,
            jar,
            http,
        })
    }

    /// `health`; returns the instance id the body names, if any.
    async fn health(&self) -> Option<crate::outside::Outside> {
        let (s, sink) = (self.s, self.sink);
        sink.line(format_args!(
            "GET {}{}",
            crate::gateway::shown_url(self.base.as_str()).trim_end_matches('/'),
            s.health_path
        ));
        let (c, health_instance) = health(&self.http, &s.health_path).await;
        sink.push(c);
        health_instance
    }

    /// `handshake`: opens the main session over polling.
    async fn handshake(&self) -> Option<(Session, Reply)> {
        let (s, sink) = (self.s, self.sink);
        sink.line("Engine.IO handshake over polling");
        let started = Instant::now();
        let (main, reply) = match Session::open_polling(self.http.clone()).await {
            Ok(x) => x,
            Err(e) => {
                sink.push(check(
                    "handshake",
                    CheckStatus::Fail,
                    started,
                    format!("no Engine.IO session: {e}"),
                ));
                sink.skip_rest(&NAMES[2..], "no Engine.IO session (the handshake failed)");
                return None;
            }
        };
        sink.push(handshake_check(&main.handshake, &reply, s, started));
        Some((main, reply))
    }

    /// `cookies` and `stickiness`: rounds with cookies on the main session, then the control
    /// without cookies; the cookies as the jar holds them after both.
    async fn stickiness_and_cookies(
        &self,
        main: &mut Session,
        reply: &Reply,
        read_instances: bool,
        spread: usize,
    ) {
        let (s, sink) = (self.s, self.sink);
        if spread >= 2 {
            sink.line(format_args!(
                "{} polling round trips with cookies (requests without cookies already reached {spread} targets)",
                s.stickiness_rounds
            ));
        } else {
            sink.line(format_args!(
                "{} polling round trips with cookies, then the control without",
                s.stickiness_rounds
            ));
        }
        let started = Instant::now();
        let with = rounds_with_cookies(main, &self.http, s, read_instances).await;
        let control = if spread >= 2 {
            Control::Spread { targets: spread }
        } else {
            control_without_cookies(&self.base, self.request, s.stickiness_rounds).await
        };
        let elapsed = started.elapsed();
        let engine = self.http.engine_url("polling", None);
        let cookies = cookies_facts(&self.jar, &engine);
        let control_lost = matches!(control, Control::Lost { .. } | Control::Spread { .. });
        let https = self.base.scheme() == "https";
        let (status, msg, evidence) = cookies_verdict(&cookies, https, control_lost);
        sink.push(Check::new("cookies", status, reply.elapsed, msg).with_evidence(evidence));
        let (status, msg, evidence) = stickiness_verdict(&with, &control, cookies.awsalb.is_some());
        sink.push(Check::new("stickiness", status, elapsed, msg).with_evidence(evidence));
    }

    /// `auth`, on side sessions.
    async fn auth(&self) {
        self.sink.line(format_args!(
            "CONNECT {} with the token, without one, and with a forged one",
            self.s.namespace
        ));
        self.sink.push(auth(&self.http, self.s).await);
    }

    /// `eio3` (`[gateway] eio3`), on its own sessions with the cookies.
    async fn eio3(&self, expect: bool) {
        self.sink.line(if expect {
            "connect as a socket.io 2.x client (EIO=3), and with a forged token"
        } else {
            "EIO=3 handshake, expecting a refusal"
        });
        self.sink
            .push(super::eio3::eio3(&self.http, self.s, expect).await);
    }

    /// `cors` (`[gateway] origins`): a browser page on each origin, with the cookies.
    async fn cors(&self) {
        self.sink.line(format_args!(
            "as a browser on {}: polling with Origin and credentials, then the upgrade",
            self.s.origins.join(", ")
        ));
        self.sink.push(super::cors::cors(&self.http, self.s).await);
    }

    /// `recovery` (`[gateway] recovery`): a session dropped and resumed on this target and on
    /// another.
    async fn recovery(&self, expect: bool, other: Option<Jar>) {
        self.sink.line(
            "connection state recovery: drop a session after an event, come back with its pid and offset (this target, then another)",
        );
        let other = other.and_then(|j| Polling::new(&self.base, Some(j), self.request).ok());
        self.sink
            .push(super::recovery::recovery(&self.http, other.as_ref(), self.s, expect).await);
    }

    /// `upgrade` of the main session to websocket, with the cookies.
    async fn upgrade(&self, main: &mut Session) {
        self.sink.line("upgrade to websocket with the cookies");
        self.sink.push(upgrade_check(main).await);
    }

    /// The session for heartbeat, ping and disconnect: the main one, or a fresh websocket one
    /// if it was lost (with a note for the messages). `None` when neither is there: those
    /// three checks fail here.
    async fn usable_session(&self, main: Session) -> Option<(Session, String)> {
        let mut main = main;
        let mut note = String::new();
        if let Some(why) = main.broken.clone() {
            match Session::open_ws(self.http.clone()).await {
                Ok(fresh) => {
                    main = fresh;
                    note = " (on a fresh websocket session: the polling session was lost)".into();
                    self.sink.line(format_args!("the polling session was lost ({why}); going on with a fresh websocket session"));
                }
                Err(e) => {
                    let why = format!(
                        "the polling session was lost ({why}) and a websocket session failed ({e})"
                    );
                    for n in ["heartbeat", "ping", "disconnect"] {
                        self.sink.push(Check::new(
                            n,
                            CheckStatus::Fail,
                            Duration::ZERO,
                            format!("not run: {why}"),
                        ));
                    }
                    return None;
                }
            }
        }
        Some((main, note))
    }

    /// `heartbeat` and `ping`; returns whether the namespace was joined.
    async fn heartbeat_and_ping(&self, main: &mut Session, note: &str) -> bool {
        let s = self.s;
        self.sink.line(format_args!(
            "join {} over {} and wait for \"{}\" and the Engine.IO ping",
            s.namespace,
            main.transport.name(),
            s.heartbeat_event
        ));
        let (hb, ping, joined) = heartbeat_and_ping(main, s, note).await;
        self.sink.push(hb);
        self.sink.push(ping);
        joined
    }

    /// `disconnect`: leaves the namespace if it was joined, then closes the session.
    async fn disconnect(&self, main: &mut Session, joined: bool, note: &str) {
        let ns = self.s.namespace.as_str();
        self.sink
            .push(disconnect_check(main, joined.then_some(ns), note).await);
    }
}

async fn upgrade_check(main: &mut Session) -> Check {
    let started = Instant::now();
    if let Some(why) = &main.broken {
        return check(
            "upgrade",
            CheckStatus::Skip,
            started,
            format!("not run: the polling session was lost ({why})"),
        );
    }
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
}

/// `joined` is the namespace when it was joined.
async fn disconnect_check(main: &mut Session, joined: Option<&str>, note: &str) -> Check {
    let started = Instant::now();
    match main.disconnect(joined).await {
        Ok(how) => check(
            "disconnect",
            CheckStatus::Pass,
            started,
            format!(
                "{}closed the {} session: {how}{note}",
                match joined {
                    Some(ns) => format!("left {ns} (DISCONNECT), "),
                    None => String::new(),
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
    }
}
