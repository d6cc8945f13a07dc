//! `verify` against hostile servers, in process on loopback: garbage, truncated packets, a
//! 10 MB body, a server that never answers, a close mid-upgrade, invalid JSON, the wrong
//! content type. Each must give a failed check with a clear message, in bounded time, without
//! a panic, and every check must be reported.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bosar_deploy::gateway::verify::{verify, Secret, VerifySettings};
use bosar_deploy::report::{Check, CheckStatus};
use bosar_deploy::ui::Ui;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

mod support;

use support::hostile::{read_request, Req};

const TOKEN: &str = "hostile.test.token";

#[derive(Clone)]
enum Resp {
    Http {
        status: u16,
        ct: &'static str,
        body: Vec<u8>,
    },
    /// Bytes as they are, then close.
    Raw(Vec<u8>),
    /// Accept, read, never answer.
    Hang,
    /// Close without a word.
    Close,
    /// 200 without Content-Length, `total` bytes, then close.
    Stream { ct: &'static str, total: usize },
    /// Complete the websocket handshake, read the first frame (2probe), then close the TCP.
    WsThenClose,
}

fn ok(ct: &'static str, body: impl Into<Vec<u8>>) -> Resp {
    Resp::Http {
        status: 200,
        ct,
        body: body.into(),
    }
}

const OPEN: &str = r#"0{"sid":"hostileSid123","upgrades":["websocket"],"pingInterval":1000,"pingTimeout":1000,"maxPayload":1000000}"#;

fn health_ok() -> Resp {
    ok(
        "application/json",
        r#"{"status":"ok","instanceId":"fake-1"}"#,
    )
}

type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

async fn respond(mut s: TcpStream, req: &Req, resp: Resp) {
    match resp {
        Resp::Http { status, ct, body } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
        Resp::Raw(bytes) => {
            let _ = s.write_all(&bytes).await;
        }
        Resp::Hang => {
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(60), async {
                while let Ok(n) = s.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        Resp::Close => {}
        Resp::Stream { ct, total } => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nConnection: close\r\n\r\n");
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                if s.write_all(&block).await.is_err() {
                    return;
                }
                sent += block.len();
            }
        }
        Resp::WsThenClose => {
            let key = req.ws_key.clone().unwrap_or_default();
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            let _ = s.write_all(head.as_bytes()).await;
            let mut frame = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut frame)).await;
            // Dropping the stream closes the connection mid-upgrade.
        }
    }
    let _ = s.shutdown().await;
}

/// Serves `handler` on a free loopback port until the test's runtime ends.
async fn serve(handler: Handler) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let h = handler.clone();
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut s).await {
                    let resp = h(&req);
                    respond(s, &req, resp).await;
                }
            });
        }
    });
    port
}

fn settings(port: u16) -> VerifySettings {
    VerifySettings {
        url: format!("http://127.0.0.1:{port}"),
        namespace: "/chat".into(),
        health_path: "/health/websocket".into(),
        ping_interval: Duration::from_secs(1),
        ping_timeout: Duration::from_secs(1),
        heartbeat_event: "heartbeat".into(),
        heartbeat_interval: Duration::from_secs(1),
        stickiness_rounds: 3,
        token: Some(Secret::new(TOKEN)),
        eio3: None,
        recovery: None,
        origins: Vec::new(),
    }
}

/// Runs verify against `handler`; asserts the universal properties; returns the checks.
async fn run(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Vec<Check> {
    let port = serve(Arc::new(handler)).await;
    let started = Instant::now();
    let checks = tokio::time::timeout(
        Duration::from_secs(30),
        verify(&settings(port), &Ui::silent()),
    )
    .await
    .expect("verify must finish in bounded time");
    let elapsed = started.elapsed();
    if std::env::var_os("HOSTILE_DEBUG").is_some() {
        for c in &checks {
            eprintln!("{}", c.line());
        }
        eprintln!("({elapsed:?})");
    }
    assert!(elapsed < Duration::from_secs(15), "verify took {elapsed:?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "health",
            "handshake",
            "cookies",
            "stickiness",
            "auth",
            "upgrade",
            "heartbeat",
            "ping",
            "disconnect"
        ]
    );
    for c in &checks {
        assert!(!c.message.is_empty(), "{c:?}");
        assert!(!c.message.contains(TOKEN), "{c:?}");
        assert!(!c.evidence.to_string().contains(TOKEN), "{c:?}");
    }
    assert!(
        checks.iter().any(|c| c.status == CheckStatus::Fail),
        "a hostile server must fail something: {checks:#?}"
    );
    checks
}

