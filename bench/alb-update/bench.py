#!/usr/bin/env python3
"""Time `alb-update` done by the AWS CLI script vs by bosar-deploy, against moto.

Normally started by bench/alb-update/run.sh, which starts and seeds moto:

    .venv/bin/python bench/alb-update/bench.py --endpoint http://127.0.0.1:PORT \
        [--runs 10] [--bin target/release/bosar-deploy] [--config sandbox/deploy.toml] \
        [--out bench/results/alb-update.json] [--tool-args '--some-flag'] [--warmup 1]

Variants (each timed --runs times with time.perf_counter around the process
alone; the state reset is done with boto3 outside the timed region):
  aws-cli       bench/alb-update/aws-cli.sh, target group reset to "before" first
  tool-update   $BIN alb-update --config CONFIG, target group + ALB reset to "before" first
  tool-in-sync  $BIN alb-update --config CONFIG when everything already matches (reads only)

After the timed runs, each variant is run once more with moto's recorder on,
and the AWS calls it made are counted (read = Describe*/List*/Get*, anything
else = mutating).  The tool variants are skipped (and say so) while the binary
does not exist.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
import tomllib
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sandbox"))

import seed  # noqa: E402  (pins dummy credentials, gives parse_duration etc.)
import boto3  # noqa: E402

READ_PREFIXES = ("Describe", "List", "Get")
UA_APP_ID = "bosar-bench"

# The "before" state the tool is timed against. moto cannot remove
# stickiness.lb_cookie.duration_seconds once set, so the reset puts it at
# 86400, which is also what real AWS reports for a fresh target group.
BEFORE_TG = [
    {"Key": "stickiness.enabled", "Value": "false"},
    {"Key": "stickiness.type", "Value": "lb_cookie"},
    {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "86400"},
    {"Key": "load_balancing.algorithm.type", "Value": "round_robin"},
    {"Key": "deregistration_delay.timeout_seconds", "Value": "300"},
]
BEFORE_IDLE_TIMEOUT = "60"


class Moto:
    """boto3 clients + moto-api helpers for one endpoint."""

    def __init__(self, endpoint: str, region: str, tg_name: str, lb_name: str):
        self.endpoint = endpoint.rstrip("/")
        self.elbv2 = boto3.client("elbv2", endpoint_url=endpoint, region_name=region)
        self.tg_arn = self.elbv2.describe_target_groups(Names=[tg_name])["TargetGroups"][0]["TargetGroupArn"]
        self.lb_arn = self.elbv2.describe_load_balancers(Names=[lb_name])["LoadBalancers"][0]["LoadBalancerArn"]

    def _api(self, path: str, method: str = "POST") -> str:
        req = urllib.request.Request(self.endpoint + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read().decode()

    def reset_before(self) -> None:
        self.elbv2.modify_target_group_attributes(TargetGroupArn=self.tg_arn, Attributes=BEFORE_TG)
        self.elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=self.lb_arn,
            Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": BEFORE_IDLE_TIMEOUT}],
        )

    def tg_attributes(self) -> dict[str, str]:
        attrs = self.elbv2.describe_target_group_attributes(TargetGroupArn=self.tg_arn)["Attributes"]
        return {a["Key"]: a["Value"] for a in attrs}

    def lb_attributes(self) -> dict[str, str]:
        attrs = self.elbv2.describe_load_balancer_attributes(LoadBalancerArn=self.lb_arn)["Attributes"]
        return {a["Key"]: a["Value"] for a in attrs}

    def record(self, fn) -> list[dict]:
        """Run fn() with the recorder on; return the recorded requests."""
        self._api("/moto-api/recorder/reset-recording")
        self._api("/moto-api/recorder/start-recording")
        try:
            fn()
        finally:
            self._api("/moto-api/recorder/stop-recording")
        text = self._api("/moto-api/recorder/download-recording", method="GET")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def action_of(entry: dict) -> str:
    """Operation name of one recorded request: ECS via X-Amz-Target, ELBv2 via Action=."""
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    params = urllib.parse.parse_qs(body)
    query = urllib.parse.urlparse(entry.get("url", "")).query
    params.update(urllib.parse.parse_qs(query))
    if "Action" in params:
        return params["Action"][0]
    return f"{entry.get('method', '?')} {urllib.parse.urlparse(entry.get('url', '')).path}"


def summarize_calls(entries: list[dict]) -> dict:
    actions = [action_of(e) for e in entries]
    by_action = Counter(actions)
    read = sum(n for a, n in by_action.items() if a.startswith(READ_PREFIXES))
    # Calls whose user agent carries AWS_SDK_UA_APP_ID (the Rust SDK puts it in
    # x-amz-user-agent); anything else during the recording came from elsewhere.
    tagged = 0
    for e in entries:
        h = {k.lower(): v for k, v in e.get("headers", {}).items()}
        if UA_APP_ID in h.get("x-amz-user-agent", "") + " " + h.get("user-agent", ""):
            tagged += 1
    return {
        "total": len(actions),
        "with_app_id": tagged,
        "read": read,
        "mutating": len(actions) - read,
        "sequence": actions,
        "by_action": dict(sorted(by_action.items())),
    }


def stats(samples: list[float]) -> dict:
    return {
        "median_s": round(statistics.median(samples), 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
        "mean_s": round(statistics.fmean(samples), 4),
        "stdev_s": round(statistics.stdev(samples), 4) if len(samples) > 1 else 0.0,
        "samples_s": [round(s, 4) for s in samples],
    }


_CURRENT: subprocess.Popen | None = None


def _on_signal(signum, _frame):
    """Stop the command being timed (its whole process group), then exit."""
    if _CURRENT is not None and _CURRENT.poll() is None:
        try:
            os.killpg(_CURRENT.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def run_cmd(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """Run cmd in its own process group; return (wall seconds, result)."""
    global _CURRENT
    t0 = time.perf_counter()
    _CURRENT = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    out, err = _CURRENT.communicate()
    elapsed = time.perf_counter() - t0
    proc = subprocess.CompletedProcess(cmd, _CURRENT.returncode, out, err)
    _CURRENT = None
    return elapsed, proc


def fail_text(proc: subprocess.CompletedProcess) -> str:
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-8:]
    return f"exit {proc.returncode}: " + " | ".join(tail)


def aws_cli_version(env: dict) -> str | None:
    cli = env.get("AWS_CLI", "aws")
    try:
        out = subprocess.run([cli, "--version"], env=env, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main() -> int:
    p = argparse.ArgumentParser(description="alb-update benchmark driver (see module doc)")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "10")))
    p.add_argument("--bin", default=os.environ.get("BOSAR_BIN", "target/release/bosar-deploy"))
    p.add_argument("--config", default="sandbox/deploy.toml")
    p.add_argument("--cli-script", default="bench/alb-update/aws-cli.sh")
    p.add_argument("--out", default="bench/results/alb-update.json")
    p.add_argument(
        "--tool-args",
        default=os.environ.get("BOSAR_ALB_ARGS", ""),
        help="extra args appended to `alb-update --config CONFIG` (env BOSAR_ALB_ARGS), e.g. '--yes'",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per variant first (default 1)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.runs < 1:
        sys.exit("bench.py: --runs must be >= 1")

    with open(REPO / args.config, "rb") as f:
        cfg = tomllib.load(f)
    region = cfg.get("aws", {}).get("region", "us-east-1")
    moto = Moto(args.endpoint, region, cfg["target_group"]["name"], cfg["load_balancer"]["name"])
    expected_tg = {a["Key"]: a["Value"] for a in seed.target_group_attributes(cfg)}
    expected_idle = str(seed.parse_duration(cfg["load_balancer"].get("idle_timeout", "60s")))

    env = dict(os.environ)
    env.update(
        {
            "AWS_ENDPOINT_URL": args.endpoint,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SDK_UA_APP_ID": UA_APP_ID,
            "NO_COLOR": "1",
        }
    )
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(var, None)

    bin_path = Path(args.bin) if os.path.isabs(args.bin) else REPO / args.bin
    tool_ok = bin_path.is_file() and os.access(bin_path, os.X_OK)
    cli_cmd = ["bash", str(REPO / args.cli_script)]
    tool_cmd = [str(bin_path), "alb-update", "--config", args.config, *shlex.split(args.tool_args)]

    variants = {
        "aws-cli": {"cmd": cli_cmd, "reset": True, "needs_tool": False,
                    "what": "bench/alb-update/aws-cli.sh from the before state"},
        "tool-update": {"cmd": tool_cmd, "reset": True, "needs_tool": True,
                        "what": "bosar-deploy alb-update from the before state"},
        "tool-in-sync": {"cmd": tool_cmd, "reset": False, "needs_tool": True,
                         "what": "bosar-deploy alb-update when already in sync"},
    }

    results: dict[str, dict] = {}
    problems: list[str] = []
    for name, v in variants.items():
        res: dict = {"command": " ".join(_rel(c) for c in v["cmd"]), "what": v["what"]}
        results[name] = res
        if v["needs_tool"] and not tool_ok:
            res["skipped"] = f"binary not found or not executable: {bin_path} (set BOSAR_BIN)"
            print(f"[{name}] skipped: {res['skipped']}", file=sys.stderr)
            continue

        def prepare():
            if v["reset"]:
                moto.reset_before()

        if name == "tool-in-sync":
            # Reach the in-sync state with the tool itself (untimed), then check it.
            moto.reset_before()
            _, proc = run_cmd(v["cmd"], env)
            if proc.returncode != 0:
                res["error"] = "bringing to sync failed: " + fail_text(proc)
                problems.append(f"{name}: {res['error']}")
                print(f"[{name}] {res['error']}", file=sys.stderr)
                continue

        samples: list[float] = []
        try:
            for i in range(args.warmup + args.runs):
                prepare()
                elapsed, proc = run_cmd(v["cmd"], env)
                if proc.returncode != 0:
                    raise RuntimeError(fail_text(proc))
                if i >= args.warmup:
                    samples.append(elapsed)
        except RuntimeError as e:
            res["error"] = str(e)
            problems.append(f"{name}: {e}")
            print(f"[{name}] failed: {e}", file=sys.stderr)
            continue
        res.update(stats(samples))

        # Did it end where it should?
        tg_now = moto.tg_attributes()
        wrong = {k: (tg_now.get(k), want) for k, want in expected_tg.items() if tg_now.get(k) != want}
        res["target_group_in_sync_after"] = not wrong
        if wrong:
            res["target_group_mismatch"] = {k: {"got": g, "want": w} for k, (g, w) in wrong.items()}
            problems.append(f"{name}: target group attributes wrong after run: {wrong}")
        res["idle_timeout_after"] = moto.lb_attributes().get("idle_timeout.timeout_seconds")

        # One more run with the recorder on, to count calls.
        prepare()
        holder = {}
        entries = moto.record(lambda: holder.setdefault("proc", run_cmd(v["cmd"], env)[1]))
        if holder["proc"].returncode != 0:
            problems.append(f"{name}: recorded run failed: {fail_text(holder['proc'])}")
        res["calls"] = summarize_calls(entries)
        print(
            f"[{name}] median {res['median_s']*1000:.0f} ms  (min {res['min_s']*1000:.0f}, "
            f"max {res['max_s']*1000:.0f}, n={len(samples)})  calls: {res['calls']['total']} "
            f"({res['calls']['read']} read, {res['calls']['mutating']} mutating) "
            f"{' '.join(res['calls']['sequence'])}",
            file=sys.stderr,
        )

    ratios = {}
    cli_med = results["aws-cli"].get("median_s")
    for name in ("tool-update", "tool-in-sync"):
        tool_med = results[name].get("median_s")
        if cli_med and tool_med:
            ratios[f"aws-cli/{name}"] = round(cli_med / tool_med, 2)

    report = {
        "benchmark": "alb-update",
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": args.runs,
        "warmup": args.warmup,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "moto_version": _moto_version(),
        "aws_cli": aws_cli_version(env),
        "binary": _rel(str(bin_path)) if tool_ok else None,
        "config": args.config,
        "expected_target_group_attributes": expected_tg,
        "expected_idle_timeout_seconds": expected_idle,
        "variants": results,
        "ratio_median": ratios,
        "notes": [
            "Times are wall-clock per process (perf_counter), state reset excluded; moto on loopback.",
            "aws-cli.sh sets only the five target-group attributes; alb-update may also set the ALB idle timeout.",
            "Reset 'before' state: stickiness off, round_robin, deregistration 300, cookie duration 86400, idle timeout 60"
            " (moto cannot drop the cookie-duration key once set, so from a reset the tool plans 4 changes, 5 from a fresh seed).",
        ],
        "problems": problems,
    }
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)

    # Human summary on stdout.
    print(f"alb-update benchmark, {args.runs} runs each (warm-up {args.warmup}); results in {args.out}")
    for name, res in results.items():
        if "median_s" in res:
            c = res["calls"]
            print(
                f"  {name:<13} median {res['median_s']*1000:7.1f} ms   min {res['min_s']*1000:7.1f}   "
                f"max {res['max_s']*1000:7.1f}   calls {c['total']} ({c['read']} read, {c['mutating']} mutating)"
            )
        else:
            print(f"  {name:<13} {res.get('skipped') or 'FAILED: ' + res.get('error', '?')}")
    for k, r in ratios.items():
        print(f"  ratio {k}: {r}x")
    insync = results["tool-in-sync"].get("calls")
    if insync:
        verdict = "OK (reads only)" if insync["mutating"] == 0 else "NOT read-only!"
        print(f"  in-sync run: {insync['read']} read, {insync['mutating']} mutating calls -> {verdict}")
    for prob in problems:
        print(f"  PROBLEM: {prob}")
    return 1 if problems else 0


def _rel(path: str) -> str:
    """Paths inside the repo as repo-relative (results are committed)."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return path


def _moto_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
