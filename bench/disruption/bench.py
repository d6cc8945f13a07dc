#!/usr/bin/env python3
"""One of two gateway replicas stopped mid-hold, measured by `bosar-deploy verify --connections N
--reconnect` and by the reference socket.io-client with its default reconnection
(tests/gateway/bench-client.mjs RECONNECT=on), against the gateways' own counters.

Normally started by bench/disruption/run.sh:

    BENCH_JWT_SECRET=... python3 bench/disruption/bench.py [--sizes 1000,5000] [--runs 3] \
        [--hold-ms 20000] [--stop-after-ms 3000] [--bin target/release/bosar-deploy] \
        [--out bench/results/disruption.json]

Each run: two fresh gateways (tests/gateway/server.mjs, instance ids gw-1 and gw-2, heartbeat
2 s, ping 25 s / 20 s) behind a fresh sticky HAProxy (tests/support/haproxy/sticky.cfg.tmpl,
MAXCONN 9900); one tool started with N sessions (the probe at its default concurrency of 256,
bench-client with CONCURRENCY N: its count of sessions alive at once) and a hold of HOLD; once the
gateways hold all N between them, STOP_AFTER later, gw-1's `connections` is read (the ground
truth of the drops) and gw-1 gets SIGTERM (it closes its sessions and exits, as an ECS task
does); the tool reconnects its sessions onto gw-2 and runs to the end of its hold. gw-2's
`totalConnections` before and after the stop gives the ground truth of the sessions that came
back. Per tool and run: drops, reconnected, lost, reconnect p50/p99/max (each tool's own
figures, from the drop to the namespace connect), failed attempts, peak RSS and CPU of the
client (from /usr/bin/time and wait4, as bench/probe measures them), the 1-minute load average
before the run. The order of the two tools alternates between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("probe_bench", REPO / "bench" / "probe" / "bench.py")
probe_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe_bench)
measured, load, med, last_json_line = (probe_bench.measured, probe_bench.load, probe_bench.med,
                                       probe_bench.last_json_line)
write_config = probe_bench.write_config

_procs: list[subprocess.Popen] = []
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _stop_all() -> None:
    cur = probe_bench._CURRENT
    if cur is not None and cur.poll() is None:
        try:
            os.killpg(cur.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in _procs:
        if p.poll() is None:
            p.terminate()
    for p in _procs:
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=3)
    _procs.clear()


def _on_signal(signum, _frame):
    _stop_all()
    sys.exit(128 + signum)


def get_json(port: int, path: str, attempts: int = 4) -> dict:
    """GET a gateway's JSON; a replica busy with thousands of handshakes may answer slowly."""
    for i in range(attempts):
        try:
            with _direct.open(f"http://127.0.0.1:{port}{path}", timeout=15) as r:
                return json.loads(r.read())
        except OSError:
            if i == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(node: str, instance: str, secret: str, scratch: Path) -> tuple[subprocess.Popen, int]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": "0", "INSTANCE_ID": instance,
           "JWT_SECRET": secret, "WEBSOCKET_HEARTBEAT_INTERVAL": "2000",
           "WEBSOCKET_PING_INTERVAL": "25000", "WEBSOCKET_PING_TIMEOUT": "20000"}
    err = open(scratch / f"{instance}.err", "w")
    p = subprocess.Popen([node, "server.mjs"], cwd=REPO / "tests" / "gateway", env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
    _procs.append(p)
    line = p.stdout.readline()
    if not line.startswith("listening "):
        raise RuntimeError(f"gateway {instance} did not start: {line!r} {(scratch / f'{instance}.err').read_text()}")
    return p, int(line.split()[1])


def start_haproxy(haproxy: str, ports: list[int], scratch: Path) -> tuple[subprocess.Popen, int]:
    tmpl = (REPO / "tests" / "support" / "haproxy" / "sticky.cfg.tmpl").read_text()
    front = free_port()
    cfg = scratch / "haproxy.cfg"
    cfg.write_text(tmpl.replace("{{FRONT_PORT}}", str(front))
                   .replace("{{BACKEND_1}}", f"127.0.0.1:{ports[0]}")
                   .replace("{{BACKEND_2}}", f"127.0.0.1:{ports[1]}")
                   .replace("{{MAXCONN}}", "9900").replace("{{NAME}}", "disruption-bench"))
    p = subprocess.Popen([haproxy, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=open(scratch / "haproxy.log", "w"))
    _procs.append(p)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if get_json(front, "/health/websocket").get("status") == "ok":
                return p, front
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"haproxy did not start: {(scratch / 'haproxy.log').read_text()[-500:]}")


def one_run(tool: str, n: int, args, secret: str, scratch: Path, env: dict) -> dict:
    (g1, p1) = start_gateway(args.node, "gw-1", secret, scratch)
    (g2, p2) = start_gateway(args.node, "gw-2", secret, scratch)
    (_, front) = start_haproxy(args.haproxy, [p1, p2], scratch)
    url = f"http://127.0.0.1:{front}"
    config = scratch / "disruption-bench.toml"
    write_config(config, url)
    if tool == "probe":
        # The probe's own default concurrency (256 handshakes in flight): its sessions all stay
        # open either way; bench-client's CONCURRENCY counts sessions alive at once, so it needs N.
        cmd = [args.bin, "--config", str(config), "--output", "json", "verify", "--connections", str(n),
               "--hold", f"{args.hold_ms}ms", "--reconnect"]
    else:
        cmd = [args.node, "tests/gateway/bench-client.mjs", "--url", url, "--n", str(n),
               "--concurrency", str(n), "--hold-ms", str(args.hold_ms), "--reconnect", "on"]
    cond = load()
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(
        measured(cmd, env, 120 + n / 50 + args.hold_ms / 1000, scratch)))
    runner.start()
    truth: dict = {}
    deadline = time.time() + 60 + n / 100
    while time.time() < deadline and runner.is_alive():
        c1 = get_json(p1, "/health/stats")["connections"]
        c2 = get_json(p2, "/health/stats")["connections"]
        if c1 + c2 == n:
            time.sleep(args.stop_after_ms / 1000)
            s1 = get_json(p1, "/health/stats")
            truth["dropped"] = s1["connections"]
            truth["survivor_total_before"] = get_json(p2, "/health/stats")["totalConnections"]
            truth["stopped_at"] = time.time()
            g1.terminate()
            g1.wait(timeout=10)
            break
        time.sleep(0.05)
    runner.join()
    after = get_json(p2, "/health/stats")
    if "dropped" in truth:
        truth["reconnected"] = after["totalConnections"] - truth["survivor_total_before"]
        truth["lost"] = truth["dropped"] - truth["reconnected"]
    _stop_all()
    m = result
    rec = {k: m.get(k) for k in ("rc", "wall_s", "max_rss_mb", "cpu_s", "user_s", "sys_s")}
    rec["load_before"] = cond
    rec["truth"] = truth
    try:
        if tool == "probe":
            doc = json.loads(m["stdout"])
            d = doc["probe"]["disruption"]
            t = d.get("reconnect") or {}
            rec.update({
                "status": doc["status"], "opened": doc["probe"]["opened"],
                "dropped": d["dropped"]["sessions"], "reconnected": d["reconnected"], "lost": d["lost"],
                "reconnect_p50_ms": t.get("p50_ms"), "reconnect_p99_ms": t.get("p99_ms"),
                "reconnect_max_ms": t.get("max_ms"), "failed_attempts": d["attempts"]["failed"],
                "drop_causes": {c["cause"]: c["count"] for c in d["dropped"]["by_cause"]},
                "moves": d["moves"], "handshakes_per_s": doc["probe"]["handshakes_per_s"],
                "failures": doc["probe"]["failures"],
            })
        else:
            j = last_json_line(m["stdout"]) or {}
            rec.update({
                "opened": j.get("connected"), "dropped": j.get("drops"), "reconnected": j.get("reconnected"),
                "lost": j.get("lost"), "reconnect_p50_ms": j.get("reconnect_p50_ms"),
                "reconnect_p99_ms": j.get("reconnect_p99_ms"), "reconnect_max_ms": j.get("reconnect_max_ms"),
                "failed_attempts": j.get("failed_attempts"), "drop_causes": j.get("drop_reasons"),
                "handshakes_per_s": j.get("handshakes_per_s"), "errors": j.get("errors"),
            })
    except (ValueError, KeyError, TypeError) as e:
        rec["parse_error"] = f"{e}: {m.get('stdout', '')[-300:]} {m.get('stderr', '')[-300:]}"
    rec["matches_truth"] = (truth.get("dropped") is not None
                            and rec.get("dropped") == truth.get("dropped")
                            and rec.get("reconnected") == truth.get("reconnected")
                            and rec.get("lost") == truth.get("lost"))
    return rec


