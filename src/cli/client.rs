//! HTTP clients for agents (signed calls) and reviewers (bearer token), used by the CLI, the
//! demo and the tests.

use crate::request::signature::{self, AgentKey};
use crate::time;
use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server answer: status code and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Answer> {
    let status = response.status();
    let text = response
        .text()
        .await
        .context("reading the server's answer")?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer { status, body })
}

/// Signs calls as one agent.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    agent: String,
    key: AgentKey,
}

impl AgentClient {
    pub fn new(base: &str, agent: &str, key: AgentKey) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            agent: agent.to_owned(),
            key,
        }
    }

    fn signed(&self, method: Method, path: &str, body: &[u8]) -> reqwest::RequestBuilder {
        let ts = time::now_secs();
        let sig = signature::sign(&self.key, ts, method.as_str(), path, body);
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(signature::HEADER_AGENT, &self.agent)
            .header(signature::HEADER_TIMESTAMP, ts.to_string())
            .header(signature::HEADER_SIGNATURE, sig)
    }

    /// `POST /v1/requests` with a JSON body.
    pub async fn submit(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .signed(Method::POST, "/v1/requests", body)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        answer(
            req.send()
                .await
                .with_context(|| format!("cannot reach {}", self.base))?,
        )
        .await
    }

    /// `GET /v1/requests/{id}`.
    pub async fn status(&self, id: &str) -> anyhow::Result<Answer> {
        let path = format!("/v1/requests/{id}");
        let resp = self
            .signed(Method::GET, &path, b"")
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        answer(resp).await
    }

    /// Polls the status until `done` holds or `timeout` passes.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: std::time::Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let a = self.status(id).await?;
            if a.status == StatusCode::OK && done(&a.body) {
                return Ok(a.body);
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "timed out waiting on request {id}; last answer {}: {}",
                    a.status,
                    a.body
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// Calls as one reviewer.
#[derive(Clone)]
pub struct ReviewerClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ReviewerClient {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// `POST /v1/requests/{id}/reviews`.
    pub async fn review(
        &self,
        id: &str,
        decision: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let resp = self
            .http
            .post(format!("{}/v1/requests/{id}/reviews", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "decision": decision, "reason": reason }))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        answer(resp).await
    }

    /// `GET /v1/requests/{id}/review`.
    pub async fn show(&self, id: &str) -> anyhow::Result<Answer> {
        let resp = self
            .http
            .get(format!("{}/v1/requests/{id}/review", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        answer(resp).await
    }
}
