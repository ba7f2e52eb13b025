//! The fake GitHub used by the GitHub forge tests behaves like GitHub: exercised here with a
//! plain HTTP client (reqwest), the real `git` binary and a loopback webhook receiver that checks
//! signatures. Response bodies are checked against the required fields of GitHub's OpenAPI
//! description (`tests/data/github/openapi-required.json`), webhook payloads against the real
//! examples in `tests/data/github/webhooks/`.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::fake_github::*;

// ---- helpers ----

/// A REST client for the fake.
struct Api {
    http: reqwest::Client,
    url: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

impl Api {
    fn new(fake: &FakeGitHub) -> Self {
        Api {
            http: reqwest::Client::new(),
            url: fake.url(),
        }
    }

    /// `auth` is the whole `Authorization` value (`"token ghs_…"`, `"Bearer <jwt>"`) or "".
    async fn call(&self, method: &str, path: &str, auth: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if !auth.is_empty() {
            req = req.header("authorization", auth);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, auth: &str) -> Answer {
        self.call("GET", path, auth, None).await
    }
}

fn token_auth(token: &str) -> String {
    format!("token {token}")
}

fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

/// Checks `v` against the required-fields skeleton of operation `key` (e.g.
/// `"GET /repos/{owner}/{repo}/pulls/{pull_number} 200"`) extracted from `@octokit/openapi`.
fn check_shape(key: &str, v: &Value) {
    static SCHEMAS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        let text = std::fs::read_to_string("tests/data/github/openapi-required.json").unwrap();
        serde_json::from_str(&text).unwrap()
    });
    let skeleton = schemas
        .get(key)
        .unwrap_or_else(|| panic!("no schema for {key}"));
    let mut problems = Vec::new();
    conforms(skeleton, v, "$", &mut problems);
    assert!(problems.is_empty(), "{key}: {problems:#?}\n{v:#}");
}

fn conforms(sk: &Value, v: &Value, at: &str, problems: &mut Vec<String>) {
    if v.is_null() {
        if !sk["nullable"].as_bool().unwrap_or(false)
            && sk.as_object().is_some_and(|o| !o.is_empty())
        {
            problems.push(format!("{at} is null"));
        }
        return;
    }
    if let Some(alts) = sk["anyOf"].as_array() {
        let fits = alts.iter().any(|alt| {
            let mut p = Vec::new();
            conforms(alt, v, at, &mut p);
            p.is_empty()
        });
        if !fits {
            problems.push(format!("{at} matches none of the alternatives"));
        }
        return;
    }
    let ok = match sk["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok {
        problems.push(format!("{at}: expected {}, got {v}", sk["type"]));
        return;
    }
    if let Some(req) = sk["required"].as_object() {
        for (k, sub) in req {
            match v.get(k) {
                None => problems.push(format!("{at}.{k} is missing")),
                Some(x) => conforms(sub, x, &format!("{at}.{k}"), problems),
            }
        }
    }
    if let (Some(items), Some(arr)) = (sk.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            conforms(items, x, &format!("{at}[{i}]"), problems);
        }
    }
}

/// A webhook receiver on a loopback port that checks `X-Hub-Signature-256` like countersign
/// must: 200 if it verifies, 401 otherwise. Keeps every delivery.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes, bool)>>>,
}

impl Receiver {
    async fn start(fake: &FakeGitHub) -> Self {
        let rx = Receiver::default();
        let got = rx.got.clone();
        let app = axum::Router::new().route(
            "/webhooks/github",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    let sig = headers
                        .get("x-hub-signature-256")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let valid = sig == format!("sha256={}", sign_sha256(WEBHOOK_SECRET, &body));
                    got.lock().unwrap().push((headers, body, valid));
                    if valid {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::UNAUTHORIZED
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/github", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake.set_webhook_url(&url);
        rx
    }

    /// `(event, payload)` of every verified delivery received, oldest first.
    fn events(&self) -> Vec<(String, Value)> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|(_, _, valid)| *valid)
            .map(|(h, body, _)| {
                let event = h["x-github-event"].to_str().unwrap().to_owned();
                (event, serde_json::from_slice(body).unwrap())
            })
            .collect()
    }

    fn last(&self, event: &str, action: &str) -> Value {
        let all = self.events().into_iter().rev();
        let mut found = all.filter(|(e, p)| e == event && p["action"] == action);
        found
            .next()
            .unwrap_or_else(|| panic!("no {event}.{action} received"))
            .1
    }
}

/// Runs the real `git` with an empty configuration; returns (success, stdout + stderr).
fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Bot")
        .env("GIT_AUTHOR_EMAIL", "bot@example.com")
        .env("GIT_COMMITTER_NAME", "Bot")
        .env("GIT_COMMITTER_EMAIL", "bot@example.com")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `{url}/acme/gitops.git` with `x-access-token:<token>` (or no credentials).
fn clone_url(fake: &FakeGitHub, token: Option<&str>) -> String {
    let url = fake.git_url(REPO);
    match token {
        Some(t) => url.replacen("http://", &format!("http://x-access-token:{t}@"), 1),
        None => url,
    }
}

/// Clones with `token`, commits `path` = `content` on a new `branch` and pushes it (in a
/// blocking thread: git talks to the fake served on this runtime).
async fn push_branch(
    fake: &FakeGitHub,
    token: &str,
    branch: &str,
    path: &str,
    content: &str,
) -> String {
    let url = clone_url(fake, Some(token));
    let (branch, path, content) = (branch.to_owned(), path.to_owned(), content.to_owned());
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let (ok, out) = git(dir.path(), &["clone", "-q", &url, "w"]);
        assert!(ok, "clone: {out}");
        let w = dir.path().join("w");
        let remote = format!("origin/{branch}");
        if !git(&w, &["checkout", "-q", "-B", &branch, &remote]).0 {
            let (ok, out) = git(&w, &["checkout", "-q", "-B", &branch]);
            assert!(ok, "{out}");
        }
        let file = w.join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, content).unwrap();
        assert!(git(&w, &["add", "-A"]).0);
        assert!(git(&w, &["commit", "-q", "-m", &format!("add {path}")]).0);
        let (ok, out) = git(
            &w,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        assert!(ok, "push: {out}");
        git(&w, &["rev-parse", "HEAD"]).1.trim().to_owned()
    })
    .await
    .unwrap()
}

/// The bot's flow: push `branch` with one file and open a pull request; returns its number.
async fn bot_opens_pr(fake: &FakeGitHub, api: &Api, token: &str, branch: &str) -> u64 {
    push_branch(
        fake,
        token,
        branch,
        &format!("requests/{branch}.json"),
        "{\"masked\":true}\n",
    )
    .await;
    let body = json!({"title": format!("Request {branch}"), "head": branch, "base": "main",
                      "body": "who / what / why"});
    let a = api
        .call(
            "POST",
            "/repos/acme/gitops/pulls",
            &token_auth(token),
            Some(body),
        )
        .await;
    assert_eq!(a.status, 201, "{:#}", a.body);
    a.body["number"].as_u64().unwrap()
}

/// Waits up to 10 s for `f` to hold.
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    testkit::wait_until(what, Duration::from_secs(10), async || f()).await;
}

