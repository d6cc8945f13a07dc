//! The checks of `verify`, in the order they are reported:
//! health, handshake, cookies, stickiness, auth, upgrade, heartbeat, ping, disconnect.
//!
//! One main session carries the story a browser lives through: handshake over polling with the
//! load balancer's cookies, polling round trips, upgrade to websocket, joining the namespace
//! with the token, heartbeats and pings, disconnect. Side sessions do the controls: one without
//! cookies (stickiness) and three websocket-only ones (auth with the token, without, forged),
//! which need no stickiness and so test auth apart from it. The decisions are pure functions
//! ([`stickiness_verdict`], [`cookies_verdict`], …) with unit tests; the I/O only gathers facts.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cookie_store::CookieExpiration;
use serde_json::{json, Value};
use url::Url;

use super::codec::Handshake;
use super::polling::{Jar, Polling, Reply};
use super::session::{NsReply, Session, Transport};
use super::{
    fmt_duration, instance_of, request_timeout, slack, snippet, token, Error, VerifySettings,
};
use crate::report::{Check, CheckStatus};
use crate::ui::Ui;

/// The checks, in report order.
pub const NAMES: [&str; 9] = [
    "health",
    "handshake",
    "cookies",
    "stickiness",
    "auth",
    "upgrade",
    "heartbeat",
    "ping",
    "disconnect",
];

/// Longest extra wait for a second heartbeat when nothing else is being waited for.
const SECOND_HEARTBEAT_BUDGET: Duration = Duration::from_secs(5);

fn check(name: &str, status: CheckStatus, started: Instant, msg: impl Into<String>) -> Check {
    Check::new(name, status, started.elapsed(), msg)
}

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

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// Runner

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
    let jar = super::polling::new_jar();
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

// ---------------------------------------------------------------------------------------------
// health

async fn health(http: &Polling, path: &str) -> (Check, Option<String>) {
    let started = Instant::now();
    let fail = |msg: String| (check("health", CheckStatus::Fail, started, msg), None);
    let url = match http.url(path) {
        Ok(u) => u,
        Err(e) => return fail(e.to_string()),
    };
    let r = match http.get(url, http.request_timeout).await {
        Ok(r) => r,
        Err(Error::Timeout { after, .. }) => {
            return fail(format!(
                "GET {path}: no answer within {}",
                fmt_duration(after)
            ))
        }
        Err(e) => return fail(format!("GET {path}: {e}")),
    };
    if r.status != 200 {
        return fail(format!(
            "GET {path} answered HTTP {}: {}",
            r.status,
            snippet(&r.body, 160)
        ));
    }
    if !r.content_type.to_ascii_lowercase().contains("json") {
        return fail(format!(
            "GET {path}: content type {:?}, expected application/json",
            if r.content_type.is_empty() {
                "(none)"
            } else {
                &r.content_type
            }
        ));
    }
    let body: Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => {
            return fail(format!(
                "GET {path}: the body is not valid JSON: {e} (got {:?})",
                snippet(&r.body, 60)
            ))
        }
    };
    let instance = instance_of(&body);
    let mut evidence = json!({"status": r.status, "content_type": r.content_type});
    if let Some(i) = &instance {
        evidence["instanceId"] = json!(i);
    }
    if r.body.len() <= 2048 {
        evidence["body"] = body;
    }
    let msg = match &instance {
        Some(i) => format!("GET {path}: 200 JSON in {} ms, instance {i}", ms(r.elapsed)),
        None => format!(
            "GET {path}: 200 JSON in {} ms (no instance id in the body)",
            ms(r.elapsed)
        ),
    };
    (
        check("health", CheckStatus::Pass, started, msg).with_evidence(evidence),
        instance,
    )
}

// ---------------------------------------------------------------------------------------------
// handshake

