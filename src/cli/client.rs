//! HTTP clients for agents (signed calls) and reviewers (bearer token), used by the CLI, the
//! demo and the tests. Each call returns the typed [`crate::api`] document, or a
//! [`ClientError`] carrying the server's status and [`ErrorBody`]. (A test that must send a
//! malformed call, or see the JSON itself, makes a raw HTTP call.)

use crate::api::{
    ErrorBody, RequestStatus, ReviewAnswer, ReviewRequest, ReviewView, SubmitAnswer, Verdict,
};
use crate::request::signature::{self, AgentKey};
use crate::time;
use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A server answer before it is typed: status code and JSON body (a string when not JSON).
struct Answer {
    status: StatusCode,
    body: Value,
}

/// Why a typed call did not return its document.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or its answer not read.
    #[error("{0:#}")]
    Transport(anyhow::Error),
    /// The server refused the call.
    #[error("server answered {status}: {} ({})", body.error.message, body.error.code)]
    Api { status: StatusCode, body: ErrorBody },
    /// The answer is not the document the API defines (another service, another version).
    /// `body` is what came (a string when it is not JSON); it is not part of the message.
    #[error("server answered {status} with an unexpected body: {problem}")]
    Unexpected {
        status: StatusCode,
        problem: String,
        body: Value,
    },
}

impl ClientError {
    /// The refusal's code (`not_found`, `policy_denied`, ...), if the server refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.error.code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            ClientError::Transport(_) => None,
        }
    }
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

impl Answer {
    /// The typed document of a 2xx answer; the typed error body otherwise.
    fn into_typed<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        let Answer { status, body } = self;
        let unexpected = |e: serde_json::Error, body: Value| ClientError::Unexpected {
            status,
            // A body that is not JSON is kept out of the message (serde would quote it).
            problem: match body {
                Value::String(_) => "it is not JSON".to_owned(),
                _ => e.to_string(),
            },
            body,
        };
        if status.is_success() {
            return T::deserialize(&body).map_err(|e| unexpected(e, body));
        }
        match ErrorBody::deserialize(&body) {
            Ok(error) => Err(ClientError::Api {
                status,
                body: error,
            }),
            Err(e) => Err(unexpected(e, body)),
        }
    }
}

fn typed<T: DeserializeOwned>(a: anyhow::Result<Answer>) -> Result<T, ClientError> {
    a.map_err(ClientError::Transport)?.into_typed()
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

    /// `POST /v1/requests` with a JSON body (sent as given, so it may be anything).
    pub async fn submit(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<SubmitAnswer, ClientError> {
        typed(self.post_submission(body, idempotency_key).await)
    }

    async fn post_submission(
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
    pub async fn status(&self, id: &str) -> Result<RequestStatus, ClientError> {
        typed(self.get_status(id).await)
    }

    async fn get_status(&self, id: &str) -> anyhow::Result<Answer> {
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
        done: impl Fn(&RequestStatus) -> bool,
    ) -> anyhow::Result<RequestStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let last = match self.status(id).await {
                Ok(s) if done(&s) => return Ok(s),
                Ok(s) => format!("state {}", s.state.as_str()),
                Err(e @ ClientError::Transport(_)) => return Err(e.into()),
                Err(e) => e.to_string(),
            };
            if std::time::Instant::now() > deadline {
                anyhow::bail!("timed out waiting on request {id}; last answer: {last}");
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
        decision: Verdict,
        reason: Option<&str>,
    ) -> Result<ReviewAnswer, ClientError> {
        let body = ReviewRequest {
            decision,
            reason: reason.map(str::to_owned),
        };
        typed(self.post_review(id, &body).await)
    }

    async fn post_review(&self, id: &str, body: &ReviewRequest) -> anyhow::Result<Answer> {
        let resp = self
            .http
            .post(format!("{}/v1/requests/{id}/reviews", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        answer(resp).await
    }

    /// `GET /v1/requests/{id}/review`.
    pub async fn show(&self, id: &str) -> Result<ReviewView, ClientError> {
        typed(self.get_view(id).await)
    }

    async fn get_view(&self, id: &str) -> anyhow::Result<Answer> {
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