const POLICY: &[(&str, &str)] = &[
    ("policies/CODEOWNERS", "/actions/** @acme/data\n"),
    ("policies/policy.toml", "[defaults]\nrisk = \"medium\"\n"),
];

// ---- App authentication and tokens ----

#[tokio::test]
async fn app_jwt_is_checked_and_mints_installation_tokens() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let jwt = bearer(&fake.app_jwt());

    let app = api.get("/app", &jwt).await;
    assert_eq!(app.status, 200, "{:#}", app.body);
    check_shape("GET /app 200", &app.body);
    assert_eq!(app.body["id"], APP_ID);
    assert_eq!(app.body["slug"], APP_SLUG);

    // Bad JWTs: none, a numeric `iss` (accepted), a wrong `iss`, too long a life, expired,
    // signed by another key.
    assert_eq!(api.get("/app", "").await.status, 401);
    let now = fake.now();
    let numeric = sign_jwt(&json!({"iat": now - 30, "exp": now + 500, "iss": APP_ID}));
    assert_eq!(api.get("/app", &bearer(&numeric)).await.status, 200);
    let wrong_iss = sign_jwt(&json!({"iat": now - 30, "exp": now + 500, "iss": "1"}));
    assert_eq!(api.get("/app", &bearer(&wrong_iss)).await.status, 401);
    let too_long = sign_jwt(&json!({"iat": now - 30, "exp": now + 900, "iss": APP_ID}));
    let a = api.get("/app", &bearer(&too_long)).await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("too far in the future")
    );
    let expired = sign_jwt(&json!({"iat": now - 700, "exp": now - 100, "iss": APP_ID}));
    assert_eq!(api.get("/app", &bearer(&expired)).await.status, 401);
    let jwt_text = fake.app_jwt();
    let parts: Vec<&str> = jwt_text.split('.').collect();
    use base64::Engine as _;
    let claims = json!({"iat": now - 30, "exp": now + 300, "iss": APP_ID}).to_string();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    let forged = format!("{}.{claims}.{}", parts[0], parts[2]);
    assert_eq!(api.get("/app", &bearer(&forged)).await.status, 401);

    let list = api.get("/app/installations", &jwt).await;
    check_shape("GET /app/installations 200", &list.body);
    assert_eq!(list.body[0]["id"], INSTALLATION_ID);
    let inst = api.get("/repos/acme/gitops/installation", &jwt).await;
    check_shape("GET /repos/{owner}/{repo}/installation 200", &inst.body);
    assert_eq!(inst.body["id"], INSTALLATION_ID);

    // A token with the installation's permissions…
    let path = format!("/app/installations/{INSTALLATION_ID}/access_tokens");
    let full = api.call("POST", &path, &jwt, None).await;
    assert_eq!(full.status, 201, "{:#}", full.body);
    check_shape(
        "POST /app/installations/{installation_id}/access_tokens 201",
        &full.body,
    );
    let token = full.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ghs_") && token.len() == 40, "{token}");
    assert_eq!(full.body["permissions"]["pull_requests"], "write");
    let expires = humantime::parse_rfc3339(full.body["expires_at"].as_str().unwrap()).unwrap();
    let life = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        life > Duration::from_secs(3500) && life <= Duration::from_secs(3600),
        "{life:?}"
    );

    // …and one narrowed to one repository, contents: read.
    let narrow = json!({"repositories": ["gitops"], "permissions": {"contents": "read"}});
    let ro = api.call("POST", &path, &jwt, Some(narrow)).await;
    assert_eq!(ro.status, 201, "{:#}", ro.body);
    assert_eq!(
        ro.body["permissions"],
        json!({"contents": "read", "metadata": "read"})
    );
    assert_eq!(ro.body["repository_selection"], "selected");
    assert_eq!(ro.body["repositories"][0]["full_name"], FULL_NAME);
    let ro_token = ro.body["token"].as_str().unwrap().to_owned();

    // Above the installation's permissions, or a repository it does not have: 422.
    let admin = json!({"permissions": {"administration": "write"}});
    assert_eq!(api.call("POST", &path, &jwt, Some(admin)).await.status, 422);
    let other = json!({"repositories": ["elsewhere"]});
    assert_eq!(api.call("POST", &path, &jwt, Some(other)).await.status, 422);
    // An installation token is no App JWT, and a JWT is no installation token.
    assert_eq!(api.get("/app", &token_auth(&token)).await.status, 401);
    assert_eq!(api.get("/repos/acme/gitops", &jwt).await.status, 403);

    // The read-only token reads but cannot open a pull request.
    assert_eq!(
        api.get("/repos/acme/gitops", &token_auth(&ro_token))
            .await
            .status,
        200
    );
    let pr = json!({"title": "t", "head": "x", "base": "main"});
    let denied = api
        .call(
            "POST",
            "/repos/acme/gitops/pulls",
            &token_auth(&ro_token),
            Some(pr),
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.body["message"],
        "Resource not accessible by integration"
    );
    assert!(denied.body["documentation_url"].is_string());

    // Every call is recorded with who made it and what the token allowed.
    let created = fake.calls_to("POST", "/app/installations/");
    assert_eq!(created.len(), 4);
    assert!(created.iter().all(|c| c.auth == CallAuth::App));
    let refused = fake.calls_to("POST", "/repos/acme/gitops/pulls");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, 403);
    assert_eq!(refused[0].token(), Some(ro_token.as_str()));
    match &refused[0].auth {
        CallAuth::Installation {
            permissions,
            repositories,
            ..
        } => {
            assert_eq!(permissions["contents"], "read");
            assert_eq!(repositories.as_deref(), Some(&[FULL_NAME.to_owned()][..]));
        }
        other => panic!("{other:?}"),
    }

    // Tokens expire after an hour.
    fake.advance_clock(Duration::from_secs(3601));
    let late = api.get("/repos/acme/gitops", &token_auth(&token)).await;
    assert_eq!(late.status, 401);
    assert_eq!(late.body["message"], "Bad credentials");
}

// ---- git smart HTTP ----

#[tokio::test]
async fn git_clone_fetch_and_push_need_the_right_token() {
    let fake = FakeGitHub::start(POLICY).await;
    let token = fake.mint_token(None, None);
    let ro = fake.mint_token(
        Some(&["gitops"]),
        Some(&[("contents", "read"), ("metadata", "read")]),
    );

    let sha = push_branch(&fake, &token, "countersign/r1", "requests/r1.json", "{}\n").await;
    assert_eq!(
        fake.branch_sha("countersign/r1").as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(
        fake.file_at("countersign/r1", "requests/r1.json")
            .as_deref(),
        Some("{}\n")
    );
    assert_eq!(
        fake.file_at("countersign/r1", "policies/CODEOWNERS")
            .as_deref(),
        Some(POLICY[0].1)
    );

    let (anon, ro_url, url) = (
        clone_url(&fake, None),
        clone_url(&fake, Some(&ro)),
        clone_url(&fake, Some(&token)),
    );
    let refused = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        // No credentials: 401 and git gives up (no prompt).
        let (ok, out) = git(dir.path(), &["clone", "-q", &anon, "a"]);
        assert!(!ok, "{out}");
        // Read-only token: clone works, push is refused.
        let (ok, out) = git(dir.path(), &["clone", "-q", &ro_url, "r"]);
        assert!(ok, "{out}");
        let r = dir.path().join("r");
        std::fs::write(r.join("x.txt"), "x").unwrap();
        assert!(git(&r, &["add", "x.txt"]).0);
        assert!(git(&r, &["commit", "-q", "-m", "x"]).0);
        let (ok, out) = git(&r, &["push", "-q", "origin", "HEAD:refs/heads/sneaky"]);
        assert!(!ok, "{out}");
        // The full token fetches what was pushed before.
        let (ok, out) = git(&r, &["fetch", "-q", &url, "countersign/r1"]);
        assert!(ok, "{out}");
        git(&r, &["rev-parse", "FETCH_HEAD"]).1.trim().to_owned()
    })
    .await
    .unwrap();
    assert_eq!(refused, sha);
    assert_eq!(fake.branch_sha("sneaky"), None);
    let git_calls = fake.calls_to("*", "/acme/gitops.git/");
    assert!(
        git_calls
            .iter()
            .any(|c| c.status == 401 && c.auth == CallAuth::None)
    );
    assert!(
        git_calls
            .iter()
            .any(|c| c.status == 403 && c.token() == Some(ro.as_str()))
    );
}