fn handshake_check(hs: &Handshake, reply: &Reply, s: &VerifySettings, started: Instant) -> Check {
    let mut problems = Vec::new();
    if !hs.upgrades.iter().any(|u| u == "websocket") {
        problems.push(format!(
            "upgrades {:?} does not offer websocket",
            hs.upgrades
        ));
    }
    let want_pi = ms(s.ping_interval);
    let want_pt = ms(s.ping_timeout);
    if hs.ping_interval != want_pi {
        problems.push(format!(
            "pingInterval is {} ms, configured {want_pi} ms (gateway.ping_interval)",
            hs.ping_interval
        ));
    }
    if hs.ping_timeout != want_pt {
        problems.push(format!(
            "pingTimeout is {} ms, configured {want_pt} ms (gateway.ping_timeout)",
            hs.ping_timeout
        ));
    }
    let evidence = json!({
        "upgrades": hs.upgrades,
        "pingInterval": hs.ping_interval,
        "pingTimeout": hs.ping_timeout,
        "maxPayload": hs.max_payload,
        "configured": {"pingInterval": want_pi, "pingTimeout": want_pt},
    });
    let (status, msg) = if problems.is_empty() {
        (
            CheckStatus::Pass,
            format!(
                "open packet in {} ms: upgrades {:?}, pingInterval {} ms, pingTimeout {} ms as configured",
                ms(reply.elapsed),
                hs.upgrades,
                hs.ping_interval,
                hs.ping_timeout
            ),
        )
    } else {
        (CheckStatus::Fail, problems.join("; "))
    };
    check("handshake", status, started, msg).with_evidence(evidence)
}

// ---------------------------------------------------------------------------------------------
// stickiness

/// The round trips on one session with the cookies.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    pub planned: u32,
    pub ok: u32,
    /// The round (1-based) that failed and why.
    pub failure: Option<(u32, Error)>,
    /// Instance ids seen by `GET health_path` with the same cookies, one per round.
    pub instances: Vec<String>,
}

/// The control session without cookies.
#[derive(Debug, Clone)]
pub enum Control {
    /// Could not even open a session.
    NoSession(Error),
    /// Lost the session (400 Session ID unknown) at request `at` (the handshake is request 1).
    Lost { at: u32 },
    /// Failed otherwise at request `at`.
    Failed { at: u32, error: Error },
    /// Every round trip reached the session's target.
    Held { rounds: u32 },
}

async fn rounds_with_cookies(
    main: &mut Session,
    http: &Polling,
    s: &VerifySettings,
    read_instances: bool,
) -> Rounds {
    let mut r = Rounds {
        planned: s.stickiness_rounds,
        ..Rounds::default()
    };
    for i in 1..=s.stickiness_rounds {
        if let Err(e) = main.noop().await {
            r.failure = Some((i, e));
            break;
        }
        r.ok += 1;
        if read_instances {
            if let Ok(url) = http.url(&s.health_path) {
                if let Ok(reply) = http.get(url, http.request_timeout).await {
                    if let Some(i) = serde_json::from_slice::<Value>(&reply.body)
                        .ok()
                        .as_ref()
                        .and_then(instance_of)
                    {
                        r.instances.push(i);
                    }
                }
            }
        }
    }
    r
}

async fn control_without_cookies(base: &Url, request: Duration, rounds: u32) -> Control {
    let http = match Polling::new(base, None, request) {
        Ok(h) => h,
        Err(e) => return Control::NoSession(e),
    };
    let mut session = match Session::open_polling(http).await {
        Ok((s, _)) => s,
        Err(e) => return Control::NoSession(e),
    };
    let mut result = Control::Held { rounds };
    for i in 1..=rounds {
        match session.noop().await {
            Ok(()) => {}
            Err(e) if e.is_session_unknown() => {
                result = Control::Lost { at: i + 1 };
                break;
            }
            Err(error) => {
                result = Control::Failed { at: i + 1, error };
                break;
            }
        }
    }
    session.abandon().await;
    result
}

