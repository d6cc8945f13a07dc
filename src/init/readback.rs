//! The last guard before a file is written: it is parsed back (toml, apart from the writer)
//! and every value compared with what was read from AWS. A difference means the file would
//! not say what AWS said (a name or value that escaped its string, a key written twice), and
//! nothing is written.

use super::render::basic_string;
use crate::exit::Failure;

/// Parses `text` back and compares it with `want`: a difference means the file would not
/// say what AWS said, and nothing is written. Names the first key that differs.
pub fn check(text: &str, want: &toml::Table) -> Result<(), Failure> {
    let got: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| refused(format!("it does not parse: {}", e.message())))?;
    match first_difference(&got, want, "") {
        None => Ok(()),
        Some(key) => Err(refused(format!(
            "{} does not read back as the value AWS returned",
            basic_string(&key)
        ))),
    }
}

/// Parses the merged file back: the environment's table must be `want`, and everything else
/// must read exactly as the file did before.
pub fn check_merge(
    before: &str,
    after: &str,
    name: &str,
    want: &toml::Table,
) -> Result<(), Failure> {
    let parse = |text: &str| {
        text.parse::<toml::Table>()
            .map_err(|e| refused(format!("it does not parse: {}", e.message())))
    };
    let old = parse(before)?;
    let mut new = parse(after)?;
    let envs = new
        .get_mut("environments")
        .and_then(toml::Value::as_table_mut);
    let added = envs.as_ref().and_then(|e| e.get(name)).cloned();
    if let Some(envs) = envs {
        envs.remove(name);
        if envs.is_empty() && !old.contains_key("environments") {
            new.remove("environments");
        }
    }
    let added = match added {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    let difference = first_difference(&added, want, &format!("environments.{name}"))
        .or_else(|| first_difference(&new, &old, ""));
    match difference {
        None => Ok(()),
        Some(key) => Err(refused(format!(
            "{} does not read back as it should",
            basic_string(&key)
        ))),
    }
}

fn refused(why: String) -> Failure {
    Failure::failed(format!(
        "init refused to write the file it built: {why}; nothing was written"
    ))
    .hint("this is a bug in bosar-deploy; please report it with the names of the resources (not their values)")
}

/// The dotted path of the first key whose value differs, or that only one side has.
fn first_difference(got: &toml::Table, want: &toml::Table, at: &str) -> Option<String> {
    let path = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    for k in got.keys().chain(want.keys()) {
        match (got.get(k), want.get(k)) {
            (Some(toml::Value::Table(g)), Some(toml::Value::Table(w))) => {
                if let Some(d) = first_difference(g, w, &path(k)) {
                    return Some(d);
                }
            }
            (g, w) if g == w => {}
            _ => return Some(path(k)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::render::{document, expected};
    use super::super::sections;
    use super::*;

    fn stack() -> sections::Discovered {
        sections::Discovered {
            region: "us-east-1".into(),
            cluster: "bosar-cluster".into(),
            service: "bosar-api".into(),
            container: "bosar-api".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_file_that_reads_back_otherwise_is_refused() {
        let layout = sections::file(&stack());
        let want = expected(&layout.sections);
        let text = document(&layout).unwrap();
        let injected = format!("{text}\n[gateway]\nurl = \"http://attacker\"\n");
        let e = check(&injected, &want).unwrap_err();
        assert!(e.message.contains("\"gateway\""), "{}", e.message);
        assert!(e.message.contains("nothing was written"), "{}", e.message);
        let changed = text.replace("\"bosar-cluster\"", "\"other\"");
        assert!(check(&changed, &want)
            .unwrap_err()
            .message
            .contains("ecs.cluster"));
    }
}
