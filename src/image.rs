//! Container image references, checked against the grammar ECS and every registry use
//! (the distribution spec's reference grammar), so a typo in `--image` or `[ecs] image` is an
//! error in seconds instead of a task that fails to pull minutes into a rollout.
//!
//! `[REGISTRY[:PORT]/]REPOSITORY[:TAG][@ALGORITHM:HEX]`, where the repository path is
//! lowercase components (`a-z`, `0-9`, separated by `.`, `_`, `__` or dashes) joined by `/`,
//! the tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` and the digest `algorithm:hex`.

/// What an accepted reference looks like, for error messages.
pub const ACCEPTED_FORM: &str = "[REGISTRY[:PORT]/]REPOSITORY[:TAG][@ALGORITHM:HEX], e.g. \
123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1.5.0; repository path lowercase \
(a-z, 0-9 and . _ __ - between them), tag [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, digest like \
sha256:<64 hex digits>";

/// Longest reference Docker and ECS accept.
const MAX_LEN: usize = 255;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// `host[:port]` when the first component names a registry.
    pub registry: Option<&'a str>,
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Parses `s`, or says what is wrong with it (the message names the part).
pub fn parse(s: &str) -> Result<ImageRef<'_>, String> {
    if s.is_empty() {
        return Err("empty image reference".into());
    }
    if s.len() > MAX_LEN {
        return Err(format!(
            "longer than {MAX_LEN} characters ({} characters)",
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains {c:?}"));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        check_digest(d)?;
    }
    // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        check_tag(t)?;
    }
    let (registry, repository) = split_registry(name);
    if let Some(r) = registry {
        check_registry(r)?;
    }
    if repository.is_empty() {
        return Err("no repository name".into());
    }
    for component in repository.split('/') {
        check_component(component)?;
    }
    Ok(ImageRef {
        registry,
        repository,
        tag,
        digest,
    })
}

/// The first component is a registry when it has a `.` or a `:` or is `localhost`
/// (Docker's rule); otherwise the whole name is the repository.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_registry(r: &str) -> Result<(), String> {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return Err(format!("registry host {host:?} is not a host name"));
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("registry port {p:?} is not a port number"));
        }
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by one separator: `.`, `_`, `__` or one or more `-`.
fn check_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "repository path component {c:?} is not lowercase letters and digits separated by . _ __ or -"
        ))
    };
    if c.is_empty() {
        return Err("empty repository path component (a doubled or trailing /)".into());
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

fn check_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if ok {
        Ok(())
    } else if t.is_empty() {
        Err("empty tag after ':'".into())
    } else {
        Err(format!(
            "tag {t:?} is not 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)"
        ))
    }
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(format!("digest {d:?} is not ALGORITHM:HEX"));
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let hex_ok = hex.len() >= 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let len_ok = match alg {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => true,
    };
    if alg_ok && hex_ok && len_ok {
        Ok(())
    } else {
        Err(format!(
            "digest {d:?} is not ALGORITHM:HEX (sha256 takes 64 lowercase hex digits)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_what_registries_accept() {
        for ok in [
            "nginx",
            "bosar-api:1.5.0",
            "repo/bosar-api:1.4.0",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1.5.0",
            "localhost:5000/team/app_x__y:latest",
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0",
            "Registry.Example.com:443/a.b/c--d:TAG_1",
            "fluent-bit",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
        let with_digest = format!("app@{SHA}");
        let r = parse(&with_digest).unwrap();
        assert_eq!(r.repository, "app");
        assert_eq!(r.digest, Some(SHA));
        let full = format!("localhost:5000/app:1@{SHA}");
        let r = parse(&full).unwrap();
        assert_eq!(
            (r.registry, r.repository, r.tag),
            (Some("localhost:5000"), "app", Some("1"))
        );
    }

    #[test]
    fn refuses_what_ecs_would_fail_to_pull() {
        for (bad, says) in [
            ("repo/app:", "empty tag"),
            ("UPPER/app:1", "\"UPPER\""),
            ("app@sha256:xyz", "digest"),
            ("app:-x", "tag \"-x\""),
            ("repo//app", "empty repository path component"),
            ("repo/app/", "empty repository path component"),
            ("a b", "contains ' '"),
            ("", "empty image reference"),
            ("app_-x", "\"app_-x\""),
            ("host.com:99x/app", "port"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(parse(&"a".repeat(256)).unwrap_err().contains("255"));
        assert!(parse(&format!("app:{}", "t".repeat(129))).is_err());
    }
}
