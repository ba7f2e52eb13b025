//! The audit ledger published to GitHub (`[github]`): the ledger branch of the local clone is
//! pushed to the fake GitHub's repository after every commit and at start-up, fast-forward
//! only. Every entry arrives and verifies there; a 502 is recovered without losing or
//! duplicating entries, a rate limit is waited out as asked; a foreign commit on GitHub's branch is never overwritten nor built upon
//! (readiness says so, local commits go on); a clone lost with GitHub's branch intact continues
//! it; and a `kill -9` between a commit and its push is caught up after the restart.

use countersign::api::{PushReadiness, Readiness, State};
use countersign::app::Server;
use countersign::cli::client::AgentClient;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::fake_github::{FULL_NAME, Failure, FakeGitHub, REPO};
use testkit::{
    TEST_ACTIONS_TOML, TEST_AGENTS_TOML, TEST_CODEOWNERS, TEST_POLICY_TOML, TEST_TEAMS_TOML,
    wait_until,
};

const LEDGER: &str = "countersign/ledger";
const LEDGER_REF: &str = "refs/heads/countersign/ledger";
const RECEIVE_PACK: &str = "/acme/gitops.git/git-receive-pack";

fn seed_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("policies/CODEOWNERS", TEST_CODEOWNERS),
        ("policies/policy.toml", TEST_POLICY_TOML),
        ("policies/agents.toml", TEST_AGENTS_TOML),
        ("policies/teams.toml", TEST_TEAMS_TOML),
        ("policies/actions.toml", TEST_ACTIONS_TOML),
    ]
}

async fn start(fake: &FakeGitHub, dir: &Path) -> Server {
    let mut config = testkit::config(dir);
    config.github = Some(fake.countersign_config(dir, ""));
    Server::start(&config).await.expect("server starts")
}

fn clone_path(dir: &Path) -> PathBuf {
    dir.join("github").join("acme").join(format!("{REPO}.git"))
}

fn agent(url: &str) -> AgentClient {
    AgentClient::new(url, "agent-a", testkit::key(testkit::KEY_A_NEW))
}

async fn submit(url: &str, n: u32) -> String {
    let answer = agent(url)
        .submit(&testkit::action_body(json!({ "n": n })), None)
        .await
        .unwrap();
    answer.id.as_str().to_owned()
}

