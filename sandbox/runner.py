#!/usr/bin/env python3
"""The sandbox's ECS task runner: moto whose service really runs its tasks here.

Usage (from the repository root, after `bash scripts/setup.sh`):

    BOSAR_SANDBOX_JWT_SECRET=... .venv/bin/python sandbox/runner.py \
        --config sandbox/deploy.toml [--state before|after] \
        [--moto-port 0] [--front-port 0] [--jwt-secret-env BOSAR_SANDBOX_JWT_SECRET]

What it does, all on 127.0.0.1:
  * runs moto in this process (ThreadedMotoServer) and seeds it with
    sandbox/seed.py (no fake targets: the runner registers what it runs);
  * starts HAProxy shaped like the ALB (tests/support/haproxy/runner.cfg.tmpl)
    with eight server slots it fills over the runtime API;
  * runs every task of the service's PRIMARY deployment as a real gateway
    (`node tests/gateway/server.mjs`) with that revision's container
    environment (PORT and HOST excepted), JWT_SECRET from the env var named
    by --jwt-secret-env and INSTANCE_ID <family>-<revision>-<task id prefix>;
  * rolls the service like ECS when UpdateService changes its task definition
    (or forces a new deployment): new deployment PRIMARY IN_PROGRESS in the
    UpdateService response itself, new tasks started and health-checked
    (GET /health/websocket), put into HAProxy and registered in the target
    group, then the old ones drained for the target group's
    deregistration_delay.timeout_seconds (read at that moment), deregistered,
    their sessions shut, SIGTERM'd; only then the deployment COMPLETED and
    the old one dropped. Service events as ECS words them. DescribeTargetHealth
    reports HAProxy's view of each task (healthy / draining / unhealthy).
    A deployment whose tasks keep failing to start trips the circuit breaker
    (3 failed tasks): rolloutState FAILED and, with rollback on, a new
    deployment of the last completed revision.

  * with --probe-bin PATH: seeds the load probe's task definition and runs
    RunTask of it as PATH processes whose output goes to CloudWatch Logs
    (sandbox/probe_tasks.py: what `verify --shards K --on-ecs` starts).

stdout: JSON lines, one per event, each with "event" and "t" (unix seconds).
The line with "event":"ready" comes once the first deployment has completed:

    {"event":"ready","t":...,"moto":"http://127.0.0.1:P","url":"http://127.0.0.1:F",
     "pid":...,"haproxy_pid":...,"stats_socket":"...","region":"us-east-1",
     "cluster":"...","service":"...","target_group_arn":"...","deployment":"ecs-svc/...",
     "revision":"bosar-api:1","tasks":[{"task":"...","pid":...,"port":...,
     "instance_id":"...","ip":"10.0.1.10","slot":"task1","revision":"...",...}]}

Other events: deployment_started, task_started, task_running (registered
and in HAProxy), task_failed, draining (with delay_s), deregistered,
task_stopped (pid, exit_code), deployment_completed, deployment_failed, stopped;
with --probe-bin, probe_task_started (task, pid, command) and probe_task_stopped
(task, exit_code).
stderr: one human line per step.

Stops everything it started on SIGTERM, SIGINT or SIGHUP, and when its parent
goes away; its children get SIGKILL if it is killed itself (setpriv
--pdeathsig).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import traceback
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GATEWAY_DIR = REPO / "tests" / "gateway"
TEMPLATE = REPO / "tests" / "support" / "haproxy" / "runner.cfg.tmpl"
BACKEND = "gateways"
SLOTS = [f"task{i}" for i in range(1, 9)]
# Container env keys the runner sets itself (PORT/HOST would pin every task to one port).
OWN_ENV = {"PORT", "HOST", "INSTANCE_ID", "JWT_SECRET"}
MAX_STOP_WAIT = 10.0  # cap on the container's stopTimeout before SIGKILL
SETUP = "run `bash scripts/setup.sh` first"

for _var in ("MOTO_ECS_SERVICE_RUNNING", "MOTO_ECS_SERVICE_FAILED_TASKS"):
    os.environ.pop(_var, None)  # the runner moves rollouts itself

sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # no sandbox/__pycache__ from importing seed.py
try:
    import seed as seedlib  # noqa: E402  (pins dummy credentials, imports boto3)
    from moto.backends import get_backend  # noqa: E402
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
    from moto.core.utils import utcnow  # noqa: E402
    from moto.ecs.models import EC2ContainerServiceBackend  # noqa: E402
    from moto.elbv2.models import ELBv2Backend  # noqa: E402
    from moto.server import ThreadedMotoServer  # noqa: E402
    import strategies  # noqa: E402  (ECS-native deployments: blue/green, canary, linear)
    import probe_tasks  # noqa: E402  (RunTask of the load probe as bosar-deploy processes)
except ImportError as e:
    sys.exit(f"runner: cannot import {e.name} ({e}): {SETUP} (moto lives in .venv)")


class Stop(Exception):
    """Raised by the signal handlers and on parent death: leave and clean up."""


def log(msg: str) -> None:
    print(f"runner: {msg}", file=sys.stderr, flush=True)


_stdout_ok = True
_stdout_lock = threading.Lock()


def emit(event: str, **fields) -> None:
    """One JSON line on stdout (also called from moto's request threads)."""
    global _stdout_ok
    line = json.dumps({"event": event, "t": round(time.time(), 3), **fields}, separators=(",", ":"))
    with _stdout_lock:
        if not _stdout_ok:
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _stdout_ok = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def which(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.path.isfile(p)), None
    )


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with _direct.open(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


class Task:
    """One ECS task: a gateway process, a target in the target group, a HAProxy slot."""

    def __init__(self, deployment: str, revision: str, ip: str, port: int, workdir: Path):
        self.id = uuid.uuid4().hex
        self.deployment = deployment
        self.revision = revision
        self.instance_id = f"{revision.replace(':', '-')}-{self.id[:8]}"
        self.target = {"Id": ip, "Port": port}
        self.backend = BACKEND  # the HAProxy backend (target group) it serves in
        self.state = "PENDING"  # PENDING -> RUNNING -> DRAINING -> STOPPED
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.slot: str | None = None
        self.registered = False
        self.started = time.monotonic()
        self.stop_timeout = MAX_STOP_WAIT
        self.out = workdir / f"task-{self.id[:8]}.out"
        self.err = workdir / f"task-{self.id[:8]}.err"

    def info(self) -> dict:
        return {
            "task": self.id,
            "deployment": self.deployment,
            "revision": self.revision,
            "instance_id": self.instance_id,
            "pid": self.proc.pid if self.proc else None,
            "port": self.port,
            "ip": self.target["Id"],
            "slot": self.slot,
            "backend": self.backend,
            "state": self.state,
        }


class Runner:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        try:
            with open(args.config, "rb") as f:
                cfg = tomllib.load(f)
            self.region = cfg.get("aws", {}).get("region", "us-east-1")
            self.cluster = cfg["ecs"]["cluster"]
            self.service = cfg["ecs"]["service"]
            self.container = cfg["ecs"]["container"]
        except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
            sys.exit(f"runner: {args.config}: {type(e).__name__}: {e}")
        self.secret = os.environ.get(args.jwt_secret_env, "")
        if not self.secret:
            sys.exit(f"runner: set {args.jwt_secret_env} (the gateways' JWT_SECRET; --jwt-secret-env names it)")
        self.node = which("node")
        self.haproxy_bin = which("haproxy")
        missing = [n for n, ok in (("node", self.node), ("haproxy", self.haproxy_bin)) if not ok]
        if not (GATEWAY_DIR / "node_modules" / "@nestjs" / "core").is_dir():
            missing.append("tests/gateway/node_modules")
        if missing:
            sys.exit(f"runner: {', '.join(missing)} not found: {SETUP}")
        setpriv = which("setpriv")  # children die with the runner even on SIGKILL
        self.wrap = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bosar-runner."))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # guards svc.deployments / svc.events edits
        self.wake = threading.Event()
        self.tasks: list[Task] = []
        self.by_ip: dict[str, Task] = {}
        self.slot_cursor = 0
        self.ip_counter = 0
        self.networks: list[ipaddress.IPv4Network] = []
        self.moto: ThreadedMotoServer | None = None
        self.haproxy: subprocess.Popen | None = None
        self.sock_path = self.workdir / "haproxy.sock"
        self.last_completed: tuple[str, str] | None = None  # (deployment id, task definition)
        self.parent = os.getppid()
        self.native = strategies.Native(self) if args.strategy else None
        self.first_deployment: str | None = None
        self.probe = probe_tasks.ProbeTasks(self, args.probe_bin) if args.probe_bin else None
        self.probe_info: dict | None = None

    def log(self, msg: str) -> None:
        log(msg)

    def emit_event(self, event: str, **fields) -> None:
        emit(event, **fields)

    # --- moto ----------------------------------------------------------------------------
    def ecs_backend(self):
        return get_backend("ecs")[DEFAULT_ACCOUNT_ID][self.region]

    def svc(self):
        return self.ecs_backend().services.get(f"{self.cluster}:{self.service}")

    def primary(self) -> dict | None:
        svc = self.svc()
        return next((d for d in svc.deployments if d["status"] == "PRIMARY"), None) if svc else None

    def deployment(self, dep_id: str) -> dict | None:
        svc = self.svc()
        return next((d for d in svc.deployments if d["id"] == dep_id), None) if svc else None

    def is_primary(self, dep_id: str) -> bool:
        p = self.primary()
        return bool(p and p["id"] == dep_id)

    def new_deployment(self, svc, td: str) -> str:
        """Puts a new PRIMARY IN_PROGRESS deployment of `td` in front; the old PRIMARY turns ACTIVE."""
        td_arn = self.ecs_backend().describe_task_definition(td).arn
        now = utcnow()
        dep_id = f"ecs-svc/{random.randrange(10**18, 10**19)}"
        old = next((d for d in svc.deployments if d["status"] == "PRIMARY"), {})
        new = {
            **old,
            "id": dep_id,
            "status": "PRIMARY",
            "taskDefinition": td_arn,
            "desiredCount": svc.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
            "createdAt": now,
            "updatedAt": now,
        }
        rest = [{**d, "status": "ACTIVE", "updatedAt": now} if d["status"] == "PRIMARY" else d for d in svc.deployments]
        svc.deployments = [new] + rest
        svc.task_definition = td_arn
        if self.native and self.native.is_native(svc):
            self.native.on_new_deployment(svc, dep_id, old.get("taskDefinition"), td_arn)
        emit("deployment_started", deployment=dep_id, task_definition=td_arn)
        return dep_id

    def update_deployment(self, dep_id: str, **changes) -> None:
        with self.lock:
            svc = self.svc()
            if svc:
                svc.deployments = [
                    {**d, **changes, "updatedAt": utcnow()} if d["id"] == dep_id else d for d in svc.deployments
                ]

    def sync_counts(self) -> None:
        """runningCount / pendingCount of each deployment and of the service, from the tasks."""
        with self.lock:
            svc = self.svc()
            if not svc:
                return
            deps = []
            for d in svc.deployments:
                mine = [t for t in self.tasks if t.deployment == d["id"]]
                running = sum(t.state in ("RUNNING", "DRAINING") for t in mine)
                pending = sum(t.state == "PENDING" for t in mine)
                if (d.get("runningCount"), d.get("pendingCount")) != (running, pending):
                    d = {**d, "runningCount": running, "pendingCount": pending, "updatedAt": utcnow()}
                deps.append(d)
            svc.deployments = deps
            svc.running_count = sum(d["runningCount"] for d in deps)
            svc.pending_count = sum(d["pendingCount"] for d in deps)

    def event(self, message: str) -> None:
        """A service event, newest first like ECS's (which keeps 100)."""
        with self.lock:
            svc = self.svc()
            if svc:
                e = {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": f"(service {svc.name}) {message}"}
                svc.events = [e] + svc.events[:99]
        log(f"event: {message}")

    def install_patches(self) -> None:
        runner = self
        orig_update = EC2ContainerServiceBackend.update_service
        orig_health = ELBv2Backend.describe_target_health

        def update_service(backend, props):
            # moto 5.2.5 keeps the one deployment record: a new revision only changes
            # service.taskDefinition, --force-new-deployment only re-ids deployments[0], and a
            # desired count is reported running at once. ECS starts a new deployment instead.
            force = bool(props.get("force_new_deployment"))
            with runner.lock:
                try:
                    svc = backend._get_service(props.get("cluster", "default"), props.get("service", ""))
                except Exception:
                    svc = None
                before = [dict(d) for d in svc.deployments] if svc else []
                counts = (svc.running_count, svc.pending_count) if svc else None
                result = orig_update(backend, props)
                if svc is None or result is not svc or svc.deployment_controller.get("type", "ECS") != "ECS":
                    return result
                svc.deployments = before
                svc.running_count, svc.pending_count = counts
                primary = next((d for d in before if d["status"] == "PRIMARY"), None)
                td_arn = backend.describe_task_definition(svc.task_definition).arn
                if force or primary is None or primary.get("taskDefinition") != td_arn:
                    runner.new_deployment(svc, svc.task_definition)
                elif primary.get("desiredCount") != svc.desired_count:
                    log(f"desired count {svc.desired_count}: scaling without a new deployment is not simulated")
            runner.wake.set()
            return result

        def describe_target_health(backend, target_group_arn, targets):
            result = orig_health(backend, target_group_arn, targets)
            status = runner.slot_status() if any(h.instance_id in runner.by_ip for h in result) else {}
            for h in result:
                task = runner.by_ip.get(h.instance_id)
                if task and task.registered and task.slot in status:
                    h.status, h.reason, h.description = target_state(task, status[task.slot])
            return result

        EC2ContainerServiceBackend.update_service = update_service
        ELBv2Backend.describe_target_health = describe_target_health

    def start_moto(self) -> None:
        port = self.args.moto_port
        if port:
            with socket.socket() as s:  # ThreadedMotoServer.start() would hang on a bind error
                try:
                    s.bind(("127.0.0.1", port))
                except OSError as e:
                    sys.exit(f"runner: --moto-port {port}: {e}")
        os.environ.setdefault("MOTO_RECORDER_FILEPATH", str(self.workdir / "moto-recording"))
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.install_patches()
        if self.native:
            self.native.install()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.moto.start()
        self.endpoint = f"http://127.0.0.1:{self.moto.get_host_and_port()[1]}"
        seed_args = argparse.Namespace(
            endpoint=self.endpoint,
            config=self.args.config,
            state=self.args.state,
            targets="none",
            reset=False,
            strategy=self.args.strategy,
        )
        seedlib.check_endpoint(self.endpoint)
        summary = seedlib.seed(seed_args)
        self.tg_arn = summary["target_group_arn"]
        self.summary = summary
        self.first_deployment = self.primary()["id"]
        session = seedlib.boto3.session.Session(region_name=self.region)
        self.ecs = session.client("ecs", endpoint_url=self.endpoint)
        self.elbv2 = session.client("elbv2", endpoint_url=self.endpoint)
        ec2 = session.client("ec2", endpoint_url=self.endpoint)
        subnets = ec2.describe_subnets(SubnetIds=summary["subnet_ids"])["Subnets"]
        self.networks = [ipaddress.ip_network(s["CidrBlock"]) for s in subnets]
        if self.probe:
            self.probe.install()
            self.probe_info = self.probe.seed()
        log(f"moto on {self.endpoint}, seeded ({self.args.state})")

    # --- HAProxy -------------------------------------------------------------------------
    def hap(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.sock_path))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def slot_status(self) -> dict[str, str]:
        """HAProxy's status per slot (UP, DOWN, DRAIN, MAINT...); {} if it does not answer."""
        try:
            lines = self.hap("show stat -1 4 -1").splitlines()
        except OSError:
            return {}
        if not lines:
            return {}
        header = lines[0].lstrip("# ").split(",")
        px, sv, st = header.index("pxname"), header.index("svname"), header.index("status")
        rows = [line.split(",") for line in lines[1:] if line]
        backends = strategies.BACKENDS if self.native else (BACKEND,)
        return {r[sv]: r[st] for r in rows if len(r) > st and r[px] in backends}

    def start_haproxy(self) -> None:
        tmpl = TEMPLATE.read_text()
        last = ""
        for attempt in range(3):
            port = self.args.front_port or free_port()
            cfg = self.workdir / "haproxy.cfg"
            if self.native:
                self.test_port = self.args.test_port or free_port()
                self.native.write_maps()
                cfg.write_text(
                    strategies.haproxy_config(
                        port, self.test_port, str(self.sock_path), self.args.maxconn, self.native.maps
                    )
                )
            else:
                cfg.write_text(
                    tmpl.replace("{{FRONT_PORT}}", str(port))
                    .replace("{{STATS_SOCKET}}", str(self.sock_path))
                    .replace("{{MAXCONN}}", str(self.args.maxconn))
                    .replace("{{NAME}}", f"runner-{port}")
                )
            logf = self.workdir / "haproxy.log"
            with open(logf, "w") as err:
                self.haproxy = subprocess.Popen(
                    self.wrap + [self.haproxy_bin, "-f", str(cfg), "-db"],
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.haproxy.poll() is None:
                try:
                    if ("tg_a" if self.native else BACKEND) in self.hap("show backend"):
                        with socket.create_connection(("127.0.0.1", port), timeout=1):
                            self.url = f"http://127.0.0.1:{port}"
                            self.test_url = f"http://127.0.0.1:{self.test_port}" if self.native else None
                            log(f"HAProxy (ALB stand-in) on {self.url}" + (f", test listener on {self.test_url}" if self.native else ""))
                            return
                except OSError:
                    pass
                time.sleep(0.05)
            last = tail(logf, 10)
            self.stop_proc(self.haproxy, 2)
            if self.args.front_port:
                break
        sys.exit(f"runner: haproxy did not start: {last}")

    def free_slot(self, backend: str = BACKEND) -> str:
        slots = strategies.SLOTS[backend] if self.native else SLOTS
        used = {t.slot for t in self.tasks if t.slot and t.state != "STOPPED"}
        for i in range(len(slots)):  # round robin, so a slot is reused as late as possible
            slot = slots[(self.slot_cursor + i) % len(slots)]
            if slot not in used:
                self.slot_cursor = (self.slot_cursor + i + 1) % len(slots)
                return slot
        raise RuntimeError(f"all {len(slots)} HAProxy slots of {backend} are in use")

    # --- tasks ---------------------------------------------------------------------------
    def next_ip(self) -> str:
        """A private IP in the seeded subnets, alternating AZs, as Fargate's awsvpc ENIs get."""
        n = self.ip_counter
        self.ip_counter += 1
        net = self.networks[n % len(self.networks)]
        return str(net.network_address + 10 + (n // len(self.networks)) % 240)

    def start_task(self, dep_id: str, td: dict, revision: str, backend: str = BACKEND) -> Task:
        cdef = next((c for c in td["containerDefinitions"] if c["name"] == self.container), None)
        if cdef is None:
            raise RuntimeError(f"task definition {revision} has no container {self.container}")
        port = next((p["containerPort"] for p in cdef.get("portMappings", [])), 3000)
        t = Task(dep_id, revision, self.next_ip(), port, self.workdir)
        t.backend = backend
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({e["name"]: e["value"] for e in cdef.get("environment", []) if e["name"] not in OWN_ENV})
        secret = self.secret
        if self.args.green_fault == "jwt" and dep_id != self.first_deployment:
            secret = self.secret + "-not-the-sandbox-secret"  # green rejects the sandbox's tokens
        env.update(PORT="0", HOST="127.0.0.1", INSTANCE_ID=t.instance_id, JWT_SECRET=secret)
        t.stop_timeout = min(float(cdef.get("stopTimeout", 30)), MAX_STOP_WAIT)
        with open(t.out, "w") as out, open(t.err, "w") as err:
            t.proc = subprocess.Popen(
                self.wrap + [self.node, "server.mjs"],
                cwd=GATEWAY_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.tasks.append(t)
        self.by_ip[t.target["Id"]] = t
        emit("task_started", **t.info())
        return t

    def poll_task(self, t: Task, tg_arns: list[str]) -> None:
        """One look at a PENDING task: failed, still starting, or healthy (then registered)."""
        rc = t.proc.poll()
        if rc is not None:
            return self.task_failed(t, f"exited with code {rc}: {tail(t.err) or 'no stderr'}")
        if time.monotonic() - t.started > self.args.task_start_timeout:
            return self.task_failed(t, f"not healthy within {self.args.task_start_timeout:g} s")
        if t.port is None:
            try:
                first = t.out.read_text().split("\n", 1)[0]
            except OSError:
                first = ""
            if first.startswith("listening "):
                t.port = int(first.split()[1])
            return
        if not http_ok(f"http://127.0.0.1:{t.port}/health/websocket", timeout=0.5):
            return
        t.slot = self.free_slot(t.backend)
        t.state = "RUNNING"
        s = f"{t.backend}/{t.slot}"
        self.hap(f"set server {s} addr 127.0.0.1 port {t.port}; set weight {s} 1; set server {s} state ready")
        for tg in tg_arns:
            self.elbv2.register_targets(TargetGroupArn=tg, Targets=[t.target])
        t.registered = True
        self.sync_counts()
        for tg in tg_arns:
            self.event(f"registered 1 targets in (target-group {tg})")
        log(f"task {t.id[:8]} ({t.revision}) healthy on 127.0.0.1:{t.port}, slot {t.slot}, target {t.target['Id']}")
        emit("task_running", **t.info())

    def task_failed(self, t: Task, reason: str) -> None:
        self.stop_proc(t.proc, 0)
        t.state = "STOPPED"
        log(f"task {t.id[:8]} ({t.revision}) failed to start: {reason}")
        emit("task_failed", reason=reason, exit_code=t.proc.returncode, **t.info())
        dep = self.deployment(t.deployment)
        if dep:
            self.update_deployment(t.deployment, failedTasks=dep.get("failedTasks", 0) + 1)
        self.sync_counts()
        self.event(f"has stopped 1 running tasks: (task {t.id}).")

    @staticmethod
    def stop_proc(proc: subprocess.Popen | None, grace: float) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def retire(self, tasks: list[Task], tg_arns: list[str]) -> None:
        """Takes tasks out as ECS does: drain for the deregistration delay, deregister, stop."""
        registered = [t for t in tasks if t.registered]
        if registered:
            for t in registered:
                s = f"{t.backend}/{t.slot}"
                self.hap(f"set weight {s} 0; set server {s} state drain")
                t.state = "DRAINING"
            self.event(f"has begun draining connections on {len(registered)} tasks.")
            delay = max(
                (
                    int(a["Value"])
                    for tg in tg_arns
                    for a in self.elbv2.describe_target_group_attributes(TargetGroupArn=tg)["Attributes"]
                    if a["Key"] == "deregistration_delay.timeout_seconds"
                ),
                default=0,
            )
            log(f"draining {len(registered)} task(s) for {delay} s (the target group's deregistration_delay)")
            emit("draining", delay_s=delay, tasks=[t.id for t in registered])
            time.sleep(delay)
            for tg in tg_arns:
                self.elbv2.deregister_targets(TargetGroupArn=tg, Targets=[t.target for t in registered])
            for t in registered:
                t.registered = False
                s = f"{t.backend}/{t.slot}"
                self.hap(f"shutdown sessions server {s}; set server {s} state maint")
            for tg in tg_arns:
                self.event(f"deregistered {len(registered)} targets in (target-group {tg})")
            emit("deregistered", tasks=[t.id for t in registered])
        for t in tasks:
            if t.proc.poll() is None:
                t.proc.terminate()
        for t in tasks:
            self.stop_proc(t.proc, t.stop_timeout)
            t.state = "STOPPED"
            emit("task_stopped", exit_code=t.proc.returncode, **t.info())
        self.sync_counts()
        self.event(f"has stopped {len(tasks)} running tasks: " + " ".join(f"(task {t.id})" for t in tasks) + ".")

    # --- the rollout ---------------------------------------------------------------------
    def rollout(self, dep_id: str) -> None:
        """Drives one deployment to COMPLETED (or FAILED); returns early if another takes over."""
        svc, dep = self.svc(), self.deployment(dep_id)
        if self.native and self.native.of(dep_id):
            return self.native.run(dep_id)
        backend = self.native.live if self.native else BACKEND
        tg_arns = [lb["targetGroupArn"] for lb in svc.load_balancers if lb.get("targetGroupArn")]
        if not self.scale_up(dep_id, backend, tg_arns, lambda: None, None):
            return
        others = [t for t in self.tasks if t.deployment != dep_id and t.state in ("PENDING", "RUNNING")]
        if others:
            self.retire(others, tg_arns)
        with self.lock:  # UpdateService (another thread) may have started a newer deployment
            if not self.is_primary(dep_id):
                return
        self.completed(dep_id)

    def completed(self, dep_id: str) -> None:
        """The deployment COMPLETED, the only one left (the old ones are gone)."""
        svc, dep = self.svc(), self.deployment(dep_id)
        with self.lock:
            svc.deployments = [
                {
                    **dep,
                    "rolloutState": "COMPLETED",
                    "rolloutStateReason": f"ECS deployment {dep_id} completed.",
                    "updatedAt": utcnow(),
                }
            ]
        self.sync_counts()
        self.last_completed = (dep_id, dep["taskDefinition"])
        self.event(f"(deployment {dep_id}) deployment completed.")
        self.event("has reached a steady state.")
        emit("deployment_completed", deployment=dep_id, revision=dep["taskDefinition"].rsplit("/", 1)[-1])

    def native_completed(self, dep_id: str) -> None:
        self.completed(dep_id)

    def native_rolled_back(self, dep_id: str, source_td: str | None) -> None:
        """ECS's rollback: the service back on the source revision, the green deployment gone."""
        with self.lock:
            svc = self.svc()
            rest = [d for d in svc.deployments if d["id"] != dep_id]
            if rest and not any(d["status"] == "PRIMARY" for d in rest):
                rest[0] = {**rest[0], "status": "PRIMARY", "updatedAt": utcnow()}
            svc.deployments = rest
            if source_td:
                svc.task_definition = source_td
        self.sync_counts()
        self.event(f"(deployment {dep_id}) rolled back to the previous service revision.")
        emit("deployment_rolled_back", deployment=dep_id)

    def green_fault_in_bake(self, dep_id: str) -> None:
        """--green-fault crash-in-bake: green's gateways die when the bake time begins."""
        if self.args.green_fault != "crash-in-bake":
            return
        for t in self.tasks:
            if t.deployment == dep_id and t.state == "RUNNING" and t.proc.poll() is None:
                t.proc.kill()
                log(f"green task {t.id[:8]} killed (--green-fault crash-in-bake)")
                emit("task_killed", **t.info())

    def scale_up(self, dep_id: str, backend: str, tg_arns: list[str], check, sd) -> bool:
        """Starts the deployment's tasks until all run; False when it failed or was superseded."""
        svc, dep = self.svc(), self.deployment(dep_id)
        td = self.ecs.describe_task_definition(taskDefinition=dep["taskDefinition"])["taskDefinition"]
        revision = f"{td['family']}:{td['revision']}"
        desired = dep["desiredCount"]
        breaker = (getattr(svc, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker", {})
        threshold = min(max(3, (desired + 1) // 2), 200)
        log(f"deployment {dep_id}: {desired} task(s) of {revision} into {backend}")
        while True:
            ours = [t for t in self.tasks if t.deployment == dep_id and t.state in ("PENDING", "RUNNING")]
            started = [self.start_task(dep_id, td, revision, backend) for _ in range(desired - len(ours))]
            if started:
                self.sync_counts()
                self.event(f"has started {len(started)} tasks: " + " ".join(f"(task {t.id})" for t in started) + ".")
            while pending := [t for t in self.tasks if t.deployment == dep_id and t.state == "PENDING"]:
                for t in pending:
                    self.poll_task(t, tg_arns)
                self.check_parent()
                check()
                if sd is None and not self.is_primary(dep_id):
                    log(f"deployment {dep_id} was superseded")
                    return False
                if sd is not None:
                    mine = [t for t in self.tasks if t.deployment == dep_id]
                    self.native.set(
                        sd,
                        running=sum(t.state == "RUNNING" for t in mine),
                        pending=sum(t.state == "PENDING" for t in mine),
                    )
                time.sleep(0.05)
            running = [t for t in self.tasks if t.deployment == dep_id and t.state == "RUNNING"]
            if sd is not None:
                self.native.set(sd, running=len(running), pending=0)
            if len(running) >= desired:
                return True
            if self.deployment(dep_id)["failedTasks"] >= threshold:
                if sd is not None:
                    raise strategies.Rollback("ECS deployment circuit breaker: tasks failed to start.")
                if breaker.get("enable"):
                    self.fail(dep_id, breaker)
                    return False
                time.sleep(1)  # without the circuit breaker ECS keeps trying, failedTasks climbing

    def fail(self, dep_id: str, breaker: dict) -> None:
        reason = "ECS deployment circuit breaker: tasks failed to start."
        self.update_deployment(dep_id, rolloutState="FAILED", rolloutStateReason=reason)
        self.event(f"(deployment {dep_id}) deployment failed: tasks failed to start.")
        emit("deployment_failed", deployment=dep_id, reason=reason)
        if breaker.get("rollback") and self.last_completed:
            back_id, back_td = self.last_completed
            with self.lock:
                self.new_deployment(self.svc(), back_td)
            self.event(f"rolling back to deployment {back_id}.")

    # --- main loop -----------------------------------------------------------------------
    def check_parent(self) -> None:
        if os.getppid() != self.parent:
            log("parent process gone")
            raise Stop()

    def ready_line(self) -> None:
        dep = self.primary()
        emit(
            "ready",
            moto=self.endpoint,
            url=self.url,
            pid=os.getpid(),
            haproxy_pid=self.haproxy.pid,
            stats_socket=str(self.sock_path),
            workdir=str(self.workdir),
            region=self.region,
            cluster=self.cluster,
            service=self.service,
            target_group_arn=self.tg_arn,
            deployment=dep["id"],
            revision=dep["taskDefinition"].rsplit("/", 1)[-1],
            tasks=[t.info() for t in self.tasks if t.state == "RUNNING"],
            **({"probe": self.probe_info} if self.probe_info else {}),
            **(
                {
                    "strategy": self.summary["strategy"],
                    "test_url": self.test_url,
                    "alternate_target_group_arn": self.summary["alternate_target_group_arn"],
                    "production_listener_rule": self.summary["production_listener_rule"],
                    "test_listener_rule": self.summary["test_listener_rule"],
                    "seconds_per_minute": strategies.seconds_per_minute(),
                }
                if self.native
                else {}
            ),
        )
        log(f"ready: moto {self.endpoint}, gateways behind {self.url}")

    def run(self) -> None:
        self.start_moto()
        self.start_haproxy()
        ready = False
        reported_dead: set[str] = set()
        while True:
            self.check_parent()
            dep = self.primary()
            if dep and dep.get("rolloutState") == "IN_PROGRESS":
                try:
                    self.rollout(dep["id"])
                except (Stop, KeyboardInterrupt):
                    raise
                except Exception:
                    log(f"rollout of {dep['id']} failed in the runner:\n{traceback.format_exc()}")
                    time.sleep(1)
                continue
            if not ready and dep:
                if dep.get("rolloutState") != "COMPLETED":
                    sys.exit(f"runner: the initial deployment ended {dep.get('rolloutState')}: {dep.get('rolloutStateReason')}")
                self.ready_line()
                ready = True
            for t in self.tasks:  # ECS would replace a task that dies; the runner only reports it
                if t.state == "RUNNING" and t.proc.poll() is not None and t.id not in reported_dead:
                    reported_dead.add(t.id)
                    log(f"task {t.id[:8]} exited on its own (code {t.proc.returncode}): {tail(t.err)}")
            self.wake.wait(0.1)
            self.wake.clear()

    def cleanup(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if self.probe:
            self.probe.cleanup()
        live = [t.proc for t in self.tasks if t.proc and t.proc.poll() is None]
        for p in live:
            p.terminate()
        deadline = time.monotonic() + 3
        for p in live:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.stop_proc(self.haproxy, 2)
        # moto's server thread is a daemon: it ends with this process.
        if not self.args.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        emit("stopped")


def target_state(task: Task, status: str) -> tuple[str, str | None, str | None]:
    """DescribeTargetHealth's (State, Reason, Description) for a task in a HAProxy slot."""
    if task.state == "DRAINING" or status.startswith(("DRAIN", "NOLB")):
        return "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
    if task.proc.poll() is not None or status.startswith("DOWN"):
        # A dead process is unhealthy at once (HAProxy needs 3 failed checks to notice).
        return "unhealthy", "Target.FailedHealthChecks", "Health checks failed"
    if status.startswith("UP") or status == "no check":
        return "healthy", None, None
    return "initial", "Elb.RegistrationInProgress", "Target registration is in progress"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="deploy.toml naming region, cluster, service, container")
    p.add_argument("--state", choices=("before", "after"), default="before", help="seed.py state (default before)")
    p.add_argument("--moto-port", type=int, default=0, help="moto's port on 127.0.0.1 (0: pick one)")
    p.add_argument("--front-port", type=int, default=0, help="HAProxy's port on 127.0.0.1 (0: pick one)")
    p.add_argument(
        "--jwt-secret-env",
        default="BOSAR_SANDBOX_JWT_SECRET",
        help="env var holding the gateways' JWT_SECRET (default %(default)s)",
    )
    p.add_argument("--task-start-timeout", type=float, default=30, help="seconds for a task to turn healthy")
    p.add_argument("--maxconn", type=int, default=2000, help="HAProxy maxconn (default %(default)s)")
    p.add_argument(
        "--strategy",
        choices=("blue_green", "canary", "linear"),
        help="seed an ECS-native service with this strategy and play ECS's stages (sandbox/strategies.py)",
    )
    p.add_argument("--test-port", type=int, default=0, help="the test listener's port (with --strategy; 0: pick one)")
    p.add_argument(
        "--green-fault",
        choices=("none", "jwt", "crash-in-bake"),
        default="none",
        help="jwt: every later revision's gateways get another JWT secret; crash-in-bake: they are killed when BAKE_TIME begins",
    )
    p.add_argument("--workdir", help="keep logs and configs here (default: a temp dir, removed at exit)")
    p.add_argument(
        "--probe-bin",
        help="seed the load probe's task definition and run its RunTask tasks as this bosar-deploy binary (sandbox/probe_tasks.py)",
    )
    args = p.parse_args(argv)

    def on_signal(signum, _frame):
        raise Stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    runner = None
    code = 0
    try:
        runner = Runner(args)
        runner.run()
    except Stop:
        log("stopping")
    except SystemExit as e:
        print(e.code if isinstance(e.code, str) else f"runner: exit {e.code}", file=sys.stderr)
        code = 1
    except Exception:
        log(f"failed:\n{traceback.format_exc()}")
        code = 1
    finally:
        if runner:
            runner.cleanup()
    return code


if __name__ == "__main__":
    sys.exit(main())
