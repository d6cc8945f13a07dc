//! The binary against hostile gateways (a real TCP server per case, on loopback: see
//! `support::hostile`), under GitHub Actions (`GITHUB_ACTIONS=true`, a step summary file,
//! `--junit`): whatever the server does, every run ends in bounded time (stated per case) and
//! bounded memory (peak RSS of the child, measured with `wait4`: under [`RSS_BOUND_MIB`]),
//! no output carries the token, no line of stdout or stderr is a workflow command the Actions
//! runner would act on other than the tool's own annotations, no text output carries a raw
//! control, bidi or C1 character, and the step summary renders server text as text.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::hostile::{Body, Connect, Hostile, Script};
use support::{foreign_commands, measure, Measured};

const TOKEN_ENV: &str = "BOSAR_HOSTILE_TOKEN";
/// The word every injected workflow command carries.
const MARK: &str = "PWNED";
/// Workflow commands hidden in server text: after a line break, percent-encoded, after a
/// carriage return (the runner splits lines there too), and the v1 form anywhere in a line.
const INJECT: &str =
    "ok\n::add-mask::PWNED %0A::error::PWNED \r::stop-commands::PWNED ##[error]PWNED \u{85}::error::PWNED";
/// Peak resident memory allowed for any run here. A run against a well-behaved server peaks
/// near 20-30 MiB on this machine.
const RSS_BOUND_MIB: u64 = 64;

/// A 210-character token, as in the report that found the echo leak.
fn token() -> String {
    let t = format!("hostile.{}.xyz", "t0K3nS3gm3nt".repeat(16) + "abcdef");
    assert_eq!(t.len(), 210);
    t
}

struct Case {
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    junit: PathBuf,
    summary: PathBuf,
}

fn case(url: &str) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("deploy.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[target_group]
name = "bosar-api-tg"
stickiness = "lb_cookie"
cookie_duration = "1d"

[gateway]
url = "{url}"
namespace = "/chat"
health_path = "/health/websocket"
token_env = "{TOKEN_ENV}"
ping_interval = "1s"
ping_timeout = "1s"
heartbeat_event = "heartbeat"
heartbeat_interval = "1s"
stickiness_rounds = 3
"#
        ),
    )
    .unwrap();
    Case {
        junit: dir.path().join("junit.xml"),
        summary: dir.path().join("summary.md"),
        cfg,
        _dir: dir,
    }
}

struct Out {
    m: Measured,
    junit: String,
    summary: String,
    json: bool,
}

/// `bosar-deploy [--output json] verify --junit … ARGS` under GitHub Actions, measured.
fn verify(h: &Hostile, json: bool, args: &[&str], limit: Duration) -> Out {
    let c = case(&h.url);
    let mut cmd = Command::new(support::bin_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &c.summary)
        .env(TOKEN_ENV, token())
        .arg("--config")
        .arg(&c.cfg);
    if json {
        cmd.args(["--output", "json"]);
    }
    cmd.arg("verify").arg("--junit").arg(&c.junit).args(args);
    let m = measure(&mut cmd, limit);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let out = Out {
        junit: read(&c.junit),
        summary: read(&c.summary),
        m,
        json,
    };
    if std::env::var_os("HOSTILE_DEBUG").is_some() {
        eprintln!(
            "--- stdout\n{}\n--- stderr\n{}\n--- summary\n{}\n--- {:?}, {} KiB",
            out.m.run.stdout, out.m.run.stderr, out.summary, out.m.elapsed, out.m.max_rss_kib
        );
    }
    out
}

