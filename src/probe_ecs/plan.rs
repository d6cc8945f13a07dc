//! What each shard task is told, before any call: its command line, the config it reads (the
//! `[gateway]` section as TOML text in `$BOSAR_DEPLOY_CONFIG_TOML`: variable names, never a
//! value), and what the task definition must hold (the token's variable as an ECS `secrets`
//! entry, awslogs logging). Pure, so every refusal is unit-tested.

use crate::cli::{ReconnectLike, VerifyArgs};
use crate::config::{Config, GatewaySection, ProbeEcsSection, ENV_CONFIG_TOML};

/// What RunTask is asked for one shard: the container's command and its one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOrder {
    /// 1-based.
    pub index: u32,
    pub command: Vec<String>,
    /// `(name, value)`: only [`ENV_CONFIG_TOML`].
    pub environment: Vec<(String, String)>,
}

/// Where a task's output goes (the awslogs driver): stream `PREFIX/CONTAINER/TASK_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlace {
    pub group: String,
    pub prefix: String,
    pub container: String,
}

impl LogPlace {
    pub fn stream(&self, task_id: &str) -> String {
        format!("{}/{}/{task_id}", self.prefix, self.container)
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The probe flags a shard repeats: everything that shapes its sessions and its verdicts.
fn forwarded_flags(args: &VerifyArgs) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push(format!("--{name}"));
            out.push(v);
        }
    };
    flag("url", args.url.clone());
    flag("rate", args.rate.map(|r| r.to_string()));
    flag("concurrency", args.concurrency.map(|c| c.to_string()));
    flag("hold", args.hold.map(ms));
    flag("max-error-rate", args.max_error_rate.map(|r| r.to_string()));
    flag("max-p99", args.max_p99.map(ms));
    let c = &args.comeback;
    flag(
        "reconnect-delay",
        c.reconnect_delay
            .map(|(a, b)| format!("{}..{}", ms(a), ms(b))),
    );
    flag("max-lost", c.max_lost.map(|n| n.to_string()));
    flag("max-drop-rate", c.max_drop_rate.map(|r| r.to_string()));
    flag("max-reconnect-p99", c.max_reconnect_p99.map(ms));
    flag(
        "reconnect-like",
        c.reconnect_like.map(|l| match l {
            ReconnectLike::Browser => "browser".to_string(),
            ReconnectLike::Always => "always".to_string(),
        }),
    );
    flag("run-id", args.run_id.clone());
    if args.reconnect {
        out.push("--reconnect".into());
    }
    if args.until_stopped {
        out.push("--until-stopped".into());
    }
    if args.allow_insecure_token {
        out.push("--allow-insecure-token".into());
    }
    out
}

