//! Which task definition values are shown, and how: a variable whose name looks like a
//! credential, or whose value carries credentials in a URL, is masked ("(sensitive)") unless
//! `[ecs] show_values` names it; a URL's user info is `***` even then. Pure, unit-tested here;
//! `taskdef` applies it to the diff.

use crate::outside::Outside;

/// Words in a variable's name that say its value is a credential (matched anywhere in the
/// upper-cased name). docs/security.md lists the same words.
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
    "CONNECTION_STRING",
];
/// Words that count only as a whole part of the name (between `_`, `-`, `.`, or at a
/// lower-to-upper case change): `PW` in `DB_PW` and `dbPw` but not in `PWA_MODE`, `CONN` in
/// `DB_CONN` but not in `MAX_CONNECTIONS`.
const CREDENTIAL_PARTS: &[&str] = &[
    "PW",
    "PSW",
    "PSWD",
    "CRED",
    "CREDS",
    "PEM",
    "CONN",
    "CONNSTR",
    "CONNSTRING",
    "CONNECTIONSTRING",
];

/// Whether an environment variable's name suggests its value is a credential.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    CREDENTIAL_WORDS.iter().any(|w| n.contains(w))
        || name_parts(name).any(|part| CREDENTIAL_PARTS.contains(&part.as_str()))
}

/// The parts of a name, upper-cased: split at `_`, `-`, `.` and where a lower-case letter is
/// followed by an upper-case one (`dbPw` is `DB`, `PW`).
fn name_parts(name: &str) -> impl Iterator<Item = String> + '_ {
    name.split(['_', '-', '.']).flat_map(|word| {
        let mut parts = vec![String::new()];
        let mut prev_lower = false;
        for c in word.chars() {
            if prev_lower && c.is_ascii_uppercase() {
                parts.push(String::new());
            }
            prev_lower = c.is_ascii_lowercase();
            parts.last_mut().unwrap().push(c.to_ascii_uppercase());
        }
        parts
    })
}

/// Whether `value` carries credentials in a URL (`scheme://user:pass@`, `scheme://token@`,
/// with any character in the password: see [`crate::outside::user_info`]).
pub fn has_url_credentials(value: &str) -> bool {
    !crate::outside::user_info::spans(value).is_empty()
}

/// `value` with the user info of every URL in it replaced by `***`.
pub fn mask_url_credentials(value: &str) -> String {
    crate::outside::user_info::mask(value, crate::outside::REDACTED).into_owned()
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
            "DB_PW",
            "dbPw",
            "PW",
            "SMTP_PSWD",
            "AWS_CREDS",
            "TLS_KEY_PEM",
            "PG_CONNECTION_STRING",
            "db.connstring",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in [
            "WEBSOCKET_PING_INTERVAL",
            "WEBSOCKET_MAX_CONNECTIONS",
            "WEBSOCKET_REDIS_URL",
            "NODE_ENV",
            "PORT",
            "PWA_MODE",
            "WEBSOCKET_POWER_SAVE",
            "CREDIT_LIMIT",
        ] {
            assert!(!is_sensitive(name), "{name}");
        }
        let redis = "redis://:hunter2@redis.internal:6379";
        assert!(has_url_credentials(redis));
        assert!(has_url_credentials("https://ghp_token@github.com/x"));
        assert!(!has_url_credentials("https://api.example.com/a@b"));
        assert!(!has_url_credentials("redis://redis.internal:6379"));
        for value in [
            "postgres://app:pa/ss@db",
            "amqp://guest:gu#est@mq",
            "redis://:pa?ss@r",
        ] {
            assert!(has_url_credentials(value), "{value}");
            assert!(masked("WEBSOCKET_DB_URL", &[value], &[]), "{value}");
        }
        assert_eq!(
            shown("postgres://app:pa/ss@db/x", false),
            "postgres://***@db/x"
        );
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

    /// docs/security.md lists the same words and parts as the code.
    #[test]
    fn the_readme_lists_the_words_and_parts() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
        let between = |from: &str, to: &str| -> Vec<String> {
            let start = readme
                .find(from)
                .unwrap_or_else(|| panic!("{from:?} not in docs/security.md"));
            let rest = &readme[start + from.len()..];
            let end = rest
                .find(to)
                .unwrap_or_else(|| panic!("{to:?} not in docs/security.md"));
            let mut list: Vec<String> = rest[..end].split(", ").map(str::to_string).collect();
            list.sort();
            list
        };
        let sorted = |l: &[&str]| {
            let mut v: Vec<String> = l.iter().map(|w| w.to_string()).collect();
            v.sort();
            v
        };
        let words = between("names look like credentials (containing ", ", or a part ");
        assert_eq!(words, sorted(CREDENTIAL_WORDS));
        let parts = between(", or a part ", ", parts split at");
        assert_eq!(parts, sorted(CREDENTIAL_PARTS));
    }
}