fn distinct(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// Failing without cookies and passing with them: pass. Both passing: warn. Failing with
/// cookies: fail.
pub fn stickiness_verdict(
    with: &Rounds,
    control: &Control,
    carried_awsalb: bool,
) -> (CheckStatus, String, Value) {
    let targets = distinct(&with.instances);
    let evidence = json!({
        "rounds": with.planned,
        "ok_with_cookies": with.ok,
        "targets_with_cookies": targets,
        "carried_awsalb": carried_awsalb,
        "control_without_cookies": match control {
            Control::NoSession(e) => json!({"result": "no session", "error": e.to_string()}),
            Control::Lost { at } => json!({"result": "lost", "at_request": at}),
            Control::Failed { at, error } => json!({"result": "failed", "at_request": at, "error": error.to_string()}),
            Control::Held { rounds } => json!({"result": "held", "rounds": rounds}),
        },
    });
    if let Some((round, e)) = &with.failure {
        let msg = if e.is_session_unknown() && carried_awsalb {
            format!(
                "round trip {round} of {}: requests carrying AWSALB reached a target that did not know the session (HTTP 400 Session ID unknown)",
                with.planned
            )
        } else if e.is_session_unknown() {
            format!(
                "round trip {round} of {}: requests on one session reached a target that did not know the session (HTTP 400 Session ID unknown); no AWSALB cookie was set, so nothing pins a session to its target",
                with.planned
            )
        } else {
            format!("round trip {round} of {} failed: {e}", with.planned)
        };
        return (CheckStatus::Fail, msg, evidence);
    }
    if targets.len() > 1 {
        return (
            CheckStatus::Fail,
            format!(
                "requests carrying the same cookies reached several targets ({}): stickiness does not pin the session",
                targets.join(", ")
            ),
            evidence,
        );
    }
    let on = match targets.first() {
        Some(t) => format!(" on {t}"),
        None => String::new(),
    };
    match control {
        Control::Lost { at } => (
            CheckStatus::Pass,
            format!(
                "stickiness holds: {}/{} round trips with cookies stayed{on}; without cookies the session was lost at request {at} (400 Session ID unknown)",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::Held { rounds } => (
            CheckStatus::Warn,
            format!(
                "only one target reached or stickiness not exercised: {}/{} round trips with cookies stayed{on}, and so did {rounds} without cookies",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::NoSession(e) => (
            CheckStatus::Warn,
            format!(
                "{}/{} round trips with cookies stayed{on}; stickiness not exercised: the control without cookies got no session ({e})",
                with.ok, with.planned
            ),
            evidence,
        ),
        Control::Failed { at, error } => (
            CheckStatus::Warn,
            format!(
                "{}/{} round trips with cookies stayed{on}; stickiness not exercised: the control without cookies failed at request {at} ({error})",
                with.ok, with.planned
            ),
            evidence,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// cookies

/// What the jar holds for one load balancer cookie (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieFacts {
    pub path: String,
    pub same_site: Option<String>,
    pub secure: bool,
    pub http_only: bool,
    /// Seconds until it expires; `None` for a session cookie.
    pub expires_in: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct AlbCookies {
    pub awsalb: Option<CookieFacts>,
    pub awsalbcors: Option<CookieFacts>,
}

fn cookies_facts(jar: &Jar, engine: &Url) -> AlbCookies {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let Ok(store) = jar.lock() else {
        return AlbCookies::default();
    };
    let facts = |name: &str| {
        store
            .iter_unexpired()
            .filter(|c| c.name() == name && c.matches(engine))
            .map(|c| CookieFacts {
                path: c.path().unwrap_or("/").to_string(),
                same_site: c.same_site().map(|s| s.to_string()),
                secure: c.secure().unwrap_or(false),
                http_only: c.http_only().unwrap_or(false),
                expires_in: match &c.expires {
                    CookieExpiration::AtUtc(t) => Some(t.unix_timestamp() - now),
                    CookieExpiration::SessionEnd => None,
                },
            })
            .next()
    };
    AlbCookies {
        awsalb: facts("AWSALB"),
        awsalbcors: facts("AWSALBCORS"),
    }
}

fn facts_json(f: &Option<CookieFacts>) -> Value {
    match f {
        None => json!({"present": false}),
        Some(f) => json!({
            "present": true,
            "path": f.path,
            "same_site": f.same_site,
            "secure": f.secure,
            "http_only": f.http_only,
            "expires_in_s": f.expires_in,
        }),
    }
}

fn lifetime(f: &CookieFacts) -> String {
    match f.expires_in {
        Some(s) if s > 0 => format!("expires in {}", fmt_duration(Duration::from_secs(s as u64))),
        Some(_) => "already expired".into(),
        None => "session cookie (no Expires)".into(),
    }
}

/// AWSALB must be set (over http without it: fail only when requests are spread over several
/// targets, else warn: nothing balances there). Over https AWSALBCORS needs SameSite=None;
/// Secure; over http its absence is a warning. The lifetime is information only.
pub fn cookies_verdict(
    c: &AlbCookies,
    https: bool,
    spread_without_cookies: bool,
) -> (CheckStatus, String, Value) {
    let mut evidence = json!({
        "AWSALB": facts_json(&c.awsalb),
        "AWSALBCORS": facts_json(&c.awsalbcors),
        "scheme": if https { "https" } else { "http" },
        "note": "Expires is information only: ALB's cookie lifetime is not proof of the configured stickiness duration",
    });
    let Some(alb) = &c.awsalb else {
        let (status, msg) = if https {
            (CheckStatus::Fail, "no AWSALB cookie: the target group's lb_cookie stickiness is off, or this URL is not the ALB")
        } else if spread_without_cookies {
            (CheckStatus::Fail, "no AWSALB cookie, and requests without cookies are spread over several targets: nothing makes sessions sticky")
        } else {
            (CheckStatus::Warn, "no AWSALB cookie: no ALB stickiness in front of this URL (one target reached directly?)")
        };
        return (status, msg.into(), evidence);
    };
    let mut msg = format!(
        "AWSALB set (Path={}, {}; not proof of the configured duration)",
        alb.path,
        lifetime(alb)
    );
    let mut status = CheckStatus::Pass;
    match &c.awsalbcors {
        None if https => {
            status = CheckStatus::Fail;
            msg.push_str("; AWSALBCORS missing: cross-origin clients lose stickiness");
        }
        None => {
            status = CheckStatus::Warn;
            msg.push_str("; AWSALBCORS not set (required over https)");
        }
        Some(cors) => {
            let none = cors
                .same_site
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("none"));
            if none && cors.secure {
                msg.push_str("; AWSALBCORS set with SameSite=None; Secure");
            } else if https {
                status = CheckStatus::Fail;
                msg.push_str(&format!(
                    "; AWSALBCORS lacks SameSite=None; Secure (SameSite={}, Secure={}): cross-origin clients lose stickiness",
                    cors.same_site.as_deref().unwrap_or("unset"),
                    cors.secure
                ));
            } else {
                msg.push_str(
                    "; AWSALBCORS set without SameSite=None; Secure (required over https only)",
                );
            }
        }
    }
    evidence["AWSALB_lifetime"] = json!(lifetime(alb));
    (status, msg, evidence)
}

// ---------------------------------------------------------------------------------------------
// auth

#[derive(Debug, Clone)]
pub enum AuthTry {
    Accepted,
    Refused(String),
    Error(String),
}

impl AuthTry {
    fn describe(&self) -> String {
        match self {
            AuthTry::Accepted => "accepted".into(),
            AuthTry::Refused(m) => format!("CONNECT_ERROR {m:?}"),
            AuthTry::Error(e) => e.clone(),
        }
    }
}

async fn try_connect(http: &Polling, namespace: &str, auth: Option<Value>) -> (AuthTry, Transport) {
    let mut session = match Session::open_ws(http.clone()).await {
        Ok(s) => s,
        // No websocket: fall back to polling (which needs stickiness).
        Err(_) => match Session::open_polling(http.clone()).await {
            Ok((s, _)) => s,
            Err(e) => {
                return (
                    AuthTry::Error(format!("no session: {e}")),
                    Transport::Polling,
                )
            }
        },
    };
    let via = session.transport;
    let result = match session.connect_namespace(namespace, auth).await {
        Ok(NsReply::Connected { .. }) => {
            let _ = session
                .send_sio(&super::codec::SioPacket::disconnect(namespace))
                .await;
            AuthTry::Accepted
        }
        Ok(NsReply::Refused { message }) => AuthTry::Refused(message),
        Err(e) => AuthTry::Error(e.to_string()),
    };
    session.abandon().await;
    (result, via)
}

fn auth_json(t: &token::Secret) -> Value {
    json!({ "token": t.expose() })
}

async fn auth(http: &Polling, s: &VerifySettings) -> Check {
    let started = Instant::now();
    let forged = token::forge();
    let ns = s.namespace.as_str();
    let with = async {
        match &s.token {
            Some(t) => Some(try_connect(http, ns, Some(auth_json(t))).await),
            None => None,
        }
    };
    let (with, without, forged) = tokio::join!(
        with,
        try_connect(http, ns, None),
        try_connect(http, ns, Some(auth_json(&forged)))
    );
    let (status, msg) = auth_verdict(ns, with.as_ref().map(|w| &w.0), &without.0, &forged.0);
    let evidence = json!({
        "namespace": ns,
        "with_token": with.as_ref().map(|w| w.0.describe()),
        "without_token": without.0.describe(),
        "forged_token": forged.0.describe(),
        "transport": without.1.name(),
    });
    check("auth", status, started, msg).with_evidence(evidence)
}

/// Accepted without a token or with a forged one: fail ("auth not enforced"). The token
/// refused: fail. No token configured: skip once the refusals are confirmed.
pub fn auth_verdict(
    ns: &str,
    with: Option<&AuthTry>,
    without: &AuthTry,
    forged: &AuthTry,
) -> (CheckStatus, String) {
    let mut accepted = Vec::new();
    if matches!(without, AuthTry::Accepted) {
        accepted.push("without a token");
    }
    if matches!(forged, AuthTry::Accepted) {
        accepted.push("with a forged token");
    }
    if !accepted.is_empty() {
        return (
            CheckStatus::Fail,
            format!(
                "auth not enforced: {ns} accepted a connection {}",
                accepted.join(" and ")
            ),
        );
    }
    for (what, t) in [
        ("without a token", without),
        ("with a forged token", forged),
    ] {
        if let AuthTry::Error(e) = t {
            return (
                CheckStatus::Fail,
                format!("could not test CONNECT {ns} {what}: {e}"),
            );
        }
    }
    let refusals = format!(
        "without a token: {}; with a forged token: {}",
        without.describe(),
        forged.describe()
    );
    match with {
        None => (
            CheckStatus::Skip,
            format!("no token configured (gateway.token_env or gateway.jwt_secret_env): connecting with one not tested; {refusals}"),
        ),
        Some(AuthTry::Accepted) => (
            CheckStatus::Pass,
            format!("{ns} accepted the token and refused the others ({refusals})"),
        ),
        Some(AuthTry::Refused(m)) => (
            CheckStatus::Fail,
            format!("{ns} refused the configured token: CONNECT_ERROR {m:?}"),
        ),
        Some(AuthTry::Error(e)) => (CheckStatus::Fail, format!("CONNECT {ns} with the token failed: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// heartbeat and ping

/// Joins the namespace, then waits for the heartbeat (acked as it comes) and the ping
/// (answered as it comes) together. Returns both checks and whether the namespace was joined.
async fn heartbeat_and_ping(
    main: &mut Session,
    s: &VerifySettings,
    note: &str,
) -> (Check, Check, bool) {
    let started = Instant::now();
    let ns = s.namespace.as_str();
    let hb_interval = s.heartbeat_interval;
    let hb_slack = slack(hb_interval);

    main.watch(ns, &s.heartbeat_event);
    let auth = s.token.as_ref().map(auth_json);
    let joined: Result<Instant, Check> = match main.connect_namespace(ns, auth).await {
        Ok(NsReply::Connected { at }) => Ok(at),
        Ok(NsReply::Refused { message }) if s.token.is_none() => Err(check(
            "heartbeat",
            CheckStatus::Skip,
            started,
            format!("not run: {ns} refused a connection without a token (CONNECT_ERROR {message:?}); configure gateway.token_env or gateway.jwt_secret_env{note}"),
        )),
        Ok(NsReply::Refused { message }) => Err(check(
            "heartbeat",
            CheckStatus::Fail,
            started,
            format!("could not join {ns}: CONNECT_ERROR {message:?}{note}"),
        )),
        Err(e) => Err(check("heartbeat", CheckStatus::Fail, started, format!("could not join {ns}: {e}{note}"))),
    };

    // The ping: the first one if it came within pingInterval + slack of the open; else the
    // next one, counted from the last pong (or from now, if that is later).
    let pi = {
        let announced = Duration::from_millis(main.handshake.ping_interval);
        if announced <= s.ping_interval * 2 {
            announced
        } else {
            s.ping_interval
        }
    };
    let ping_slack = slack(pi);
    let pump_start = Instant::now();
    let early_ping = main
        .pings
        .first()
        .copied()
        .filter(|t| t.duration_since(main.opened_at) <= pi + ping_slack);
    let ping_ref = main.last_pong.unwrap_or(main.opened_at).max(main.opened_at);
    let ping_deadline = (ping_ref + pi).max(pump_start) + ping_slack;
    let pings_before = main.pings.len();

    // The first heartbeat is due interval + slack after joining; a second one is waited for
    // only when it fits the time spent waiting for the ping anyway, or a short budget.
    let mut hb_deadline: Option<Instant> =
        joined.as_ref().ok().map(|at| *at + hb_interval + hb_slack);
    let mut second_decided = false;
    let mut error: Option<Error> = None;
    loop {
        let now = Instant::now();
        let ping_done =
            early_ping.is_some() || main.pings.len() > pings_before || now >= ping_deadline;
        let seen = main.events.len();
        if seen >= 1 && !second_decided {
            second_decided = true;
            let second = main.events[0].at + hb_interval + hb_slack;
            let budget_end = if ping_done {
                pump_start + SECOND_HEARTBEAT_BUDGET
            } else {
                ping_deadline.max(pump_start + SECOND_HEARTBEAT_BUDGET)
            };
            hb_deadline = (second <= budget_end).then_some(second);
        }
        let hb_done = match hb_deadline {
            None => true,
            Some(d) => seen >= 2 || now >= d,
        };
        if ping_done && hb_done {
            break;
        }
        let mut next = now + Duration::from_secs(3600);
        if !ping_done {
            next = next.min(ping_deadline);
        }
        if let (false, Some(d)) = (hb_done, hb_deadline) {
            next = next.min(d);
        }
        if let Err(e) = main.step(next).await {
            error = Some(e);
            break;
        }
    }

    // heartbeat verdict
    let hb = match &joined {
        Err(c) => c.clone(),
        Ok(at) => heartbeat_verdict(
            s,
            *at,
            &main.events,
            hb_slack,
            error.as_ref(),
            started,
            note,
        ),
    };

    // ping verdict
    let ping_started = started;
    let new_ping = main.pings.get(pings_before).copied();
    let observed = match early_ping {
        Some(t) => Some((t.duration_since(main.opened_at), "the open")),
        None => new_ping.filter(|t| *t <= ping_deadline).map(|t| {
            let from = if pings_before > 0 {
                "the last pong"
            } else {
                "the open"
            };
            (t.duration_since(ping_ref), from)
        }),
    };
    let ping = match (observed, main.pong_errors.first()) {
        (Some(_), Some(e)) => check(
            "ping",
            CheckStatus::Fail,
            ping_started,
            format!("the Engine.IO ping arrived but the pong could not be sent: {e}{note}"),
        ),
        (Some((after, from)), None) => check(
            "ping",
            CheckStatus::Pass,
            ping_started,
            format!(
                "Engine.IO ping {} ms after {from} (pingInterval {} ms), answered with pong{note}",
                ms(after),
                ms(pi)
            ),
        ),
        (None, _) => {
            let why = match &error {
                Some(e) => format!(": {e}"),
                None => String::new(),
            };
            check(
                "ping",
                CheckStatus::Fail,
                ping_started,
                format!(
                    "no Engine.IO ping within pingInterval {} ms + {} ms slack (waited {} ms){why}{note}",
                    ms(pi),
                    ms(ping_slack),
                    ms(pump_start.elapsed())
                ),
            )
        }
    }
    .with_evidence(json!({"pings_answered": main.pings.len(), "pingInterval": ms(pi), "transport": main.transport.name()}));
    (hb, ping, joined.is_ok())
}

fn heartbeat_verdict(
    s: &VerifySettings,
    joined_at: Instant,
    events: &[super::session::EventSeen],
    hb_slack: Duration,
    error: Option<&Error>,
    started: Instant,
    note: &str,
) -> Check {
    let ev = &s.heartbeat_event;
    let interval = s.heartbeat_interval;
    let Some(first) = events.first() else {
        let why = match error {
            Some(e) => format!(": {e}"),
            None => String::new(),
        };
        return check(
            "heartbeat",
            CheckStatus::Fail,
            started,
            format!(
                "no {ev:?} event within {} ms of joining {} (interval {} ms + {} ms slack){why}{note}",
                ms(interval + hb_slack),
                s.namespace,
                ms(interval),
                ms(hb_slack)
            ),
        );
    };
    let after = first.at.duration_since(joined_at);
    let payload = first.payload.clone().unwrap_or(Value::Null);
    let instance = instance_of(&payload);
    let spacing = events.get(1).map(|e| e.at.duration_since(first.at));
    let evidence = json!({
        "event": ev,
        "first_after_ms": ms(after),
        "interval_ms": ms(interval),
        "ack_id": first.ack_id,
        "spacing_ms": spacing.map(ms),
        "instanceId": instance,
        "seq": payload.get("seq"),
    });
    let mut status = CheckStatus::Pass;
    let mut msg = format!("{ev:?} {} ms after joining {}", ms(after), s.namespace);
    if after > interval + hb_slack {
        status = CheckStatus::Fail;
        msg.push_str(&format!(
            ", later than {} ms + {} ms slack",
            ms(interval),
            ms(hb_slack)
        ));
    }
    match (&first.ack_id, &first.acked) {
        (Some(id), Ok(())) => msg.push_str(&format!(", acked (ack id {id})")),
        (Some(id), Err(e)) => {
            status = CheckStatus::Fail;
            msg.push_str(&format!(", the ack (id {id}) could not be sent: {e}"));
        }
        (None, _) => {
            if status == CheckStatus::Pass {
                status = CheckStatus::Warn;
            }
            msg.push_str(", but it asks for no ack (no ack id)");
        }
    }
    if let Some(sp) = spacing {
        msg.push_str(&format!(
            "; spacing {} ms (configured {} ms)",
            ms(sp),
            ms(interval)
        ));
        if (sp > interval + hb_slack || sp < interval / 2) && status == CheckStatus::Pass {
            status = CheckStatus::Warn;
        }
    }
    if let Some(i) = instance {
        msg.push_str(&format!("; from {i}"));
    }
    msg.push_str(note);
    check("heartbeat", status, started, msg).with_evidence(evidence)
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn rounds(ok: u32, failure: Option<(u32, Error)>, inst: &[&str]) -> Rounds {
        Rounds {
            planned: 20,
            ok,
            failure,
            instances: inst.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn unknown() -> Error {
        Error::SessionUnknown {
            status: 400,
            body: "Session ID unknown".into(),
        }
    }

    #[test]
    fn stickiness_table() {
        let held = rounds(20, None, &["gw-1"; 20]);
        let (s, m, _) = stickiness_verdict(&held, &Control::Lost { at: 2 }, true);
        assert_eq!(s, CheckStatus::Pass, "{m}");
        assert!(m.starts_with("stickiness holds"), "{m}");
        let (s, m, _) = stickiness_verdict(&held, &Control::Held { rounds: 20 }, true);
        assert_eq!(s, CheckStatus::Warn);
        assert!(
            m.starts_with("only one target reached or stickiness not exercised"),
            "{m}"
        );
        let lost = rounds(0, Some((1, unknown())), &[]);
        let (s, m, _) = stickiness_verdict(&lost, &Control::Lost { at: 2 }, true);
        assert_eq!(s, CheckStatus::Fail);
        assert!(
            m.contains("requests carrying AWSALB reached a target that did not know the session"),
            "{m}"
        );
        let (s, m, _) = stickiness_verdict(&lost, &Control::Lost { at: 2 }, false);
        assert_eq!(s, CheckStatus::Fail);
        assert!(
            m.contains("reached a target that did not know the session"),
            "{m}"
        );
        assert!(m.contains("no AWSALB cookie"), "{m}");
        let spread = rounds(20, None, &["a", "b"]);
        assert_eq!(
            stickiness_verdict(&spread, &Control::Lost { at: 2 }, true).0,
            CheckStatus::Fail
        );
    }

    fn facts(same_site: Option<&str>, secure: bool) -> CookieFacts {
        CookieFacts {
            path: "/".into(),
            same_site: same_site.map(str::to_string),
            secure,
            http_only: false,
            expires_in: Some(7 * 86400),
        }
    }

    #[test]
    fn cookies_table() {
        let none = AlbCookies::default();
        assert_eq!(cookies_verdict(&none, true, false).0, CheckStatus::Fail);
        assert_eq!(cookies_verdict(&none, false, true).0, CheckStatus::Fail);
        assert_eq!(cookies_verdict(&none, false, false).0, CheckStatus::Warn);
        let alb_only = AlbCookies {
            awsalb: Some(facts(None, false)),
            awsalbcors: None,
        };
        assert_eq!(cookies_verdict(&alb_only, true, true).0, CheckStatus::Fail);
        assert_eq!(cookies_verdict(&alb_only, false, true).0, CheckStatus::Warn);
        let good = AlbCookies {
            awsalb: Some(facts(None, false)),
            awsalbcors: Some(facts(Some("None"), true)),
        };
        let (s, m, _) = cookies_verdict(&good, true, true);
        assert_eq!(s, CheckStatus::Pass, "{m}");
        assert!(m.contains("expires in 7 d"), "{m}");
        let lax = AlbCookies {
            awsalb: Some(facts(None, false)),
            awsalbcors: Some(facts(Some("Lax"), false)),
        };
        assert_eq!(cookies_verdict(&lax, true, true).0, CheckStatus::Fail);
        assert_eq!(cookies_verdict(&lax, false, true).0, CheckStatus::Pass);
    }

    #[test]
    fn auth_table() {
        let refused = AuthTry::Refused("unauthorized".into());
        let (s, m) = auth_verdict(
            "/chat",
            Some(&AuthTry::Accepted),
            &AuthTry::Accepted,
            &AuthTry::Accepted,
        );
        assert_eq!(s, CheckStatus::Fail);
        assert_eq!(m, "auth not enforced: /chat accepted a connection without a token and with a forged token");
        let (s, _) = auth_verdict("/chat", Some(&AuthTry::Accepted), &refused, &refused);
        assert_eq!(s, CheckStatus::Pass);
        let (s, _) = auth_verdict("/chat", None, &refused, &refused);
        assert_eq!(s, CheckStatus::Skip);
        let (s, m) = auth_verdict("/chat", None, &AuthTry::Accepted, &refused);
        assert_eq!(s, CheckStatus::Fail);
        assert!(m.contains("auth not enforced"));
        let (s, _) = auth_verdict("/chat", Some(&refused), &refused, &refused);
        assert_eq!(s, CheckStatus::Fail);
        let (s, _) = auth_verdict(
            "/chat",
            Some(&AuthTry::Accepted),
            &AuthTry::Error("timeout".into()),
            &refused,
        );
        assert_eq!(s, CheckStatus::Fail);
    }
}
