//! The gateway test peers: real NestJS Socket.IO gateway replicas (`tests/gateway/server.mjs`)
//! and HAProxy in front of them, shaped like the ALB (`tests/support/haproxy/*.cfg.tmpl`).
//! Each starts on free loopback ports and is killed on drop. A missing peer fails the test
//! loudly with the setup command.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
        Self::start_with(template, backends, None)
    }

    /// The same proxy terminating TLS with `pem` (certificate chain and key), as the ALB's
    /// HTTPS listener does; its URL is `https://127.0.0.1:PORT`.
    pub fn start_tls(template: &str, backends: [&Gateway; 2], pem: &std::path::Path) -> Haproxy {
        Self::start_with(template, backends, Some(pem))
    }

    fn start_with(
        template: &str,
        backends: [&Gateway; 2],
        tls: Option<&std::path::Path>,
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
                .replace("{{MAXCONN}}", "256")
                .replace("{{NAME}}", &format!("verify-{template}-{port}"));
            let cfg_path = dir.path().join(format!("{template}-{attempt}.cfg"));
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = dir.path().join(format!("{template}-{attempt}.log"));
            let child = Command::new(&bin)
                .arg("-f")
                .arg(&cfg_path)
                .arg("-db")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn haproxy");
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
