//! Pull request routes (create, list, get, update, merge, reviews, commits, requested
//! reviewers), changing the state the way GitHub does and sending the `pull_request` webhooks
//! GitHub would send (opened, edited, closed, reopened, review_requested). Labels, comments and
//! statuses are in `issues.rs`.

use super::auth::{self, ApiError};
use super::routes::{Params, json, paged, with};
use super::state::*;
use super::{Shared, git, shapes, webhooks};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Ax};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

type RepoPath = Path<(String, String)>;
pub(super) type NumPath = Path<(String, String, u64)>;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/repos/{owner}/{repo}/pulls",
            post(create_pull).get(list_pulls),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{n}",
            get(get_pull).patch(update_pull),
        )
        .route("/repos/{owner}/{repo}/pulls/{n}/merge", put(merge_pull))
        .route("/repos/{owner}/{repo}/pulls/{n}/reviews", get(list_reviews))
        .route("/repos/{owner}/{repo}/pulls/{n}/commits", get(list_commits))
        .route(
            "/repos/{owner}/{repo}/pulls/{n}/requested_reviewers",
            post(request_reviewers),
        )
        .merge(super::issues::routes())
}

pub(super) fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::new(400, "Problems parsing JSON"))
}

/// GitHub's limit on issue, pull request, comment and review bodies, in characters.
pub const MAX_BODY_CHARS: usize = 65_536;

/// GitHub's `422` for a `body` over [`MAX_BODY_CHARS`] characters.
pub(super) fn check_body_length(resource: &str, req: &Value) -> Result<(), ApiError> {
    match req["body"].as_str() {
        Some(b) if b.chars().count() > MAX_BODY_CHARS => Err(ApiError::validation(json!([{
            "resource": resource, "code": "custom", "field": "body",
            "message": format!("body is too long (maximum is {MAX_BODY_CHARS} characters)"),
        }]))),
        _ => Ok(()),
    }
}

/// The login acting for an installation token: the App's bot user.
pub(super) fn actor(s: &mut State) -> String {
    let login = s.app.bot_login();
    s.user(&login);
    login
}

pub(super) fn pull_of<'a>(
    s: &'a State,
    full: &str,
    n: u64,
) -> Result<(&'a Repo, &'a Pull), ApiError> {
    let r = s.repo(full).ok_or_else(ApiError::not_found)?;
    Ok((r, r.pulls.get(&n).ok_or_else(ApiError::not_found)?))
}

pub(super) fn pull_mut<'a>(s: &'a mut State, full: &str, n: u64) -> Result<&'a mut Pull, ApiError> {
    let r = s.repo_mut(full).ok_or_else(ApiError::not_found)?;
    r.pulls.get_mut(&n).ok_or_else(ApiError::not_found)
}

pub(super) fn pull_json(s: &State, full: &str, n: u64) -> Value {
    let (r, p) = pull_of(s, full, n).unwrap();
    shapes::pull(s, r, p, true)
}

/// Sends a `pull_request` webhook with `action` for pull request `n`.
pub(super) fn pull_hook(
    inner: &super::Inner,
    s: &mut State,
    full: &str,
    n: u64,
    action: &str,
    sender: &str,
    extra: Value,
) -> webhooks::Queued {
    let mut payload = json!({"action": action, "number": n, "pull_request": pull_json(s, full, n)});
    if let Some(extra) = extra.as_object() {
        payload.as_object_mut().unwrap().extend(extra.clone());
    }
    webhooks::send(inner, s, "pull_request", full, sender, payload)
}

async fn create_pull(
    Ax(inner): Ax<Shared>,
    Path((owner, repo)): RepoPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "write")?;
        let req = body_json(&body)?;
        let missing = |field: &str| {
            ApiError::validation(
                json!([{"resource": "PullRequest", "code": "missing_field", "field": field}]),
            )
        };
        let invalid = |field: &str| {
            ApiError::validation(
                json!([{"resource": "PullRequest", "code": "invalid", "field": field}]),
            )
        };
        let custom = |message: String| {
            ApiError::validation(
                json!([{"resource": "PullRequest", "code": "custom", "message": message}]),
            )
        };
        let title = req["title"]
            .as_str()
            .ok_or_else(|| missing("title"))?
            .to_owned();
        check_body_length("PullRequest", &req)?;
        let head = req["head"].as_str().ok_or_else(|| missing("head"))?;
        let base = req["base"]
            .as_str()
            .ok_or_else(|| missing("base"))?
            .to_owned();
        let head = match head.split_once(':') {
            Some((o, b)) if o == owner => b.to_owned(),
            Some(_) => return Err(invalid("head")),
            None => head.to_owned(),
        };
        let r = s.repo(&full).unwrap();
        let base_sha = git::branch_sha(&r.path, &base).ok_or_else(|| invalid("base"))?;
        let head_sha = git::branch_sha(&r.path, &head).ok_or_else(|| invalid("head"))?;
        if r.open_pull_for(&head).is_some() {
            return Err(custom(format!(
                "A pull request already exists for {owner}:{head}."
            )));
        }
        if git::commits_between(&r.path, &base_sha, &head_sha).is_empty() {
            return Err(custom(format!("No commits between {base} and {head}")));
        }
        let user = actor(s);
        let (id, now) = (s.next_id(), s.now());
        let r = s.repo_mut(&full).unwrap();
        let number = r.next_number;
        r.next_number += 1;
        r.pulls.insert(
            number,
            Pull {
                number,
                id,
                user: user.clone(),
                title,
                body: req["body"].as_str().map(str::to_owned),
                head_ref: head,
                head_sha,
                base_ref: base,
                state: PullState::Open,
                draft: req["draft"].as_bool().unwrap_or(false),
                merged: false,
                merge_commit_sha: None,
                merged_by: None,
                labels: Vec::new(),
                requested_reviewers: Vec::new(),
                requested_teams: Vec::new(),
                reviews: Vec::new(),
                created_at: now,
                updated_at: now,
                closed_at: None,
                merged_at: None,
            },
        );
        pull_hook(&inner, s, &full, number, "opened", &user, Value::Null);
        let mut resp = json(201, pull_json(s, &full, number))?;
        let location = format!("{}/repos/{full}/pulls/{number}", s.base_url);
        resp.headers_mut()
            .insert("location", location.parse().unwrap());
        Ok(resp)
    })
}

