//! AWS's free text and task definition values, as `status`, `plan`, `deploy --dry-run` and a
//! failing `deploy` print them under GitHub Actions (`GITHUB_ACTIONS=true`, a step summary
//! file, `--junit`): moto runs in a Python process (`support/moto_hostile.py`) that puts
//! workflow commands and line breaks into an ECS event, the deployment's rolloutStateReason
//! and a stopped task's reason (through moto's backend and RunTask + StopTask), and
//! credentials into the task definition's environment. Nothing is injected (no line the
//! Actions runner would act on but the tool's own annotations), nothing is leaked (no
//! credential in any output or report), and JSON keeps the text as AWS has it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{foreign_commands, measure, Measured};

const MARK: &str = "PWNED";
const INJECT: &str = "task failed\n::add-mask::PWNED\r::stop-commands::PWNED %0A::error::PWNED ##[error]PWNED \u{202e}txt.exe \
    pull https://ci:ghp_AwsText0Pass/w#rd@registry.example/v2/ www.evil.example admin@evil.example";
/// The user info of the URL in [`INJECT`], never in any output.
const URL_USER_INFO: &str = "ci:ghp_AwsText0Pass/w#rd";
/// The credentials in the task definition (as it is, and as deploy.toml wants it).
const SECRETS: [&str; 12] = [
    "ghp_AwsText0Pass",
    "ss0w?rd",
    "est0pw",
    "plain0pw0value",
    "old0pa/ss",
    "old0gu#est",
    "old0pw0value",
    "s3cr3t-pass",
    "hunter2",
    "oldtok-123456",
    "n3w-s3cr3t-pass",
    "hunter3",
];

/// moto in a Python process, stopped when dropped (its stdin closes).
struct HostileMoto {
    child: Child,
    endpoint: String,
}

impl Drop for HostileMoto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HostileMoto {
    fn start(config: &Path) -> HostileMoto {
        let py = support::repo().join(".venv/bin/python");
        assert!(
            py.exists(),
            "run `bash scripts/setup.sh` first (moto in .venv)"
        );
        let mut child = Command::new(py)
            .arg(support::repo().join("tests/support/moto_hostile.py"))
            .arg(config)
            .arg(serde_json::to_string(INJECT).unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_hostile.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("moto_hostile.py did not start ({e}): {line:?}"));
        HostileMoto {
            endpoint: v["endpoint"].as_str().unwrap().to_string(),
            child,
        }
    }
}

/// The sandbox config with credentials in `[ecs.environment]` and the gateway's intervals.
fn config() -> (tempfile::TempDir, PathBuf) {
    let text = support::sandbox_config().replacen(
        "[ecs.environment]\n",
        "[ecs.environment]\nWEBSOCKET_AUTH_PASS = \"n3w-s3cr3t-pass\"\nWEBSOCKET_REDIS_URL = \"redis://:hunter3@redis.internal:6379\"\n\
         WEBSOCKET_DB_URL = \"postgres://app:pa/ss0w?rd@db:5432/app\"\nWEBSOCKET_MQ_URL = \"amqp://guest:gu#est0pw@mq\"\n\
         WEBSOCKET_DB_PW = \"plain0pw0value\"\n",
        1,
    );
    assert!(text.contains("n3w-s3cr3t-pass"));
    support::write_config(&text)
}

struct Out {
    m: Measured,
    summary: String,
    junit: String,
}

fn run(moto: &HostileMoto, cfg: &Path, global: &[&str], verb: &[&str], junit: bool) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let junit_path = dir.path().join("junit.xml");
    let mut cmd = support::bosar(&moto.endpoint, "aws-text");
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .arg("--config")
        .arg(cfg)
        .args(global)
        .args(verb);
    if junit {
        cmd.arg("--junit").arg(&junit_path);
    }
    let m = measure(&mut cmd, Duration::from_secs(60));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Out {
        summary: read(&summary),
        junit: read(&junit_path),
        m,
    }
}

