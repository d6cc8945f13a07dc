//! `cors` (`[gateway] origins`): for each origin of the web app, what a browser page on it
//! needs from the gateway. socket.io-client in a browser sets `withCredentials: true` so the
//! load balancer's cookies travel with the polling requests; the browser then keeps a response
//! only when it carries `Access-Control-Allow-Origin` equal to the page's exact origin (never
//! `*`) and `Access-Control-Allow-Credentials: true`, and otherwise drops it and its cookies:
//! polling lands on another task (`400 Session ID unknown`). So, per origin: the polling
//! handshake, the CONNECT POST (`text/plain`, a simple request: no preflight) and the GET that
//! answers it, each with that `Origin`; the websocket upgrade with that `Origin`; over https
//! the `AWSALBCORS` cookie with `SameSite=None; Secure`; and a warning when the origin and the
//! gateway are on different sites (the cookie is then third-party: Safari and users who block
//! those lose stickiness on polling). The I/O gathers [`OriginFacts`]; [`cors_verdict`]
//! decides.

use std::time::Instant;

use serde_json::json;

use super::auth::auth_json;
use super::check;
use super::cookies::{cookies_facts, CookieFacts};
use crate::gateway::codec::{EioPacket, Handshake, SioPacket};
use crate::gateway::polling::{new_jar, Jar, Polling, Reply};
use crate::gateway::ws::{Incoming, Ws};
use crate::gateway::{codec, VerifySettings};
use crate::report::{Check, CheckStatus};

/// The CORS answer of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub origin: Option<String>,
    pub credentials: Option<String>,
}

impl Allow {
    fn of(r: &Reply) -> Allow {
        Allow {
            origin: r.allow_origin.clone(),
            credentials: r.allow_credentials.clone(),
        }
    }
}

