//! ECS-native deployments in the sandbox, end to end with real gateways and real sessions:
//! the task runner (`sandbox/runner.py --strategy ...`) plays ECS's part (stages, PAUSE hooks,
//! weighted production traffic over two target groups, a test listener, rollback, clean-up).
//! The test answers the gate as bosar-deploy's gate does: bosar-deploy's own PAUSE hook
//! (`ecs::native::hook::owned_hook`), `bosar-deploy verify` against the test listener, then
//! ContinueServiceDeployment CONTINUE or ROLLBACK, or StopServiceDeployment ROLLBACK during a
//! bake time. Sessions are held on production by `bosar-deploy verify --connections
//! --reconnect` the whole time, and counted on each gateway process.
//!
//! Minutes are scaled (BOSAR_SANDBOX_SECONDS_PER_MINUTE) and the deregistration delay is 1 s,
//! so each test takes well under a minute.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentConfiguration, DeploymentLifecycleHookAction, KeyValuePair,
    ServiceDeployment, StopServiceDeploymentStopType,
};
use aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute;
use bosar_deploy::ecs::native::gate::GateSettings;
use bosar_deploy::ecs::native::hook::owned_hook;
use bosar_deploy::ecs::native::stages::GateStage;
use serde_json::Value;
use support::runner::TaskRunner;
use support::{bosar, run, write_config};

const SECRET: &str = "strategy-test-secret-5c1f9a3e77";
/// Sessions held on production through each deployment.
const SESSIONS: u64 = 20;
/// Green's revision label in the gateways' instance ids (`bosar-api-2-<task>`).
const GREEN: &str = "bosar-api-2-";
const BLUE: &str = "bosar-api-1-";

