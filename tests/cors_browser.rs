//! The `cors` verdict against what a real browser does: headless Chromium (Debian's
//! `chromium-headless-shell`) loads a page served from a second loopback origin
//! (`http://127.0.0.1:<page port>`: another origin, the same site) that connects to the
//! gateway through the sticky HAProxy with the official socket.io-client browser bundle,
//! `withCredentials: true` and polling only (so every request must stick to its task), as
//! BoSar's web app does. Two distinct replicas sit behind the proxy. With CORS credentials on
//! the browser holds its session for three heartbeats and `verify` passes; with `*` the browser
//! is refused and `verify` fails; from another site (`localhost`) the browser sends only
//! AWSALBCORS, which still sticks, and `verify` (sending the same) warns about the third-party
//! cookie. A missing Chromium fails the test, never skips.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::chromium::chromium;
use support::peers::{Gateway, GatewayOpts, Haproxy};

const SECRET: &str = "verify-test-secret";
const TOKEN_ENV: &str = "BOSAR_CORS_BROWSER_TOKEN";

/// A static file server for the page's origin, stopped on drop.
struct PageServer {
    child: Child,
    origin: String,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> PageServer {
    let port = support::free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    support::wait_listening(port, "the page server", 10);
    PageServer {
        child,
        origin: format!("http://127.0.0.1:{port}"),
    }
}

/// The page: the official browser bundle, polling only, with credentials; its result in
/// `#out` as JSON.
fn page(dir: &Path, gateway: &str, token: &str) {
    let bundle =
        support::repo().join("tests/gateway/node_modules/socket.io-client/dist/socket.io.min.js");
    std::fs::copy(&bundle, dir.join("socket.io.min.js")).expect("the socket.io-client bundle");
    let html = format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre>
<script src="socket.io.min.js"></script>
<script>
const out = document.getElementById('out');
let beats = 0;
const s = io({gw}, {{ transports: ['polling'], withCredentials: true, reconnection: false, auth: {{ token: {tok} }} }});
s.on('heartbeat', (d, ack) => {{
  if (ack) ack();
  beats += 1;
  if (beats === 3) {{ out.textContent = JSON.stringify({{ ok: true, beats, instance: d.instanceId }}); s.disconnect(); }}
}});
s.on('connect_error', (e) => {{ out.textContent = JSON.stringify({{ ok: false, error: String(e.message) }}); }});
s.on('disconnect', (r) => {{ if (beats < 3) out.textContent = JSON.stringify({{ ok: false, error: 'disconnect: ' + r }}); }});
</script></body></html>"#,
        gw = serde_json::json!(format!("{gateway}/chat")),
        tok = serde_json::json!(token),
    );
    std::fs::write(dir.join("index.html"), html).unwrap();
}

/// What the browser ended with: the JSON in `#out` after the page ran (up to 15 s of the
/// page's time).
fn browse(url: &str, profile: &Path) -> Value {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=15000", "--dump-dom", url])
        .stdin(Stdio::null())
        .output()
        .expect("run chromium-headless-shell");
    let dom = String::from_utf8_lossy(&out.stdout);
    let text = dom
        .split_once("<pre id=\"out\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(t, _)| t.replace("&quot;", "\""))
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
}

fn config(url: &str, origin: &str) -> (tempfile::TempDir, PathBuf) {
    support::gateway_config(url, TOKEN_ENV, &format!("origins = [\"{origin}\"]"))
}

fn replica(id: &str, cors: &str) -> Gateway {
    Gateway::start(&GatewayOpts {
        instance_id: Some(id.into()),
        env: vec![("GATEWAY_CORS".into(), cors.into())],
        ..GatewayOpts::default()
    })
}

#[test]
fn the_cors_verdict_matches_what_chromium_does() {
    // (gateway CORS mode, the page on another site, what the browser and verify say)
    for (cors, cross_site, browser_ok, verdict) in [
        ("credentials", false, true, "pass"),
        ("wildcard", false, false, "fail"),
        // `localhost` is another site than the gateway's 127.0.0.1: the browser sends only
        // AWSALBCORS (SameSite=None; Secure, which loopback counts as secure), and that is
        // enough to stick; verify, sending the same, warns about the third-party cookie.
        ("credentials", true, true, "warn"),
    ] {
        let a = replica("gw-a", cors);
        let b = replica("gw-b", cors);
        let proxy = Haproxy::start("sticky", [&a, &b]);
        let dir = tempfile::tempdir().unwrap();
        page(
            dir.path(),
            &proxy.url,
            &support::signed_token(SECRET, "browser"),
        );
        let server = serve(dir.path());
        let origin = if cross_site {
            server.origin.replace("127.0.0.1", "localhost")
        } else {
            server.origin.clone()
        };
        let seen = browse(&format!("{origin}/index.html"), &dir.path().join("profile"));
        assert_eq!(
            seen["ok"], browser_ok,
            "{cors} {origin}: the browser saw {seen}"
        );

        let (_d, cfg) = config(&proxy.url, &origin);
        let (out, report) = support::verify_json(&cfg, TOKEN_ENV, SECRET, "cors-browser");
        let (status, msg) = support::check_of(&report, "cors");
        assert_eq!(status, verdict, "{cors} {origin}: {msg}\n{}", out.all());
        if cross_site {
            assert!(msg.contains("are different sites"), "{msg}");
        }
    }
}
