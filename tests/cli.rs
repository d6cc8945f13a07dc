//! The command line itself: completions, usage errors exit 2, help names the exit codes.

mod support;

use support::run;

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_bosar-deploy"));
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
