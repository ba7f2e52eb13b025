//! The `countersign` command line: argument parsing (clap; every flag also readable from a
//! `COUNTERSIGN_*` environment variable or `countersign.toml`) and dispatch to the library.

mod agent;
pub mod args;
pub mod client;
mod demo;
mod demo_service;
pub mod keys;
pub mod ledger;
mod mask;
pub mod migrate;
mod policy;
mod serve;

pub use args::Cli;

use crate::config::{self, LogFormat};
use args::{Command, PolicyAction};
use clap::Parser as _;
use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (file, file_path) = config::load_file(cli.config.as_deref())?;
    let log_format = LogFormat::parse(
        cli.log_format
            .as_deref()
            .or(file.log_format.as_deref())
            .unwrap_or("text"),
    )?;
    // The demo narrates on stdout; its server logs only warnings unless asked otherwise.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    let log_level = cli
        .log_level
        .clone()
        .or(file.log_level.clone())
        .unwrap_or_else(|| default_level.into());
    crate::telemetry::init_tracing(log_format, &log_level)?;
    if let Some(path) = &file_path {
        tracing::debug!(config.file = %path.display(), "configuration file loaded");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(file, args.overrides()).await,
            Command::Demo(args) => demo::run(args.data_dir).await,
            Command::Keys(args) => {
                keys::run(args, file.data_dir.clone(), file.jwt_keys_dir.clone())
            }
            Command::Submit(args) => agent::submit(&file.client, args).await,
            Command::Status(args) => {
                let client = agent::agent_client(&file.client, &args.agent)?;
                agent::print_result(client.status(&args.id).await)
            }
            Command::Review(args) => agent::review(&file.client, args).await,
            Command::Mask(args) => {
                let (hints, key) = config::load_masking(&file.masking)?;
                config::check_mask_detector(&file.masking)?;
                let masker = crate::mask::Masker::new(hints.as_deref(), key)
                    .with_detector_options(
                        file.masking.name_keys.as_deref(),
                        file.masking.phone_regions.as_deref(),
                    )
                    .map_err(anyhow::Error::msg)?;
                mask::run(
                    &masker,
                    args.input.as_deref(),
                    args.format == "json",
                    args.report,
                )
            }
            Command::Ledger(args) => Ok(ledger::run(args)),
            Command::MigrateStore(args) => migrate::run(args).await,
            Command::Policy(args) => match args.action {
                PolicyAction::Check { dir, github_teams } => {
                    policy::check(&dir, github_teams || file.github.is_some())
                }
                PolicyAction::Explain {
                    dir,
                    subject,
                    request,
                    agent,
                    environment,
                } => policy::explain(
                    &dir,
                    &subject,
                    request.as_deref(),
                    agent.as_deref(),
                    environment.as_deref(),
                    file.github.is_some(),
                ),
            },
        }
    })
}