/// What the forge does with git2 (no git binary): fetch the base, commit on top, push a branch
/// over plain HTTP with `x-access-token` Basic credentials given on the 401 challenge.
#[tokio::test]
async fn git2_fetches_and_pushes_with_basic_credentials() {
    let fake = FakeGitHub::start(POLICY).await;
    let token = fake.mint_token(None, None);
    let url = fake.git_url(REPO);
    let pushed = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let callbacks = || {
            let mut cb = git2::RemoteCallbacks::new();
            let token = token.clone();
            cb.credentials(move |_, _, _| git2::Cred::userpass_plaintext("x-access-token", &token));
            cb.push_update_reference(|name, status| {
                assert_eq!(status, None, "{name} rejected");
                Ok(())
            });
            cb
        };
        let mut remote = repo.remote_anonymous(&url).unwrap();
        let mut fetch = git2::FetchOptions::new();
        fetch.remote_callbacks(callbacks());
        remote
            .fetch(
                &["refs/heads/main:refs/remotes/origin/main"],
                Some(&mut fetch),
                None,
            )
            .unwrap();
        let parent = repo
            .find_reference("refs/remotes/origin/main")
            .unwrap()
            .peel_to_commit()
            .unwrap();
        let mut tree = repo.treebuilder(Some(&parent.tree().unwrap())).unwrap();
        tree.insert("hello.txt", repo.blob(b"hello").unwrap(), 0o100644)
            .unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let sig = git2::Signature::now("countersign", "bot@example.com").unwrap();
        let oid = repo
            .commit(
                Some("refs/heads/countersign/g1"),
                &sig,
                &sig,
                "request g1",
                &tree,
                &[&parent],
            )
            .unwrap();
        let mut push = git2::PushOptions::new();
        push.remote_callbacks(callbacks());
        remote
            .push(
                &["refs/heads/countersign/g1:refs/heads/countersign/g1"],
                Some(&mut push),
            )
            .unwrap();
        oid.to_string()
    })
    .await
    .unwrap();
    assert_eq!(fake.branch_sha("countersign/g1"), Some(pushed));
    assert_eq!(
        fake.file_at("countersign/g1", "hello.txt").as_deref(),
        Some("hello")
    );
}

// ---- pull requests, reviewers, labels, statuses, comments ----

#[tokio::test]
async fn pull_requests_reviewers_labels_statuses_and_comments() {
    let fake = FakeGitHub::start(POLICY).await;
    let rx = Receiver::start(&fake).await;
    let api = Api::new(&fake);
    let token = fake.mint_token(None, None);
    let auth = token_auth(&token);

    let n = bot_opens_pr(&fake, &api, &token, "countersign/r1").await;
    let pr = api
        .get(&format!("/repos/acme/gitops/pulls/{n}"), &auth)
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/pulls/{pull_number} 200",
        &pr.body,
    );
    assert_eq!(pr.body["user"]["login"], BOT_LOGIN);
    assert_eq!(pr.body["user"]["type"], "Bot");
    assert_eq!(pr.body["head"]["ref"], "countersign/r1");
    assert_eq!(
        pr.body["head"]["sha"],
        fake.branch_sha("countersign/r1").unwrap()
    );
    assert_eq!(pr.body["base"]["sha"], fake.branch_sha("main").unwrap());
    assert_eq!(pr.body["state"], "open");
    assert_eq!(pr.body["merged"], false);

    // GitHub's 422s: a second PR for the same head, a head branch that does not exist.
    let again = json!({"title": "again", "head": "acme:countersign/r1", "base": "main"});
    let dup = api
        .call("POST", "/repos/acme/gitops/pulls", &auth, Some(again))
        .await;
    assert_eq!(dup.status, 422);
    assert_eq!(dup.body["message"], "Validation Failed");
    assert_eq!(
        dup.body["errors"][0]["message"],
        "A pull request already exists for acme:countersign/r1."
    );
    let nohead = json!({"title": "t", "head": "nope", "base": "main"});
    let missing = api
        .call("POST", "/repos/acme/gitops/pulls", &auth, Some(nohead))
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.body["errors"][0],
        json!({"resource": "PullRequest", "code": "invalid", "field": "head"})
    );

    let list = api
        .get(
            "/repos/acme/gitops/pulls?state=open&head=acme:countersign/r1",
            &auth,
        )
        .await;
    check_shape("GET /repos/{owner}/{repo}/pulls 200", &list.body);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let none = api
        .get("/repos/acme/gitops/pulls?state=open&head=acme:other", &auth)
        .await;
    assert_eq!(none.body, json!([]));

    // Reviewers: users and teams; an unknown user is a 422.
    let path = format!("/repos/acme/gitops/pulls/{n}/requested_reviewers");
    let req = json!({"reviewers": ["dave"], "team_reviewers": ["data"]});
    let asked = api.call("POST", &path, &auth, Some(req)).await;
    assert_eq!(asked.status, 201, "{:#}", asked.body);
    check_shape(
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers 201",
        &asked.body,
    );
    assert_eq!(asked.body["requested_reviewers"][0]["login"], "dave");
    assert_eq!(asked.body["requested_teams"][0]["slug"], "data");
    let unknown = api
        .call(
            "POST",
            &path,
            &auth,
            Some(json!({"reviewers": ["nobody-here"]})),
        )
        .await;
    assert_eq!(unknown.status, 422);

    // Labels.
    let labels = json!({"labels": ["countersign", "risk:high"]});
    let added = api
        .call(
            "POST",
            &format!("/repos/acme/gitops/issues/{n}/labels"),
            &auth,
            Some(labels),
        )
        .await;
    assert_eq!(added.status, 200);
    check_shape(
        "POST /repos/{owner}/{repo}/issues/{issue_number}/labels 200",
        &added.body,
    );
    assert_eq!(fake.pull(n).labels, ["countersign", "risk:high"]);

    // Statuses: the latest per context makes the combined state.
    let head = fake.pull(n).head_sha;
    let spath = format!("/repos/acme/gitops/statuses/{head}");
    let pending = json!({"state": "pending", "context": "countersign/approval", "description": "needs 2 of @acme/data"});
    let st = api.call("POST", &spath, &auth, Some(pending)).await;
    assert_eq!(st.status, 201, "{:#}", st.body);
    check_shape("POST /repos/{owner}/{repo}/statuses/{sha} 201", &st.body);
    let combined = api
        .get(&format!("/repos/acme/gitops/commits/{head}/status"), &auth)
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/commits/{ref}/status 200",
        &combined.body,
    );
    assert_eq!(combined.body["state"], "pending");
    let ok =
        json!({"state": "success", "context": "countersign/approval", "description": "approved"});
    api.call("POST", &spath, &auth, Some(ok)).await;
    let combined = api
        .get("/repos/acme/gitops/commits/countersign/r1/status", &auth)
        .await;
    assert_eq!(combined.body["state"], "success");
    assert_eq!(combined.body["total_count"], 1);
    let all = api
        .get(
            &format!("/repos/acme/gitops/commits/{head}/statuses"),
            &auth,
        )
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/commits/{ref}/statuses 200",
        &all.body,
    );
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    assert_eq!(all.body[0]["state"], "success", "newest first");
    let bad = json!({"state": "great", "context": "c"});
    assert_eq!(api.call("POST", &spath, &auth, Some(bad)).await.status, 422);
    let long = json!({"state": "pending", "description": "x".repeat(141)});
    assert_eq!(
        api.call("POST", &spath, &auth, Some(long)).await.status,
        422
    );

    // Comments by the bot.
    let cpath = format!("/repos/acme/gitops/issues/{n}/comments");
    let c = api
        .call(
            "POST",
            &cpath,
            &auth,
            Some(json!({"body": "Denied: reason"})),
        )
        .await;
    assert_eq!(c.status, 201);
    check_shape(
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments 201",
        &c.body,
    );
    let cs = api.get(&cpath, &auth).await;
    check_shape(
        "GET /repos/{owner}/{repo}/issues/{issue_number}/comments 200",
        &cs.body,
    );
    assert_eq!(cs.body[0]["body"], "Denied: reason");
    assert_eq!(cs.body[0]["user"]["login"], BOT_LOGIN);

    // The webhooks GitHub sends for all that, signed, with the bot as sender.
    wait_until("webhooks", || rx.events().len() >= 6).await;
    let opened = rx.last("pull_request", "opened");
    assert_eq!(opened["pull_request"]["number"], n);
    assert_eq!(opened["sender"]["login"], BOT_LOGIN);
    assert_eq!(opened["installation"]["id"], INSTALLATION_ID);
    assert_eq!(
        rx.last("pull_request", "review_requested")["requested_team"]["slug"],
        "data"
    );
    assert_eq!(
        rx.last("pull_request", "labeled")["label"]["name"],
        "risk:high"
    );
    let comment = rx.last("issue_comment", "created");
    assert!(comment["issue"]["pull_request"]["url"].is_string());
    assert_eq!(comment["comment"]["user"]["type"], "Bot");
}