/// Nothing injected, nothing leaked, no raw control or bidi character in text for people.
fn assert_clean(out: &Out, json: bool) {
    let all = out.m.run.all();
    let foreign = foreign_commands(&all, MARK);
    assert!(foreign.is_empty(), "injected: {foreign:#?}\n{all}");
    for s in SECRETS {
        for (what, text) in [
            ("output", &all),
            ("summary", &out.summary),
            ("junit", &out.junit),
        ] {
            assert!(!text.contains(s), "{s} in the {what}:\n{text}");
        }
    }
    let hidden = |c: char| bosar_deploy::outside::is_hidden(c) && c != '\n';
    let texts = [&out.m.run.stderr, &out.summary, &out.junit];
    for text in texts
        .into_iter()
        .chain((!json).then_some(&out.m.run.stdout))
    {
        let bad: Vec<char> = text.chars().filter(|c| hidden(*c)).collect();
        assert!(bad.is_empty(), "raw {bad:?} in:\n{text}");
    }
    // The summary, as GitHub renders it: no link (`www.`, `admin@`), no HTML.
    support::gfm::assert_renders_as_text(&out.summary);
    assert!(
        out.m.elapsed < Duration::from_secs(30),
        "{:?}",
        out.m.elapsed
    );
}

/// Findings 3 and 9: ECS's event message and rolloutStateReason in `status`, escaped in text,
/// as AWS has them in JSON but for a URL's user info (`***` everywhere: issue 22's point 3).
#[test]
fn status_shows_ecs_text_escaped() {
    let (_dir, cfg) = config();
    let moto = HostileMoto::start(&cfg);
    let out = run(&moto, &cfg, &[], &["status"], false);
    assert_eq!(out.m.run.code, 0, "{}", out.m.run.all());
    assert_clean(&out, false);
    assert!(
        out.m
            .run
            .stdout
            .contains(r"task failed\n::add-mask::PWNED\r::stop-commands::PWNED"),
        "{}",
        out.m.run.stdout
    );
    let out = run(&moto, &cfg, &["--output", "json"], &["status"], false);
    assert_clean(&out, true);
    let doc: serde_json::Value = serde_json::from_str(&out.m.run.stdout).unwrap();
    assert_eq!(
        doc["service"]["service"]["events"][0]["message"],
        INJECT.replace(URL_USER_INFO, "***"),
        "{doc:#}"
    );
}

/// Finding 4: credentials in the task definition's environment (by name: `*_PASS`, `*_TOKEN`,
/// `*_PW`; in a URL: `redis://:pw@host`, with `/`, `?` or `#` in the password: issue 22's
/// point 3) are masked by `plan` and `deploy --dry-run` in text, JSON, JUnit and the step
/// summary.
#[test]
fn plan_and_dry_run_mask_credentials() {
    let (_dir, cfg) = config();
    let moto = HostileMoto::start(&cfg);
    for global in [&[][..], &["--output", "json"][..]] {
        let json = !global.is_empty();
        let out = run(&moto, &cfg, global, &["plan"], true);
        assert_eq!(out.m.run.code, 0, "{}", out.m.run.all());
        assert_clean(&out, json);
        if !json {
            let text = &out.m.run.stdout;
            for line in [
                "~ environment.WEBSOCKET_AUTH_PASS: (sensitive) -> (sensitive)",
                "~ environment.WEBSOCKET_REDIS_URL: (sensitive) -> (sensitive)",
                "- environment.WEBSOCKET_OLD_TOKEN: (sensitive)",
                "~ environment.WEBSOCKET_DB_URL: (sensitive) -> (sensitive)",
                "~ environment.WEBSOCKET_MQ_URL: (sensitive) -> (sensitive)",
                "~ environment.WEBSOCKET_DB_PW: (sensitive) -> (sensitive)",
            ] {
                assert!(text.contains(line), "{line} not in:\n{text}");
            }
        }
        let out = run(&moto, &cfg, global, &["deploy", "--dry-run"], false);
        assert_eq!(out.m.run.code, 0, "{}", out.m.run.all());
        assert_clean(&out, json);
    }
}

/// Findings 3 and 9: a deploy that fails prints ECS's rolloutStateReason, events and the
/// stopped task's reason (set by whoever may `ecs:StopTask --reason`) as causes, escaped, a
/// URL's user info `***` (issue 22's point 3) in the log, annotations, JUnit and the summary;
/// the only annotation is the tool's own.
#[test]
fn a_failed_deploy_prints_hostile_causes_escaped() {
    let (_dir, cfg) = config();
    let moto = HostileMoto::start(&cfg);
    let out = run(
        &moto,
        &cfg,
        &[],
        &["deploy", "--image", "repo/bosar-api:9.9.9"],
        true,
    );
    assert_eq!(out.m.run.code, 1, "{}", out.m.run.all());
    assert_clean(&out, false);
    let err = &out.m.run.stderr;
    assert!(err.contains("causes:"), "{err}");
    assert!(err.contains("stopped: task failed\\n"), "{err}");
    assert!(err.contains(r"\u{202e}txt.exe"), "{err}");
    assert!(
        err.contains("pull https://***@registry.example/v2/"),
        "{err}"
    );
    assert!(
        out.m.run.stdout.contains("::error::"),
        "{}",
        out.m.run.stdout
    );
    // The same failure as one JSON document: the causes as AWS has them, but the user info.
    let out = run(
        &moto,
        &cfg,
        &["--output", "json"],
        &["deploy", "--image", "repo/bosar-api:9.9.10"],
        true,
    );
    assert_eq!(out.m.run.code, 1, "{}", out.m.run.all());
    assert_clean(&out, true);
    let doc: serde_json::Value = serde_json::from_str(&out.m.run.stdout).unwrap();
    assert!(
        doc.to_string()
            .contains("pull https://***@registry.example/v2/"),
        "{doc:#}"
    );
}

