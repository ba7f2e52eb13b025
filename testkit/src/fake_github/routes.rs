//! The fake GitHub's router and the layer every call goes through (recording, failure
//! injection, `x-ratelimit-*` and `x-github-request-id` headers), plus the App, repository and
//! git-data routes. Pull requests are in `pulls.rs`, labels, comments and statuses in
//! `issues.rs`, teams and Actions in `teams_actions.rs`, git smart HTTP in `git_http.rs`.

use super::auth::{self, ApiError};
use super::state::{Call, Failure, State, Token, grants};
use super::{Inner, Shared, git, lock, shapes};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State as Ax};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) type Answer = Result<Response, ApiError>;
pub(super) type Params = Query<HashMap<String, String>>;

pub(super) fn router(inner: Shared) -> Router {
    Router::new()
        .route("/app", get(get_app))
        .route("/app/installations", get(list_installations))
        .route("/app/installations/{id}", get(get_installation))
        .route("/app/installations/{id}/access_tokens", post(create_token))
        .route("/repos/{owner}/{repo}/installation", get(repo_installation))
        .route("/installation/token", delete(revoke_token))
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route("/repos/{owner}/{repo}/branches/{*branch}", get(get_branch))
        .route("/repos/{owner}/{repo}/git/ref/{*ref}", get(get_ref))
        .route("/repos/{owner}/{repo}/git/refs/{*ref}", delete(delete_ref))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(get_contents))
        .route("/repos/{owner}/{repo}/git/trees/{sha}", get(get_tree))
        .route("/repos/{owner}/{repo}/git/blobs/{sha}", get(get_blob))
        .route("/repos/{owner}/{repo}/commits/{*rest}", get(commits))
        .merge(super::pulls::routes())
        .merge(super::teams_actions::routes())
        .fallback(super::git_http::fallback)
        .layer(middleware::from_fn_with_state(inner.clone(), observe))
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(inner)
}

/// Runs `f` under the state lock; an `Err` becomes GitHub's error answer.
pub(super) fn with(inner: &Inner, f: impl FnOnce(&mut State) -> Answer) -> Response {
    let mut s = lock(inner);
    f(&mut s).unwrap_or_else(IntoResponse::into_response)
}

pub(super) fn json(status: u16, v: Value) -> Answer {
    Ok((StatusCode::from_u16(status).unwrap(), Json(v)).into_response())
}

/// A page of `items` as GitHub pages lists (`per_page` ≤ 100, default 30; `page` from 1), with
/// the `Link` header (`first`/`prev`/`next`/`last`).
pub(super) fn paged(
    s: &State,
    uri: &Uri,
    q: &HashMap<String, String>,
    items: Vec<Value>,
) -> Answer {
    let (slice, link) = page(s, uri, q, items);
    let mut resp = (StatusCode::OK, Json(Value::Array(slice))).into_response();
    if let Some(link) = link {
        resp.headers_mut()
            .insert("link", HeaderValue::from_str(&link).unwrap());
    }
    Ok(resp)
}

/// The page of `items` asked for by `q`, and the `Link` header value if there are other pages.
pub(super) fn page(
    s: &State,
    uri: &Uri,
    q: &HashMap<String, String>,
    items: Vec<Value>,
) -> (Vec<Value>, Option<String>) {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30usize);
    let per_page = per_page.clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link = |p: usize| {
        let mut query: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.sort();
        query.push(("per_page".into(), per_page.to_string()));
        query.push(("page".into(), p.to_string()));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!("{}{}?{qs}", s.base_url, uri.path())
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(format!("<{}>; rel=\"prev\"", link(page - 1)));
    }
    if page < last {
        rels.push(format!("<{}>; rel=\"next\"", link(page + 1)));
        rels.push(format!("<{}>; rel=\"last\"", link(last)));
    }
    if page > 1 {
        rels.push(format!("<{}>; rel=\"first\"", link(1)));
    }
    (slice, (!rels.is_empty()).then(|| rels.join(", ")))
}

