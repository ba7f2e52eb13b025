//! The fake GitHub's state: plain data (users, teams, the App and its installations and tokens,
//! repositories with their pull requests, reviews, comments, statuses, labels, workflows and runs),
//! the record of every API call, the queued failures and the webhook deliveries. Everything sits
//! behind one mutex ([`super::Shared`]); the git data itself lives in real bare repositories on
//! disk (see `git.rs`).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A permission map as GitHub writes it: `{"contents": "write", "metadata": "read"}`.
pub type Perms = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    User,
    Bot,
    Organization,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::User => "User",
            UserKind::Bot => "Bot",
            UserKind::Organization => "Organization",
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub login: String,
    pub id: u64,
    pub kind: UserKind,
}

#[derive(Clone, Debug)]
pub struct Team {
    pub id: u64,
    pub org: String,
    pub slug: String,
    pub name: String,
    /// login → role (`member` or `maintainer`).
    pub members: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct App {
    pub id: u64,
    pub slug: String,
    pub name: String,
    /// PKCS#1 DER of the RSA public key that verifies the App's JWTs.
    pub public_key_der: Vec<u8>,
    pub permissions: Perms,
    pub events: Vec<String>,
}

impl App {
    pub fn bot_login(&self) -> String {
        format!("{}[bot]", self.slug)
    }
}

#[derive(Clone, Debug)]
pub struct Installation {
    pub id: u64,
    /// The organisation (or user) it is installed on.
    pub account: String,
    /// Full names (`owner/name`) of the repositories it can reach.
    pub repos: Vec<String>,
    pub permissions: Perms,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub value: String,
    pub installation_id: u64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Full names; `None` = every repository of the installation.
    pub repositories: Option<Vec<String>>,
    pub permissions: Perms,
}

impl Token {
    /// Whether the token reaches `full_name` (given its installation's repositories).
    pub fn reaches(&self, inst: &Installation, full_name: &str) -> bool {
        inst.repos.iter().any(|r| r == full_name)
            && self
                .repositories
                .as_ref()
                .is_none_or(|rs| rs.iter().any(|r| r == full_name))
    }

