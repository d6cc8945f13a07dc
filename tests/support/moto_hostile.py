#!/usr/bin/env python3
"""moto in this process, seeded (sandbox/seed.py), then given hostile ECS text through moto's
backend, which its API cannot set: for tests of what the tool prints of AWS's free text.

Usage: moto_hostile.py CONFIG INJECT_JSON
  CONFIG       deploy.toml naming the resources (seed.py reads it too)
  INJECT_JSON  a JSON string: the text put into every free-text field

After seeding:
  * the service runs a new revision whose container environment carries credentials:
    WEBSOCKET_AUTH_PASS=s3cr3t-pass, WEBSOCKET_REDIS_URL=redis://:hunter2@redis.internal:6379,
    WEBSOCKET_OLD_TOKEN=oldtok-123456, and passwords with `/`, `?`, `#` in URLs and a `_PW`
    name: WEBSOCKET_DB_URL, WEBSOCKET_MQ_URL, WEBSOCKET_DB_PW (RegisterTaskDefinition +
    UpdateService; each replaces the value seeding gave it);
  * the service has an event whose message is INJECT, and its deployment's
    rolloutStateReason is INJECT (moto's backend: the API cannot set them);
  * a task of the service was started and stopped with reason INJECT (RunTask + StopTask;
    moto 5.2.5's RunTask needs a patch for awsvpc tasks: NetworkInterface lacks
    private_dns_name);
  * a watcher thread fails every rollout to a new revision (moto's UpdateService changes the
    service's taskDefinition, not its deployment): deployments[0] gets rolloutState FAILED with
    rolloutStateReason INJECT and 2 failed tasks, an event names the deployment with INJECT,
    and a task of the new revision is stopped with reason INJECT.

Prints one line of JSON ({"endpoint": ...}) once ready; serves until stdin closes.
"""

import json
import os
import subprocess
import sys
import threading
import time
import datetime

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)

import boto3  # noqa: E402
from moto.backends import get_backend  # noqa: E402
from moto.ec2.models.elastic_network_interfaces import NetworkInterface  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

if not hasattr(NetworkInterface, "private_dns_name"):
    NetworkInterface.private_dns_name = property(lambda self: "ip-10-0-1-10.ec2.internal")

ACCOUNT, REGION = "123456789012", "us-east-1"


def main() -> None:
    config, inject = sys.argv[1], json.loads(sys.argv[2])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    here = os.path.dirname(os.path.abspath(__file__))
    seed_py = os.path.join(here, "..", "..", "sandbox", "seed.py")
    out = subprocess.run(
        [sys.executable, seed_py, "--endpoint", endpoint, "--config", config],
        capture_output=True,
        text=True,
        check=True,
    )
    seed = json.loads(out.stdout.strip().splitlines()[-1])
    ecs = boto3.client("ecs", endpoint_url=endpoint, region_name=REGION)
    cluster, service = "bosar-cluster", "bosar-api"

    td = ecs.describe_task_definition(taskDefinition=seed["task_definition_arn"])["taskDefinition"]
    keep = (
        "family taskRoleArn executionRoleArn networkMode containerDefinitions volumes "
        "requiresCompatibilities cpu memory runtimePlatform ephemeralStorage"
    ).split()
    spec = {k: td[k] for k in keep if k in td}
    for c in spec["containerDefinitions"]:
        if c["name"] == "bosar-api":
            hostile = {
                "WEBSOCKET_AUTH_PASS": "s3cr3t-pass",
                "WEBSOCKET_REDIS_URL": "redis://:hunter2@redis.internal:6379",
                "WEBSOCKET_OLD_TOKEN": "oldtok-123456",
                "WEBSOCKET_DB_URL": "postgres://app:old0pa/ss@db:5432/app",
                "WEBSOCKET_MQ_URL": "amqp://guest:old0gu#est@mq",
                "WEBSOCKET_DB_PW": "old0pw0value",
            }
            kept = [e for e in c.get("environment", []) if e["name"] not in hostile]
            c["environment"] = kept + [{"name": k, "value": v} for k, v in hostile.items()]
    arn = ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=cluster, service=service, taskDefinition=arn)

    backend = get_backend("ecs")[ACCOUNT][REGION]
    svc = next(s for s in backend.services.values() if s.name == service)
    now = datetime.datetime.now(datetime.timezone.utc)
    svc.events.insert(0, {"id": "evt-hostile-1", "createdAt": now, "message": inject})
    svc.deployments[0]["rolloutStateReason"] = inject

    network = {
        "awsvpcConfiguration": {
            "subnets": seed["subnet_ids"],
            "securityGroups": [seed["security_group_id"]],
        }
    }

    def stopped_task(task_definition: str) -> None:
        task = ecs.run_task(
            cluster=cluster,
            taskDefinition=task_definition,
            launchType="FARGATE",
            startedBy="ecs-svc/hostile",
            networkConfiguration=network,
        )["tasks"][0]
        ecs.stop_task(cluster=cluster, task=task["taskArn"], reason=inject)

    stopped_task(arn)

    def fail_new_deployments() -> None:
        n = 1
        current = svc.task_definition
        while True:
            time.sleep(0.2)
            if svc.task_definition == current:
                continue
            current = svc.task_definition
            d = svc.deployments[0]
            n += 1
            stopped_task(svc.task_definition)
            d["rolloutState"] = "FAILED"
            d["rolloutStateReason"] = inject
            d["failedTasks"] = 2
            when = datetime.datetime.now(datetime.timezone.utc)
            svc.events.insert(
                0,
                {
                    "id": f"evt-hostile-{n}",
                    "createdAt": when,
                    "message": f"(service {service}) (deployment {d['id']}) deployment failed: {inject}",
                },
            )

    threading.Thread(target=fail_new_deployments, daemon=True).start()
    print(json.dumps({"endpoint": endpoint}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
