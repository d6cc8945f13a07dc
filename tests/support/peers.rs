//! The gateway test peers: real NestJS Socket.IO gateway replicas (`tests/gateway/server.mjs`)
//! and HAProxy in front of them, shaped like the ALB (`tests/support/haproxy/*.cfg.tmpl`).
//! Each starts on free loopback ports and is killed on drop. A missing peer fails the test
//! loudly with the setup command.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{free_port, http, repo, require, Peer};

/// How a gateway replica is started.
#[derive(Debug, Clone)]
pub struct GatewayOpts {
    pub instance_id: Option<String>,
    pub jwt_secret: String,
    pub auth: bool,
    pub heartbeat: bool,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Status of `GET /health/websocket` (503: a sick task).
    pub health_status: u16,
    /// More environment for server.mjs (e.g. `GATEWAY_ON_SIGTERM`), set last.
    pub env: Vec<(String, String)>,
}

impl Default for GatewayOpts {
    /// Short intervals so a verify run takes about two seconds.
    fn default() -> Self {
        GatewayOpts {
            instance_id: None,
            jwt_secret: "verify-test-secret".into(),
            auth: true,
            heartbeat: true,
            ping_interval_ms: 2000,
            ping_timeout_ms: 3000,
            heartbeat_interval_ms: 1000,
            health_status: 200,
            env: Vec::new(),
        }
    }
}

/// One gateway replica.
pub struct Gateway {
    pub port: u16,
    pub url: String,
    _peer: Peer,
    _stderr: tempfile::NamedTempFile,
}

pub fn node() -> PathBuf {
    which("node").unwrap_or_else(|| {
        panic!("node not found on PATH: run `bash scripts/setup.sh` first (installs nodejs and the tests/gateway packages)")
    })
}

pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self._peer.child.id()
    }

    /// SIGTERM, as ECS stops a task: the gateway closes its sessions and exits.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// Whether the process has exited (reaped by the test).
    pub fn exited(&mut self) -> bool {
        matches!(self._peer.child.try_wait(), Ok(Some(_)))
    }

    /// `GET /health/stats` of this replica, directly (not through a proxy).
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http(self.port, "GET", "/health/stats", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn start(opts: &GatewayOpts) -> Gateway {
        let dir = repo().join("tests/gateway");
        require(
            &dir.join("node_modules/@nestjs/core"),
            "the gateway's node modules (tests/gateway/node_modules)",
        );
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(node());
        cmd.arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("JWT_SECRET", &opts.jwt_secret)
            .env("WEBSOCKET_PING_INTERVAL", opts.ping_interval_ms.to_string())
            .env("WEBSOCKET_PING_TIMEOUT", opts.ping_timeout_ms.to_string())
            .env(
                "WEBSOCKET_HEARTBEAT_INTERVAL",
                opts.heartbeat_interval_ms.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap());
        if let Some(id) = &opts.instance_id {
            cmd.env("INSTANCE_ID", id);
        }
        if !opts.auth {
            cmd.env("GATEWAY_AUTH", "off");
        }
        if !opts.heartbeat {
            cmd.env("GATEWAY_HEARTBEAT", "off");
        }
        if opts.health_status != 200 {
            cmd.env("HEALTH_STATUS", opts.health_status.to_string());
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn node tests/gateway/server.mjs");
        let stdout = child.stdout.take().unwrap();
        let peer = Peer {
            child,
            name: "gateway".into(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let port: u16 = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the gateway did not print `listening <port>` (got {line:?}); stderr:\n{}",
                    std::fs::read_to_string(stderr.path()).unwrap_or_default()
                )
            });
        Gateway {
            port,
            url: format!("http://127.0.0.1:{port}"),
            _peer: peer,
            _stderr: stderr,
        }
    }
}

/// HAProxy in front of two gateways.
pub struct Haproxy {
    pub port: u16,
    pub url: String,
    _peer: Peer,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// `template` is `sticky` or `roundrobin` (tests/support/haproxy/<template>.cfg.tmpl).
    pub fn start(template: &str, backends: [&Gateway; 2]) -> Haproxy {
        Self::start_with(template, backends, None, None, 256)
    }

    /// The same proxy with its health check on `check_path` instead of `/health/websocket`,
    /// as a target group whose health check path is not the gateway's `health_path`: a
    /// gateway whose health answers 503 still gets traffic.
    pub fn start_checking(template: &str, backends: [&Gateway; 2], check_path: &str) -> Haproxy {
        Self::start_with(template, backends, None, Some(check_path), 256)
    }

