//! The `deploy.toml` that `init` writes, built as a TOML document (toml_edit), never as text:
//! every key and value goes through [`basic_string`] and [`key_repr`], so a name or value from
//! the account is data wherever it lands, and a comment holds our own words plus values on
//! one line with every character a reader could not see escaped. Before anything is written
//! the text is parsed back and compared with what was meant ([`super::readback`]); `--env`
//! inserts its tables into the parsed file ([`merge_environment`]), leaving every other byte
//! as it was.

use std::fmt::Write as _;

use toml_edit::{DocumentMut, Item, Key, Table, Value};

use super::sections::{Layout, Line, Note, Piece, Section, Val};
use crate::exit::Failure;

/// A TOML basic string on one line: `"` and `\` escaped, and every character a reader could
/// not see or that would end the line (C0, DEL, C1, line and paragraph separators, bidi and
/// other format characters, noncharacters) written `\uXXXX`/`\UXXXXXXXX`; `[` after `##` too
/// (the Actions runner's legacy command marker), so the printed file is no workflow command.
pub fn basic_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut hashes = 0;
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '[' if hashes >= 2 => out.push_str("\\u005B"),
            c if crate::outside::is_hidden(c) => {
                let u = c as u32;
                if u <= 0xFFFF {
                    let _ = write!(out, "\\u{u:04X}");
                } else {
                    let _ = write!(out, "\\U{u:08X}");
                }
            }
            c => out.push(c),
        }
        hashes = if c == '#' { hashes + 1 } else { 0 };
    }
    out.push('"');
    out
}

/// A key as TOML writes it: bare when it can be (`A-Z a-z 0-9 _ -`), else a basic string.
pub fn key_repr(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_string()
    } else {
        basic_string(name)
    }
}

fn value_repr(v: &Val) -> String {
    match v {
        Val::Str(s) => basic_string(s),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Tenths(t) => t.to_string(),
    }
}

/// The value as a toml_edit value carrying our representation.
fn value(v: &Val) -> Value {
    value_repr(v)
        .parse()
        .expect("basic_string writes a valid TOML string")
}

/// The key as a toml_edit key carrying our representation, spaced as `key = value`.
fn key(name: &str) -> Key {
    let mut k = Key::parse(&key_repr(name))
        .ok()
        .and_then(|mut ks| (ks.len() == 1).then(|| ks.remove(0)))
        .expect("key_repr writes one valid key");
    k.leaf_decor_mut().set_prefix("");
    k.leaf_decor_mut().set_suffix(" ");
    k
}

/// Our own words on one line: anything that is not visible is escaped all the same.
fn own_words(text: &str) -> String {
    if text.chars().any(crate::outside::is_hidden) {
        let quoted = basic_string(text);
        quoted[1..quoted.len() - 1].to_string()
    } else {
        text.to_string()
    }
}

fn note_text(note: &Note) -> String {
    note.iter()
        .map(|p| match p {
            Piece::Fixed(t) => own_words(t),
            Piece::Value(v) => value_repr(v),
        })
        .collect()
}

/// `# text` and a line break.
fn comment(note: &Note) -> String {
    let text = note_text(note);
    if text.is_empty() {
        "#\n".into()
    } else {
        format!("# {text}\n")
    }
}

/// `key = value` padded so the comments after it line up.
fn with_note(kv: &str, note: &Note) -> String {
    let text = note_text(note);
    if text.is_empty() {
        String::new()
    } else {
        format!(
            "{}# {text}",
            " ".repeat(40usize.saturating_sub(kv.len()) + 1)
        )
    }
}

fn header(path: &[String]) -> String {
    path.iter()
        .map(|p| key_repr(p))
        .collect::<Vec<_>>()
        .join(".")
}

