//! The README's IAM policy lists exactly the actions the code calls (issue 12): every SDK
//! operation called in `src/` is in the policy, and every action of the policy is called (or
//! is implied by a call: `ecs:TagResource` by registering a tagged revision, `iam:PassRole` by
//! naming the task's roles).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// The client expressions in the code and the IAM prefix of each service.
const CLIENTS: [(&str, &str); 8] = [
    (".ecs.", "ecs"),
    // A client bound to a local variable (the preflight checks'): its service is not known
    // here, so the operation must match an action of any service.
    ("client.", "*"),
    (".elb.", "elasticloadbalancing"),
    (".ecr(", "ecr"),
    (".iam().", "iam"),
    (".logs(", "logs"),
    (".ssm(", "ssm"),
    (".secrets(", "secretsmanager"),
];

/// How AWS operation names start (methods like `as_ref` or `is_empty` do not).
const OPERATION_VERBS: [&str; 15] = [
    "continue_",
    "describe_",
    "list_",
    "get_",
    "update_",
    "register_",
    "deregister_",
    "modify_",
    "put_",
    "create_",
    "delete_",
    "tag_",
    "untag_",
    "batch_",
    "stop_",
];

/// The index of the `)` that closes the call whose arguments start at `s`.
fn closing_paren(s: &str) -> Option<usize> {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Actions a call needs besides its own name.
const IMPLIED: [&str; 2] = ["ecs:TagResource", "iam:PassRole"];

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// `client.operation(` in the code, whitespace between the links of a call chain removed,
/// comments and tests left out.
fn called() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(&support::repo().join("src"), &mut files);
    let mut actions = BTreeSet::new();
    for text in files {
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join("");
        for (client, prefix) in CLIENTS {
            let mut rest = squeezed.as_str();
            while let Some(i) = rest.find(client) {
                rest = &rest[i + client.len()..];
                // `.ecr(&region).describe_images(`: skip the accessor's arguments.
                let after = if client.ends_with('(') {
                    let Some(close) = closing_paren(rest) else {
                        continue;
                    };
                    match rest[close + 1..].strip_prefix('.') {
                        Some(a) => a,
                        None => continue,
                    }
                } else {
                    rest
                };
                let op: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                // AWS operations are verb_noun: describe_…, list_…, update_…
                if OPERATION_VERBS.iter().any(|v| op.starts_with(v))
                    && after[op.len()..].starts_with("()")
                {
                    actions.insert(format!("{prefix}:{}", pascal(&op)));
                }
            }
        }
    }
    actions
}

fn policy() -> Value {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- iam-policy -->")
        .expect("the README marks its IAM policy with <!-- iam-policy -->");
    let block = &readme[start..];
    let open = block
        .find("```json")
        .expect("a json block after the marker")
        + "```json".len();
    let close = block[open..].find("```").expect("the block's end") + open;
    serde_json::from_str(&block[open..close]).expect("the README's IAM policy is JSON")
}

fn actions_of(policy: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{st}");
        match &st["Action"] {
            Value::String(a) => {
                out.insert(a.clone());
            }
            Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("Action {other}"),
        }
    }
    out
}

#[test]
fn the_readme_policy_allows_exactly_what_the_code_calls() {
    let called = called();
    // The scan finds the calls it is meant to find.
    for known in [
        "ecs:DescribeServices",
        "ecs:RegisterTaskDefinition",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "ecr:DescribeImages",
        "iam:GetRole",
        "secretsmanager:DescribeSecret",
    ] {
        assert!(
            called.contains(known),
            "the scan missed {known}: {called:?}"
        );
    }
    let allowed = actions_of(&policy());
    // A call through a local client (`*:Name`) matches an action of any service.
    let covered = |a: &String| match a.strip_prefix("*:") {
        Some(name) => allowed.iter().any(|x| x.ends_with(&format!(":{name}"))),
        None => allowed.contains(a),
    };
    let missing: Vec<&String> = called.iter().filter(|a| !covered(a)).collect();
    assert!(
        missing.is_empty(),
        "called but not in the README's IAM policy: {missing:?}"
    );
    let unused: Vec<&String> = allowed
        .iter()
        .filter(|a| !IMPLIED.contains(&a.as_str()))
        .filter(|a| {
            let name = a.split(':').nth(1).unwrap_or("");
            !called.contains(*a) && !called.contains(&format!("*:{name}"))
        })
        .collect();
    assert!(
        unused.is_empty(),
        "in the policy but never called: {unused:?}"
    );
    for never in [
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "ssm:GetParameter",
    ] {
        assert!(!allowed.contains(never), "{never} must not be needed");
        assert!(!called.contains(never), "{never} is called");
    }
}
