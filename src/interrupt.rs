//! Ctrl-C and SIGTERM. The entry point stops a command at once when one arrives (the rollout
//! goes on in AWS; the message says how to resume watching). A command that holds something it
//! must report on first — the sessions of `--under-load`, whose disruption is the point of the
//! run — takes the interrupt over with [`take`]: while the returned guard lives, the entry point
//! waits up to [`GRACE`] for the command to finish its report (a second interrupt stops at
//! once), and the command listens with [`signalled`] itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// How long the entry point waits for a command that took the interrupt over: its sessions
/// close (a few seconds) and it reports.
pub const GRACE: Duration = Duration::from_secs(30);

/// While alive, the running command handles interrupts itself.
#[must_use = "the interrupt is taken over only while the guard lives"]
pub struct Taken(());

impl Drop for Taken {
    fn drop(&mut self) {
        TAKEN.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes interrupts over until the guard is dropped.
pub fn take() -> Taken {
    TAKEN.fetch_add(1, Ordering::SeqCst);
    Taken(())
}

/// Whether a running command took interrupts over.
pub fn taken() -> bool {
    TAKEN.load(Ordering::SeqCst) > 0
}

/// Resolves on the next Ctrl-C (SIGINT) or SIGTERM.
pub async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_takes_over_while_it_lives() {
        let before = taken();
        {
            let _g = take();
            assert!(taken());
        }
        assert_eq!(taken(), before);
    }
}