/// Adds `sections` below `root` (at `prefix`), in order. `pending` carries comment lines to
/// the next key or table header; `position` numbers the new tables so they print in order.
fn place(
    root: &mut Table,
    prefix: &[String],
    sections: &[Section],
    pending: &mut String,
    position: &mut usize,
) -> Result<(), Failure> {
    for section in sections {
        let path: Vec<String> = prefix
            .iter()
            .cloned()
            .chain(section.path.iter().map(|p| p.to_string()))
            .collect();
        pending.push('\n');
        for line in &section.intro {
            pending.push_str(&comment(line));
        }
        if !section.active {
            let _ = writeln!(pending, "# [{}]", header(&path));
            for line in &section.lines {
                pending.push_str(&commented(line));
            }
            continue;
        }
        let table = table_at(root, &path)?;
        table.set_position(*position);
        *position += 1;
        table.decor_mut().set_prefix(std::mem::take(pending));
        for line in &section.lines {
            match line {
                Line::Active {
                    key: k,
                    value: v,
                    note,
                } => {
                    let kv = format!("{} = {}", key_repr(k), value_repr(v));
                    let mut val = value(v);
                    val.decor_mut().set_prefix(" ");
                    val.decor_mut().set_suffix(with_note(&kv, note));
                    let mut key = key(k);
                    key.leaf_decor_mut().set_prefix(std::mem::take(pending));
                    if table.contains_key(k) {
                        return Err(Failure::failed(format!(
                            "init would write {} twice in [{}]",
                            key_repr(k),
                            header(&path)
                        )));
                    }
                    table.insert_formatted(&key, Item::Value(val));
                }
                other => pending.push_str(&commented(other)),
            }
        }
    }
    Ok(())
}

fn commented(line: &Line) -> String {
    match line {
        Line::Active { key, value, note } | Line::Commented { key, value, note } => {
            let kv = format!("# {} = {}", key_repr(key), value_repr(value));
            format!("{kv}{}\n", with_note(&kv, note))
        }
        Line::Comment(note) => comment(note),
    }
}

/// The table at `path` below `root`, made (implicit, without a header of its own) where
/// missing. A key there that is not a table is refused: init adds, it does not rewrite.
fn table_at<'t>(root: &'t mut Table, path: &[String]) -> Result<&'t mut Table, Failure> {
    let mut t = root;
    for (i, p) in path.iter().enumerate() {
        if !t.contains_key(p) {
            let mut new = Table::new();
            new.set_implicit(true);
            let mut name = key(p);
            name.leaf_decor_mut().set_suffix("");
            t.insert_formatted(&name, Item::Table(new));
        }
        let here = header(&path[..=i]);
        t = t.get_mut(p).and_then(Item::as_table_mut).ok_or_else(|| {
            Failure::usage(format!(
                "{here} is not written as a [{here}] table in the file; init adds its tables only next to tables"
            ))
            .hint(format!("write {here} as a [{here}] table, or add the environment by hand"))
        })?;
    }
    t.set_implicit(false);
    Ok(t)
}

/// The whole file.
pub fn document(layout: &Layout) -> Result<String, Failure> {
    let mut doc = DocumentMut::new();
    let mut pending: String = layout.intro.iter().map(comment).collect();
    let mut position = 0;
    place(
        doc.as_table_mut(),
        &[],
        &layout.sections,
        &mut pending,
        &mut position,
    )?;
    doc.set_trailing(pending);
    let text = doc.to_string();
    Ok(text.trim_start_matches('\n').to_string())
}

/// The highest table position in the parsed file, so new tables print after every old one.
fn last_position(t: &Table) -> usize {
    t.iter()
        .filter_map(|(_, i)| i.as_table())
        .map(|c| c.position().unwrap_or(0).max(last_position(c)))
        .max()
        .unwrap_or(0)
}

/// `existing` with an `[environments.NAME]` block added after everything in it (its trailing
/// comments stay above the block). Every other byte of the file is kept.
pub fn merge_environment(existing: &str, name: &str, layout: &Layout) -> Result<String, Failure> {
    let mut doc: DocumentMut = existing.parse().map_err(|e: toml_edit::TomlError| {
        Failure::usage(format!(
            "the file does not parse as TOML, so init --env cannot add to it: {}",
            e.message().trim()
        ))
        .hint("fix it (`bosar-deploy plan` names the line), then run init --env again")
    })?;
    let taken = doc
        .get("environments")
        .and_then(Item::as_table_like)
        .is_some_and(|t| t.contains_key(name));
    if taken {
        return Err(Failure::usage(format!(
            "the file already has an environment {}",
            basic_string(name)
        ))
        .hint("edit it, or remove its tables and run init --env again"));
    }
    let mut position = last_position(doc.as_table()) + 1;
    let mut pending = doc
        .trailing()
        .as_str()
        .unwrap_or_default()
        .trim_end()
        .to_string();
    if !pending.is_empty() {
        pending.push('\n');
    }
    pending.push('\n');
    pending.extend(layout.intro.iter().map(comment));
    let prefix = ["environments".to_string(), name.to_string()];
    place(
        doc.as_table_mut(),
        &prefix,
        &layout.sections,
        &mut pending,
        &mut position,
    )?;
    doc.set_trailing(pending);
    Ok(doc.to_string())
}

