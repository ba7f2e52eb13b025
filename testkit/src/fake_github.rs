//! A stateful fake GitHub on a loopback port, for the GitHub forge's integration tests.
//!
//! Three layers:
//! - **state** (`fake_github/state.rs`, `git.rs`): users, teams, a GitHub App with its
//!   installation and tokens, repositories backed by real bare git repositories on disk, pull
//!   requests, reviews, comments, statuses, labels, workflows and runs; the record of every call;
//!   failure injection ([`FakeGitHub::fail_next`]).
//! - **HTTP** (`routes.rs`, `pulls.rs`, `issues.rs`, `teams_actions.rs`, `git_http.rs`,
//!   `auth.rs`, `shapes.rs`): GitHub's REST API shapes, status codes and error bodies, App JWT and
//!   installation token authentication, and git smart HTTP (`git http-backend`) at
//!   `{url}/{owner}/{repo}.git`.
//! - **driver** (`driver.rs`, `webhooks.rs`): a person's steps ([`FakeGitHub::approve_as`],
//!   [`FakeGitHub::push_to_pr_as`]…) that change the state and deliver the signed webhook GitHub
//!   would send to [`FakeGitHub::set_webhook_url`].
//!
//! Defaults ([`FakeGitHub::builder`]): organisation [`ORG`] with repository [`REPO`] (base
//! branch `main`), users alice, bob, carol, dave, erin and mallory, team `acme/data` = alice, bob
//! and carol, the App [`APP_ID`] (bot [`BOT_LOGIN`]) installed as [`INSTALLATION_ID`] on every
//! repository with [`default_permissions`], webhook secret [`WEBHOOK_SECRET`].
#![allow(dead_code)]

mod auth;
mod driver;
mod git;
mod git_http;
mod issues;
mod pulls;
mod routes;
mod shapes;
mod state;
mod teams_actions;
mod webhooks;

#[allow(unused_imports)]
pub use state::{
    App, Call, CallAuth, Comment, Delivery, Failure, Installation, Label, Perms, Pull, PullState,
    Repo, Review, ReviewState, Run, State, Status, Team, Token, User, UserKind, Workflow,
};
#[allow(unused_imports)]
pub use webhooks::{model, sign_sha1, sign_sha256};

use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

pub const ORG: &str = "acme";
pub const REPO: &str = "gitops";
pub const FULL_NAME: &str = "acme/gitops";
pub const BASE: &str = "main";
pub const APP_ID: u64 = 424_242;
pub const APP_SLUG: &str = "countersign-test";
pub const BOT_LOGIN: &str = "countersign-test[bot]";
pub const INSTALLATION_ID: u64 = 5151;
pub const HOOK_ID: u64 = 480_000_001;
pub const WEBHOOK_SECRET: &str = "fake-github-webhook-secret";
/// The test App's private key (PKCS#1 PEM, as GitHub hands them out). Test-only.
pub const APP_PRIVATE_KEY_PEM: &str = include_str!("../../tests/data/github/test-app-key.pem");
pub const APP_PUBLIC_KEY_PEM: &str = include_str!("../../tests/data/github/test-app-key.pub.pem");
pub const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "mallory"];