// ---- the driver and webhooks ----

#[tokio::test]
async fn driver_steps_deliver_signed_webhooks_like_github() {
    let fake = FakeGitHub::start(POLICY).await;
    let rx = Receiver::start(&fake).await;
    let api = Api::new(&fake);
    let token = fake.mint_token(None, None);
    let n = bot_opens_pr(&fake, &api, &token, "countersign/r2").await;
    let first_head = fake.pull(n).head_sha;

    let review = fake.approve_as("alice", n).await;
    let hook = rx.last("pull_request_review", "submitted");
    assert_eq!(hook["review"]["id"], review);
    assert_eq!(hook["review"]["state"], "approved");
    assert_eq!(hook["review"]["commit_id"], first_head.as_str());
    assert_eq!(hook["review"]["user"]["login"], "alice");
    assert_eq!(hook["sender"]["login"], "alice");
    assert_eq!(hook["pull_request"]["head"]["sha"], first_head.as_str());

    // The headers, exactly as GitHub sends them.
    {
        let got = rx.got.lock().unwrap();
        let (h, body, valid) = got.last().unwrap();
        assert!(valid);
        assert_eq!(h["x-github-event"], "pull_request_review");
        let id = h["x-github-delivery"].to_str().unwrap();
        assert!(
            id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4,
            "{id}"
        );
        assert_eq!(h["x-github-hook-id"], HOOK_ID.to_string().as_str());
        assert_eq!(h["x-github-hook-installation-target-type"], "integration");
        assert_eq!(
            h["x-github-hook-installation-target-id"],
            APP_ID.to_string().as_str()
        );
        assert!(
            h["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("GitHub-Hookshot/")
        );
        assert_eq!(h["content-type"], "application/json");
        let sha1 = format!("sha1={}", sign_sha1(WEBHOOK_SECRET, body));
        assert_eq!(h["x-hub-signature"], sha1.as_str());
    }

    // REST shows the review in capitals.
    let reviews = api
        .get(
            &format!("/repos/acme/gitops/pulls/{n}/reviews"),
            &token_auth(&token),
        )
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews 200",
        &reviews.body,
    );
    assert_eq!(reviews.body[0]["state"], "APPROVED");

    // A person pushes: a real commit, the head moves, `synchronize` with them as sender.
    let new_head = fake
        .push_to_pr_as("mallory", n, "requests/countersign/r2.json", "{\"evil\":1}")
        .await;
    assert_ne!(new_head, first_head);
    assert_eq!(fake.pull(n).head_sha, new_head);
    assert_eq!(fake.branch_sha("countersign/r2").unwrap(), new_head);
    let sync = rx.last("pull_request", "synchronize");
    assert_eq!(sync["sender"]["login"], "mallory");
    assert_eq!(sync["before"], first_head.as_str());
    assert_eq!(sync["after"], new_head.as_str());
    assert_eq!(sync["pull_request"]["head"]["sha"], new_head.as_str());

    // The bot pushes over git: `synchronize` with the bot as sender.
    let bot_head = push_branch(&fake, &token, "countersign/r2", "requests/more.json", "{}").await;
    wait_until("bot synchronize", || {
        rx.events()
            .iter()
            .any(|(_, p)| p["action"] == "synchronize" && p["after"] == bot_head.as_str())
    })
    .await;
    assert_eq!(
        rx.last("pull_request", "synchronize")["sender"]["login"],
        BOT_LOGIN
    );
    assert_eq!(fake.pull(n).head_sha, bot_head);

    // An approval on an old commit, changes requested, a dismissal.
    fake.approve_on_commit_as("bob", n, &first_head).await;
    assert_eq!(
        rx.last("pull_request_review", "submitted")["review"]["commit_id"],
        first_head.as_str()
    );
    let changes = fake.request_changes_as("carol", n, "too broad").await;
    let hook = rx.last("pull_request_review", "submitted");
    assert_eq!(hook["review"]["state"], "changes_requested");
    assert_eq!(hook["review"]["body"], "too broad");
    fake.dismiss_review(n, changes, "dave").await;
    let hook = rx.last("pull_request_review", "dismissed");
    assert_eq!(hook["review"]["state"], "dismissed");
    assert_eq!(hook["sender"]["login"], "dave");

    // Comments, created and edited.
    let c = fake.comment_as("carol", n, "/deny not today").await;
    let hook = rx.last("issue_comment", "created");
    assert_eq!(hook["comment"]["id"], c);
    assert_eq!(hook["comment"]["body"], "/deny not today");
    assert_eq!(hook["issue"]["number"], n);
    fake.edit_comment_as("carol", c, "/deny changed").await;
    let hook = rx.last("issue_comment", "edited");
    assert_eq!(hook["changes"]["body"]["from"], "/deny not today");

    // Close and reopen by a person.
    fake.close_pr_as("erin", n).await;
    let closed = rx.last("pull_request", "closed");
    assert_eq!(
        (
            closed["sender"]["login"].clone(),
            closed["pull_request"]["merged"].clone()
        ),
        (json!("erin"), json!(false))
    );
    fake.reopen_pr_as("erin", n).await;
    assert_eq!(fake.pull(n).state, PullState::Open);
    assert_eq!(
        rx.last("pull_request", "reopened")["pull_request"]["state"],
        "open"
    );

    // A lost delivery changes the state but never arrives; redelivery sends the same bytes
    // with the same delivery id.
    let received = rx.events().len();
    fake.lose_next_webhooks(1);
    let lost_review = fake.approve_as("bob", n).await;
    assert_eq!(rx.events().len(), received);
    assert!(fake.pull(n).reviews.iter().any(|r| r.id == lost_review));
    let lost = fake.deliveries().into_iter().last().unwrap();
    assert!(lost.lost && lost.status.is_none());
    assert_eq!(fake.redeliver(&lost.id).await, Some(200));
    let got = rx.got.lock().unwrap();
    let (h, body, _) = got.last().unwrap();
    assert_eq!(h["x-github-delivery"], lost.id.as_str());
    assert_eq!(body.as_ref(), lost.body.as_bytes());
    drop(got);
    let all = fake.deliveries();
    assert!(
        all.iter()
            .filter(|d| !d.lost)
            .all(|d| d.status == Some(200)),
        "{all:#?}"
    );
}

