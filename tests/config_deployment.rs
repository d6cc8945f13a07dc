//! `[ecs.deployment]`: every way the section can be wrong names file, line, column and key;
//! the good ones come out as the validated type; environments layer it key by key; a bad one
//! exits 2 and calls nothing.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use bosar_deploy::config::{parse, parse_environment, GateKind, Strategy, Tenths};

const BASE: &str = "[target_group]\nname = \"tg\"\n\n[ecs]\ncluster = \"c\"\nservice = \"s\"\ncontainer = \"c\"\n\n[ecs.deployment]\n";
/// `[ecs.deployment]`'s first key is on this line.
const FIRST: usize = 10;

fn with(section: &str) -> String {
    format!("{BASE}{section}")
}

/// (what, section body, line offset from FIRST, column, key, words)
fn cases() -> Vec<(
    &'static str,
    &'static str,
    usize,
    usize,
    &'static str,
    &'static str,
)> {
    vec![
        (
            "unknown strategy",
            "strategy = \"bluegreen\"\n",
            0,
            12,
            "ecs.deployment.strategy",
            "unknown strategy \"bluegreen\"",
        ),
        (
            "misspelt key",
            "stratgy = \"canary\"\n",
            0,
            1,
            "ecs.deployment.stratgy",
            "did you mean `strategy`?",
        ),
        (
            "strategy as a number",
            "strategy = 1\n",
            0,
            12,
            "ecs.deployment.strategy",
            "invalid type",
        ),
        (
            "blue/green without bake time",
            "strategy = \"blue_green\"\n",
            0,
            12,
            "ecs.deployment.bake_time",
            "needs bake_time",
        ),
        (
            "bake time with rolling",
            "strategy = \"rolling\"\nbake_time = \"5m\"\n",
            1,
            13,
            "ecs.deployment.bake_time",
            "does not belong to strategy = \"rolling\"",
        ),
        (
            "bake time without a strategy",
            "bake_time = \"5m\"\n",
            0,
            13,
            "ecs.deployment.bake_time",
            "needs the strategy it belongs to",
        ),
        (
            "bake time too long",
            "strategy = \"blue_green\"\nbake_time = \"1441m\"\n",
            1,
            13,
            "ecs.deployment.bake_time",
            "out of range",
        ),
        (
            "bake time in seconds",
            "strategy = \"blue_green\"\nbake_time = \"90s\"\n",
            1,
            13,
            "ecs.deployment.bake_time",
            "not a whole number of minutes",
        ),
        (
            "bake time without unit",
            "strategy = \"blue_green\"\nbake_time = \"5\"\n",
            1,
            13,
            "ecs.deployment.bake_time",
            "no unit",
        ),
        (
            "canary percent with linear",
            "strategy = \"linear\"\ncanary_percent = 5\n",
            1,
            18,
            "ecs.deployment.canary_percent",
            "does not belong to strategy = \"linear\"",
        ),
        (
            "canary bake time with blue/green",
            "strategy = \"blue_green\"\nbake_time = \"5m\"\ncanary_bake_time = \"5m\"\n",
            2,
            20,
            "ecs.deployment.canary_bake_time",
            "only with strategy = \"canary\"",
        ),
        (
            "canary percent zero",
            "strategy = \"canary\"\ncanary_percent = 0\n",
            1,
            18,
            "ecs.deployment.canary_percent",
            "out of range",
        ),
        (
            "canary percent above 100",
            "strategy = \"canary\"\ncanary_percent = 100.1\n",
            1,
            18,
            "ecs.deployment.canary_percent",
            "out of range",
        ),
        (
            "canary percent in hundredths",
            "strategy = \"canary\"\ncanary_percent = 5.25\n",
            1,
            18,
            "ecs.deployment.canary_percent",
            "not a multiple of 0.1",
        ),
        (
            "canary percent as text",
            "strategy = \"canary\"\ncanary_percent = \"5%\"\n",
            1,
            18,
            "ecs.deployment.canary_percent",
            "expected a number",
        ),
        (
            "canary bake time too long",
            "strategy = \"canary\"\ncanary_bake_time = \"25h\"\n",
            1,
            20,
            "ecs.deployment.canary_bake_time",
            "out of range",
        ),
        (
            "step percent with canary",
            "strategy = \"canary\"\nstep_percent = 10\n",
            1,
            16,
            "ecs.deployment.step_percent",
            "only with strategy = \"linear\"",
        ),
        (
            "step percent below 3",
            "strategy = \"linear\"\nstep_percent = 2.9\n",
            1,
            16,
            "ecs.deployment.step_percent",
            "out of range",
        ),
        (
            "step percent in hundredths",
            "strategy = \"linear\"\nstep_percent = 10.05\n",
            1,
            16,
            "ecs.deployment.step_percent",
            "not a multiple of 0.1",
        ),
        (
            "step bake time with canary",
            "strategy = \"canary\"\nstep_bake_time = \"6m\"\n",
            1,
            18,
            "ecs.deployment.step_bake_time",
            "does not belong",
        ),
        (
            "step bake time in seconds",
            "strategy = \"linear\"\nstep_bake_time = \"30s\"\n",
            1,
            18,
            "ecs.deployment.step_bake_time",
            "whole number of minutes",
        ),
        (
            "step percent without a strategy",
            "step_percent = 10\n",
            0,
            16,
            "ecs.deployment.step_percent",
            "needs the strategy",
        ),
        (
            "breaker as text",
            "circuit_breaker = \"yes\"\n",
            0,
            19,
            "ecs.deployment.circuit_breaker",
            "expected true or false",
        ),
        (
            "rollback with the breaker off",
            "circuit_breaker = false\nrollback = true\n",
            1,
            12,
            "ecs.deployment.rollback",
            "no effect",
        ),
        (
            "minimum healthy above 100",
            "minimum_healthy_percent = 101\n",
            0,
            27,
            "ecs.deployment.minimum_healthy_percent",
            "out of range",
        ),
        (
            "minimum healthy negative",
            "minimum_healthy_percent = -1\n",
            0,
            27,
            "ecs.deployment.minimum_healthy_percent",
            "out of range",
        ),
        (
            "maximum below 100",
            "maximum_percent = 99\n",
            0,
            19,
            "ecs.deployment.maximum_percent",
            "out of range",
        ),
        (
            "maximum as a float",
            "maximum_percent = 150.5\n",
            0,
            19,
            "ecs.deployment.maximum_percent",
            "expected an integer",
        ),
        (
            "unknown gate",
            "strategy = \"canary\"\ngate = \"lambda\"\n",
            1,
            8,
            "ecs.deployment.gate",
            "unknown gate \"lambda\"",
        ),
        (
            "gate with rolling",
            "strategy = \"rolling\"\ngate = \"verify\"\n",
            1,
            8,
            "ecs.deployment.gate",
            "does not belong to strategy = \"rolling\"",
        ),
        (
            "gate without a strategy",
            "gate = \"verify\"\n",
            0,
            8,
            "ecs.deployment.gate",
            "needs the strategy",
        ),
        (
            "gate timeout without gate",
            "strategy = \"canary\"\ngate_timeout = \"30m\"\n",
            1,
            16,
            "ecs.deployment.gate_timeout",
            "without gate",
        ),
        (
            "gate timeout zero",
            "strategy = \"canary\"\ngate = \"verify\"\ngate_timeout = \"0m\"\n",
            2,
            16,
            "ecs.deployment.gate_timeout",
            "out of range",
        ),
        (
            "gate timeout above 14 days",
            "strategy = \"canary\"\ngate = \"verify\"\ngate_timeout = \"20161m\"\n",
            2,
            16,
            "ecs.deployment.gate_timeout",
            "out of range",
        ),
        (
            "gate timeout in seconds",
            "strategy = \"canary\"\ngate = \"verify\"\ngate_timeout = \"90s\"\n",
            2,
            16,
            "ecs.deployment.gate_timeout",
            "whole number of minutes",
        ),
    ]
}