    /// Whether the token grants `level` (`read` or `write`) on `permission`.
    pub fn grants(&self, permission: &str, level: &str) -> bool {
        grants(&self.permissions, permission, level)
    }
}

/// Whether `perms` grants `level` on `permission` (`write` implies `read`; `admin` both).
pub fn grants(perms: &Perms, permission: &str, level: &str) -> bool {
    let rank = |l: &str| match l {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    };
    perms
        .get(permission)
        .is_some_and(|have| rank(have) >= rank(level))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullState {
    Open,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
}

impl ReviewState {
    /// As the REST API writes it (`APPROVED`).
    pub fn api(self) -> &'static str {
        match self {
            ReviewState::Approved => "APPROVED",
            ReviewState::ChangesRequested => "CHANGES_REQUESTED",
            ReviewState::Commented => "COMMENTED",
            ReviewState::Dismissed => "DISMISSED",
        }
    }

    /// As webhook payloads write it (`approved`).
    pub fn hook(self) -> &'static str {
        match self {
            ReviewState::Approved => "approved",
            ReviewState::ChangesRequested => "changes_requested",
            ReviewState::Commented => "commented",
            ReviewState::Dismissed => "dismissed",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Review {
    pub id: u64,
    pub user: String,
    pub state: ReviewState,
    pub commit_id: String,
    pub body: String,
    pub submitted_at: i64,
}

#[derive(Clone, Debug)]
pub struct Pull {
    pub number: u64,
    pub id: u64,
    pub user: String,
    pub title: String,
    pub body: Option<String>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub state: PullState,
    pub draft: bool,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
    pub merged_by: Option<String>,
    pub labels: Vec<String>,
    pub requested_reviewers: Vec<String>,
    /// Team slugs.
    pub requested_teams: Vec<String>,
    pub reviews: Vec<Review>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub merged_at: Option<i64>,
}

/// An issue comment (on a pull request: GitHub's "conversation" comments).
#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub issue_number: u64,
    pub user: String,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A commit status.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: u64,
    pub sha: String,
    pub context: String,
    /// `error`, `failure`, `pending` or `success`.
    pub state: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub creator: String,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct Label {
    pub id: u64,
    pub name: String,
    pub color: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub id: u64,
    pub name: String,
    /// The file name (`deploy.yml`), which the API also accepts as `workflow_id`.
    pub file: String,
    /// Declared `workflow_dispatch` inputs: name → required.
    pub inputs: BTreeMap<String, bool>,
}

impl Workflow {
    pub fn path(&self) -> String {
        format!(".github/workflows/{}", self.file)
    }
}

#[derive(Clone, Debug)]
pub struct Run {
    pub id: u64,
    pub workflow_id: u64,
    pub run_number: u64,
    pub head_branch: String,
    pub head_sha: String,
    pub event: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    pub conclusion: Option<String>,
    /// The dispatch inputs as sent.
    pub inputs: Value,
    pub actor: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// How many times it was read (runs advance when read, see `FakeGitHub::auto_finish_runs`).
    pub reads: u32,
}

#[derive(Clone, Debug)]
pub struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub default_branch: String,
    /// The bare repository on disk.
    pub path: PathBuf,
    pub pulls: BTreeMap<u64, Pull>,
    pub comments: Vec<Comment>,
    pub statuses: Vec<Status>,
    pub labels: BTreeMap<String, Label>,
    pub workflows: Vec<Workflow>,
    pub runs: Vec<Run>,
    /// Next issue / pull request number.
    pub next_number: u64,
    pub created_at: i64,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The open pull request whose head is `branch`, if any.
    pub fn open_pull_for(&self, branch: &str) -> Option<u64> {
        let open = |p: &&Pull| p.state == PullState::Open && p.head_ref == branch;
        self.pulls.values().find(open).map(|p| p.number)
    }
}

/// Who made an API call, as the fake resolved its credentials.
#[derive(Clone, Debug, PartialEq)]
pub enum CallAuth {
    /// No `Authorization` header.
    None,
    /// A valid App JWT.
    App,
    /// A known installation token (valid or not at the time), with what it granted.
    Installation {
        token: String,
        permissions: Perms,
        repositories: Option<Vec<String>>,
    },
    /// Credentials the fake does not accept (unknown token, bad JWT…).
    Bad(String),
}

/// One recorded call (REST or git smart HTTP), injected failures included.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub auth: CallAuth,
    pub status: u16,
}

impl Call {
    pub fn token(&self) -> Option<&str> {
        match &self.auth {
            CallAuth::Installation { token, .. } => Some(token),
            _ => None,
        }
    }
}

/// A failure injected into the next matching call(s), see `FakeGitHub::fail_next`.
#[derive(Clone, Debug)]
pub enum Failure {
    /// That status (500, 502, 503…) with GitHub's JSON error body.
    ServerError(u16),
    /// 403 "You have exceeded a secondary rate limit…" with `retry-after: <secs>`.
    SecondaryRateLimit { retry_after_secs: u64 },
    /// Primary rate limit exhausted: `status` (403 or 429), `x-ratelimit-remaining: 0`,
    /// `x-ratelimit-reset` = now + `reset_in_secs`.
    PrimaryRateLimit { status: u16, reset_in_secs: u64 },
    /// Sleeps, then answers normally.
    Slow(Duration),
}

#[derive(Clone, Debug)]
pub(super) struct FailureRule {
    /// `None` matches any method.
    pub method: Option<String>,
    pub path_prefix: String,
    pub remaining: usize,
    pub failure: Failure,
}

/// One webhook delivery (or a delivery GitHub meant to make but "lost").
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `X-GitHub-Delivery`, a UUID.
    pub id: String,
    pub event: String,
    pub action: Option<String>,
    /// The raw JSON body, byte for byte as sent (and as signed).
    pub body: String,
    /// The receiver's HTTP status; `None` if not delivered (lost, no URL, connection error).
    pub status: Option<u16>,
    pub lost: bool,
    pub redelivery: bool,
    pub error: Option<String>,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Everything the fake knows. Read it with `FakeGitHub::with_state`.
#[derive(Debug)]
pub struct State {
    /// The fake's base URL (`http://127.0.0.1:PORT`), used in every `url` field.
    pub base_url: String,
    pub users: BTreeMap<String, User>,
    /// Keyed by `(org, slug)`.
    pub teams: BTreeMap<(String, String), Team>,
    pub app: App,
    pub installations: Vec<Installation>,
    pub tokens: Vec<Token>,
    /// Keyed by full name `owner/name`.
    pub repos: BTreeMap<String, Repo>,
    pub calls: Vec<Call>,
    pub deliveries: Vec<Delivery>,
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    pub hook_id: u64,
    /// Seconds added to the real clock (token and JWT expiry), see `FakeGitHub::advance_clock`.
    pub clock_offset: i64,
    /// When set, a workflow run turns `in_progress` at its first read and `completed` with this
    /// conclusion at its second.
    pub auto_finish_runs: Option<String>,
    /// A dispatch asking for `return_run_details` gets `200` with the run (GitHub.com since
    /// 2026); when false, `204` without it (GitHub Enterprise Server before the feature).
    pub dispatch_run_details: bool,
    pub(super) failures: Vec<FailureRule>,
    pub(super) lose_next_webhooks: usize,
    pub(super) next_id: u64,
    /// Requests counted per credential for the `x-ratelimit-*` headers.
    pub(super) rate_used: BTreeMap<String, u64>,
    pub(super) rate_reset: i64,
    /// The first repository the builder added (countersign's).
    pub(super) primary: String,
    /// The repository the driver acts on (`None`: the primary), see `FakeGitHub::drive`.
    pub(super) driving: Option<String>,
    /// Pull requests returned by `GET /repos/{owner}/{repo}/pulls`, over every call.
    pub pulls_listed: u64,
}

impl State {
    pub fn now(&self) -> i64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        real.as_secs() as i64 + self.clock_offset
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn repo(&self, full_name: &str) -> Option<&Repo> {
        self.repos.get(full_name)
    }

