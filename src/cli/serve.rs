//! `countersign serve`: resolve configuration, set up the embedded identities when no agents are
//! configured, start the server and explain how to send a first request.

use super::keys;
use crate::app::Server;
use crate::config::{Agent, FileConfig, Reviewer, ServeOverrides, ServerConfig};
use crate::request::AgentId;
use crate::request::signature::AgentKey;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

const LOCAL_AGENT: &str = "local-agent";
const LOCAL_REVIEWER: &str = "local-reviewer";

pub async fn run(file: FileConfig, overrides: ServeOverrides) -> anyhow::Result<ExitCode> {
    let mut config = ServerConfig::resolve(file, overrides)?;
    let bootstrapped = if config.agents.is_empty() && config.reviewers.is_empty() {
        Some(bootstrap_identities(&mut config)?)
    } else {
        if config.reviewers.is_empty() {
            tracing::warn!(
                "no reviewers are configured: requests can be submitted but nobody can approve them"
            );
        }
        if config.agents.is_empty() {
            tracing::warn!("no agents are configured: nobody can submit requests");
        }
        None
    };
    let server = Server::start(&config).await?;
    print_banner(&server, &config, bootstrapped.as_ref());
    server.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}

struct Bootstrapped {
    key_file: PathBuf,
    token_file: PathBuf,
}

/// With no agents or reviewers configured, the embedded default creates one local agent and one
/// local reviewer whose secrets live in `<data-dir>/keys/` (mode 0600), so the first request
/// can be sent without writing any configuration.
fn bootstrap_identities(config: &mut ServerConfig) -> anyhow::Result<Bootstrapped> {
    let dir = config.data_dir.join("keys");
    let key_file = dir.join(format!("{LOCAL_AGENT}.key"));
    let token_file = dir.join(format!("{LOCAL_REVIEWER}.token"));
    let key = keys::read_or_create(&key_file, keys::new_agent_key)?;
    let token = keys::read_or_create(&token_file, keys::new_reviewer_token)?;
    config.agents.push(Agent {
        id: AgentId::parse(LOCAL_AGENT).expect("valid id"),
        owners: vec![],
        keys: vec![AgentKey::new(key.into_bytes())?],
    });
    config.reviewers.push(Reviewer {
        name: LOCAL_REVIEWER.into(),
        token_sha256: Sha256::digest(token.as_bytes()).into(),
        email: None,
    });
    tracing::info!(
        agent.id = LOCAL_AGENT,
        reviewer.name = LOCAL_REVIEWER,
        "no agents configured: using the embedded local agent and reviewer"
    );
    Ok(Bootstrapped {
        key_file,
        token_file,
    })
}

fn print_banner(server: &Server, config: &ServerConfig, boot: Option<&Bootstrapped>) {
    let url = server.url();
    println!("countersign is listening on {url}");
    // The store names itself (a PostgreSQL URL's password is never shown).
    println!("  database:   {}", server.engine.store().location());
    match &config.github {
        Some(g) => println!(
            "  repository: GitHub {} (base branch {}, API {})",
            g.repository(),
            g.base_branch,
            g.api_url
        ),
        None => println!(
            "  repository: {} (base branch {})",
            config.repo_path().display(),
            config.base_branch
        ),
    }
    let policy = server.engine.policy();
    match &policy.policy {
        Ok(_) => println!(
            "  policy:     policies/ at {} (base branch)",
            short(&policy.commit)
        ),
        Err(problems) => {
            println!(
                "  policy:     INVALID at {}: {} problem(s); every request is refused until it is fixed",
                short(&policy.commit),
                problems.len()
            );
            for p in problems.iter().take(5) {
                println!("              {p}");
            }
        }
    }
    let default_url = url == "http://127.0.0.1:8080";
    let server_flag = if default_url {
        String::new()
    } else {
        format!(" --server {url}")
    };
    if let Some(b) = boot {
        let default_dir = config.data_dir == std::path::Path::new(".countersign");
        let key_flag = if default_dir {
            String::new()
        } else {
            format!(" --key-file {}", b.key_file.display())
        };
        let token_flag = if default_dir {
            String::new()
        } else {
            format!(" --token-file {}", b.token_file.display())
        };
        println!("\nNo agents are configured, so a local agent and reviewer were set up:");
        println!("  agent `{LOCAL_AGENT}`, key in {}", b.key_file.display());
        println!(
            "  reviewer `{LOCAL_REVIEWER}`, token in {}",
            b.token_file.display()
        );
        println!("\nSubmit a first request (from this directory, in another terminal):");
        println!(
            "  countersign submit{server_flag}{key_flag} --action db.export --resource prod/customers \\\n      --environment prod --justification \"weekly revenue report\" --payload '{{\"table\":\"orders\",\"limit\":100}}'"
        );
        println!("Then look at it and approve it:");
        println!("  countersign review{server_flag}{token_flag} show <id>");
        println!("  countersign review{server_flag}{token_flag} approve <id>");
        println!(
            "(`cargo run --release --` stands in for `countersign` when running from a checkout.)"
        );
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
