//! The agent and reviewer commands (`submit`, `status`, `review`): a client per call, its answer
//! printed as JSON, its refusal as the server's error code and message.

use super::args::{AgentArgs, ReviewAction, ReviewArgs, SubmitArgs};
use super::client::{AgentClient, ClientError, ReviewerClient};
use crate::api::Verdict;
use crate::config::{self, ClientFile};
use crate::request::signature::AgentKey;
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

fn server_url(flag: &Option<String>, file: &ClientFile) -> String {
    flag.clone()
        .or(file.server.clone())
        .unwrap_or_else(|| "http://127.0.0.1:8080".into())
}

pub(super) fn agent_client(file: &ClientFile, args: &AgentArgs) -> anyhow::Result<AgentClient> {
    let agent = args
        .agent
        .clone()
        .or(file.agent.clone())
        .unwrap_or_else(|| "local-agent".into());
    // An explicit key file (flag or COUNTERSIGN_AGENT_KEY_FILE) beats COUNTERSIGN_AGENT_KEY,
    // which beats the configuration file.
    let key = match (&args.key_file, &args.agent_key, &file.key_file) {
        (Some(path), _, _) | (None, None, Some(path)) => {
            config::read_secret_file(path).map_err(anyhow::Error::msg)?
        }
        (None, Some(k), _) => k.clone().into_bytes(),
        (None, None, None) => {
            let path = PathBuf::from(format!(".countersign/keys/{agent}.key"));
            config::read_secret_file(&path)
                .map_err(|e| anyhow::anyhow!("{e}; give --key-file or set COUNTERSIGN_AGENT_KEY"))?
        }
    };
    let key = AgentKey::new(key).context("agent key")?;
    Ok(AgentClient::new(
        &server_url(&args.server, file),
        &agent,
        key,
    ))
}

/// Prints the server's document as JSON, invisible and bidirectional characters written as
/// `\u202e` escapes (the same JSON, but a terminal cannot be made to show it reordered); a
/// refusal goes to standard error with its status.
pub(super) fn print_result<T: serde::Serialize>(
    result: Result<T, ClientError>,
) -> anyhow::Result<ExitCode> {
    let visible = |v: &serde_json::Value| -> anyhow::Result<String> {
        Ok(crate::text::visible_json(&serde_json::to_string_pretty(v)?).into_owned())
    };
    match result {
        Ok(doc) => {
            println!("{}", visible(&serde_json::to_value(&doc)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Api { status, body }) => {
            eprintln!(
                "server answered {status}:\n{}",
                visible(&serde_json::to_value(&body)?)?
            );
            Ok(ExitCode::FAILURE)
        }
        Err(ClientError::Unexpected { status, body, .. }) => {
            eprintln!("server answered {status}:\n{}", visible(&body)?);
            Ok(ExitCode::FAILURE)
        }
        Err(ClientError::Transport(e)) => Err(e),
    }
}

pub(super) async fn submit(file: &ClientFile, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = agent_client(file, &args.agent)?;
    let body = match &args.body_file {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => serde_json::to_vec(&build_submission(&args)?)?,
    };
    print_result(client.submit(&body, args.idempotency_key.as_deref()).await)
}

fn build_submission(args: &SubmitArgs) -> anyhow::Result<serde_json::Value> {
    let payload: serde_json::Value = match (&args.payload, &args.payload_file) {
        (Some(text), _) => serde_json::from_str(text).context("--payload is not valid JSON")?,
        (None, Some(path)) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not valid JSON", path.display()))?,
        (None, None) => serde_json::Value::Null,
    };
    let mut changes = Vec::new();
    for spec in &args.change {
        let (repo_path, local) = spec
            .split_once('=')
            .context("--change must be REPO_PATH=LOCAL_FILE")?;
        let content =
            std::fs::read_to_string(local).with_context(|| format!("cannot read {local}"))?;
        changes.push(serde_json::json!({ "path": repo_path, "content": content }));
    }
    let mut body = serde_json::json!({
        "kind": args.kind,
        "action": args.action,
        "resource": args.resource,
        "environment": args.environment,
        "justification": args.justification,
    });
    if !payload.is_null() {
        body["payload"] = payload;
    }
    if !changes.is_empty() {
        body["changes"] = serde_json::Value::Array(changes);
    }
    if let Some(url) = &args.callback_url {
        body["callback_url"] = url.clone().into();
    }
    Ok(body)
}

pub(super) async fn review(file: &ClientFile, args: ReviewArgs) -> anyhow::Result<ExitCode> {
    // Same precedence as agent keys: explicit file, then COUNTERSIGN_REVIEWER_TOKEN, then config.
    let token = match (&args.token_file, &args.reviewer_token) {
        (None, Some(t)) => t.clone(),
        (path, _) => {
            let path = path
                .clone()
                .or(file.token_file.clone())
                .unwrap_or_else(|| PathBuf::from(".countersign/keys/local-reviewer.token"));
            let bytes = config::read_secret_file(&path).map_err(|e| {
                anyhow::anyhow!("{e}; give --token-file or set COUNTERSIGN_REVIEWER_TOKEN")
            })?;
            String::from_utf8(bytes).context("reviewer token is not UTF-8")?
        }
    };
    let client = ReviewerClient::new(&server_url(&args.server, file), &token);
    match &args.action {
        ReviewAction::Approve { id, reason } => {
            print_result(client.review(id, Verdict::Approve, reason.as_deref()).await)
        }
        ReviewAction::Deny { id, reason } => {
            print_result(client.review(id, Verdict::Deny, Some(reason)).await)
        }
        ReviewAction::Show { id } => print_result(client.show(id).await),
    }
}