/// What holds for every run, whatever the server did.
fn assert_contained(out: &Out, time_bound: Duration) {
    let run = &out.m.run;
    let all = run.all();
    assert!(
        (0..=2).contains(&run.code),
        "exit {}: {}",
        run.code,
        run.stderr
    );
    assert!(
        out.m.elapsed < time_bound,
        "took {:?} (bound {time_bound:?})",
        out.m.elapsed
    );
    assert!(
        out.m.max_rss_kib < RSS_BOUND_MIB * 1024,
        "peak RSS {} KiB",
        out.m.max_rss_kib
    );
    // No token, nor a long piece of it, anywhere.
    let t = token();
    for (what, text) in [
        ("output", &all),
        ("junit", &out.junit),
        ("summary", &out.summary),
    ] {
        assert!(
            !text.contains(&t[60..100]),
            "a piece of the token in the {what}"
        );
    }
    // No workflow command but the tool's own annotations.
    let foreign = foreign_commands(&all, MARK);
    assert!(foreign.is_empty(), "injected commands: {foreign:#?}");
    // Lines and reports stay small.
    for line in all.lines() {
        assert!(line.len() <= 8 * 1024, "a {}-byte line", line.len());
    }
    assert!(
        out.junit.len() < 64 * 1024,
        "JUnit {} bytes",
        out.junit.len()
    );
    assert!(
        out.summary.len() < 64 * 1024,
        "summary {} bytes",
        out.summary.len()
    );
    roxmltree::Document::parse(&out.junit).expect("the JUnit report parses");
    // No raw control, bidi or C1 character in text meant for people.
    let hidden = |c: char| bosar_deploy::outside::is_hidden(c) && c != '\n';
    let texts = [
        ("stderr", run.stderr.as_str()),
        ("summary", out.summary.as_str()),
        ("junit", out.junit.as_str()),
    ];
    for (what, text) in texts.iter().chain(
        (!out.json)
            .then_some(("stdout", run.stdout.as_str()))
            .iter(),
    ) {
        let bad: Vec<char> = text.chars().filter(|c| hidden(*c)).collect();
        assert!(bad.is_empty(), "raw {bad:?} in the {what}");
    }
    // The summary, as GitHub renders it, shows server text as text: no link, no HTML.
    support::gfm::assert_renders_as_text(&out.summary);
}

fn checks(out: &Out) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&out.m.run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", out.m.run.all()));
    let payload = if doc["probe"].is_object() {
        &doc["probe"]
    } else {
        &doc["verify"]
    };
    payload["checks"].as_array().cloned().unwrap_or_default()
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {checks:#?}"))
}

/// Finding 1: a handshake payload of 40 pings, every POST held. One pong per payload, and the
/// first failed send ends the session: the handshake fails within one request timeout (2 s
/// here), the run within 15 s (it took 254 s before).
#[test]
fn ping_flood_with_held_posts_ends_within_one_request_timeout() {
    let h = Hostile::start(Script {
        handshake_extra: vec!["2".into(); 40],
        hold_posts: true,
        ..Script::default()
    });
    let out = verify(&h, true, &[], Duration::from_secs(60));
    assert_contained(&out, Duration::from_secs(15));
    let cs = checks(&out);
    let hs = check(&cs, "handshake");
    assert_eq!(hs["status"], "fail", "{hs}");
    assert!(hs["duration_ms"].as_u64().unwrap() < 4000, "{hs}");
    assert!(hs["message"].as_str().unwrap().contains("POST"), "{hs}");
}

/// Finding 1, the large form: a payload holding 300,000 pings is refused at once (at most 256
/// packets are handled per payload), in under 10 s.
#[test]
fn a_payload_of_300000_pings_is_refused() {
    let h = Hostile::start(Script {
        handshake_extra: vec!["2".into(); 300_000],
        hold_posts: true,
        ..Script::default()
    });
    let out = verify(&h, true, &[], Duration::from_secs(60));
    assert_contained(&out, Duration::from_secs(10));
    let cs = checks(&out);
    let hs = check(&cs, "handshake");
    assert!(
        hs["message"]
            .as_str()
            .unwrap()
            .contains("packets in one payload"),
        "{hs}"
    );
}

