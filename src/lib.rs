//! countersign: a GitOps approval bot for AI agents.
//!
//! Agents submit signed change requests ([`request`]); the [`engine`] keeps each one in a durable
//! state machine backed by the [`store`]; a [`forge`] opens a review for it (a branch in a local git
//! repository by default); reviewers approve or deny through the [`server`], whose documents are
//! the typed [`api`] structs; the [`cli`] wraps all of it. See `docs/ARCHITECTURE.md` for the map.

pub mod actions;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod execute;
pub mod forge;
pub mod jobs;
pub mod ledger;
pub mod mask;
pub mod notify;
pub mod policy;
pub mod request;
pub mod server;
pub mod store;
pub mod support;
pub mod telemetry;
pub mod text;
pub mod time;
pub mod vault;
