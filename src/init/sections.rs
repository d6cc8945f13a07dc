//! What `init` writes, decided from what was read (pure, so every shape is tested without
//! AWS): each section's keys with today's values, the README's recommendation beside a key
//! whose value differs (adopted by editing that one line), and the lines left commented out
//! (keys not set today, the `[gateway]` section). Nothing here is text yet: values from AWS
//! stay values, and [`super::render`] is the only place that writes them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::alb::plan as attrs;
use crate::duration;

/// What `init` found on AWS.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub region: String,
    pub cluster: String,
    pub service: String,
    pub container: String,
    /// The task definition's other containers (sidecars), listed in a comment.
    pub other_containers: Vec<String>,
    pub target_group: Option<TargetGroupFacts>,
    pub load_balancer: Option<LoadBalancerFacts>,
    /// The container's environment (names and values).
    pub environment: BTreeMap<String, String>,
    /// `--gateway-url`, when given.
    pub gateway_url: Option<String>,
    /// The service's deploymentConfiguration as deploy.toml says it
    /// (`crate::ecs::strategy::section_of`); `None` when the service reports none.
    pub deployment: Option<crate::config::DeploymentSection>,
}

#[derive(Debug, Clone, Default)]
pub struct TargetGroupFacts {
    pub name: String,
    pub health_check_path: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadBalancerFacts {
    pub name: String,
    pub dns_name: Option<String>,
    pub idle_timeout_secs: u64,
}

/// A value to write: a string (from AWS or ours) or a boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    /// A percentage in tenths, written as a decimal (`12.5`).
    Tenths(crate::config::Tenths),
}

fn s(v: impl Into<String>) -> Val {
    Val::Str(v.into())
}

/// A piece of a comment: our own words, or a value shown as a one-line TOML string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Fixed(Cow<'static, str>),
    Value(Val),
}

/// One comment line.
pub type Note = Vec<Piece>;

fn fixed(text: impl Into<Cow<'static, str>>) -> Note {
    vec![Piece::Fixed(text.into())]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `key = value`, with a comment after it when the note is not empty.
    Active { key: String, value: Val, note: Note },
    /// `# key = value  # note`: a key not set today, shown for adoption.
    Commented { key: String, value: Val, note: Note },
    /// A comment line of its own.
    Comment(Note),
}

/// One table of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The table's path below the file's root (or below `environments.NAME`).
    pub path: Vec<&'static str>,
    /// Comment lines above its header.
    pub intro: Vec<Note>,
    /// `false`: written commented out (`# [gateway]`), so nothing in it is read.
    pub active: bool,
    pub lines: Vec<Line>,
}