#[test]
fn every_bad_deployment_key_names_file_line_column_and_key() {
    for (what, body, line, col, key, words) in cases() {
        let msg = match parse(Path::new("deploy.toml"), &with(body)) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e.to_string(),
        };
        let place = format!("deploy.toml:{}:{col}: {key}: ", FIRST + line);
        assert!(msg.contains(&place), "{what}: wants {place:?} in:\n{msg}");
        assert!(msg.contains(words), "{what}: wants {words:?} in:\n{msg}");
        assert!(
            msg.contains("allowed:"),
            "{what}: says what is allowed:\n{msg}"
        );
    }
}

#[test]
fn a_bad_deployment_section_exits_2_before_any_call() {
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", trap.local_addr().unwrap());
    let (_dir, path) = support::write_config(&with("strategy = \"linear\"\ncanary_percent = 5\n"));
    for verb in [&["plan"][..], &["deploy", "--dry-run"], &["alb-update"]] {
        let out = support::run(
            support::bosar(&endpoint, "cfgdeploy")
                .arg("--config")
                .arg(&path)
                .args(verb),
        );
        assert_eq!(out.code, 2, "{verb:?}: {}", out.all());
        assert!(
            out.stderr
                .contains(":11:18: ecs.deployment.canary_percent: "),
            "{}",
            out.stderr
        );
    }
    assert!(trap.accept().is_err(), "nothing reached the network");
}

