//! Issue routes on pull requests (labels, conversation comments) and commit statuses, changing
//! the state the way GitHub does and sending the webhooks GitHub would send (`pull_request`
//! labeled, `issue_comment` created / edited).

use super::auth::{self, ApiError};
use super::pulls::{NumPath, actor, body_json, check_body_length, pull_hook, pull_mut, pull_of};
use super::routes::{Answer, Params, json, paged, with};
use super::state::*;
use super::{Shared, git, shapes, webhooks};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Ax};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{delete, patch, post};
use serde_json::{Value, json};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/repos/{owner}/{repo}/issues/{n}/labels",
            post(add_labels).get(get_labels),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{n}/labels/{name}",
            delete(remove_label),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{n}/comments",
            post(add_comment).get(list_comments),
        )
        .route(
            "/repos/{owner}/{repo}/issues/comments/{id}",
            patch(edit_comment),
        )
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
}

fn labels_of(s: &State, full: &str, n: u64) -> Value {
    let (r, p) = pull_of(s, full, n).unwrap();
    let list = p
        .labels
        .iter()
        .filter_map(|l| r.labels.get(l))
        .map(|l| shapes::label(s, r, l));
    Value::Array(list.collect())
}

async fn add_labels(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo_any(
            s,
            &headers,
            &full,
            &[("issues", "write"), ("pull_requests", "write")],
        )?;
        pull_of(s, &full, n)?;
        let req = body_json(&body)?;
        let list = match &req {
            Value::Array(a) => a.clone(),
            v => v["labels"].as_array().cloned().unwrap_or_default(),
        };
        let names: Vec<String> = list
            .iter()
            .filter_map(|l| l.as_str().or(l["name"].as_str()).map(str::to_owned))
            .collect();
        if names.is_empty() {
            let msg = "Invalid request.\n\nNo subschema in \"anyOf\" matched.";
            return Err(ApiError::unprocessable(msg));
        }
        let sender = actor(s);
        let mut added = Vec::new();
        for name in names {
            let id = s.next_id();
            let r = s.repo_mut(&full).unwrap();
            r.labels.entry(name.clone()).or_insert(Label {
                id,
                name: name.clone(),
                color: "ededed".into(),
                description: None,
            });
            let p = r.pulls.get_mut(&n).unwrap();
            if !p.labels.contains(&name) {
                p.labels.push(name.clone());
                added.push(name);
            }
        }
        for name in added {
            let r = s.repo(&full).unwrap();
            let label = shapes::label(s, r, &r.labels[&name]);
            pull_hook(
                &inner,
                s,
                &full,
                n,
                "labeled",
                &sender,
                json!({"label": label}),
            );
        }
        json(200, labels_of(s, &full, n))
    })
}

async fn get_labels(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo_any(
            s,
            &headers,
            &full,
            &[("issues", "read"), ("pull_requests", "read")],
        )?;
        pull_of(s, &full, n)?;
        json(200, labels_of(s, &full, n))
    })
}

async fn remove_label(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n, name)): Path<(String, String, u64, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo_any(
            s,
            &headers,
            &full,
            &[("issues", "write"), ("pull_requests", "write")],
        )?;
        let p = pull_mut(s, &full, n)?;
        let before = p.labels.len();
        p.labels.retain(|l| *l != name);
        if p.labels.len() == before {
            return Err(ApiError::new(404, "Label does not exist"));
        }
        json(200, labels_of(s, &full, n))
    })
}

async fn add_comment(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo_any(
            s,
            &headers,
            &full,
            &[("issues", "write"), ("pull_requests", "write")],
        )?;
        pull_of(s, &full, n)?;
        let req = body_json(&body)?;
        let Some(text) = req["body"].as_str() else {
            return Err(ApiError::validation(
                json!([{"resource": "IssueComment", "code": "missing_field", "field": "body"}]),
            ));
        };
        check_body_length("IssueComment", &req)?;
        let user = actor(s);
        let (c, _) = add_comment_as(&inner, s, &full, n, &user, text);
        let r = s.repo(&full).unwrap();
        json(201, shapes::comment(s, r, &c))
    })
}

/// Adds an issue comment by `user` and sends `issue_comment` created.
pub(super) fn add_comment_as(
    inner: &super::Inner,
    s: &mut State,
    full: &str,
    n: u64,
    user: &str,
    body: &str,
) -> (Comment, webhooks::Queued) {
    let (id, now) = (s.next_id(), s.now());
    let c = Comment {
        id,
        issue_number: n,
        user: user.to_owned(),
        body: body.to_owned(),
        created_at: now,
        updated_at: now,
    };
    s.repo_mut(full).unwrap().comments.push(c.clone());
    let queued = comment_hook(inner, s, full, &c, "created", user, Value::Null);
    (c, queued)
}

pub(super) fn comment_hook(
    inner: &super::Inner,
    s: &mut State,
    full: &str,
    c: &Comment,
    action: &str,
    sender: &str,
    changes: Value,
) -> webhooks::Queued {
    let (r, p) = pull_of(s, full, c.issue_number).unwrap();
    let mut payload = json!({
        "action": action,
        "issue": shapes::issue_for_pull(s, r, p),
        "comment": shapes::comment(s, r, c),
    });
    if !changes.is_null() {
        payload["changes"] = changes;
    }
    webhooks::send(inner, s, "issue_comment", full, sender, payload)
}

