"""ECS-native deployments (BLUE_GREEN, CANARY, LINEAR) played by the sandbox task runner.

moto 5.2.5 implements none of ListServiceDeployments, DescribeServiceDeployments,
ContinueServiceDeployment and StopServiceDeployment, and moves no deployment through a stage.
`Native` adds the four operations to moto's ECS response class (moto dispatches a JSON-protocol
operation by its X-Amz-Target name to the snake_case method of that class) and answers them
with the API model's shapes; `Native.run` plays ECS's part for one deployment, in the stage
order AWS documents:

  RECONCILE_SERVICE, PRE_SCALE_UP, SCALE_UP (green tasks beside blue, registered in the other
  target group), POST_SCALE_UP, TEST_TRAFFIC_SHIFT (the test frontend to green),
  POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (blue/green:
  all at once; canary: the canary percent, its bake time, then the rest; linear: equal steps,
  a bake time after each), POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP (blue drained for
  its target group's deregistration delay, deregistered, SIGTERM).

PAUSE hooks wait for ContinueServiceDeployment or their timeout's action; StopServiceDeployment
ROLLBACK (any stage before CLEAN_UP) shifts both frontends back to blue and retires green.

Traffic is HAProxy's (haproxy_config below): one backend per target group (`tg_a`, the
service's targetGroupArn, and `tg_b`, advancedConfiguration.alternateTargetGroupArn), a
production frontend that picks a backend by weight (a runtime map) and keeps a client on the
target group its AWSALB cookie names while that group has weight (target group stickiness),
and a test frontend that forwards to one backend (another map). Minutes are scaled by
BOSAR_SANDBOX_SECONDS_PER_MINUTE (default 60): bake times and hook timeouts of a sandbox run
take seconds. docs/sandbox.md lists what this file guesses about AWS.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
import uuid

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.responses import EC2ContainerServiceResponse

NATIVE = ("BLUE_GREEN", "CANARY", "LINEAR")
BACKENDS = ("tg_a", "tg_b")
SLOTS = {"tg_a": [f"a{i}" for i in range(1, 9)], "tg_b": [f"b{i}" for i in range(1, 9)]}
# Same opaque prefix as tests/support/haproxy/runner.cfg.tmpl: AWSALB = prefix + base64(slot).
COOKIE_PREFIX = "hK3pV9qZ+tW2mN8xR4yB7cL1dF6gJ0sA/eU5iO3nQ9wT2vX8zY4bC7kM1pD6rH0a"
PAUSE_FORBIDDEN = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
FINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")


def seconds_per_minute() -> float:
    try:
        return max(0.0, float(os.environ.get("BOSAR_SANDBOX_SECONDS_PER_MINUTE", "60")))
    except ValueError:
        return 60.0


class NotFound(ServiceException):
    code = "ServiceDeploymentNotFoundException"


class Invalid(ServiceException):
    code = "InvalidParameterException"


class Conflict(ServiceException):
    code = "ConflictException"


class Rollback(Exception):
    """Raised inside the stage machine: roll back, with this reason."""


class Superseded(Exception):
    """A newer deployment of the service took over: ours is STOPPED."""


def cookie(slot: str) -> str:
    return COOKIE_PREFIX + base64.b64encode(slot.encode()).decode()


def haproxy_config(front: int, test: int, sock: str, maxconn: int, maps: dict[str, str]) -> str:
    """HAProxy's configuration for a service with two target groups (see the module doc)."""
    out = [
        "global",
        f"    maxconn {maxconn}",
        f"    stats socket {sock} mode 600 level admin",
        "defaults",
        "    mode http",
        f"    maxconn {maxconn}",
        "    option redispatch",
        "    retries 2",
        "    timeout connect 5s",
        "    timeout client 120s",
        "    timeout server 120s",
        "    timeout tunnel 3600s",
        "    timeout client-fin 5s",
        "    timeout http-request 30s",
        "    timeout http-keep-alive 60s",
        "    timeout queue 30s",
        "    timeout check 2s",
    ]
    sticky = []
    for be in BACKENDS:
        values = " ".join(cookie(s) for s in SLOTS[be])
        sticky.append(f"    acl {be}_cookie var(txn.reqc) -m str {values}")
    out += [
        # Production listener rule: weighted forward to both target groups, with target
        # group stickiness (a cookie naming a slot of a group keeps the client there while
        # the group has weight).
        "frontend production",
        f"    bind 127.0.0.1:{front}",
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto http",
        "    http-request set-var(txn.reqc) req.cook(AWSALB)",
        "    http-request set-var(txn.reqc) req.cook(AWSALBCORS) if !{ req.cook(AWSALB) -m found }",
        f"    http-request set-var(txn.wa) str(tg_a),map_str_int({maps['production']},100)",
        "    http-request set-var(txn.wb) int(100),sub(txn.wa)",
        "    http-request set-var(txn.pick) rand(100),sub(txn.wa)",
        *sticky,
        "    use_backend tg_a if tg_a_cookie { var(txn.wa) -m int gt 0 }",
        "    use_backend tg_b if tg_b_cookie { var(txn.wb) -m int gt 0 }",
        "    use_backend tg_a if { var(txn.pick) -m int lt 0 }",
        "    default_backend tg_b",
        # Test listener rule: forwards to one target group.
        "frontend test",
        f"    bind 127.0.0.1:{test}",
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto http",
        f"    use_backend %[str(test),map({maps['test']},tg_a)]",
    ]
    for be in BACKENDS:
        out += [
            f"backend {be}",
            "    balance leastconn",
            "    option httpchk GET /health/websocket",
            "    http-check expect status 200",
            "    default-server check inter 1s fall 3 rise 2",
            "    http-request set-var(txn.reqc) req.cook(AWSALB)",
            "    http-request set-var(txn.reqc) req.cook(AWSALBCORS) if !{ req.cook(AWSALB) -m found }",
        ]
        for s in SLOTS[be]:
            out.append(
                f"    use-server {s} if {{ var(txn.reqc) -m str {cookie(s)} }} {{ srv_weight({be}/{s}) gt 0 }}"
            )
        out += [f"    server {s} 127.0.0.1:1 disabled" for s in SLOTS[be]]
        out += [
            "    http-response set-var(txn.slot64) srv_name,base64",
            f"    http-response set-var(txn.albv) str({COOKIE_PREFIX}),concat(,txn.slot64,) if {{ var(txn.slot64) -m found }}",
            "    http-response set-var(txn.expires) date(604800),http_date",
            '    http-response add-header Set-Cookie "AWSALB=%[var(txn.albv)]; Expires=%[var(txn.expires)]; Path=/" if { var(txn.albv) -m found }',
            '    http-response add-header Set-Cookie "AWSALBCORS=%[var(txn.albv)]; Expires=%[var(txn.expires)]; Path=/; SameSite=None; Secure" if { var(txn.albv) -m found }',
        ]
    return "\n".join(out) + "\n"