// ---- the layer in front of everything ----

async fn observe(Ax(inner): Ax<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let (auth, failure) = {
        let mut s = lock(&inner);
        let auth = auth::call_auth(&s, req.headers());
        (auth, take_failure(&mut s, &method, &path))
    };
    let request_id = request_id();
    let mut resp = match failure {
        Some(Failure::Slow(pause)) => {
            tokio::time::sleep(pause).await;
            next.run(req).await
        }
        Some(f) => failure_response(&lock(&inner), &f, &request_id),
        None => next.run(req).await,
    };
    let mut s = lock(&inner);
    let rate_key = match &auth {
        super::CallAuth::Installation { token, .. } => token.clone(),
        super::CallAuth::App => "app".into(),
        _ => "anonymous".into(),
    };
    let limit: u64 = if rate_key == "anonymous" { 60 } else { 5000 };
    let used = {
        let u = s.rate_used.entry(rate_key).or_default();
        *u += 1;
        (*u).min(limit)
    };
    let reset = s.rate_reset;
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if !h.contains_key(name) {
            h.insert(name, HeaderValue::from_str(&value).unwrap());
        }
    };
    set("x-ratelimit-limit", limit.to_string());
    set("x-ratelimit-remaining", (limit - used).to_string());
    set("x-ratelimit-reset", reset.to_string());
    set("x-ratelimit-used", used.to_string());
    set("x-ratelimit-resource", "core".into());
    set("x-github-request-id", request_id);
    set("x-github-api-version-selected", "2022-11-28".into());
    s.calls.push(Call {
        method,
        path,
        query,
        auth,
        status: resp.status().as_u16(),
    });
    resp
}

fn take_failure(s: &mut State, method: &str, path: &str) -> Option<Failure> {
    let at = s.failures.iter().position(|r| {
        r.remaining > 0
            && r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&r.path_prefix)
    })?;
    let rule = &mut s.failures[at];
    rule.remaining -= 1;
    let failure = rule.failure.clone();
    if rule.remaining == 0 {
        s.failures.remove(at);
    }
    Some(failure)
}

fn failure_response(s: &State, f: &Failure, request_id: &str) -> Response {
    let mut e = match f {
        Failure::ServerError(status) => ApiError::new(*status, "Server Error"),
        Failure::SecondaryRateLimit { retry_after_secs } => {
            let msg = format!(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you \
                 try again. If you reach out to GitHub Support for help, please include the \
                 request ID {request_id}."
            );
            let mut e = ApiError::new(403, &msg);
            e.body["documentation_url"] = "https://docs.github.com/free-pro-team@latest/rest/\
                overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
                .into();
            e.headers
                .push(("retry-after", retry_after_secs.to_string()));
            e
        }
        Failure::PrimaryRateLimit {
            status,
            reset_in_secs,
        } => {
            let inst = s.installations.first().map(|i| i.id).unwrap_or(0);
            let msg = format!("API rate limit exceeded for installation ID {inst}.");
            let mut e = ApiError::new(*status, &msg);
            e.body["documentation_url"] = "https://docs.github.com/rest/overview/\
                rate-limits-for-the-rest-api#about-primary-rate-limits"
                .into();
            let reset = s.now() + *reset_in_secs as i64;
            e.headers.push(("x-ratelimit-limit", "5000".into()));
            e.headers.push(("x-ratelimit-remaining", "0".into()));
            e.headers.push(("x-ratelimit-used", "5000".into()));
            e.headers.push(("x-ratelimit-reset", reset.to_string()));
            e
        }
        Failure::Slow(_) => unreachable!("handled before"),
    };
    e.headers
        .push(("x-github-request-id", request_id.to_owned()));
    e.into_response()
}

fn request_id() -> String {
    use rand::Rng as _;
    let mut r = rand::rng();
    format!(
        "{:04X}:{:06X}:{:07X}:{:07X}:{:08X}",
        r.random::<u16>(),
        r.random::<u32>() & 0xFF_FFFF,
        r.random::<u32>() & 0xFFF_FFFF,
        r.random::<u32>() & 0xFFF_FFFF,
        r.random::<u32>()
    )
}

