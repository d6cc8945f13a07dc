//! Where each shard's task is (pending, running, done, failed), from what DescribeTasks says,
//! and the one line of progress that changes when a count does. Pure.

use crate::outside::Outside;

/// One shard's task, as last described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// RunTask accepted it; ECS is provisioning, pulling or starting it.
    Pending,
    Running,
    /// STOPPED: the container's exit code (`None`: it never ran) and ECS's reason.
    Stopped {
        exit: Option<i32>,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct ShardTask {
    pub index: u32,
    pub task_arn: String,
    pub state: State,
    /// Its sessions, from the last progress line of its stream (while it runs).
    pub progress: Option<super::logs::Progress>,
}

impl ShardTask {
    /// The task's ID: the last part of its ARN (the log stream's last part).
    pub fn task_id(&self) -> &str {
        self.task_arn.rsplit('/').next().unwrap_or(&self.task_arn)
    }
}

/// ECS's lastStatus, the container's exit code and the stopped reason, as a [`State`].
pub fn state_of(last_status: &str, exit: Option<i32>, reason: Option<&str>) -> State {
    match last_status {
        "STOPPED" => State::Stopped {
            exit,
            reason: Outside::new(reason.unwrap_or("")).shown(300),
        },
        "RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => State::Running,
        _ => State::Pending,
    }
}

/// `K shard(s): P pending, R running, D done, F failed`.
pub fn summary(tasks: &[ShardTask]) -> String {
    let (mut p, mut r, mut d, mut f) = (0, 0, 0, 0);
    for t in tasks {
        match &t.state {
            State::Pending => p += 1,
            State::Running => r += 1,
            State::Stopped { exit: Some(0), .. } => d += 1,
            State::Stopped { .. } => f += 1,
        }
    }
    let mut line = format!(
        "{} shard(s): {p} pending, {r} running, {d} done, {f} stopped otherwise",
        tasks.len()
    );
    let open: Vec<u64> = tasks
        .iter()
        .filter(|t| t.state == State::Running)
        .filter_map(|t| t.progress.map(|p| p.open()))
        .collect();
    if !open.is_empty() {
        line.push_str(&format!(
            "; {} session(s) open in {} of them",
            open.iter().sum::<u64>(),
            open.len()
        ));
    }
    line
}

/// What a shard's new progress says, when it changed: `shard 2/4 (task …): 480/500 open`.
pub fn progress_line(
    t: &ShardTask,
    k: u32,
    before: Option<super::logs::Progress>,
) -> Option<String> {
    use super::logs::Progress;
    let now = t.progress?;
    if Some(now) == before {
        return None;
    }
    let who = format!(
        "shard {}/{k} (task {})",
        t.index,
        Outside::new(t.task_id()).shown(64)
    );
    Some(match now {
        Progress::Opening { open, of } => format!("{who}: {open}/{of} session(s) open"),
        Progress::Holding { held } => format!("{who}: holding {held} session(s)"),
    })
}

/// What a shard's transition says, when it has one.
pub fn transition(t: &ShardTask, k: u32, before: &State) -> Option<String> {
    if &t.state == before {
        return None;
    }
    let who = format!(
        "shard {}/{k} (task {})",
        t.index,
        Outside::new(t.task_id()).shown(64)
    );
    Some(match &t.state {
        State::Pending => format!("{who}: pending"),
        State::Running => format!("{who}: running"),
        State::Stopped { exit: Some(0), .. } => format!("{who}: done (exit 0)"),
        State::Stopped { exit, reason } => {
            format!("{who}: stopped, {}", stopped_text(*exit, reason))
        }
    })
}

/// "exit 1" / "never ran", and ECS's reason when it gave one.
pub fn stopped_text(exit: Option<i32>, reason: &str) -> String {
    let code = match exit {
        Some(c) => format!("exit {c}"),
        None => "the container never ran".to_string(),
    };
    if reason.is_empty() {
        code
    } else {
        format!("{code}: {reason}")
    }
}

/// Every task has stopped.
pub fn all_stopped(tasks: &[ShardTask]) -> bool {
    tasks
        .iter()
        .all(|t| matches!(t.state, State::Stopped { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(i: u32, state: State) -> ShardTask {
        ShardTask {
            progress: None,
            index: i,
            task_arn: format!("arn:aws:ecs:us-east-1:1:task/c/t{i}"),
            state,
        }
    }

    #[test]
    fn states_counts_and_transitions() {
        assert_eq!(state_of("PROVISIONING", None, None), State::Pending);
        assert_eq!(state_of("RUNNING", None, None), State::Running);
        let failed = state_of("STOPPED", Some(137), Some("OutOfMemoryError"));
        assert_eq!(
            failed,
            State::Stopped {
                exit: Some(137),
                reason: "OutOfMemoryError".into()
            }
        );
        let tasks = vec![
            task(1, State::Pending),
            task(2, State::Running),
            task(
                3,
                State::Stopped {
                    exit: Some(0),
                    reason: String::new(),
                },
            ),
            task(4, failed.clone()),
        ];
        assert_eq!(
            summary(&tasks),
            "4 shard(s): 1 pending, 1 running, 1 done, 1 stopped otherwise"
        );
        assert!(!all_stopped(&tasks));
        assert_eq!(tasks[0].task_id(), "t1");
        assert_eq!(transition(&tasks[1], 4, &State::Running), None);
        assert_eq!(
            transition(&tasks[3], 4, &State::Running).unwrap(),
            "shard 4/4 (task t4): stopped, exit 137: OutOfMemoryError"
        );
        assert_eq!(stopped_text(None, ""), "the container never ran");
    }
}
