//! The command line itself: completions, usage errors exit 2, help names the exit codes.

mod support;

use support::run;

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(support::bin_path());
    c.env_remove("BOSAR_DEPLOY_CONFIG")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(bin().args(["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("alb-update") && out.stdout.contains("detailed-exitcode"),
            "{shell}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let out = run(bin().args(["alb-update", "--no-such-flag"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
    let out = run(bin().args(["deploy", "--timeout", "ten"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--timeout") && out.stderr.contains("not a duration"),
        "{}",
        out.stderr
    );
    let out = run(bin().args(["verify", "--rate", "5"]));
    assert_eq!(out.code, 2, "--rate needs --connections: {}", out.stderr);
    let out = run(bin()
        .args(["--region", "mars", "--config"])
        .arg(support::repo().join("deploy.toml"))
        .arg("alb-update"));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("--region: \"mars\" is not an AWS region"),
        "{}",
        out.stderr
    );
    let out = run(bin().arg("--help"));
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("3 changes pending") && out.stdout.contains("130 interrupted"),
        "{}",
        out.stdout
    );
}

/// Finding 8: `--rate 1e-300` made `Duration::from_secs_f64` panic (exit 101). Out-of-range
/// rates are usage errors, exit 2, before anything is contacted.
#[test]
fn probe_rates_out_of_range_are_usage_errors() {
    let (_dir, cfg) = support::write_config(
        "[target_group]\nname = \"tg\"\nstickiness = \"off\"\n\n[gateway]\nurl = \"http://127.0.0.1:9\"\n",
    );
    for rate in ["1e-300", "0", "-1", "NaN", "inf", "1e9"] {
        let out = run(bin()
            .arg("--config")
            .arg(&cfg)
            .args(["verify", "--connections", "2"])
            .arg(format!("--rate={rate}")));
        assert_eq!(out.code, 2, "--rate {rate}: {}", out.stderr);
        assert!(out.stderr.contains("--rate"), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

/// Finding 4: a token shorter than 16 characters is refused (exit 2) without being printed;
/// a token is not sent over plain http:// to a host that is not loopback (exit 2, saying why)
/// unless `--allow-insecure-token`; a URL's user info is never printed.
#[test]
fn token_rules_are_usage_errors() {
    let (_dir, cfg) = support::write_config(
        "[target_group]\nname = \"tg\"\nstickiness = \"off\"\n\n[gateway]\nurl = \"http://127.0.0.1:9\"\ntoken_env = \"BOSAR_CLI_TOKEN\"\n",
    );
    let verify = |token: &str, args: &[&str]| {
        run(bin()
            .env("BOSAR_CLI_TOKEN", token)
            .arg("--config")
            .arg(&cfg)
            .arg("verify")
            .args(args))
    };
    let out = verify("e", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("shorter than 16 characters"),
        "{}",
        out.stderr
    );
    let token = "cli-test-token-0123456789";
    let out = verify(
        token,
        &["--url", "http://admin:hunter2@gateway.example.com"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("plain http://"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--allow-insecure-token"),
        "{}",
        out.stderr
    );
    assert!(!out.all().contains("hunter2"), "{}", out.all());
    // Allowed: it goes on (and fails to connect to a closed port on loopback, exit 1),
    // never printing the password.
    let port = support::free_port();
    let url = format!("http://admin:hunter2@127.0.0.1:{port}");
    let out = verify(token, &["--url", &url, "--output", "json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(!out.all().contains("hunter2"), "{}", out.all());
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["verify"]["url"], format!("http://127.0.0.1:{port}"));
}
