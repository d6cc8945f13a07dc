//! Bad configurations: each names file, line, column and key, exits 2, and calls nothing.
//! AWS_ENDPOINT_URL points at a listener that records any connection: it must see none.

mod support;

use std::net::TcpListener;

const GOOD: &str = include_str!("../deploy.toml");

/// (description, edit of the good config, expected line:col, expected key, expected words)
fn cases() -> Vec<(
    &'static str,
    String,
    &'static str,
    &'static str,
    &'static str,
)> {
    let r = |from: &str, to: &str| {
        assert!(GOOD.contains(from), "fixture text missing: {from}");
        GOOD.replacen(from, to, 1)
    };
    vec![
        ("unknown key", r("deregistration_delay = \"30s\"", "deregistration_delay = \"30s\"\nstickyness = true"), "18:1", "target_group.stickyness", "did you mean `stickiness`?"),
        ("unknown section", format!("{GOOD}\n[extra]\nx = 1\n"), "39:2", "extra", "unknown key `extra`"),
        ("wrong type", r("cookie_duration = \"24h\"", "cookie_duration = 86400"), "15:19", "target_group.cookie_duration", "invalid type"),
        ("cookie too long", r("cookie_duration = \"24h\"", "cookie_duration = \"8d\""), "15:19", "target_group.cookie_duration", "out of range"),
        ("cookie zero", r("cookie_duration = \"24h\"", "cookie_duration = \"0s\""), "15:19", "target_group.cookie_duration", "out of range"),
        ("duration without unit", r("cookie_duration = \"24h\"", "cookie_duration = \"86400\""), "15:19", "target_group.cookie_duration", "no unit"),
        ("bad unit", r("deregistration_delay = \"30s\"", "deregistration_delay = \"30 seconds\""), "17:24", "target_group.deregistration_delay", "unknown unit"),
        ("delay too long", r("deregistration_delay = \"30s\"", "deregistration_delay = \"3601s\""), "17:24", "target_group.deregistration_delay", "out of range"),
        ("fractional delay", r("deregistration_delay = \"30s\"", "deregistration_delay = \"1500ms\""), "17:24", "target_group.deregistration_delay", "whole number of seconds"),
        ("unknown algorithm", r("algorithm = \"least_outstanding_requests\"", "algorithm = \"bogus\""), "16:13", "target_group.algorithm", "unknown algorithm"),
        ("unknown stickiness", r("stickiness = \"lb_cookie\"", "stickiness = \"maybe\""), "14:14", "target_group.stickiness", "unknown stickiness"),
        ("app_cookie without name", r("stickiness = \"lb_cookie\"", "stickiness = \"app_cookie\""), "14:14", "target_group.cookie_name", "needs the application's cookie name"),
        ("reserved app cookie name", r("stickiness = \"lb_cookie\"", "stickiness = \"app_cookie\"\ncookie_name = \"AWSALBAPP-1\""), "15:15", "target_group.cookie_name", "cannot be used"),
        ("slow start with least outstanding requests", r("deregistration_delay = \"30s\"", "deregistration_delay = \"30s\"\nslow_start = \"60s\""), "18:14", "target_group.slow_start", "cannot be combined"),
        ("idle timeout too long", r("# idle_timeout = \"120s\"", "idle_timeout = \"4001s\""), "10:16", "load_balancer.idle_timeout", "out of range"),
        ("name and arn", r("name = \"bosar-api-tg\"", "name = \"bosar-api-tg\"\narn = \"arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1\""), "14:7", "target_group.arn", "not both"),
        ("bad target group name", r("name = \"bosar-api-tg\"", "name = \"bosar_api_tg!\""), "13:8", "target_group.name", "not a valid name"),
        ("arn of the wrong kind", r("name = \"bosar-api-alb\"", "arn = \"arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1\""), "9:7", "load_balancer.arn", "not a load_balancer ARN"),
        ("bad region", r("region = \"us-east-1\"", "region = \"mars\""), "5:10", "aws.region", "not an AWS region"),
        ("missing ecs key", r("container = \"bosar-api\"\n", ""), "19:1", "ecs.container", "missing required key"),
        ("bad gateway url", r("url = \"https://api.bosar.click\"", "url = \"api.bosar.click\""), "30:7", "gateway.url", "not an http(s) URL"),
        ("namespace without slash", r("namespace = \"/chat\"", "namespace = \"chat\""), "31:13", "gateway.namespace", "must start with /"),
        ("no targets", r("namespace = \"/chat\"", "namespace = \"/chat\"\ntargets = 0"), "32:11", "gateway.targets", "out of range"),
        ("targets as text", r("namespace = \"/chat\"", "namespace = \"/chat\"\ntargets = \"2\""), "32:11", "gateway.targets", "invalid type"),
        ("origin with a path", r("namespace = \"/chat\"", "namespace = \"/chat\"\norigins = [\"https://app.bosar.click/\"]"), "32:12", "gateway.origins", "is not an origin"),
        ("origin without scheme", r("namespace = \"/chat\"", "namespace = \"/chat\"\norigins = [\"https://a.b\", \"app.bosar.click\"]"), "32:27", "gateway.origins", "is not an origin"),
        ("eio3 as text", r("namespace = \"/chat\"", "namespace = \"/chat\"\neio3 = \"yes\""), "32:8", "gateway.eio3", "true or false"),
        ("token_env holding a value", r("token_env = \"BOSAR_GATEWAY_TOKEN\"", "token_env = \"eyJhbGciOi.x.y\""), "33:13", "gateway.token_env", "not an environment variable name"),
        ("bad environment name", r("WEBSOCKET_PING_TIMEOUT = \"60000\"", "\"WEBSOCKET PING\" = \"60000\""), "25:1", "ecs.environment.WEBSOCKET PING", "not an environment variable name"),
        ("invalid TOML", r("[gateway]", "[gateway"), "29:9", "", "invalid table header"),
        ("missing target group", r("[target_group]", "[target_groups]"), "12:2", "target_groups", "unknown key `target_groups`"),
        ("slow start with weighted random", r("algorithm = \"least_outstanding_requests\"", "algorithm = \"weighted_random\"\nslow_start = \"60s\""), "17:14", "target_group.slow_start", "cannot be combined with algorithm = \"weighted_random\""),
        ("anomaly mitigation without weighted random", r("deregistration_delay = \"30s\"", "deregistration_delay = \"30s\"\nanomaly_mitigation = true"), "18:22", "target_group.anomaly_mitigation", "only with algorithm = \"weighted_random\""),
        ("cookie duration without stickiness", r("stickiness = \"lb_cookie\"", "# no stickiness"), "15:19", "target_group.cookie_duration", "needs stickiness"),
        ("cookie duration with stickiness off", r("stickiness = \"lb_cookie\"", "stickiness = \"off\""), "15:19", "target_group.cookie_duration", "no effect"),
        ("poll interval below a second", r("container = \"bosar-api\"", "container = \"bosar-api\"\npoll_interval = \"100ms\""), "23:17", "ecs.poll_interval", "out of range"),
        ("bad image", r("container = \"bosar-api\"", "container = \"bosar-api\"\nimage = \"UPPER/app:1\""), "23:9", "ecs.image", "not an image reference"),
        ("zero failed tasks", r("container = \"bosar-api\"", "container = \"bosar-api\"\nmax_failed_tasks = 0"), "23:20", "ecs.max_failed_tasks", "out of range"),
    ]
}