/// The fast sandbox config (ping 2 s / 3 s, heartbeat 1 s: verify takes seconds) with the
/// strategy's `[ecs.deployment]`.
fn config(deployment: &str) -> String {
    let text = support::fast_sandbox_config();
    assert!(text.contains("deregistration_delay = \"3s\""));
    let text = text.replacen(
        "deregistration_delay = \"3s\"",
        "deregistration_delay = \"1s\"",
        1,
    );
    format!("{text}\n[ecs.deployment]\n{deployment}\n")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct Ecs {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
}

async fn clients(endpoint: &str) -> Ecs {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    Ecs {
        ecs: aws_sdk_ecs::Client::new(&conf),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&conf),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// The config's WebSocket settings as green's container environment.
fn green_env(c: &ContainerDefinition) -> ContainerDefinition {
    let mut c = c.clone();
    let mut env: Vec<KeyValuePair> = c
        .environment()
        .iter()
        .filter(|kv| !kv.name().unwrap_or_default().starts_with("WEBSOCKET_"))
        .cloned()
        .collect();
    for (k, v) in [
        ("WEBSOCKET_PING_INTERVAL", "2000"),
        ("WEBSOCKET_PING_TIMEOUT", "3000"),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "1000"),
    ] {
        env.push(KeyValuePair::builder().name(k).value(v).build());
    }
    c.environment = Some(env);
    c
}

/// A 1 s deregistration delay on both target groups, a new revision, and UpdateService with
/// the service's strategy (and bosar-deploy's PAUSE hook when `gate`); the service
/// deployment's ARN.
async fn start_deployment(aws: &Ecs, ready: &Value, gate: Option<u32>) -> String {
    for tg in [
        field(ready, "target_group_arn"),
        field(ready, "alternate_target_group_arn"),
    ] {
        aws.elb
            .modify_target_group_attributes()
            .target_group_arn(tg)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value("1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let (cluster, service) = (field(ready, "cluster"), field(ready, "service"));
    let out = aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap();
    let svc = out.services()[0].clone();
    let td = aws
        .ecs
        .describe_task_definition()
        .task_definition(svc.task_definition().unwrap())
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    let new = aws
        .ecs
        .register_task_definition()
        .family(td.family().unwrap())
        .set_container_definitions(Some(
            td.container_definitions().iter().map(green_env).collect(),
        ))
        .set_network_mode(td.network_mode().cloned())
        .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
        .set_cpu(td.cpu().map(str::to_string))
        .set_memory(td.memory().map(str::to_string))
        .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
        .set_task_role_arn(td.task_role_arn().map(str::to_string))
        .send()
        .await
        .unwrap();
    let dc = svc.deployment_configuration().unwrap();
    let mut conf = DeploymentConfiguration::builder()
        .set_strategy(dc.strategy().cloned())
        .set_bake_time_in_minutes(dc.bake_time_in_minutes())
        .set_canary_configuration(dc.canary_configuration().cloned())
        .set_linear_configuration(dc.linear_configuration().cloned())
        .set_deployment_circuit_breaker(dc.deployment_circuit_breaker().cloned())
        .set_maximum_percent(dc.maximum_percent())
        .set_minimum_healthy_percent(dc.minimum_healthy_percent());
    if let Some(timeout_minutes) = gate {
        conf = conf.lifecycle_hooks(owned_hook(
            GateStage::PostTestTrafficShift,
            GateSettings { timeout_minutes },
        ));
    }
    let up = aws
        .ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(
            new.task_definition()
                .unwrap()
                .task_definition_arn()
                .unwrap(),
        )
        .deployment_configuration(conf.build())
        .send()
        .await
        .unwrap();
    let id = up.service().unwrap().deployments()[0]
        .id()
        .unwrap()
        .to_string();
    let tail = id.rsplit('/').next().unwrap().to_string();
    let list = aws
        .ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .send()
        .await
        .unwrap();
    list.service_deployments()
        .iter()
        .filter_map(|b| b.service_deployment_arn())
        .find(|a| a.ends_with(&format!("/{tail}")))
        .unwrap_or_else(|| panic!("ListServiceDeployments lists no {tail}: {list:?}"))
        .to_string()
}

async fn describe(aws: &Ecs, arn: &str) -> ServiceDeployment {
    let out = aws
        .ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .unwrap();
    out.service_deployments()[0].clone()
}

/// Polls DescribeServiceDeployments until `pred` holds (at most `secs`).
async fn wait_until(
    aws: &Ecs,
    arn: &str,
    secs: u64,
    runner: &TaskRunner,
    pred: impl Fn(&ServiceDeployment) -> bool,
) -> ServiceDeployment {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let d = describe(aws, arn).await;
        if pred(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "service deployment not there within {secs} s: {d:?}\n--- runner ---\n{}",
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn awaiting_hook(d: &ServiceDeployment) -> Option<String> {
    d.lifecycle_hook_details()
        .iter()
        .find(|h| h.status().map(|s| s.as_str()) == Some("AWAITING_ACTION"))
        .and_then(|h| h.hook_id().map(str::to_string))
}

/// `/health/websocket` of one gateway process: its instance id and open connections.
fn health(port: u64) -> Option<(String, u64)> {
    let mut s = TcpStream::connect(("127.0.0.1", port as u16)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /health/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let body: Value = serde_json::from_str(buf.split_once("\r\n\r\n")?.1).ok()?;
    Some((
        body["instanceId"].as_str()?.to_string(),
        body["connections"].as_u64()?,
    ))
}

/// Open sessions on the gateways of one revision (by instance id prefix), from each process.
fn sessions_on(runner: &TaskRunner, prefix: &str) -> u64 {
    runner
        .events()
        .iter()
        .filter(|e| e["event"] == "task_running")
        .filter(|e| field(e, "instance_id").starts_with(prefix))
        .filter_map(|e| health(e["port"].as_u64()?))
        .map(|(_, n)| n)
        .sum()
}

/// `bosar-deploy verify --connections N --reconnect --hold D` against production, its JSON
/// envelope written to `out`.
fn hold(runner: &TaskRunner, cfg: &Path, secs: u64, out: &Path) -> Child {
    bosar(&runner.endpoint, "strategies-hold")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .args(["--output", "json", "--config"])
        .arg(cfg)
        .args(["verify", "--url", &runner.url])
        .args(["--connections", &SESSIONS.to_string(), "--reconnect"])
        .args(["--hold", &format!("{secs}s")])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bosar-deploy verify --connections")
}

/// Waits until every held session is open on some gateway.
fn all_open(runner: &TaskRunner) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sessions_on(runner, "bosar-api-") < SESSIONS {
        assert!(
            Instant::now() < deadline,
            "the probe's {SESSIONS} sessions did not open: {} open",
            sessions_on(runner, "bosar-api-")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first value under `key` anywhere in `v`.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// The hold's disruption report (`probe.disruption` of its envelope), once it ended.
fn disruption(mut child: Child, out: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the hold did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(out).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let d = v["probe"]["disruption"].clone();
    assert!(d.is_object(), "no disruption report: {text}");
    d
}

fn start(
    strategy: &str,
    fault: &str,
    deployment: &str,
) -> (tempfile::TempDir, std::path::PathBuf, TaskRunner) {
    let (dir, cfg) = write_config(&config(deployment));
    let runner = TaskRunner::start_with(
        &cfg,
        SECRET,
        &["--strategy", strategy, "--green-fault", fault],
        &[("BOSAR_SANDBOX_SECONDS_PER_MINUTE", "1")],
    );
    assert_eq!(runner.ready["strategy"], strategy.to_uppercase());
    (dir, cfg, runner)
}

/// What the gate does at its pause: verify green through the test listener.
fn verify_green(runner: &TaskRunner, cfg: &Path) -> support::Run {
    run(bosar(&runner.endpoint, "strategies-gate")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .arg("--config")
        .arg(cfg)
        // Green's two tasks: the target groups' healthy count includes blue's while both run.
        .args([
            "verify",
            "--targets",
            "2",
            "--url",
            field(&runner.ready, "test_url"),
        ]))
}

/// A blue/green service with the gate's config, the sessions held on production for
/// `hold_secs`, and a deployment started with bosar-deploy's PAUSE hook (its timeout
/// `hook_minutes`, scaled): what the gate tests start from.
struct Gated {
    /// Kept for its lifetime: the config and the held report live in it.
    _dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    runner: TaskRunner,
    probe: Child,
    out: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
    aws: Ecs,
    arn: String,
}

impl Gated {
    /// The deployment once `pred` holds (at most `secs`).
    fn until(&self, secs: u64, pred: impl Fn(&ServiceDeployment) -> bool) -> ServiceDeployment {
        self.rt
            .block_on(wait_until(&self.aws, &self.arn, secs, &self.runner, pred))
    }

    /// The deployment paused at its lifecycle hook.
    fn paused(&self) -> ServiceDeployment {
        self.until(30, |d| awaiting_hook(d).is_some())
    }

    /// Answers the paused hook, as the gate would.
    fn answer(&self, paused: &ServiceDeployment, action: DeploymentLifecycleHookAction) {
        self.rt
            .block_on(
                self.aws
                    .ecs
                    .continue_service_deployment()
                    .service_deployment_arn(&self.arn)
                    .hook_id(awaiting_hook(paused).unwrap())
                    .action(action)
                    .send(),
            )
            .unwrap();
    }
}

/// Production was never split between blue and green (green never had production traffic).
fn production_never_split(runner: &TaskRunner) -> bool {
    !runner.events().iter().any(|e| {
        e["event"] == "traffic"
            && e["listener"] == "production"
            && e["weights"]
                .as_object()
                .unwrap()
                .values()
                .any(|w| w.as_f64() > Some(0.0) && w.as_f64() < Some(100.0))
    })
}

fn gated_blue_green(fault: &str, hold_secs: u64, hook_minutes: u32) -> Gated {
    let (dir, cfg, runner) = start(
        "blue_green",
        fault,
        "strategy = \"blue_green\"\nbake_time = \"3m\"\ngate = \"verify\"",
    );
    let out = dir.path().join("hold.json");
    let probe = hold(&runner, &cfg, hold_secs, &out);
    all_open(&runner);
    let rt = rt();
    let aws = rt.block_on(clients(&runner.endpoint));
    let arn = rt.block_on(start_deployment(&aws, &runner.ready, Some(hook_minutes)));
    Gated {
        _dir: dir,
        cfg,
        runner,
        probe,
        out,
        rt,
        aws,
        arn,
    }
}

#[test]
fn a_good_green_passes_the_gate_and_only_the_clean_up_of_blue_drops_sessions() {
    let t0 = Instant::now();
    let g = gated_blue_green("none", 25, 30);
    let paused = g.paused();
    assert_eq!(
        paused.lifecycle_stage().map(|s| s.as_str()),
        Some("POST_TEST_TRAFFIC_SHIFT")
    );
    // At the pause production is all blue, green answers on the test listener only.
    assert_eq!(sessions_on(&g.runner, BLUE), SESSIONS);
    assert_eq!(sessions_on(&g.runner, GREEN), 0);
    let gate = verify_green(&g.runner, &g.cfg);
    assert_eq!(
        gate.code, 0,
        "verify of green failed:\n{}\n{}",
        gate.stdout, gate.stderr
    );
    assert!(
        gate.stdout.contains(GREEN),
        "verify did not reach green: {}",
        gate.stdout
    );
    g.answer(&paused, DeploymentLifecycleHookAction::Continue);
    // Production shifted, blue still runs through the bake time: nobody dropped yet.
    let baking = g.until(20, |d| {
        d.lifecycle_stage().map(|s| s.as_str()) == Some("BAKE_TIME")
    });
    assert_eq!(
        baking
            .target_service_revision()
            .and_then(|t| t.requested_production_traffic_weight()),
        Some(100.0)
    );
    assert_eq!(
        sessions_on(&g.runner, BLUE),
        SESSIONS,
        "a session left blue before CLEAN_UP"
    );
    let done = g.until(30, |d| {
        d.status().map(|s| s.as_str()) != Some("IN_PROGRESS")
    });
    assert_eq!(
        done.status().map(|s| s.as_str()),
        Some("SUCCESSFUL"),
        "{done:?}"
    );
    let report = disruption(g.probe, &g.out);
    // Every session dropped exactly once, from blue (which only CLEAN_UP stops), and came
    // back on green.
    let dropped = find(&report, "dropped").unwrap();
    assert_eq!(dropped["sessions"], SESSIONS, "{report}");
    assert_eq!(dropped["events"], SESSIONS, "{report}");
    assert_eq!(find(&report, "lost").unwrap(), 0, "{report}");
    for m in find(&report, "moves").unwrap().as_array().unwrap() {
        assert!(
            field(m, "from").starts_with(BLUE),
            "a drop not from blue: {m}"
        );
        assert!(
            field(m, "to").starts_with(GREEN),
            "a session not back on green: {m}"
        );
    }
    let stages: Vec<String> = g
        .runner
        .events()
        .iter()
        .filter(|e| e["event"] == "stage" && e["arn"] == g.arn.as_str())
        .map(|e| field(e, "stage").to_string())
        .collect();
    assert_eq!(
        stages,
        [
            "RECONCILE_SERVICE",
            "PRE_SCALE_UP",
            "SCALE_UP",
            "POST_SCALE_UP",
            "TEST_TRAFFIC_SHIFT",
            "POST_TEST_TRAFFIC_SHIFT",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "BAKE_TIME",
            "CLEAN_UP"
        ]
    );
    eprintln!("good green: {:?}", t0.elapsed());
}

#[test]
fn a_broken_green_is_rolled_back_at_the_gate_and_no_production_session_drops() {
    let t0 = Instant::now();
    let g = gated_blue_green("jwt", 15, 30);
    let paused = g.paused();
    let gate = verify_green(&g.runner, &g.cfg);
    assert_ne!(
        gate.code, 0,
        "verify passed a green that rejects the tokens:\n{}",
        gate.stdout
    );
    assert!(
        gate.stdout.contains("auth") || gate.stdout.contains("namespace"),
        "verify did not name the refused connect: {}",
        gate.stdout
    );
    g.answer(&paused, DeploymentLifecycleHookAction::Rollback);
    let done = g.until(30, |d| {
        d.status().map(|s| s.as_str()) == Some("ROLLBACK_SUCCESSFUL")
    });
    assert!(done.rollback().is_some(), "{done:?}");
    // Green never had production traffic and is gone.
    assert!(production_never_split(&g.runner));
    assert_eq!(sessions_on(&g.runner, BLUE), SESSIONS);
    let report = disruption(g.probe, &g.out);
    let dropped = find(&report, "dropped").unwrap();
    assert_eq!(
        dropped["sessions"], 0,
        "the broken green dropped production sessions: {report}"
    );
    assert_eq!(find(&report, "opened").unwrap(), SESSIONS, "{report}");
    eprintln!("broken green: {:?}", t0.elapsed());
}

#[test]
fn a_canary_that_fails_in_its_bake_time_is_rolled_back_and_its_sessions_return_to_blue() {
    canary_rolled_back_in_bake(true);
}

/// A green that still runs but fails the judge's checks: its sessions stay on it until it
/// is drained (the deregistration delay), then reconnect to blue.
#[test]
fn a_canary_stopped_in_its_bake_time_hands_its_sessions_back_to_blue_after_the_drain() {
    canary_rolled_back_in_bake(false);
}

/// Canary at 50%, sessions opened during its bake land on both revisions; green fails (its
/// gateways are killed when `kill`), StopServiceDeployment ROLLBACK; how long until every
/// session is on blue again.
fn canary_rolled_back_in_bake(kill: bool) {
    let t0 = Instant::now();
    let (dir, cfg, runner) = start(
        "canary",
        "none",
        "strategy = \"canary\"\ncanary_percent = 50\ncanary_bake_time = \"30m\"\nbake_time = \"3m\"",
    );
    let rt = rt();
    let aws = rt.block_on(clients(&runner.endpoint));
    let arn = rt.block_on(start_deployment(&aws, &runner.ready, None));
    let canary = rt.block_on(wait_until(&aws, &arn, 30, &runner, |d| {
        d.target_service_revision()
            .and_then(|t| t.requested_production_traffic_weight())
            == Some(50.0)
    }));
    assert_eq!(
        canary.lifecycle_stage().map(|s| s.as_str()),
        Some("PRODUCTION_TRAFFIC_SHIFT")
    );
    // Sessions opened during the canary's bake land on both revisions.
    let out = dir.path().join("hold.json");
    let probe = hold(&runner, &cfg, 20, &out);
    all_open(&runner);
    let on_green = sessions_on(&runner, GREEN);
    assert!(on_green > 0, "no session reached the canary");
    // Green fails (its gateways die, or a check says no). The judge's answer is
    // StopServiceDeployment ROLLBACK.
    for e in runner
        .events()
        .iter()
        .filter(|e| e["event"] == "task_running")
    {
        if kill && field(e, "instance_id").starts_with(GREEN) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &e["pid"].to_string()])
                .status();
        }
    }
    let failed_at = Instant::now();
    rt.block_on(
        aws.ecs
            .stop_service_deployment()
            .service_deployment_arn(&arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sessions_on(&runner, BLUE) < SESSIONS {
        assert!(
            Instant::now() < deadline,
            "sessions did not come back to blue: {}",
            runner.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let back = failed_at.elapsed();
    let done = rt.block_on(wait_until(&aws, &arn, 30, &runner, |d| {
        d.status().map(|s| s.as_str()) == Some("ROLLBACK_SUCCESSFUL")
    }));
    assert!(done.rollback().is_some());
    let report = disruption(probe, &out);
    assert_eq!(find(&report, "lost").unwrap(), 0, "{report}");
    // Exactly the sessions on green dropped (once each), all from green; blue's were untouched.
    let dropped = find(&report, "dropped").unwrap();
    assert_eq!(dropped["sessions"], on_green, "{report}");
    assert_eq!(dropped["events"], on_green, "{report}");
    for m in find(&report, "moves").unwrap().as_array().unwrap() {
        assert!(
            field(m, "from").starts_with(GREEN),
            "a drop not from green: {m}"
        );
    }
    eprintln!(
        "canary (green killed: {kill}): {on_green} of {SESSIONS} sessions on green; all back on blue {back:?} after the failure; test {:?}",
        t0.elapsed()
    );
}

/// The first object under `key` anywhere in `v` (skipping numbers of the same name).
fn find_object<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m
            .get(key)
            .filter(|x| x.is_object() || x.is_array())
            .or_else(|| m.values().find_map(|x| find_object(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_object(x, key)),
        _ => None,
    }
}

/// `full --under-load 20` through the gate, as `scripts/sandbox.sh --strategy blue_green`
/// runs it: the config names the strategy, `gate = "verify"` and the test listener.
fn full_through_the_gate(fault: &str) -> (support::Run, TaskRunner, String) {
    full_gated(
        "blue_green",
        "strategy = \"blue_green\"\nbake_time = \"3m\"\ngate = \"verify\"",
        fault,
    )
}

/// `full --under-load` through the gate with `strategy` (the runner's) and `deployment` (the
/// config's `[ecs.deployment]`).
fn full_gated(strategy: &str, deployment: &str, fault: &str) -> (support::Run, TaskRunner, String) {
    let test_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // sandbox/deploy.toml ends in its [gateway] table: test_url lands there.
    let text = config(deployment).replacen(
        "\n[ecs.deployment]",
        &format!("test_url = \"http://127.0.0.1:{test_port}\"\n\n[ecs.deployment]"),
        1,
    );
    let (dir, cfg) = write_config(&text);
    let junit = dir.path().join("full.xml");
    let runner = TaskRunner::start_with(
        &cfg,
        SECRET,
        &[
            "--strategy",
            strategy,
            "--green-fault",
            fault,
            "--test-port",
            &test_port.to_string(),
        ],
        &[("BOSAR_SANDBOX_SECONDS_PER_MINUTE", "1")],
    );
    let out = run(bosar(&runner.endpoint, "strategies-full")
        .env("BOSAR_SANDBOX_JWT_SECRET", SECRET)
        .args(["--output", "json", "--config"])
        .arg(&cfg)
        .args([
            "full",
            "--url",
            &runner.url,
            "--under-load",
            &SESSIONS.to_string(),
            "--junit",
            junit.to_str().unwrap(),
        ]));
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    (out, runner, xml)
}

#[test]
fn full_with_a_broken_green_exits_1_naming_the_failed_checks_and_the_rollback_sent() {
    let t0 = Instant::now();
    let (out, runner, junit) = full_through_the_gate("jwt");
    let all = format!(
        "{}\n{}\n--- runner ---\n{}",
        out.stdout,
        out.stderr,
        runner.log()
    );
    assert_eq!(out.code, 1, "{all}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let decisions = find_object(&v, "gate")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no gate decisions: {all}"));
    let rollback = decisions
        .iter()
        .find(|d| d["action"] == "ROLLBACK")
        .unwrap_or_else(|| panic!("no ROLLBACK sent: {all}"));
    assert_eq!(rollback["audience"], "green", "{rollback}");
    assert!(
        rollback["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "auth" && c["status"] == "fail"),
        "the failed auth check is not named: {rollback}"
    );
    // Under load, the gate also probed green with the load probe: its sessions were refused.
    let load_open = rollback["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "load open")
        .unwrap_or_else(|| panic!("no load probe of green: {rollback}"));
    assert_eq!(load_open["status"], "fail", "{load_open}");
    // JUnit has the gate's decision as a failed testcase naming the action sent.
    let doc = roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("{e}: {junit}"));
    let gate = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|a| a.starts_with("gate ") && a.ends_with("(green)"))
        })
        .unwrap_or_else(|| panic!("no gate testcase: {junit}"));
    let failure = gate
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap_or_else(|| panic!("the gate's testcase did not fail: {junit}"));
    assert!(
        failure
            .attribute("message")
            .unwrap_or_default()
            .contains("ContinueServiceDeployment ROLLBACK"),
        "{junit}"
    );
    // Nobody on production noticed: the held sessions stayed on blue.
    let dropped = find_object(&v, "dropped").unwrap_or_else(|| panic!("no disruption: {all}"));
    assert_eq!(dropped["sessions"], 0, "{all}");
    assert_eq!(
        sessions_on(&runner, BLUE),
        0,
        "the held sessions are closed at the end"
    );
    assert!(runner
        .events()
        .iter()
        .any(|e| e["event"] == "rollback_completed"));
    eprintln!("full, broken green: {:?}", t0.elapsed());
}

#[test]
fn full_with_a_good_green_passes_the_gate_and_succeeds() {
    let t0 = Instant::now();
    let (out, runner, junit) = full_through_the_gate("none");
    let all = format!(
        "{}\n{}\n--- runner ---\n{}",
        out.stdout,
        out.stderr,
        runner.log()
    );
    assert_eq!(out.code, 0, "{all}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let decisions = find_object(&v, "gate").and_then(Value::as_array).unwrap();
    assert_eq!(decisions[0]["action"], "CONTINUE", "{all}");
    for case in ["rollout", "stage BAKE_TIME", "stage CLEAN_UP"] {
        assert!(
            junit.contains(&format!(
                "classname=\"bosar-deploy.deploy\" name=\"{case}\""
            )),
            "no {case} testcase: {junit}"
        );
    }
    let status_of = |d: &Value, name: &str| {
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].clone())
            .unwrap_or_else(|| panic!("no {name} check in {d}"))
    };
    // Green took the load probe too; production's judgements weighed the held sessions.
    assert_eq!(status_of(&decisions[0], "load open"), "pass", "{all}");
    assert_eq!(status_of(&decisions[0], "load errors"), "pass", "{all}");
    let production: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["audience"] == "production")
        .collect();
    assert!(!production.is_empty(), "{all}");
    for d in production {
        assert_eq!(status_of(d, "under-load"), "pass", "{d}");
    }
    let dropped = find_object(&v, "dropped").unwrap();
    assert_eq!(
        dropped["sessions"], SESSIONS,
        "each session drops once, at CLEAN_UP: {all}"
    );
    assert_eq!(
        find(find_object(&v, "disruption").unwrap(), "lost").unwrap(),
        0
    );
    eprintln!("full, good green: {:?}", t0.elapsed());
}

/// A gated pause nobody answers (CI died): the owned hook's timeout (1 minute, scaled to 1 s)
/// takes its action, ROLLBACK; green never had production traffic and no held session dropped.
#[test]
fn a_pause_nobody_answers_is_rolled_back_by_the_hooks_timeout() {
    let g = gated_blue_green("none", 10, 1);
    let done = g.until(30, |d| {
        d.status().map(|s| s.as_str()) == Some("ROLLBACK_SUCCESSFUL")
    });
    assert!(done.rollback().is_some(), "{done:?}");
    let timed_out = done
        .lifecycle_hook_details()
        .iter()
        .any(|h| h.status().map(|s| s.as_str()) != Some("AWAITING_ACTION"));
    assert!(timed_out, "the hook still waits: {done:?}");
    assert!(production_never_split(&g.runner));
    assert_eq!(sessions_on(&g.runner, BLUE), SESSIONS);
    let report = disruption(g.probe, &g.out);
    assert_eq!(find(&report, "dropped").unwrap()["sessions"], 0, "{report}");
}

/// `full --under-load` with a linear deployment through the gate: green passes at the pause,
/// production is judged at each 50% step (the held sessions weighed each time), and the
/// deployment succeeds.
#[test]
fn a_linear_deployment_is_judged_at_each_step() {
    let (out, runner, _junit) = full_gated(
        "linear",
        "strategy = \"linear\"\nstep_percent = 50.0\nstep_bake_time = \"6m\"\nbake_time = \"1m\"\ngate = \"verify\"",
        "none",
    );
    let all = format!(
        "{}\n{}\n--- runner ---\n{}",
        out.stdout,
        out.stderr,
        runner.log()
    );
    assert_eq!(out.code, 0, "{all}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    let decisions = find_object(&v, "gate").and_then(Value::as_array).unwrap();
    assert_eq!(decisions[0]["action"], "CONTINUE", "{all}");
    let weights: Vec<f64> = decisions
        .iter()
        .filter(|d| d["audience"] == "production")
        .filter_map(|d| d["weight"].as_f64())
        .collect();
    assert!(
        weights.contains(&50.0),
        "no judgement at the 50% step: {weights:?}\n{all}"
    );
    for d in decisions {
        assert_ne!(d["action"], "ROLLBACK", "{d}");
        assert_ne!(d["action"], "STOP_ROLLBACK", "{d}");
    }
}