class ServiceDeployment:
    """One service deployment as DescribeServiceDeployments shows it."""

    def __init__(self, runner, svc, dep_id: str, source_td: str | None, target_td: str):
        self.dep_id = dep_id
        number = dep_id.rsplit("/", 1)[-1]
        account = svc.cluster_arn.split(":")[4]
        base = f"arn:aws:ecs:{runner.region}:{account}"
        self.arn = f"{base}:service-deployment/{svc.cluster_name}/{svc.name}/{number}"
        self.service_arn = svc.arn
        self.cluster_arn = svc.cluster_arn
        self.created = utcnow()
        self.started = None
        self.finished = None
        self.stopped = None
        self.updated = self.created
        self.status = "PENDING"
        self.reason: str | None = None
        self.stage: str | None = None
        self.hooks: list[dict] = []  # lifecycleHookDetails, current stage only
        self.answers: dict[str, str] = {}  # hookId -> CONTINUE | ROLLBACK
        self.stop: str | None = None  # a StopServiceDeployment stopType
        self.rollback: dict | None = None
        self.config = dict(getattr(svc, "deployment_configuration", None) or {})
        self.td = target_td
        self.source_td = source_td
        self.target_rev = f"{base}:service-revision/{svc.cluster_name}/{svc.name}/{random.randrange(10**18, 10**19)}"
        self.source_rev = f"{base}:service-revision/{svc.cluster_name}/{svc.name}/{random.randrange(10**18, 10**19)}"
        self.desired = svc.desired_count
        self.running = 0
        self.pending = 0
        self.source_running = 0
        self.test_weight = 0.0
        self.production_weight = 0.0

    def brief(self) -> dict:
        return {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster_arn,
            "startedAt": self.started,
            "createdAt": self.created,
            "finishedAt": self.finished,
            "targetServiceRevisionArn": self.target_rev,
            "status": self.status,
            "statusReason": self.reason,
        }

    def shape(self) -> dict:
        strategy = self.config.get("strategy", "ROLLING")
        d = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service_arn,
            "clusterArn": self.cluster_arn,
            "createdAt": self.created,
            "startedAt": self.started,
            "finishedAt": self.finished,
            "stoppedAt": self.stopped,
            "updatedAt": self.updated,
            "sourceServiceRevisions": [
                {
                    "arn": self.source_rev,
                    "requestedTaskCount": self.desired,
                    "runningTaskCount": self.source_running,
                    "pendingTaskCount": 0,
                }
            ]
            if self.source_td
            else [],
            "targetServiceRevision": {
                "arn": self.target_rev,
                "requestedTaskCount": self.desired,
                "runningTaskCount": self.running,
                "pendingTaskCount": self.pending,
                "requestedTestTrafficWeight": self.test_weight,
                "requestedProductionTrafficWeight": self.production_weight,
            },
            "status": self.status,
            "statusReason": self.reason,
            "lifecycleStage": self.stage,
            "lifecycleHookDetails": [dict(h) for h in self.hooks],
            "deploymentConfiguration": {**self.config, "strategy": strategy},
            "rollback": self.rollback,
        }
        return {k: v for k, v in d.items() if v is not None}