#[test]
fn every_bad_config_names_place_and_key_exits_2_and_calls_nothing() {
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", trap.local_addr().unwrap());
    let cases = cases();
    assert!(cases.len() >= 15);
    for (what, text, pos, key, words) in cases {
        let (_dir, path) = support::write_config(&text);
        let out = support::run(
            support::bosar(&endpoint, "cfgtest")
                .arg("--config")
                .arg(&path)
                .arg("alb-update"),
        );
        assert_eq!(out.code, 2, "{what}: exit code; stderr: {}", out.stderr);
        let expected_place = format!("{}:{pos}: ", path.display());
        assert!(
            out.stderr.contains(&expected_place),
            "{what}: wants {expected_place} in:\n{}",
            out.stderr
        );
        if !key.is_empty() {
            assert!(
                out.stderr.contains(&format!("{pos}: {key}: ")),
                "{what}: wants key {key} in:\n{}",
                out.stderr
            );
        }
        assert!(
            out.stderr.contains(words),
            "{what}: wants {words:?} in:\n{}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
    }
    assert!(
        trap.accept().is_err(),
        "a bad config must not reach the network"
    );
}

#[test]
fn several_errors_are_reported_together() {
    let text = GOOD
        .replacen("cookie_duration = \"24h\"", "cookie_duration = \"30d\"", 1)
        .replacen(
            "algorithm = \"least_outstanding_requests\"",
            "algorithm = \"bogus\"",
            1,
        );
    let (_dir, path) = support::write_config(&text);
    let out = support::run(
        support::bosar("http://127.0.0.1:9", "cfgtest")
            .arg("--config")
            .arg(&path)
            .arg("alb-update"),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("target_group.cookie_duration")
            && out.stderr.contains("target_group.algorithm"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("allowed: 1s to 7d"), "{}", out.stderr);
}

/// Unknown keys, wrong types and bad values in different tables: every one of them, in one
/// run, each with its place (serde alone stops at the first).
#[test]
fn parse_and_validation_errors_of_a_file_come_together_with_suggestions() {
    let text = GOOD
        .replacen(
            "stickiness = \"lb_cookie\"",
            "stickyness = \"lb_cookie\"",
            1,
        )
        .replacen("cookie_duration = \"24h\"", "cookie_duraton = \"24h\"", 1)
        .replacen(
            "deregistration_delay = \"30s\"",
            "deregistration_delay = \"1.5s\"",
            1,
        )
        .replacen("container = \"bosar-api\"", "container = 7", 1)
        .replacen("namespace = \"/chat\"", "namespace = \"chat\"", 1);
    let cfg = bosar_deploy::config::parse(std::path::Path::new("deploy.toml"), &text);
    let errs = cfg.unwrap_err().0;
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let all = lines.join("\n");
    for want in [
        "deploy.toml:14:1: target_group.stickyness: unknown key `stickyness`; did you mean `stickiness`?",
        "deploy.toml:15:1: target_group.cookie_duraton: unknown key `cookie_duraton`; did you mean `cookie_duration`?",
        "deploy.toml:17:24: target_group.deregistration_delay: \"1.5s\": fractional durations are not supported; write \"1500ms\"",
        "deploy.toml:22:13: ecs.container: invalid type: integer, expected a string",
        "deploy.toml:31:13: gateway.namespace: \"chat\" must start with /",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

const ENVIRONMENTS: &str = r#"
[target_group]
name = "bosar-api-tg"
stickiness = "lb_cookie"
cookie_duration = "24h"
deregistration_delay = "30s"

[ecs]
cluster = "bosar-cluster"
service = "bosar-api"
container = "bosar-api"

[ecs.environment]
WEBSOCKET_PING_INTERVAL = "25000"

[environments.staging]
aws = { region = "eu-west-1" }
target_group = { name = "bosar-staging-tg" }

[environments.staging.ecs]
cluster = "bosar-staging"

[environments.staging.ecs.environment]
WEBSOCKET_HEARTBEAT_INTERVAL = "5000"

[environments.production]
target_group = { deregistration_delay = "3601s" }
"#;

#[test]
fn environments_overlay_the_file_key_by_key_and_errors_name_them() {
    use bosar_deploy::config::parse_environment;
    let path = std::path::Path::new("deploy.toml");
    let base = parse_environment(path, ENVIRONMENTS, None).unwrap();
    assert_eq!(base.environment, None);
    assert_eq!(base.target_group.id.to_string(), "bosar-api-tg");
    let staging = parse_environment(path, ENVIRONMENTS, Some("staging")).unwrap();
    assert_eq!(staging.environment.as_deref(), Some("staging"));
    assert_eq!(staging.aws.region.as_deref(), Some("eu-west-1"));
    assert_eq!(staging.target_group.id.to_string(), "bosar-staging-tg");
    // Merged, not replaced: the keys staging does not name come from the file.
    assert_eq!(
        staging.target_group.cookie_duration,
        Some(std::time::Duration::from_secs(86_400))
    );
    let ecs = staging.ecs.as_ref().unwrap();
    assert_eq!(ecs.cluster, "bosar-staging");
    assert_eq!(ecs.service, "bosar-api");
    let env = ecs.environment.as_ref().unwrap();
    assert_eq!(env["WEBSOCKET_PING_INTERVAL"], "25000");
    assert_eq!(env["WEBSOCKET_HEARTBEAT_INTERVAL"], "5000");
    // An error in an environment's value names the environment and its line.
    let errs = parse_environment(path, ENVIRONMENTS, Some("production")).unwrap_err();
    let msg = errs.to_string();
    assert!(
        msg.contains("deploy.toml:27:41: environments.production.target_group.deregistration_delay: \"3601s\" is out of range"),
        "{msg}"
    );
    // An unknown environment lists the ones there are.
    let msg = parse_environment(path, ENVIRONMENTS, Some("prod"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unknown environment \"prod\""), "{msg}");
    assert!(
        msg.contains("allowed: environments staging, production"),
        "{msg}"
    );
    // A misspelt name suggests the near one and points at the environments, not line 1.
    let msg = parse_environment(path, ENVIRONMENTS, Some("stagin"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("did you mean \"staging\"?"), "{msg}");
    assert!(!msg.contains("deploy.toml:1:1:"), "{msg}");
}

#[test]
fn env_flag_and_variable_select_an_environment_before_any_call() {
    let (_dir, path) = support::write_config(ENVIRONMENTS);
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", trap.local_addr().unwrap());
    for (how, flag, var) in [
        ("--env", Some("prod"), None),
        ("BOSAR_DEPLOY_ENV", None, Some("prod")),
    ] {
        let mut cmd = support::bosar(&endpoint, "envsel");
        cmd.arg("--config").arg(&path);
        if let Some(f) = flag {
            cmd.args(["--env", f]);
        }
        if let Some(v) = var {
            cmd.env("BOSAR_DEPLOY_ENV", v);
        }
        let out = support::run(cmd.args(["alb-update", "--dry-run"]));
        assert_eq!(out.code, 2, "{how}: {}", out.all());
        assert!(
            out.stderr.contains("unknown environment \"prod\""),
            "{how}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("staging, production"), "{}", out.stderr);
    }
    assert!(trap.accept().is_err(), "nothing reached the network");
}

#[test]
fn config_is_found_by_flag_env_then_cwd() {
    let (dir, path) =
        support::write_config("[target_group]\nname = \"x\"\nstickiness = \"maybe\"\n");
    // env var
    let out = support::run(
        support::bosar("http://127.0.0.1:9", "cfgtest")
            .env("BOSAR_DEPLOY_CONFIG", &path)
            .arg("alb-update"),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&path.display().to_string()),
        "{}",
        out.stderr
    );
    // ./deploy.toml
    let out = support::run(
        support::bosar("http://127.0.0.1:9", "cfgtest")
            .current_dir(dir.path())
            .arg("alb-update"),
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("deploy.toml:3:14"), "{}", out.stderr);
    // missing file
    let out = support::run(
        support::bosar("http://127.0.0.1:9", "cfgtest")
            .arg("--config")
            .arg("/nonexistent/deploy.toml")
            .arg("alb-update"),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("cannot read config /nonexistent/deploy.toml"),
        "{}",
        out.stderr
    );
}

#[test]
fn committed_deploy_toml_is_valid_with_bosar_production_values() {
    let cfg =
        bosar_deploy::config::parse(std::path::Path::new("deploy.toml"), GOOD).expect("valid");
    let tg = &cfg.target_group;
    assert_eq!(tg.cookie_duration.map(|d| d.as_secs()), Some(86_400));
    assert_eq!(tg.deregistration_delay.map(|d| d.as_secs()), Some(30));
    assert_eq!(
        tg.algorithm.map(|a| a.as_aws()),
        Some("least_outstanding_requests")
    );
    // What the file leaves out is not managed.
    assert_eq!(tg.slow_start, None);
    assert_eq!(tg.anomaly_mitigation, None);
    assert_eq!(cfg.gateway.as_ref().unwrap().namespace, "/chat");
}

#[test]
fn no_credentials_is_a_clear_message_in_seconds() {
    let start = std::time::Instant::now();
    let out = support::run(
        support::bosar("http://127.0.0.1:9", "cfgtest")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .arg("--config")
            .arg(support::repo().join("deploy.toml"))
            .arg("alb-update"),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no usable AWS credentials"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// Issue 17 point 5: ECS passes every environment value as text, so a number is taken as
/// written; the gateway's interval variables are milliseconds, so a duration there is refused
/// with its value in milliseconds, with or without `[gateway]`.
#[test]
fn environment_values_take_numbers_and_refuse_durations_where_the_gateway_reads_ms() {
    use bosar_deploy::config::parse;
    let path = std::path::Path::new("deploy.toml");
    let base = "[target_group]\nname = \"tg\"\n[ecs]\ncluster = \"c\"\nservice = \"s\"\ncontainer = \"c\"\n\n[ecs.environment]\n";
    let cfg = parse(
        path,
        &format!("{base}WEBSOCKET_HEARTBEAT_INTERVAL = 30000\nWEBSOCKET_DEBUG = true\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let env = cfg.ecs.unwrap().environment.unwrap();
    assert_eq!(env["WEBSOCKET_HEARTBEAT_INTERVAL"], "30000");
    assert_eq!(env["WEBSOCKET_DEBUG"], "true");
    let msg = parse(
        path,
        &format!("{base}WEBSOCKET_HEARTBEAT_INTERVAL = \"30s\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("deploy.toml:9:32: ecs.environment.WEBSOCKET_HEARTBEAT_INTERVAL: \"30s\" is not a number of milliseconds"),
        "{msg}"
    );
    assert!(
        msg.contains("allowed: whole milliseconds: \"30000\""),
        "{msg}"
    );
    // Any other variable keeps its text as it is.
    assert!(parse(path, &format!("{base}WEBSOCKET_GREETING = \"30s\"\n")).is_ok());
    let msg = parse(path, &format!("{base}WEBSOCKET_PING_TIMEOUT = [1]\n"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("a string, a whole number or true/false"),
        "{msg}"
    );
    assert!(!msg.contains("durations carry units"), "{msg}");
}

/// `[gateway] test_url` (issue 18): validated like `url`, optional.
#[test]
fn gateway_test_url_is_an_http_url() {
    let base = "[target_group]\nname = \"tg\"\n[gateway]\nurl = \"https://api.example\"\n";
    let ok = bosar_deploy::config::parse(
        std::path::Path::new("deploy.toml"),
        &format!("{base}test_url = \"https://api.example:8443/\"\n"),
    )
    .unwrap();
    assert_eq!(
        ok.gateway.unwrap().test_url.as_deref(),
        Some("https://api.example:8443")
    );
    let err = bosar_deploy::config::parse(
        std::path::Path::new("deploy.toml"),
        &format!("{base}test_url = \"ftp://x\"\n"),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("gateway.test_url") && msg.contains("is not an http(s) URL"),
        "{msg}"
    );
    assert!(msg.contains("deploy.toml:5"), "{msg}");
}

#[test]
fn the_monitor_section_takes_cloudwatch_names_and_says_where_one_is_wrong() {
    use bosar_deploy::config::parse_environment;
    let path = std::path::Path::new("deploy.toml");
    let base = "[target_group]\nname = \"bosar-api-tg\"\n";
    let cfg = parse_environment(path, base, None).unwrap();
    assert!(cfg.monitor.is_none(), "absent: the defaults apply");
    let good = format!("{base}\n[monitor]\nnamespace = \"BoSar/Gateway\"\n\n[monitor.dimensions]\nService = \"chat-api\"\n");
    let m = parse_environment(path, &good, None)
        .unwrap()
        .monitor
        .unwrap();
    assert_eq!(m.namespace, "BoSar/Gateway");
    assert_eq!(m.dimensions["Service"], "chat-api");
    let cases = [
        (
            "namespace = \":aws\"",
            "monitor.namespace",
            "not a CloudWatch namespace",
        ),
        (
            "namespace = \"\"",
            "monitor.namespace",
            "not a CloudWatch namespace",
        ),
        (
            "dimensions = { Service = \"caf\u{e9}\" }",
            "monitor.dimensions.Service",
            "not a CloudWatch dimension value",
        ),
        (
            "dimensions = { \":x\" = \"y\" }",
            "monitor.dimensions.:x",
            "not a CloudWatch dimension name",
        ),
        (
            "dimensions = { Service = 1 }",
            "monitor.dimensions.Service",
            "expected a string",
        ),
        ("name = \"x\"", "monitor", "name"),
    ];
    for (line, key, says) in cases {
        let text = format!("{base}\n[monitor]\n{line}\n");
        let e = parse_environment(path, &text, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(key) && e.contains(says), "{line}: {e}");
        assert!(
            e.contains("deploy.toml:5"),
            "{line}: the line is named: {e}"
        );
    }
    let many: Vec<String> = (0..31).map(|i| format!("D{i} = \"v\"")).collect();
    let text = format!("{base}\n[monitor.dimensions]\n{}\n", many.join("\n"));
    let e = parse_environment(path, &text, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 30 dimensions"), "{e}");
}