#[tokio::test]
async fn squash_merge_makes_one_commit_on_the_base_branch() {
    let fake = FakeGitHub::start(POLICY).await;
    let rx = Receiver::start(&fake).await;
    let api = Api::new(&fake);
    let token = fake.mint_token(None, None);
    let auth = token_auth(&token);
    let n = bot_opens_pr(&fake, &api, &token, "countersign/r3").await;
    let head = fake.pull(n).head_sha;
    let base_before = fake.branch_sha("main").unwrap();

    let path = format!("/repos/acme/gitops/pulls/{n}/merge");
    let stale = json!({"merge_method": "squash", "sha": base_before});
    let conflict = api.call("PUT", &path, &auth, Some(stale)).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.body["message"],
        "Head branch was modified. Review and try the merge again."
    );

    let merged = api
        .call(
            "PUT",
            &path,
            &auth,
            Some(json!({"merge_method": "squash", "sha": head})),
        )
        .await;
    assert_eq!(merged.status, 200, "{:#}", merged.body);
    check_shape(
        "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 200",
        &merged.body,
    );
    let sha = merged.body["sha"].as_str().unwrap();
    assert_eq!(fake.branch_sha("main").as_deref(), Some(sha));
    let repo = git2::Repository::open_bare(fake.repo_path(FULL_NAME)).unwrap();
    let commit = repo.find_commit(git2::Oid::from_str(sha).unwrap()).unwrap();
    assert_eq!(commit.parent_count(), 1, "a squash commit has one parent");
    assert_eq!(commit.parent_id(0).unwrap().to_string(), base_before);
    assert!(commit.summary().unwrap().ends_with(&format!("(#{n})")));
    assert_eq!(
        fake.file_at("main", "requests/countersign/r3.json")
            .as_deref(),
        Some("{\"masked\":true}\n")
    );

    let pr = fake.pull(n);
    assert!(pr.merged && pr.state == PullState::Closed);
    assert_eq!(pr.merge_commit_sha.as_deref(), Some(sha));
    assert_eq!(
        api.call("PUT", &path, &auth, Some(json!({"merge_method": "squash"})))
            .await
            .status,
        405
    );
    let got = api
        .get(&format!("/repos/acme/gitops/pulls/{n}"), &auth)
        .await;
    assert_eq!(
        (got.body["merged"].clone(), got.body["state"].clone()),
        (json!(true), json!("closed"))
    );
    let commits = api
        .get(&format!("/repos/acme/gitops/pulls/{n}/commits"), &auth)
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/pulls/{pull_number}/commits 200",
        &commits.body,
    );
    assert_eq!(commits.body.as_array().unwrap().len(), 1);

    wait_until("closed webhook", || {
        rx.events().iter().any(|(_, p)| p["action"] == "closed")
    })
    .await;
    let closed = rx.last("pull_request", "closed");
    assert_eq!(closed["pull_request"]["merged"], true);
    assert_eq!(closed["pull_request"]["merge_commit_sha"], sha);
    assert_eq!(closed["sender"]["login"], BOT_LOGIN);

    // Closing through the API (the bot cancelling) and the PATCH shape.
    let m = bot_opens_pr(&fake, &api, &token, "countersign/r4").await;
    let patch = json!({"state": "closed", "title": "Cancelled"});
    let closed = api
        .call(
            "PATCH",
            &format!("/repos/acme/gitops/pulls/{m}"),
            &auth,
            Some(patch),
        )
        .await;
    assert_eq!(closed.status, 200);
    check_shape(
        "PATCH /repos/{owner}/{repo}/pulls/{pull_number} 200",
        &closed.body,
    );
    assert_eq!(
        (closed.body["state"].clone(), closed.body["title"].clone()),
        (json!("closed"), json!("Cancelled"))
    );
    let merge_closed = api
        .call(
            "PUT",
            &format!("/repos/acme/gitops/pulls/{m}/merge"),
            &auth,
            None,
        )
        .await;
    assert_eq!(merge_closed.status, 405);
}

// ---- failure injection, rate limit headers, pagination ----