async fn list_pulls(
    Ax(inner): Ax<Shared>,
    Path((owner, repo)): RepoPath,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "read")?;
        let r = s.repo(&full).unwrap();
        let want = q.get("state").map(String::as_str).unwrap_or("open");
        let head = q
            .get("head")
            .map(|h| h.split_once(':').map(|(_, b)| b).unwrap_or(h));
        let mut list: Vec<&Pull> = r
            .pulls
            .values()
            .filter(|p| match want {
                "all" => true,
                "closed" => p.state == PullState::Closed,
                _ => p.state == PullState::Open,
            })
            .filter(|p| head.is_none_or(|h| p.head_ref == h))
            .filter(|p| q.get("base").is_none_or(|b| &p.base_ref == b))
            .collect();
        let list_len = list.len();
        if q.get("direction").map(String::as_str) != Some("asc") {
            list.reverse(); // newest first, like GitHub's default
        }
        let items = list
            .into_iter()
            .map(|p| shapes::pull(s, r, p, false))
            .collect();
        let answer = paged(s, &uri, &q, items)?;
        let shown = super::routes::page(s, &uri, &q, vec![Value::Null; list_len])
            .0
            .len();
        s.pulls_listed += shown as u64;
        Ok(answer)
    })
}

async fn get_pull(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "read")?;
        pull_of(s, &full, n)?;
        json(200, pull_json(s, &full, n))
    })
}

async fn update_pull(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "write")?;
        let req = body_json(&body)?;
        check_body_length("PullRequest", &req)?;
        let (r, p) = pull_of(s, &full, n)?;
        let head_exists = git::branch_sha(&r.path, &p.head_ref);
        let was_open = p.state == PullState::Open;
        let user = actor(s);
        let now = s.now();
        let p = pull_mut(s, &full, n)?;
        let mut edited = serde_json::Map::new();
        if let Some(t) = req["title"].as_str() {
            edited.insert("title".into(), json!({"from": p.title}));
            p.title = t.to_owned();
        }
        if let Some(b) = req["body"].as_str() {
            edited.insert("body".into(), json!({"from": p.body}));
            p.body = Some(b.to_owned());
        }
        let mut action = None;
        match req["state"].as_str() {
            Some("closed") if was_open => {
                p.state = PullState::Closed;
                p.closed_at = Some(now);
                action = Some("closed");
            }
            Some("open") if !was_open => {
                if p.merged {
                    return Err(ApiError::unprocessable(
                        "state cannot be changed. The pull request has been merged.",
                    ));
                }
                let Some(sha) = head_exists else {
                    let msg = format!(
                        "state cannot be changed. The {} branch has been deleted.",
                        p.head_ref
                    );
                    return Err(ApiError::unprocessable(&msg));
                };
                p.state = PullState::Open;
                p.closed_at = None;
                p.head_sha = sha;
                action = Some("reopened");
            }
            Some("open") | Some("closed") | None => {}
            Some(_) => {
                return Err(ApiError::validation(
                    json!([{"resource": "PullRequest", "code": "invalid", "field": "state"}]),
                ));
            }
        }
        p.updated_at = now;
        if !edited.is_empty() {
            let changes = json!({"changes": Value::Object(edited)});
            pull_hook(&inner, s, &full, n, "edited", &user, changes);
        }
        if let Some(action) = action {
            pull_hook(&inner, s, &full, n, action, &user, Value::Null);
        }
        json(200, pull_json(s, &full, n))
    })
}

