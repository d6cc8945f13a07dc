#!/usr/bin/env python3
"""Soak: `bosar-deploy monitor` and socket.io-client holding the same sessions side by side.

Started by bench/soak/run.sh once the gateways and the proxy are up. Starts both clients at
once, samples each one's resident memory (VmRSS) and CPU time (utime + stime of
/proc/PID/stat) when they are up and then every minute, stops them after --minutes, and writes
one JSON document: the samples, RSS growth after the first minute (the bar: flat within a few
MB), CPU seconds per hour, what the monitor's records and the reference's last line said
(sessions up, drops, lost), and the gateways' own connection counts at the end.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

# The gateway config every bench writes: bench/probe/bench.py's.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "probe"))
from bench import write_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_CHILDREN: list[subprocess.Popen] = []


def _stop_children(*_):
    for c in _CHILDREN:
        if c.poll() is None:
            c.terminate()
    for c in _CHILDREN:
        try:
            c.wait(timeout=10)
        except subprocess.TimeoutExpired:
            c.kill()


def _on_signal(signum, _frame):
    _stop_children()
    sys.exit(128 + signum)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 2)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    try:
        # The fields after the command name (which may hold spaces) in /proc/PID/stat.
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / TICK


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def summary(samples: list[dict], key: str) -> dict:
    rss = [s[key]["rss_mb"] for s in samples if s[key]["rss_mb"] is not None]
    cpu = [(s["minute"], s[key]["cpu_s"]) for s in samples if s[key]["cpu_s"] is not None]
    # Per hour from the first sample (all sessions up) to the last: the steady state.
    span_min = cpu[-1][0] - cpu[0][0] if len(cpu) > 1 else 0
    # Growth after the first minute: start-up (connects, allocator warm-up) is not a leak.
    settled = rss[1:] if len(rss) > 2 else rss
    return {
        "rss_mb_first": rss[0] if rss else None,
        "rss_mb_min": min(rss) if rss else None,
        "rss_mb_max": max(rss) if rss else None,
        "rss_mb_last": rss[-1] if rss else None,
        "rss_growth_after_first_minute_mb": round(settled[-1] - settled[0], 2) if settled else None,
        "rss_spread_after_first_minute_mb": round(max(settled) - min(settled), 2) if settled else None,
        "cpu_s": round(cpu[-1][1], 2) if cpu else None,
        "cpu_s_per_hour": round((cpu[-1][1] - cpu[0][1]) * 60 / span_min, 1) if span_min > 0 else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description="monitor vs socket.io-client soak (see module doc)")
    p.add_argument("--url", required=True)
    p.add_argument("--gateways", required=True, help="P1,P2: the gateways' own ports")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--interval-s", type=int, default=60)
    p.add_argument("--sample-s", type=float, default=60, help="seconds between samples")
    p.add_argument("--bin", default="target/release/bosar-deploy")
    p.add_argument("--node", default="node")
    p.add_argument("--tmp", required=True)
    p.add_argument("--out", default="bench/results/soak.json")
    a = p.parse_args()
    if not 0 < a.minutes <= 24 * 60 or not 1 <= a.sessions <= 1000:
        p.error("--minutes in (0, 1440], --sessions in [1, 1000]")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    tmp = Path(a.tmp)
    cfg = tmp / "soak.toml"
    write_config(cfg, a.url)
    duration_s = int(a.minutes * 60)
    env = dict(os.environ)
    mon_out = open(tmp / "monitor.jsonl", "w")
    mon = subprocess.Popen(
        [a.bin, "--config", str(cfg), "--output", "json", "monitor", "--sessions", str(a.sessions),
         "--interval", f"{a.interval_s}s", "--duration", f"{duration_s}s"],
        env=env, stdin=subprocess.DEVNULL, stdout=mon_out, stderr=open(tmp / "monitor.err", "w"))
    _CHILDREN.append(mon)
    ref_env = dict(env, URL=a.url, N=str(a.sessions), JWT_SECRET=env["BENCH_JWT_SECRET"])
    ref = subprocess.Popen([a.node, str(REPO / "tests/gateway/reconnect-clients.mjs")], env=ref_env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(tmp / "ref.err", "w"),
                           text=True)
    _CHILDREN.append(ref)
    ready = ref.stdout.readline().strip()
    if not ready.startswith("ready"):
        print(f"bench.py: the reference did not get ready: {ready!r}", file=sys.stderr)
        _stop_children()
        return 1
    started = time.monotonic()
    samples = []
    while True:
        t = time.monotonic() - started
        samples.append({
            "minute": round(t / 60, 2),
            "monitor": {"rss_mb": rss_mb(mon.pid), "cpu_s": cpu_s(mon.pid)},
            "reference": {"rss_mb": rss_mb(ref.pid), "cpu_s": cpu_s(ref.pid)},
        })
        s = samples[-1]
        print(f"soak {s['minute']:6.2f} min: monitor {s['monitor']['rss_mb']} MB {s['monitor']['cpu_s']} s, "
              f"reference {s['reference']['rss_mb']} MB {s['reference']['cpu_s']} s", file=sys.stderr, flush=True)
        if t >= duration_s - 5 or mon.poll() is not None:
            break
        time.sleep(min(a.sample_s, max(1.0, duration_s - 5 - t)))
    elapsed = time.monotonic() - started
    gw_ports = [int(x) for x in a.gateways.split(",")]
    # The gateways' own count (None: a gateway no longer answers, so the run was disturbed).
    health = [get_json(f"http://127.0.0.1:{p}/health/websocket") for p in gw_ports]
    held_by_gateways = sum(h["connections"] for h in health) if all(health) else None
    ref.stdin.write("\n")
    ref.stdin.flush()
    try:
        ref_line = json.loads(ref.stdout.readline() or "null")
    except json.JSONDecodeError:
        ref_line = None
    try:
        mon.wait(timeout=90)
    except subprocess.TimeoutExpired:
        mon.terminate()
    _stop_children()
    mon_out.close()
    records = [json.loads(l) for l in (tmp / "monitor.jsonl").read_text().splitlines() if l.startswith("{")]
    full = [r for r in records if r["interval_ms"] >= a.interval_s * 1000 * 0.9]
    binary = Path(a.bin)
    doc = {
        "benchmark": "soak",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "setup": {
            "gateways": "2 x tests/gateway/server.mjs, heartbeat 2 s, ping 25 s/20 s",
            "proxy": "HAProxy sticky.cfg.tmpl (leastconn, AWSALB cookie)",
            "monitor": f"bosar-deploy monitor --sessions {a.sessions} --interval {a.interval_s}s "
                       f"--duration {duration_s}s --output json",
            "monitor_build": os.environ.get("BOSAR_BUILD") or ("debug" if "debug" in binary.parts else "release"),
            "reference": f"node tests/gateway/reconnect-clients.mjs N={a.sessions} (socket.io-client 4.8)",
            "minutes": a.minutes,
            "sample_s": a.sample_s,
        },
        "elapsed_s": round(elapsed, 1),
        "monitor": summary(samples, "monitor") | {
            "records": len(records),
            "sessions_up_min": min((r["sessions_up"] for r in full), default=None),
            "drops": sum(r["drops"] for r in records),
            "lost": sum(r.get("lost", 0) for r in records),
            "heartbeat_gap_max_ms": max((r["heartbeat_gap_max_ms"] or 0 for r in records), default=None),
        },
        "reference": summary(samples, "reference") | {
            "dropped": (ref_line or {}).get("dropped"),
            "lost": (ref_line or {}).get("lost"),
        },
        "gateways_connections_at_end": held_by_gateways,
        "samples": samples,
        "records": [{k: r.get(k) for k in ("time", "sessions_up", "drops", "lost", "reconnects",
                                           "failed_attempts", "heartbeat_gap_max_ms")} for r in records],
    }
    out = REPO / a.out
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("monitor", "reference", "elapsed_s")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