#[tokio::test]
async fn injected_failures_and_rate_limit_headers() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let auth = token_auth(&fake.mint_token(None, None));

    let first = api.get("/repos/acme/gitops", &auth).await;
    assert_eq!(first.status, 200);
    check_shape("GET /repos/{owner}/{repo} 200", &first.body);
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-reset",
        "x-ratelimit-used",
        "x-ratelimit-resource",
        "x-github-request-id",
    ] {
        assert!(!first.header(name).is_empty(), "{name}");
    }
    let remaining: u64 = first.header("x-ratelimit-remaining").parse().unwrap();

    // A 502, then success.
    fake.fail_next("GET", "/repos/acme/gitops", 1, Failure::ServerError(502));
    let failed = api.get("/repos/acme/gitops", &auth).await;
    assert_eq!(failed.status, 502);
    assert_eq!(failed.body["message"], "Server Error");
    assert_eq!(api.get("/repos/acme/gitops", &auth).await.status, 200);

    // A secondary rate limit with `retry-after`, only on the matching method and path.
    fake.fail_next(
        "POST",
        "/repos/acme/gitops/issues",
        1,
        Failure::SecondaryRateLimit {
            retry_after_secs: 7,
        },
    );
    assert_eq!(api.get("/repos/acme/gitops", &auth).await.status, 200);
    let limited = api
        .call(
            "POST",
            "/repos/acme/gitops/issues/1/comments",
            &auth,
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!(limited.status, 403);
    assert_eq!(limited.header("retry-after"), "7");
    assert!(
        limited.body["message"]
            .as_str()
            .unwrap()
            .starts_with("You have exceeded a secondary rate limit")
    );
    assert!(
        limited.body["documentation_url"]
            .as_str()
            .unwrap()
            .contains("secondary-rate-limits")
    );
    assert_ne!(limited.header("x-ratelimit-remaining"), "0");

    // Primary rate limit exhausted.
    fake.fail_next(
        "*",
        "/repos/",
        2,
        Failure::PrimaryRateLimit {
            status: 429,
            reset_in_secs: 30,
        },
    );
    for _ in 0..2 {
        let a = api.get("/repos/acme/gitops/branches/main", &auth).await;
        assert_eq!(a.status, 429);
        assert_eq!(a.header("x-ratelimit-remaining"), "0");
        let reset: i64 = a.header("x-ratelimit-reset").parse().unwrap();
        assert!((reset - fake.now() - 30).abs() <= 2, "{reset}");
    }
    let branch = api.get("/repos/acme/gitops/branches/main", &auth).await;
    assert_eq!(branch.status, 200);
    check_shape(
        "GET /repos/{owner}/{repo}/branches/{branch} 200",
        &branch.body,
    );
    let now_remaining: u64 = branch.header("x-ratelimit-remaining").parse().unwrap();
    assert!(now_remaining < remaining, "remaining counts down");

    // A slow answer.
    fake.fail_next(
        "GET",
        "/repos/acme/gitops",
        1,
        Failure::Slow(Duration::from_millis(600)),
    );
    let t = Instant::now();
    assert_eq!(api.get("/repos/acme/gitops", &auth).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(600));

    let calls = fake.calls_to("GET", "/repos/acme/gitops");
    assert_eq!(calls.iter().filter(|c| c.status == 502).count(), 1);
    assert_eq!(calls.iter().filter(|c| c.status == 429).count(), 2);
    // Unknown routes answer GitHub's 404.
    let nothing = api.get("/nothing/here", &auth).await;
    assert_eq!(
        (nothing.status, nothing.body["message"].clone()),
        (404, json!("Not Found"))
    );
}

#[tokio::test]
async fn lists_are_paginated_with_link_headers() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let auth = token_auth(&fake.mint_token(None, None));
    for i in 0..5 {
        fake.open_pr_as(
            "erin",
            &format!("feature/{i}"),
            &[("notes.txt", "hi")],
            &format!("PR {i}"),
        )
        .await;
    }
    let p1 = api.get("/repos/acme/gitops/pulls?per_page=2", &auth).await;
    assert_eq!(p1.body.as_array().unwrap().len(), 2);
    assert_eq!(p1.body[0]["title"], "PR 4", "newest first");
    let link = p1.header("link");
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=3>; rel=\"last\""), "{link}");
    assert!(link.contains(&fake.url()), "{link}");
    let next = link
        .split(", ")
        .find(|l| l.ends_with("rel=\"next\""))
        .unwrap();
    let next = next
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .trim_start_matches(&fake.url());
    let p2 = api.get(next, &auth).await;
    assert_eq!(p2.body[0]["title"], "PR 2");
    let p3 = api
        .get("/repos/acme/gitops/pulls?per_page=2&page=3", &auth)
        .await;
    assert_eq!(p3.body.as_array().unwrap().len(), 1);
    let link = p3.header("link");
    assert!(
        link.contains("rel=\"prev\"")
            && link.contains("rel=\"first\"")
            && !link.contains("rel=\"next\""),
        "{link}"
    );
    let all = api
        .get("/repos/acme/gitops/pulls?per_page=100", &auth)
        .await;
    assert_eq!(all.body.as_array().unwrap().len(), 5);
    assert!(all.header("link").is_empty());
}

// ---- teams, Actions, contents ----

#[tokio::test]
async fn team_membership_answers_404_for_non_members() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let auth = token_auth(&fake.mint_token(None, None));
    let alice = api
        .get("/orgs/acme/teams/data/memberships/alice", &auth)
        .await;
    assert_eq!(alice.status, 200);
    check_shape(
        "GET /orgs/{org}/teams/{team_slug}/memberships/{username} 200",
        &alice.body,
    );
    assert_eq!(
        (alice.body["state"].clone(), alice.body["role"].clone()),
        (json!("active"), json!("member"))
    );
    assert_eq!(
        api.get("/orgs/acme/teams/data/memberships/mallory", &auth)
            .await
            .status,
        404
    );
    assert_eq!(
        api.get("/orgs/acme/teams/nope/memberships/alice", &auth)
            .await
            .status,
        404
    );
    fake.add_team_member("acme", "data", "mallory");
    assert_eq!(
        api.get("/orgs/acme/teams/data/memberships/mallory", &auth)
            .await
            .status,
        200
    );
    let members = api.get("/orgs/acme/teams/data/members", &auth).await;
    check_shape(
        "GET /orgs/{org}/teams/{team_slug}/members 200",
        &members.body,
    );
    let logins: Vec<&str> = members
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["alice", "bob", "carol", "mallory"]);
    // Without `members: read` the org is out of reach.
    let narrow = token_auth(&fake.mint_token(None, Some(&[("contents", "read")])));
    assert_eq!(
        api.get("/orgs/acme/teams/data/memberships/alice", &narrow)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn workflow_dispatch_records_inputs_and_creates_a_run() {
    let fake = FakeGitHub::builder()
        .repo(REPO, BASE, POLICY)
        .workflow(
            "deploy.yml",
            "Deploy",
            &[("request_id", true), ("target", false)],
        )
        .start()
        .await;
    let api = Api::new(&fake);
    let auth = token_auth(&fake.mint_token(None, None));
    let path = "/repos/acme/gitops/actions/workflows/deploy.yml/dispatches";
    let unknown = api
        .call(
            "POST",
            path,
            &auth,
            Some(json!({"ref": "main", "inputs": {"request_id": "r1", "oops": "x"}})),
        )
        .await;
    assert_eq!(unknown.status, 422);
    assert_eq!(
        unknown.body["message"],
        "Unexpected inputs provided: [\"oops\"]"
    );
    let missing = api
        .call(
            "POST",
            path,
            &auth,
            Some(json!({"ref": "main", "inputs": {}})),
        )
        .await;
    assert_eq!(missing.status, 422);
    let bad_ref = api
        .call(
            "POST",
            path,
            &auth,
            Some(json!({"ref": "nope", "inputs": {"request_id": "r1"}})),
        )
        .await;
    assert_eq!(
        (bad_ref.status, bad_ref.body["message"].clone()),
        (422, json!("No ref found for: nope"))
    );
    let ok = api
        .call(
            "POST",
            path,
            &auth,
            Some(json!({"ref": "main", "inputs": {"request_id": "r1", "target": "prod"}})),
        )
        .await;
    assert_eq!(ok.status, 204);

    let runs = fake.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].inputs,
        json!({"request_id": "r1", "target": "prod"})
    );
    assert_eq!(
        (runs[0].head_branch.as_str(), runs[0].status.as_str()),
        ("main", "queued")
    );
    let listed = api
        .get(
            "/repos/acme/gitops/actions/workflows/deploy.yml/runs?event=workflow_dispatch",
            &auth,
        )
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs 200",
        &listed.body,
    );
    assert_eq!(listed.body["total_count"], 1);
    let id = runs[0].id;
    fake.finish_run(id, "failure");
    let run = api
        .get(&format!("/repos/acme/gitops/actions/runs/{id}"), &auth)
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/actions/runs/{run_id} 200",
        &run.body,
    );
    assert_eq!(
        (run.body["status"].clone(), run.body["conclusion"].clone()),
        (json!("completed"), json!("failure"))
    );

    // Runs that move along as they are polled.
    fake.auto_finish_runs(Some("success"));
    api.call(
        "POST",
        path,
        &auth,
        Some(json!({"ref": "main", "inputs": {"request_id": "r2"}})),
    )
    .await;
    let id = fake.runs()[1].id;
    let states: Vec<Value> = futures_poll(&api, &auth, id, 3).await;
    assert_eq!(
        states,
        [
            json!(["in_progress", null]),
            json!(["completed", "success"]),
            json!(["completed", "success"])
        ]
    );
    // Without `actions: write` no dispatch.
    let ro = token_auth(&fake.mint_token(None, Some(&[("actions", "read")])));
    assert_eq!(
        api.call(
            "POST",
            path,
            &ro,
            Some(json!({"ref": "main", "inputs": {"request_id": "r3"}}))
        )
        .await
        .status,
        403
    );
}