// ---- App routes ----

async fn get_app(Ax(inner): Ax<Shared>, headers: HeaderMap) -> Response {
    with(&inner, |s| {
        auth::require_app(s, &headers)?;
        json(200, shapes::app(s))
    })
}

async fn list_installations(
    Ax(inner): Ax<Shared>,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        auth::require_app(s, &headers)?;
        let all = s.installations.iter().map(|i| shapes::installation(s, i));
        paged(s, &uri, &q, all.collect())
    })
}

async fn get_installation(
    Ax(inner): Ax<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        auth::require_app(s, &headers)?;
        let inst = s.installation(id).ok_or_else(ApiError::not_found)?;
        json(200, shapes::installation(s, inst))
    })
}

/// `DELETE /installation/token`: the token revokes itself (`204`).
async fn revoke_token(Ax(inner): Ax<Shared>, headers: HeaderMap) -> Response {
    with(&inner, |s| {
        let token = auth::require_token(s, &headers)?;
        s.tokens.retain(|t| t.value != token.value);
        empty(204)
    })
}

async fn repo_installation(
    Ax(inner): Ax<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        auth::require_app(s, &headers)?;
        let full = format!("{owner}/{repo}");
        let inst = s.installations.iter().find(|i| i.repos.contains(&full));
        json(
            200,
            shapes::installation(s, inst.ok_or_else(ApiError::not_found)?),
        )
    })
}

async fn create_token(
    Ax(inner): Ax<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    with(&inner, |s| {
        auth::require_app(s, &headers)?;
        let inst = s.installation(id).ok_or_else(ApiError::not_found)?.clone();
        let req: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&body)
                .map_err(|_| ApiError::new(400, "Problems parsing JSON"))?
        };
        let mut repos: Option<Vec<String>> = None;
        let by_name = req["repositories"].as_array().map(|names| {
            let owner = &inst.account;
            names
                .iter()
                .map(|n| format!("{owner}/{}", n.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
        });
        let by_id = req["repository_ids"].as_array().map(|ids| {
            let id_of = |id: &Value| {
                let found = s.repos.values().find(|r| Some(r.id) == id.as_u64());
                found.map(|r| r.full_name()).unwrap_or_default()
            };
            ids.iter().map(id_of).collect::<Vec<_>>()
        });
        for list in [by_name, by_id].into_iter().flatten() {
            for full in &list {
                if !inst.repos.contains(full) {
                    let msg = "There is at least one repository that does not exist or is not \
                               accessible to the parent installation.";
                    return Err(ApiError::unprocessable(msg));
                }
            }
            repos.get_or_insert_with(Vec::new).extend(list);
        }
        let mut permissions = inst.permissions.clone();
        if let Some(asked) = req["permissions"].as_object() {
            permissions.clear();
            for (name, level) in asked {
                let level = level.as_str().unwrap_or("");
                if !grants(&inst.permissions, name, level) {
                    return Err(auth::permission_too_broad(name));
                }
                permissions.insert(name.clone(), level.to_owned());
            }
            // Every installation token can read metadata.
            permissions
                .entry("metadata".into())
                .or_insert("read".into());
        }
        let token = Token {
            value: auth::new_token_value(),
            installation_id: id,
            expires_at: s.now() + 3600,
            repositories: repos.clone(),
            permissions: permissions.clone(),
        };
        s.tokens.push(token.clone());
        let mut v = json!({
            "token": token.value,
            "expires_at": super::state::iso(token.expires_at),
            "permissions": permissions,
            "repository_selection": if repos.is_some() { "selected" } else { "all" },
        });
        if let Some(repos) = repos {
            let full = repos
                .iter()
                .filter_map(|r| s.repo(r))
                .map(|r| shapes::repo(s, r));
            v["repositories"] = Value::Array(full.collect());
        }
        json(201, v)
    })
}