async fn list_comments(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo_any(
            s,
            &headers,
            &full,
            &[("issues", "read"), ("pull_requests", "read")],
        )?;
        let (r, _) = pull_of(s, &full, n)?;
        let mine = r.comments.iter().filter(|c| c.issue_number == n);
        let items = mine.map(|c| shapes::comment(s, r, c)).collect();
        paged(s, &uri, &q, items)
    })
}

async fn edit_comment(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, id)): NumPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo_any(
            s,
            &headers,
            &full,
            &[("issues", "write"), ("pull_requests", "write")],
        )?;
        let req = body_json(&body)?;
        let text = req["body"]
            .as_str()
            .ok_or_else(|| ApiError::unprocessable("body is missing"))?;
        check_body_length("IssueComment", &req)?;
        let user = actor(s);
        let now = s.now();
        let r = s.repo_mut(&full).unwrap();
        let c = r
            .comments
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(ApiError::not_found)?;
        if c.user != user {
            return Err(ApiError::not_accessible());
        }
        let from = std::mem::replace(&mut c.body, text.to_owned());
        c.updated_at = now;
        let c = c.clone();
        comment_hook(
            &inner,
            s,
            &full,
            &c,
            "edited",
            &user,
            json!({"body": {"from": from}}),
        );
        let r = s.repo(&full).unwrap();
        json(200, shapes::comment(s, r, &c))
    })
}

async fn create_status(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "statuses", "write")?;
        let req = body_json(&body)?;
        let r = s.repo(&full).unwrap();
        if git::commit_info(&r.path, &sha).is_none() || sha.len() != 40 {
            return Err(ApiError::unprocessable(&format!(
                "No commit found for SHA: {sha}"
            )));
        }
        let state = req["state"].as_str().unwrap_or("");
        if !["error", "failure", "pending", "success"].contains(&state) {
            return Err(ApiError::validation(
                json!([{"resource": "Status", "code": "custom",
                "field": "state", "message": "state is not included in the list"}]),
            ));
        }
        let description = req["description"].as_str().map(str::to_owned);
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 140)
        {
            return Err(ApiError::validation(
                json!([{"resource": "Status", "code": "custom",
                "field": "description",
                "message": "description is too long (maximum is 140 characters)"}]),
            ));
        }
        let creator = actor(s);
        let (id, now) = (s.next_id(), s.now());
        let st = Status {
            id,
            sha,
            context: req["context"].as_str().unwrap_or("default").to_owned(),
            state: state.to_owned(),
            description,
            target_url: req["target_url"].as_str().map(str::to_owned),
            creator,
            created_at: now,
        };
        s.repo_mut(&full).unwrap().statuses.push(st.clone());
        let r = s.repo(&full).unwrap();
        json(201, shapes::status(s, r, &st, true))
    })
}

/// Statuses for a ref, newest first.
pub(super) fn list_statuses(
    s: &State,
    full: &str,
    rev: &str,
    uri: &Uri,
    q: &std::collections::HashMap<String, String>,
) -> Answer {
    let r = s.repo(full).ok_or_else(ApiError::not_found)?;
    let sha = git::resolve(&r.path, rev).ok_or_else(ApiError::not_found)?;
    let list = r.statuses.iter().rev().filter(|st| st.sha == sha);
    let items = list.map(|st| shapes::status(s, r, st, true)).collect();
    paged(s, uri, q, items)
}

/// The combined status: the latest status per context, and the overall state.
pub(super) fn combined_status(s: &State, full: &str, rev: &str) -> Answer {
    let r = s.repo(full).ok_or_else(ApiError::not_found)?;
    let sha = git::resolve(&r.path, rev).ok_or_else(ApiError::not_found)?;
    let mut latest: Vec<&Status> = Vec::new();
    for st in r.statuses.iter().rev().filter(|st| st.sha == sha) {
        if !latest.iter().any(|l| l.context == st.context) {
            latest.push(st);
        }
    }
    let states: Vec<&str> = latest.iter().map(|st| st.state.as_str()).collect();
    let state = if states.iter().any(|st| *st == "error" || *st == "failure") {
        "failure"
    } else if states.is_empty() || states.contains(&"pending") {
        "pending"
    } else {
        "success"
    };
    let mut small_repo = shapes::repo(s, r);
    for key in ["network_count", "subscribers_count"] {
        small_repo.as_object_mut().unwrap().remove(key);
    }
    let api = shapes::repo_api(s, r);
    json(
        200,
        json!({
            "state": state,
            "statuses": latest.iter().map(|st| shapes::status(s, r, st, false)).collect::<Vec<_>>(),
            "sha": sha,
            "total_count": latest.len(),
            "repository": small_repo,
            "commit_url": format!("{api}/commits/{sha}"),
            "url": format!("{api}/commits/{sha}/status"),
        }),
    )
}