async fn merge_pull(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "write")?;
        let req = if body.is_empty() {
            json!({})
        } else {
            body_json(&body)?
        };
        let (r, p) = pull_of(s, &full, n)?;
        if p.state != PullState::Open || p.merged {
            return Err(ApiError::new(405, "Pull Request is not mergeable"));
        }
        if let Some(sha) = req["sha"].as_str()
            && sha != p.head_sha
        {
            return Err(ApiError::new(
                409,
                "Head branch was modified. Review and try the merge again.",
            ));
        }
        let method = req["merge_method"].as_str().unwrap_or("merge");
        let squash = match method {
            "squash" => true,
            "merge" => false,
            "rebase" => {
                return Err(ApiError::new(
                    405,
                    "Rebase merges are not allowed on this repository.",
                ));
            }
            _ => {
                return Err(ApiError::validation(
                    json!([{"resource": "PullRequest", "code": "invalid", "field": "merge_method"}]),
                ));
            }
        };
        let commits = git::commits_between(&r.path, &p.base_ref, &p.head_sha);
        let default_title = if squash {
            format!("{} (#{n})", p.title)
        } else {
            format!("Merge pull request #{n} from {owner}/{}", p.head_ref)
        };
        let default_message = if squash {
            let lines = commits
                .iter()
                .map(|c| format!("* {}", c.message.trim_end()));
            lines.collect::<Vec<_>>().join("\n\n")
        } else {
            p.title.clone()
        };
        let title = req["commit_title"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(default_title);
        let message = req["commit_message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(default_message);
        let author = p.user.clone();
        let email = format!(
            "{}+{}@users.noreply.github.com",
            s.user_ref(&author).id,
            author
        );
        let (path, base_ref, head_sha) = (r.path.clone(), p.base_ref.clone(), p.head_sha.clone());
        let text = format!("{title}\n\n{message}");
        let sha = git::merge(
            &path,
            &base_ref,
            &head_sha,
            squash,
            &text,
            (&author, &email),
        )
        .map_err(|_| ApiError::new(405, "Pull Request is not mergeable"))?;
        let user = actor(s);
        let now = s.now();
        let p = pull_mut(s, &full, n)?;
        p.state = PullState::Closed;
        p.merged = true;
        p.merged_at = Some(now);
        p.closed_at = Some(now);
        p.updated_at = now;
        p.merge_commit_sha = Some(sha.clone());
        p.merged_by = Some(user.clone());
        pull_hook(&inner, s, &full, n, "closed", &user, Value::Null);
        json(
            200,
            json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}),
        )
    })
}

async fn list_reviews(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "read")?;
        let (r, p) = pull_of(s, &full, n)?;
        let items = p
            .reviews
            .iter()
            .map(|rv| shapes::review(s, r, p, rv, false))
            .collect();
        paged(s, &uri, &q, items)
    })
}

async fn list_commits(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "read")?;
        let (r, p) = pull_of(s, &full, n)?;
        // After a merge the base contains the head: list against the merge's first parent.
        let base = match &p.merge_commit_sha {
            Some(m) => git::commit_info(&r.path, m).and_then(|c| c.parents.first().cloned()),
            None => None,
        };
        let base = base.unwrap_or(p.base_ref.clone());
        let commits = git::commits_between(&r.path, &base, &p.head_sha);
        let items = commits.iter().map(|c| shapes::commit(s, r, c)).collect();
        paged(s, &uri, &q, items)
    })
}

async fn request_reviewers(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, n)): NumPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "pull_requests", "write")?;
        let req = body_json(&body)?;
        pull_of(s, &full, n)?;
        let strings = |key: &str| -> Vec<String> {
            let list = req[key].as_array().cloned().unwrap_or_default();
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let (users, teams) = (strings("reviewers"), strings("team_reviewers"));
        let unknown_user = users
            .iter()
            .any(|u| s.users.get(u).is_none_or(|u| u.kind != UserKind::User));
        let unknown_team = teams
            .iter()
            .any(|t| !s.teams.contains_key(&(owner.clone(), t.clone())));
        if unknown_user || unknown_team {
            let msg = "Reviews may only be requested from collaborators. One or more of the users \
                       or teams you specified is not a collaborator of the \
                       {owner}/{repo} repository.";
            return Err(ApiError::unprocessable(
                &msg.replace("{owner}", &owner).replace("{repo}", &repo),
            ));
        }
        let sender = actor(s);
        let p = pull_mut(s, &full, n)?;
        let mut added = Vec::new();
        for u in users {
            if !p.requested_reviewers.contains(&u) {
                p.requested_reviewers.push(u.clone());
                added.push(("requested_reviewer", u));
            }
        }
        for t in teams {
            if !p.requested_teams.contains(&t) {
                p.requested_teams.push(t.clone());
                added.push(("requested_team", t));
            }
        }
        for (key, who) in added {
            let extra = if key == "requested_reviewer" {
                json!({key: shapes::user(s, &who)})
            } else {
                let t = &s.teams[&(owner.clone(), who)];
                json!({key: shapes::team(s, t)})
            };
            pull_hook(&inner, s, &full, n, "review_requested", &sender, extra);
        }
        let (r, p) = pull_of(s, &full, n)?;
        json(201, shapes::pull(s, r, p, false))
    })
}
