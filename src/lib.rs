//! bosar-deploy: ship the BoSar chat API (NestJS Socket.IO gateway on ECS Fargate behind an ALB).
//!
//! Layout: `config` (deploy.toml), `aws` (SDK wiring), `alb` (target group plan/apply),
//! `ecs` (rollout and watch), `gateway` (Socket.IO client, checks, load probe), `verify_cmd`
//! (verify: the checks or the probe), `under_load` (sessions held through a rollout: the
//! probe and the ECS watch run side by side, above both), `deploy_cmd` (deploy: with or
//! without `--under-load`), `report` and `ui` (rendering), `outside` (the one way out for text
//! from servers and AWS: escaped, capped, redacted), `files` (reports written safely),
//! `pipeline` (full/plan).
//! Pure logic stays apart from I/O so it is testable.

pub mod alb;
pub mod aws;
pub mod cli;
pub mod config;
pub mod deploy_cmd;
pub mod duration;
pub mod ecs;
pub mod envelope;
pub mod exit;
pub mod files;
pub mod gateway;
pub mod image;
pub mod init;
pub mod outside;
pub mod pipeline;
pub mod report;
pub mod ui;
pub mod under_load;
pub mod verify_cmd;