/// Finding 2: a 300 MB health body. The probe's cookie look-ups stream it up to 64 KiB and
/// drop the connection; `verify`'s health check stops at its 1 MiB limit. Peak RSS under
/// 64 MiB (339 MB before), runs under 40 s.
#[test]
fn a_300_mb_health_body_stays_out_of_memory() {
    let h = Hostile::start(Script {
        health: Body::Generate(300 << 20),
        ..Script::default()
    });
    let out = verify(
        &h,
        true,
        &["--connections", "4", "--hold", "2s"],
        Duration::from_secs(90),
    );
    assert_contained(&out, Duration::from_secs(40));
    let doc: Value = serde_json::from_str(&out.m.run.stdout).unwrap();
    assert_eq!(doc["probe"]["opened"], 4, "{doc:#}");
    let out = verify(&h, false, &[], Duration::from_secs(60));
    assert_contained(&out, Duration::from_secs(20));
    assert!(out.m.run.stdout.contains("larger than the 1024 KiB limit"));
}

/// Finding 6: a 900 KB CONNECT_ERROR message, with workflow commands in it. Every field is
/// cut (300 characters), so lines, JUnit and the summary stay small; runs under 20 s.
#[test]
fn a_900_kb_connect_error_is_cut_everywhere() {
    let huge = format!("{INJECT}{}{INJECT}", "x".repeat(900 * 1024));
    let h = Hostile::start(Script {
        connect: Connect::Refuse(huge),
        ..Script::default()
    });
    let out = verify(&h, false, &[], Duration::from_secs(60));
    assert_contained(&out, Duration::from_secs(20));
    assert!(
        out.m.run.stdout.contains("more bytes)"),
        "{}",
        out.m.run.stdout
    );
    assert!(out.m.run.stdout.len() < 32 * 1024);
    let out = verify(
        &h,
        false,
        &["--connections", "3", "--hold", "1s"],
        Duration::from_secs(60),
    );
    assert_contained(&out, Duration::from_secs(30));
    assert!(out.m.run.stdout.contains("refused the CONNECT"));
}

/// Findings 6 and 9 (and issue 22's 3 and 4): Markdown, HTML, GitHub's extended autolinks,
/// a URL with user info, bidi overrides and C1 controls in instance ids (health and heartbeats)
/// are shown escaped and rendered as text, the URL's user info `***` in every output; runs
/// under 20 s / 30 s.
#[test]
fn markdown_html_bidi_and_c1_in_instance_ids_are_shown_as_text() {
    let id = "<img src=x onerror=alert(1)>[x](https://evil.example/)|cell www.evil.example \
              admin@evil.example https://ci:ghp_Hostile0Registry0Pass@registry.example/v2 \
              \u{202e}gpj.exe\u{9b}31m \u{1b}[2J";
    let pass = "ghp_Hostile0Registry0Pass";
    let no_pass = |out: &Out| {
        for (what, text) in [
            ("output", out.m.run.all()),
            ("junit", out.junit.clone()),
            ("summary", out.summary.clone()),
        ] {
            assert!(
                !text.contains(pass),
                "the URL's password in the {what}:\n{text}"
            );
        }
    };
    let h = Hostile::start(Script {
        health: Body::Bytes(json!({"instanceId": id}).to_string().into_bytes()),
        heartbeat: json!({"instanceId": id}),
        connect: Connect::Accept,
        ..Script::default()
    });
    let out = verify(&h, false, &["-v"], Duration::from_secs(60));
    assert_contained(&out, Duration::from_secs(20));
    assert!(
        out.m.run.stdout.contains(r"\u{202e}gpj.exe\u{9b}31m"),
        "{}",
        out.m.run.stdout
    );
    assert!(
        out.m.run.stdout.contains("https://***@registry.example/v2"),
        "{}",
        out.m.run.stdout
    );
    no_pass(&out);
    let html = support::gfm::render(&out.summary);
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;[x](https://evil.example/)|cell www.evil.example admin@evil.example https://***@registry.example/v2"),
        "{html}"
    );
    let out = verify(
        &h,
        false,
        &["--connections", "2", "--hold", "1s"],
        Duration::from_secs(60),
    );
    assert_contained(&out, Duration::from_secs(30));
    no_pass(&out);
    // In JSON the id stays as the server sent it (lossless), and the document is valid.
    let out = verify(
        &h,
        true,
        &["--connections", "2", "--hold", "1s"],
        Duration::from_secs(60),
    );
    assert_contained(&out, Duration::from_secs(30));
    no_pass(&out);
    let doc: Value = serde_json::from_str(&out.m.run.stdout).unwrap();
    let masked = id.replace("ci:ghp_Hostile0Registry0Pass", "***");
    assert_eq!(doc["probe"]["targets"][0]["instance"], masked, "{doc:#}");
}

