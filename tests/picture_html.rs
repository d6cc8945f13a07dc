//! `verify --connections N --reconnect --html PATH` against the real peers (two NestJS
//! gateway replicas behind the sticky HAProxy, one of them stopped mid-hold, its instance id
//! hostile), then the page opened in headless Chromium (Debian's `chromium-headless-shell`):
//! it renders with no console message and no network request (Chromium's own NetLog lists
//! every URL request it made), the hostile id stays text in the DOM, and a screenshot at
//! 1200×800 is a PNG bigger than one of an empty page. A control page proves the two
//! detectors see a request and a console error. A missing Chromium fails, never skips.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::chromium::{render, screenshot};
use support::peers::{Gateway, GatewayOpts, SlotProxy};

const TOKEN_ENV: &str = "BOSAR_PICTURE_TEST_TOKEN";
const SECRET: &str = "verify-test-secret";
const N: u64 = 20;
/// An instance id that would be markup if it were not escaped.
const HOSTILE: &str =
    "gw-a\"'><script>console.error('pwned')</script></svg><img src=http://127.0.0.1:9/x.png>";

#[test]
fn the_detectors_see_a_request_and_a_console_error() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><img src=\"http://127.0.0.1:9/x.png\"><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let r = render(&page, dir.path());
    assert!(
        r.urls.iter().any(|u| u == "http://127.0.0.1:9/x.png"),
        "{:?}",
        r.urls
    );
    assert!(
        r.console.iter().any(|l| l.contains("boom")),
        "{:?}",
        r.console
    );
}

#[test]
fn the_timeline_of_a_replica_stop_renders_offline_with_the_hostile_id_as_text() {
    let opts = |id: &str| GatewayOpts {
        instance_id: Some(id.into()),
        ..GatewayOpts::default()
    };
    let (ga, gb) = (
        Gateway::start(&opts(HOSTILE)),
        Gateway::start(&opts("gw-b")),
    );
    let proxy = SlotProxy::start(&[&ga, &gb]);
    let (dir, cfg) = support::gateway_config(&proxy.url, TOKEN_ENV, "");
    let page = dir.path().join("run.html");
    let summary = dir.path().join("summary.md");
    let n = N.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env(TOKEN_ENV, support::signed_token(SECRET, "picture-test"))
        .arg("--config")
        .arg(&cfg)
        .args(["--output", "json", "verify", "--connections", &n])
        .args(["--concurrency", "20", "--reconnect", "--hold", "4s"])
        .args(["--reconnect-delay", "200ms..1s", "--html"])
        .arg(&page)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bosar-deploy");
    // All open, then the hostile replica stops: its sessions come back on gw-b.
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = |g: &Gateway| g.stats()["connections"].as_u64().unwrap();
    while count(&ga) + count(&gb) < N {
        assert!(Instant::now() < deadline, "the sessions did not open");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let held = count(&ga);
    assert!(held > 0, "the hostile replica holds no session");
    ga.terminate();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &report["probe"]["disruption"];
    assert_eq!(d["dropped"]["sessions"].as_u64(), Some(held), "{d:#}");

    // The page: no script, the hostile id escaped, every panel drawn.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(
        html.contains("gw-a&quot;&apos;&gt;&lt;script&gt;"),
        "{html}"
    );
    assert_eq!(html.matches("<polygon").count(), 2, "a band per target");
    assert!(
        html.matches("<rect").count() >= 2,
        "drops and reconnects drawn"
    );

    // Chromium: renders it, nothing fetched, nothing on the console, the id is text.
    let r = render(&page, dir.path());
    assert!(r.urls.is_empty(), "the page made requests: {:?}", r.urls);
    assert!(r.console.is_empty(), "console: {:?}", r.console);
    assert!(r.dom.contains("<svg"), "{}", r.dom);
    assert!(
        r.dom
            .contains("gw-a\"'&gt;&lt;script&gt;console.error('pwned')&lt;/script&gt;&lt;/svg&gt;"),
        "the hostile id is not text in the DOM: {}",
        r.dom
    );
    assert_eq!(r.dom.matches("<script").count(), 0);

    // A screenshot at 1200×800, with more in it than an empty page's.
    let png = screenshot(&page, dir.path(), "run.png");
    // BOSAR_PICTURE_KEEP=DIR keeps the page and its screenshot (for the docs' picture).
    if let Some(keep) = std::env::var_os("BOSAR_PICTURE_KEEP") {
        let keep = Path::new(&keep);
        std::fs::copy(&page, keep.join("timeline.html")).unwrap();
        std::fs::write(keep.join("timeline.png"), &png).unwrap();
    }
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1200);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 800);
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let empty = screenshot(&blank, dir.path(), "blank.png");
    assert!(
        png.len() > 4 * empty.len(),
        "{} vs {} bytes",
        png.len(),
        empty.len()
    );

    // The step summary: the probe's table, then the timeline as Mermaid charts, the hostile
    // id in a code span as GitHub renders it.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(md.matches("```mermaid\nxychart-beta").count(), 2, "{md}");
    let rendered = support::gfm::render(&md);
    assert!(!rendered.contains("<script"), "{rendered}");
    assert!(!rendered.contains("raw HTML omitted"), "{rendered}");
    assert!(
        rendered.contains("<code>gw-a&quot;'&gt;&lt;script&gt;"),
        "{rendered}"
    );
}

#[test]
fn an_unwritable_path_is_a_usage_error_before_anything_runs() {
    let (dir, cfg) = support::write_config(
        "[target_group]\nname = \"tg\"\n\n[gateway]\nurl = \"http://127.0.0.1:9\"\n",
    );
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bosar-deploy"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--config")
            .arg(&cfg)
            .args(["verify", "--connections", "2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let missing = dir.path().join("no/such/folder/run.html");
    let out = run(&["--reconnect", "--html", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--html"), "{err}");
    assert!(!err.contains("Probing"), "nothing ran: {err}");
    // A folder is not a page.
    let out = run(&["--reconnect", "--html", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // --html draws the reconnects: without --reconnect it is refused.
    let out = run(&["--html", "x.html"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--reconnect"), "{err}");
}

#[test]
fn deploy_and_full_check_the_path_before_any_call() {
    let (dir, cfg) = support::write_config(&support::sandbox_config());
    let missing = dir.path().join("no/such/folder/run.html");
    for verb in ["deploy", "full"] {
        // An endpoint nothing listens on: a call to AWS would fail otherwise than exit 2.
        let out = support::bosar("http://127.0.0.1:9", "picture-usage")
            .arg("--config")
            .arg(&cfg)
            .args([verb, "--html"])
            .arg(&missing)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{verb}: {err}");
        assert!(
            err.contains("--html") && err.contains("does not exist"),
            "{verb}: {err}"
        );
    }
}
