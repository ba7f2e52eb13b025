//! Organisation team routes (membership, members) and GitHub Actions routes (workflow dispatch,
//! runs). A dispatch records its inputs and ref and creates a `queued` run (answering `200` with
//! the run when asked to `return_run_details`, unless `FakeGitHub::dispatch_run_details(false)`);
//! the test finishes it with the conclusion it wants (`FakeGitHub::finish_run` /
//! `auto_finish_runs`).

use super::auth::{self, ApiError};
use super::routes::{Params, empty, json, page, paged, with};
use super::state::*;
use super::{Shared, git, shapes};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Ax};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/orgs/{org}/teams/{team}/memberships/{user}",
            get(membership),
        )
        .route("/orgs/{org}/teams/{team}/members", get(members))
        .route(
            "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
            post(dispatch),
        )
        .route(
            "/repos/{owner}/{repo}/actions/workflows/{workflow}/runs",
            get(workflow_runs),
        )
        .route("/repos/{owner}/{repo}/actions/runs/{run}", get(get_run))
}

/// Org routes need an installation on the org and `members: read`.
fn require_org(s: &State, headers: &HeaderMap, org: &str) -> Result<(), ApiError> {
    let token = auth::require_token(s, headers)?;
    let inst = s.installation(token.installation_id).unwrap();
    if inst.account != org {
        return Err(ApiError::not_found());
    }
    if !token.grants("members", "read") {
        return Err(ApiError::not_accessible());
    }
    Ok(())
}

async fn membership(
    Ax(inner): Ax<Shared>,
    Path((org, team, user)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        require_org(s, &headers, &org)?;
        let t = s
            .teams
            .get(&(org.clone(), team.clone()))
            .ok_or_else(ApiError::not_found)?;
        let role = t.members.get(&user).ok_or_else(ApiError::not_found)?;
        let url = format!(
            "{}/organizations/{}/team/{}/memberships/{user}",
            s.base_url,
            s.user_ref(&org).id,
            t.id
        );
        json(200, json!({"url": url, "role": role, "state": "active"}))
    })
}

async fn members(
    Ax(inner): Ax<Shared>,
    Path((org, team)): Path<(String, String)>,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        require_org(s, &headers, &org)?;
        let t = s
            .teams
            .get(&(org.clone(), team.clone()))
            .ok_or_else(ApiError::not_found)?;
        let role = q.get("role").map(String::as_str).unwrap_or("all");
        let list = t
            .members
            .iter()
            .filter(|(_, r)| role == "all" || r.as_str() == role);
        let items = list.map(|(login, _)| shapes::user(s, login)).collect();
        paged(s, &uri, &q, items)
    })
}

fn workflow<'a>(r: &'a Repo, id: &str) -> Option<&'a Workflow> {
    r.workflows
        .iter()
        .find(|w| w.id.to_string() == id || w.file == id)
}