/// Finding 4: a gateway that echoes the CONNECT request (with the 210-character token) into
/// its heartbeats and its CONNECT_ERROR. The token is redacted before anything is cut: not a
/// piece of it in any output, text or JSON, nor in JUnit or the summary.
#[test]
fn an_echoed_connect_never_shows_the_token() {
    let echo = Hostile::start(Script {
        heartbeat: json!({"instanceId": "$CONNECT", "seq": "$CONNECT"}),
        ..Script::default()
    });
    for json in [false, true] {
        let out = verify(&echo, json, &["-v"], Duration::from_secs(60));
        assert_contained(&out, Duration::from_secs(20));
        assert!(out.m.run.stdout.contains("***"), "{}", out.m.run.stdout);
        let out = verify(
            &echo,
            json,
            &["--connections", "2", "--hold", "1s"],
            Duration::from_secs(60),
        );
        assert_contained(&out, Duration::from_secs(30));
    }
    let refuse = Hostile::start(Script {
        connect: Connect::Refuse("bad token: $CONNECT".into()),
        ..Script::default()
    });
    for json in [false, true] {
        let out = verify(&refuse, json, &[], Duration::from_secs(60));
        assert_contained(&out, Duration::from_secs(20));
        let out = verify(
            &refuse,
            json,
            &["--connections", "2", "--hold", "1s"],
            Duration::from_secs(60),
        );
        assert_contained(&out, Duration::from_secs(30));
        assert!(out.m.run.stdout.contains("***"), "{}", out.m.run.stdout);
    }
}

/// Findings 3 and 9: workflow commands (`\n::add-mask::`, `%0A::error::`, `\r::stop-commands::`,
/// `##[error]`, after U+0085) in every field a server controls: the health body and its
/// content type, an HTTP error body, the Engine.IO error message of a POST, packets after the
/// open packet, the CONNECT_ERROR message, a close frame's reason, heartbeat payloads. No line
/// of stdout or stderr is a command but the tool's own annotations; each run under 30 s.
#[test]
fn workflow_commands_in_every_server_field_stay_text() {
    let scripts = [
        Script {
            health: Body::Bytes(json!({"instanceId": INJECT}).to_string().into_bytes()),
            health_type: "application/json; x=%0A::error::PWNED ##[error]PWNED".into(),
            heartbeat: json!({"instanceId": INJECT, "seq": INJECT}),
            ..Script::default()
        },
        Script {
            health_status: 503,
            health: Body::Bytes(INJECT.as_bytes().to_vec()),
            polling_type: "text/html; x=::error::PWNED".into(),
            ..Script::default()
        },
        Script {
            post_error: Some((400, json!({"code": 1, "message": INJECT}).to_string())),
            handshake_extra: vec![format!("4{INJECT}"), format!("9{INJECT}")],
            connect: Connect::Refuse(INJECT.into()),
            ..Script::default()
        },
        Script {
            handshake_extra: vec![format!("44/chat,{}", json!({"message": INJECT}))],
            connect: Connect::Close("\n::error::PWNED\r::add-mask::PWNED".into()),
            ..Script::default()
        },
    ];
    for script in scripts {
        let h = Hostile::start(script);
        let out = verify(&h, false, &["-v"], Duration::from_secs(60));
        assert_contained(&out, Duration::from_secs(30));
        let out = verify(
            &h,
            false,
            &["--connections", "2", "--hold", "1s"],
            Duration::from_secs(60),
        );
        assert_contained(&out, Duration::from_secs(30));
    }
}