// ---- repository and git data ----

async fn get_repo(
    Ax(inner): Ax<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "metadata", "read")?;
        let mut v = shapes::repo(s, s.repo(&full).unwrap());
        v["permissions"] =
            json!({"admin": false, "maintain": false, "push": true, "triage": true, "pull": true});
        json(200, v)
    })
}

async fn get_branch(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "read")?;
        let r = s.repo(&full).unwrap();
        let not_found = || ApiError::new(404, "Branch not found");
        let sha = git::branch_sha(&r.path, &branch).ok_or_else(not_found)?;
        let info = git::commit_info(&r.path, &sha).unwrap();
        let api = shapes::repo_api(s, r);
        json(
            200,
            json!({
                "name": branch,
                "commit": shapes::commit(s, r, &info),
                "_links": {
                    "self": format!("{api}/branches/{branch}"),
                    "html": format!("{}/{full}/tree/{branch}", s.base_url),
                },
                "protected": false,
                "protection": {"enabled": false, "required_status_checks": {
                    "enforcement_level": "off", "contexts": [], "checks": []}},
                "protection_url": format!("{api}/branches/{branch}/protection"),
            }),
        )
    })
}

async fn get_ref(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "read")?;
        let r = s.repo(&full).unwrap();
        let refname = format!("refs/{name}");
        let sha = git::resolve(&r.path, &refname).ok_or_else(ApiError::not_found)?;
        let api = shapes::repo_api(s, r);
        json(
            200,
            json!({
                "ref": refname,
                "node_id": base64::engine::general_purpose::STANDARD.encode(&refname),
                "url": format!("{api}/git/{refname}"),
                "object": {"sha": sha, "type": "commit", "url": format!("{api}/git/commits/{sha}")},
            }),
        )
    })
}

/// Deletes a branch; like GitHub, an open pull request from it is closed (`pull_request`
/// closed, sent by the bot).
async fn delete_ref(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "write")?;
        let r = s.repo(&full).unwrap();
        let branch = name.strip_prefix("heads/").unwrap_or(&name).to_owned();
        if !git::delete_branch(&r.path, &branch) {
            return Err(ApiError::unprocessable("Reference does not exist"));
        }
        if let Some(n) = r.open_pull_for(&branch) {
            let (bot, now) = (s.app.bot_login(), s.now());
            let p = s.repo_mut(&full).unwrap().pulls.get_mut(&n).unwrap();
            p.state = super::PullState::Closed;
            p.closed_at = Some(now);
            p.updated_at = now;
            super::pulls::pull_hook(&inner, s, &full, n, "closed", &bot, Value::Null);
        }
        empty(204)
    })
}

async fn get_contents(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "read")?;
        let r = s.repo(&full).unwrap();
        let rev = q.get("ref").cloned().unwrap_or(r.default_branch.clone());
        let Some(found) = git::content(&r.path, &rev, &path) else {
            if git::resolve(&r.path, &rev).is_none() {
                return Err(ApiError::new(
                    404,
                    &format!("No commit found for the ref {rev}"),
                ));
            }
            return Err(ApiError::not_found());
        };
        let api = shapes::repo_api(s, r);
        let item = |p: &str, sha: &str, dir: bool, size: usize| {
            let kind = if dir { "dir" } else { "file" };
            let url = format!("{api}/contents/{p}?ref={rev}");
            let git_url = format!("{api}/git/{}/{sha}", if dir { "trees" } else { "blobs" });
            let html = format!(
                "{}/{full}/{}/{rev}/{p}",
                s.base_url,
                if dir { "tree" } else { "blob" }
            );
            let download = (!dir).then(|| format!("{}/raw/{full}/{rev}/{p}", s.base_url));
            json!({
                "type": kind, "size": size, "name": p.rsplit('/').next().unwrap_or(p),
                "path": p, "sha": sha, "url": url, "git_url": git_url, "html_url": html,
                "download_url": download,
                "_links": {"self": url, "git": git_url, "html": html},
            })
        };
        match found {
            git::Content::File { sha, content } => {
                let mut v = item(path.trim_matches('/'), &sha, false, content.len());
                // GitHub wraps the base64 at 60 columns with newlines.
                let b64 = base64::engine::general_purpose::STANDARD.encode(&content);
                let wrapped: Vec<&str> = b64
                    .as_bytes()
                    .chunks(60)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect();
                v["content"] = format!("{}\n", wrapped.join("\n")).into();
                v["encoding"] = "base64".into();
                json(200, v)
            }
            git::Content::Dir(entries) => {
                let dir = path.trim_matches('/');
                let items = entries.iter().map(|(name, sha, is_dir, size)| {
                    let p = if dir.is_empty() {
                        name.clone()
                    } else {
                        format!("{dir}/{name}")
                    };
                    item(&p, sha, *is_dir, *size)
                });
                json(200, Value::Array(items.collect()))
            }
        }
    })
}