fn get<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap()
}

fn assert_fail(checks: &[Check], name: &str, needles: &[&str]) {
    let c = get(checks, name);
    assert_eq!(c.status, CheckStatus::Fail, "{name}: {c:?}");
    for n in needles {
        assert!(c.message.contains(n), "{name}: {:?} lacks {n:?}", c.message);
    }
}

fn garbage(n: usize) -> Vec<u8> {
    // Deterministic bytes that are neither HTTP nor UTF-8.
    (0..n)
        .map(|i| ((i * 7919 + 13) % 251) as u8 | 0x80)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_http() {
    let checks = run(|_| Resp::Raw(garbage(2048))).await;
    assert_fail(&checks, "health", &["GET /health/websocket"]);
    assert_fail(&checks, "handshake", &["no Engine.IO session"]);
    for c in &checks[2..] {
        assert_eq!(c.status, CheckStatus::Skip, "{c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies() {
    let checks = run(|r| {
        if r.is_health() {
            ok("application/json", garbage(300))
        } else {
            ok("text/plain; charset=UTF-8", garbage(300))
        }
    })
    .await;
    assert_fail(&checks, "health", &["not valid JSON"]);
    assert_fail(&checks, "handshake", &["payload is not UTF-8 text"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_packets() {
    let checks = run(|r| {
        if r.is_health() {
            // Content-Length promises more than comes.
            Resp::Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"status\":".to_vec())
        } else {
            ok("text/plain; charset=UTF-8", r#"0{"sid":"abc","upgr"#)
        }
    })
    .await;
    assert_fail(&checks, "health", &["reading the response body"]);
    assert_fail(&checks, "handshake", &["invalid JSON in the open packet"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_packet_inside_a_session() {
    // A working handshake, then a long poll that ends mid-packet.
    let checks = run(|r| {
        if r.is_health() {
            health_ok()
        } else if r.is_handshake() {
            ok("text/plain; charset=UTF-8", OPEN)
        } else if r.method == "POST" {
            ok("text/html", "ok")
        } else if r.ws_key.is_some() {
            Resp::Close
        } else {
            ok(
                "text/plain; charset=UTF-8",
                "42/chat,5[\"heartbeat\",{\"seq\":",
            )
        }
    })
    .await;
    assert_eq!(
        get(&checks, "handshake").status,
        CheckStatus::Pass,
        "{checks:#?}"
    );
    assert_fail(
        &checks,
        "heartbeat",
        &["invalid JSON in the Socket.IO packet"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_bodies() {
    let checks = run(|r| {
        if r.is_health() {
            // With Content-Length: refused before reading.
            ok("application/json", vec![b' '; 10 << 20])
        } else {
            // Without: refused while streaming, at the limit.
            Resp::Stream {
                ct: "text/plain; charset=UTF-8",
                total: 10 << 20,
            }
        }
    })
    .await;
    assert_fail(&checks, "health", &["larger than the 1024 KiB limit"]);
    assert_fail(&checks, "handshake", &["larger than the 1024 KiB limit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers() {
    let started = Instant::now();
    let checks = run(|_| Resp::Hang).await;
    assert_fail(&checks, "health", &["no answer within 2 s"]);
    assert_fail(
        &checks,
        "handshake",
        &["handshake GET: no answer within 2 s"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_mid_upgrade() {
    let checks = run(|r| {
        if r.is_health() {
            health_ok()
        } else if r.is_handshake() {
            ok("text/plain; charset=UTF-8", OPEN)
        } else if r.method == "POST" {
            ok("text/html", "ok")
        } else if r.ws_key.is_some() {
            Resp::WsThenClose
        } else {
            ok("text/plain; charset=UTF-8", "6")
        }
    })
    .await;
    assert_eq!(
        get(&checks, "handshake").status,
        CheckStatus::Pass,
        "{checks:#?}"
    );
    assert_fail(&checks, "upgrade", &["websocket upgrade failed", "closed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json() {
    let checks = run(|r| {
        if r.is_health() {
            ok("application/json", r#"{"status": ok}"#)
        } else {
            ok("text/plain; charset=UTF-8", "0{sid: abc}")
        }
    })
    .await;
    assert_fail(&checks, "health", &["not valid JSON"]);
    assert_fail(&checks, "handshake", &["invalid JSON in the open packet"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type() {
    let checks = run(|_| ok("text/html", "<html><body>Welcome to nginx!</body></html>")).await;
    assert_fail(
        &checks,
        "health",
        &["content type \"text/html\", expected application/json"],
    );
    assert_fail(
        &checks,
        "handshake",
        &["unexpected content type \"text/html\" (expected text/plain)"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_v3_framing_and_http_errors() {
    let checks = run(|r| {
        if r.is_health() {
            Resp::Http {
                status: 503,
                ct: "text/plain",
                body: b"Service Unavailable".to_vec(),
            }
        } else {
            ok(
                "text/plain; charset=UTF-8",
                format!("{}:{OPEN}", OPEN.len()),
            )
        }
    })
    .await;
    assert_fail(&checks, "health", &["HTTP 503", "Service Unavailable"]);
    assert_fail(&checks, "handshake", &["Engine.IO v3 framing"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let checks = verify(&settings(port), &Ui::silent()).await;
    assert_fail(&checks, "health", &["cannot connect"]);
    assert_fail(&checks, "handshake", &["cannot connect"]);
}

/// Target ids are outside text: a server naming a new hostile instance on every health answer
/// (escape sequences, a newline, 500 characters) gets them escaped and cut in every label and
/// message, and cannot make verify check more targets than one wave of the search finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_instance_ids_are_escaped_bounded_and_cannot_multiply_the_targets() {
    use bosar_deploy::gateway::verify::{verify_targets, Expected};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = Arc::new(AtomicUsize::new(0));
    let port = serve(Arc::new(move |req: &Req| {
        if req.target.starts_with("/health") {
            let i = n.fetch_add(1, Ordering::SeqCst);
            let id = format!("\u{1b}[31mevil-{i}\n<b>{}", "x".repeat(500));
            ok(
                "application/json",
                serde_json::json!({ "instanceId": id }).to_string(),
            )
        } else {
            Resp::Close
        }
    }))
    .await;
    let fleet = tokio::time::timeout(
        Duration::from_secs(30),
        verify_targets(
            &settings(port),
            Expected::given(2, "--targets"),
            &Ui::silent(),
        ),
    )
    .await
    .expect("bounded");
    assert_eq!(fleet.runs.len(), 2, "{:?}", fleet.runs);
    for r in &fleet.runs {
        assert!(r.label.chars().count() <= 80, "{}", r.label);
        assert!(
            !r.label.contains('\u{1b}') && !r.label.contains('\n'),
            "{:?}",
            r.label
        );
    }
    for c in &fleet.checks {
        assert!(
            !c.message.contains('\u{1b}') && !c.message.contains('\n'),
            "{}: {:?}",
            c.name,
            c.message
        );
    }
    // JSON carries the labels as shown (escaped, cut) and the ids as outside text (bounded).
    let table = fleet.table();
    for row in table["table"].as_array().unwrap() {
        let label = row["target"].as_str().unwrap();
        assert!(
            label.starts_with("\\x1b[31mevil-") && label.chars().count() <= 80,
            "{label}"
        );
        assert!(row["instance"].as_str().unwrap().len() <= 1100, "{row}");
    }
}

/// Nothing answers the search: the targets check fails saying how many were not reached and
/// why; the checks still run once (on an empty jar) and say what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_target_answering_the_search_fails_the_targets_check_with_why() {
    use bosar_deploy::gateway::verify::{verify_targets, Expected};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fleet = verify_targets(
        &settings(port),
        Expected::given(2, "--targets"),
        &Ui::silent(),
    )
    .await;
    let targets = get(&fleet.checks, "targets");
    assert_eq!(targets.status, CheckStatus::Fail, "{targets:?}");
    assert!(
        targets
            .message
            .starts_with("reached 0 of 2 healthy targets within ")
            && targets.message.contains(
                "2 not reached; the first failed GET: GET /health/websocket: cannot connect"
            ),
        "{}",
        targets.message
    );
    assert_fail(
        &fleet.checks,
        "health",
        &["cannot connect", "1 of 2 targets not reached"],
    );
    assert_eq!(fleet.reached(), 0);
    assert_eq!(fleet.summary(), "targets 0 checked / 2 healthy");
}