    /// The same proxy terminating TLS with `pem` (certificate chain and key), as the ALB's
    /// HTTPS listener does; its URL is `https://127.0.0.1:PORT`.
    pub fn start_tls(template: &str, backends: [&Gateway; 2], pem: &std::path::Path) -> Haproxy {
        Self::start_with(template, backends, Some(pem), None, 256)
    }

    /// The sticky proxy for `maxconn` connections at once (2 x `maxconn` + 20 file
    /// descriptors: keep it under half the open-file limit).
    #[allow(dead_code)]
    pub fn start_sized(template: &str, backends: [&Gateway; 2], maxconn: u32) -> Haproxy {
        Self::start_with(template, backends, None, None, maxconn)
    }

    fn start_with(
        template: &str,
        backends: [&Gateway; 2],
        tls: Option<&std::path::Path>,
        check_path: Option<&str>,
        maxconn: u32,
    ) -> Haproxy {
        let bin = which("haproxy").unwrap_or_else(|| {
            panic!("haproxy not found on PATH: run `bash scripts/setup.sh` first (apt-get install haproxy)")
        });
        let tmpl_path = repo().join(format!("tests/support/haproxy/{template}.cfg.tmpl"));
        let tmpl = std::fs::read_to_string(&tmpl_path)
            .unwrap_or_else(|e| panic!("{}: {e}", tmpl_path.display()));
        let dir = tempfile::tempdir().unwrap();
        let mut last_err = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let bind = format!("bind 127.0.0.1:{port}");
            let cfg = tmpl
                .replace(
                    "bind 127.0.0.1:{{FRONT_PORT}}",
                    &match tls {
                        Some(pem) => format!("{bind} ssl crt {}", pem.display()),
                        None => bind.clone(),
                    },
                )
                .replace("{{FRONT_PORT}}", &port.to_string())
                .replace("{{BACKEND_1}}", &format!("127.0.0.1:{}", backends[0].port))
                .replace("{{BACKEND_2}}", &format!("127.0.0.1:{}", backends[1].port))
                .replace("{{MAXCONN}}", &maxconn.to_string())
                .replace("{{NAME}}", &format!("verify-{template}-{port}"))
                .replace(
                    "option httpchk GET /health/websocket",
                    &format!(
                        "option httpchk GET {}",
                        check_path.unwrap_or("/health/websocket")
                    ),
                );
            let cfg_path = dir.path().join(format!("{template}-{attempt}.cfg"));
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = dir.path().join(format!("{template}-{attempt}.log"));
            let child = spawn_haproxy(&bin, dir.path(), &cfg_path, &log);
            let mut peer = Peer {
                child,
                name: "haproxy".into(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = peer.child.try_wait() {
                    break;
                }
                // Over TLS the listening socket is the readiness signal (the test client is plain HTTP).
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && (tls.is_some() || http(port, "GET", "/health/websocket", "").0 == 200)
                {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    return Haproxy {
                        port,
                        url: format!("{scheme}://127.0.0.1:{port}"),
                        _peer: peer,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last_err = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("haproxy ({template}) did not become ready: {last_err}");
    }
}

/// A throwaway certificate authority and a server certificate for 127.0.0.1 it signed,
/// made with the openssl CLI. `ca` goes into the client's `SSL_CERT_FILE`; `server_pem`
/// (chain and key) into HAProxy's `crt`.
pub struct TestCa {
    pub ca: PathBuf,
    pub server_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl (Debian package openssl) must be installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bosar test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        let pem = [
            std::fs::read_to_string(p("server.pem")).unwrap(),
            std::fs::read_to_string(p("server.key")).unwrap(),
        ]
        .concat();
        std::fs::write(p("haproxy.pem"), pem).unwrap();
        TestCa {
            ca: p("ca.pem"),
            server_pem: p("haproxy.pem"),
            _dir: dir,
        }
    }
}

/// HAProxy shaped like the ALB with target slots driven over its runtime API
/// (`tests/support/haproxy/runner.cfg.tmpl`, as the sandbox task runner uses it): each gateway
/// in a slot `task1`, `task2`, …, so a test can drain one as the ALB drains a deregistering
/// target. Killed on drop.
pub struct SlotProxy {
    pub port: u16,
    pub url: String,
    socket: PathBuf,
    _peer: Peer,
    _dir: tempfile::TempDir,
}

/// The AWSALB value of tests/support/haproxy/runner.cfg.tmpl for a slot (`task1`, …).
pub fn slot_cookie(slot: &str) -> String {
    use base64::Engine as _;
    format!(
        "hK3pV9qZ+tW2mN8xR4yB7cL1dF6gJ0sA/eU5iO3nQ9wT2vX8zY4bC7kM1pD6rH0a{}",
        base64::engine::general_purpose::STANDARD.encode(slot)
    )
}

impl SlotProxy {
    pub fn start(gateways: &[&Gateway]) -> SlotProxy {
        let bin = which("haproxy").unwrap_or_else(|| {
            panic!("haproxy not found on PATH: run `bash scripts/setup.sh` first (apt-get install haproxy)")
        });
        let tmpl = std::fs::read_to_string(repo().join("tests/support/haproxy/runner.cfg.tmpl"))
            .expect("runner.cfg.tmpl");
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("haproxy.sock");
        let mut last_err = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let cfg = tmpl
                .replace("{{FRONT_PORT}}", &port.to_string())
                .replace("{{STATS_SOCKET}}", &socket.display().to_string())
                .replace("{{MAXCONN}}", "2000")
                .replace("{{NAME}}", &format!("slots-{port}"));
            let cfg_path = dir.path().join(format!("slots-{attempt}.cfg"));
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = dir.path().join(format!("slots-{attempt}.log"));
            let child = spawn_haproxy(&bin, dir.path(), &cfg_path, &log);
            let mut proxy = SlotProxy {
                port,
                url: format!("http://127.0.0.1:{port}"),
                socket: socket.clone(),
                _peer: Peer {
                    child,
                    name: "haproxy".into(),
                },
                _dir: tempfile::tempdir().unwrap(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = proxy._peer.child.try_wait() {
                    break;
                }
                if proxy.try_command("show backend").contains("gateways") {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !up {
                last_err = std::fs::read_to_string(&log).unwrap_or_default();
                continue;
            }
            for (i, g) in gateways.iter().enumerate() {
                let s = format!("gateways/task{}", i + 1);
                proxy.command(&format!(
                    "set server {s} addr 127.0.0.1 port {}; set weight {s} 1; set server {s} state ready",
                    g.port
                ));
            }
            // Ready when each slot answers through the proxy with its own cookie.
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let all = (1..=gateways.len()).all(|i| {
                    let cookie = slot_cookie(&format!("task{i}"));
                    let (status, body) = http_cookie(port, "/health/websocket", &cookie);
                    status == 200 && body.contains("\"connections\"")
                });
                if all && proxy.status().len() >= gateways.len() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "HAProxy slots not up: {:?}",
                    proxy.status()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            proxy._dir = dir;
            return proxy;
        }
        panic!("haproxy (slots) did not become ready: {last_err}");
    }

    fn try_command(&self, cmd: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(format!("{cmd}\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// One runtime API command (several may be joined with `; `); its answer.
    pub fn command(&self, cmd: &str) -> String {
        let out = self.try_command(cmd);
        assert!(
            !out.to_lowercase().contains("unknown") && !out.contains("No such"),
            "haproxy runtime API: {cmd}: {out}"
        );
        out
    }

    /// Drains slot `taskN` as the ALB drains a deregistering target: no new requests (and a
    /// cookie naming it is re-routed), open connections stay.
    pub fn drain(&self, n: usize) {
        let s = format!("gateways/task{n}");
        self.command(&format!("set weight {s} 0; set server {s} state drain"));
    }

    /// HAProxy's status per used slot (`UP`, `DOWN`, `DRAIN`, …).
    pub fn status(&self) -> Vec<(String, String)> {
        let out = self.try_command("show stat -1 4 -1");
        let mut lines = out.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let idx = |n: &str| cols.iter().position(|c| *c == n);
        let (Some(sv), Some(st)) = (idx("svname"), idx("status")) else {
            return Vec::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|r| r.len() > st && !r[st].starts_with("MAINT"))
            .map(|r| (r[sv].to_string(), r[st].to_string()))
            .collect()
    }
}

/// GET through a proxy with an AWSALB cookie; status and body.
pub fn http_cookie(port: u16, path: &str, awsalb: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: AWSALB={awsalb}\r\nConnection: close\r\n\r\n"
    );
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// HAProxy in the foreground on `cfg`, in `dir`, its messages in `log`.
fn spawn_haproxy(bin: &Path, dir: &Path, cfg: &Path, log: &Path) -> Child {
    Command::new(bin)
        .arg("-f")
        .arg(cfg)
        .arg("-db")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn haproxy")
}
