//! Where URLs in a text carry user info (`scheme://user:password@host`), so that it can be
//! masked wherever the text goes. Parsed, not pattern-matched: a URL runs from its `://` to the
//! first whitespace, and its user info ends at the *last* `@` of that run when the run has one
//! (RFC 3986 ends the authority at `/`, `?` or `#`, but people write passwords with those
//! characters unencoded, `postgres://app:pa/ss@db`, and lenient parsers take them). The user
//! info is taken to be there when the RFC's authority holds an `@`, or when the run starts
//! `user:` (a password with any character after it). A run without either (`https://host/a@b`)
//! has none. Ambiguous runs (`https://host:8080/a@b`) are masked: better a path hidden than a
//! password shown.
//!
//! Depends on std only (the fuzz target includes `outside.rs`, and this with it, by path).

use std::borrow::Cow;
use std::ops::Range;

/// The byte ranges of the user info of every URL in `text` (between `://` and the `@` before
/// the host), in order, never overlapping. Linear in the text's length, whatever it holds
/// (a server's 1 MiB body of `://` included): a run's end and last `@` are found once for all
/// the `://` in it.
pub fn spans(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    // The current run: where it ends, and where its last `@` is.
    let mut run: Option<(usize, Option<usize>)> = None;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        let (end, last_at) = match run {
            Some(r) if start <= r.0 => r,
            _ => {
                let end = text[start..]
                    .find(char::is_whitespace)
                    .map_or(text.len(), |j| start + j);
                let r = (end, text[start..end].rfind('@').map(|j| start + j));
                run = Some(r);
                r
            }
        };
        let at = last_at.filter(|a| *a >= start).map(|a| a - start);
        match user_info_len(&text[start..end], at) {
            Some(len) => {
                out.push(start..start + len);
                from = start + len;
            }
            None => from = start,
        }
    }
    out
}

/// The length of the user info at the start of `run` (the text after `://`), whose last `@`
/// is at `at`, if it has any.
fn user_info_len(run: &str, at: Option<usize>) -> Option<usize> {
    let at = at.filter(|a| *a > 0)?;
    let authority_end = run.find(['/', '?', '#', '\\']).unwrap_or(run.len());
    let in_authority = run[..authority_end].contains('@');
    let starts_with_user = run
        .find([':', '/', '?', '#', '@', '\\'])
        .map(|i| &run[i..i + 1])
        == Some(":");
    (in_authority || starts_with_user).then_some(at)
}

/// `text` with the user info of every URL in it replaced by `mask`.
pub fn mask<'a>(text: &'a str, mask: &str) -> Cow<'a, str> {
    let spans = spans(text);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in spans {
        out.push_str(&text[last..r.start]);
        out.push_str(mask);
        last = r.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        mask(s, "***").into_owned()
    }

    #[test]
    fn passwords_with_any_character_are_masked() {
        for (url, want) in [
            ("postgres://app:pa/ss@db/name", "postgres://***@db/name"),
            ("amqp://guest:gu#est@mq:5672", "amqp://***@mq:5672"),
            ("redis://:pa?ss@r:6379/0", "redis://***@r:6379/0"),
            ("mysql://u:p@ss@db", "mysql://***@db"),
            ("https://u:p\\w@h/x", "https://***@h/x"),
            (
                "https://ghp_token@github.com/o/r",
                "https://***@github.com/o/r",
            ),
            (
                "redis://:hunter2@redis.internal:6379",
                "redis://***@redis.internal:6379",
            ),
            // Ambiguous (a port or a password?): masked.
            ("https://host:8080/a@b", "https://***@b"),
        ] {
            assert_eq!(masked(url), want, "{url}");
        }
    }

    #[test]
    fn urls_without_user_info_stay() {
        for s in [
            "https://api.example.com/a@b",
            "https://api.example.com/?to=a@b.example",
            "redis://redis.internal:6379",
            "https://@host/",
            "no url admin@evil.example",
            "http://",
        ] {
            assert_eq!(masked(s), s);
        }
    }

    #[test]
    fn urls_inside_free_text() {
        assert_eq!(
            masked("pull failed: https://ci:ghp_abc@registry.example/v2/ (retry); see x@y"),
            "pull failed: https://***@registry.example/v2/ (retry); see x@y"
        );
        assert_eq!(
            masked("a=redis://u:p@h:1/0, b=https://t@x\nc=amqp://g:g#e@mq"),
            "a=redis://***@h:1/0, b=https://***@x\nc=amqp://***@mq"
        );
        // A password that holds `://` goes whole.
        assert_eq!(masked("postgres://app:x://y@db"), "postgres://***@db");
    }

    #[test]
    fn linear_on_hostile_text() {
        // Quadratic scanning would take minutes here; linear takes milliseconds.
        for unit in ["://", "://a", "://@", "://u:p@", "x:// "] {
            let text = unit.repeat(256 * 1024 / unit.len());
            let masked = mask(&text, "***");
            assert!(masked.len() <= text.len() + 3 * text.len() / unit.len());
        }
    }

    proptest::proptest! {
        /// Any password without whitespace, in a URL anywhere in a text: every output shows
        /// the text as if the user info were `***`, so the password never appears (unless the
        /// rest of the text holds it anyway).
        #[test]
        fn no_password_gets_out(
            prefix in "[A-Za-z0-9 ,.;()=@\n-]{0,20}",
            scheme in "[a-z][a-z0-9+.-]{0,8}",
            user in "[A-Za-z0-9._~%!$&'()*+,;=-]{0,12}",
            password in proptest::prop_oneof!["[^\\s]{1,30}", "[/?#@:\\\\%a-z]{1,20}"],
            host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
            rest in "([/?#][A-Za-z0-9._~/?#=&%:-]{0,20})?",
            suffix in "([ \t\n\u{2028}][^:/]{0,20})?",
        ) {
            use crate::outside::{annotation, clean, markdown_cell, xml_text, Outside};
            let text = format!("{prefix}{scheme}://{user}:{password}@{host}{rest}{suffix}");
            let expected = format!("{prefix}{scheme}://***@{host}{rest}{suffix}");
            proptest::prop_assert_eq!(masked(&text), expected.clone());
            let outputs = |t: &str| {
                let o = Outside::new(t);
                [
                    o.to_string(),
                    serde_json::to_string(&o).unwrap(),
                    clean(t, false),
                    annotation("error", Some(t), t),
                    markdown_cell(t, 500),
                    xml_text(t, 500),
                ]
            };
            for (got, want) in outputs(&text).iter().zip(outputs(&expected).iter()) {
                proptest::prop_assert_eq!(got, want);
                if !want.contains(&password) {
                    proptest::prop_assert!(!got.contains(&password), "{} in {}", password, got);
                }
            }
        }
    }
}
