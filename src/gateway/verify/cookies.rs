//! `cookies`: the attributes of `AWSALB` and `AWSALBCORS` as the jar holds them (never their
//! values). The verdict is [`cookies_verdict`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cookie_store::CookieExpiration;
use serde_json::{json, Value};
use url::Url;

use crate::gateway::fmt_duration;
use crate::gateway::polling::Jar;
use crate::report::CheckStatus;

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

pub(super) fn cookies_facts(jar: &Jar, engine: &Url) -> AlbCookies {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