/// The installation's permissions unless [`Builder::permissions`] says otherwise.
pub fn default_permissions() -> Perms {
    [
        ("metadata", "read"),
        ("contents", "write"),
        ("pull_requests", "write"),
        ("issues", "write"),
        ("statuses", "write"),
        ("members", "read"),
        ("actions", "write"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The DER bytes inside a PEM block.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

pub(crate) struct Inner {
    state: Mutex<State>,
    hooks: mpsc::UnboundedSender<webhooks::Job>,
    /// Holds `{owner}/{repo}.git` bare repositories (`GIT_PROJECT_ROOT`).
    root: PathBuf,
}

type Shared = Arc<Inner>;

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    inner.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A repository to create: owner, name, base branch, files on it.
struct RepoSeed {
    owner: String,
    name: String,
    base: String,
    files: Vec<(String, String)>,
}

/// A workflow to declare: file name, display name, inputs (name, required).
struct WorkflowSeed {
    file: String,
    name: String,
    inputs: Vec<(String, bool)>,
}

/// What [`FakeGitHub`] starts with.
pub struct Builder {
    org: String,
    repos: Vec<RepoSeed>,
    users: Vec<String>,
    teams: Vec<(String, Vec<String>)>,
    workflows: Vec<WorkflowSeed>,
    permissions: Perms,
    secret: String,
    /// Installations of the same App on other accounts: (id, account, repository names).
    others: Vec<(u64, String, Vec<String>)>,
}

impl Builder {
    /// Adds repository `name` whose branch `base` holds `files` (path, content). The first
    /// repository added is the one the driver acts on.
    pub fn repo(mut self, name: &str, base: &str, files: &[(&str, &str)]) -> Self {
        let files = files.iter().map(|(p, c)| (p.to_string(), c.to_string()));
        self.repos.push(RepoSeed {
            owner: self.org.clone(),
            name: name.into(),
            base: base.into(),
            files: files.collect(),
        });
        self
    }

    /// A second installation of the same App, `id`, on organisation `account` with repository
    /// `account/{name}` for each of `repos` (a `README.md` on `main`). GitHub sends the
    /// deliveries of every installation to the App's one webhook URL.
    pub fn other_installation(mut self, id: u64, account: &str, repos: &[&str]) -> Self {
        for name in repos {
            self.repos.push(RepoSeed {
                owner: account.into(),
                name: (*name).into(),
                base: BASE.into(),
                files: vec![("README.md".into(), format!("# {name}\n"))],
            });
        }
        let repos = repos.iter().map(|n| format!("{account}/{n}")).collect();
        self.others.push((id, account.into(), repos));
        self
    }

    pub fn user(mut self, login: &str) -> Self {
        self.users.push(login.into());
        self
    }

    /// Team `org/slug` with `members` (replacing a default team of the same slug).
    pub fn team(mut self, slug: &str, members: &[&str]) -> Self {
        self.teams.retain(|(s, _)| s != slug);
        let members = members.iter().map(|m| m.to_string()).collect();
        self.teams.push((slug.into(), members));
        self
    }

    /// A `workflow_dispatch` workflow `.github/workflows/{file}` on the first repository with
    /// `inputs` (name, required).
    pub fn workflow(mut self, file: &str, name: &str, inputs: &[(&str, bool)]) -> Self {
        let inputs = inputs.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        self.workflows.push(WorkflowSeed {
            file: file.into(),
            name: name.into(),
            inputs,
        });
        self
    }

    /// The installation's permissions (tokens can only narrow them).
    pub fn permissions(mut self, perms: &[(&str, &str)]) -> Self {
        let perms = perms.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        self.permissions = perms.collect();
        self
    }

    pub fn webhook_secret(mut self, secret: &str) -> Self {
        self.secret = secret.into();
        self
    }

    pub async fn start(mut self) -> FakeGitHub {
        if !self.repos.iter().any(|r| r.owner == self.org) {
            self = self.repo(REPO, BASE, &[("README.md", "# gitops\n")]);
        }
        let first = self.repos.iter().find(|r| r.owner == self.org).unwrap();
        let primary = format!("{}/{}", first.owner, first.name);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = App {
            id: APP_ID,
            slug: APP_SLUG.into(),
            name: "countersign test".into(),
            public_key_der: pem_to_der(APP_PUBLIC_KEY_PEM),
            permissions: self.permissions.clone(),
            events: ["issue_comment", "pull_request", "pull_request_review"]
                .map(String::from)
                .to_vec(),
        };
        let mut state = State {
            base_url: url.clone(),
            users: BTreeMap::new(),
            teams: BTreeMap::new(),
            app,
            installations: Vec::new(),
            tokens: Vec::new(),
            repos: BTreeMap::new(),
            calls: Vec::new(),
            deliveries: Vec::new(),
            webhook_url: None,
            webhook_secret: self.secret.clone(),
            hook_id: HOOK_ID,
            clock_offset: 0,
            auto_finish_runs: None,
            dispatch_run_details: true,
            failures: Vec::new(),
            lose_next_webhooks: 0,
            next_id: 1_000_000,
            rate_used: BTreeMap::new(),
            rate_reset: 0,
            primary,
            driving: None,
            pulls_listed: 0,
        };
        state.rate_reset = state.now() + 3600;
        state.users.insert(
            self.org.clone(),
            User {
                login: self.org.clone(),
                id: 900_001,
                kind: UserKind::Organization,
            },
        );
        state.user(BOT_LOGIN);
        for u in &self.users {
            state.user(u);
        }
        for (slug, members) in &self.teams {
            let id = state.next_id();
            let members = members.iter().map(|m| {
                state.user(m);
                (m.clone(), "member".to_owned())
            });
            let team = Team {
                id,
                org: self.org.clone(),
                slug: slug.clone(),
                name: slug.clone(),
                members: members.collect(),
            };
            state.teams.insert((self.org.clone(), slug.clone()), team);
        }
        let now = state.now();
        for (_, account, _) in &self.others {
            let id = state.next_id();
            state.users.insert(
                account.clone(),
                User {
                    login: account.clone(),
                    id,
                    kind: UserKind::Organization,
                },
            );
        }
        for RepoSeed {
            owner,
            name,
            base,
            files,
        } in &self.repos
        {
            let path = root.join(owner).join(format!("{name}.git"));
            git::init_bare(&path, base);
            let files: Vec<_> = files
                .iter()
                .map(|(p, c)| (p.as_str(), Some(c.as_str())))
                .collect();
            let author = ("Platform Team", "platform@example.com");
            git::commit_files(&path, base, None, &files, "Initial commit", author);
            let id = state.next_id();
            let repo = Repo {
                id,
                owner: owner.clone(),
                name: name.clone(),
                default_branch: base.clone(),
                path,
                pulls: BTreeMap::new(),
                comments: Vec::new(),
                statuses: Vec::new(),
                labels: BTreeMap::new(),
                workflows: Vec::new(),
                runs: Vec::new(),
                next_number: 1,
                created_at: now - 86_400,
            };
            state.repos.insert(repo.full_name(), repo);
        }
        let first = state.primary.clone();
        for WorkflowSeed { file, name, inputs } in &self.workflows {
            let id = state.next_id();
            let wf = Workflow {
                id,
                name: name.clone(),
                file: file.clone(),
                inputs: inputs.iter().cloned().collect(),
            };
            state.repos.get_mut(&first).unwrap().workflows.push(wf);
        }
        let others: Vec<String> = self.others.iter().flat_map(|o| o.2.clone()).collect();
        state.installations.push(Installation {
            id: INSTALLATION_ID,
            account: self.org.clone(),
            repos: state
                .repos
                .keys()
                .filter(|r| !others.contains(r))
                .cloned()
                .collect(),
            permissions: self.permissions.clone(),
        });
        for (id, account, repos) in &self.others {
            state.installations.push(Installation {
                id: *id,
                account: account.clone(),
                repos: repos.clone(),
                permissions: self.permissions.clone(),
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            hooks: tx,
            root,
        });
        let worker = tokio::spawn(webhooks::worker(inner.clone(), rx));
        let app = routes::router(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub {
            inner,
            url,
            server,
            worker,
            _dir: dir,
        }
    }
}

/// The fake; stops serving and delivering when dropped.
pub struct FakeGitHub {
    inner: Shared,
    url: String,
    server: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
        self.worker.abort();
    }
}

impl FakeGitHub {
    pub fn builder() -> Builder {
        Builder {
            org: ORG.into(),
            repos: Vec::new(),
            users: USERS.map(String::from).to_vec(),
            teams: vec![(
                "data".into(),
                vec!["alice".into(), "bob".into(), "carol".into()],
            )],
            workflows: Vec::new(),
            permissions: default_permissions(),
            secret: WEBHOOK_SECRET.into(),
            others: Vec::new(),
        }
    }

    /// The defaults with [`REPO`]'s `main` seeded with `files`.
    pub async fn start(files: &[(&str, &str)]) -> Self {
        Self::builder().repo(REPO, BASE, files).start().await
    }

    /// The API base URL (`http://127.0.0.1:PORT`, routes at its root like `api.github.com`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The HTTPS-style clone URL of repository `name` (`{url}/{org}/{name}.git`).
    pub fn git_url(&self, name: &str) -> String {
        format!("{}/{ORG}/{name}.git", self.url)
    }

    /// The bare repository on disk behind `owner/name`.
    pub fn repo_path(&self, full_name: &str) -> PathBuf {
        lock(&self.inner).repos[full_name].path.clone()
    }

    /// Where webhooks go (e.g. countersign's `{url}/webhooks/github`).
    pub fn set_webhook_url(&self, url: &str) {
        lock(&self.inner).webhook_url = Some(url.to_owned());
    }

    /// A valid App JWT (RS256, `iss` = the App id as a string, `iat` 60 s back, 9 min life).
    pub fn app_jwt(&self) -> String {
        let now = lock(&self.inner).now();
        sign_jwt(&json!({"iat": now - 60, "exp": now + 540, "iss": APP_ID.to_string()}))
    }

    /// The current time on the fake's clock (unix seconds).
    pub fn now(&self) -> i64 {
        lock(&self.inner).now()
    }

    /// Creates an installation token directly (as `POST /app/installations/{id}/access_tokens`
    /// would); `repositories` are names (not full names), `None` = all.
    pub fn mint_token(
        &self,
        repositories: Option<&[&str]>,
        permissions: Option<&[(&str, &str)]>,
    ) -> String {
        let mut s = lock(&self.inner);
        let perms = match permissions {
            Some(p) => p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            None => s.installations[0].permissions.clone(),
        };
        let repos = repositories.map(|names| names.iter().map(|n| format!("{ORG}/{n}")).collect());
        let token = Token {
            value: auth::new_token_value(),
            installation_id: INSTALLATION_ID,
            expires_at: s.now() + 3600,
            repositories: repos,
            permissions: perms,
        };
        s.tokens.push(token.clone());
        token.value
    }

    /// The next `n` calls whose method is `method` (`"*"` for any) and whose path starts with
    /// `path_prefix` fail with `failure` (git smart HTTP paths included).
    pub fn fail_next(&self, method: &str, path_prefix: &str, n: usize, failure: Failure) {
        lock(&self.inner).failures.push(state::FailureRule {
            method: (method != "*").then(|| method.to_owned()),
            path_prefix: path_prefix.to_owned(),
            remaining: n,
            failure,
        });
    }

    /// Every call received, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner).calls.clone()
    }

    /// Calls with `method` (`"*"` for any) whose path starts with `path_prefix`.
    pub fn calls_to(&self, method: &str, path_prefix: &str) -> Vec<Call> {
        let calls = self.calls().into_iter();
        calls
            .filter(|c| {
                (method == "*" || c.method.eq_ignore_ascii_case(method))
                    && c.path.starts_with(path_prefix)
            })
            .collect()
    }

    /// Everything a person could read on this GitHub, as `(where, text)`; see
    /// [`State::visible_text`].
    pub fn visible_text(&self) -> Vec<(String, String)> {
        lock(&self.inner).visible_text()
    }

    /// Where `needle` appears in [`FakeGitHub::visible_text`] (empty: nowhere).
    pub fn find_visible(&self, needle: &str) -> Vec<String> {
        let all = self.visible_text().into_iter();
        all.filter(|(_, text)| text.contains(needle))
            .map(|(at, _)| at)
            .collect()
    }

    /// From now on the driver's steps act on repository `full_name` (`None`: the first one
    /// again). Deliveries about it carry its own `repository` and `installation`.
    pub fn drive(&self, full_name: Option<&str>) {
        let mut s = lock(&self.inner);
        if let Some(name) = full_name {
            assert!(s.repos.contains_key(name), "no repository {name}");
        }
        s.driving = full_name.map(str::to_owned);
    }

    /// How many pull requests `GET /repos/{owner}/{repo}/pulls` returned, over every call.
    pub fn pulls_listed(&self) -> u64 {
        lock(&self.inner).pulls_listed
    }

    /// Pull request `n` of `full_name`.
    pub fn pull_of(&self, full_name: &str, n: u64) -> Pull {
        lock(&self.inner).repos[full_name].pulls[&n].clone()
    }

    /// Pull request `n` of the first repository.
    pub fn pull(&self, n: u64) -> Pull {
        lock(&self.inner).primary().pulls[&n].clone()
    }

    pub fn pulls(&self) -> Vec<Pull> {
        lock(&self.inner)
            .primary()
            .pulls
            .values()
            .cloned()
            .collect()
    }

    /// Conversation comments on `n`, oldest first.
    pub fn comments(&self, n: u64) -> Vec<Comment> {
        let s = lock(&self.inner);
        s.primary()
            .comments
            .iter()
            .filter(|c| c.issue_number == n)
            .cloned()
            .collect()
    }

    /// Statuses set on `sha`, oldest first.
    pub fn statuses(&self, sha: &str) -> Vec<Status> {
        let s = lock(&self.inner);
        s.primary()
            .statuses
            .iter()
            .filter(|st| st.sha == sha)
            .cloned()
            .collect()
    }

    /// The sha `branch` points at in the first repository.
    pub fn branch_sha(&self, branch: &str) -> Option<String> {
        git::branch_sha(&lock(&self.inner).primary().path, branch)
    }

    /// The content of `path` at `rev` (branch or sha) in the first repository.
    pub fn file_at(&self, rev: &str, path: &str) -> Option<String> {
        let repo = lock(&self.inner).primary().path.clone();
        match git::content(&repo, rev, path)? {
            git::Content::File { content, .. } => Some(String::from_utf8_lossy(&content).into()),
            git::Content::Dir(_) => None,
        }
    }

    /// Workflow runs of the first repository, oldest first.
    pub fn runs(&self) -> Vec<Run> {
        lock(&self.inner).primary().runs.clone()
    }

    /// Completes run `id` with `conclusion` (`success`, `failure`, `cancelled`…).
    pub fn finish_run(&self, id: u64, conclusion: &str) {
        let mut s = lock(&self.inner);
        let now = s.now();
        for r in s.repos.values_mut() {
            if let Some(run) = r.runs.iter_mut().find(|x| x.id == id) {
                run.status = "completed".into();
                run.conclusion = Some(conclusion.to_owned());
                run.updated_at = now;
            }
        }
    }

    /// From now on runs move along as they are read: `in_progress` at the first read, then
    /// `completed` with `conclusion` at the next (`None` stops that).
    pub fn auto_finish_runs(&self, conclusion: Option<&str>) {
        lock(&self.inner).auto_finish_runs = conclusion.map(str::to_owned);
    }

    /// Whether a dispatch asking for `return_run_details` gets `200` with the run (the default,
    /// as on GitHub.com) or `204` without it (older GitHub Enterprise Server).
    pub fn dispatch_run_details(&self, on: bool) {
        lock(&self.inner).dispatch_run_details = on;
    }

    /// Moves the fake's clock forward (token and JWT expiry).
    pub fn advance_clock(&self, by: Duration) {
        lock(&self.inner).clock_offset += by.as_secs() as i64;
    }

    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    /// Polls `until` (see [`crate::wait::poll`]); false if it still does not hold after
    /// `timeout`.
    pub async fn wait_for(&self, until: impl Fn(&State) -> bool, timeout: Duration) -> bool {
        crate::wait::poll(timeout, async || until(&lock(&self.inner)))
            .await
            .is_some()
    }
}

/// Signs `claims` as an RS256 JWT with the test App's private key.
pub fn sign_jwt(claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&pem_to_der(APP_PRIVATE_KEY_PEM));
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

impl FakeGitHub {
    /// The `[github]` section for a countersign server using this fake, as an operator would
    /// write it (`extra`: more `key = value` lines, e.g. `reconcile_interval = "1s"`); writes
    /// the webhook secret's file into `dir`. The one place the tests' `[github]` is written.
    pub fn countersign_toml(&self, dir: &std::path::Path, extra: &str) -> String {
        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/github/test-app-key.pem"
        );
        let secret = dir.join("webhook-secret");
        std::fs::write(&secret, WEBHOOK_SECRET).unwrap();
        format!(
            "app_id = {APP_ID}\nprivate_key = {{ file = {key:?} }}\nrepository = \"{FULL_NAME}\"\n\
             webhook_secrets = [{{ file = {secret:?} }}]\napi_url = \"{}\"\nrequest_timeout = \"10s\"\n{extra}\n",
            self.url()
        )
    }

    /// [`FakeGitHub::countersign_toml`], parsed and resolved as the server does.
    pub fn countersign_config(
        &self,
        dir: &std::path::Path,
        extra: &str,
    ) -> countersign::forge::github::GitHubConfig {
        toml::from_str::<countersign::forge::github::GitHubFile>(&self.countersign_toml(dir, extra))
            .unwrap()
            .resolve(BASE)
            .unwrap()
    }
}
