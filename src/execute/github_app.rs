//! What actions on GitHub need from the GitHub App, as one trait the engine holds (present only
//! with `[github]`): narrowed installation tokens minted for one attempt and recorded before
//! use ([`TokenMinter`]), and the `github_workflow` executor. [`GitHubApp`] implements it over
//! the App's client.

use super::Outcome;
use super::github_credential::{GitHubMinter, TokenMinter};
use super::github_workflow::{self, WorkflowContext, WorkflowSpec};
use crate::forge::github::GitHubClient;
use crate::mask::Masker;
use crate::store::Store;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One attempt of one request, as the GitHub side of an execution sees it.
pub struct Attempt<'a> {
    /// Where the tokens are recorded (the ledger's `credential_issued`).
    pub store: &'a Store,
    pub request_id: &'a str,
    pub agent_id: &'a str,
}

/// What a `github_workflow` run gets besides its spec.
pub struct WorkflowCall<'a> {
    /// Request fields for the input templates.
    pub fields: &'a BTreeMap<String, String>,
    /// The raw payload.
    pub payload: &'a Value,
    pub masker: &'a Masker,
}

/// Actions carried out on GitHub with the App's narrowed tokens.
#[async_trait::async_trait]
pub trait GitHubActions: Send + Sync + 'static {
    /// `owner/name` of the GitOps repository: a `github` credential's default repository.
    fn repository(&self) -> String;

    /// Mints narrowed tokens for `attempt` (recorded before use, revoked by the caller).
    fn minter<'a>(&'a self, attempt: Attempt<'a>) -> Box<dyn TokenMinter + 'a>;

    /// Dispatches (and maybe follows) a `github_workflow` action with tokens from `minter`.
    async fn run_workflow(
        &self,
        spec: &WorkflowSpec,
        minter: &dyn TokenMinter,
        request_id: &str,
        call: WorkflowCall<'_>,
    ) -> Outcome;
}

/// [`GitHubActions`] through the GitHub App's client.
pub struct GitHubApp {
    client: Arc<GitHubClient>,
}

impl GitHubApp {
    pub fn new(client: Arc<GitHubClient>) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl GitHubActions for GitHubApp {
    fn repository(&self) -> String {
        format!("{}/{}", self.client.owner(), self.client.repo())
    }

    fn minter<'a>(&'a self, attempt: Attempt<'a>) -> Box<dyn TokenMinter + 'a> {
        Box::new(GitHubMinter {
            client: &self.client,
            store: attempt.store,
            request_id: attempt.request_id,
            agent_id: attempt.agent_id,
        })
    }

    async fn run_workflow(
        &self,
        spec: &WorkflowSpec,
        minter: &dyn TokenMinter,
        request_id: &str,
        call: WorkflowCall<'_>,
    ) -> Outcome {
        let cx = WorkflowContext {
            client: &self.client,
            minter,
            request_id,
            fields: call.fields,
            payload: call.payload,
            masker: call.masker,
        };
        github_workflow::run(spec, &cx).await
    }
}
