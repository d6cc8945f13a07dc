//! The open-file limit: one socket per session, so `--connections` must fit under it. Raised
//! for this process when the hard limit allows; a usage error (exit 2) saying how when not.

use serde::Serialize;

use crate::exit::Failure;
use crate::gateway::stats::{self, FdPlan};

/// What was found and done about the open-file limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
    pub needed: u64,
    /// The soft limit was raised (to `needed`) for this process.
    pub raised_from: Option<u64>,
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
fn nofile_limit() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    Some((r.rlim_cur as u64, r.rlim_max as u64))
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn raise_nofile(soft: u64, hard: u64) -> bool {
    let r = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we own.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 }
}

#[cfg(not(unix))]
fn nofile_limit() -> Option<(u64, u64)> {
    None
}

#[cfg(not(unix))]
fn raise_nofile(_: u64, _: u64) -> bool {
    false
}

/// The usage error for a limit too low, saying how to raise it.
pub fn too_many_files(connections: u32, plan: FdPlan) -> Option<Failure> {
    let FdPlan::TooMany {
        needed,
        soft,
        hard,
        max_connections,
    } = plan
    else {
        return None;
    };
    Some(
        Failure::usage(format!(
            "--connections {connections} needs about {needed} open files (one socket per session \
             plus {} for the process), but the open-file limit is {soft} (hard limit {hard})",
            stats::FD_RESERVE
        ))
        .hint(format!(
            "raise the limit in the shell that runs the probe: `ulimit -n {needed}`; above the \
             hard limit that needs root (`prlimit --pid $$ --nofile={needed}:{needed}`, nofile in \
             /etc/security/limits.conf, LimitNOFILE= in a systemd unit, --ulimit nofile= for a \
             container), or lower --connections to at most {max_connections}"
        )),
    )
}

/// Reads the open-file limit; raises the soft limit when the hard one allows; fails with a
/// usage error (exit 2) when `connections` cannot fit.
pub fn ensure_open_files(connections: u32) -> anyhow::Result<Option<OpenFiles>> {
    let Some((soft, hard)) = nofile_limit() else {
        return Ok(None);
    };
    let plan = stats::fd_plan(connections as u64, soft, hard);
    if let Some(f) = too_many_files(connections, plan) {
        return Err(f.into());
    }
    Ok(Some(match plan {
        FdPlan::Raise { needed, to } => {
            if !raise_nofile(to, hard) {
                return Err(Failure::usage(format!(
                    "--connections {connections} needs about {needed} open files and the limit \
                     is {soft}; raising it to {to} (hard limit {hard}) was refused"
                ))
                .hint(format!("run `ulimit -n {needed}` first"))
                .into());
            }
            OpenFiles {
                soft: to,
                hard,
                needed,
                raised_from: Some(soft),
            }
        }
        FdPlan::Fits { needed } | FdPlan::TooMany { needed, .. } => OpenFiles {
            soft,
            hard,
            needed,
            raised_from: None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_files_is_a_usage_error() {
        let f = too_many_files(500, stats::fd_plan(500, 100, 100)).unwrap();
        assert_eq!(f.code, crate::exit::Code::Usage);
        assert!(
            f.message.contains("open-file limit is 100"),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("ulimit -n 564"));
        assert!(too_many_files(10, stats::fd_plan(10, 1000, 1000)).is_none());
    }
}