#[test]
fn good_sections_become_the_validated_type() {
    let path = Path::new("deploy.toml");
    // No section: nothing managed.
    let cfg = parse(path, BASE.trim_end_matches("[ecs.deployment]\n")).unwrap();
    assert_eq!(cfg.ecs.unwrap().deployment, None);

    let cfg = parse(
        path,
        &with("strategy = \"canary\"\nbake_time = \"0m\"\ncanary_percent = 12.5\ncanary_bake_time = \"1h\"\ncircuit_breaker = true\nrollback = true\nminimum_healthy_percent = 100\nmaximum_percent = 200\ngate = \"verify\"\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let d = cfg.ecs.unwrap().deployment.unwrap();
    assert_eq!(d.strategy, Some(Strategy::Canary));
    assert_eq!(d.bake_time, Some(Duration::ZERO));
    assert_eq!(d.canary_percent, Some(Tenths(125)));
    assert_eq!(d.canary_bake_time, Some(Duration::from_secs(3600)));
    assert_eq!((d.circuit_breaker, d.rollback), (Some(true), Some(true)));
    assert_eq!(
        (d.minimum_healthy_percent, d.maximum_percent),
        (Some(100), Some(200))
    );
    let gate = d.gate.unwrap();
    assert_eq!(gate.kind, GateKind::Verify);
    assert_eq!(
        gate.timeout,
        Duration::from_secs(3600),
        "default 60 minutes"
    );

    // The edges of each range are accepted.
    for body in [
        "strategy = \"canary\"\ncanary_percent = 0.1\n",
        "strategy = \"canary\"\ncanary_percent = 100\ncanary_bake_time = \"1440m\"\n",
        "strategy = \"linear\"\nstep_percent = 3\nstep_bake_time = \"0m\"\n",
        "strategy = \"linear\"\nstep_percent = 100.0\nstep_bake_time = \"24h\"\n",
        "strategy = \"blue_green\"\nbake_time = \"1440m\"\ngate = \"verify\"\ngate_timeout = \"20160m\"\n",
        "strategy = \"linear\"\ngate = \"verify\"\ngate_timeout = \"1m\"\n",
        "minimum_healthy_percent = 0\nmaximum_percent = 100\n",
        "circuit_breaker = false\n",
    ] {
        parse(path, &with(body)).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
    let cfg = parse(path, &with("strategy = \"linear\"\nstep_percent = 33.3\n")).unwrap();
    let d = cfg.ecs.unwrap().deployment.unwrap();
    assert_eq!(d.step_percent.unwrap().to_string(), "33.3");
    assert_eq!(d.step_percent.unwrap().as_f64(), 33.3);
}

const LAYERED: &str = r#"
[target_group]
name = "tg"

[ecs]
cluster = "c"
service = "s"
container = "c"

[ecs.deployment]
strategy = "canary"
canary_percent = 10
bake_time = "10m"
circuit_breaker = true

[environments.staging.ecs.deployment]
canary_percent = 50

[environments.dev.ecs.deployment]
strategy = "linear"
step_percent = 20

[environments.broken.ecs.deployment]
step_percent = 20
"#;

#[test]
fn environments_layer_the_section_and_a_new_strategy_drops_the_old_ones_keys() {
    let path = Path::new("deploy.toml");
    let d = |env: Option<&str>| {
        parse_environment(path, LAYERED, env)
            .unwrap_or_else(|e| panic!("{e}"))
            .ecs
            .unwrap()
            .deployment
            .unwrap()
    };
    let base = d(None);
    assert_eq!(base.canary_percent, Some(Tenths(100)));
    let staging = d(Some("staging"));
    assert_eq!(staging.strategy, Some(Strategy::Canary));
    assert_eq!(staging.canary_percent, Some(Tenths(500)));
    assert_eq!(staging.bake_time, Some(Duration::from_secs(600)));
    let dev = d(Some("dev"));
    assert_eq!(dev.strategy, Some(Strategy::Linear));
    assert_eq!(dev.step_percent, Some(Tenths(200)));
    assert_eq!(
        dev.canary_percent, None,
        "the base canary's keys stay with it"
    );
    assert_eq!(dev.bake_time, None);
    assert_eq!(dev.circuit_breaker, Some(true), "service-wide keys layer");
    // A step percent under the base's canary names the environment and its line.
    let msg = parse_environment(path, LAYERED, Some("broken"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("deploy.toml:24:16: environments.broken.ecs.deployment.step_percent: step_percent does not belong to strategy = \"canary\""),
        "{msg}"
    );
}
