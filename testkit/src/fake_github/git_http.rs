//! Git smart HTTP at `/{owner}/{repo}.git/...`, served by git's own `git http-backend` run as a
//! CGI process over the bare repositories, behind GitHub's authentication: HTTP Basic with
//! `x-access-token:<installation token>` (401 with `WWW-Authenticate: Basic` otherwise; a push
//! needs `contents: write`). After a push that moves the head of a branch with an open pull
//! request, the pull request's head follows and a `pull_request` `synchronize` webhook goes out
//! with the pusher (the App's bot user) as `sender`. Any other unknown path answers GitHub's 404.

use super::auth::{self, ApiError};
use super::state::State;
use super::{Shared, git, lock};
use axum::body::{Body, Bytes};
use axum::extract::State as Ax;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub(super) async fn fallback(
    Ax(inner): Ax<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some((repo_part, rest)) = path.split_once(".git/") else {
        return ApiError::not_found().into_response();
    };
    let full = repo_part.trim_start_matches('/').to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let push = rest == "git-receive-pack" || query.contains("service=git-receive-pack");
    let (root, before) = {
        let s = lock(&inner);
        if let Some(refused) = refusal(&s, &headers, &full, push) {
            return refused;
        }
        let r = s.repo(&full).unwrap();
        (inner.root.clone(), git::branches(&r.path))
    };
    let out = match cgi(
        &root,
        &method,
        &format!("/{full}.git/{rest}"),
        &query,
        &headers,
        body,
    )
    .await
    {
        Ok(out) => out,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    if push && method == Method::POST {
        after_push(&inner, &full, before);
    }
    out
}

/// GitHub's answers for git over HTTPS: 401 with a Basic challenge without (valid) credentials,
/// 404 for a repository the token does not reach, 403 for a push without `contents: write`.
/// `None` lets the request through.
fn refusal(s: &State, headers: &HeaderMap, full: &str, push: bool) -> Option<Response> {
    let challenge = || {
        let mut resp = (
            StatusCode::UNAUTHORIZED,
            "Invalid username or token. Password \
            authentication is not supported for Git operations.\n",
        )
            .into_response();
        let value = "Basic realm=\"GitHub\"".parse().unwrap();
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        resp
    };
    let Ok(token) = auth::require_token(s, headers) else {
        return Some(challenge());
    };
    let inst = s.installation(token.installation_id).unwrap();
    if s.repo(full).is_none() || !token.reaches(inst, full) {
        return Some((StatusCode::NOT_FOUND, "Repository not found.\n").into_response());
    }
    let level = if push { "write" } else { "read" };
    if !token.grants("contents", level) {
        let msg = format!(
            "Permission to {full}.git denied to {}.\n",
            s.app.bot_login()
        );
        return Some((StatusCode::FORBIDDEN, msg).into_response());
    }
    None
}

/// Runs `git http-backend` for one request and turns its CGI output into a response.
async fn cgi(
    root: &std::path::Path,
    method: &Method,
    path_info: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, String> {
    let header = |name: header::HeaderName| {
        let v = headers.get(name).and_then(|v| v.to_str().ok());
        v.unwrap_or("").to_owned()
    };
    let protocol = headers.get("git-protocol").and_then(|v| v.to_str().ok());
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING))
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A test that ends mid-request drops this future: the backend must not outlive it
        // (left alone on closed pipes it spins).
        .kill_on_drop(true);
    if let Some(p) = protocol {
        cmd.env("GIT_PROTOCOL", p).env("HTTP_GIT_PROTOCOL", p);
    }
    let mut child = cmd.spawn().map_err(|e| format!("git http-backend: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut out = Vec::new();
    stdout
        .read_to_end(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    let _ = writer.await;
    let status = child.wait().await.map_err(|e| e.to_string())?;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, gap)) = split else {
        let err = errors.await.unwrap_or_default();
        return Err(format!(
            "git http-backend ({status}) gave no headers: {err}"
        ));
    };
    let head = String::from_utf8_lossy(&out[..at]).into_owned();
    let mut resp = Response::new(Body::from(out[at + gap..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split(' ')
                .next()
                .unwrap_or("200")
                .parse()
                .unwrap_or(200);
            *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        } else if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}

/// Moves open pull requests whose head branch moved and sends `synchronize` for each.
fn after_push(inner: &Shared, full: &str, before: std::collections::BTreeMap<String, String>) {
    let mut s = lock(inner);
    let r = s.repo(full).unwrap();
    let after = git::branches(&r.path);
    let mut moved = Vec::new();
    for (branch, sha) in &after {
        if before.get(branch) != Some(sha)
            && let Some(n) = r.open_pull_for(branch)
        {
            moved.push((n, r.pulls[&n].head_sha.clone(), sha.clone()));
        }
    }
    let sender = s.app.bot_login();
    s.user(&sender);
    for (n, old, new) in moved {
        let now = s.now();
        let p = s.repo_mut(full).unwrap().pulls.get_mut(&n).unwrap();
        p.head_sha = new.clone();
        p.updated_at = now;
        let extra = json!({"before": old, "after": new});
        super::pulls::pull_hook(inner, &mut s, full, n, "synchronize", &sender, extra);
    }
}