async fn dispatch(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, wf)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "actions", "write")?;
        let req: Value = serde_json::from_slice(&body)
            .map_err(|_| ApiError::new(400, "Problems parsing JSON"))?;
        let r = s.repo(&full).unwrap();
        let w = workflow(r, &wf).ok_or_else(ApiError::not_found)?.clone();
        let Some(git_ref) = req["ref"].as_str() else {
            return Err(ApiError::validation(
                json!([{"resource": "WorkflowDispatch", "code": "missing_field", "field": "ref"}]),
            ));
        };
        let branch = git_ref.trim_start_matches("refs/heads/");
        let sha = git::branch_sha(&r.path, branch)
            .or_else(|| git::resolve(&r.path, git_ref))
            .ok_or_else(|| ApiError::unprocessable(&format!("No ref found for: {git_ref}")))?;
        let inputs = req["inputs"].as_object().cloned().unwrap_or_default();
        let unexpected: Vec<&String> = inputs
            .keys()
            .filter(|k| !w.inputs.contains_key(*k))
            .collect();
        if !unexpected.is_empty() {
            let list = serde_json::to_string(&unexpected).unwrap();
            return Err(ApiError::unprocessable(&format!(
                "Unexpected inputs provided: {list}"
            )));
        }
        if let Some((name, _)) = w
            .inputs
            .iter()
            .find(|(n, req)| **req && !inputs.contains_key(*n))
        {
            return Err(ApiError::unprocessable(&format!(
                "Required input '{name}' not provided"
            )));
        }
        let actor = s.app.bot_login();
        s.user(&actor);
        let (id, now) = (s.next_id(), s.now());
        let r = s.repo_mut(&full).unwrap();
        let run_number = r.runs.iter().filter(|x| x.workflow_id == w.id).count() as u64 + 1;
        r.runs.push(Run {
            id,
            workflow_id: w.id,
            run_number,
            head_branch: branch.to_owned(),
            head_sha: sha,
            event: "workflow_dispatch".into(),
            status: "queued".into(),
            conclusion: None,
            inputs: Value::Object(inputs),
            actor,
            created_at: now,
            updated_at: now,
            reads: 0,
        });
        if s.dispatch_run_details && req["return_run_details"] == json!(true) {
            let html_url = format!("{}/{full}/actions/runs/{id}", s.base_url);
            let r = s.repo(&full).unwrap();
            let run_url = format!("{}/actions/runs/{id}", shapes::repo_api(s, r));
            return json(
                200,
                json!({"workflow_run_id": id, "run_url": run_url, "html_url": html_url}),
            );
        }
        empty(204)
    })
}

/// Moves a run along when [`State::auto_finish_runs`] is set (queued → in_progress → completed).
fn advance(s: &mut State, full: &str, run_id: u64) {
    let (Some(conclusion), now) = (s.auto_finish_runs.clone(), s.now()) else {
        return;
    };
    let r = s.repo_mut(full).unwrap();
    let Some(run) = r.runs.iter_mut().find(|x| x.id == run_id) else {
        return;
    };
    run.reads += 1;
    match (run.status.as_str(), run.reads) {
        ("queued", _) => run.status = "in_progress".into(),
        ("in_progress", n) if n >= 2 => {
            run.status = "completed".into();
            run.conclusion = Some(conclusion);
        }
        _ => return,
    }
    run.updated_at = now;
}

async fn workflow_runs(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, wf)): Path<(String, String, String)>,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "actions", "read")?;
        let r = s.repo(&full).unwrap();
        let w = workflow(r, &wf).ok_or_else(ApiError::not_found)?;
        let ids: Vec<u64> = r
            .runs
            .iter()
            .rev()
            .filter(|x| x.workflow_id == w.id)
            .map(|x| x.id)
            .collect();
        for id in &ids {
            advance(s, &full, *id);
        }
        let r = s.repo(&full).unwrap();
        let runs: Vec<Value> = ids
            .iter()
            .filter_map(|id| r.runs.iter().find(|x| x.id == *id))
            .filter(|x| q.get("event").is_none_or(|e| *e == x.event))
            .filter(|x| q.get("branch").is_none_or(|b| *b == x.head_branch))
            .filter(|x| {
                q.get("status")
                    .is_none_or(|st| *st == x.status || Some(st) == x.conclusion.as_ref())
            })
            .map(|x| shapes::run(s, r, x))
            .collect();
        let total = runs.len();
        let (list, link) = page(s, &uri, &q, runs);
        let mut resp = json(200, json!({"total_count": total, "workflow_runs": list}))?;
        if let Some(link) = link {
            resp.headers_mut().insert("link", link.parse().unwrap());
        }
        Ok(resp)
    })
}

async fn get_run(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "actions", "read")?;
        if !s.repo(&full).unwrap().runs.iter().any(|x| x.id == run_id) {
            return Err(ApiError::not_found());
        }
        advance(s, &full, run_id);
        let r = s.repo(&full).unwrap();
        let run = r.runs.iter().find(|x| x.id == run_id).unwrap();
        json(200, shapes::run(s, r, run))
    })
}