/// What a browser on one origin met.
#[derive(Debug, Clone)]
pub struct OriginFacts {
    pub origin: String,
    /// Handshake GET, CONNECT POST, the GET that answered it (`Err`: the request failed).
    pub requests: Vec<(&'static str, Result<Allow, String>)>,
    pub upgrade: Result<(), String>,
    /// The `AWSALBCORS` cookie as the jar holds it, and whether `AWSALB` is there at all.
    pub awsalbcors: Option<CookieFacts>,
    pub stickiness: bool,
    /// The origin's site and the gateway's, when they differ.
    pub cross_site: Option<(String, String)>,
    /// Polling round trips on the session with only the cookies a browser on this origin
    /// sends: how many stayed on it, or the round that lost it and why (`None`: not tried).
    pub rounds: Option<Result<u32, (u32, String)>>,
}

/// The site of a host, as browsers decide first- or third-party: the registrable domain,
/// approximated without the public suffix list as the last two labels, or three when the
/// second-level label is a common public one under a country code (`co.uk`, `com.au`). An IP
/// address is its own site.
pub fn site_of(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3
        && labels[n - 1].len() == 2
        && ["co", "com", "net", "org", "gov", "edu", "ac"].contains(&labels[n - 2])
    {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// What is wrong with one request's answer for a page on `o`.
fn request_problems(o: &str, r: &Result<Allow, String>) -> Vec<String> {
    let a = match r {
        Err(e) => return vec![format!("failed: {e}")],
        Ok(a) => a,
    };
    let mut out = Vec::new();
    match a.origin.as_deref() {
        Some(v) if v == o => {}
        Some("*") => out.push("Access-Control-Allow-Origin is *, which browsers refuse with credentials: answer the exact origin".to_string()),
        Some(v) => out.push(format!("Access-Control-Allow-Origin is {v:?}, not {o}")),
        None => out.push("no Access-Control-Allow-Origin: the browser drops the answer".into()),
    }
    if a.credentials.as_deref() != Some("true") {
        out.push(format!(
            "Access-Control-Allow-Credentials is {}, not true: the browser drops the answer and its cookies, so polling loses its target",
            a.credentials.as_deref().map_or("absent".to_string(), |c| format!("{c:?}"))
        ));
    }
    out
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The problems of one origin (each fails the check) and its warnings.
fn origin_verdict(f: &OriginFacts, https: bool) -> (Vec<String>, Vec<String>) {
    let o = &f.origin;
    let mut fail = Vec::new();
    let mut warn = Vec::new();
    // Each problem once, with the requests that had it: "the polling handshake and the poll: …".
    let mut by_problem: Vec<(String, Vec<&str>)> = Vec::new();
    for (what, r) in &f.requests {
        for problem in request_problems(o, r) {
            match by_problem.iter_mut().find(|(p, _)| *p == problem) {
                Some((_, whats)) => whats.push(what),
                None => by_problem.push((problem, vec![what])),
            }
        }
    }
    for (problem, whats) in by_problem {
        fail.push(format!("{}: {problem}", and_list(&whats)));
    }
    if let Err(e) = &f.upgrade {
        fail.push(format!(
            "the websocket upgrade with this Origin failed: {e}"
        ));
    }
    let same_site_none = |c: &CookieFacts| {
        c.same_site
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
            == Some("none")
            && c.secure
    };
    match &f.awsalbcors {
        Some(c) if https && !same_site_none(c) => fail.push(
            "AWSALBCORS is not SameSite=None; Secure: browsers do not send it from another site"
                .into(),
        ),
        Some(_) => {}
        None if f.stickiness => warn.push(
            "no AWSALBCORS cookie: a browser on another site sends no stickiness cookie with its polling requests".into(),
        ),
        None => {}
    }
    if let Some(Err((round, why))) = &f.rounds {
        let sends = if f.cross_site.is_some() {
            "only its SameSite=None; Secure cookies"
        } else {
            "the load balancer's cookies"
        };
        fail.push(format!(
            "polling as a browser here (sending {sends}) lost the session at round trip {round}: {why}"
        ));
    }
    if let Some((origin_site, gateway_site)) = &f.cross_site {
        warn.push(format!(
            "{origin_site} and the gateway's {gateway_site} are different sites: AWSALBCORS is a third-party cookie there, which Safari (and users who block third-party cookies) do not send, so their polling loses stickiness"
        ));
    }
    (fail, warn)
}

/// `cors` over every origin: fails when one fails, warns when one warns.
pub fn cors_verdict(facts: &[OriginFacts], https: bool) -> (CheckStatus, String) {
    let mut status = CheckStatus::Pass;
    let mut parts = Vec::new();
    for f in facts {
        let (fail, warn) = origin_verdict(f, https);
        if !fail.is_empty() {
            status = CheckStatus::Fail;
            parts.push(format!("{}: {}", f.origin, fail.join("; ")));
        } else if !warn.is_empty() {
            if status == CheckStatus::Pass {
                status = CheckStatus::Warn;
            }
            parts.push(format!("{}: works, but {}", f.origin, warn.join("; ")));
        } else {
            parts.push(format!(
                "{}: exact Access-Control-Allow-Origin and credentials on the handshake, the POST and the poll; websocket upgrade accepted{}",
                f.origin,
                if https { "; AWSALBCORS SameSite=None; Secure" } else { "" }
            ));
        }
    }
    (status, parts.join(" | "))
}

/// Handshake, CONNECT, the answering poll and the upgrade as a page on `origin` makes them.
async fn gather(http: &Polling, s: &VerifySettings, origin: &str) -> OriginFacts {
    let t = http.request_timeout;
    let mut requests = Vec::new();
    let mut upgrade = Err("not tried: no session".to_string());
    let mut rounds = None;
    let origin_site = url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(site_of));
    let gateway_site = http.base().host_str().map(site_of);
    let cross_site = matches!((&origin_site, &gateway_site), (Some(o), Some(g)) if o != g);
    let open = http
        .get_from(http.engine_url("polling", None), origin, t)
        .await;
    let sid = match &open {
        Ok(r) => {
            requests.push(("the polling handshake", Ok(Allow::of(r))));
            open_sid(r)
        }
        Err(e) => {
            requests.push(("the polling handshake", Err(e.to_string())));
            None
        }
    };
    if let Some(sid) = sid {
        let url = http.engine_url("polling", Some(&sid));
        let auth = s.token.as_ref().map(auth_json);
        let connect = codec::encode_payload(&[SioPacket::connect(&s.namespace, auth).to_eio()]);
        match http.post_from(url.clone(), origin, connect, t).await {
            Ok(r) => requests.push(("the CONNECT POST", Ok(Allow::of(&r)))),
            Err(e) => requests.push(("the CONNECT POST", Err(e.to_string()))),
        }
        match http.get_from(url, origin, s.ping_interval + t).await {
            Ok(r) => requests.push(("the poll", Ok(Allow::of(&r)))),
            Err(e) => requests.push(("the poll", Err(e.to_string()))),
        }
        rounds = Some(rounds_as_browser(http, &sid, origin, cross_site, s.stickiness_rounds).await);
        upgrade = upgrade_from(http, &sid, origin, &s.namespace).await;
    }
    let engine = http.engine_url("polling", None);
    let jar = http
        .jar()
        .cloned()
        .unwrap_or_else(crate::gateway::polling::new_jar);
    let cookies = cookies_facts(&jar, &engine);
    OriginFacts {
        rounds,
        origin: origin.to_string(),
        requests,
        upgrade,
        stickiness: cookies.awsalb.is_some(),
        awsalbcors: cookies.awsalbcors,
        cross_site: match (origin_site, gateway_site) {
            (Some(o), Some(g)) if o != g => Some((o, g)),
            _ => None,
        },
    }
}

/// The jar a browser on the page's origin sends: all of the cookies on the same site; across
/// sites only those marked `SameSite=None; Secure` (browsers drop the rest from cross-site
/// requests).
fn browser_jar(http: &Polling, cross_site: bool) -> Jar {
    let jar = http.jar().cloned().unwrap_or_else(new_jar);
    if !cross_site {
        return jar;
    }
    let url = http.engine_url("polling", None);
    let out = new_jar();
    if let (Ok(from), Ok(mut to)) = (jar.lock(), out.lock()) {
        for c in from.iter_unexpired().filter(|c| c.matches(&url)) {
            let none = c
                .same_site()
                .is_some_and(|s| s.to_string().eq_ignore_ascii_case("none"));
            if none && c.secure().unwrap_or(false) {
                let _ = to.insert_raw(c, &url);
            }
        }
    }
    out
}

/// `rounds` no-op POSTs on the session `sid` as a page on `origin` sends them, with the
/// cookies a browser there sends: each must reach the task that holds the session.
async fn rounds_as_browser(
    http: &Polling,
    sid: &str,
    origin: &str,
    cross_site: bool,
    rounds: u32,
) -> Result<u32, (u32, String)> {
    let t = http.request_timeout;
    let browser = Polling::new(http.base(), Some(browser_jar(http, cross_site)), t)
        .map_err(|e| (0, e.to_string()))?;
    let url = http.engine_url("polling", Some(sid));
    for i in 1..=rounds {
        let noop = codec::encode_payload(&[EioPacket::Noop]);
        match browser.post_from(url.clone(), origin, noop, t).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => {
                return Err((
                    i,
                    format!("HTTP {} {}", r.status, crate::gateway::quoted(&r.body, 60)),
                ))
            }
            Err(e) => return Err((i, e.to_string())),
        }
    }
    Ok(rounds)
}

fn open_sid(r: &Reply) -> Option<String> {
    let text = r.text().ok()?;
    match codec::decode_payload(text).ok()?.into_iter().next()? {
        EioPacket::Open(json) => Handshake::parse(&json).ok().map(|h| h.sid),
        _ => None,
    }
}

/// The upgrade with `Origin`: `2probe`, `3probe`, `5`, then leave.
async fn upgrade_from(http: &Polling, sid: &str, origin: &str, ns: &str) -> Result<(), String> {
    let t = http.request_timeout;
    let mut u = http.engine_url("websocket", Some(sid));
    let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
    let _ = u.set_scheme(scheme);
    let mut ws = Ws::connect_from(&u, http.jar(), t, Some(origin))
        .await
        .map_err(|e| e.to_string())?;
    ws.send(&EioPacket::Ping("probe".into()), t)
        .await
        .map_err(|e| e.to_string())?;
    let answer = ws.recv(Instant::now() + t).await;
    let result = match answer {
        Ok(Some(Incoming::Packet(EioPacket::Pong(p)))) if p == "probe" => ws
            .send(&EioPacket::Upgrade, t)
            .await
            .map_err(|e| e.to_string()),
        Ok(Some(other)) => Err(format!("answered 2probe with {other:?}")),
        Ok(None) => Err("no 3probe".into()),
        Err(e) => Err(e.to_string()),
    };
    let _ = ws.send(&SioPacket::disconnect(ns).to_eio(), t).await;
    let _ = ws.close(t).await;
    result
}

pub(super) async fn cors(http: &Polling, s: &VerifySettings) -> Check {
    let started = Instant::now();
    let mut facts = Vec::new();
    for o in &s.origins {
        facts.push(gather(http, s, o).await);
    }
    let https = http.base().scheme() == "https";
    let (status, msg) = cors_verdict(&facts, https);
    let evidence = json!(facts
        .iter()
        .map(|f| json!({
            "origin": f.origin,
            "requests": f.requests.iter().map(|(w, r)| json!({
                "request": w,
                "allow_origin": r.as_ref().ok().and_then(|a| a.origin.clone()),
                "allow_credentials": r.as_ref().ok().and_then(|a| a.credentials.clone()),
                "error": r.as_ref().err(),
            })).collect::<Vec<_>>(),
            "upgrade": f.upgrade.as_ref().err().cloned().unwrap_or_else(|| "accepted".into()),
            "cross_site": f.cross_site,
        }))
        .collect::<Vec<_>>());
    check("cors", status, started, msg).with_evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://app.bosar.click";

    fn allow(origin: Option<&str>, credentials: Option<&str>) -> Result<Allow, String> {
        Ok(Allow {
            origin: origin.map(str::to_string),
            credentials: credentials.map(str::to_string),
        })
    }

    fn cookie(same_site: Option<&str>, secure: bool) -> CookieFacts {
        CookieFacts {
            path: "/".into(),
            same_site: same_site.map(str::to_string),
            secure,
            http_only: false,
            expires_in: Some(600),
        }
    }

    fn good() -> OriginFacts {
        OriginFacts {
            rounds: Some(Ok(3)),
            origin: O.into(),
            requests: vec![
                ("the polling handshake", allow(Some(O), Some("true"))),
                ("the CONNECT POST", allow(Some(O), Some("true"))),
                ("the poll", allow(Some(O), Some("true"))),
            ],
            upgrade: Ok(()),
            awsalbcors: Some(cookie(Some("None"), true)),
            stickiness: true,
            cross_site: None,
        }
    }

    #[test]
    fn an_exact_origin_with_credentials_passes() {
        let (st, msg) = cors_verdict(&[good()], true);
        assert_eq!(st, CheckStatus::Pass, "{msg}");
        assert!(msg.contains("AWSALBCORS SameSite=None; Secure"), "{msg}");
    }

    #[test]
    fn every_way_a_browser_is_let_down_fails() {
        let mut cases: Vec<(OriginFacts, &str)> = Vec::new();
        let mut f = good();
        f.requests[0].1 = allow(Some("*"), Some("true"));
        cases.push((f, "the polling handshake: Access-Control-Allow-Origin is *"));
        let mut f = good();
        f.requests[1].1 = allow(Some("https://other.example"), Some("true"));
        cases.push((f, "the CONNECT POST: Access-Control-Allow-Origin is \"https://other.example\", not https://app.bosar.click"));
        let mut f = good();
        f.requests[2].1 = allow(None, None);
        cases.push((f, "the poll: no Access-Control-Allow-Origin"));
        let mut f = good();
        f.requests[0].1 = allow(Some(O), None);
        cases.push((f, "Access-Control-Allow-Credentials is absent, not true"));
        let mut f = good();
        f.requests[1].1 = allow(Some(O), Some("false"));
        cases.push((f, "Access-Control-Allow-Credentials is \"false\""));
        let mut f = good();
        f.requests[0].1 = Err("HTTP 403".into());
        cases.push((f, "the polling handshake: failed: HTTP 403"));
        let mut f = good();
        f.upgrade = Err("unexpected HTTP 400".into());
        cases.push((f, "the websocket upgrade with this Origin failed"));
        let mut f = good();
        f.awsalbcors = Some(cookie(Some("Lax"), true));
        cases.push((f, "AWSALBCORS is not SameSite=None; Secure"));
        let mut f = good();
        f.awsalbcors = Some(cookie(Some("None"), false));
        cases.push((f, "AWSALBCORS is not SameSite=None; Secure"));
        for (f, want) in cases {
            let (st, msg) = cors_verdict(&[good(), f], true);
            assert_eq!(st, CheckStatus::Fail, "{msg}");
            assert!(msg.contains(want), "{want}\n{msg}");
        }
        // Over http the cookie's attributes are not judged (a browser keeps no Secure cookie
        // from http anyway).
        let mut f = good();
        f.awsalbcors = Some(cookie(Some("Lax"), false));
        assert_eq!(cors_verdict(&[f], false).0, CheckStatus::Pass);
    }

    #[test]
    fn a_problem_is_named_once_with_every_request_that_had_it() {
        let mut f = good();
        for r in &mut f.requests {
            r.1 = allow(Some("*"), None);
        }
        let (st, msg) = cors_verdict(&[f], true);
        assert_eq!(st, CheckStatus::Fail);
        assert_eq!(
            msg.matches("Access-Control-Allow-Origin is *").count(),
            1,
            "{msg}"
        );
        assert!(
            msg.contains("the polling handshake, the CONNECT POST and the poll: Access-Control-Allow-Origin is *"),
            "{msg}"
        );
    }

    #[test]
    fn third_party_cookies_and_missing_awsalbcors_warn() {
        let mut f = good();
        f.cross_site = Some(("bosar.app".into(), "bosar.click".into()));
        let (st, msg) = cors_verdict(&[f], true);
        assert_eq!(st, CheckStatus::Warn, "{msg}");
        assert!(msg.contains("third-party cookie"), "{msg}");
        let mut f = good();
        f.awsalbcors = None;
        let (st, msg) = cors_verdict(&[f], true);
        assert_eq!(st, CheckStatus::Warn, "{msg}");
        assert!(msg.contains("no AWSALBCORS cookie"), "{msg}");
        // No stickiness at all: nothing to say about AWSALBCORS.
        let mut f = good();
        f.awsalbcors = None;
        f.stickiness = false;
        assert_eq!(cors_verdict(&[f], true).0, CheckStatus::Pass);
    }

    #[test]
    fn sites() {
        assert_eq!(site_of("app.bosar.click"), "bosar.click");
        assert_eq!(site_of("api.bosar.click"), "bosar.click");
        assert_eq!(site_of("www.shop.co.uk"), "shop.co.uk");
        assert_eq!(site_of("a.b.example.com.au"), "example.com.au");
        assert_eq!(site_of("localhost"), "localhost");
        assert_eq!(site_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(site_of("API.Bosar.Click."), "bosar.click");
    }

    /// Polling that loses the session with the cookies a browser there sends fails, naming
    /// what the browser sent; across sites that is only the SameSite=None; Secure cookies.
    #[test]
    fn polling_as_the_browser_sends_its_cookies() {
        let mut f = good();
        f.rounds = Some(Err((2, "HTTP 400 \"Session ID unknown\"".into())));
        let (status, msg) = cors_verdict(std::slice::from_ref(&f), false);
        assert_eq!(status, CheckStatus::Fail, "{msg}");
        assert!(
            msg.contains("polling as a browser here (sending the load balancer's cookies) lost the session at round trip 2: HTTP 400"),
            "{msg}"
        );
        f.cross_site = Some(("bosar.click".into(), "127.0.0.1".into()));
        let (_, msg) = cors_verdict(std::slice::from_ref(&f), false);
        assert!(
            msg.contains("sending only its SameSite=None; Secure cookies"),
            "{msg}"
        );
        f.rounds = None;
        assert_eq!(cors_verdict(&[f], false).0, CheckStatus::Warn);
    }
}
