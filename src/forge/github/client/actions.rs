//! GitHub Actions calls for the `github_workflow` executor, each with a token narrowed for the
//! one action (never the cached installation token): the repository's default branch, the
//! workflow dispatch, and reading runs.

use super::{GitHubClient, Login, Token};
use crate::forge::ForgeError;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

use super::super::rest::Call;

/// A workflow run, reduced to what countersign reads.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowRun {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    /// The run's title: the workflow's `run-name` when it sets one.
    #[serde(default)]
    pub display_title: Option<String>,
    /// `queued`, `in_progress`, `completed`, ...
    pub status: String,
    /// Once completed: `success`, `failure`, `cancelled`, `timed_out`, ...
    #[serde(default)]
    pub conclusion: Option<String>,
    pub html_url: String,
    #[serde(default)]
    pub head_branch: Option<String>,
    pub event: String,
    #[serde(default)]
    pub actor: Option<Login>,
}

/// The run a dispatch created, when GitHub says (`return_run_details`).
#[derive(Debug, Clone, Deserialize)]
pub struct DispatchedRun {
    pub workflow_run_id: u64,
    #[serde(default)]
    pub run_url: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// GitHub accepted a dispatch: `204`, or `200` with the run.
#[derive(Debug, Clone)]
pub struct DispatchAnswer {
    pub status: u16,
    pub run: Option<DispatchedRun>,
}

#[derive(Deserialize)]
struct Runs {
    workflow_runs: Vec<WorkflowRun>,
}

/// `/repos/{owner}/{name}` + `rest` for `owner/name`.
fn path(repository: &str, rest: &str) -> Result<String, ForgeError> {
    crate::forge::github::parse_repository(repository)
        .map(|(owner, name)| format!("/repos/{owner}/{name}{rest}"))
        .ok_or_else(|| ForgeError::Permanent("not a repository (`owner/name`)".to_owned()))
}

impl GitHubClient {
    /// The default branch of `repository` (`owner/name`), read with `token`.
    pub async fn default_branch_as(
        &self,
        token: &Token,
        repository: &str,
    ) -> Result<String, ForgeError> {
        #[derive(Deserialize)]
        struct Repo {
            default_branch: String,
        }
        let route = "/repos/{owner}/{repo}";
        let label = format!("GET {route}");
        let reply = self
            .send_as(token, Method::GET, route, path(repository, "")?, None)
            .await?;
        Ok(reply.ok(&label)?.json::<Repo>(&label)?.default_branch)
    }

    /// `POST …/actions/workflows/{workflow}/dispatches` with `token` (`actions: write`), sent at
    /// most once (a 5xx or a lost answer may still have created a run; it is not repeated).
    /// Asks for the run's details; a GitHub refusing that flag (`422`, which creates nothing)
    /// gets the dispatch once more without it.
    pub async fn dispatch_workflow_as(
        &self,
        token: &Token,
        repository: &str,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<DispatchAnswer, ForgeError> {
        let route = "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches";
        let label = format!("POST {route}");
        let target = path(
            repository,
            &format!("/actions/workflows/{workflow}/dispatches"),
        )?;
        let mut body = json!({ "ref": git_ref, "inputs": inputs, "return_run_details": true });
        let mut reply = None;
        for details in [true, false] {
            if !details {
                body.as_object_mut()
                    .expect("an object")
                    .remove("return_run_details");
            }
            let mut call = Call::new(Method::POST, route, target.clone(), token).json(body.clone());
            call.once = true;
            let answer = self.rest.send(&call).await?;
            let refused = answer.status == StatusCode::UNPROCESSABLE_ENTITY;
            reply = Some(answer);
            if !refused {
                break;
            }
        }
        let reply = reply.expect("sent at least once").ok(&label)?;
        let run = match reply.status {
            StatusCode::OK => reply.json::<DispatchedRun>(&label).ok(),
            _ => None,
        };
        Ok(DispatchAnswer {
            status: reply.status.as_u16(),
            run,
        })
    }

    /// The latest `per_page` runs of `workflow` triggered by `workflow_dispatch`, newest first.
    pub async fn workflow_runs_as(
        &self,
        token: &Token,
        repository: &str,
        workflow: &str,
        per_page: u32,
    ) -> Result<Vec<WorkflowRun>, ForgeError> {
        let route = "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs";
        let label = format!("GET {route}");
        let target = path(
            repository,
            &format!(
                "/actions/workflows/{workflow}/runs?event=workflow_dispatch&per_page={}",
                per_page.clamp(1, 100)
            ),
        )?;
        let reply = self
            .send_as(token, Method::GET, route, target, None)
            .await?;
        Ok(reply.ok(&label)?.json::<Runs>(&label)?.workflow_runs)
    }

    /// One workflow run.
    pub async fn workflow_run_as(
        &self,
        token: &Token,
        repository: &str,
        run: u64,
    ) -> Result<WorkflowRun, ForgeError> {
        let route = "/repos/{owner}/{repo}/actions/runs/{run_id}";
        let label = format!("GET {route}");
        let reply = self
            .send_as(
                token,
                Method::GET,
                route,
                path(repository, &format!("/actions/runs/{run}"))?,
                None,
            )
            .await?;
        reply.ok(&label)?.json(&label)
    }
}
