//! Which task definition values are shown, and how: a variable whose name looks like a
//! credential, or whose value carries credentials in a URL, is masked ("(sensitive)") unless
//! `[ecs] show_values` names it; a URL's user info is `***` even then. Pure, unit-tested here;
//! `taskdef` applies it to the diff.

use crate::outside::Outside;

/// Words in a variable's name that say its value is a credential (matched anywhere in the
/// upper-cased name).
const CREDENTIAL_WORDS: &[&str] = &[
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
    "AUTH",
    "DSN",
    "CERT",
    "SALT",
    "SIGNATURE",
    "SIGNING",
    "COOKIE",
    "JWT",
    "BEARER",
];
/// Words that count only as a whole part of the name (between `_`, `-`, `.`): `CONN` in
/// `DB_CONN` but not in `MAX_CONNECTIONS`.
const CREDENTIAL_PARTS: &[&str] = &["CONN", "CONNSTR", "CONNSTRING", "CONNECTIONSTRING"];

/// Whether an environment variable's name suggests its value is a credential.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    CREDENTIAL_WORDS.iter().any(|w| n.contains(w))
        || n.contains("CONNECTION_STRING")
        || n.split(['_', '-', '.'])
            .any(|part| CREDENTIAL_PARTS.contains(&part))
}

/// The spans of user info (`user:pass` of `scheme://user:pass@host`) in `value`, for every URL
/// in it.
fn url_user_info(value: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = value[from..].find("://") {
        let start = from + i + 3;
        let authority_end = value[start..]
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == ',')
            .map_or(value.len(), |j| start + j);
        if let Some(at) = value[start..authority_end].rfind('@') {
            if at > 0 {
                spans.push((start, start + at));
            }
        }
        from = authority_end.max(start);
    }
    spans
}

/// Whether `value` carries credentials in a URL (`scheme://user:pass@`, `scheme://token@`).
pub fn has_url_credentials(value: &str) -> bool {
    !url_user_info(value).is_empty()
}

/// `value` with the user info of every URL in it replaced by `***`.
pub fn mask_url_credentials(value: &str) -> String {
    let mut out = value.to_string();
    for (a, b) in url_user_info(value).into_iter().rev() {
        out.replace_range(a..b, crate::outside::REDACTED);
    }
    out
}

/// Whether the values of `name` are masked: its name looks like a credential or one of its
/// values carries URL credentials, and `[ecs] show_values` does not name it.
pub fn masked(name: &str, values: &[&str], show_values: &[String]) -> bool {
    if show_values.iter().any(|s| s == name) {
        return false;
    }
    is_sensitive(name) || values.iter().any(|v| has_url_credentials(v))
}

/// A value as shown: "(sensitive)" when masked, else the text escaped, URL user info `***`.
pub(super) fn shown(value: &str, masked: bool) -> String {
    if masked {
        "(sensitive)".into()
    } else {
        Outside::new(&mask_url_credentials(value)).to_string()
    }
}

/// A value as serialised: "(sensitive)" when masked, else as it is (bounded), URL user info `***`.
pub(super) fn serialised(value: &str, masked: bool) -> Outside {
    if masked {
        Outside::new("(sensitive)")
    } else {
        Outside::new(&mask_url_credentials(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_and_url_credentials() {
        for name in [
            "WEBSOCKET_AUTH_PASS",
            "DB_PWD",
            "SENTRY_DSN",
            "DB_CONN",
            "MONGO_CONNECTION_STRING",
            "TLS_CERT",
            "PASSWORD_SALT",
            "WEBHOOK_SIGNATURE",
            "STRIPE_API_KEY",
            "jwt_secret",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in [
            "WEBSOCKET_PING_INTERVAL",
            "WEBSOCKET_MAX_CONNECTIONS",
            "WEBSOCKET_REDIS_URL",
            "NODE_ENV",
            "PORT",
        ] {
            assert!(!is_sensitive(name), "{name}");
        }
        let redis = "redis://:hunter2@redis.internal:6379";
        assert!(has_url_credentials(redis));
        assert!(has_url_credentials("https://ghp_token@github.com/x"));
        assert!(!has_url_credentials("https://api.example.com/a@b"));
        assert!(!has_url_credentials("redis://redis.internal:6379"));
        assert_eq!(
            mask_url_credentials("a=redis://u:p@h:1/0, b=https://t@x"),
            "a=redis://***@h:1/0, b=https://***@x"
        );
        assert!(!masked("WEBSOCKET_REDIS_URL", &["redis://r:6379"], &[]));
        assert!(masked("WEBSOCKET_REDIS_URL", &[redis], &[]));
        assert!(!masked(
            "WEBSOCKET_REDIS_URL",
            &[redis],
            &["WEBSOCKET_REDIS_URL".into()]
        ));
        assert!(!masked("DB_PASSWORD", &["x"], &["DB_PASSWORD".into()]));
        assert_eq!(shown(redis, false), "redis://***@redis.internal:6379");
        assert_eq!(shown(redis, true), "(sensitive)");
    }
}
