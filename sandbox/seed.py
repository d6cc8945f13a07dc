#!/usr/bin/env python3
"""Seed a moto server with the AWS resources that bosar-deploy manages.

Usage (from the repository root, moto already running):

    .venv/bin/python sandbox/seed.py --endpoint http://127.0.0.1:PORT \
        --config sandbox/deploy.toml [--state before|after] \
        [--targets 10.0.1.10:3000,10.0.2.10:3000|none] [--no-reset]

Creates, in the config's [aws].region:
  * a VPC (10.0.0.0/16), two subnets in two AZs and a security group;
  * the ALB ([load_balancer].name, application, internet-facing) with an
    HTTP:80 listener forwarding to the target group;
  * the target group ([target_group].name, HTTP:3000, target type ip, health
    check /health/websocket) with the targets registered (moto reports them
    healthy; no traffic is ever sent to them); `--targets none` registers
    none (sandbox/runner.py registers the tasks it really runs);
  * a Secrets Manager secret for JWT_SECRET;
  * what the task definition names, so `deploy`'s preflight checks pass: the
    ECR repository of IMAGE with its tag pushed, the task and execution roles
    (trusting ecs-tasks.amazonaws.com) and the two awslogs log groups;
  * the ECS cluster, a Fargate task definition (family = [ecs].service) with
    the app container ([ecs].container) plus a `log-router` sidecar, and the
    ECS service (desired 2, awsvpc, wired to the target group).

--state before (default): what the tool finds before its first run.  Target
group attributes stay at moto's defaults (stickiness off, round_robin,
deregistration delay 300 s), the ALB idle timeout is 60 s, and the task
definition carries OLD WebSocket env values (WEBSOCKET_PING_INTERVAL=20000, no
WEBSOCKET_HEARTBEAT_INTERVAL).

--state after: what a successful `bosar-deploy` run leaves.  Target group
attributes and ALB idle timeout as in the config, and the service runs
revision 2 of the task definition whose env equals [ecs.environment]
(revision 1 with the old values still exists).

By default the server is wiped first (POST /moto-api/reset), so re-running is
safe.  Prints one line of JSON with the ARNs to stdout.

--strategy blue_green|canary|linear (or [ecs.deployment] strategy in the
config): an ECS-native service instead: a second (alternate) target group
"<name>-alt" with the same attributes, a production listener rule on HTTP:80
and a test listener (HTTP:8080) with a test listener rule, both forwarding to
the production target group, the service's loadBalancers[0].advancedConfiguration
naming them, and deploymentConfiguration.strategy with the config's bake
times (defaults: bake 1 minute, canary 20% baked 1 minute, linear 50% steps
baked 1 minute each).

Credentials/region: dummy values are forced (AWS_ACCESS_KEY_ID=testing, ...)
and every client gets --endpoint explicitly, so this never reaches real AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import tomllib
import urllib.error
import urllib.request
from urllib.parse import urlparse

# Never let boto3 look for real credentials or the instance metadata service.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)

import boto3  # noqa: E402  (after the env is pinned)
from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

ACCOUNT_ID = "123456789012"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bosar-api:1.4.0"
SIDECAR_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0"
CONTAINER_PORT = 3000
HEALTH_PATH = "/health/websocket"
DEFAULT_TARGETS = "10.0.1.10:3000,10.0.2.10:3000"

# What `put_image` stores for the image tag (a Docker v2 manifest; moto computes its digest).
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 1470,
        "digest": "sha256:" + "c" * 64,
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 3370706,
            "digest": "sha256:" + "a" * 64,
        }
    ],
}
# The trust policy ECS task and execution roles need.
ECS_TASKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

# The "before" environment: what production ran before the WebSocket fix.
# PING_INTERVAL is stale and HEARTBEAT_INTERVAL is missing; the tool has to
# change one key and add one.
OLD_ENVIRONMENT = {
    "NODE_ENV": "production",
    "PORT": "3000",
    "WEBSOCKET_PING_TIMEOUT": "60000",
    "WEBSOCKET_PING_INTERVAL": "20000",
}
# Keys of [ecs.environment] that the "before" state must NOT contain.
OLD_MISSING_KEYS = {"WEBSOCKET_HEARTBEAT_INTERVAL"}

# moto's target-group attribute defaults that seeding relies on (checked).
TG_DEFAULTS = {
    "stickiness.enabled": "false",
    "load_balancing.algorithm.type": "round_robin",
    "deregistration_delay.timeout_seconds": "300",
}

_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'24h' -> 86400, '30s' -> 30, '1h30m' -> 5400, '120' -> 120 (seconds)."""
    s = str(text).strip().replace(" ", "")
    if re.fullmatch(r"\d+", s):
        return int(s)
    parts = re.findall(r"(\d+)(ms|sec|min|s|m|h|d)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"cannot parse duration {text!r}")
    total = sum(int(n) * _UNITS[u] for n, u in parts)
    return int(round(total))


NATIVE_STRATEGIES = ("blue_green", "canary", "linear")


def native_configuration(strategy: str, d: dict) -> dict:
    """deploymentConfiguration members of an ECS-native strategy, from [ecs.deployment]."""

    def minutes(key: str, default: int) -> int:
        return parse_duration(d[key]) // 60 if key in d else default

    out: dict = {"strategy": strategy.upper(), "bakeTimeInMinutes": minutes("bake_time", 1)}
    if strategy.lower() == "canary":
        out["canaryConfiguration"] = {
            "canaryPercent": float(d.get("canary_percent", 20.0)),
            "canaryBakeTimeInMinutes": minutes("canary_bake_time", 1),
        }
    if strategy.lower() == "linear":
        out["linearConfiguration"] = {
            "stepPercent": float(d.get("step_percent", 50.0)),
            "stepBakeTimeInMinutes": minutes("step_bake_time", 1),
        }
    return out


def target_group_attributes(cfg: dict) -> list[dict[str, str]]:
    """The five attributes `alb-update` sets, computed from [target_group]."""
    tg = cfg.get("target_group", {})
    stickiness = tg.get("stickiness", "lb_cookie")
    attrs = {
        "stickiness.enabled": "true",
        "stickiness.type": stickiness,
        "load_balancing.algorithm.type": tg.get("algorithm", "least_outstanding_requests"),
        "deregistration_delay.timeout_seconds": str(
            parse_duration(tg.get("deregistration_delay", "30s"))
        ),
    }
    if stickiness == "lb_cookie":
        attrs["stickiness.lb_cookie.duration_seconds"] = str(
            parse_duration(tg.get("cookie_duration", "24h"))
        )
    return [{"Key": k, "Value": v} for k, v in attrs.items()]


def reset_moto(endpoint: str) -> None:
    req = urllib.request.Request(endpoint.rstrip("/") + "/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def check_endpoint(endpoint: str) -> None:
    u = urlparse(endpoint)
    if u.scheme not in ("http", "https") or not u.hostname:
        sys.exit(f"seed.py: bad --endpoint {endpoint!r} (want http://127.0.0.1:PORT)")
    if u.hostname not in ("127.0.0.1", "localhost", "::1") and not u.hostname.startswith("127."):
        sys.exit(f"seed.py: refusing non-loopback endpoint {endpoint!r}")
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/", timeout=10) as resp:
            resp.read(1)
    except (urllib.error.URLError, OSError) as e:
        sys.exit(f"seed.py: no moto server answering at {endpoint}: {e}")


def parse_targets(spec: str) -> list[dict]:
    if spec.strip().lower() == "none":
        return []
    out = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            sys.exit(f"seed.py: bad target {item!r} (want host:port)")
        out.append({"Id": host, "Port": int(port)})
    if not out:
        sys.exit("seed.py: --targets is empty")
    hosts = [t["Id"] for t in out]
    if len(set(hosts)) != len(hosts):
        # moto 5.2.5 keys registered targets by Id alone: the same IP on two
        # ports ends up as ONE target (the last port wins).
        print(
            "seed.py: warning: targets share a host; moto keeps only the last port per host",
            file=sys.stderr,
        )
    return out


def env_list(env: dict) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in env.items()]


def task_definition(cfg: dict, region: str, secret_arn: str, environment: dict) -> dict:
    ecs_cfg = cfg["ecs"]
    family = ecs_cfg["service"]
    container = ecs_cfg["container"]
    log_group = f"/ecs/{family}"
    return dict(
        family=family,
        taskRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{family}-task",
        executionRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{family}-task-execution",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        ephemeralStorage={"sizeInGiB": 21},
        volumes=[{"name": "tmp"}],
        containerDefinitions=[
            {
                "name": container,
                "image": IMAGE,
                "essential": True,
                "cpu": 448,
                "memoryReservation": 896,
                "portMappings": [
                    {
                        "name": "http",
                        "containerPort": CONTAINER_PORT,
                        "hostPort": CONTAINER_PORT,
                        "protocol": "tcp",
                        "appProtocol": "http",
                    }
                ],
                "environment": env_list(environment),
                "secrets": [
                    {"name": "JWT_SECRET", "valueFrom": secret_arn},
                ],
                "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],
                "healthCheck": {
                    "command": ["CMD-SHELL", f"wget -qO- http://localhost:{CONTAINER_PORT}{HEALTH_PATH} || exit 1"],
                    "interval": 30,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 20,
                },
                "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
                "stopTimeout": 30,
                "dependsOn": [{"containerName": "log-router", "condition": "START"}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": region,
                        "awslogs-stream-prefix": container,
                    },
                },
                "dockerLabels": {"app": "bosar", "component": "api"},
            },
            {
                "name": "log-router",
                "image": SIDECAR_IMAGE,
                "essential": False,
                "cpu": 64,
                "memoryReservation": 128,
                "environment": [{"name": "FLB_LOG_LEVEL", "value": "info"}],
                "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}},
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": f"{log_group}/log-router",
                        "awslogs-region": region,
                        "awslogs-stream-prefix": "log-router",
                    },
                },
            },
        ],
        tags=[
            {"key": "project", "value": "bosar"},
            {"key": "service", "value": family},
            {"key": "managed-by", "value": "bosar-deploy-sandbox"},
        ],
    )