/// `GET /readyz` of the server at `url`: 200 or 503, with the same document.
async fn readiness(url: &str) -> (u16, Readiness) {
    let r = reqwest::get(format!("{url}/readyz")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The ledger's push status in a readiness answer (present: these servers have a remote).
fn push_of(ready: &Readiness) -> &PushReadiness {
    ready.ledger.push.as_ref().expect("a push status")
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A sample's value in Prometheus text (`name{labels}` exactly as rendered), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn tip(repo: &Path) -> Option<String> {
    let repo = git2::Repository::open_bare(repo).unwrap();
    let r = repo.find_reference(LEDGER_REF).ok()?;
    Some(r.target().unwrap().to_string())
}

/// The `seq`s of the entries on the branch; asserts they run 1, 2, 3, … without gaps.
fn seqs(entries: &[Value]) -> Vec<i64> {
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    seqs
}

/// Waits until the requests' reviews are open (their entries are all written).
async fn settled(url: &str, ids: &[String]) {
    for id in ids {
        agent(url)
            .wait_for(id, Duration::from_secs(30), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
    }
}

/// Waits until GitHub's ledger branch is the local one and holds every entry of the database,
/// and the push status says so.
async fn published(server: &Server, fake_repo: &Path, local: &Path) -> Vec<Value> {
    wait_until(
        "the ledger is on GitHub",
        Duration::from_secs(30),
        async || {
            let last = server.engine.store().ledger_last_seq().await.unwrap();
            let (_, ready) = readiness(&server.url()).await;
            let push = push_of(&ready);
            last > 0
                && tip(fake_repo).is_some()
                && tip(fake_repo) == tip(local)
                && testkit::ledger_entries(fake_repo).len() as i64 == last
                && push.ok
                && push.pending_commits == Some(0)
                && push.lag_entries == Some(0)
        },
    )
    .await;
    testkit::ledger_entries(fake_repo)
}

fn verify(repo: &Path) -> countersign::ledger::verify::Report {
    countersign::ledger::verify::verify(repo, LEDGER, None)
        .unwrap()
        .unwrap_or_else(|broken| panic!("the published ledger is broken: {broken}"))
}

#[tokio::test]
async fn every_entry_is_published_and_verifies_on_github() {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let url = server.url();
    let fake_repo = fake.repo_path(FULL_NAME);
    let local = clone_path(dir.path());
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(submit(&url, n).await);
    }
    settled(&url, &ids).await;
    let entries = published(&server, &fake_repo, &local).await;
    assert!(entries.len() >= 9, "{entries:?}");
    seqs(&entries);
    let report = verify(&fake_repo);
    assert_eq!(report.entries, entries.len() as u64);

    // The command auditors run, on GitHub's copy.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["ledger", "verify", "--repo"])
        .arg(&fake_repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The push used a token narrowed to the repository and `contents: write`.
    let tokens = fake.with_state(|s| s.tokens.clone());
    assert!(
        tokens.iter().any(|t| {
            t.repositories.as_deref() == Some(&[FULL_NAME.to_owned()][..])
                && t.permissions.get("contents").map(String::as_str) == Some("write")
                && t.permissions
                    .keys()
                    .all(|k| k == "contents" || k == "metadata")
        }),
        "{tokens:?}"
    );

    let (status, ready) = readiness(&url).await;
    assert_eq!(status, 200, "{ready:?}");
    let push = push_of(&ready);
    assert!(push.ok, "{push:?}");
    assert_eq!(push.remote, "acme/gitops on GitHub");
    assert_eq!(push.pending_commits, Some(0), "{push:?}");
    assert_eq!(push.lag_entries, Some(0), "{push:?}");
    assert_eq!(push.pushed_seq, Some(entries.len() as i64), "{push:?}");

    // At most one push per commit (plus the one at start-up), none while nothing changes.
    let text = metrics(&url).await;
    let ok = sample(&text, "countersign_ledger_pushes_total{outcome=\"ok\"}");
    let up_to_date = sample(
        &text,
        "countersign_ledger_pushes_total{outcome=\"up_to_date\"}",
    );
    let commits = sample(&text, "countersign_ledger_commits_total");
    assert!(ok >= 1.0 && ok + up_to_date <= commits + 1.0, "{text}");
    assert_eq!(
        sample(&text, "countersign_ledger_push_pending_commits"),
        0.0,
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_push_is_retried_without_losing_or_duplicating_entries() {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    // The first pushes (the ledger's, at start-up) answer 502.
    fake.fail_next("POST", RECEIVE_PACK, 3, Failure::ServerError(502));
    let server = start(&fake, dir.path()).await;
    let url = server.url();
    let fake_repo = fake.repo_path(FULL_NAME);
    let local = clone_path(dir.path());
    wait_until(
        "the ledger branch is on GitHub",
        Duration::from_secs(30),
        async || tip(&fake_repo).is_some(),
    )
    .await;
    let text = metrics(&url).await;
    assert!(
        sample(&text, "countersign_ledger_pushes_total{outcome=\"error\"}") >= 3.0,
        "{text}"
    );

    // More 502s while requests come in: each push is retried until it lands.
    fake.fail_next("POST", RECEIVE_PACK, 4, Failure::ServerError(502));
    fake.fail_next(
        "GET",
        "/acme/gitops.git/info/refs",
        2,
        Failure::ServerError(503),
    );
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(submit(&url, n).await);
    }
    settled(&url, &ids).await;
    let entries = published(&server, &fake_repo, &local).await;
    seqs(&entries);
    assert_eq!(testkit::ledger_entries(&local), entries);
    verify(&fake_repo);
    let (status, ready) = readiness(&url).await;
    assert_eq!(status, 200, "{ready:?}");
    assert!(push_of(&ready).error.is_none(), "{ready:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rate_limited_push_waits_as_github_asks() {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let fake_repo = fake.repo_path(FULL_NAME);
    fake.fail_next(
        "POST",
        RECEIVE_PACK,
        1,
        Failure::SecondaryRateLimit {
            retry_after_secs: 1,
        },
    );
    let started = Instant::now();
    let server = start(&fake, dir.path()).await;
    wait_until(
        "the ledger branch is on GitHub",
        Duration::from_secs(30),
        async || tip(&fake_repo).is_some(),
    )
    .await;
    // Backoff alone would have retried after a few hundred milliseconds.
    assert!(started.elapsed() >= Duration::from_secs(1));
    wait_until(
        "the fake has recorded the push",
        Duration::from_secs(10),
        async || fake.calls_to("POST", RECEIVE_PACK).len() >= 2,
    )
    .await;
    let pushes = fake.calls_to("POST", RECEIVE_PACK);
    assert_eq!(
        pushes.iter().map(|c| c.status).collect::<Vec<_>>(),
        [403, 200]
    );
    wait_until(
        "the status has caught up",
        Duration::from_secs(10),
        async || {
            let text = metrics(&server.url()).await;
            sample(
                &text,
                "countersign_ledger_pushes_total{outcome=\"rate_limited\"}",
            ) == 1.0
                && sample(&text, "countersign_ledger_pushes_total{outcome=\"ok\"}") == 1.0
        },
    )
    .await;
    server.stop().await.unwrap();
}

/// A commit on GitHub's ledger branch that countersign did not make.
fn foreign_commit(repo: &Path) -> String {
    let repo = git2::Repository::open_bare(repo).unwrap();
    let parent = repo
        .find_reference(LEDGER_REF)
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let mut update = git2::build::TreeUpdateBuilder::new();
    let blob = repo.blob(b"# edited on GitHub\n").unwrap();
    update.upsert("README.md", blob, git2::FileMode::Blob);
    let tree = update
        .create_updated(&repo, &parent.tree().unwrap())
        .unwrap();
    let sig = git2::Signature::now("mallory", "mallory@example.com").unwrap();
    repo.commit(
        Some(LEDGER_REF),
        &sig,
        &sig,
        "Edit the ledger README",
        &repo.find_tree(tree).unwrap(),
        &[&parent],
    )
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn a_foreign_commit_on_github_is_never_overwritten_and_fails_closed() {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path()).await;
    let url = server.url();
    let fake_repo = fake.repo_path(FULL_NAME);
    let local = clone_path(dir.path());
    let first = submit(&url, 0).await;
    settled(&url, std::slice::from_ref(&first)).await;
    let before = published(&server, &fake_repo, &local).await;
    let ours = tip(&fake_repo).unwrap();
    let foreign = foreign_commit(&fake_repo);

    // countersign commits on: its next push finds GitHub's branch off its history.
    let second = submit(&url, 1).await;
    let ready = wait_until(
        "readiness reports the divergence",
        Duration::from_secs(30),
        async || {
            let (status, ready) = readiness(&url).await;
            (status == 503 && push_of(&ready).diverged.is_some()).then_some(ready)
        },
    )
    .await;
    let push = push_of(&ready);
    assert!(!push.ok, "{ready:?}");
    let diverged = push.diverged.as_ref().unwrap();
    assert_eq!(diverged.remote_commit, foreign, "{ready:?}");
    assert_eq!(
        diverged.base_commit.as_deref(),
        Some(ours.as_str()),
        "{ready:?}"
    );
    assert_eq!(diverged.foreign_commits, Some(1), "{ready:?}");
    assert_eq!(push.pushed_seq, Some(before.len() as i64), "{ready:?}");
    assert!(
        push.error
            .as_deref()
            .is_some_and(|e| e.contains("refusing to overwrite")),
        "{ready:?}"
    );
    // The writer itself is healthy: entries keep being committed locally.
    assert!(ready.ledger.error.is_none(), "{ready:?}");

    // Retries go on, with backoff; GitHub's branch keeps the foreign commit, untouched.
    wait_until(
        "a retry has been refused too",
        Duration::from_secs(30),
        async || {
            let text = metrics(&url).await;
            sample(
                &text,
                "countersign_ledger_pushes_total{outcome=\"diverged\"}",
            ) >= 2.0
        },
    )
    .await;
    assert_eq!(tip(&fake_repo).as_deref(), Some(foreign.as_str()));
    let published_ids: Vec<Value> = testkit::ledger_entries(&fake_repo)
        .into_iter()
        .map(|e| e["request_id"].clone())
        .collect();
    assert!(!published_ids.contains(&json!(second)));
    let local_entries = testkit::ledger_entries(&local);
    assert!(
        local_entries.iter().any(|e| e["request_id"] == second),
        "the new entries are committed locally"
    );
    assert!(local_entries.iter().any(|e| e["request_id"] == first));
    // countersign's own branch never took the foreign commit in.
    let clone = git2::Repository::open_bare(&local).unwrap();
    let local_tip = git2::Oid::from_str(&tip(&local).unwrap()).unwrap();
    let foreign_oid = git2::Oid::from_str(&foreign).unwrap();
    assert!(
        !clone
            .graph_descendant_of(local_tip, foreign_oid)
            .unwrap_or(false)
    );

    // The operator puts GitHub's branch back on countersign's history: the next retry
    // fast-forwards it with everything committed meanwhile.
    {
        let repo = git2::Repository::open_bare(&fake_repo).unwrap();
        let ours = git2::Oid::from_str(&ours).unwrap();
        repo.reference(LEDGER_REF, ours, true, "operator: drop the foreign commit")
            .unwrap();
    }
    let entries = published(&server, &fake_repo, &local).await;
    seqs(&entries);
    verify(&fake_repo);
    wait_until("ready again", Duration::from_secs(30), async || {
        readiness(&url).await.0 == 200
    })
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_lost_clone_continues_the_published_ledger() {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let fake_repo = fake.repo_path(FULL_NAME);
    let local = clone_path(dir.path());
    let server = start(&fake, dir.path()).await;
    let id = submit(&server.url(), 0).await;
    settled(&server.url(), &[id]).await;
    let before = published(&server, &fake_repo, &local).await;
    server.stop().await.unwrap();

    std::fs::remove_dir_all(&local).unwrap();
    let server = start(&fake, dir.path()).await;
    assert_eq!(
        tip(&local),
        tip(&fake_repo),
        "the published branch is adopted"
    );
    let id = submit(&server.url(), 1).await;
    settled(&server.url(), &[id]).await;
    let after = published(&server, &fake_repo, &local).await;
    assert!(after.len() > before.len());
    assert_eq!(after[..before.len()], before[..]);
    seqs(&after);
    verify(&fake_repo);
    // One history: a single root commit.
    let repo = git2::Repository::open_bare(&fake_repo).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref(LEDGER_REF).unwrap();
    let roots = walk
        .filter(|c| {
            repo.find_commit(*c.as_ref().unwrap())
                .unwrap()
                .parent_count()
                == 0
        })
        .count();
    assert_eq!(roots, 1);
    server.stop().await.unwrap();
}

// The fake GitHub must keep serving while the test thread waits for the binary's first line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_push_the_ledger_is_pushed_after_restart() {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("agent-a.key"), testkit::KEY_A_NEW).unwrap();
    let config = dir.path().join("countersign.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n\
             [[agents]]\nid = \"agent-a\"\nowners = [\"alice\"]\nkeys = [{{ file = {:?} }}]\n\n\
             [github]\n{}",
            data.display().to_string(),
            dir.path().join("agent-a.key").display().to_string(),
            fake.countersign_toml(dir.path(), ""),
        ),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--log-level",
        "warn",
        "serve",
    ];
    let fake_repo = fake.repo_path(FULL_NAME);
    let local = clone_path(&data);

    // The ledger's first push hangs on GitHub's side; meanwhile entries are committed locally.
    fake.fail_next(
        "POST",
        RECEIVE_PACK,
        1,
        Failure::Slow(Duration::from_secs(30)),
    );
    let mut server = testkit::Binary::spawn(&args, dir.path());
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(submit(&server.url, n).await);
    }
    wait_until(
        "the entries are committed locally",
        Duration::from_secs(30),
        async || {
            let entries = testkit::ledger_entries(&local);
            ids.iter()
                .all(|id| entries.iter().filter(|e| e["request_id"] == **id).count() >= 2)
        },
    )
    .await;
    server.kill_9();
    let committed = testkit::ledger_entries(&local);
    assert!(testkit::ledger_entries(&fake_repo).len() < committed.len());

    let server = testkit::Binary::spawn(&args, dir.path());
    wait_until(
        "the ledger is on GitHub",
        Duration::from_secs(30),
        async || {
            tip(&fake_repo).is_some()
                && tip(&fake_repo) == tip(&local)
                && testkit::ledger_entries(&fake_repo).len() >= committed.len()
        },
    )
    .await;
    let entries = testkit::ledger_entries(&fake_repo);
    seqs(&entries);
    assert_eq!(entries[..committed.len()], committed[..]);
    verify(&fake_repo);
    drop(server);
}
