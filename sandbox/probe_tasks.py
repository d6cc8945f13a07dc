"""RunTask of the load probe's task definition as real `bosar-deploy` processes.

With `runner.py --probe-bin PATH`, the runner seeds what `verify --on-ecs` needs and turns
the tasks RunTask starts of it into processes, as Fargate would run the image:

  * a Secrets Manager secret holding the gateways' JWT secret, and the task definition
    `bosar-probe` (FARGATE, awsvpc): container `probe` with that secret as a `secrets` entry
    named like --jwt-secret-env, logging with awslogs to /bosar/probe, prefix `probe`;
  * RunTask of `bosar-probe`: each task is `PATH` with the container override's command, its
    environment overrides, and the secrets resolved from Secrets Manager by `valueFrom` (the
    runner's own environment is not passed on); the process's stdout and stderr become the
    log stream `probe/probe/TASK_ID`, one event per line, as the awslogs driver writes them;
  * DescribeTasks says RUNNING while the process lives, then STOPPED with its exit code
    ("Essential container in task exited"); StopTask SIGTERMs it.

The ready line gains "probe": task definition, subnet, security group and log group.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
import threading
import time

from moto.ecs.models import EC2ContainerServiceBackend

FAMILY = "bosar-probe"
CONTAINER = "probe"
LOG_GROUP = "/bosar/probe"
PREFIX = "probe"


class ProbeTasks:
    def __init__(self, runner, binary: str):
        self.runner = runner
        self.binary = binary
        self.procs: dict[str, subprocess.Popen] = {}  # task id -> process
        self.stopped: dict[str, int] = {}  # task id -> exit code
        self.lock = threading.Lock()
        # setpriv --pdeathsig fires when the spawning *thread* ends: moto's request threads
        # are short-lived, so the processes are spawned from this one long-lived thread.
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe-spawner")

    def client(self, name: str):
        import boto3

        session = boto3.session.Session(region_name=self.runner.region)
        return session.client(name, endpoint_url=self.runner.endpoint)

    def seed(self) -> dict:
        sm, ecs, logs = self.client("secretsmanager"), self.client("ecs"), self.client("logs")
        secret = sm.create_secret(Name="bosar/probe-jwt", SecretString=self.runner.secret)["ARN"]
        td = ecs.register_task_definition(
            family=FAMILY,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": "bosar-deploy:sandbox",
                    "essential": True,
                    "cpu": 256,
                    "memory": 512,  # moto sums the containers' memory
                    "secrets": [{"name": self.runner.args.jwt_secret_env, "valueFrom": secret}],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {"awslogs-group": LOG_GROUP, "awslogs-stream-prefix": PREFIX},
                    },
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        logs.create_log_group(logGroupName=LOG_GROUP)
        return {
            "task_definition": td,
            "subnet": self.runner.summary["subnet_ids"][0],
            "security_group": self.runner.summary["security_group_id"],
            "log_group": LOG_GROUP,
        }

    def install(self) -> None:
        probe = self
        from moto.ec2.models.elastic_network_interfaces import NetworkInterface

        if not hasattr(NetworkInterface, "private_dns_name"):
            # moto 5's RunTask of an awsvpc task reads an attribute its ENI lacks.
            NetworkInterface.private_dns_name = property(
                lambda eni: f"ip-{eni.private_ip_address.replace('.', '-')}.ec2.internal"
            )
        orig_run = EC2ContainerServiceBackend.run_task
        orig_describe = EC2ContainerServiceBackend.describe_tasks
        orig_stop = EC2ContainerServiceBackend.stop_task

        def run_task(backend, cluster_str, task_definition_str, count, overrides, *rest, **kw):
            tasks = orig_run(backend, cluster_str, task_definition_str, count, overrides, *rest, **kw)
            td = backend.describe_task_definition(task_definition_str)
            if td.family == FAMILY:
                for t in tasks:
                    probe.start(t, td, overrides or {})
            return tasks

        def describe_tasks(backend, cluster_str, task_ids):
            tasks = orig_describe(backend, cluster_str, task_ids)
            for t in tasks:
                probe.settle(t)
            return tasks

        def stop_task(backend, cluster_str, task_str, reason):
            task_id = task_str.split("/")[-1]
            with probe.lock:
                proc = probe.procs.get(task_id)
            if proc and proc.poll() is None:
                proc.terminate()
            return orig_stop(backend, cluster_str, task_str, reason)

        EC2ContainerServiceBackend.run_task = run_task
        EC2ContainerServiceBackend.describe_tasks = describe_tasks
        EC2ContainerServiceBackend.stop_task = stop_task

    def environment(self, td, overrides: dict) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        cdef = next(c for c in td.container_definitions if c["name"] == CONTAINER)
        sm = self.client("secretsmanager")
        for s in cdef.get("secrets", []):
            env[s["name"]] = sm.get_secret_value(SecretId=s["valueFrom"])["SecretString"]
        for o in overrides.get("containerOverrides", []):
            if o.get("name") == CONTAINER:
                for kv in o.get("environment", []):
                    env[kv["name"]] = kv["value"]
        return env

    def start(self, task, td, overrides: dict) -> None:
        command = next(
            (o.get("command") for o in overrides.get("containerOverrides", []) if o.get("name") == CONTAINER),
            None,
        ) or ["--help"]
        proc = self.spawner.submit(
            subprocess.Popen,
            self.runner.wrap + [self.binary, *command],
            env=self.environment(td, overrides),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.runner.workdir,
        ).result()
        with self.lock:
            self.procs[task.id] = proc
        task.status = "RUNNING"
        self.runner.emit_event("probe_task_started", task=task.id, pid=proc.pid, command=command)
        threading.Thread(target=self.pump, args=(task, proc), daemon=True).start()

    def pump(self, task, proc: subprocess.Popen) -> None:
        """The process's output into its log stream, a line an event, then its exit code."""
        logs = self.client("logs")
        stream = f"{PREFIX}/{CONTAINER}/{task.id}"
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        batch: list[dict] = []

        def flush():
            if batch:
                logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=list(batch))
                batch.clear()

        # The awslogs driver ships lines within seconds, not only at the end: a running shard's
        # progress lines must be readable while it runs.
        flushed = time.monotonic()
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            batch.append({"timestamp": int(time.time() * 1000), "message": line or " "})
            if len(batch) >= 500 or time.monotonic() - flushed >= 1.0:
                flush()
                flushed = time.monotonic()
        flush()
        code = proc.wait()
        if code < 0:
            code = 128 - code  # killed by a signal: the exit code a container reports (137)
        with self.lock:
            self.stopped[task.id] = code
        self.runner.emit_event("probe_task_stopped", task=task.id, exit_code=code)

    def settle(self, task) -> None:
        """What DescribeTasks says of a probe task: its process's state, not moto's clock."""
        with self.lock:
            if task.id not in self.procs:
                return
            code = self.stopped.get(task.id)
        if code is None:
            task.status = "RUNNING"
            return
        task.status = "STOPPED"
        task.desired_status = "STOPPED"
        if not task.stopped_reason:
            task.stopped_reason = "Essential container in task exited"
        for c in task.containers:
            c.exitCode = code
            c.last_status = "STOPPED"

    def cleanup(self) -> None:
        with self.lock:
            live = [p for p in self.procs.values() if p.poll() is None]
        for p in live:
            p.terminate()
        for p in live:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