/// A container name from AWS that would forge a log line (a line break, then a timestamp).
const FORGED_NAME: &str = "x\n2026-01-01T00:00:00Z error: forged";

/// Issue 22's point 4: the two errors that name the task definition's containers (`plan`,
/// whose `[ecs] container` is not there; `init`, which cannot choose one) show AWS's names as
/// outside text: the line break escaped, no forged line in the log.
#[test]
fn container_names_in_errors_cannot_forge_a_log_line() {
    let moto = support::Moto::start();
    let (_dir, cfg) = support::write_config(&support::sandbox_config());
    moto.seed(&cfg, &[]);
    moto.python(&format!(
        r#"
import boto3
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster="bosar-cluster", services=["bosar-api"])["services"][0]
td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
for c in td["containerDefinitions"]:
    if c["name"] == "bosar-api":
        c["name"] = {}
keep = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
        "requiresCompatibilities", "cpu", "memory", "runtimePlatform", "ephemeralStorage")
new = ecs.register_task_definition(**{{k: td[k] for k in keep if k in td}})
ecs.update_service(cluster="bosar-cluster", service="bosar-api", taskDefinition=new["taskDefinition"]["taskDefinitionArn"])
"#,
        serde_json::to_string(FORGED_NAME).unwrap()
    ));
    let init_dir = tempfile::tempdir().unwrap();
    let runs = [
        support::run(
            support::bosar(&moto.endpoint, "forged-plan")
                .env("GITHUB_ACTIONS", "true")
                .arg("--config")
                .arg(&cfg)
                .arg("plan"),
        ),
        support::run(
            support::bosar(&moto.endpoint, "forged-init")
                .env("GITHUB_ACTIONS", "true")
                .current_dir(init_dir.path())
                .args(["init", "--cluster", "bosar-cluster"])
                .args(["--service", "bosar-api"]),
        ),
    ];
    for run in runs {
        assert_ne!(run.code, 0, "{}", run.all());
        let all = run.all();
        assert!(
            all.contains(r"x\n2026-01-01T00:00:00Z error: forged"),
            "{all}"
        );
        let forged: Vec<&str> = all
            .split(['\n', '\r'])
            .filter(|l| l.trim_start().starts_with("2026-01-01T00:00:00Z"))
            .collect();
        assert!(forged.is_empty(), "forged lines {forged:?} in:\n{all}");
    }
}

/// Issue 22's point 3: a target health description from ELB (free text) with a URL's user
/// info in it, read through the one path for AWS text: `***` in the text shown and in JSON.
#[tokio::test(start_paused = true)]
async fn target_health_descriptions_lose_url_user_info() {
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
    use aws_sdk_elasticloadbalancingv2::types::{
        TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
    };
    let health =
        aws_smithy_mocks::mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
            .then_output(|| {
                DescribeTargetHealthOutput::builder()
                    .target_health_descriptions(
                        TargetHealthDescription::builder()
                            .target(TargetDescription::builder().id("10.0.1.10").build())
                            .target_health(
                                TargetHealth::builder()
                                    .state(TargetHealthStateEnum::Unhealthy)
                                    .description(INJECT)
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
    let aws = support::mocks::aws(&[], &[&health]);
    let th = bosar_deploy::ecs::target_health(&aws, &["arn:tg".into()])
        .await
        .unwrap();
    let unhealthy = &th[0].unhealthy[0];
    let json = serde_json::to_string(&th).unwrap();
    for text in [unhealthy.to_string(), json] {
        assert!(!text.contains("ghp_AwsText0Pass"), "{text}");
        assert!(
            text.contains("pull https://***@registry.example/v2/"),
            "{text}"
        );
    }
}
