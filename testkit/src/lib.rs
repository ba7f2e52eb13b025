//! countersign's test support (dev-only, never published): the `Harness` (a real countersign
//! server on a loopback port with a temporary data directory, registered agents and reviewers,
//! and helpers to send raw, possibly bad, calls), the real binary in a child process
//! ([`Binary`]), and the fakes and tools in the modules below. Used by the integration binary
//! (`tests/integration/`) and the benches, so all of it compiles once.

use countersign::api::{RequestStatus, State};
use countersign::app::Server;
use countersign::cli::client::{AgentClient, ReviewerClient};
use countersign::config::{Agent, Reviewer, ServerConfig};
use countersign::request::AgentId;
use countersign::request::signature::{self, AgentKey};
pub use countersign::support::clock::ManualClock;
use countersign::support::clock::{Clock, SystemClock};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const KEY_A_OLD: &str = "agent-a-old-key-0123456789abcdef0123456789";
pub const KEY_A_NEW: &str = "agent-a-new-key-0123456789abcdef0123456789";
pub const KEY_B: &str = "agent-b-key-0123456789abcdef0123456789abcdef";
pub const ALICE: &str = "csr_alice_token_0123456789abcdef";
pub const BOB: &str = "csr_bob_token_0123456789abcdef";
pub const CAROL: &str = "csr_carol_token_0123456789abcdef";
pub const DAVE: &str = "csr_dave_token_0123456789abcdef";

