//! `logs`: every container that logs with the `awslogs` driver names a log group that exists
//! in its `awslogs-region` (the task's region when unset), or has `awslogs-create-group`
//! true (ECS creates the group at first start; the execution role then needs
//! logs:CreateLogGroup). Without the group, tasks stop with ResourceInitializationError.
//!
//! DescribeLogGroups has no exact-name filter: `logGroupNamePrefix` matches every group that
//! starts with the name (`/ecs/bosar-api` also matches `/ecs/bosar-api/log-router`), so the
//! exact name is looked for in the results, page by page. Results are ASCII-sorted, so a
//! page holding a name after the one sought ends the search (see [`page_verdict`]).

use aws_sdk_ecs::types::TaskDefinition;
use serde_json::json;

use super::{call_error, clip, containers, home_region, unanswered, CheckName, Clients, Finding};

/// One `awslogs` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub container: String,
    pub group: String,
    pub region: String,
    pub create_group: bool,
}

/// Docker's boolean parsing (strconv.ParseBool), which the awslogs options follow.
fn truthy(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn valid_group(g: &str) -> bool {
    (1..=512).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b))
}

/// The awslogs configurations of the revision, or a failure for each unusable one.
pub fn awslogs_targets(td: &TaskDefinition, home_region: &str) -> Vec<Result<LogTarget, Finding>> {
    containers(td)
        .iter()
        .filter_map(|c| {
            let name = c.name().unwrap_or("?");
            let lc = c.log_configuration()?;
            if lc.log_driver().as_str() != "awslogs" {
                return None;
            }
            let opt = |k: &str| lc.options().and_then(|o| o.get(k)).map(|v| v.trim());
            let Some(group) = opt("awslogs-group").filter(|g| !g.is_empty()) else {
                return Some(Err(Finding::fail(
                    name,
                    "logs with awslogs but sets no awslogs-group option; add one to its logConfiguration",
                )));
            };
            if !valid_group(group) {
                return Some(Err(Finding::fail(
                    name,
                    format!("awslogs-group \"{}\" is not a valid log group name (letters, digits, . _ - / #; at most 512)", clip(group, 120)),
                )));
            }
            let region = opt("awslogs-region")
                .filter(|r| !r.is_empty())
                .unwrap_or(home_region)
                .to_string();
            Some(Ok(LogTarget {
                container: name.to_string(),
                group: group.to_string(),
                region,
                create_group: opt("awslogs-create-group").is_some_and(truthy),
            }))
        })
        .collect()
}

/// What one page of DescribeLogGroups (by prefix) says about `group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Found,
    Absent,
    /// Not decided yet: read the next page.
    More,
}

pub fn page_verdict(group: &str, names: &[&str], has_next: bool) -> Page {
    if names.contains(&group) {
        Page::Found
    } else if !has_next || names.iter().any(|n| *n > group) {
        Page::Absent
    } else {
        Page::More
    }
}

/// Pages read at most per group (50 groups each) before giving up with a warning.
const MAX_PAGES: usize = 20;

/// The log findings of the revision.
pub async fn check(clients: &Clients, td: &TaskDefinition) -> Vec<Finding> {
    let home_region = home_region(td, clients);
    let targets = awslogs_targets(td, &home_region);
    if targets.is_empty() {
        return vec![Finding::info("", "no container logs with awslogs")];
    }
    let futs = targets.into_iter().map(|t| async move {
        match t {
            Err(f) => f,
            Ok(t) => check_one(clients, &t).await,
        }
    });
    futures_util::future::join_all(futs).await
}

