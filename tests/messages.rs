//! Errors in plain sentences and verbosity that helps (issue 12), each with a real cause: a
//! closed loopback port, moto answering 500 for a region it does not serve, a profile that is
//! in no config file; `-v` and `-vv` against moto.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::{bosar, run, write_config, Moto};

const MINIMAL: &str = "[target_group]\nname = \"bosar-api-tg\"\n\n[ecs]\ncluster = \"bosar-cluster\"\nservice = \"bosar-api\"\ncontainer = \"bosar-api\"\n";

fn assert_no_dump(text: &str) {
    for never in [
        "DispatchFailure",
        "ConnectorError",
        "ServiceError: \n",
        "ResponseError",
        "SdkBody",
        "ErrorMetadata",
    ] {
        assert!(!text.contains(never), "a Debug dump ({never}):\n{text}");
    }
    assert!(
        !text.contains("ServiceError: "),
        "an empty ServiceError:\n{text}"
    );
}

#[test]
fn a_closed_port_names_the_endpoint_its_variable_and_the_cause_within_seconds() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = format!("http://127.0.0.1:{port}");
    let (_d, cfg) = write_config(MINIMAL);
    let start = Instant::now();
    let out = run(bosar(&endpoint, "closed")
        .arg("--config")
        .arg(&cfg)
        .arg("status"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "GetCallerIdentity failed: could not connect to {endpoint} (from AWS_ENDPOINT_URL): connection refused"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("nothing listens at the endpoint in AWS_ENDPOINT_URL"),
        "{}",
        out.stderr
    );
    assert_no_dump(&out.all());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn an_answer_without_an_error_code_is_still_a_sentence() {
    // moto serves a region it does not know with an empty HTTP 500.
    let moto = Moto::start();
    let (_d, cfg) = write_config(MINIMAL);
    let out = run(bosar(&moto.endpoint, "fake-region")
        .env("AWS_REGION", "us-fake-9")
        .arg("--config")
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("DescribeTargetGroups failed: HTTP 500: AWS sent no error code or message"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("check the region"), "{}", out.stderr);
    assert_no_dump(&out.all());
}

#[test]
fn a_profile_that_does_not_exist_says_so_and_lists_the_files_read() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-1\n[profile staging]\nregion = eu-west-1\n",
    )
    .unwrap();
    let (_d, cfg) = write_config(MINIMAL);
    for (how, args, env) in [
        ("--profile", vec!["--profile", "prod"], None),
        ("AWS_PROFILE", vec![], Some("prod")),
    ] {
        let mut cmd = bosar("http://127.0.0.1:9", "profile");
        cmd.env("HOME", home.path())
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE");
        if let Some(p) = env {
            cmd.env("AWS_PROFILE", p);
        }
        let out = run(cmd.arg("--config").arg(&cfg).args(&args).arg("status"));
        assert_eq!(out.code, 2, "{how}: {}", out.all());
        let config = home.path().join(".aws/config");
        assert!(
            out.stderr.contains(&format!(
                "AWS profile \"prod\" ({how}) is not in the AWS config files read: {}",
                config.display()
            )),
            "{how}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("(not found); profiles there: default, staging"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn verbosity_shows_the_setup_then_every_call() {
    let moto = Moto::start();
    let (_d, cfg) = write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    let out = run(bosar(&moto.endpoint, "v1")
        .args(["-v", "--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    for want in [
        format!("config {}", cfg.display()),
        "region us-east-1 (from [aws] region)".to_string(),
        format!("endpoint {} (from AWS_ENDPOINT_URL)", moto.endpoint),
        "credentials from EnvironmentVariable (chosen by the default chain (no profile named)): account 123456789012, caller arn:aws:sts::123456789012:user/moto".to_string(),
    ] {
        assert!(out.stderr.contains(&want), "missing {want:?}:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("aws: "), "-v shows no call lines");
    let out = run(bosar(&moto.endpoint, "v2")
        .args(["-vv", "--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let calls: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(" aws: "))
        .collect();
    for op in [
        "STS GetCallerIdentity HTTP 200 in ",
        "Elastic Load Balancing v2 DescribeTargetGroups HTTP 200 in ",
        "Elastic Load Balancing v2 DescribeTargetGroupAttributes HTTP 200 in ",
        "Elastic Load Balancing v2 DescribeLoadBalancerAttributes HTTP 200 in ",
    ] {
        assert!(
            calls
                .iter()
                .any(|l| l.contains(op) && l.contains("request id ")),
            "missing {op:?}:\n{}",
            out.stderr
        );
    }
    // Credentials never appear, at any verbosity.
    assert!(!out.all().contains("testing"), "{}", out.all());
}

/// Issue 17 point 1: a named profile is the credential source even when environment keys
/// (another account's, in a shell used for something else) are set, as in the AWS CLI. moto
/// names the IAM user behind an access key in GetCallerIdentity, so the caller proves which
/// keys signed the calls; environment keys name no user (`user/moto`).
#[test]
fn a_named_profile_beats_environment_keys_and_says_so() {
    let moto = Moto::start();
    // Seeding resets moto: the user comes after it.
    let sandbox = support::sandbox_config();
    let (_seed_dir, seed_cfg) = write_config(&sandbox);
    moto.seed(&seed_cfg, &[]);
    let keys = moto.python(
        "import boto3, json\n\
         iam = boto3.client('iam')\n\
         iam.create_user(UserName='deployer-prod')\n\
         k = iam.create_access_key(UserName='deployer-prod')['AccessKey']\n\
         print(k['AccessKeyId'] + ' ' + k['SecretAccessKey'])",
    );
    let (id, secret) = keys
        .lines()
        .last()
        .and_then(|l| l.trim().split_once(" "))
        .expect("access key");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!("[prod]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n[empty]\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile prod]\nregion = us-east-1\n[profile empty]\nregion = us-east-1\n",
    )
    .unwrap();
    let with_profile = sandbox.replacen("[aws]\n", "[aws]\nprofile = \"prod\"\n", 1);
    for (how, config, args, env) in [
        (
            "--profile",
            sandbox.as_str(),
            vec!["--profile", "prod"],
            None,
        ),
        ("[aws] profile", with_profile.as_str(), vec![], None),
        ("AWS_PROFILE", sandbox.as_str(), vec![], Some("prod")),
    ] {
        let (_d, cfg) = write_config(config);
        let mut cmd = bosar(&moto.endpoint, "profile-wins");
        cmd.env("HOME", home.path())
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE");
        if let Some(p) = env {
            cmd.env("AWS_PROFILE", p);
        }
        let out = run(cmd
            .args(["-v", "--output", "json", "--config"])
            .arg(&cfg)
            .args(&args)
            .args(["alb-update", "--dry-run"]));
        assert_eq!(out.code, 0, "{how}: {}", out.all());
        assert!(
            out.stderr.contains(&format!(
                "credentials from profile prod (ProfileFile) (chosen by {how}); ignored AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: account 123456789012, caller arn:aws:iam::123456789012:user/deployer-prod"
            )),
            "{how}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY are set in the environment and ignored: profile \"prod\""
            ),
            "{how}: {}",
            out.stderr
        );
        assert!(!out.all().contains(secret), "{how}: the secret key leaked");
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["credentials"]["chosen_by"], how, "{doc}");
        assert_eq!(doc["credentials"]["source"], "profile prod (ProfileFile)");
        assert_eq!(
            doc["credentials"]["ignored"],
            serde_json::json!(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        );
        assert!(
            doc["warnings"].as_array().unwrap().iter().any(|w| w
                .as_str()
                .unwrap()
                .contains("set in the environment and ignored")),
            "{doc}"
        );
    }
    // Without a named profile the environment keys are used, and nothing is ignored.
    let cfg = seed_cfg;
    let out = run(bosar(&moto.endpoint, "no-profile")
        .env("HOME", home.path())
        .args(["-v", "--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("credentials from EnvironmentVariable (chosen by the default chain (no profile named)): account 123456789012, caller arn:aws:sts::123456789012:user/moto"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("ignored"), "{}", out.stderr);
    // A named profile without credentials says which profile and never falls back to the
    // environment's keys.
    let out = run(bosar(&moto.endpoint, "empty-profile")
        .env("HOME", home.path())
        .args(["--profile", "empty", "--config"])
        .arg(&cfg)
        .args(["alb-update", "--dry-run"]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("no usable AWS credentials in profile \"empty\" (named by --profile)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("aws configure --profile empty"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("set AWS_PROFILE"), "{}", out.stderr);
}
