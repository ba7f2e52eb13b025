//! Several replicas of the real `countersign serve` binary on one PostgreSQL database, behind
//! one GitHub (the stateful fake), sharing the payload and JWT keys as docs/DEPLOYMENT.md asks.
//! One replica leads at a time; any replica takes submissions and reviews; an approved action
//! runs exactly once (a loopback recorder counts the calls) whichever replica is asked; the
//! leader killed with `kill -9` under load is replaced within its lease and nothing accepted
//! is lost or run twice; a leader paused (SIGSTOP) past its lease is replaced and, woken up,
//! writes nothing and steps down; the ledger stays one gap-free chain with a `leader_elected`
//! entry per leader, and the published ledger branch is that chain.

use axum::http::HeaderMap;
use countersign::api::{self, Readiness, Role, State, Verdict};
use countersign::cli::client::{AgentClient, ClientError, ReviewerClient};
use countersign::ledger::entry::{GENESIS, check_line};
use serde_json::{Value, json};
use sqlx::Connection as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::fake_github::{FULL_NAME, FakeGitHub};
use testkit::postgres::{OwnServer, TestDatabase};
use testkit::{BOB, Binary, CAROL, DAVE, KEY_A_NEW, TEST_TEAMS_TOML, key, wait_until};

/// The leader lease (and claims) in these tests: failover within about this long.
const LEASE: Duration = Duration::from_secs(2);

const CODEOWNERS: &str = "[Ops]\n/actions/** @bob @carol @dave\n";
const POLICY: &str = "[defaults]\nrisk = \"medium\"\n";
const AGENTS: &str = "[agents.agent-a]\nowners = []\nallowed = [\"actions/**\"]\n";

/// Counts the calls of the `deploy` action, by request (its idempotency key).
#[derive(Default)]
struct Recorder {
    calls: Mutex<BTreeMap<String, u32>>,
}

