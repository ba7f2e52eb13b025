//! `countersign demo`: the whole flow on the embedded default, against a real server on a free
//! loopback port: an agent submits a signed request, the agent's owner is refused, an
//! independent reviewer approves, countersign runs the action against a loopback "exports
//! service" with a just-in-time credential the service verifies through the JWKS, then the
//! status, the git branch and the audit ledger are shown.

use super::client::{AgentClient, ClientError, ReviewerClient};
use super::keys;
use crate::api::{State, Verdict};
use crate::app::Server;
use crate::config::{Agent, Reviewer, ServerConfig};
use crate::request::AgentId;
use crate::request::signature::AgentKey;
use anyhow::{Context as _, ensure};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let keep = data_dir.is_some();
    let dir = data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let mut config = ServerConfig::embedded(dir.clone());
    config.listen = "127.0.0.1:0".parse()?;
    let agent_key = keys::new_agent_key();
    let alice = keys::new_reviewer_token();
    let bob = keys::new_reviewer_token();
    config.agents.push(Agent {
        id: AgentId::parse("demo-agent").expect("valid id"),
        owners: vec!["alice".into()],
        keys: vec![AgentKey::new(agent_key.clone().into_bytes())?],
    });
    for (name, token) in [("alice", &alice), ("bob", &bob)] {
        config.reviewers.push(Reviewer {
            name: name.into(),
            token_sha256: Sha256::digest(token.as_bytes()).into(),
            email: None,
        });
    }

    let server = Server::start(&config).await?;
    let url = server.url();
    step(&format!(
        "countersign is serving on {url} with state in {}",
        dir.display()
    ));
    let service = super::demo_service::start(&url).await?;
    let registry = format!(
        "[actions.\"db.export\"]\ndescription = \"Export rows (the demo's loopback exports service)\"\n\
         executor = {{ type = \"http\", method = \"POST\", url = \"{service}/export\", timeout = \"10s\" }}\n\
         audience = \"{}\"\nidempotent = true\n",
        super::demo_service::AUDIENCE
    );
    server.local_forge().commit_files(
        "main",
        &[("policies/actions.toml", &registry)],
        "demo: db.export runs against the loopback exports service",
    )?;
    server.engine.refresh_policy().await?;
    println!(
        "    policies/actions.toml: db.export → POST {service}/export (a loopback service that verifies countersign's tokens)"
    );
    let agent = AgentClient::new(&url, "demo-agent", AgentKey::new(agent_key.into_bytes())?);
    let request = json!({
        "kind": "action",
        "action": "db.export",
        "resource": "prod/customers",
        "environment": "prod",
        "justification": "Quarterly churn analysis for the finance team",
        "payload": { "table": "customers", "columns": ["email", "plan"], "where": { "email": "ann@example.com" }, "limit": 500 },
    });
    step(
        "demo-agent submits a signed db.export request (HMAC-SHA256 over timestamp, method, path and body)",
    );
    let submitted = agent
        .submit(&serde_json::to_vec(&request)?, Some("demo-1"))
        .await
        .context("submission was not accepted")?;
    show(&submitted);
    let id = submitted.id.as_str().to_owned();

    step("the background worker opens a review: branch countersign/<id> in the git repository");
    let pending = agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await?;
    show(&pending.review);

    step("alice owns demo-agent, so her approval is refused");
    match ReviewerClient::new(&url, &alice)
        .review(&id, Verdict::Approve, None)
        .await
    {
        Err(ClientError::Api { status, body }) if status == 403 => show(&body),
        Err(e) => return Err(e.into()),
        Ok(answer) => anyhow::bail!(
            "the owner's approval should be refused, got {:?}",
            answer.state
        ),
    }

    step("bob reviews the masked request and approves it");
    let reviewer = ReviewerClient::new(&url, &bob);
    show(&reviewer.show(&id).await?.payload);
    let approved = reviewer
        .review(&id, Verdict::Approve, Some("scope matches the ticket"))
        .await
        .context("approval failed")?;
    show(&approved);

    step(
        "countersign runs the approved action: a 5-minute token bound to this request, verified by the service through the JWKS",
    );
    let status = agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            matches!(s.state, State::Succeeded | State::Failed)
        })
        .await?;
    show(&json!({ "state": status.state, "execution": status.execution }));
    let error = status
        .execution
        .as_ref()
        .and_then(|e| e.outcome.as_ref())
        .and_then(|o| o.error.as_deref());
    ensure!(
        status.state == State::Succeeded,
        "the action did not succeed: {}",
        error.unwrap_or("no error recorded")
    );

    let branch = format!("countersign/{id}");
    step(&format!(
        "the git repository holds the review branch {branch}"
    ));
    for file in server.local_forge().review_files(&branch)? {
        println!("    {file}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let note = loop {
        if let Some(note) = server.local_forge().decision_note(&branch)? {
            break note;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the decision note never appeared"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    println!("  decision note (git notes --ref=countersign):");
    for line in note.lines() {
        println!("    {line}");
    }
    let repo = server.local_forge().path().to_path_buf();
    // Stopping lets the ledger writer commit every entry first.
    server.stop().await?;
    step("the audit ledger (branch countersign/ledger) holds every step, signed and chained");
    let timeline = crate::ledger::export::show(&repo, crate::ledger::DEFAULT_BRANCH, id.as_str())?;
    for shown in &timeline.entries {
        println!("    {}", shown.readable());
    }
    match crate::ledger::verify::verify(&repo, crate::ledger::DEFAULT_BRANCH, None)? {
        Ok(report) => println!(
            "  countersign ledger verify: ok, {} entries in {} signed commits",
            report.entries, report.commits
        ),
        Err(broken) => anyhow::bail!("the ledger does not verify: {broken}"),
    }
    if keep {
        step("state kept for inspection:");
        println!(
            "    sqlite3 {}/countersign.db 'select seq, request_id, kind, actor from events'",
            dir.display()
        );
        println!(
            "    git --git-dir {} log --notes=countersign --stat {branch}",
            repo.display()
        );
        println!("    countersign ledger --repo {} verify", repo.display());
    }
    println!("\ndemo finished: request {id} approved and executed");
    Ok(ExitCode::SUCCESS)
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn show(value: &impl serde::Serialize) {
    // Through a `Value`, so the keys are sorted as in every other JSON the CLI prints.
    let text = serde_json::to_value(value)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    for line in text.lines() {
        println!("    {line}");
    }
}