def main() -> int:
    p = argparse.ArgumentParser(description="disruption benchmark (see module doc)")
    p.add_argument("--sizes", default="1000,5000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--hold-ms", type=int, default=20000)
    p.add_argument("--stop-after-ms", type=int, default=3000)
    p.add_argument("--bin", default="target/release/bosar-deploy")
    p.add_argument("--node", default="node")
    p.add_argument("--haproxy", default="haproxy")
    p.add_argument("--tmp", default="/tmp")
    p.add_argument("--out", default="bench/results/disruption.json")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    secret = os.environ.get("BENCH_JWT_SECRET")
    if not secret:
        sys.exit("bench.py: BENCH_JWT_SECRET must be set")
    args.bin = str(Path(args.bin) if os.path.isabs(args.bin) else REPO / args.bin)
    scratch = Path(args.tmp)
    sizes = [int(x) for x in args.sizes.split(",")]
    env = {k: v for k, v in os.environ.items() if k not in ("BOSAR_DEPLOY_CONFIG", "GITHUB_ACTIONS")}
    env.update({"CI": "true", "NO_COLOR": "1", "JWT_SECRET": secret, "BENCH_JWT_SECRET": secret})

    problems: list[str] = []
    results: dict[str, dict] = {}
    for n in sizes:
        runs = {"probe": [], "node": []}
        for r in range(args.runs):
            for tool in (["probe", "node"] if r % 2 == 0 else ["node", "probe"]):
                time.sleep(2)
                rec = one_run(tool, n, args, secret, scratch, env)
                runs[tool].append(rec)
                t = rec["truth"]
                print(f"[N={n} run {r + 1}] {tool:<5} dropped {rec.get('dropped')}/{t.get('dropped')} "
                      f"back {rec.get('reconnected')}/{t.get('reconnected')} lost {rec.get('lost')}/{t.get('lost')} "
                      f"p50 {rec.get('reconnect_p50_ms')} p99 {rec.get('reconnect_p99_ms')} ms "
                      f"rss {rec['max_rss_mb']} MB cpu {rec['cpu_s']} s load {rec['load_before']['loadavg_1m']}",
                      file=sys.stderr)
                if not rec["matches_truth"] or "parse_error" in rec:
                    problems.append(f"{tool} N={n} run {r + 1}: counts {rec.get('dropped')}/{rec.get('reconnected')}/"
                                    f"{rec.get('lost')} vs truth {t} {rec.get('parse_error', '')}")
        summary = {}
        for tool, rs in runs.items():
            summary[tool] = {
                "dropped": med(r.get("dropped") for r in rs),
                "truth_dropped": med(r["truth"].get("dropped") for r in rs),
                "reconnect_p50_ms": med(r.get("reconnect_p50_ms") for r in rs),
                "reconnect_p99_ms": med(r.get("reconnect_p99_ms") for r in rs),
                "max_rss_mb": med(r["max_rss_mb"] for r in rs),
                "cpu_s": med(r["cpu_s"] for r in rs),
                "all_match_truth": all(r["matches_truth"] for r in rs),
                "loadavg_1m": med(r["load_before"]["loadavg_1m"] for r in rs),
            }
        pr, nd = summary["probe"], summary["node"]

        def ratio(a, b):
            return round(a / b, 3) if a is not None and b else None

        ratios = {"max_rss probe/node": ratio(pr["max_rss_mb"], nd["max_rss_mb"]),
                  "cpu probe/node": ratio(pr["cpu_s"], nd["cpu_s"])}
        targets = {
            "counts match the ground truth (both tools, every run)": pr["all_match_truth"] and nd["all_match_truth"],
            "peak memory <= 1/4 of node": (ratios["max_rss probe/node"] or 9) <= 0.25,
            "cpu <= 1/2 of node": (ratios["cpu probe/node"] or 9) <= 0.5,
        }
        results[str(n)] = {"median": summary, "ratio_median": ratios, "targets_met": targets, "runs": runs}
        print(f"N={n}: {summary} {ratios} {targets}", file=sys.stderr)

    report = {
        "benchmark": "disruption",
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "node": subprocess.run([args.node, "--version"], capture_output=True, text=True).stdout.strip(),
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "setup": {
            "gateways": "2 x tests/gateway/server.mjs per run (fresh), heartbeat 2 s, ping 25 s/20 s; gw-1 gets SIGTERM",
            "proxy": "HAProxy sticky.cfg.tmpl per run (leastconn, AWSALB on every response, redispatch), MAXCONN 9900",
            "probe": "bosar-deploy verify --connections N --hold H --reconnect (concurrency 256, reconnect 1s..5s, 0.5)",
            "node": "node tests/gateway/bench-client.mjs --concurrency N --reconnect on (socket.io-client 4.8 default reconnection)",
            "runs": args.runs, "hold_ms": args.hold_ms, "stop_after_ms": args.stop_after_ms, "sizes": sizes,
        },
        "results": results,
        "notes": [
            "Ground truth: gw-1's own `connections` right before its SIGTERM (dropped); gw-2's `totalConnections`"
            " after minus before (reconnected); lost = dropped - reconnected.",
            "Reconnect times are each tool's own: from noticing the drop to the namespace CONNECT answer. The probe"
            " keeps each session's cookie jar across reconnects (as a browser does), so its first attempt carries"
            " gw-1's AWSALB value: HAProxy sends it to gw-1, which refuses, and places it on gw-2 only after its"
            " retry turn-around (1 s) or once its health check marks gw-1 down. socket.io-client in Node starts"
            " each reconnect with an empty jar and does not pay this. A real ALB does not route to a deregistered"
            " target.",
            "max_rss_mb: peak RSS of the client from /usr/bin/time; cpu_s: user+sys from wait4. Two cores are"
            " shared with both gateways, HAProxy and other engineers' builds: see load_before per run.",
        ],
        "problems": problems,
    }
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    print(f"disruption benchmark, {args.runs} runs per size; results in {args.out}")
    print(f"{'N':>6} {'tool':<6} {'dropped':>8} {'truth':>6} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} {'CPU s':>6}")
    for n, res in results.items():
        for tool in ("probe", "node"):
            s = res["median"][tool]
            print(f"{n:>6} {tool:<6} {s['dropped']!s:>8} {s['truth_dropped']!s:>6} {s['reconnect_p50_ms']!s:>8} "
                  f"{s['reconnect_p99_ms']!s:>8} {s['max_rss_mb']!s:>7} {s['cpu_s']!s:>6}")
        print(f"{'':>6} ratios {res['ratio_median']}  targets {res['targets_met']}")
    for prob in problems:
        print(f"  PROBLEM: {prob}")
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        _stop_all()
