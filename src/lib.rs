//! galley: typed Nickel sandbox configs compiled to reproducible OCI images, a lockfile, and
//! enforced, audited podman containers. See ARCHITECTURE.md for the code map.

pub mod admin;
pub mod audit;
pub mod audit_log;
pub mod clock;
pub mod canonical;
pub mod debian;
pub mod cli;
pub mod detect;
pub mod diagnostic;
pub mod domain;
pub mod env_vars;
pub mod exec;
pub mod fsutil;
pub mod kube;
pub mod image;
pub mod lang;
pub mod lint;
pub mod lock;
pub mod manifest;
pub mod lsp;
pub mod model;
pub mod project;
pub mod runtime;
pub mod seccomp;
pub mod serve;
pub mod secrets;
pub mod settings;
pub mod token;