/// Shard `index` of `k`: `--output json verify --connections N --shard I/K --start-at T`
/// and the forwarded flags (the image's entrypoint is the binary).
pub fn shard_command(args: &VerifyArgs, n: u32, index: u32, k: u32, start_at: &str) -> Vec<String> {
    // Not --quiet: its progress lines ("probe: 480/500 open") are what the watch shows.
    let mut cmd: Vec<String> = ["--output", "json", "verify", "--connections"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.push(n.to_string());
    cmd.push("--shard".into());
    cmd.push(format!("{index}/{k}"));
    cmd.push("--start-at".into());
    cmd.push(start_at.to_string());
    cmd.extend(forwarded_flags(args));
    cmd
}

/// The config a shard reads: `[target_group]` (required by the file's schema; the shard makes
/// no AWS call) and the `[gateway]` keys, names of variables included, never their values.
pub fn shard_config(cfg: &Config, gw: &GatewaySection) -> String {
    let mut g = toml::map::Map::new();
    let mut put = |k: &str, v: toml::Value| {
        g.insert(k.to_string(), v);
    };
    put("url", gw.url.clone().into());
    put("namespace", gw.namespace.clone().into());
    put("health_path", gw.health_path.clone().into());
    if let Some(t) = &gw.token_env {
        put("token_env", t.clone().into());
    }
    if let Some(j) = &gw.jwt_secret_env {
        put("jwt_secret_env", j.clone().into());
    }
    put("ping_interval", ms(gw.ping_interval).into());
    put("ping_timeout", ms(gw.ping_timeout).into());
    put("heartbeat_event", gw.heartbeat_event.clone().into());
    put("heartbeat_interval", ms(gw.heartbeat_interval).into());
    let mut tg = toml::map::Map::new();
    tg.insert("name".into(), target_group_name(cfg).into());
    let mut root = toml::map::Map::new();
    root.insert("target_group".into(), toml::Value::Table(tg));
    root.insert("gateway".into(), toml::Value::Table(g));
    toml::to_string(&toml::Value::Table(root)).unwrap_or_default()
}

/// The `[target_group]` name a shard's file carries: the real one when named, else a
/// placeholder (the shard never reads it).
fn target_group_name(cfg: &Config) -> String {
    match &cfg.target_group.id {
        crate::config::ResourceRef::Name(n) => n.clone(),
        crate::config::ResourceRef::Arn(_) => "unused-by-shards".into(),
    }
}

/// Every shard's task, sharing one start time.
pub fn shard_orders(
    args: &VerifyArgs,
    cfg: &Config,
    gw: &GatewaySection,
    n: u32,
    k: u32,
    start_at: &str,
) -> Vec<ShardOrder> {
    orders(args, &shard_config(cfg, gw), n, k, start_at)
}

/// Every shard's task from the shard config already written (`config`).
pub fn orders(args: &VerifyArgs, config: &str, n: u32, k: u32, start_at: &str) -> Vec<ShardOrder> {
    (1..=k)
        .map(|i| ShardOrder {
            index: i,
            command: shard_command(args, n, i, k, start_at),
            environment: vec![(ENV_CONFIG_TOML.to_string(), config.to_string())],
        })
        .collect()
}

/// The variables the shard reads its token (or JWT secret) from.
pub fn token_variables(gw: &GatewaySection) -> Vec<&str> {
    gw.token_env
        .iter()
        .chain(gw.jwt_secret_env.iter())
        .map(String::as_str)
        .collect()
}

/// The parts of the task definition's container this run depends on.
#[derive(Debug, Clone, Default)]
pub struct ContainerFacts {
    pub name: String,
    /// Names of its `secrets` entries.
    pub secrets: Vec<String>,
    /// Names of its plain `environment` entries.
    pub environment: Vec<String>,
    pub log_driver: Option<String>,
    pub log_group: Option<String>,
    pub log_prefix: Option<String>,
}

/// What the task definition `td` lacks for a shard, each with what to add; else where its
/// documents are. The token must come as a `secrets` entry (by reference), never as a value.
pub fn check_container(
    td: &str,
    c: &ContainerFacts,
    gw: &GatewaySection,
    p: &ProbeEcsSection,
) -> Result<LogPlace, Vec<String>> {
    let mut missing = Vec::new();
    let vars = token_variables(gw);
    for var in vars
        .iter()
        .filter(|v| c.environment.iter().any(|e| e == *v))
    {
        missing.push(format!(
            "container {} of task definition {td} holds {var} as a plain environment value (the token in clear, in the task definition): make it a `secrets` entry",
            c.name
        ));
    }
    // The shard uses the first variable that is set, so one reference is enough.
    let by_reference = vars.iter().any(|v| c.secrets.iter().any(|s| s == v));
    if !vars.is_empty() && !by_reference {
        let var = vars[0];
        missing.push(format!(
            "container {} of task definition {td} has no `secrets` entry named {}: add {{\"name\": \"{var}\", \"valueFrom\": \"arn:aws:secretsmanager:…\" or an SSM parameter ARN}}, the token source [gateway] names, so the shard reads it by reference",
            c.name,
            vars.join(" or ")
        ));
    }
    let awslogs = c.log_driver.as_deref() == Some("awslogs");
    let group = p
        .log_group
        .clone()
        .or_else(|| c.log_group.clone().filter(|_| awslogs));
    let prefix = p
        .log_stream_prefix
        .clone()
        .or_else(|| c.log_prefix.clone().filter(|_| awslogs));
    if group.is_none() || prefix.is_none() {
        missing.push(format!(
            "container {} of task definition {td} does not log with awslogs and an awslogs-stream-prefix: give it a logConfiguration {{\"logDriver\": \"awslogs\", \"options\": {{\"awslogs-group\": …, \"awslogs-stream-prefix\": …}}}}, or set [probe.ecs] log_group and log_stream_prefix",
            c.name
        ));
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(LogPlace {
        group: group.unwrap_or_default(),
        prefix: prefix.unwrap_or_default(),
        container: c.name.clone(),
    })
}

/// `--start-at` for the shards: the given one, else now plus `[probe.ecs] start_delay`, to the
/// second.
pub fn start_at(given: Option<&str>, now: std::time::SystemTime, p: &ProbeEcsSection) -> String {
    match given {
        Some(t) => t.to_string(),
        None => humantime::format_rfc3339_seconds(now + p.start_delay).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const FILE: &str = "[target_group]\nname = \"tg\"\n\
        [gateway]\nurl = \"https://chat.example.com\"\ntoken_env = \"GW_TOKEN\"\nheartbeat_interval = \"20s\"\n\
        [probe.ecs]\ncluster = \"probe\"\ntask_definition = \"bosar-probe:3\"\nsubnets = [\"subnet-0abc\"]\n";

    fn cfg() -> Config {
        crate::config::parse(std::path::Path::new("deploy.toml"), FILE).unwrap()
    }

    fn errors(text: &str) -> String {
        crate::config::parse(std::path::Path::new("deploy.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_shard_config_is_a_valid_file_with_the_same_gateway_and_no_value() {
        let c = cfg();
        let gw = c.gateway.clone().unwrap();
        let text = shard_config(&c, &gw);
        let back = crate::config::parse(std::path::Path::new("shard.toml"), &text).unwrap();
        let g = back.gateway.unwrap();
        assert_eq!(g.url, gw.url);
        assert_eq!(g.token_env.as_deref(), Some("GW_TOKEN"));
        assert_eq!(g.heartbeat_interval, gw.heartbeat_interval);
        assert_eq!(g.ping_timeout, gw.ping_timeout);
        assert!(back.probe_ecs.is_none() && back.ecs.is_none());
    }

    #[test]
    fn a_shard_command_is_one_the_cli_takes_with_the_flags_forwarded() {
        let args = VerifyArgs {
            connections: Some(1000),
            hold: Some(std::time::Duration::from_millis(90_500)),
            max_p99: Some(std::time::Duration::from_millis(750)),
            rate: Some(50.5),
            reconnect: true,
            comeback: crate::cli::ReconnectFlags {
                reconnect_delay: Some((
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(5),
                )),
                reconnect_like: Some(ReconnectLike::Always),
                ..Default::default()
            },
            ..VerifyArgs::default()
        };
        let cmd = shard_command(&args, 1000, 2, 4, "2026-12-05T10:00:00Z");
        let mut argv = vec!["bosar-deploy".to_string()];
        argv.extend(cmd);
        let cli = crate::cli::Cli::try_parse_from(&argv).unwrap();
        let crate::cli::Command::Verify(v) = cli.command else {
            panic!("not verify: {argv:?}")
        };
        assert_eq!(v.shard.as_deref(), Some("2/4"));
        assert_eq!(v.connections, Some(1000));
        assert_eq!(v.hold, args.hold);
        assert_eq!(v.max_p99, args.max_p99);
        assert_eq!(v.rate, Some(50.5));
        assert!(v.reconnect && !v.on_ecs && v.shards.is_none());
        assert_eq!(v.comeback.reconnect_delay, args.comeback.reconnect_delay);
        assert_eq!(v.comeback.reconnect_like, Some(ReconnectLike::Always));
        assert_eq!(v.start_at.as_deref(), Some("2026-12-05T10:00:00Z"));
    }

    fn facts(secrets: &[&str], env: &[&str], awslogs: bool) -> ContainerFacts {
        ContainerFacts {
            name: "probe".into(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            environment: env.iter().map(|s| s.to_string()).collect(),
            log_driver: Some(if awslogs { "awslogs" } else { "json-file" }.into()),
            log_group: Some("/bosar/probe".into()),
            log_prefix: Some("probe".into()),
        }
    }

    #[test]
    fn the_task_definition_must_hold_the_token_by_reference_and_log_with_awslogs() {
        let c = cfg();
        let gw = c.gateway.clone().unwrap();
        let p = c.probe_ecs.clone().unwrap();
        let place = check_container("td", &facts(&["GW_TOKEN"], &[], true), &gw, &p).unwrap();
        assert_eq!(place.stream("abc"), "probe/probe/abc");
        assert_eq!(place.group, "/bosar/probe");
        let e = check_container("td", &facts(&[], &[], true), &gw, &p).unwrap_err();
        assert!(
            e[0].contains("has no `secrets` entry named GW_TOKEN"),
            "{e:?}"
        );
        let e = check_container("td", &facts(&[], &["GW_TOKEN"], true), &gw, &p).unwrap_err();
        assert!(
            e[0].contains("holds GW_TOKEN as a plain environment value"),
            "{e:?}"
        );
        assert!(e[1].contains("no `secrets` entry named GW_TOKEN"), "{e:?}");
        // Either source by reference is enough; none configured needs none.
        let mut both = gw.clone();
        both.jwt_secret_env = Some("GW_JWT".into());
        assert!(check_container("td", &facts(&["GW_JWT"], &[], true), &both, &p).is_ok());
        let e = check_container("td", &facts(&[], &[], true), &both, &p).unwrap_err();
        assert!(e[0].contains("named GW_TOKEN or GW_JWT"), "{e:?}");
        let mut open = gw.clone();
        open.token_env = None;
        assert!(check_container("td", &facts(&[], &[], true), &open, &p).is_ok());
        let e = check_container("td", &facts(&["GW_TOKEN"], &[], false), &gw, &p).unwrap_err();
        assert!(e[0].contains("does not log with awslogs"), "{e:?}");
        // [probe.ecs] log_group and log_stream_prefix stand in for the task definition's.
        let mut own = p.clone();
        own.log_group = Some("/mine".into());
        own.log_stream_prefix = Some("p".into());
        let place = check_container("td", &facts(&["GW_TOKEN"], &[], false), &gw, &own).unwrap();
        assert_eq!(
            (place.group.as_str(), place.stream("t").as_str()),
            ("/mine", "p/probe/t")
        );
    }

    #[test]
    fn the_start_is_the_given_one_or_now_plus_the_delay() {
        let p = cfg().probe_ecs.unwrap();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(start_at(None, now, &p), "2027-01-15T08:03:00Z");
        assert_eq!(
            start_at(Some("2026-12-05T10:00:00Z"), now, &p),
            "2026-12-05T10:00:00Z"
        );
    }

    #[test]
    fn probe_ecs_errors_name_the_line_and_key() {
        let base = "[target_group]\nname = \"tg\"\n[probe.ecs]\ncluster = \"c\"\n";
        let e = errors(&format!(
            "{base}image = \"repo/bosar-deploy:1\"\nsubnets = [\"subnet-1\"]\n"
        ));
        assert!(
            e.contains("deploy.toml:5")
                && e.contains("probe.ecs.image")
                && e.contains("RunTask starts a task definition"),
            "{e}"
        );
        let e = errors(&format!("{base}task_definition = \"td\"\n"));
        assert!(
            e.contains("probe.ecs.subnets") && e.contains("missing required key"),
            "{e}"
        );
        let e = errors(&format!("{base}task_definition = \"td\"\nsubnets = [\"net-1\"]\ncpu = 300\nsecurity_groups = [\"sg-1\"]\nassign_public_ip = \"yes\"\n"));
        assert!(
            e.contains("deploy.toml:6") && e.contains("is not an ID starting with subnet-"),
            "{e}"
        );
        assert!(
            e.contains("deploy.toml:7") && e.contains("not a Fargate task CPU value"),
            "{e}"
        );
        assert!(
            e.contains("probe.ecs.assign_public_ip") && e.contains("expected true or false"),
            "{e}"
        );
        let e = errors(&format!(
            "{base}task_definition = \"td\"\nsubnets = [\"subnet-1\"]\nsubnet = 1\n"
        ));
        assert!(
            e.contains("unknown key `subnet`; did you mean `subnets`?"),
            "{e}"
        );
        let e = errors("[target_group]\nname = \"tg\"\n[probe]\nfargate = 1\n");
        assert!(e.contains("unknown key `fargate`"), "{e}");
    }
}