/// The policy every harness repository starts with (see tests/policy.rs for what it means).
pub const TEST_CODEOWNERS: &str = "\
# test policy
[Exports] @acme/data
/actions/db.export/**

[Access][2]
/actions/iam.grant/** @alice @bob @carol

^[Audit]
/actions/** @dave

[Staging]
/actions/deploy/staging/** @bob

[Ops]
/actions/nobody/**
/actions/mail/** dave@example.com

[Policy][2]
/policies/ @bob @carol
";
pub const TEST_POLICY_TOML: &str = "\
[defaults]
risk = \"medium\"

[sections.Exports]
risk = \"high\"

[sections.Staging]
risk = \"low\"
auto_approve = true
";
pub const TEST_AGENTS_TOML: &str = "\
[agents.agent-a]
owners = []
allowed = [\"actions/**\", \"policies/**\"]

[agents.agent-b]
owners = [\"@erin\"]
allowed = [\"actions/db.export/**\"]
";
pub const TEST_ACTIONS_TOML: &str = "\
[actions.\"db.export\"]
executor = { type = \"command\", argv = [\"/bin/true\"] }
audience = \"exports\"
idempotent = true

[actions.\"iam.grant\"]
executor = { type = \"command\", argv = [\"/bin/true\"] }
audience = \"iam\"

[actions.deploy]
executor = { type = \"command\", argv = [\"/bin/true\"] }
audience = \"deploy\"

[actions.mail]
executor = { type = \"http\", url = \"http://127.0.0.1:9/mail\" }
audience = \"mail\"
";
pub const TEST_TEAMS_TOML: &str = "[teams]\n\"acme/data\" = [\"@alice\", \"@bob\", \"@carol\"]\n";

/// Creates the embedded repository in `data_dir` with the test policy on `main`.
pub fn seed_repo(data_dir: &Path) -> countersign::forge::LocalForge {
    let forge =
        countersign::forge::LocalForge::open(&data_dir.join("repo.git"), "main", true, "", false)
            .unwrap();
    forge
        .commit_files(
            "main",
            &[
                ("policies/CODEOWNERS", TEST_CODEOWNERS),
                ("policies/policy.toml", TEST_POLICY_TOML),
                ("policies/agents.toml", TEST_AGENTS_TOML),
                ("policies/teams.toml", TEST_TEAMS_TOML),
                ("policies/actions.toml", TEST_ACTIONS_TOML),
            ],
            "test policy",
        )
        .unwrap();
    forge
}

pub fn key(s: &str) -> AgentKey {
    AgentKey::new(s.as_bytes().to_vec()).unwrap()
}

/// Configuration for agents `agent-a` (keys old+new, owned by alice) and `agent-b`, and
/// reviewers alice, bob and carol.
pub fn config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::embedded(dir.to_path_buf());
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.agents = vec![
        Agent {
            id: AgentId::parse("agent-a").unwrap(),
            owners: vec!["@alice".into()],
            keys: vec![key(KEY_A_OLD), key(KEY_A_NEW)],
        },
        Agent {
            id: AgentId::parse("agent-b").unwrap(),
            owners: vec![],
            keys: vec![key(KEY_B)],
        },
    ];
    c.reviewers = [
        ("alice", ALICE),
        ("bob", BOB),
        ("carol", CAROL),
        ("dave", DAVE),
    ]
    .into_iter()
    .map(|(name, token)| Reviewer {
        name: name.into(),
        token_sha256: Sha256::digest(token.as_bytes()).into(),
        email: (name == "dave").then(|| "dave@example.com".to_owned()),
    })
    .collect();
    c
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub url: String,
    pub http: reqwest::Client,
    /// The server has notification destinations (for [`Harness::settle`]).
    pub notifying: bool,
    /// The PostgreSQL database of this harness (see [`backend`]); `None`: SQLite.
    pub database: Option<Arc<HarnessDatabase>>,
}

/// A harness's PostgreSQL database, dropped with the last harness using it.
pub struct HarnessDatabase(Option<postgres::TestDatabase>);

impl HarnessDatabase {
    pub fn url(&self) -> &str {
        &self.0.as_ref().expect("until dropped").url
    }
}

impl Drop for HarnessDatabase {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            // Dropped inside a test's runtime: the database goes on a thread of its own.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(db.drop())
            })
            .join();
        }
    }
}

/// Points `c` at `database` when there is one.
fn on_database(c: &mut ServerConfig, database: &Option<Arc<HarnessDatabase>>) {
    if let Some(db) = database {
        c.database_url =
            Some(countersign::config::DatabaseUrl::parse(db.url().to_owned()).unwrap());
    }
}

/// Waits until a server on PostgreSQL leads (it has recorded its `leader_elected` ledger
/// entry), so a scenario starts from a server that does all the work.
async fn leading(server: &Server) {
    wait_until("the server to lead", Duration::from_secs(30), async || {
        server.leads()
    })
    .await;
}

/// A fresh database when this run is on PostgreSQL.
async fn run_database() -> Option<Arc<HarnessDatabase>> {
    if !backend::postgres() {
        return None;
    }
    let db = postgres::TestDatabase::create("harness")
        .await
        .expect("COUNTERSIGN_TEST_BACKEND=postgres needs a PostgreSQL (COUNTERSIGN_TEST_POSTGRES)");
    Some(Arc::new(HarnessDatabase(Some(db))))
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_in(&std::env::temp_dir(), tweak).await
    }

    /// Like [`Harness::start_with`], with the request lifecycle on `clock`: a test moves time
    /// (expiry, retention, retries) with `clock.advance(..)` instead of waiting for it.
    pub async fn start_with_clock(
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        Self::start_on(&std::env::temp_dir(), clock, tweak).await
    }

    /// Like [`Harness::start_with`], with the data directory created inside `parent` (a small
    /// filesystem, for storage faults).
    pub async fn start_in(parent: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_on(parent, Arc::new(SystemClock), tweak).await
    }

    async fn start_on(
        parent: &Path,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir_in(parent).unwrap();
        seed_repo(dir.path());
        let database = run_database().await;
        let mut c = config(dir.path());
        on_database(&mut c, &database);
        tweak(&mut c);
        let server = Server::start_with_clock(&c, clock)
            .await
            .expect("server starts");
        if database.is_some() {
            leading(&server).await;
        }
        let url = server.url();
        Self {
            dir,
            server,
            url,
            http: reqwest::Client::new(),
            notifying: !c.notify.targets.is_empty(),
            database,
        }
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart_with(self, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let Harness {
            dir,
            server,
            http,
            database,
            ..
        } = self;
        server.stop().await.unwrap();
        let mut c = config(dir.path());
        on_database(&mut c, &database);
        tweak(&mut c);
        let server = Server::start(&c).await.expect("server restarts");
        if database.is_some() {
            leading(&server).await;
        }
        let url = server.url();
        Self {
            dir,
            server,
            url,
            http,
            notifying: !c.notify.targets.is_empty(),
            database,
        }
    }

    /// Stops the server gracefully, keeping its data directory (to change what is on disk).
    pub async fn stop(self) -> (tempfile::TempDir, reqwest::Client) {
        assert!(
            self.database.is_none(),
            "Harness::stop and resume change a SQLite data directory: mark the test sqlite_only!"
        );
        self.server.stop().await.unwrap();
        (self.dir, self.http)
    }

    /// Starts a server again on a data directory left by [`Harness::stop`].
    pub async fn resume(dir: tempfile::TempDir, http: reqwest::Client) -> Self {
        let server = Server::start(&config(dir.path()))
            .await
            .expect("server restarts");
        Self {
            url: server.url(),
            dir,
            server,
            http,
            notifying: false,
            database: None,
        }
    }

    /// The Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn agent_a(&self) -> AgentClient {
        AgentClient::new(&self.url, "agent-a", key(KEY_A_NEW))
    }

    pub fn agent_b(&self) -> AgentClient {
        AgentClient::new(&self.url, "agent-b", key(KEY_B))
    }

    pub fn reviewer(&self, token: &str) -> ReviewerClient {
        ReviewerClient::new(&self.url, token)
    }

    pub fn repo_path(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    /// Sends a raw call with explicit headers.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .body(body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Row counts of every table (the ledger outbox included) plus the number of git refs
    /// other than the ledger branch (which exists from the start; its entries are the
    /// `ledger` rows).
    pub async fn stored(&self) -> (Vec<(&'static str, i64)>, usize) {
        let store = self.server.engine.store();
        let mut rows = store.table_counts().await.unwrap();
        // Entries about the server itself (`leader_elected` on PostgreSQL) are no request's.
        let own = store.ledger_of("").await.unwrap().len() as i64;
        for (table, n) in &mut rows {
            if *table == "ledger" {
                *n -= own;
            }
        }
        let refs = count_refs(&self.repo_path());
        let repo = git2::Repository::open(self.repo_path()).unwrap();
        let ledger = repo.find_reference("refs/heads/countersign/ledger").is_ok();
        (rows, refs - usize::from(ledger))
    }

    /// Waits until the server is idle: every review open, every approved request executed, no
    /// notification, callback or webhook left to handle, every ledger entry on the ledger branch
    /// (see [`settle`]); fails after 30 s saying what is left.
    pub async fn settle(&self) {
        let db = match &self.database {
            Some(db) => settle::Db::Postgres(db.url().to_owned()),
            None => settle::Db::Sqlite(config(self.dir.path()).database_path()),
        };
        let repo = self.repo_path();
        settle::settle(&db, &repo, self.notifying, Duration::from_secs(30)).await;
    }

    /// Waits until the request reaches `state` (as its agent sees it).
    pub async fn wait_state(&self, agent: &AgentClient, id: &str, state: State) -> RequestStatus {
        agent
            .wait_for(id, Duration::from_secs(20), |s| s.state == state)
            .await
            .unwrap()
    }

    /// Submits a valid action request as agent-a and returns its id.
    pub async fn submit_ok(&self) -> String {
        let answer = self
            .agent_a()
            .submit(&action_body(json!({"limit": 5})), None)
            .await
            .unwrap();
        answer.id.as_str().to_owned()
    }

    /// Submits and waits for the review to be open.
    pub async fn pending(&self) -> String {
        self.pending_with(&action_body(json!({"limit": 5}))).await.0
    }

    /// Submits `body` as agent-a and waits until its review is open: its id and status.
    pub async fn pending_with(&self, body: &[u8]) -> (String, RequestStatus) {
        let answer = self.agent_a().submit(body, None).await.unwrap();
        let id = answer.id.as_str().to_owned();
        let status = self
            .wait_state(&self.agent_a(), &id, State::PendingReview)
            .await;
        (id, status)
    }
}

pub fn count_refs(repo: &Path) -> usize {
    let repo = git2::Repository::open(repo).unwrap();
    repo.references().unwrap().count()
}

pub fn action_body(payload: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "action",
        "action": "db.export",
        "resource": "prod/customers",
        "environment": "prod",
        "justification": "weekly report",
        "payload": payload,
    }))
    .unwrap()
}

/// Headers signing `body` for `path` as `agent` with `key_text` at `ts`.
pub fn signed_headers(
    agent: &str,
    key_text: &str,
    ts: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("x-countersign-agent", agent.into()),
        ("x-countersign-timestamp", ts.to_string()),
        (
            "x-countersign-signature",
            signature::sign(&key(key_text), ts, method, path, body),
        ),
    ]
}

pub fn now() -> i64 {
    countersign::time::now_secs()
}

/// The real `countersign serve` binary running in a child process; killed (SIGKILL) on drop.
pub struct Binary {
    pub child: std::process::Child,
    pub url: String,
    /// The rest of its standard output, line by line.
    pub stdout: std::sync::mpsc::Receiver<String>,
}

impl Binary {
    /// Starts `countersign <args>` (which must include `serve` and listen on 127.0.0.1:0) in
    /// `cwd` and waits for the line announcing its address.
    pub fn spawn(args: &[&str], cwd: &Path) -> Self {
        Self::spawn_logging(args, cwd, std::process::Stdio::null())
    }

    /// Like [`Binary::spawn`], with the process's log output (stderr) sent to `stderr`.
    pub fn spawn_logging(args: &[&str], cwd: &Path, stderr: std::process::Stdio) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(countersign_exe())
            .args(args)
            .current_dir(cwd)
            .env_remove("COUNTERSIGN_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first.rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{first}");
        let (tx, stdout) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, url, stdout }
    }

    /// Kills the process the hard way (`kill -9`) and waits for it.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Every entry on the ledger branch, in file order (parsed JSON lines).
pub fn ledger_entries(repo: &Path) -> Vec<Value> {
    let repo = git2::Repository::open(repo).unwrap();
    let Ok(branch) = repo.find_reference("refs/heads/countersign/ledger") else {
        return vec![];
    };
    let tree = branch.peel_to_tree().unwrap();
    let mut files = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        if dir.starts_with("ledger/") && e.kind() == Some(git2::ObjectType::Blob) {
            files.push((format!("{dir}{}", e.name().unwrap()), e.id()));
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    files.sort();
    let mut out = Vec::new();
    for (_, id) in files {
        let blob = repo.find_blob(id).unwrap();
        for line in std::str::from_utf8(blob.content()).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

impl Harness {
    /// Waits until the ledger branch holds every entry the database has; returns them.
    pub async fn ledger_synced(&self) -> Vec<Value> {
        let store = self.server.engine.store();
        wait_until(
            "the ledger branch to catch up with the database",
            Duration::from_secs(10),
            async || {
                let last = store.ledger_last_seq().await.unwrap();
                let entries = ledger_entries(&self.repo_path());
                (entries.len() as i64 == last && last > 0).then_some(entries)
            },
        )
        .await
    }
}

/// Waits until the server (in this process or a child) using the data directory `data`, on
/// the embedded forge and without notification destinations, is idle: see [`settle`].
pub async fn settle_data_dir(data: &Path) {
    let (db, repo) = (data.join("countersign.db"), data.join("repo.git"));
    settle::settle(
        &settle::Db::Sqlite(db),
        &repo,
        false,
        Duration::from_secs(30),
    )
    .await;
}

/// A `countersign.toml` for the real binary: data in `<dir>/data` (seeded with the test
/// policy), agent-a with a key file, reviewer bob.
pub fn write_server_config(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("agent-a.key"), KEY_A_NEW).unwrap();
    seed_repo(&dir.join("data"));
    let bob_hash = countersign::cli::keys::token_sha256(BOB);
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nsweep_interval = \"100ms\"\n\n\
         [[agents]]\nid = \"agent-a\"\nowners = [\"alice\"]\nkeys = [{{ file = {:?} }}]\n\n\
         [[reviewers]]\nname = \"bob\"\ntoken_sha256 = \"{bob_hash}\"\n",
        dir.join("data").display().to_string(),
        dir.join("agent-a.key").display().to_string(),
    );
    let path = dir.join("countersign.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `countersign serve` with that configuration.
pub fn spawn_server(config: &Path) -> Binary {
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--log-level",
        "warn",
        "serve",
    ];
    Binary::spawn(&args, config.parent().unwrap())
}

/// Sends `n` distinct submissions at once as agent-a and kills the server (`kill -9`) as soon
/// as `min_accepted` of them have been acknowledged; returns the ids of every acknowledged one.
pub async fn burst_then_kill_9(server: &mut Binary, n: u32, min_accepted: usize) -> Vec<String> {
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (agent, tx) = (agent.clone(), tx.clone());
        tasks.spawn(async move {
            if let Ok(a) = agent.submit(&action_body(json!({ "n": i })), None).await {
                let _ = tx.send(a.id.as_str().to_owned());
            }
        });
    }
    drop(tx);
    let mut accepted = Vec::new();
    while accepted.len() < min_accepted {
        accepted.push(rx.recv().await.expect("some requests are accepted"));
    }
    server.kill_9();
    while tasks.join_next().await.is_some() {}
    while let Ok(id) = rx.try_recv() {
        accepted.push(id);
    }
    accepted
}

pub mod backend;
pub mod child;
pub mod corpus;
pub mod fake_chat;
pub mod fake_github;
pub mod jwt_check;
pub mod logs;
pub mod postgres;
pub mod refusal;
pub mod settle;
pub mod setup;
pub mod tmpfs;
pub mod wait;

pub use refusal::{Refused, error_code, error_detail};
pub use setup::{GitHub, Setup};
pub use wait::wait_until;

/// The `countersign` binary cargo built for the running test or bench: next to its `deps/`
/// directory (`target/<profile>/deps/<test>-<hash>` runs, `target/<profile>/countersign` is
/// the binary). Cargo builds a package's binaries before its integration tests and benches.
pub fn countersign_exe() -> PathBuf {
    let me = std::env::current_exe().expect("the test binary's path");
    let profile_dir = me
        .parent()
        .and_then(Path::parent)
        .expect("the test binary runs from target/<profile>/deps");
    let exe = profile_dir.join("countersign");
    assert!(
        exe.is_file(),
        "no countersign binary at {} (built by cargo test/bench)",
        exe.display()
    );
    exe
}