/// What the file must read back as: the active keys of `sections`.
pub fn expected(sections: &[Section]) -> toml::Table {
    let mut root = toml::Table::new();
    for section in sections.iter().filter(|s| s.active) {
        let mut t = &mut root;
        for p in &section.path {
            t = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("section paths are tables");
        }
        for line in &section.lines {
            if let Line::Active { key, value, .. } = line {
                let v = match value {
                    Val::Str(s) => toml::Value::String(s.clone()),
                    Val::Bool(b) => toml::Value::Boolean(*b),
                    Val::Int(i) => toml::Value::Integer(*i),
                    Val::Tenths(t) => toml::Value::Float(t.as_f64()),
                };
                t.insert(key.clone(), v);
            }
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::super::readback::{check, check_merge};
    use super::super::sections::{self, Discovered, LoadBalancerFacts, TargetGroupFacts};
    use super::*;
    use proptest::prelude::*;

    fn moto_stack() -> Discovered {
        let attributes = [
            ("stickiness.enabled", "false"),
            ("stickiness.type", "lb_cookie"),
            ("load_balancing.algorithm.type", "round_robin"),
            ("deregistration_delay.timeout_seconds", "300"),
            ("slow_start.duration_seconds", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Discovered {
            region: "us-east-1".into(),
            cluster: "bosar-cluster".into(),
            service: "bosar-api".into(),
            container: "bosar-api".into(),
            other_containers: vec!["log-router".into()],
            target_group: Some(TargetGroupFacts {
                name: "bosar-api-tg".into(),
                health_check_path: Some("/health/websocket".into()),
                attributes,
            }),
            load_balancer: Some(LoadBalancerFacts {
                name: "bosar-api-alb".into(),
                dns_name: Some("bosar-api-alb-1.us-east-1.elb.amazonaws.com".into()),
                idle_timeout_secs: 60,
            }),
            environment: [
                ("NODE_ENV", "production"),
                ("WEBSOCKET_PING_INTERVAL", "20000"),
                ("WEBSOCKET_PING_TIMEOUT", "60000"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            gateway_url: None,
            deployment: None,
        }
    }

    /// Names and values an account could hold to break out of a string, a key or a comment.
    const HOSTILE: [&str; 9] = [
        "a\nb",
        "q\"uote",
        "]",
        "\"\"\"",
        "x\u{2028}y\u{2029}z",
        "bidi\u{202e}txt",
        "nul\u{0}c1\u{85}del\u{7f}",
        "##[add-mask]x",
        "back\\slash",
    ];

    fn file(d: &Discovered) -> String {
        let layout = sections::file(d);
        let text = document(&layout).unwrap();
        check(&text, &expected(&layout.sections)).unwrap_or_else(|e| panic!("{e}\n{text}"));
        text
    }

    /// No line of `text` holds a character a reader could not see, and no line is a runner
    /// command.
    fn printable(text: &str) {
        for l in text.lines() {
            assert!(!l.chars().any(crate::outside::is_hidden), "{l:?}");
        }
        assert!(crate::outside::runner_commands(text).is_empty(), "{text}");
    }

    #[test]
    fn a_string_is_one_escaped_line_that_reads_back_as_itself() {
        for s in HOSTILE {
            let repr = basic_string(s);
            assert!(!repr.contains('\n') && !repr.chars().any(crate::outside::is_hidden));
            let v: toml::Table = format!("k = {repr}").parse().unwrap();
            assert_eq!(v["k"].as_str(), Some(s), "{repr}");
        }
        assert_eq!(basic_string("x\u{2028}"), "\"x\\u2028\"");
        assert_eq!(basic_string("##[a"), "\"##\\u005Ba\"");
    }

    proptest! {
        #[test]
        fn any_string_reads_back(s in any::<String>()) {
            let repr = basic_string(&s);
            prop_assert!(!repr.chars().any(crate::outside::is_hidden));
            let v: toml::Table = format!("k = {repr}").parse().unwrap();
            prop_assert_eq!(v["k"].as_str(), Some(s.as_str()));
        }

        #[test]
        fn any_key_reads_back(s in any::<String>()) {
            let v: toml::Table = format!("{} = 1", key_repr(&s)).parse().unwrap();
            prop_assert_eq!(v.keys().collect::<Vec<_>>(), vec![&s]);
        }
    }

    #[test]
    fn keys_are_bare_only_when_toml_allows_it() {
        assert_eq!(key_repr("WEBSOCKET_A-B"), "WEBSOCKET_A-B");
        assert_eq!(key_repr("WEBSOCKET_APP.MODE"), "\"WEBSOCKET_APP.MODE\"");
        assert_eq!(key_repr(""), "\"\"");
        assert_eq!(key_repr("a b"), "\"a b\"");
    }

    #[test]
    fn today_is_active_and_a_recommendation_is_one_edit_on_the_same_line() {
        let text = file(&moto_stack());
        let cfg = crate::config::parse(std::path::Path::new("deploy.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            cfg.target_group.stickiness,
            Some(crate::config::Stickiness::Off)
        );
        for line in [
            "stickiness = \"off\"                       # today; recommended: \"lb_cookie\" (",
            "algorithm = \"round_robin\"                # today; recommended: \"least_outstanding_requests\" (",
            "deregistration_delay = \"300s\"            # today; recommended: \"30s\" (",
            "idle_timeout = \"60s\"                     # today; recommended: \"120s\" (",
            "# cookie_duration = \"24h\"",
            "# url = \"https://bosar-api-alb-1.us-east-1.elb.amazonaws.com\"",
            "# ping_interval = \"20s\"",
            "# other containers of the task definition (copied as they are): \"log-router\"",
        ] {
            assert!(text.contains(line), "missing {line:?}:\n{text}");
        }
        // Each key has one line: the commented ones are keys not set today.
        for key in [
            "stickiness",
            "algorithm",
            "deregistration_delay",
            "idle_timeout",
        ] {
            let lines = text
                .lines()
                .filter(|l| l.trim_start_matches("# ").starts_with(&format!("{key} =")))
                .count();
            assert_eq!(lines, 1, "{key}:\n{text}");
        }
        assert!(!text.contains("NODE_ENV"), "only WEBSOCKET_* are managed");
        assert!(text.starts_with("# bosar-deploy configuration for ECS service \"bosar-api\""));
        // Adopting is replacing the value on the line.
        let adopted = text.replace("stickiness = \"off\"", "stickiness = \"lb_cookie\"");
        let cfg = crate::config::parse(std::path::Path::new("deploy.toml"), &adopted).unwrap();
        assert_eq!(
            cfg.target_group.stickiness,
            Some(crate::config::Stickiness::LbCookie)
        );
    }

    #[test]
    fn hostile_names_and_values_stay_data() {
        let mut d = moto_stack();
        for (i, h) in HOSTILE.iter().enumerate() {
            d.environment
                .insert(format!("WEBSOCKET_V{i}"), h.to_string());
        }
        d.environment
            .insert("WEBSOCKET_APP.MODE".into(), "dotted".into());
        d.environment.insert("WEBSOCKET_A-B".into(), "dash".into());
        d.other_containers = HOSTILE.iter().map(|s| s.to_string()).collect();
        d.cluster = "c\n[gateway]\nurl = \"http://attacker\"\n#".into();
        d.target_group.as_mut().unwrap().health_check_path =
            Some("/h\n[ecs]\nimage = \"evil/backdoor:latest\"\n#".into());
        d.load_balancer.as_mut().unwrap().dns_name = Some("lb\u{2028}[gateway]".into());
        let text = file(&d);
        printable(&text);
        let parsed: toml::Table = text.parse().unwrap();
        let env = parsed["ecs"]["environment"].as_table().unwrap();
        for (i, h) in HOSTILE.iter().enumerate() {
            assert_eq!(env[&format!("WEBSOCKET_V{i}")].as_str(), Some(*h));
        }
        assert_eq!(env["WEBSOCKET_APP.MODE"].as_str(), Some("dotted"));
        assert_eq!(parsed["ecs"]["cluster"].as_str(), Some(d.cluster.as_str()));
        assert!(parsed.get("gateway").is_none(), "{text}");
        assert!(parsed["ecs"].get("image").is_none(), "{text}");
        assert!(
            text.contains(
                "# health_path = \"/h\\n[ecs]\\nimage = \\\"evil/backdoor:latest\\\"\\n#\""
            ),
            "{text}"
        );
    }

    #[test]
    fn a_name_that_is_toml_code_is_refused_and_reported_not_written() {
        let mut d = moto_stack();
        let evil = "WEBSOCKET_ZZ = \"1\"\n[gateway]\nurl = \"http://attacker\"\n#";
        d.environment.insert(evil.into(), "1".into());
        let layout = sections::file(&d);
        assert_eq!(layout.refused_names, vec![evil.to_string()]);
        let text = file(&d);
        printable(&text);
        let parsed: toml::Table = text.parse().unwrap();
        assert!(parsed.get("gateway").is_none(), "{text}");
        assert!(
            parsed["ecs"].get("environment").is_none(),
            "absent: untouched\n{text}"
        );
        assert!(text.contains("not written: these names are not variable names ECS passes on as written: \"WEBSOCKET_ZZ = \\\"1\\\"\\n[gateway]"), "{text}");
    }

    #[test]
    fn secret_looking_values_are_never_written() {
        let mut d = moto_stack();
        d.environment
            .insert("WEBSOCKET_AUTH_TOKEN".into(), "s3cr3t-token".into());
        d.environment.insert(
            "WEBSOCKET_REDIS_URL".into(),
            "redis://:hunter2@redis.internal:6379".into(),
        );
        let text = file(&d);
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("these look like secrets, and their values are never written to a file: \"WEBSOCKET_AUTH_TOKEN\", \"WEBSOCKET_REDIS_URL\""),
            "{text}"
        );
        let cfg = crate::config::parse(std::path::Path::new("d.toml"), &text).unwrap();
        assert!(cfg.ecs.unwrap().environment.is_none(), "absent: untouched");
    }

    #[test]
    fn an_environment_is_added_to_the_document_and_nothing_else_moves() {
        let mut base = file(&moto_stack());
        // A multi-line value whose lines look like table headers stays as it was.
        base = base.replace("[ecs]\n", "[ecs]\nimage = \"r/x:1\"\n") + "\n# a note of the user's\n";
        let tricky = "[environments.prod]\nnote = '''\n[target_group]\n'''\n";
        let base_with = format!("{base}\n[environments.prod.ecs]\ncluster = \"p\"\n");
        let mut staging = moto_stack();
        staging.cluster = "bosar-staging".into();
        staging.region = "eu-west-1".into();
        let layout = sections::environment("staging", &staging);
        let text = merge_environment(&base_with, "staging", &layout).unwrap();
        check_merge(&base_with, &text, "staging", &expected(&layout.sections)).unwrap();
        assert!(text.starts_with(&base_with), "{text}");
        let path = std::path::Path::new("deploy.toml");
        let cfg = crate::config::parse_environment(path, &text, Some("staging"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cfg.ecs.unwrap().cluster, "bosar-staging");
        assert!(
            text.contains("\n\n# Environment \"staging\", written by `bosar-deploy init` from what runs there today: with `--env NAME`\n# (or BOSAR_DEPLOY_ENV), these keys"),
            "{text}"
        );
        assert!(
            text.contains("[environments.staging.target_group]"),
            "{text}"
        );
        // The file's trailing comments stay above the new block.
        let text = merge_environment(&base, "staging", &layout).unwrap();
        let note = text.find("# a note of the user's").unwrap();
        assert!(note < text.find("[environments.staging").unwrap(), "{text}");
        assert!(text.contains("# [environments.staging.gateway]"), "{text}");
        // A taken name is refused; a multi-line string is not taken for a header.
        assert!(merge_environment(&text, "staging", &layout).is_err());
        let t2 = merge_environment(tricky, "staging", &layout).unwrap();
        assert!(t2.starts_with(tricky), "{t2}");
        check_merge(tricky, &t2, "staging", &expected(&layout.sections)).unwrap();
        // Environments written as an inline table are not rewritten: the user is told.
        let inline = "environments = { prod = { aws = { region = \"eu-west-1\" } } }\n";
        let e = merge_environment(inline, "staging", &layout).unwrap_err();
        assert!(
            e.message
                .contains("environments is not written as a [environments] table"),
            "{}",
            e.message
        );
        assert!(merge_environment("[a\n", "staging", &layout).is_err());
        // A name that is not a bare key is quoted.
        let t3 = merge_environment(&base, "eu.west", &layout).unwrap();
        assert!(t3.contains("[environments.\"eu.west\".aws]"), "{t3}");
    }
}
