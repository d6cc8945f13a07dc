//! A hostile Socket.IO gateway on loopback, for tests that run the binary against it: a real
//! TCP server (its own thread and runtime) that speaks just enough Engine.IO v4 / Socket.IO v5
//! for `verify` and the probe to get far, and puts whatever a [`Script`] says into every field
//! a server controls: the health body and its content type, packets after the open packet,
//! POST answers, the CONNECT answer, heartbeat payloads, close reasons, the `Set-Cookie` of
//! the `101`. `$CONNECT` in a string is replaced by the CONNECT packet the client sent (a
//! gateway that echoes the token back).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// What the health endpoint sends as its body.
#[derive(Clone, Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    /// This many bytes of `{"instanceId":"aaaa…`, streamed without Content-Length.
    Generate(usize),
}

/// The answer to a namespace CONNECT.
#[derive(Clone, Debug)]
pub enum Connect {
    Accept,
    /// CONNECT_ERROR with this message.
    Refuse(String),
    /// A websocket close frame with this reason (at most 123 bytes).
    Close(String),
}

#[derive(Clone, Debug)]
pub struct Script {
    pub health_status: u16,
    pub health_type: String,
    pub health: Body,
    /// Content type of the polling responses.
    pub polling_type: String,
    /// Packets after the open packet in the handshake response.
    pub handshake_extra: Vec<String>,
    /// Never answer a polling POST.
    pub hold_posts: bool,
    /// Answer polling POSTs with this status and body instead of `ok`.
    pub post_error: Option<(u16, String)>,
    pub connect: Connect,
    /// The heartbeat's payload (`$CONNECT` in a string: the client's CONNECT packet).
    pub heartbeat: Value,
    /// `Set-Cookie` of every websocket `101`.
    pub set_cookie: Option<String>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            health_status: 200,
            health_type: "application/json".into(),
            health: Body::Bytes(br#"{"status":"ok","instanceId":"gw-1"}"#.to_vec()),
            polling_type: "text/plain; charset=UTF-8".into(),
            handshake_extra: Vec::new(),
            hold_posts: false,
            post_error: None,
            connect: Connect::Accept,
            heartbeat: json!({"instanceId": "gw-1", "seq": 1}),
            set_cookie: Some(
                "AWSALB=c29tZS1jb29raWU=; Expires=Fri, 04 Dec 2099 15:47:07 GMT; Path=/".into(),
            ),
        }
    }
}

pub const OPEN: &str = r#"0{"sid":"hostileSid123","upgrades":["websocket"],"pingInterval":1000,"pingTimeout":1000,"maxPayload":1000000}"#;

/// The server; stops when dropped.
pub struct Hostile {
    pub port: u16,
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A deploy.toml in `dir` for probing `url` with 1 s intervals (the hostile server's pace), the
/// token read from `token_env`.
#[allow(dead_code)] // not every test binary that uses the hostile server probes it
pub fn probe_config(dir: &std::path::Path, url: &str, token_env: &str) -> std::path::PathBuf {
    let cfg = dir.join("deploy.toml");
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
token_env = "{token_env}"
ping_interval = "1s"
ping_timeout = "1s"
heartbeat_interval = "1s"
"#
        ),
    )
    .unwrap();
    cfg
}