async fn futures_poll(api: &Api, auth: &str, id: u64, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        let run = api
            .get(&format!("/repos/acme/gitops/actions/runs/{id}"), auth)
            .await;
        out.push(json!([run.body["status"], run.body["conclusion"]]));
    }
    out
}

#[tokio::test]
async fn contents_refs_trees_and_blobs_read_the_real_repository() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let auth = token_auth(&fake.mint_token(None, None));
    let main = fake.branch_sha("main").unwrap();

    let r = api
        .get("/repos/acme/gitops/git/ref/heads/main", &auth)
        .await;
    check_shape("GET /repos/{owner}/{repo}/git/ref/{ref} 200", &r.body);
    assert_eq!(r.body["object"]["sha"], main.as_str());
    assert_eq!(
        api.get("/repos/acme/gitops/git/ref/heads/nope", &auth)
            .await
            .status,
        404
    );

    let file = api
        .get(
            "/repos/acme/gitops/contents/policies/CODEOWNERS?ref=main",
            &auth,
        )
        .await;
    check_shape("GET /repos/{owner}/{repo}/contents/{path} 200", &file.body);
    use base64::Engine as _;
    let b64: String = file.body["content"].as_str().unwrap().split('\n').collect();
    let text = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(text, POLICY[0].1.as_bytes());
    let dir = api
        .get(
            &format!("/repos/acme/gitops/contents/policies?ref={main}"),
            &auth,
        )
        .await;
    check_shape("GET /repos/{owner}/{repo}/contents/{path} 200", &dir.body);
    let names: Vec<&str> = dir
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CODEOWNERS", "policy.toml"]);
    assert_eq!(
        api.get("/repos/acme/gitops/contents/nope.txt", &auth)
            .await
            .status,
        404
    );

    let tree = api
        .get(
            &format!("/repos/acme/gitops/git/trees/{main}?recursive=1"),
            &auth,
        )
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/git/trees/{tree_sha} 200",
        &tree.body,
    );
    let paths: Vec<&str> = tree.body["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["policies", "policies/CODEOWNERS", "policies/policy.toml"]
    );
    let blob_sha = tree.body["tree"][1]["sha"].as_str().unwrap();
    let blob = api
        .get(&format!("/repos/acme/gitops/git/blobs/{blob_sha}"), &auth)
        .await;
    check_shape(
        "GET /repos/{owner}/{repo}/git/blobs/{file_sha} 200",
        &blob.body,
    );
    let text = base64::engine::general_purpose::STANDARD
        .decode(blob.body["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(text, POLICY[0].1.as_bytes());

    // A token narrowed to another repository does not see this one.
    let other = FakeGitHub::builder()
        .repo("gitops", "main", POLICY)
        .repo("other", "main", &[])
        .start()
        .await;
    let narrow = token_auth(&other.mint_token(Some(&["other"]), None));
    let api2 = Api::new(&other);
    assert_eq!(
        api2.get("/repos/acme/gitops/contents/policies/CODEOWNERS", &narrow)
            .await
            .status,
        404
    );
    assert_eq!(api2.get("/repos/acme/other", &narrow).await.status, 200);
}

// ---- secrecy helpers ----

#[tokio::test]
async fn visible_text_covers_pull_requests_comments_statuses_and_git_objects() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let token = fake.mint_token(None, None);
    let auth = token_auth(&token);
    push_branch(
        &fake,
        &token,
        "countersign/s1",
        "requests/s1.json",
        "CANARY-IN-BLOB",
    )
    .await;
    let pr = json!({"title": "CANARY-IN-TITLE", "head": "countersign/s1", "base": "main", "body": "CANARY-IN-BODY"});
    let n = api
        .call("POST", "/repos/acme/gitops/pulls", &auth, Some(pr))
        .await
        .body["number"]
        .as_u64()
        .unwrap();
    let head = fake.pull(n).head_sha;
    let st = json!({"state": "pending", "context": "c", "description": "CANARY-IN-STATUS"});
    api.call(
        "POST",
        &format!("/repos/acme/gitops/statuses/{head}"),
        &auth,
        Some(st),
    )
    .await;
    fake.comment_as("alice", n, "CANARY-IN-COMMENT").await;
    fake.request_changes_as("bob", n, "CANARY-IN-REVIEW").await;
    for place in ["BLOB", "TITLE", "BODY", "STATUS", "COMMENT", "REVIEW"] {
        assert!(
            !fake.find_visible(&format!("CANARY-IN-{place}")).is_empty(),
            "{place}"
        );
    }
    assert!(
        fake.find_visible("add requests/s1.json")
            .iter()
            .any(|at| at.contains("git object"))
    );
    assert!(fake.find_visible("NEVER-WRITTEN").is_empty());
}

// ---- real example payloads ----

const EXAMPLES: &[(&str, &str)] = &[
    ("pull_request", "opened"),
    ("pull_request", "synchronize"),
    ("pull_request", "closed"),
    ("pull_request", "reopened"),
    ("pull_request_review", "submitted"),
    ("pull_request_review", "dismissed"),
    ("issue_comment", "created"),
    ("issue_comment", "edited"),
    ("ping", ""),
];

