//! The sandbox task runner (`sandbox/runner.py`) as a test peer: moto in its own process,
//! seeded from a deploy.toml, whose ECS service really runs its tasks as gateway processes
//! behind an ALB-shaped HAProxy and replaces them when a deploy changes the task definition.
//! Free loopback ports; stopped on drop (SIGTERM, so it stops its gateways and HAProxy, then
//! SIGKILL; its children die with it either way). A missing peer fails loudly with the setup
//! command.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::peers::{node, which};
use super::{repo, require};

/// The env var the runner reads the gateways' JWT secret from.
const SECRET_ENV: &str = "BOSAR_TEST_RUNNER_JWT_SECRET";

type Events = Arc<(Mutex<Vec<Value>>, Condvar)>;

pub struct TaskRunner {
    /// moto, for `support::bosar(endpoint, ..)`.
    pub endpoint: String,
    /// HAProxy's front, the gateway URL.
    pub url: String,
    /// HAProxy's front port.
    pub front_port: u16,
    /// The runner's ready line: ports, pids, the first deployment and its tasks.
    pub ready: Value,
    child: Child,
    events: Events,
    stderr: tempfile::NamedTempFile,
}

impl TaskRunner {
    /// Starts the runner on `config` (seed state "before") and waits for its ready line.
    pub fn start(config: &Path, jwt_secret: &str) -> TaskRunner {
        TaskRunner::start_with(config, jwt_secret, &[], &[])
    }

    /// [`TaskRunner::start`] with more runner arguments (e.g. `--strategy canary`) and
    /// environment (e.g. `BOSAR_SANDBOX_SECONDS_PER_MINUTE`).
    pub fn start_with(
        config: &Path,
        jwt_secret: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> TaskRunner {
        let py = require(&repo().join(".venv/bin/python"), "the venv's python (moto)");
        require(
            &repo().join(".venv/bin/moto_server"),
            "moto in .venv (pip install moto[server])",
        );
        node();
        require(
            &repo().join("tests/gateway/node_modules/@nestjs/core"),
            "the gateway's node modules (tests/gateway/node_modules)",
        );
        which("haproxy").unwrap_or_else(|| {
            panic!("haproxy not found on PATH: run `bash scripts/setup.sh` first (apt-get install haproxy)")
        });
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(py)
            .arg(repo().join("sandbox/runner.py"))
            .arg("--config")
            .arg(config)
            .args(["--jwt-secret-env", SECRET_ENV])
            .args(args)
            .env(SECRET_ENV, jwt_secret)
            .envs(envs.iter().copied())
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("spawn sandbox/runner.py");
        let stdout = child.stdout.take().unwrap();
        let events: Events = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.0.lock().unwrap().push(v);
                    sink.1.notify_all();
                }
            }
        });
        let mut runner = TaskRunner {
            endpoint: String::new(),
            url: String::new(),
            front_port: 0,
            ready: Value::Null,
            child,
            events,
            stderr,
        };
        // Starting moto, seeding and two Node gateways takes 3-10 s on a busy 2-core machine.
        let deadline = Instant::now() + Duration::from_secs(90);
        let ready = loop {
            if let Some(v) = runner.wait_for(|e| e["event"] == "ready", Duration::from_millis(200))
            {
                break v;
            }
            if let Ok(Some(status)) = runner.child.try_wait() {
                panic!(
                    "sandbox/runner.py exited ({status}) before it was ready:\n{}",
                    runner.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sandbox/runner.py not ready within 90 s:\n{}",
                runner.log()
            );
        };
        runner.endpoint = ready["moto"].as_str().unwrap().to_string();
        runner.url = ready["url"].as_str().unwrap().to_string();
        runner.front_port = runner.url.rsplit(':').next().unwrap().parse().unwrap();
        runner.ready = ready;
        runner
    }

    /// Every event line so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.0.lock().unwrap().clone()
    }

    /// The first event matching `pred`, waiting up to `timeout` for it.
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.events;
        let mut events = lock.lock().unwrap();
        loop {
            if let Some(e) = events.iter().find(|e| pred(e)) {
                return Some(e.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            events = cv.wait_timeout(events, deadline - now).unwrap().0;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The runner's stderr so far (one line per step).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for TaskRunner {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
