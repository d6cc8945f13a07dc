#!/usr/bin/env python3
"""The load probe (`bosar-deploy verify --connections N`) against the reference Node
socket.io-client load client, on the same gateways behind the same sticky HAProxy.

Normally started by bench/probe/run.sh, which starts the gateways and the proxy:

    BENCH_JWT_SECRET=... python3 bench/probe/bench.py --url http://127.0.0.1:PORT \
        --gateways P1,P2 [--sizes 1000,5000] [--runs 3] [--hold-ms 5000] [--concurrency N] \
        [--single-runs 5] [--bin target/release/bosar-deploy] [--out bench/results/probe.json]

Load runs, for each N and run (the order of the two tools alternates between runs):
  probe  $BIN verify --connections N --concurrency C --hold HOLD --output json
  node   node tests/gateway/bench-client.mjs --n N --concurrency C --hold-ms HOLD
C defaults to N: bench-client's CONCURRENCY counts sessions alive at once (a worker holds
its session for HOLD_MS before the next), so any C < N would cap its handshake rate at
C / HOLD; with C = N both tools start every session at once.

Measured per run: handshakes/s from each tool's own output (both count connects / time of
the last connect), the client's peak memory (ru_maxrss of the child, from wait4) and CPU
seconds (user + sys, from wait4), wall time; the gateways' heartbeat ack counters before and
after. Before each run both gateways must report 0 connections, then a short cool-down.

Single session, several runs: `verify` (all nine checks) against bench-client with N=1:
first heartbeat after joining the namespace (verify's heartbeat evidence; bench-client's
first_heartbeat_ms_p50), and the connect time (probe with N=1 vs bench-client N=1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_CURRENT: subprocess.Popen | None = None


def _on_signal(signum, _frame):
    if _CURRENT is not None and _CURRENT.poll() is None:
        try:
            os.killpg(_CURRENT.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


TIME = "/usr/bin/time"


def measured(cmd: list[str], env: dict, timeout_s: float, scratch: Path) -> dict:
    """Runs cmd under /usr/bin/time (its own process group); returns rc, stdout, stderr, wall,
    peak RSS and CPU. Killed after timeout_s.

    Peak RSS comes from /usr/bin/time, not from our own wait4: Linux carries the RSS high-water
    mark of the forking process into the child's ru_maxrss across exec, so a child forked from
    this Python (about 20 MB) could never report less. time forks from a 1 MB process. CPU is
    ru_utime + ru_stime from wait4 on time, which includes the child it waited for."""
    global _CURRENT
    rss_file = scratch / "maxrss.txt"
    rss_file.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([TIME, "-f", "%M", "-o", str(rss_file), *cmd], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _CURRENT = proc
    out: dict[str, bytes] = {}

    def pump(name, stream):
        out[name] = stream.read()

    threads = [threading.Thread(target=pump, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    timer = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _CURRENT = None
    return {
        "rc": proc.returncode,
        "stdout": out.get("out", b"").decode(errors="replace"),
        "stderr": out.get("err", b"").decode(errors="replace"),
        "wall_s": round(wall, 3),
        "max_rss_mb": round(_read_kb(rss_file) / 1024, 1),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
    }


def _read_kb(path: Path) -> float:
    try:
        return float(path.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return float("nan")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def gateway_stats(ports: list[int]) -> dict:
    total: dict[str, int] = {}
    for p in ports:
        s = get_json(f"http://127.0.0.1:{p}/health/stats")
        for k, v in s.items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
    return total


def wait_idle(ports: list[int], cooldown_s: float) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if gateway_stats(ports).get("connections", 0) == 0:
            break
        time.sleep(0.2)
    else:
        print("warning: gateways still report connections after 60 s", file=sys.stderr)
    time.sleep(cooldown_s)


def load() -> dict:
    l1, l5, l15 = os.getloadavg()
    rustc = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("rustc", "cc1", "cc1plus", "ld", "cargo"):
                        rustc += 1
            except OSError:
                pass
    return {"loadavg_1m": round(l1, 2), "compilers_running": rustc}


def last_json_line(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def med(values):
    v = [x for x in values if x is not None]
    return round(statistics.median(v), 3) if v else None


def write_config(path: Path, url: str) -> None:
    path.write_text(f"""
[target_group]
name = "bosar-api-tg"
stickiness = "lb_cookie"
cookie_duration = "1d"
algorithm = "least_outstanding_requests"