    pub fn repo_mut(&mut self, full_name: &str) -> Option<&mut Repo> {
        self.repos.get_mut(full_name)
    }

    /// The first repository the builder added (countersign's; the accessors read it).
    pub fn primary(&self) -> &Repo {
        &self.repos[&self.primary]
    }

    /// The repository the driver acts on: the primary unless `FakeGitHub::drive` chose another.
    pub fn driven(&self) -> &Repo {
        let name = self.driving.as_ref().unwrap_or(&self.primary);
        &self.repos[name]
    }

    /// The user `login`, created as a plain user on first sight (GitHub knows everyone).
    pub fn user(&mut self, login: &str) -> User {
        if let Some(u) = self.users.get(login) {
            return u.clone();
        }
        let id = 10_000 + self.next_id();
        let kind = if login.ends_with("[bot]") {
            UserKind::Bot
        } else {
            UserKind::User
        };
        let u = User {
            login: login.to_owned(),
            id,
            kind,
        };
        self.users.insert(login.to_owned(), u.clone());
        u
    }

    pub fn user_ref(&self, login: &str) -> User {
        self.users.get(login).cloned().unwrap_or(User {
            login: login.to_owned(),
            id: 0,
            kind: UserKind::User,
        })
    }

    pub fn token(&self, value: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.value == value)
    }

    pub fn installation(&self, id: u64) -> Option<&Installation> {
        self.installations.iter().find(|i| i.id == id)
    }

    /// Every `(where, text)` a person could read on this GitHub: titles, bodies, comments,
    /// review bodies, statuses, labels, workflow inputs, branch names, and every git object of
    /// every repository (blob contents, commit messages and authors, tree entry names).
    pub fn visible_text(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in self.repos.values() {
            let full = r.full_name();
            for p in r.pulls.values() {
                let at = format!("{full}#{}", p.number);
                out.push((format!("{at} title"), p.title.clone()));
                out.push((format!("{at} body"), p.body.clone().unwrap_or_default()));
                out.push((format!("{at} head ref"), p.head_ref.clone()));
                out.extend(p.labels.iter().map(|l| (format!("{at} label"), l.clone())));
                for rv in &p.reviews {
                    out.push((format!("{at} review {}", rv.id), rv.body.clone()));
                }
            }
            for c in &r.comments {
                let at = format!("{full}#{} comment {}", c.issue_number, c.id);
                out.push((at, c.body.clone()));
            }
            for s in &r.statuses {
                let at = format!("{full} status {} on {}", s.context, s.sha);
                let text = [
                    s.context.as_str(),
                    s.description.as_deref().unwrap_or(""),
                    s.target_url.as_deref().unwrap_or(""),
                ];
                out.push((at, text.join("\n")));
            }
            for l in r.labels.values() {
                let text = format!("{}\n{}", l.name, l.description.as_deref().unwrap_or(""));
                out.push((format!("{full} label"), text));
            }
            for run in &r.runs {
                out.push((
                    format!("{full} run {} inputs", run.id),
                    run.inputs.to_string(),
                ));
            }
            out.extend(super::git::visible_objects(&r.path, &full));
        }
        out
    }
}

/// `2019-05-15T15:20:33Z` for unix seconds.
pub fn iso(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
