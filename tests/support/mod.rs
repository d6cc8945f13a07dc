//! Test peers, real and started by the tests themselves on free loopback ports:
//! moto (the AWS emulator), the Node Socket.IO gateway, HAProxy. A missing peer fails the
//! test loudly with the install command: CI never silently skips.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub mod chromium;
pub mod faults;
pub mod gfm;
pub mod hostile;
pub mod mocks;
pub mod peers;
pub mod runner;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(path: &Path, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {}: run `bash scripts/setup.sh` first (the README's test command does)",
        path.display()
    );
    path.to_path_buf()
}

/// The binary under test: this build's, or `$BOSAR_TEST_BIN` (to run the same tests against
/// another build, e.g. to see a test reproduce a bug on the build before the fix).
/// An HS256 JWT for `sub`, signed with `secret`, valid for ten minutes (what a gateway's
/// `JWT_SECRET` accepts).
pub fn signed_token(secret: &str, sub: &str) -> String {
    let claims = serde_json::json!({
        "sub": sub,
        "exp": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600,
    });
    bosar_deploy::gateway::token::sign_hs256(secret.as_bytes(), &claims.to_string())
        .expose()
        .to_string()
}

pub fn bin_path() -> PathBuf {
    std::env::var_os("BOSAR_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bosar-deploy")))
}

/// Minimal HTTP/1.1 request over loopback (tests only talk to their own peers).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A child process killed on drop.
pub struct Peer {
    pub child: Child,
    pub name: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server on a free loopback port, with its own recording file.
pub struct Moto {
    pub port: u16,
    pub endpoint: String,
    _peer: Peer,
    _dir: tempfile::TempDir,
}

/// One recorded AWS call.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub user_agent: String,
    /// The request body as sent (JSON, or the form of a query-protocol call).
    pub body: String,
}