impl Section {
    fn new(path: &[&'static str]) -> Section {
        Section {
            path: path.to_vec(),
            intro: Vec::new(),
            active: true,
            lines: Vec::new(),
        }
    }
    fn set(&mut self, key: &str, value: Val, note: Note) {
        self.lines.push(Line::Active {
            key: key.into(),
            value,
            note,
        });
    }
    fn today(&mut self, key: &str, value: Val, recommended: Option<(Val, &'static str)>) {
        let note = match recommended {
            None => fixed("today"),
            Some((v, why)) => vec![
                Piece::Fixed("today; recommended: ".into()),
                Piece::Value(v),
                Piece::Fixed(format!(" ({why})").into()),
            ],
        };
        self.set(key, value, note);
    }
    fn offer(&mut self, key: &str, value: Val, why: &'static str) {
        self.lines.push(Line::Commented {
            key: key.into(),
            value,
            note: fixed(why),
        });
    }
}

/// What init writes, and what it has to tell the user about what it left out.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Comment lines at the top of the file (or of the environment's block).
    pub intro: Vec<Note>,
    pub sections: Vec<Section>,
    /// Variables left out because their names cannot be written as ECS passes them on.
    pub refused_names: Vec<String>,
}

/// The managed prefix: variables with it are the gateway's settings.
const PREFIX: &str = "WEBSOCKET_";

/// Seconds as AWS stores them, readable: whole hours as hours, everything else in seconds
/// (`300s`, not `5m`, so the file matches the console and the CLI).
pub fn seconds(n: u64) -> String {
    if n >= 3600 && n.is_multiple_of(3600) {
        format!("{}h", n / 3600)
    } else {
        format!("{n}s")
    }
}

fn secs(v: Option<&String>) -> Option<String> {
    let n: u64 = v?.trim().parse().ok()?;
    Some(seconds(n))
}

/// The whole file for a service.
pub fn file(d: &Discovered) -> Layout {
    let mut intro = vec![vec![
        Piece::Fixed("bosar-deploy configuration for ECS service ".into()),
        Piece::Value(s(&d.service)),
        Piece::Fixed(" in cluster ".into()),
        Piece::Value(s(&d.cluster)),
        Piece::Fixed(" (region ".into()),
        Piece::Value(s(&d.region)),
        Piece::Fixed(").".into()),
    ]];
    intro.extend(
        [
            "Written by `bosar-deploy init` from what runs today: `bosar-deploy plan` shows no",
            "attribute change until you edit it. Where a key's comment says `recommended: VALUE`",
            "(the sticky-WebSocket state the README recommends), adopt it by writing VALUE on that",
            "line; a `# key = value` line is a key not managed today: uncomment it to manage it.",
            "Review with `bosar-deploy plan`, apply with `bosar-deploy alb-update` (or `full`).",
            "A key you delete is not managed: bosar-deploy leaves it as it is on AWS.",
            "Reference: README.md \"Configuration\".",
        ]
        .map(fixed),
    );
    Layout { intro, ..body(d) }
}

/// The same keys for an `[environments.NAME]` block added to an existing file.
pub fn environment(name: &str, d: &Discovered) -> Layout {
    let intro = vec![
        vec![
            Piece::Fixed("Environment ".into()),
            Piece::Value(s(name)),
            Piece::Fixed(
                ", written by `bosar-deploy init` from what runs there today: with `--env NAME`"
                    .into(),
            ),
        ],
        fixed("(or BOSAR_DEPLOY_ENV), these keys are used over the ones above, key by key."),
    ];
    Layout { intro, ..body(d) }
}

fn body(d: &Discovered) -> Layout {
    let mut aws = Section::new(&["aws"]);
    aws.set("region", s(&d.region), vec![]);
    let mut sections = vec![aws];
    sections.extend(d.load_balancer.as_ref().map(load_balancer));
    sections.extend(d.target_group.as_ref().map(target_group));
    sections.push(ecs(d));
    let (environment, refused_names) = environment_section(d);
    sections.push(environment);
    sections.push(deployment(d.deployment.as_ref()));
    sections.push(gateway(d));
    Layout {
        intro: vec![],
        sections,
        refused_names,
    }
}

fn load_balancer(lb: &LoadBalancerFacts) -> Section {
    let mut t = Section::new(&["load_balancer"]);
    t.set("name", s(&lb.name), vec![]);
    let idle = seconds(lb.idle_timeout_secs);
    let rec = (lb.idle_timeout_secs < 120).then(|| {
        (
            s("120s"),
            "comfortably above the ping and heartbeat intervals",
        )
    });
    t.today("idle_timeout", s(idle), rec);
    t
}

fn target_group(tg: &TargetGroupFacts) -> Section {
    let a = &tg.attributes;
    let mut t = Section::new(&["target_group"]);
    t.set("name", s(&tg.name), vec![]);
    let enabled = a
        .get(attrs::STICKINESS_ENABLED)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match (enabled, a.get(attrs::STICKINESS_TYPE).map(String::as_str)) {
        (true, Some("app_cookie")) => {
            t.today("stickiness", s("app_cookie"), None);
            if let Some(n) = a.get(attrs::APP_COOKIE_NAME) {
                t.today("cookie_name", s(n), None);
            }
            if let Some(d) = secs(a.get(attrs::APP_COOKIE_DURATION)) {
                t.today("cookie_duration", s(d), None);
            }
        }
        (true, _) => {
            t.today("stickiness", s("lb_cookie"), None);
            if let Some(d) = secs(a.get(attrs::LB_COOKIE_DURATION)) {
                t.today("cookie_duration", s(d), None);
            }
        }
        (false, _) => {
            let why = "Socket.IO long-polling needs every request of a session on one task";
            t.today("stickiness", s("off"), Some((s("lb_cookie"), why)));
            t.offer(
                "cookie_duration",
                s("24h"),
                "with stickiness = \"lb_cookie\" (without it, AWS's default of 1 day)",
            );
        }
    }
    let algorithm = a.get(attrs::ALGORITHM);
    let slow = secs(a.get(attrs::SLOW_START)).unwrap_or_else(|| "0s".into());
    if let Some(alg) = algorithm {
        let why = match (alg.as_str(), slow.as_str()) {
            (_, s) if s != "0s" => {
                "spreads long-lived connections by load; needs slow_start = \"0s\""
            }
            ("weighted_random", _) => {
                "spreads long-lived connections by load; remove anomaly_mitigation with it"
            }
            _ => "spreads long-lived connections by load",
        };
        let rec =
            (alg != "least_outstanding_requests").then(|| (s("least_outstanding_requests"), why));
        t.today("algorithm", s(alg), rec);
        if alg == "weighted_random" {
            if let Some(am) = a.get(attrs::ANOMALY_MITIGATION) {
                t.today("anomaly_mitigation", Val::Bool(am == "on"), None);
            }
        }
    }
    if let Some(d) = secs(a.get(attrs::DEREGISTRATION_DELAY)) {
        let why = "rollouts do not wait minutes per task; clients reconnect";
        let rec = (d != "30s").then(|| (s("30s"), why));
        t.today("deregistration_delay", s(d), rec);
    }
    if a.contains_key(attrs::SLOW_START) {
        let why = "AWS refuses slow start with least_outstanding_requests";
        let rec = (slow != "0s").then(|| (s("0s"), why));
        t.today("slow_start", s(slow), rec);
    }
    t
}

fn ecs(d: &Discovered) -> Section {
    let mut t = Section::new(&["ecs"]);
    t.set("cluster", s(&d.cluster), vec![]);
    t.set("service", s(&d.service), vec![]);
    t.set(
        "container",
        s(&d.container),
        fixed("the container whose image and environment deploy manages"),
    );
    if !d.other_containers.is_empty() {
        let mut note = fixed("other containers of the task definition (copied as they are): ");
        listed(&mut note, &d.other_containers);
        t.lines.push(Line::Comment(note));
    }
    t.offer(
        "image",
        s("REGISTRY/REPOSITORY:TAG"),
        "or --image on each deploy",
    );
    t
}

/// `names` as values, comma-separated, into `note`.
fn listed(note: &mut Note, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            note.push(Piece::Fixed(", ".into()));
        }
        note.push(Piece::Value(s(n)));
    }
}