async fn get_tree(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "read")?;
        let r = s.repo(&full).unwrap();
        let recursive = q
            .get("recursive")
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
        let (tree_sha, entries) =
            git::tree(&r.path, &sha, recursive).ok_or_else(ApiError::not_found)?;
        let api = shapes::repo_api(s, r);
        let entries = entries.into_iter().map(|e| {
            let kind = if e.kind == "tree" { "trees" } else { "blobs" };
            let mut v = json!({"path": e.path, "mode": e.mode, "type": e.kind, "sha": e.sha,
                               "url": format!("{api}/git/{kind}/{}", e.sha)});
            if let Some(size) = e.size {
                v["size"] = size.into();
            }
            v
        });
        json(
            200,
            json!({"sha": tree_sha, "url": format!("{api}/git/trees/{tree_sha}"),
                   "tree": entries.collect::<Vec<_>>(), "truncated": false}),
        )
    })
}

async fn get_blob(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        auth::require_repo(s, &headers, &full, "contents", "read")?;
        let r = s.repo(&full).unwrap();
        let content = git::blob(&r.path, &sha).ok_or_else(ApiError::not_found)?;
        let api = shapes::repo_api(s, r);
        json(
            200,
            json!({
                "sha": sha,
                "node_id": base64::engine::general_purpose::STANDARD.encode(format!("Blob:{sha}")),
                "size": content.len(),
                "url": format!("{api}/git/blobs/{sha}"),
                "content": base64::engine::general_purpose::STANDARD.encode(&content),
                "encoding": "base64",
            }),
        )
    })
}

/// `commits/{ref}`, `commits/{ref}/statuses` and `commits/{ref}/status` (a ref may hold `/`).
async fn commits(
    Ax(inner): Ax<Shared>,
    Path((owner, repo, rest)): Path<(String, String, String)>,
    uri: Uri,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    with(&inner, |s| {
        let full = format!("{owner}/{repo}");
        if let Some(rev) = rest.strip_suffix("/statuses") {
            auth::require_repo_any(s, &headers, &full, &[("statuses", "read")])?;
            return super::issues::list_statuses(s, &full, rev, &uri, &q);
        }
        if let Some(rev) = rest.strip_suffix("/status") {
            auth::require_repo_any(s, &headers, &full, &[("statuses", "read")])?;
            return super::issues::combined_status(s, &full, rev);
        }
        auth::require_repo(s, &headers, &full, "contents", "read")?;
        let r = s.repo(&full).unwrap();
        let info = git::commit_info(&r.path, &rest)
            .ok_or_else(|| ApiError::new(422, &format!("No commit found for SHA: {rest}")))?;
        json(200, shapes::commit(s, r, &info))
    })
}

/// An empty body answer with `status`.
pub(super) fn empty(status: u16) -> Answer {
    let status = StatusCode::from_u16(status).unwrap();
    Ok((status, Body::empty()).into_response())
}