def seed(args: argparse.Namespace) -> dict:
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    try:
        region = cfg.get("aws", {}).get("region", "us-east-1")
        lb_name = cfg["load_balancer"]["name"]
        tg_name = cfg["target_group"]["name"]
        cluster = cfg["ecs"]["cluster"]
        service = cfg["ecs"]["service"]
        container = cfg["ecs"]["container"]
        new_env = dict(cfg["ecs"].get("environment", {}))
    except KeyError as e:
        sys.exit(f"seed.py: {args.config}: missing key {e}")
    targets = parse_targets(args.targets)

    os.environ["AWS_DEFAULT_REGION"] = region
    session = boto3.session.Session(region_name=region)
    bcfg = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)

    def client(name):
        return session.client(name, endpoint_url=args.endpoint, config=bcfg)

    ec2, elbv2, ecs, sm = client("ec2"), client("elbv2"), client("ecs"), client("secretsmanager")

    # --- network ------------------------------------------------------------
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = []
    for i, az in enumerate((f"{region}a", f"{region}b"), start=1):
        sn = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)
        subnet_ids.append(sn["Subnet"]["SubnetId"])
    sg_id = ec2.create_security_group(
        GroupName=f"{service}-sg", Description="bosar sandbox", VpcId=vpc_id
    )["GroupId"]

    # --- load balancer, target group, listener, targets -----------------------
    lb = elbv2.create_load_balancer(
        Name=lb_name,
        Subnets=subnet_ids,
        SecurityGroups=[sg_id],
        Scheme="internet-facing",
        Type="application",
        IpAddressType="ipv4",
        Tags=[{"Key": "project", "Value": "bosar"}],
    )["LoadBalancers"][0]
    lb_arn = lb["LoadBalancerArn"]

    tg = elbv2.create_target_group(
        Name=tg_name,
        Protocol="HTTP",
        ProtocolVersion="HTTP1",
        Port=CONTAINER_PORT,
        VpcId=vpc_id,
        TargetType="ip",
        HealthCheckEnabled=True,
        HealthCheckProtocol="HTTP",
        HealthCheckPath=HEALTH_PATH,
        HealthCheckIntervalSeconds=15,
        HealthCheckTimeoutSeconds=5,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=3,
        Matcher={"HttpCode": "200"},
        Tags=[{"Key": "project", "Value": "bosar"}],
    )["TargetGroups"][0]
    tg_arn = tg["TargetGroupArn"]

    listener_arn = elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )["Listeners"][0]["ListenerArn"]
    strategy = (getattr(args, "strategy", None) or cfg["ecs"].get("deployment", {}).get("strategy") or "rolling")
    native = strategy.lower() in NATIVE_STRATEGIES
    alt_tg_arn = production_rule = test_rule = test_listener_arn = None
    if native:
        alt_tg_arn = elbv2.create_target_group(
            Name=f"{tg_name}-alt"[:32],
            Protocol="HTTP",
            ProtocolVersion="HTTP1",
            Port=CONTAINER_PORT,
            VpcId=vpc_id,
            TargetType="ip",
            HealthCheckEnabled=True,
            HealthCheckProtocol="HTTP",
            HealthCheckPath=HEALTH_PATH,
            HealthCheckIntervalSeconds=15,
            HealthCheckTimeoutSeconds=5,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            Matcher={"HttpCode": "200"},
            Tags=[{"Key": "project", "Value": "bosar"}],
        )["TargetGroups"][0]["TargetGroupArn"]
        # Target group stickiness on: during canary and linear steps a long-polling Socket.IO
        # session stays in one group (the runner's HAProxy models it from the AWSALB cookie).
        forward = [
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": tg_arn, "Weight": 100}],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 3600},
                },
            }
        ]
        production_rule = elbv2.create_rule(
            ListenerArn=listener_arn,
            Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
            Actions=forward,
        )["Rules"][0]["RuleArn"]
        test_listener_arn = elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=8080,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )["Listeners"][0]["ListenerArn"]
        test_rule = elbv2.create_rule(
            ListenerArn=test_listener_arn,
            Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
            Actions=forward,
        )["Rules"][0]["RuleArn"]

    if targets:
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=targets)

    if args.state == "before":
        idle_timeout = 60
        current = {
            a["Key"]: a["Value"]
            for a in elbv2.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
        }
        drift = {k: current.get(k) for k, v in TG_DEFAULTS.items() if current.get(k) != v}
        if drift:
            # moto changed its defaults: pin the "before" values explicitly.
            elbv2.modify_target_group_attributes(
                TargetGroupArn=tg_arn,
                Attributes=[{"Key": k, "Value": v} for k, v in TG_DEFAULTS.items()],
            )
    else:
        idle_timeout = parse_duration(cfg["load_balancer"].get("idle_timeout", "60s"))
        elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=target_group_attributes(cfg))
    if alt_tg_arn:
        # The alternate target group as an operator set it up beside the production one: the
        # config's attributes in either state (a 300 s deregistration delay would make every
        # sandbox rollback drain green for five minutes while `alb-update` manages only
        # [target_group] name; issue 18 item 2 makes it manage both).
        elbv2.modify_target_group_attributes(TargetGroupArn=alt_tg_arn, Attributes=target_group_attributes(cfg))
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=lb_arn,
        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": str(idle_timeout)}],
    )

    # --- secret -----------------------------------------------------------------
    secret_arn = sm.create_secret(
        Name=f"{service}/jwt-secret",
        SecretString="sandbox-only-not-a-real-secret",
        Description="JWT signing secret for the bosar sandbox",
    )["ARN"]

    # --- what the task definition names: image, roles, log groups ------------------
    ecr, iam, logs = client("ecr"), client("iam"), client("logs")
    repository, _, image_tag = IMAGE.split("/", 1)[1].partition(":")
    ecr.create_repository(repositoryName=repository)
    ecr.put_image(
        repositoryName=repository, imageManifest=json.dumps(MANIFEST), imageTag=image_tag
    )
    roles = [f"{service}-task", f"{service}-task-execution"] + ([f"{service}-ecs-load-balancers"] if native else [])
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST))
    log_groups = [f"/ecs/{service}", f"/ecs/{service}/log-router"]
    for group in log_groups:
        logs.create_log_group(logGroupName=group)

    # --- ECS ----------------------------------------------------------------------
    cluster_arn = ecs.create_cluster(
        clusterName=cluster,
        capacityProviders=["FARGATE"],
        settings=[{"name": "containerInsights", "value": "enabled"}],
        tags=[{"key": "project", "value": "bosar"}],
    )["cluster"]["clusterArn"]

    old_env = dict(OLD_ENVIRONMENT)
    for k, v in new_env.items():
        if k in OLD_MISSING_KEYS or k in old_env:
            continue
        old_env[k] = v  # unrelated keys: same as the config
    for k in OLD_MISSING_KEYS:
        old_env.pop(k, None)

    td_old = ecs.register_task_definition(**task_definition(cfg, region, secret_arn, old_env))
    td_arn = td_old["taskDefinition"]["taskDefinitionArn"]
    td_new_arn = None
    if args.state == "after":
        after_env = dict(old_env)
        after_env.update({k: str(v) for k, v in new_env.items()})
        td_new = ecs.register_task_definition(**task_definition(cfg, region, secret_arn, after_env))
        td_new_arn = td_new["taskDefinition"]["taskDefinitionArn"]

    deployment_configuration = {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    load_balancers = [{"targetGroupArn": tg_arn, "containerName": container, "containerPort": CONTAINER_PORT}]
    if native:
        deployment_configuration.update(native_configuration(strategy, cfg["ecs"].get("deployment", {})))
        account = cluster_arn.split(":")[4]
        load_balancers[0]["advancedConfiguration"] = {
            "alternateTargetGroupArn": alt_tg_arn,
            "productionListenerRule": production_rule,
            "testListenerRule": test_rule,
            "roleArn": f"arn:aws:iam::{account}:role/{service}-ecs-load-balancers",
        }
    svc = ecs.create_service(
        cluster=cluster,
        serviceName=service,
        # "after": the rollout to revision 2 has completed. (Creating on it
        # rather than UpdateService keeps deployments[0].taskDefinition right:
        # moto's UpdateService only changes service.taskDefinition.)
        taskDefinition=td_new_arn or td_arn,
        desiredCount=2,
        launchType="FARGATE",
        platformVersion="LATEST",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": subnet_ids,
                "securityGroups": [sg_id],
                "assignPublicIp": "DISABLED",
            }
        },
        loadBalancers=load_balancers,
        healthCheckGracePeriodSeconds=60,
        deploymentConfiguration=deployment_configuration,
        deploymentController={"type": "ECS"},
        schedulingStrategy="REPLICA",
        enableECSManagedTags=True,
        propagateTags="SERVICE",
        tags=[{"key": "project", "value": "bosar"}],
    )["service"]
    service_arn = svc["serviceArn"]

    # moto 5.2.5 drops deploymentConfiguration and healthCheckGracePeriodSeconds
    # on CreateService but keeps them on UpdateService. An UpdateService
    # without taskDefinition starts no new deployment, so this only makes the
    # service look like the real one (circuit breaker with rollback on).
    ecs.update_service(
        cluster=cluster,
        service=service,
        deploymentConfiguration=deployment_configuration,
        loadBalancers=load_balancers,
        healthCheckGracePeriodSeconds=60,
    )

    return {
        "state": args.state,
        "region": region,
        "vpc_id": vpc_id,
        "subnet_ids": subnet_ids,
        "security_group_id": sg_id,
        "load_balancer_arn": lb_arn,
        "load_balancer_dns": lb.get("DNSName"),
        "listener_arn": listener_arn,
        "target_group_arn": tg_arn,
        "alternate_target_group_arn": alt_tg_arn,
        "production_listener_rule": production_rule,
        "test_listener_rule": test_rule,
        "test_listener_arn": test_listener_arn,
        "strategy": strategy.upper() if native else "ROLLING",
        "targets": [f"{t['Id']}:{t['Port']}" for t in targets],
        "secret_arn": secret_arn,
        "ecr_repository": repository,
        "roles": roles,
        "log_groups": log_groups,
        "cluster_arn": cluster_arn,
        "service_arn": service_arn,
        "task_definition_arn": td_new_arn or td_arn,
        "task_definition_arns": [a for a in (td_arn, td_new_arn) if a],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True, help="moto URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--config", required=True, help="deploy.toml to read names/region from")
    p.add_argument("--state", choices=("before", "after"), default="before")
    p.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help="host:port,host:port or none (default %(default)s)",
    )
    p.add_argument("--strategy", choices=NATIVE_STRATEGIES, help="seed an ECS-native service (see above)")
    p.add_argument(
        "--reset",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wipe moto (POST /moto-api/reset) before seeding (default on)",
    )
    args = p.parse_args(argv)

    check_endpoint(args.endpoint)
    t0 = time.perf_counter()
    if args.reset:
        reset_moto(args.endpoint)
    try:
        summary = seed(args)
    except (ClientError, BotoCoreError) as e:  # one clear line, not a traceback wall
        hint = "" if args.reset else " (hint: drop --no-reset)"
        sys.exit(f"seed.py: {type(e).__name__}: {e}{hint}")
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