/// `[ecs.environment]`: the container's `WEBSOCKET_*` variables, or, commented out, why the
/// table is left out (then `deploy` leaves the environment as it is). Returns the names that
/// cannot be written.
fn environment_section(d: &Discovered) -> (Section, Vec<String>) {
    let mut t = Section::new(&["ecs", "environment"]);
    let managed: Vec<(&String, &String)> = d
        .environment
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    let refused: Vec<String> = managed
        .iter()
        .filter(|(k, _)| crate::config::container_env_name_problem(k).is_some())
        .map(|(k, _)| k.to_string())
        .collect();
    let secret: Vec<String> = managed
        .iter()
        .filter(|(k, v)| crate::ecs::masking::masked(k, &[v.as_str()], &[]))
        .map(|(k, _)| k.to_string())
        .collect();
    if managed.is_empty() {
        t.active = false;
        t.intro = [
            "absent: deploy never touches the environment; with it, WEBSOCKET_*",
            "variables not listed are removed. Other variables are always kept.",
        ]
        .map(fixed)
        .to_vec();
        t.offer(
            "WEBSOCKET_PING_INTERVAL",
            s("25000"),
            "milliseconds, as the gateway reads it",
        );
        return (t, refused);
    }
    if !refused.is_empty() || !secret.is_empty() {
        t.active = false;
        if !refused.is_empty() {
            let mut note =
                fixed("not written: these names are not variable names ECS passes on as written: ");
            listed(&mut note, &refused);
            t.intro.push(note);
        }
        if !secret.is_empty() {
            let mut note = fixed("not written: these look like secrets, and their values are never written to a file: ");
            listed(&mut note, &secret);
            t.intro.push(note);
        }
        t.intro.push(fixed(
            "Without the table, deploy leaves the container's environment as it is.",
        ));
        return (t, refused);
    }
    t.intro = [
        "The container's WEBSOCKET_* variables today. While this table is present, deploy",
        "sets these and removes WEBSOCKET_* variables not listed; delete the table to leave",
        "the environment alone. Other variables are always kept.",
    ]
    .map(fixed)
    .to_vec();
    for (k, v) in managed {
        t.set(k, s(v), vec![]);
    }
    (t, refused)
}

/// Whole minutes as deploy.toml writes a bake time or timeout.
fn minutes(d: Duration) -> Val {
    s(format!("{}m", d.as_secs() / 60))
}