[gateway]
url = "{url}"
namespace = "/chat"
health_path = "/health/websocket"
jwt_secret_env = "BENCH_JWT_SECRET"
ping_interval = "25s"
ping_timeout = "20s"
heartbeat_event = "heartbeat"
heartbeat_interval = "2s"
""")


def main() -> int:
    p = argparse.ArgumentParser(description="load probe vs socket.io-client benchmark (see module doc)")
    p.add_argument("--url", required=True)
    p.add_argument("--gateways", required=True, help="P1,P2: the gateways' own ports (for their counters)")
    p.add_argument("--sizes", default="1000,5000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--hold-ms", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=None, help="default: N (see module doc)")
    p.add_argument("--single-runs", type=int, default=5)
    p.add_argument("--cooldown-s", type=float, default=3.0)
    p.add_argument("--bin", default="target/release/bosar-deploy")
    p.add_argument("--node", default="node")
    p.add_argument("--tmp", default="/tmp")
    p.add_argument("--out", default="bench/results/probe.json")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    secret = os.environ.get("BENCH_JWT_SECRET")
    if not secret:
        sys.exit("bench.py: BENCH_JWT_SECRET must be set (the gateways' JWT secret)")
    ports = [int(x) for x in args.gateways.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    scratch = Path(args.tmp)
    config = scratch / "probe-bench.toml"
    if not os.access(TIME, os.X_OK):
        sys.exit(f"bench.py: {TIME} not found (Debian: apt-get install time)")
    write_config(config, args.url)
    bin_path = str(Path(args.bin) if os.path.isabs(args.bin) else REPO / args.bin)

    env = {k: v for k, v in os.environ.items() if k not in ("BOSAR_DEPLOY_CONFIG", "GITHUB_ACTIONS")}
    env.update({"CI": "true", "NO_COLOR": "1", "JWT_SECRET": secret, "BENCH_JWT_SECRET": secret})
    hold_s = args.hold_ms / 1000

    def probe_cmd(n, c):
        return [bin_path, "--config", str(config), "--output", "json", "verify", "--connections", str(n),
                "--concurrency", str(c), "--hold", f"{args.hold_ms}ms"]

    def node_cmd(n, c):
        return [args.node, "tests/gateway/bench-client.mjs", "--url", args.url, "--n", str(n),
                "--concurrency", str(c), "--hold-ms", str(args.hold_ms)]

    problems: list[str] = []
    load_runs: dict[str, dict] = {}
    for n in sizes:
        c = args.concurrency or n
        runs = {"probe": [], "node": []}
        for r in range(args.runs):
            order = ["probe", "node"] if r % 2 == 0 else ["node", "probe"]
            for tool in order:
                wait_idle(ports, args.cooldown_s)
                before = gateway_stats(ports)
                cond = load()
                cmd = probe_cmd(n, c) if tool == "probe" else node_cmd(n, c)
                m = measured(cmd, env, 120 + n / 50 + hold_s, scratch)
                after = gateway_stats(ports)
                rec = {k: m[k] for k in ("rc", "wall_s", "max_rss_mb", "cpu_s", "user_s", "sys_s")}
                rec["load_before"] = cond
                rec["gateway_delta"] = {k: after.get(k, 0) - before.get(k, 0)
                                        for k in ("totalConnections", "heartbeatAcks", "heartbeatAckTimeouts")}
                if tool == "probe":
                    try:
                        doc = json.loads(m["stdout"])
                        pr = doc["probe"]
                        rec.update({
                            "status": doc["status"],
                            "handshakes_per_s": pr["handshakes_per_s"],
                            "ok": pr["opened"] - pr["dropped"],
                            "errors": pr["errors"],
                            "connect_p50_ms": (pr["connect"] or {}).get("p50_ms"),
                            "connect_p99_ms": (pr["connect"] or {}).get("p99_ms"),
                            "targets": {t["instance"]: t["sessions"] for t in pr["targets"]},
                            "delivery_ratio": pr["heartbeats"]["delivery_ratio"],
                            "closed_cleanly": pr["closed"],
                            "failures": pr["failures"],
                        })
                    except (ValueError, KeyError, TypeError) as e:
                        rec["parse_error"] = f"{e}: {m['stdout'][-300:]} {m['stderr'][-300:]}"
                else:
                    j = last_json_line(m["stdout"])
                    if j is None:
                        rec["parse_error"] = f"no JSON line: {m['stdout'][-300:]} {m['stderr'][-300:]}"
                    else:
                        rec.update({
                            "handshakes_per_s": j.get("handshakes_per_s"),
                            "ok": j.get("ok"),
                            "errors": j.get("errors"),
                            "connect_p50_ms": j.get("connect_p50_ms"),
                            "connect_p99_ms": j.get("connect_p99_ms"),
                            "error_counts": j.get("error_counts"),
                        })
                if m["rc"] != 0 or rec.get("errors") or "parse_error" in rec:
                    problems.append(f"{tool} N={n} run {r + 1}: rc {m['rc']}, errors {rec.get('errors')}"
                                    f" {rec.get('parse_error', '')} {m['stderr'][-200:]}")
                runs[tool].append(rec)
                print(f"[N={n} run {r + 1}] {tool:<5} {rec.get('handshakes_per_s')} handshakes/s  "
                      f"rss {rec['max_rss_mb']} MB  cpu {rec['cpu_s']} s  wall {rec['wall_s']} s  "
                      f"ok {rec.get('ok')}/{n}  errors {rec.get('errors')}  load {cond['loadavg_1m']}"
                      f"{'  targets ' + str(rec['targets']) if 'targets' in rec else ''}", file=sys.stderr)
        summary = {}
        for tool, rs in runs.items():
            summary[tool] = {
                "handshakes_per_s": med(r.get("handshakes_per_s") for r in rs),
                "max_rss_mb": med(r["max_rss_mb"] for r in rs),
                "cpu_s": med(r["cpu_s"] for r in rs),
                "wall_s": med(r["wall_s"] for r in rs),
                "connect_p50_ms": med(r.get("connect_p50_ms") for r in rs),
                "connect_p99_ms": med(r.get("connect_p99_ms") for r in rs),
                "all_ok": all(r.get("ok") == n and not r.get("errors") for r in rs),
            }
        pr, nd = summary["probe"], summary["node"]

        def ratio(a, b):
            return round(a / b, 3) if a is not None and b else None

        ratios = {
            "handshakes_per_s probe/node": ratio(pr["handshakes_per_s"], nd["handshakes_per_s"]),
            "max_rss probe/node": ratio(pr["max_rss_mb"], nd["max_rss_mb"]),
            "cpu probe/node": ratio(pr["cpu_s"], nd["cpu_s"]),
        }
        targets = {
            "handshake rate >= node": (ratios["handshakes_per_s probe/node"] or 0) >= 1.0,
            "peak memory <= 1/4 of node": (ratios["max_rss probe/node"] or 9) <= 0.25,
            "cpu <= 1/2 of node": (ratios["cpu probe/node"] or 9) <= 0.5,
        }
        load_runs[str(n)] = {"concurrency": c, "median": summary, "ratio_median": ratios,
                             "targets_met": targets, "runs": runs}
        print(f"N={n}: probe {pr['handshakes_per_s']}/s {pr['max_rss_mb']} MB {pr['cpu_s']} s | node "
              f"{nd['handshakes_per_s']}/s {nd['max_rss_mb']} MB {nd['cpu_s']} s | {ratios} | {targets}",
              file=sys.stderr)

    # Single session.
    single = {"verify": [], "node": [], "probe_n1": []}
    for r in range(args.single_runs):
        wait_idle(ports, 1.0)
        m = measured([bin_path, "--config", str(config), "--output", "json", "verify"], env, 90, scratch)
        rec = {"rc": m["rc"], "wall_s": m["wall_s"], "max_rss_mb": m["max_rss_mb"], "cpu_s": m["cpu_s"]}
        try:
            doc = json.loads(m["stdout"])
            # The JSON envelope: the checks are the `verify` payload's.
            hb = next(c for c in doc.get("verify", doc)["checks"] if c["name"] == "heartbeat")
            rec["status"] = doc["status"]
            rec["first_heartbeat_after_join_ms"] = hb.get("evidence", {}).get("first_after_ms")
        except (ValueError, KeyError, StopIteration) as e:
            rec["parse_error"] = str(e)
        if m["rc"] != 0:
            problems.append(f"single verify run {r + 1}: rc {m['rc']} {m['stderr'][-300:]}")
        single["verify"].append(rec)

        wait_idle(ports, 1.0)
        m = measured(node_cmd(1, 1)[:-1] + ["2500"], env, 60, scratch)
        j = last_json_line(m["stdout"]) or {}
        single["node"].append({"rc": m["rc"], "wall_s": m["wall_s"], "max_rss_mb": m["max_rss_mb"],
                               "cpu_s": m["cpu_s"], "connect_ms": j.get("connect_p50_ms"),
                               "first_heartbeat_after_join_ms": j.get("first_heartbeat_ms_p50")})

        wait_idle(ports, 1.0)
        m = measured(probe_cmd(1, 1)[:-1] + ["2500ms"], env, 60, scratch)
        rec = {"rc": m["rc"], "wall_s": m["wall_s"], "max_rss_mb": m["max_rss_mb"], "cpu_s": m["cpu_s"]}
        try:
            rec["connect_ms"] = json.loads(m["stdout"])["probe"]["connect"]["p50_ms"]
        except (ValueError, KeyError, TypeError) as e:
            rec["parse_error"] = str(e)
        single["probe_n1"].append(rec)
        print(f"[single run {r + 1}] verify first heartbeat {single['verify'][-1].get('first_heartbeat_after_join_ms')} ms"
              f" (wall {single['verify'][-1]['wall_s']} s) | node first heartbeat "
              f"{single['node'][-1]['first_heartbeat_after_join_ms']} ms connect {single['node'][-1]['connect_ms']} ms"
              f" | probe N=1 connect {rec.get('connect_ms')} ms", file=sys.stderr)
    single_summary = {
        "first_heartbeat_after_join_ms": {
            "verify": med(r.get("first_heartbeat_after_join_ms") for r in single["verify"]),
            "node": med(r.get("first_heartbeat_after_join_ms") for r in single["node"]),
        },
        "connect_ms": {
            "probe_n1": med(r.get("connect_ms") for r in single["probe_n1"]),
            "node": med(r.get("connect_ms") for r in single["node"]),
        },
        "wall_s": {
            "verify (nine checks, incl. waiting for an Engine.IO ping: pingInterval 25 s)":
                med(r["wall_s"] for r in single["verify"]),
            "probe_n1 (hold 2.5 s)": med(r["wall_s"] for r in single["probe_n1"]),
            "node (hold 2.5 s)": med(r["wall_s"] for r in single["node"]),
        },
        "max_rss_mb": {k: med(r["max_rss_mb"] for r in v) for k, v in single.items()},
    }

    report = {
        "benchmark": "probe",
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "node": subprocess.run([args.node, "--version"], capture_output=True, text=True).stdout.strip(),
                    "open_file_limit": _nofile()},
        "setup": {
            "gateways": "2 x tests/gateway/server.mjs (NestJS 12, socket.io 4.8), heartbeat 2 s, ping 25 s/20 s",
            "proxy": "HAProxy sticky.cfg.tmpl (leastconn, AWSALB/AWSALBCORS on every response), MAXCONN 9900",
            "probe": "bosar-deploy verify --connections N --concurrency C --hold H --output json (websocket)",
            "node": "node tests/gateway/bench-client.mjs (socket.io-client 4.8.3, transports websocket)",
            "runs": args.runs, "hold_ms": args.hold_ms, "sizes": sizes,
        },
        "load": load_runs,
        "single": {"median": single_summary, "runs": single},
        "notes": [
            "Both clients, both gateways and HAProxy share the same 2 cores: the client's CPU is taken from the servers.",
            "handshakes_per_s: each tool's own figure, sessions connected / time from start to the last connect.",
            "max_rss_mb: peak RSS of the client process from /usr/bin/time (%M); cpu_s: user+sys from wait4.",
            "The probe holds every session for the hold once ALL are open and then leaves right after its next heartbeat"
            " ack (at most 3 s); bench-client holds each session HOLD_MS from its own connect. The probe's sessions"
            " therefore live longer, which costs it heartbeats and CPU, not the reverse.",
        ],
        "problems": problems,
    }
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)

    print(f"probe benchmark, {args.runs} runs per size; results in {args.out}")
    print(f"{'N':>6} {'tool':<6} {'handshakes/s':>13} {'peak RSS MB':>12} {'CPU s':>7} {'wall s':>7}")
    for n, res in load_runs.items():
        for tool in ("probe", "node"):
            s = res["median"][tool]
            print(f"{n:>6} {tool:<6} {s['handshakes_per_s']:>13} {s['max_rss_mb']:>12} {s['cpu_s']:>7} {s['wall_s']:>7}")
        print(f"{'':>6} ratios {res['ratio_median']}  targets {res['targets_met']}")
    print(f"single session: {single_summary}")
    for prob in problems:
        print(f"  PROBLEM: {prob}")
    return 1 if problems else 0


def _nofile():
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
