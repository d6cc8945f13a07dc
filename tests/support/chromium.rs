//! Headless Chromium (Debian's `chromium-headless-shell`) for the `--html` page: the DOM it
//! built, the console messages it logged and every URL it requested (its NetLog), and
//! screenshots. A missing Chromium fails the test loudly with the install command, never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::peers::which;

pub fn chromium() -> PathBuf {
    which("chromium-headless-shell").unwrap_or_else(|| {
        panic!("chromium-headless-shell not found: run `bash scripts/setup.sh` (Debian package chromium-headless-shell)")
    })
}

/// What Chromium did with a page.
pub struct Rendered {
    pub dom: String,
    /// Console messages (`INFO:CONSOLE` lines: errors, CSP violations, logs).
    pub console: Vec<String>,
    /// The URLs of every request in the NetLog.
    pub urls: Vec<String>,
}

fn chromium_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .stdin(Stdio::null());
    cmd
}

pub fn render(page: &Path, dir: &Path) -> Rendered {
    let net = dir.join("netlog.json");
    let out = chromium_cmd(dir)
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--log-net-log={}", net.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium-headless-shell");
    assert!(out.status.success(), "chromium failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&net).expect("the NetLog")).unwrap();
    let urls = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect();
    Rendered {
        dom: String::from_utf8(out.stdout).unwrap(),
        console: stderr
            .lines()
            .filter(|l| l.contains("CONSOLE"))
            .map(str::to_string)
            .collect(),
        urls,
    }
}

pub fn screenshot(page: &Path, dir: &Path, name: &str) -> Vec<u8> {
    let png = dir.join(name);
    let out = chromium_cmd(dir)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,800")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium-headless-shell");
    assert!(out.status.success(), "chromium failed: {out:?}");
    std::fs::read(&png).expect("the screenshot")
}