impl Recorder {
    async fn start() -> (Arc<Self>, String) {
        let recorder = Arc::new(Self::default());
        let r = recorder.clone();
        let app = axum::Router::new().route(
            "/deploy",
            axum::routing::post(move |headers: HeaderMap| async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                *r.calls.lock().unwrap().entry(key).or_default() += 1;
                "deployed"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (recorder, url)
    }

    fn calls(&self, id: &str) -> u32 {
        self.calls.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

/// One replica: its own data directory and configuration file, a child process, its log.
struct Replica {
    name: String,
    dir: PathBuf,
    process: Option<Binary>,
}

impl Replica {
    fn url(&self) -> &str {
        &self.process.as_ref().expect("running").url
    }

    fn pid(&self) -> i32 {
        self.process.as_ref().expect("running").child.id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

/// The fake GitHub, the database, the shared keys, the recorder and the replicas.
struct Cluster {
    fake: FakeGitHub,
    /// The database's URL, and the test database to drop at the end (none on a server of
    /// the test's own).
    url: String,
    db: Option<TestDatabase>,
    shared: tempfile::TempDir,
    recorder: Arc<Recorder>,
    replicas: Vec<Replica>,
}

impl Cluster {
    /// `n` replicas named `r0`, `r1`, …; `None` without a PostgreSQL (outside CI).
    async fn start(what: &str, n: usize) -> Option<Self> {
        let db = TestDatabase::create(what).await?;
        Some(Self::start_on(db.url.clone(), Some(db), n).await)
    }

    async fn start_on(url: String, db: Option<TestDatabase>, n: usize) -> Self {
        let (recorder, recorder_url) = Recorder::start().await;
        let actions = format!(
            "[actions.deploy]\nexecutor = {{ type = \"http\", url = \"{recorder_url}/deploy\" }}\naudience = \"deploy\"\n"
        );
        let files = [
            ("README.md", "# gitops\n"),
            ("policies/CODEOWNERS", CODEOWNERS),
            ("policies/policy.toml", POLICY),
            ("policies/agents.toml", AGENTS),
            ("policies/teams.toml", TEST_TEAMS_TOML),
            ("policies/actions.toml", actions.as_str()),
        ];
        let fake = FakeGitHub::builder()
            .repo(
                testkit::fake_github::REPO,
                testkit::fake_github::BASE,
                &files,
            )
            .start()
            .await;
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("payload.key"), "7".repeat(64)).unwrap();
        std::fs::write(shared.path().join("agent-a.key"), KEY_A_NEW).unwrap();
        let mut cluster = Self {
            fake,
            url,
            db,
            shared,
            recorder,
            replicas: vec![],
        };
        for i in 0..n {
            cluster.add(&format!("r{i}"));
        }
        cluster
    }

    /// Starts another replica named `name`.
    fn add(&mut self, name: &str) -> usize {
        let replica = self.configure(name, &self.shared.path().join("payload.key"));
        self.spawn(replica)
    }

    /// Writes the configuration of replica `name`, sealing payloads with the key in `payload`.
    fn configure(&self, name: &str, payload: &std::path::Path) -> Replica {
        let dir = self.shared.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let shared = self.shared.path();
        let reviewers: String = [("bob", BOB), ("carol", CAROL), ("dave", DAVE)]
            .iter()
            .map(|(name, token)| {
                format!(
                    "[[reviewers]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\n\n",
                    countersign::cli::keys::token_sha256(token)
                )
            })
            .collect();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\ndatabase_url = {url:?}\n\
             replica_name = \"{name}\"\nlease_ttl = \"{lease}ms\"\nsweep_interval = \"100ms\"\n\
             jwt_keys_dir = {jwt:?}\npayload_key = {{ file = {payload:?} }}\n\n\
             [[agents]]\nid = \"agent-a\"\nowners = []\nkeys = [{{ file = {agent:?} }}]\n\n\
             {reviewers}[ledger]\nkey_file = {ledger:?}\n\n[github]\n{github}",
            data = dir.join("data").display().to_string(),
            url = self.url,
            lease = LEASE.as_millis(),
            jwt = shared.join("jwt").display().to_string(),
            payload = payload.display().to_string(),
            agent = shared.join("agent-a.key").display().to_string(),
            ledger = shared.join("ledger_ed25519").display().to_string(),
            github = self.fake.countersign_toml(&dir, ""),
        );
        std::fs::write(dir.join("countersign.toml"), text).unwrap();
        Replica {
            name: name.to_owned(),
            dir,
            process: None,
        }
    }

    /// Starts `replica` and adds it to the cluster; returns its index.
    fn spawn(&mut self, mut replica: Replica) -> usize {
        replica.process = Some(
            Self::start_process(&replica)
                .unwrap_or_else(|log| panic!("replica {} did not start:\n{log}", replica.name)),
        );
        self.replicas.push(replica);
        self.replicas.len() - 1
    }

    /// Starts the replica's process, or returns its log if it exits instead.
    fn start_process(replica: &Replica) -> Result<Binary, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(replica.dir.join("stderr.log"))
            .unwrap();
        let config = replica.dir.join("countersign.toml");
        let args = ["--config", config.to_str().unwrap(), "serve"];
        // Waiting for the child's first line blocks: the fake GitHub it asks meanwhile runs
        // on the other worker thread.
        let started = tokio::task::block_in_place(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Binary::spawn_logging(&args, &replica.dir, log.into())
            }))
        });
        started.map_err(|_| replica.log())
    }

    fn agent(&self, i: usize) -> AgentClient {
        AgentClient::new(self.replicas[i].url(), "agent-a", key(KEY_A_NEW))
    }

    fn reviewer(&self, i: usize, token: &str) -> ReviewerClient {
        ReviewerClient::new(self.replicas[i].url(), token)
    }

    /// `/readyz` of replica `i` (`None` while it does not answer).
    async fn readiness(&self, i: usize) -> Option<Readiness> {
        let url = format!("{}/readyz", self.replicas[i].url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let resp = http.get(url).send().await.ok()?;
        resp.json().await.ok()
    }

    /// Waits until exactly one of the running replicas says it leads (the others follow);
    /// returns it and its lease epoch.
    async fn leader(&self) -> (usize, i64) {
        wait_until(
            "one leader among the replicas",
            Duration::from_secs(30),
            async || {
                let mut leaders = vec![];
                for (i, r) in self.replicas.iter().enumerate() {
                    if r.process.is_none() {
                        continue;
                    }
                    let ready = self.readiness(i).await?;
                    if ready.replica.role == Role::Leader {
                        leaders.push((i, ready.replica.lease_epoch?));
                    }
                }
                (leaders.len() == 1).then(|| leaders[0])
            },
        )
        .await
    }

    /// Submits a `deploy` through replica `i` and waits (through it) for its pull request.
    async fn pending(&self, i: usize, n: u32) -> String {
        let id = self.submit(i, n).await;
        self.agent(i)
            .wait_for(&id, Duration::from_secs(30), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
        id
    }

    async fn submit(&self, i: usize, n: u32) -> String {
        let body = json!({
            "kind": "action", "action": "deploy", "resource": "api", "environment": "prod",
            "justification": "ship it", "payload": { "n": n },
        });
        let answer = self
            .agent(i)
            .submit(&serde_json::to_vec(&body).unwrap(), None)
            .await
            .unwrap();
        answer.id.as_str().to_owned()
    }

    /// Waits (through replica `i`) until the request has finished.
    async fn finished(&self, i: usize, id: &str) -> api::RequestStatus {
        self.agent(i)
            .wait_for(id, Duration::from_secs(60), |s| {
                matches!(
                    s.state,
                    State::Succeeded | State::Failed | State::OutcomeUnknown
                )
            })
            .await
            .unwrap()
    }

    /// The database's ledger, checked entry by entry: gap-free from 1, each `prev` the hash
    /// of the entry before, every line's own hash right. Returns the parsed entries.
    async fn verified_ledger(&self) -> Vec<Value> {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let lines: Vec<(i64, String)> = sqlx::query_as("SELECT seq, line FROM ledger ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let mut prev = GENESIS.to_owned();
        let mut out = vec![];
        for (i, (seq, line)) in lines.iter().enumerate() {
            assert_eq!(*seq, i as i64 + 1, "no gap in the ledger");
            let checked = check_line(line).unwrap_or_else(|e| panic!("entry {seq}: {e}"));
            assert_eq!(checked.prev, prev, "entry {seq} chains to the one before");
            prev = checked.hash;
            out.push(serde_json::from_str(line).unwrap());
        }
        out
    }

    /// Waits until the ledger branch published on GitHub holds exactly the database's chain.
    async fn published_ledger_matches(&self) {
        let expected = self.verified_ledger().await;
        let repo = self.fake.repo_path(FULL_NAME);
        wait_until(
            "the published ledger branch to hold the database's chain",
            Duration::from_secs(30),
            async || (testkit::ledger_entries(&repo) == expected).then_some(()),
        )
        .await;
    }

    /// `(replica, epoch)` of every `leader_elected` entry, in order.
    async fn elections(&self) -> Vec<(String, i64)> {
        self.verified_ledger()
            .await
            .iter()
            .filter(|e| e["event"] == "leader_elected")
            .map(|e| {
                (
                    e["replica"].as_str().unwrap().to_owned(),
                    e["epoch"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// The `leader_elected` entries are exactly these (replica index, epoch), in order.
    async fn assert_elections(&self, expected: &[(usize, i64)]) {
        let expected: Vec<(String, i64)> = expected
            .iter()
            .map(|(i, epoch)| (self.replicas[*i].name.clone(), *epoch))
            .collect();
        assert_eq!(self.elections().await, expected);
    }

    async fn stop(self) {
        drop(self.replicas);
        if let Some(db) = self.db {
            db.drop().await;
        }
    }
}

fn signal(pid: i32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_work_and_an_approved_action_runs_once() {
    let Some(cluster) = Cluster::start("replicas share", 3).await else {
        return;
    };
    let (leader, epoch) = cluster.leader().await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &f in &followers {
        let ready = cluster.readiness(f).await.unwrap();
        assert_eq!(ready.status, api::ReadyStatus::Ready, "{ready:?}");
        assert_eq!(
            (ready.replica.role, ready.replica.lease_epoch),
            (Role::Follower, None)
        );
    }

    // Submitted through one follower, approved through the other, read through the leader.
    let id = cluster.pending(followers[0], 1).await;
    let answer = cluster
        .reviewer(followers[1], BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(answer.state, State::Approved);
    let done = cluster.finished(leader, &id).await;
    assert_eq!(done.state, State::Succeeded, "{done:?}");
    assert_eq!(cluster.recorder.calls(&id), 1);

    // Twenty approvals of one request at once, spread over the three replicas: one run.
    let id = cluster.pending(followers[1], 2).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        let token = [BOB, CAROL, DAVE][n % 3];
        let reviewer = cluster.reviewer(n % 3, token);
        let id = id.clone();
        tasks.spawn(async move { reviewer.review(&id, Verdict::Approve, None).await });
    }
    let mut approved = 0;
    while let Some(answer) = tasks.join_next().await {
        match answer.unwrap() {
            Ok(a) => {
                assert!(
                    matches!(
                        a.state,
                        State::Approved | State::Executing | State::Succeeded
                    ),
                    "{a:?}"
                );
                approved += 1;
            }
            Err(ClientError::Api { status, body }) => {
                assert_eq!(status.as_u16(), 409, "{body:?}")
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(approved >= 1);
    let done = cluster.finished(followers[0], &id).await;
    assert_eq!(done.state, State::Succeeded, "{done:?}");
    assert_eq!(
        cluster.recorder.calls(&id),
        1,
        "one run for twenty approvals"
    );

    cluster.assert_elections(&[(leader, epoch)]).await;
    cluster.published_ledger_matches().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_under_load_is_replaced_within_its_lease_and_nothing_is_lost() {
    let Some(mut cluster) = Cluster::start("replicas kill", 3).await else {
        return;
    };
    let (leader, epoch) = cluster.leader().await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // A bounded load through the followers (24 submissions, two at a time); the leader dies
    // after the first few were accepted, while reviews are being opened.
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let agents = [cluster.agent(followers[0]), cluster.agent(followers[1])];
    let load = tokio::spawn(async move {
        let mut ids = vec![];
        for n in 0..12u32 {
            let body = |m: u32| {
                serde_json::to_vec(&json!({
                    "kind": "action", "action": "deploy", "resource": "api",
                    "environment": "prod", "justification": "ship it", "payload": { "n": m },
                }))
                .unwrap()
            };
            let (a, b) = (body(2 * n), body(2 * n + 1));
            let (x, y) = tokio::join!(agents[0].submit(&a, None), agents[1].submit(&b, None));
            for answer in [x, y] {
                let id = answer.unwrap().id.as_str().to_owned();
                let _ = accepted_tx.send(id.clone());
                ids.push(id);
            }
        }
        ids
    });
    for _ in 0..6 {
        accepted.recv().await.unwrap();
    }
    let killed_at = Instant::now();
    cluster.replicas[leader].process.as_mut().unwrap().kill_9();
    cluster.replicas[leader].process = None;
    let (new_leader, new_epoch) = cluster.leader().await;
    let took = killed_at.elapsed();
    assert!(
        took <= LEASE + Duration::from_millis(1500),
        "a follower took over in {took:?} (lease {LEASE:?})"
    );
    assert_ne!(new_leader, leader);
    assert!(new_epoch > epoch);

    let ids = load.await.unwrap();
    assert_eq!(ids.len(), 24, "every submission was accepted");
    for (n, id) in ids.iter().enumerate() {
        let via = followers[n % 2];
        cluster
            .agent(via)
            .wait_for(id, Duration::from_secs(30), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
        cluster
            .reviewer(via, BOB)
            .review(id, Verdict::Approve, None)
            .await
            .unwrap();
    }
    for id in &ids {
        let done = cluster.finished(new_leader, id).await;
        assert_eq!(done.state, State::Succeeded, "{done:?}");
        assert_eq!(cluster.recorder.calls(id), 1, "{id} ran once");
    }
    cluster
        .assert_elections(&[(leader, epoch), (new_leader, new_epoch)])
        .await;
    cluster.published_ledger_matches().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_writes_nothing_when_it_wakes_and_steps_down() {
    let Some(cluster) = Cluster::start("replicas pause", 2).await else {
        return;
    };
    let (old, epoch) = cluster.leader().await;
    let other = 1 - old;
    let first = cluster.pending(other, 1).await;

    signal(cluster.replicas[old].pid(), "-STOP");
    let (new_leader, new_epoch) = cluster.leader_among(&[other]).await;
    assert_eq!((new_leader, new_epoch), (other, epoch + 1));
    // The new leader works: a request submitted now gets its review, and runs once approved.
    let second = cluster.pending(other, 2).await;
    for id in [&first, &second] {
        cluster
            .reviewer(other, BOB)
            .review(id, Verdict::Approve, None)
            .await
            .unwrap();
        assert_eq!(cluster.finished(other, id).await.state, State::Succeeded);
    }

    signal(cluster.replicas[old].pid(), "-CONT");
    wait_until(
        "the old leader to step down",
        Duration::from_secs(30),
        async || {
            let ready = cluster.readiness(old).await?;
            (ready.replica.role == Role::Follower).then_some(())
        },
    )
    .await;
    let log = cluster.replicas[old].log();
    assert!(
        log.contains("leader lease lost") && log.contains("another replica took it"),
        "the old leader says why it stepped down:\n{log}"
    );
    // It recorded nothing as leader after it woke: two elections, one chain, one history on
    // GitHub; and each action ran once.
    cluster
        .assert_elections(&[(old, epoch), (other, new_epoch)])
        .await;
    cluster.published_ledger_matches().await;
    assert_eq!(cluster.recorder.calls(&first), 1);
    assert_eq!(cluster.recorder.calls(&second), 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_makes_replicas_unready_until_it_is_back_and_loses_nothing() {
    let Some(server) = OwnServer::start("replicas restart") else {
        return;
    };
    let cluster = Cluster::start_on(server.url.clone(), None, 2).await;
    cluster.leader().await;

    // Submissions keep coming through both replicas while PostgreSQL goes down and comes back;
    // what was acknowledged (202) is kept, whatever was refused meanwhile.
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let agents = [cluster.agent(0), cluster.agent(1)];
    let load = tokio::spawn({
        let (stop, count) = (stop_load.clone(), count.clone());
        async move {
            let (mut acknowledged, mut refused, mut n) = (vec![], 0, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::to_vec(&json!({
                    "kind": "action", "action": "deploy", "resource": "api",
                    "environment": "prod", "justification": "ship it", "payload": { "n": n },
                }))
                .unwrap();
                match agents[n as usize % 2].submit(&body, None).await {
                    Ok(a) => {
                        acknowledged.push(a.id.as_str().to_owned());
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => refused += 1,
                }
                n += 1;
                // A steady trickle, not a flood: every request is approved and run below.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, refused)
        }
    });
    let acknowledged_now = || count.load(std::sync::atomic::Ordering::Relaxed);
    wait_until(
        "a few submissions before the restart",
        Duration::from_secs(30),
        async || acknowledged_now() >= 3,
    )
    .await;

    tokio::task::block_in_place(|| server.stop());
    for i in 0..2 {
        wait_until(
            "the replica to say it is not ready",
            Duration::from_secs(30),
            async || {
                let ready = cluster.readiness(i).await?;
                (ready.status == api::ReadyStatus::NotReady && !ready.database.ok).then_some(())
            },
        )
        .await;
    }
    // Down past the lease: the leader, unable to renew, steps down.
    wait_until(
        "every replica to follow",
        Duration::from_secs(30),
        async || {
            for i in 0..2 {
                let ready = cluster.readiness(i).await?;
                if ready.replica.role != Role::Follower {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    tokio::task::block_in_place(|| server.pg_ctl_start());
    for i in 0..2 {
        wait_until(
            "the replica to be ready again",
            Duration::from_secs(60),
            async || {
                let ready = cluster.readiness(i).await?;
                (ready.status == api::ReadyStatus::Ready).then_some(())
            },
        )
        .await;
    }
    let (leader, _) = cluster.leader().await;
    let before = acknowledged_now();
    wait_until(
        "a few submissions after the restart",
        Duration::from_secs(30),
        async || acknowledged_now() >= before + 3,
    )
    .await;
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, refused) = load.await.unwrap();
    eprintln!(
        "{} acknowledged, {refused} refused while PostgreSQL was down",
        acknowledged.len()
    );

    for id in &acknowledged {
        cluster
            .agent(leader)
            .wait_for(id, Duration::from_secs(60), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
        cluster
            .reviewer(1 - leader, BOB)
            .review(id, Verdict::Approve, None)
            .await
            .unwrap();
    }
    for id in &acknowledged {
        assert_eq!(cluster.finished(leader, id).await.state, State::Succeeded);
        assert_eq!(cluster.recorder.calls(id), 1, "{id} ran once");
    }
    cluster.published_ledger_matches().await;
    cluster.stop().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_payload_key_is_refused_naming_the_running_one() {
    let Some(mut cluster) = Cluster::start("replicas keys", 1).await else {
        return;
    };
    cluster.leader().await;
    let other_key = cluster.shared.path().join("other-payload.key");
    std::fs::write(&other_key, "8".repeat(64)).unwrap();
    let stranger = cluster.configure("r1", &other_key);
    let log = Cluster::start_process(&stranger)
        .err()
        .expect("refused at start");
    assert!(
        log.contains("replica `r0` is running")
            && log.contains("payload_key")
            && !log.contains(&"8".repeat(64))
            && !log.contains(&"7".repeat(64)),
        "{log}"
    );
    // With the shared key it joins, as a follower.
    let joined = cluster.add("r2");
    let ready = cluster.readiness(joined).await.unwrap();
    assert_eq!(ready.replica.role, Role::Follower);
    cluster.stop().await;
}

impl Cluster {
    /// Like [`Cluster::leader`], asking only `among` (the others may not answer).
    async fn leader_among(&self, among: &[usize]) -> (usize, i64) {
        wait_until(
            "a leader among the answering replicas",
            Duration::from_secs(30),
            async || {
                for &i in among {
                    let ready = self.readiness(i).await?;
                    if ready.replica.role == Role::Leader {
                        return Some((i, ready.replica.lease_epoch?));
                    }
                }
                None
            },
        )
        .await
    }
}