impl Hostile {
    pub fn start(script: Script) -> Hostile {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let script = Arc::new(script);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let accept = async {
                    while let Ok((s, _)) = listener.accept().await {
                        tokio::spawn(serve(s, script.clone()));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Hostile {
            port,
            url: format!("http://127.0.0.1:{port}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// An HTTP request's head as a hostile server reads it (the body is read and dropped).
#[derive(Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub ws_key: Option<String>,
}

impl Req {
    pub fn is_health(&self) -> bool {
        self.target.starts_with("/health/")
    }
    pub fn is_handshake(&self) -> bool {
        self.target.starts_with("/socket.io/")
            && !self.target.contains("sid=")
            && self.ws_key.is_none()
    }
}

/// Reads one request from `s`: the head (at most 64 KiB) and up to 1 MiB of body.
pub async fn read_request(s: &mut TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut content_length = 0usize;
    let mut ws_key = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                content_length = v.trim().parse().unwrap_or(0);
            } else if k == "sec-websocket-key" {
                ws_key = Some(v.trim().to_string());
            }
        }
    }
    let mut have = buf.len() - head_end;
    while have < content_length.min(1 << 20) {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Some(Req {
        method,
        target,
        ws_key,
    })
}

async fn http(s: &mut TcpStream, status: u16, ct: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
}

async fn serve(mut s: TcpStream, script: Arc<Script>) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    if req.target.starts_with("/health") {
        health(&mut s, &script).await;
    } else if let Some(key) = &req.ws_key {
        let sid = req.target.contains("sid=");
        websocket(s, key, sid, &script).await;
        return;
    } else if req.method == "POST" {
        if script.hold_posts {
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(60), s.read(&mut sink)).await;
            return;
        }
        match &script.post_error {
            Some((status, body)) => {
                http(&mut s, *status, "application/json", body.as_bytes()).await
            }
            None => http(&mut s, 200, "text/html", b"ok").await,
        }
    } else if req.target.contains("sid=") {
        // A long poll: nothing to say.
        http(&mut s, 200, &script.polling_type, b"6").await;
    } else {
        let mut body = OPEN.to_string();
        for p in &script.handshake_extra {
            body.push('\u{1e}');
            body.push_str(p);
        }
        http(&mut s, 200, &script.polling_type, body.as_bytes()).await;
    }
    let _ = s.shutdown().await;
}

async fn health(s: &mut TcpStream, script: &Script) {
    match &script.health {
        Body::Bytes(b) => http(s, script.health_status, &script.health_type, b).await,
        Body::Generate(total) => {
            let head = format!(
                "HTTP/1.1 {} X\r\nContent-Type: {}\r\nConnection: close\r\n\r\n{{\"instanceId\":\"",
                script.health_status, script.health_type
            );
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < *total {
                if s.write_all(&block).await.is_err() {
                    return;
                }
                sent += block.len();
            }
        }
    }
}

fn echo(v: &Value, connect: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("$CONNECT", connect)),
        Value::Array(a) => Value::Array(a.iter().map(|x| echo(x, connect)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), echo(x, connect)))
                .collect(),
        ),
        v => v.clone(),
    }
}

/// The websocket side: the `101`, then (without a sid) the open packet, or (an upgrade) the
/// probe exchange; then the namespace CONNECT answered as the script says, pings every second
/// and heartbeats every second once joined.
async fn websocket(mut s: TcpStream, key: &str, upgrade: bool, script: &Script) {
    let cookie = script
        .set_cookie
        .as_ref()
        .map(|c| format!("Set-Cookie: {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{cookie}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(s, Role::Server, None).await;
    if !upgrade && ws.send(Message::text(OPEN)).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    ping.tick().await;
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    let mut joined = false;
    let mut connect_text = String::new();
    let mut ack = 0u64;
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = ping.tick() => {
                if ws.send(Message::text("2")).await.is_err() { return; }
            }
            _ = beat.tick(), if joined => {
                ack += 1;
                let payload = echo(&script.heartbeat, &connect_text);
                let frame = format!("42/chat,{ack}{}", json!(["heartbeat", payload]));
                if ws.send(Message::text(frame)).await.is_err() { return; }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) => {
                        // Completes the close handshake: tungstenite queued the reply; send it
                        // and wait for the client to end the connection.
                        let _ = ws.flush().await;
                        while let Some(Ok(_)) = ws.next().await {}
                        return;
                    }
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                if text == "2probe" {
                    if ws.send(Message::text("3probe")).await.is_err() { return; }
                } else if text.starts_with("40") {
                    connect_text = text.clone();
                    match &script.connect {
                        Connect::Accept => {
                            if ws.send(Message::text("40/chat,{\"sid\":\"nsSid\"}")).await.is_err() { return; }
                            joined = true;
                            beat.reset();
                        }
                        Connect::Refuse(m) => {
                            let m = m.replace("$CONNECT", &connect_text);
                            let data = if m.len() < 1000 { json!({"reason": m}) } else { json!({}) };
                            let frame = format!("44/chat,{}", json!({"message": m, "data": data}));
                            if ws.send(Message::text(frame)).await.is_err() { return; }
                        }
                        Connect::Close(reason) => {
                            let frame = CloseFrame { code: CloseCode::Library(4000), reason: reason.clone().into() };
                            let _ = ws.send(Message::Close(Some(frame))).await;
                            return;
                        }
                    }
                } else if text.starts_with("41") {
                    joined = false;
                }
            }
        }
    }
}