impl Call {
    pub fn mutating(&self) -> bool {
        !["Describe", "List", "Get"]
            .iter()
            .any(|p| self.operation.starts_with(p))
    }
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with(&[])
    }

    /// `env` e.g. `[("MOTO_ECS_SERVICE_RUNNING", "2")]` makes services complete at once.
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let bin = require(&repo().join(".venv/bin/moto_server"), "moto_server");
        let dir = tempfile::tempdir().unwrap();
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(dir.path())
                .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording"))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("spawn moto_server");
            let peer = Peer {
                child,
                name: "moto".into(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && http(port, "GET", "/moto-api/", "").0 == 200
                {
                    return Moto {
                        port,
                        endpoint: format!("http://127.0.0.1:{port}"),
                        _peer: peer,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not become ready");
    }

    /// Seeds the resources named by `config` with sandbox/seed.py. Returns its JSON summary.
    pub fn seed(&self, config: &Path, extra: &[&str]) -> serde_json::Value {
        let py = require(&repo().join(".venv/bin/python"), "the venv's python");
        let out = Command::new(py)
            .arg(repo().join("sandbox/seed.py"))
            .args(["--endpoint", &self.endpoint, "--config"])
            .arg(config)
            .args(extra)
            .envs(aws_env(&self.endpoint))
            .output()
            .expect("run seed.py");
        assert!(
            out.status.success(),
            "seed.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or("{}");
        serde_json::from_str(last).unwrap_or(serde_json::Value::Null)
    }

    /// Runs a boto3 snippet against this moto (for fixtures and read-backs); returns stdout.
    pub fn python(&self, code: &str) -> String {
        let py = require(&repo().join(".venv/bin/python"), "the venv's python");
        let out = Command::new(py)
            .args(["-c", code])
            .envs(aws_env(&self.endpoint))
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn start_recording(&self) {
        assert_eq!(
            http(self.port, "POST", "/moto-api/recorder/reset-recording", "").0,
            200
        );
        assert_eq!(
            http(self.port, "POST", "/moto-api/recorder/start-recording", "").0,
            200
        );
    }

    /// Stops recording and returns the calls made by the process with `app_id` in its user agent.
    pub fn recorded_calls(&self, app_id: &str) -> Vec<Call> {
        http(self.port, "POST", "/moto-api/recorder/stop-recording", "");
        let (_, body) = http(
            self.port,
            "GET",
            "/moto-api/recorder/download-recording",
            "",
        );
        body.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .filter_map(|v| {
                let headers = &v["headers"];
                let header = |name: &str| {
                    headers
                        .as_object()
                        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                        .and_then(|(_, v)| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                let ua = header("x-amz-user-agent") + " " + &header("user-agent");
                let target = header("x-amz-target");
                let raw = v["body"].as_str().unwrap_or("");
                let body = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .unwrap_or_else(|_| raw.to_string());
                let operation = if let Some((_, op)) = target.split_once('.') {
                    op.to_string()
                } else {
                    let qs = v["qs"].to_string();
                    body.split('&')
                        .chain(qs.split(['&', '"']))
                        .find_map(|kv| kv.strip_prefix("Action="))
                        .map(str::to_string)?
                };
                Some(Call {
                    operation,
                    user_agent: ua,
                    body,
                })
            })
            .filter(|c| c.user_agent.contains(app_id))
            .collect()
    }
}

/// Region, dummy credentials and no instance metadata: the environment of every AWS test.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The binary under test with a clean AWS environment pointing at `endpoint`, tagged with
/// `app_id` so a test can pick its own calls out of moto's recording.
pub fn bosar(endpoint: &str, app_id: &str) -> Command {
    let mut cmd = Command::new(bin_path());
    for k in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "BOSAR_DEPLOY_CONFIG",
        "GITHUB_ACTIONS",
        "NO_COLOR",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(aws_env(endpoint))
        .env("AWS_SDK_UA_APP_ID", app_id)
        .env("CI", "true")
        .stdin(Stdio::null());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run bosar-deploy");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).to_string(),
        stderr: String::from_utf8_lossy(&stderr).to_string(),
    }
}

/// Writes `text` to a fresh deploy.toml in a temp dir.
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Waits until something listens on loopback `port` (at most `secs`), failing with `what`.
#[allow(dead_code)]
pub fn wait_listening(port: u16, what: &str, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A deploy.toml with only `[target_group]` and a `[gateway]` at `url` with the test gateways'
/// intervals (ping 2 s / 3 s, heartbeat 1 s), the token in `token_env`, 3 stickiness rounds,
/// and `extra` lines (`recovery = true`, `origins = […]`).
#[allow(dead_code)]
pub fn gateway_config(url: &str, token_env: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    write_config(&format!(
        r#"
[target_group]
name = "bosar-api-tg"

[gateway]
url = "{url}"
token_env = "{token_env}"
ping_interval = "2s"
ping_timeout = "3s"
heartbeat_interval = "1s"
stickiness_rounds = 3
{extra}
"#
    ))
}

/// The sandbox config (the same names the seed creates).
pub fn sandbox_config() -> String {
    std::fs::read_to_string(repo().join("sandbox/deploy.toml")).expect("sandbox/deploy.toml")
}

/// The sandbox config with the intervals of the test gateways (`peers::GatewayOpts`'s
/// defaults: ping 2 s / 3 s, heartbeat 1 s), so verify takes seconds.
pub fn fast_sandbox_config() -> String {
    sandbox_config()
        .replacen(
            "WEBSOCKET_PING_TIMEOUT = \"20000\"",
            "WEBSOCKET_PING_TIMEOUT = \"3000\"",
            1,
        )
        .replacen(
            "WEBSOCKET_PING_INTERVAL = \"10000\"",
            "WEBSOCKET_PING_INTERVAL = \"2000\"",
            1,
        )
        .replacen(
            "WEBSOCKET_HEARTBEAT_INTERVAL = \"5000\"",
            "WEBSOCKET_HEARTBEAT_INTERVAL = \"1000\"",
            1,
        )
        .replacen("ping_interval = \"10s\"", "ping_interval = \"2s\"", 1)
        .replacen("ping_timeout = \"20s\"", "ping_timeout = \"3s\"", 1)
        .replacen(
            "heartbeat_interval = \"5s\"",
            "heartbeat_interval = \"1s\"",
            1,
        )
}

/// A finished child: its output, exit code, how long it ran and its peak resident memory.
pub struct Measured {
    pub run: Run,
    /// Peak resident set size of the child alone (VmHWM), KiB.
    pub max_rss_kib: u64,
    pub elapsed: Duration,
}

/// The high-water mark of a live process's resident memory, KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` to the end (killed after `limit`), reading its output, and measures its peak
/// memory from its own `/proc` entry: per child, so tests running in parallel do not mix.
pub fn measure(cmd: &mut Command, limit: Duration) -> Measured {
    signal_when(cmd, limit, None)
}

/// [`measure`], and when a line of stderr contains `marker`, send the child `signal`.
pub fn signal_when(cmd: &mut Command, limit: Duration, signal_on: Option<(&str, i32)>) -> Measured {
    use std::io::BufRead;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bosar-deploy");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let marker = signal_on.map(|(m, s)| (m.to_string(), s));
    let err_reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut r = std::io::BufReader::new(stderr);
        let mut signalled = false;
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some((m, sig)) = &marker {
                if !signalled && String::from_utf8_lossy(&line).contains(m.as_str()) {
                    signalled = true;
                    // SAFETY: sends a signal to our own child.
                    unsafe { libc::kill(pid, *sig) };
                }
            }
            all.extend_from_slice(&line);
        }
        all
    });
    // Peak memory: VmHWM of /proc/PID/status, read every 10 ms while the child lives. (wait4's
    // ru_maxrss would be no good: Linux counts the forked copy of this test process in it.)
    let (done, wait_done) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut peak = 0u64;
        loop {
            if let Some(kib) = vm_hwm_kib(pid) {
                peak = peak.max(kib);
            }
            match wait_done.recv_timeout(Duration::from_millis(10)) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return peak,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= deadline {
                // SAFETY: kills our own child, not reaped yet (`done` is sent after reaping).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    });
    let mut status = 0;
    // SAFETY: waits for our own child.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "waitpid failed");
    let _ = done.send(());
    let peak = watchdog.join().unwrap_or(0);
    let elapsed = started.elapsed();
    drop(child); // reaped above; dropping a Child neither waits nor kills
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    Measured {
        run: Run {
            code,
            stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).to_string(),
            stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).to_string(),
        },
        max_rss_kib: peak,
        elapsed,
    }
}

/// The lines of `output` the GitHub Actions runner would act on as workflow commands that are
/// not this tool's own annotations (`::error::`, `::error title=…::`, `::warning::` at the very
/// start of a line, whose data does not start with `marker`, the word tests inject).
pub fn foreign_commands(output: &str, marker: &str) -> Vec<String> {
    bosar_deploy::outside::runner_commands(output)
        .into_iter()
        .filter(|line| {
            let ours = ["::error::", "::error title=", "::warning::"]
                .iter()
                .any(|p| line.starts_with(p));
            let data = line[2..].split_once("::").map_or("", |(_, d)| d);
            !ours || data.starts_with(marker) || line.contains("##[")
        })
        .map(str::to_string)
        .collect()
}

/// `bosar-deploy --output json verify` with `cfg` and a token minted with `secret` in
/// `token_env` (CI mode, nothing else from this environment): the run and its `verify` payload.
#[allow(dead_code)]
pub fn verify_json(
    cfg: &Path,
    token_env: &str,
    secret: &str,
    who: &str,
) -> (Run, serde_json::Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CI", "true")
        .env(token_env, signed_token(secret, who))
        .stdin(Stdio::null())
        .arg("--config")
        .arg(cfg)
        .args(["--output", "json", "verify"]);
    let out = run(&mut cmd);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.all()));
    let report = doc["verify"].clone();
    (out, report)
}

/// Status and message of the check `name` in a verify payload.
#[allow(dead_code)]
pub fn check_of(report: &serde_json::Value, name: &str) -> (String, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"));
    (
        c["status"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap().to_string(),
    )
}