fn example(event: &str, action: &str) -> Value {
    let name = if action.is_empty() {
        event.to_owned()
    } else {
        format!("{event}.{action}")
    };
    let text = std::fs::read_to_string(format!("tests/data/github/webhooks/{name}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every key of `real` (recursively; arrays through their first element) is in `ours`.
fn missing_keys(real: &Value, ours: &Value, at: &str, out: &mut Vec<String>) {
    match (real, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (k, rv) in r {
                match o.get(k) {
                    None => out.push(format!("{at}.{k}")),
                    Some(ov) => missing_keys(rv, ov, &format!("{at}.{k}"), out),
                }
            }
        }
        (Value::Array(r), Value::Array(o)) if !r.is_empty() && !o.is_empty() => {
            missing_keys(&r[0], &o[0], &format!("{at}[0]"), out)
        }
        _ => {}
    }
}

#[tokio::test]
async fn generated_payloads_have_the_shape_of_real_examples() {
    // The real examples parse into the typed model.
    for (event, action) in EXAMPLES {
        let real = example(event, action);
        let parsed: model::Event =
            serde_json::from_value(real).unwrap_or_else(|e| panic!("{event}.{action}: {e}"));
        assert_eq!(parsed.action.as_deref().unwrap_or(""), *action);
    }

    // Generate one of each (no webhook URL: deliveries are only recorded).
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let token = fake.mint_token(None, None);
    let n = bot_opens_pr(&fake, &api, &token, "countersign/e1").await;
    fake.ping().await;
    fake.push_to_pr_as("erin", n, "x.txt", "x").await;
    let review = fake.review_comment_as("alice", n, "looks fine").await;
    fake.dismiss_review(n, review, "bob").await;
    let c = fake.comment_as("alice", n, "/deny no").await;
    fake.edit_comment_as("alice", c, "/deny changed").await;
    fake.approve_as("bob", n).await;
    fake.close_pr_as("erin", n).await;
    fake.reopen_pr_as("erin", n).await;
    fake.request_changes_as("carol", n, "why").await;
    fake.add_team_member("acme", "data", "erin");

    let deliveries = fake.deliveries();
    for (event, action) in EXAMPLES {
        let d = deliveries
            .iter()
            .find(|d| d.event == *event && d.action.as_deref().unwrap_or("") == *action)
            .unwrap_or_else(|| panic!("no generated {event}.{action}"));
        let ours = d.json();
        let parsed: model::Event = serde_json::from_value(ours.clone())
            .unwrap_or_else(|e| panic!("ours {event}.{action}: {e}"));
        let mut missing = Vec::new();
        missing_keys(&example(event, action), &ours, "$", &mut missing);
        // The example `ping` is an organisation hook's; ours is an App's (no `hook.ping_url`…).
        if *event == "ping" {
            missing.retain(|k| !k.starts_with("$.hook."));
        }
        assert!(missing.is_empty(), "{event}.{action} lacks {missing:#?}");
        if let Some(review) = parsed.review {
            assert!(
                ["approved", "changes_requested", "commented", "dismissed"]
                    .contains(&review.state.as_str())
            );
        }
    }
    // The typed model reads what countersign needs.
    let sync = deliveries
        .iter()
        .find(|d| d.action.as_deref() == Some("synchronize"))
        .unwrap();
    let sync: model::Event = serde_json::from_value(sync.json()).unwrap();
    assert_eq!(sync.sender.login, "erin");
    assert_eq!(sync.pull_request.unwrap().head.sha, sync.after.unwrap());
    assert_eq!(sync.installation.unwrap().id, INSTALLATION_ID);
    assert_eq!(sync.repository.unwrap().full_name, FULL_NAME);
}

// ---- other installations, human merges, text limits, listing counts ----

#[tokio::test]
async fn other_installations_deliver_to_the_same_url_and_people_can_merge() {
    let fake = FakeGitHub::builder()
        .repo(REPO, BASE, POLICY)
        .repo("website", BASE, &[("README.md", "# site\n")])
        .other_installation(7373, "umbrella", &["gitops"])
        .start()
        .await;
    let rx = Receiver::start(&fake).await;
    let api = Api::new(&fake);
    let (ours, sibling, other) = fake.with_state(|s| {
        let id = |n: &str| s.repo(n).unwrap().id;
        (id("acme/gitops"), id("acme/website"), id("umbrella/gitops"))
    });
    assert!(ours != sibling && ours != other && sibling != other);
    // The App's installations: ours has acme's repositories, the other umbrella's.
    let jwt = bearer(&fake.app_jwt());
    let inst = api.get("/repos/umbrella/gitops/installation", &jwt).await;
    assert_eq!(inst.body["id"], 7373);
    let inst = api.get("/repos/acme/website/installation", &jwt).await;
    assert_eq!(inst.body["id"], INSTALLATION_ID);

    for (repo, id, installation) in [
        ("umbrella/gitops", other, 7373),
        ("acme/website", sibling, INSTALLATION_ID),
    ] {
        fake.drive(Some(repo));
        let n = fake
            .open_pr_as("mallory", "feature", &[("x.txt", "x\n")], "unrelated")
            .await;
        assert_eq!(n, 1);
        fake.comment_as("bob", n, "/deny").await;
        let hook = rx.last("issue_comment", "created");
        assert_eq!(hook["repository"]["full_name"], repo);
        assert_eq!(hook["repository"]["id"], id);
        assert_eq!(hook["installation"]["id"], installation);
        // A person merges with the merge button.
        let merge = fake.merge_pr_as("erin", n).await;
        let hook = rx.last("pull_request", "closed");
        assert_eq!(hook["pull_request"]["merged"], true);
        assert_eq!(hook["pull_request"]["merged_by"]["login"], "erin");
        assert_eq!(hook["sender"]["login"], "erin");
        assert_eq!(hook["pull_request"]["merge_commit_sha"], merge.as_str());
        assert_eq!(fake.pull_of(repo, n).merged_by.as_deref(), Some("erin"));
    }
    fake.drive(None);
    assert!(
        fake.pulls().is_empty(),
        "nothing happened on countersign's repository"
    );
    let deliveries = fake.deliveries();
    assert!(deliveries.iter().all(|d| d.status == Some(200)));
}

#[tokio::test]
async fn bodies_over_65536_characters_are_refused_and_pull_listings_are_counted() {
    let fake = FakeGitHub::start(POLICY).await;
    let api = Api::new(&fake);
    let token = fake.mint_token(None, None);
    let n = bot_opens_pr(&fake, &api, &token, "countersign/r9").await;
    let path = format!("/repos/acme/gitops/issues/{n}/comments");
    let at_limit = "é".repeat(65_536); // characters, not bytes
    let a = api
        .call(
            "POST",
            &path,
            &token_auth(&token),
            Some(json!({"body": at_limit})),
        )
        .await;
    assert_eq!(a.status, 201, "{:#}", a.body);
    let over = "x".repeat(65_537);
    let a = api
        .call(
            "POST",
            &path,
            &token_auth(&token),
            Some(json!({"body": over})),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(
        a.body.to_string().contains("maximum is 65536"),
        "{:#}",
        a.body
    );
    let a = api
        .call(
            "PATCH",
            &format!("/repos/acme/gitops/pulls/{n}"),
            &token_auth(&token),
            Some(json!({"body": over})),
        )
        .await;
    assert_eq!(a.status, 422);
    let head = fake.pull(n).head_sha;
    let a = api
        .call(
            "POST",
            &format!("/repos/acme/gitops/statuses/{head}"),
            &token_auth(&token),
            Some(json!({"state": "pending", "description": "d".repeat(141)})),
        )
        .await;
    assert_eq!(a.status, 422);

    assert_eq!(fake.pulls_listed(), 0);
    let a = api
        .get("/repos/acme/gitops/pulls?state=open", &token_auth(&token))
        .await;
    assert_eq!(a.body.as_array().unwrap().len(), 1);
    assert_eq!(fake.pulls_listed(), 1);
}