class Native:
    """The ECS-native deployment machinery of one runner (see the module doc)."""

    def __init__(self, runner):
        self.runner = runner
        self.cond = threading.Condition(runner.lock)
        self.deployments: list[ServiceDeployment] = []  # oldest first
        self.live = "tg_a"  # the backend the production listener rule forwards to
        self.maps = {
            "production": str(runner.workdir / "production.map"),
            "test": str(runner.workdir / "test.map"),
        }
        self.tg_of: dict[str, str] = {}  # backend -> target group ARN

    # --- setup -----------------------------------------------------------------------------
    def write_maps(self) -> None:
        with open(self.maps["production"], "w") as f:
            f.write("tg_a 100\n")
        with open(self.maps["test"], "w") as f:
            f.write("test tg_a\n")

    def bind(self, svc) -> None:
        """The two target groups and the listener rules, from the service's loadBalancers."""
        lb = next((lb for lb in svc.load_balancers if lb.get("advancedConfiguration")), None)
        if lb is None:
            raise RuntimeError("the service has no loadBalancers[].advancedConfiguration: no second target group")
        adv = lb["advancedConfiguration"]
        self.tg_of = {"tg_a": lb["targetGroupArn"], "tg_b": adv["alternateTargetGroupArn"]}
        self.rules = {"production": adv.get("productionListenerRule"), "test": adv.get("testListenerRule")}

    @staticmethod
    def strategy_of(svc) -> str:
        return (getattr(svc, "deployment_configuration", None) or {}).get("strategy") or "ROLLING"

    def is_native(self, svc) -> bool:
        return self.strategy_of(svc) in NATIVE

    def on_new_deployment(self, svc, dep_id: str, source_td: str | None, target_td: str) -> None:
        """Called under the runner's lock when UpdateService starts a deployment."""
        sd = ServiceDeployment(self.runner, svc, dep_id, source_td, target_td)
        for other in self.deployments:
            if other.status in ("PENDING", "IN_PROGRESS"):
                other.stop = other.stop or "SUPERSEDED"
        self.deployments.append(sd)
        self.cond.notify_all()

    def find(self, arn: str) -> ServiceDeployment | None:
        return next((d for d in self.deployments if d.arn == arn), None)

    def of(self, dep_id: str) -> ServiceDeployment | None:
        return next((d for d in self.deployments if d.dep_id == dep_id), None)

    # --- the API ---------------------------------------------------------------------------
    def install(self) -> None:
        native = self

        def list_service_deployments(resp) -> ActionResult:
            cluster = resp._get_param("cluster") or "default"
            service = resp._get_param("service") or ""
            statuses = resp._get_param("status") or []
            created = resp._get_param("createdAt") or {}
            try:
                max_results = int(resp._get_param("maxResults") or 20)
            except (TypeError, ValueError):
                raise Invalid("maxResults must be an integer")
            if not 1 <= max_results <= 100:
                raise Invalid("maxResults must be between 1 and 100")
            svc = resp.ecs_backend._get_service(cluster, service)  # raises Cluster/ServiceNotFound
            with native.cond:
                mine = [d for d in reversed(native.deployments) if d.service_arn == svc.arn]
                mine = [d for d in mine if not statuses or d.status in statuses]
                if created.get("after"):
                    mine = [d for d in mine if d.created.timestamp() >= _ts(created["after"])]
                if created.get("before"):
                    mine = [d for d in mine if d.created.timestamp() <= _ts(created["before"])]
                start = int(resp._get_param("nextToken") or 0)
                page = mine[start : start + max_results]
                token = str(start + max_results) if start + max_results < len(mine) else None
                out = {"serviceDeployments": [d.brief() for d in page]}
            if token:
                out["nextToken"] = token
            return ActionResult(out)

        def describe_service_deployments(resp) -> ActionResult:
            arns = resp._get_param("serviceDeploymentArns") or []
            if not arns:
                raise Invalid("serviceDeploymentArns must name at least one service deployment")
            if len(arns) > 20:
                raise Invalid("serviceDeploymentArns names at most 20 service deployments")
            found, failures = [], []
            with native.cond:
                for arn in arns:
                    d = native.find(arn)
                    if d:
                        found.append(d.shape())
                    else:
                        failures.append({"arn": arn, "reason": "MISSING"})
            return ActionResult({"serviceDeployments": found, "failures": failures})

        def continue_service_deployment(resp) -> ActionResult:
            arn = resp._get_param("serviceDeploymentArn")
            hook_id = resp._get_param("hookId")
            action = resp._get_param("action") or "CONTINUE"
            with native.cond:
                d = native.find(arn)
                if d is None:
                    raise NotFound(f"Service deployment {arn} not found.")
                hook = next((h for h in d.hooks if h["hookId"] == hook_id), None)
                if hook is None or hook["status"] != "AWAITING_ACTION":
                    raise Invalid(f"The lifecycle hook {hook_id} is not awaiting an action.")
                d.answers[hook_id] = action
                native.cond.notify_all()
            native.runner.emit_event("hook_answered", arn=arn, hook=hook_id, action=action)
            return ActionResult({"serviceDeploymentArn": arn})

        def stop_service_deployment(resp) -> ActionResult:
            arn = resp._get_param("serviceDeploymentArn")
            stop_type = resp._get_param("stopType") or "ROLLBACK"
            with native.cond:
                d = native.find(arn)
                if d is None:
                    raise NotFound(f"Service deployment {arn} not found.")
                if d.status not in ("PENDING", "IN_PROGRESS") or d.stage == "CLEAN_UP":
                    raise Conflict(f"The service deployment is {d.status} at {d.stage}: it cannot be stopped.")
                d.stop = stop_type
                d.status = "ROLLBACK_REQUESTED" if stop_type == "ROLLBACK" else "STOP_REQUESTED"
                d.updated = utcnow()
                native.cond.notify_all()
            native.runner.emit_event("stop_requested", arn=arn, stop_type=stop_type)
            return ActionResult({"serviceDeploymentArn": arn})

        orig_create = EC2ContainerServiceResponse.create_service

        def create_service(resp):
            # moto drops deploymentConfiguration (strategy, hooks) on CreateService; ECS keeps it.
            result = orig_create(resp)
            conf = resp._get_param("deploymentConfiguration")
            lbs = resp._get_param("loadBalancers")
            svc = result.result.get("service") if isinstance(getattr(result, "result", None), dict) else None
            if svc is not None:
                if conf:
                    svc.deployment_configuration = conf
                if lbs:
                    svc.load_balancers = lbs
            return result

        for name, fn in (
            ("list_service_deployments", list_service_deployments),
            ("describe_service_deployments", describe_service_deployments),
            ("continue_service_deployment", continue_service_deployment),
            ("stop_service_deployment", stop_service_deployment),
            ("create_service", create_service),
        ):
            setattr(EC2ContainerServiceResponse, name, fn)

    # --- traffic ---------------------------------------------------------------------------
    def production(self, green: str, percent: float, sd: ServiceDeployment | None) -> None:
        """Green gets `percent` of new production connections (ECS's weighted forward)."""
        blue = "tg_b" if green == "tg_a" else "tg_a"
        weights = {green: percent, blue: 100 - percent}
        self.runner.hap(f"set map {self.maps['production']} tg_a {int(round(weights['tg_a']))}")
        if sd:
            sd.production_weight = float(percent)
        self.modify_rule("production", weights)
        self.runner.emit_event("traffic", listener="production", weights=weights)

    def test_to(self, backend: str, sd: ServiceDeployment | None) -> None:
        self.runner.hap(f"set map {self.maps['test']} test {backend}")
        if sd:
            sd.test_weight = 100.0 if backend != self.live else 0.0
        self.modify_rule("test", {backend: 100})
        self.runner.emit_event("traffic", listener="test", weights={backend: 100})

    def modify_rule(self, which: str, weights: dict[str, float]) -> None:
        """The listener rule in moto, as ECS rewrites it: a forward to both target groups."""
        rule = self.rules.get(which)
        if not rule:
            return
        groups = [
            {"TargetGroupArn": self.tg_of[be], "Weight": int(round(w))}
            for be, w in sorted(weights.items())
        ]
        try:
            self.runner.elbv2.modify_rule(
                RuleArn=rule,
                Actions=[
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": groups,
                            "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 3600},
                        },
                    }
                ],
            )
        except Exception as e:  # noqa: BLE001  the HAProxy side is what carries traffic
            self.runner.log(f"ModifyRule {which}: {e}")

    # --- the stage machine -----------------------------------------------------------------
    def scaled(self, minutes) -> float:
        return float(minutes or 0) * seconds_per_minute()

    def set(self, sd: ServiceDeployment, **changes) -> None:
        with self.cond:
            for k, v in changes.items():
                setattr(sd, k, v)
            sd.updated = utcnow()

    def enter(self, sd: ServiceDeployment, stage: str) -> None:
        self.set(sd, stage=stage, hooks=[])
        self.runner.emit_event("stage", arn=sd.arn, stage=stage)
        self.runner.log(f"service deployment {sd.arn.rsplit('/', 1)[-1]}: {stage}")

    def check(self, sd: ServiceDeployment) -> None:
        """Raises when a stop was asked for (or a newer deployment took over)."""
        self.runner.check_parent()
        if sd.stop == "SUPERSEDED":
            raise Superseded()
        if sd.stop:
            raise Rollback(
                "StopServiceDeployment ROLLBACK" if sd.stop == "ROLLBACK" else f"StopServiceDeployment {sd.stop}"
            )

    def wait(self, sd: ServiceDeployment, seconds: float) -> None:
        """Bake time: `seconds` unless a stop comes first."""
        deadline = time.monotonic() + seconds
        while True:
            self.check(sd)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with self.cond:
                self.cond.wait(min(left, 0.1))

    def hooks_at(self, sd: ServiceDeployment, stage: str) -> None:
        """Runs the stage's lifecycle hooks: PAUSE waits, AWS_LAMBDA succeeds (guessed)."""
        self.check(sd)
        hooks = [h for h in sd.config.get("lifecycleHooks") or [] if stage in (h.get("lifecycleStages") or [])]
        for h in hooks:
            kind = h.get("targetType") or "AWS_LAMBDA"
            timeout = h.get("timeoutConfiguration") or {}
            minutes = timeout.get("timeoutInMinutes") or 60
            action = timeout.get("action") or "ROLLBACK"
            hook_id = uuid.uuid4().hex
            expires = time.time() + self.scaled(minutes)
            from datetime import datetime, timezone

            detail = {
                "hookId": hook_id,
                "targetType": kind,
                "status": "AWAITING_ACTION" if kind == "PAUSE" else "IN_PROGRESS",
                "expiresAt": datetime.fromtimestamp(expires, timezone.utc).replace(tzinfo=None),
                "timeoutAction": action,
            }
            if kind != "PAUSE":
                detail["targetArn"] = h.get("hookTargetArn")
            with self.cond:
                sd.hooks = sd.hooks + [detail]
                sd.updated = utcnow()
            if kind != "PAUSE":
                detail["status"] = "SUCCEEDED"
                self.runner.log(f"hook {hook_id} ({kind}) at {stage}: not invoked, counted as SUCCEEDED")
                continue
            self.runner.emit_event("hook_waiting", arn=sd.arn, stage=stage, hook=hook_id, expires=round(expires, 3))
            self.runner.log(f"hook {hook_id} (PAUSE) at {stage} awaits an action until {expires:.0f} ({action} then)")
            while True:
                self.check(sd)
                answer = sd.answers.get(hook_id)
                if answer is None and time.time() >= expires:
                    detail["status"] = "TIMED_OUT"
                    self.runner.emit_event("hook_timed_out", arn=sd.arn, hook=hook_id, action=action)
                    if action == "ROLLBACK":
                        raise Rollback(f"lifecycle hook {hook_id} timed out (action ROLLBACK)")
                    break
                if answer == "ROLLBACK":
                    detail["status"] = "FAILED"
                    raise Rollback(f"lifecycle hook {hook_id} answered ROLLBACK")
                if answer:
                    detail["status"] = "SUCCEEDED"
                    break
                with self.cond:
                    self.cond.wait(0.1)

    def steps(self, sd: ServiceDeployment) -> list[tuple[float, float]]:
        """PRODUCTION_TRAFFIC_SHIFT as (green's percent, bake seconds after it)."""
        c = sd.config
        strategy = c.get("strategy")
        if strategy == "CANARY":
            cc = c.get("canaryConfiguration") or {}
            pct = float(cc.get("canaryPercent") or 5.0)
            return [(pct, self.scaled(cc.get("canaryBakeTimeInMinutes", 10))), (100.0, 0.0)]
        if strategy == "LINEAR":
            lc = c.get("linearConfiguration") or {}
            step = float(lc.get("stepPercent") or 10.0)
            bake = self.scaled(lc.get("stepBakeTimeInMinutes", 6))
            out, pct = [], 0.0
            while pct + step < 100.0 - 1e-9:
                pct = round(pct + step, 1)
                out.append((pct, bake))
            return out + [(100.0, 0.0)]
        return [(100.0, 0.0)]

    def run(self, dep_id: str) -> None:
        """Drives one ECS-native deployment to its end."""
        r = self.runner
        sd = self.of(dep_id)
        if sd is None:
            raise RuntimeError(f"no service deployment for {dep_id}")
        svc = r.svc()
        self.bind(svc)
        green = "tg_b" if self.live == "tg_a" else "tg_a"
        blue_tasks = [t for t in r.tasks if t.deployment != dep_id and t.state in ("PENDING", "RUNNING")]
        self.set(sd, status="IN_PROGRESS", started=utcnow(), source_running=len(blue_tasks))
        r.emit_event("service_deployment", arn=sd.arn, status="IN_PROGRESS", strategy=sd.config.get("strategy"))
        try:
            for stage in ("RECONCILE_SERVICE", "PRE_SCALE_UP"):
                self.enter(sd, stage)
                self.hooks_at(sd, stage)
            self.enter(sd, "SCALE_UP")
            r.scale_up(dep_id, green, [self.tg_of[green]], lambda: self.check(sd), sd)
            self.hooks_at(sd, "SCALE_UP")
            self.enter(sd, "POST_SCALE_UP")
            self.hooks_at(sd, "POST_SCALE_UP")
            self.enter(sd, "TEST_TRAFFIC_SHIFT")
            if self.rules.get("test"):
                self.test_to(green, sd)
            self.hooks_at(sd, "TEST_TRAFFIC_SHIFT")
            for stage in ("POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"):
                self.enter(sd, stage)
                self.hooks_at(sd, stage)
            self.enter(sd, "PRODUCTION_TRAFFIC_SHIFT")
            for pct, bake in self.steps(sd):
                self.check(sd)
                self.production(green, pct, sd)
                r.log(f"production traffic: {pct:g}% to green ({green}); bake {bake:g} s")
                self.wait(sd, bake)
            self.hooks_at(sd, "PRODUCTION_TRAFFIC_SHIFT")
            self.enter(sd, "POST_PRODUCTION_TRAFFIC_SHIFT")
            self.hooks_at(sd, "POST_PRODUCTION_TRAFFIC_SHIFT")
            self.enter(sd, "BAKE_TIME")
            r.green_fault_in_bake(dep_id)
            self.wait(sd, self.scaled(sd.config.get("bakeTimeInMinutes", 0)))
            self.check(sd)
            self.enter(sd, "CLEAN_UP")
            self.live = green
            if self.rules.get("test"):
                self.test_to(green, None)
            r.retire(blue_tasks, [self.tg_of["tg_b" if green == "tg_a" else "tg_a"]])
            self.set(sd, source_running=0, status="SUCCESSFUL", finished=utcnow(), reason=None)
            r.native_completed(dep_id)
            r.emit_event("service_deployment", arn=sd.arn, status="SUCCESSFUL")
        except Superseded:
            self.set(sd, status="STOPPED", stopped=utcnow(), finished=utcnow(), reason="Superseded by a newer deployment.")
            r.emit_event("service_deployment", arn=sd.arn, status="STOPPED")
        except Rollback as rb:
            self.roll_back(sd, green, str(rb))

    def roll_back(self, sd: ServiceDeployment, green: str, reason: str) -> None:
        """Both frontends back to blue, green drained and stopped: ROLLBACK_SUCCESSFUL."""
        r = self.runner
        t0 = time.time()
        self.set(
            sd,
            status="ROLLBACK_IN_PROGRESS",
            reason=reason,
            rollback={"reason": reason, "startedAt": utcnow(), "serviceRevisionArn": sd.source_rev},
        )
        r.emit_event("rollback_started", arn=sd.arn, reason=reason, stage=sd.stage)
        r.log(f"rolling back at {sd.stage}: {reason}")
        try:
            self.production(green, 0.0, sd)
            if self.rules.get("test"):
                self.test_to(self.live, sd)
            green_tasks = [t for t in r.tasks if t.deployment == sd.dep_id and t.state in ("PENDING", "RUNNING")]
            r.retire(green_tasks, [self.tg_of[green]])
            self.set(sd, running=0, pending=0, status="ROLLBACK_SUCCESSFUL", finished=utcnow())
            r.native_rolled_back(sd.dep_id, sd.source_td)
            r.emit_event("rollback_completed", arn=sd.arn, took_s=round(time.time() - t0, 3))
        except Exception as e:  # noqa: BLE001
            self.set(sd, status="ROLLBACK_FAILED", finished=utcnow(), reason=f"{reason}; rollback failed: {e}")
            r.emit_event("rollback_failed", arn=sd.arn, error=str(e))
            raise


def _ts(v) -> float:
    if hasattr(v, "timestamp"):
        return v.timestamp()
    return float(v)