async fn check_one(clients: &Clients, t: &LogTarget) -> Finding {
    let evidence = json!({
        "container": t.container,
        "log_group": t.group,
        "region": t.region,
        "create_group": t.create_group,
    });
    if t.create_group {
        return Finding::pass(
            &t.container,
            format!("log group {} ({}): awslogs-create-group is true, ECS creates it if missing (the execution role needs logs:CreateLogGroup)", t.group, t.region),
        )
        .with(evidence);
    }
    let client = clients.logs(&t.region);
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = client
            .describe_log_groups()
            .log_group_name_prefix(&t.group)
            .limit(50)
            .set_next_token(token.take())
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return unanswered(
                    CheckName::Logs,
                    "logs:DescribeLogGroups",
                    &t.container,
                    &format!("log group {} ({})", t.group, t.region),
                    call_error(&e),
                )
            }
        };
        let names: Vec<&str> = out
            .log_groups()
            .iter()
            .filter_map(|g| g.log_group_name())
            .collect();
        token = out
            .next_token()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        match page_verdict(&t.group, &names, token.is_some()) {
            Page::Found => {
                return Finding::pass(
                    &t.container,
                    format!("log group {} exists ({})", t.group, t.region),
                )
                .with(evidence)
            }
            Page::Absent => {
                return Finding::fail(
                    &t.container,
                    format!(
                        "log group {} does not exist in {}; create it (aws logs create-log-group --log-group-name {} --region {}) or set awslogs-create-group = \"true\" in the container's logConfiguration",
                        t.group, t.region, t.group, t.region
                    ),
                )
                .with(evidence)
            }
            Page::More => {}
        }
    }
    Finding::warn(
        &t.container,
        format!("log group {} ({}): not found in the first {MAX_PAGES} pages of groups with that prefix; not checked", t.group, t.region),
    )
    .with(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver};

    fn container(name: &str, driver: LogDriver, opts: &[(&str, &str)]) -> ContainerDefinition {
        let mut lc = LogConfiguration::builder().log_driver(driver);
        for (k, v) in opts {
            lc = lc.options(*k, *v);
        }
        ContainerDefinition::builder()
            .name(name)
            .image("x")
            .log_configuration(lc.build().unwrap())
            .build()
    }

    #[test]
    fn awslogs_targets_take_region_and_create_group_from_the_options() {
        let td = TaskDefinition::builder()
            .container_definitions(container(
                "api",
                LogDriver::Awslogs,
                &[
                    ("awslogs-group", "/ecs/bosar-api"),
                    ("awslogs-region", "eu-west-1"),
                ],
            ))
            .container_definitions(container(
                "router",
                LogDriver::Awslogs,
                &[
                    ("awslogs-group", "/ecs/router"),
                    ("awslogs-create-group", "true"),
                ],
            ))
            .container_definitions(container("fl", LogDriver::Awsfirelens, &[]))
            .container_definitions(container("bad", LogDriver::Awslogs, &[]))
            .container_definitions(container(
                "worse",
                LogDriver::Awslogs,
                &[("awslogs-group", "has space")],
            ))
            .build();
        let t = awslogs_targets(&td, "us-east-1");
        assert_eq!(t.len(), 4, "firelens is not checked");
        assert_eq!(
            t[0],
            Ok(LogTarget {
                container: "api".into(),
                group: "/ecs/bosar-api".into(),
                region: "eu-west-1".into(),
                create_group: false
            })
        );
        assert_eq!(t[1].as_ref().unwrap().region, "us-east-1");
        assert!(t[1].as_ref().unwrap().create_group);
        assert!(t[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("no awslogs-group"));
        assert!(t[3]
            .as_ref()
            .unwrap_err()
            .message
            .contains("not a valid log group name"));
        assert!(truthy("True") && truthy("1") && !truthy("yes") && !truthy("false"));
    }

    #[test]
    fn prefix_pages_match_the_exact_name_only() {
        let g = "/ecs/bosar-api";
        assert_eq!(
            page_verdict(g, &["/ecs/bosar-api", "/ecs/bosar-api/log-router"], true),
            Page::Found
        );
        // Only longer names share the prefix: the exact one would have sorted first.
        assert_eq!(
            page_verdict(g, &["/ecs/bosar-api/log-router"], true),
            Page::Absent
        );
        assert_eq!(page_verdict(g, &[], false), Page::Absent);
        // An empty page with a token: keep reading.
        assert_eq!(page_verdict(g, &[], true), Page::More);
        assert_eq!(page_verdict(g, &["/ecs/bosar-api"], false), Page::Found);
    }
}