/// `[ecs.deployment]`: the members of deploymentConfiguration the service reports, each as it
/// is today (so `plan` shows no change), or, commented out, the keys to start from.
fn deployment(today: Option<&crate::config::DeploymentSection>) -> Section {
    use crate::config::Strategy;
    let mut t = Section::new(&["ecs", "deployment"]);
    let d = today.cloned().unwrap_or_default();
    if !d.names_configuration() {
        t.active = false;
        t.intro = [
            "absent: deploy never changes the service's deploymentConfiguration (the service",
            "reports none). With it, the keys named are set; docs/strategies.md lists them.",
        ]
        .map(fixed)
        .to_vec();
        t.offer(
            "strategy",
            s("rolling"),
            "rolling | blue_green | canary | linear",
        );
        t.offer(
            "circuit_breaker",
            Val::Bool(true),
            "fail a deployment whose tasks keep failing",
        );
        t.offer(
            "rollback",
            Val::Bool(true),
            "and roll back to what ran before",
        );
        return t;
    }
    t.intro = [
        "The service's deploymentConfiguration today. deploy sets the keys named here and",
        "leaves the rest as the service has it; delete a key to leave it alone, the table to",
        "leave the configuration alone. Keys and ranges: docs/strategies.md.",
    ]
    .map(fixed)
    .to_vec();
    if let Some(st) = d.strategy {
        t.today("strategy", s(st.as_config()), None);
    }
    if let Some(b) = d.bake_time {
        t.today("bake_time", minutes(b), None);
    }
    if let Some(p) = d.canary_percent {
        t.today("canary_percent", Val::Tenths(p), None);
    }
    if let Some(b) = d.canary_bake_time {
        t.today("canary_bake_time", minutes(b), None);
    }
    if let Some(p) = d.step_percent {
        t.today("step_percent", Val::Tenths(p), None);
    }
    if let Some(b) = d.step_bake_time {
        t.today("step_bake_time", minutes(b), None);
    }
    if let Some(b) = d.circuit_breaker {
        let why = "a failing deployment fails instead of retrying tasks forever";
        t.today(
            "circuit_breaker",
            Val::Bool(b),
            (!b).then_some((Val::Bool(true), why)),
        );
    }
    if let Some(r) = d.rollback {
        t.today("rollback", Val::Bool(r), None);
    }
    if let Some(p) = d.minimum_healthy_percent {
        t.today("minimum_healthy_percent", Val::Int(i64::from(p)), None);
    }
    if let Some(p) = d.maximum_percent {
        t.today("maximum_percent", Val::Int(i64::from(p)), None);
    }
    if d.strategy.is_some_and(Strategy::shifts_traffic) {
        t.offer(
            "gate",
            s("verify"),
            "bosar-deploy pauses before production traffic and judges green with verify",
        );
    }
    t
}

/// `20000` (ms, as the gateway reads it) as a duration key's value.
fn ms(env: &BTreeMap<String, String>, var: &str) -> Option<String> {
    let n: u64 = env.get(var)?.trim().parse().ok()?;
    Some(duration::format(Duration::from_millis(n)))
}

fn gateway(d: &Discovered) -> Section {
    let mut t = Section::new(&["gateway"]);
    t.active = false;
    t.intro = [
        "What `verify` (and `full`'s verify step) connects to. Uncomment and fill in to check",
        "the deployed gateway from outside; the intervals must match the handshake.",
    ]
    .map(fixed)
    .to_vec();
    let url = d.gateway_url.clone().unwrap_or_else(|| {
        d.load_balancer
            .as_ref()
            .and_then(|l| l.dns_name.clone())
            .map(|dns| format!("https://{dns}"))
            .unwrap_or_else(|| "https://api.example.com".into())
    });
    t.offer("url", s(url), "");
    t.offer("namespace", s("/chat"), "");
    let health = d
        .target_group
        .as_ref()
        .and_then(|t| t.health_check_path.clone())
        .unwrap_or_else(|| "/health".into());
    t.offer("health_path", s(health), "");
    t.offer(
        "token_env",
        s("GATEWAY_TOKEN"),
        "the variable holding a JWT (never the JWT)",
    );
    for (key, var, default) in [
        ("ping_interval", "WEBSOCKET_PING_INTERVAL", "25s"),
        ("ping_timeout", "WEBSOCKET_PING_TIMEOUT", "20s"),
        ("heartbeat_interval", "WEBSOCKET_HEARTBEAT_INTERVAL", "30s"),
    ] {
        match ms(&d.environment, var) {
            Some(v) => t.lines.push(Line::Commented {
                key: key.into(),
                value: s(v),
                note: fixed(format!("from {var}")),
            }),
            None => t.offer(key, s(default), ""),
        }
    }
    t.offer("heartbeat_event", s("heartbeat"), "");
    t
}
