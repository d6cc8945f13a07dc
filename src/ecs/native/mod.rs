//! ECS-native deployments (blue/green, canary, linear): followed through
//! ListServiceDeployments/DescribeServiceDeployments rather than the service's `deployments`
//! list, and gated by bosar-deploy's own PAUSE lifecycle hook. `stages` (the stage machine),
//! `hook` (the owned hook) and `gate` (decisions) are pure; `watch` does the I/O.

pub mod checks;
pub mod gate;
pub mod hook;
pub mod read;
mod show;
pub mod stages;
pub mod watch;
