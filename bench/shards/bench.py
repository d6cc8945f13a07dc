#!/usr/bin/env python3
"""The same N held by one process and by 4 shards, then the merge's time for 100 shard
reports. Normally started by bench/shards/run.sh, which starts the gateways and the proxy:

    BENCH_JWT_SECRET=... python3 bench/shards/bench.py --url http://127.0.0.1:PORT \
        --gateways P1,P2 [--n 4000] [--hold-ms 5000] [--merge-runs 5] --bin BIN --tmp DIR

1. one process:  BIN verify --connections N --hold HOLD --output json
2. four shards:  BIN verify --connections N --shard I/4 --start-at T --hold HOLD --output json,
   started together under /usr/bin/time, then BIN report merge shard-*.json
   Per process: peak RSS and CPU seconds (from /usr/bin/time and wait4), wall time; the
   merged counts are compared with the single run's and with the gateways' own counters.
3. merge time: 100 shard documents (one real shard document rewritten as shard I/100 of the
   same run), BIN report merge over all of them, --merge-runs times; median wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "probe"))
from bench import gateway_stats, measured, wait_idle, write_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def start_measured(cmd: list[str], env: dict, out: Path, scratch: Path) -> tuple[subprocess.Popen, Path]:
    rss = scratch / f"{out.name}.rss"
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss), *cmd], env=env, cwd=REPO,
                            stdout=out.open("w"), stderr=subprocess.PIPE)
    return proc, rss


def counts(doc: dict) -> dict:
    p = doc["probe"]
    return {k: p[k] for k in ("connections", "opened", "open_failed", "dropped", "closed", "errors")} | {
        "targets": sum(t["sessions"] for t in p["targets"]),
        "connect_p50_ms": (p.get("connect") or {}).get("p50_ms"),
        "connect_p99_ms": (p.get("connect") or {}).get("p99_ms"),
        "heartbeats_acked": p["heartbeats"]["acked"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="one process vs 4 shards, and the merge's time")
    ap.add_argument("--url", required=True)
    ap.add_argument("--gateways", required=True)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--hold-ms", type=int, default=5000)
    ap.add_argument("--merge-runs", type=int, default=5)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ports = [int(p) for p in a.gateways.split(",")]
    scratch = Path(a.tmp)
    config = scratch / "deploy.toml"
    write_config(config, a.url)
    env = {"PATH": os.environ["PATH"], "BENCH_JWT_SECRET": os.environ["BENCH_JWT_SECRET"]}
    hold = f"{a.hold_ms}ms"
    base = [a.bin, "--config", str(config), "--output", "json", "verify", "--connections", str(a.n),
            "--hold", hold]

    # 1. One process.
    wait_idle(ports, 1.0)
    before = gateway_stats(ports)
    one = measured(base, env, 300, scratch)
    one_doc = json.loads(one["stdout"])
    after = gateway_stats(ports)
    single = {"rc": one["rc"], "wall_s": one["wall_s"], "max_rss_mb": one["max_rss_mb"], "cpu_s": one["cpu_s"],
              "counts": counts(one_doc),
              "gateway_connections": after["totalConnections"] - before["totalConnections"]}
    print(f"one process: {single}", file=sys.stderr)

    # 2. Four shards, one start time.
    wait_idle(ports, 1.0)
    before = gateway_stats(ports)
    at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.perf_counter()
    procs = []
    for i in range(1, 5):
        out = scratch / f"shard-{i}.json"
        procs.append((out, *start_measured(base + ["--shard", f"{i}/4", "--start-at", at], env, out, scratch)))
    shards = []
    for out, proc, rss in procs:
        proc.wait(timeout=300)
        kb, user, sys_s = rss.read_text().split()[-3:]
        shards.append({"rc": proc.returncode, "max_rss_mb": round(float(kb) / 1024, 1),
                       "cpu_s": round(float(user) + float(sys_s), 2)})
    wall = round(time.perf_counter() - t0, 3)
    after = gateway_stats(ports)
    files = [str(p[0]) for p in procs]
    merged = measured([a.bin, "--output", "json", "report", "merge", *files], env, 60, scratch)
    merged_doc = json.loads(merged["stdout"])
    sharded = {"wall_s_including_start_wait": wall, "start_at": at, "processes": shards,
               "max_rss_mb_sum": round(sum(s["max_rss_mb"] for s in shards), 1),
               "cpu_s_sum": round(sum(s["cpu_s"] for s in shards), 2),
               "merge_rc": merged["rc"], "merged_counts": counts(merged_doc),
               "gateway_connections": after["totalConnections"] - before["totalConnections"]}
    print(f"four shards: {sharded}", file=sys.stderr)

    # 3. The merge's time for 100 shard reports of one run.
    doc = json.loads(Path(files[0]).read_text())
    many = []
    for i in range(1, 101):
        doc["probe"]["shard"]["shard"] = {"index": i, "count": 100}
        doc["probe"]["shard"]["total_connections"] = 100 * doc["probe"]["connections"]
        f = scratch / f"many-{i}.json"
        f.write_text(json.dumps(doc))
        many.append(str(f))
    times = []
    rc = None
    for _ in range(a.merge_runs):
        m = measured([a.bin, "--output", "json", "report", "merge", *many], env, 60, scratch)
        rc = m["rc"]
        times.append(m["wall_s"])
        m100 = json.loads(m["stdout"])["probe"]
    merge100 = {"reports": 100, "runs": a.merge_runs, "rc": rc, "median_wall_s": statistics.median(times),
                "wall_s": times, "opened": m100["opened"], "bytes_per_report": len(json.dumps(doc))}
    print(f"merge of 100: {merge100}", file=sys.stderr)

    equal = {k: single["counts"][k] == sharded["merged_counts"][k]
             for k in ("connections", "opened", "closed", "errors", "targets")}
    result = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "n": a.n, "hold_ms": a.hold_ms, "one_process": single, "four_shards": sharded,
        "merged_counts_equal_single": equal, "merge_100": merge100,
    }
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(equal.values()) and single["rc"] == 0 and sharded["merge_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
