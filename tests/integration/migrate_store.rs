//! `countersign migrate-store` (issue 15), the real binary against a real PostgreSQL: a SQLite
//! store filled by a real server (requests pending, executed, denied, expired and refused at
//! intake; reviews, notifications, credentials, callbacks, a long ledger) arrives table for
//! table, its ledger verifies on PostgreSQL, and a server started on the copy shows the old
//! requests and takes new ones; a target that already holds data, a database a server is
//! running on, and a damaged ledger are refused, leaving the target as it was. The password in
//! the target URL never appears in the output. Each test gets a fresh database.

use countersign::api::{State, Verdict};
use countersign::app::Server;
use countersign::config::{DatabaseUrl, ServerConfig};
use countersign::ledger::entry::{GENESIS, check_line};
use countersign::notify::{NotifyConfig, Target, TargetKind};
use countersign::store::migrate::TABLES;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, PgConnection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::fake_chat::FakeChat;
use testkit::postgres::TestDatabase;
use testkit::*;
use zeroize::Zeroizing;

/// Given in every target URL: PostgreSQL here trusts loopback and ignores it, and it must
/// never be printed.
const PASSWORD: &str = "migr4te-s3cret";

/// `url` with [`PASSWORD`] in it (unless it has a password already).
fn with_password(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (user, host) = rest.split_once('@')?;
        (!user.contains(':')).then(|| format!("{scheme}://{user}:{PASSWORD}@{host}"))
    }) {
        Some(url) => url,
        None => url.to_owned(),
    }
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `countersign migrate-store` on the database of data directory `data` with small
/// batches (every table with more than 7 rows takes several).
async fn migrate_store(data: &Path, to: &str) -> Run {
    let from = format!("sqlite://{}", data.join("countersign.db").display());
    let out = tokio::process::Command::new(countersign_exe())
        .args(["migrate-store", "--from", &from, "--to", to])
        .args(["--batch-rows", "7"])
        .env_remove("COUNTERSIGN_CONFIG")
        .env_remove("COUNTERSIGN_DATABASE_URL")
        .current_dir(data)
        .output()
        .await
        .unwrap();
    let run = Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the password is never printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// Notifications to a Slack channel on `fake`, callbacks to loopback allowed.
fn notifying(fake: &FakeChat) -> impl Fn(&mut ServerConfig) + Clone {
    let api_base = format!("{}/api", fake.url());
    move |c| {
        c.notify = NotifyConfig {
            targets: vec![Target {
                name: "ops".into(),
                kind: TargetKind::SlackBot {
                    token: Zeroizing::new(testkit::fake_chat::TOKEN.into()),
                    channel: "C-OPS".into(),
                    api_base: api_base.clone(),
                },
                route: Default::default(),
                mention: None,
            }],
            max_attempts: 5,
        };
        c.execution = countersign::execute::ExecutionFile {
            callback_hosts: vec!["127.0.0.1".into()],
            ..Default::default()
        }
        .resolve()
        .unwrap();
    }
}

/// An agent's endpoint for outcome callbacks that accepts every call.
async fn callback_receiver() -> String {
    let app = axum::Router::new().route(
        "/outcome",
        axum::routing::post(|| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/outcome", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A server's data directory after some use, the server stopped: its requests by state.
struct Used {
    dir: tempfile::TempDir,
    http: reqwest::Client,
    expired: String,
    succeeded: String,
    denied: String,
    pending: Vec<String>,
}

/// Runs a real server on SQLite through a request of every kind of outcome, then stops it.
async fn used_store(fake: &FakeChat, more_pending: usize) -> Used {
    // A short lifetime first, so one request expires undecided.
    let h = Harness::start_with(|c| {
        c.request_ttl = Duration::from_millis(800);
        c.sweep_interval = Duration::from_millis(50);
    })
    .await;
    let expired = h.pending().await;
    h.wait_state(&h.agent_a(), &expired, State::Expired).await;

    let h = h.restart_with(notifying(fake)).await;
    let callback_url = callback_receiver().await;
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod", "justification": "weekly report",
        "payload": { "limit": 5, "notify": "jane.doe@example.com" },
        "callback_url": callback_url,
    }))
    .unwrap();
    let answer = h.agent_a().submit(&body, Some("report-w47")).await.unwrap();
    let succeeded = answer.id.as_str().to_owned();
    h.wait_state(&h.agent_a(), &succeeded, State::PendingReview)
        .await;
    h.reviewer(BOB)
        .review(&succeeded, Verdict::Approve, Some("matches OPS-1"))
        .await
        .unwrap();
    h.wait_state(&h.agent_a(), &succeeded, State::Succeeded)
        .await;

    let denied = h.pending().await;
    h.reviewer(CAROL)
        .review(&denied, Verdict::Deny, Some("not this week"))
        .await
        .unwrap();
    h.wait_state(&h.agent_a(), &denied, State::Denied).await;

    // Out of agent-b's scope: refused at intake, recorded in the ledger only.
    let grant = serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": "prod/admin",
        "environment": "prod", "justification": "x",
    }))
    .unwrap();
    assert!(h.agent_b().submit(&grant, None).await.is_err());

    let mut pending = Vec::new();
    for n in 0..=more_pending {
        // Distinct bodies: the same body signed in the same second is a replay.
        let (id, _) = h.pending_with(&action_body(json!({ "n": n }))).await;
        pending.push(id);
    }
    // The readiness check writes the write probe.
    let ready = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert!(ready.status().is_success());
    h.settle().await;
    let (dir, http) = h.stop().await;
    Used {
        dir,
        http,
        expired,
        succeeded,
        denied,
        pending,
    }
}

async fn sqlite(data: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(data.join("countersign.db"));
    SqliteConnection::connect_with(&options).await.unwrap()
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Every copied table's row count on PostgreSQL, and its ledger head.
async fn pg_state(url: &str) -> (Vec<(&'static str, i64)>, (i64, String, i64)) {
    let mut pg = PgConnection::connect(url).await.unwrap();
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push((table, count(&mut pg, table).await));
    }
    let head = sqlx::query_as("SELECT seq, hash, at FROM ledger_head WHERE id = 1")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    (counts, head)
}

/// The same rows (`sql` run on both sides, in a stated order).
macro_rules! assert_same_rows {
    ($lite:expr, $pg:expr, $row:ty, $sql:expr) => {{
        let from: Vec<$row> = sqlx::query_as($sql).fetch_all(&mut $lite).await.unwrap();
        let to: Vec<$row> = sqlx::query_as($sql).fetch_all(&mut $pg).await.unwrap();
        assert!(!from.is_empty(), "{}", $sql);
        assert_eq!(from, to, "{}", $sql);
    }};
}

/// The server configuration for data directory `dir` on PostgreSQL at `url`.
fn on_postgres(dir: &Path, url: &str, tweak: impl Fn(&mut ServerConfig)) -> ServerConfig {
    let mut c = testkit::config(dir);
    tweak(&mut c);
    c.database_url = Some(DatabaseUrl::parse(url.to_owned()).unwrap());
    c.replica_name = Some("replica-a".into());
    c
}

#[tokio::test]
async fn a_used_sqlite_store_moves_to_postgres_whole_and_a_server_carries_on_there() {
    testkit::sqlite_only!("its source is a SQLite harness");
    let Some(db) = TestDatabase::create("migrate-store round trip").await else {
        return;
    };
    let fake = FakeChat::start().await;
    let used = used_store(&fake, 12).await;
    let data = used.dir.path().to_owned();

    let run = migrate_store(&data, &with_password(&db.url)).await;
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("copying "), "{}", run.stdout);
    assert!(run.stdout.contains("events: "), "{}", run.stdout);
    assert!(
        run.stdout.contains("ledger verified from genesis"),
        "{}",
        run.stdout
    );

    // Every table holds what SQLite held.
    let mut lite = sqlite(&data).await;
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    for table in TABLES {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut lite)
            .await
            .unwrap();
        assert_eq!(count(&mut pg, table).await, rows, "table {table}");
        assert!(
            rows > 0 || table == "github_inbox",
            "the used store has {table} rows"
        );
        assert!(
            run.stdout.contains(&format!("{table}: {rows} rows copied"))
                || (rows == 1 && run.stdout.contains(&format!("{table}: 1 row copied"))),
            "{}",
            run.stdout
        );
    }
    assert_same_rows!(
        lite,
        pg,
        (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            i64,
            i64,
            Option<String>
        ),
        "SELECT id, state, digest, submission, evaluation, review_ref, created_at, expires_at, \
         decision_published, last_error FROM requests ORDER BY id"
    );
    assert_same_rows!(
        lite,
        pg,
        (
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            String,
            i64
        ),
        "SELECT seq, request_id, kind, from_state, to_state, actor, detail, at FROM events \
         ORDER BY seq"
    );
    assert_same_rows!(
        lite,
        pg,
        (
            i64,
            String,
            String,
            String,
            Option<String>,
            String,
            i64,
            Option<String>
        ),
        "SELECT id, request_id, reviewer, decision, reason, digest, at, teams FROM reviews \
         ORDER BY id"
    );
    assert_same_rows!(
        lite,
        pg,
        (i64, String, i64, String, String, String),
        "SELECT seq, request_id, at, prev, hash, line FROM ledger ORDER BY seq"
    );
    assert_same_rows!(
        lite,
        pg,
        (i64, String, String, String, i64, Option<String>, i64),
        "SELECT outbox_id, target, request_id, state, attempts, message_ref, updated_at \
         FROM notify_deliveries ORDER BY outbox_id, target"
    );
    assert_same_rows!(
        lite,
        pg,
        (String, String, String, i64, i64, Option<i64>),
        "SELECT jti, request_id, audience, issued_at, expires_at, used_at FROM credentials \
         ORDER BY jti"
    );

    // The ledger verifies from genesis on PostgreSQL, and its head is its last entry.
    let entries: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT seq, prev, hash, line FROM ledger ORDER BY seq")
            .fetch_all(&mut pg)
            .await
            .unwrap();
    assert!(entries.len() > 40, "a long ledger: {}", entries.len());
    let mut prev = GENESIS.to_owned();
    for (i, (seq, entry_prev, hash, line)) in entries.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1, "gap-free");
        assert_eq!(*entry_prev, prev, "entry {seq} chains to the one before");
        assert_eq!(&check_line(line).unwrap().hash, hash, "entry {seq}");
        prev = hash.clone();
    }
    let (_, head) = pg_state(&db.url).await;
    assert_eq!(
        (head.0, head.1.as_str()),
        (entries.len() as i64, prev.as_str())
    );
    let events_before = count(&mut pg, "events").await;
    lite.close().await.unwrap();
    drop(pg);

    // The same data directory, now on PostgreSQL: every request as it was, and it goes on.
    let c = on_postgres(&data, &db.url, notifying(&fake));
    let server = Server::start(&c)
        .await
        .expect("a server starts on the copy");
    let h = Harness {
        url: server.url(),
        server,
        dir: used.dir,
        http: used.http,
        notifying: true,
        database: None,
    };
    let agent = h.agent_a();
    for (id, state) in [
        (&used.expired, State::Expired),
        (&used.succeeded, State::Succeeded),
        (&used.denied, State::Denied),
        (&used.pending[0], State::PendingReview),
    ] {
        assert_eq!(agent.status(id).await.unwrap().state, state, "{id}");
    }
    let succeeded = agent.status(&used.succeeded).await.unwrap();
    assert_eq!(succeeded.decisions.len(), 1);
    assert_eq!(succeeded.execution.unwrap().executor, "command");
    // New rows in the identity-numbered tables (events, reviews, notifications, callbacks)
    // take numbers after the copied ones.
    let fresh = h.pending().await;
    h.reviewer(BOB)
        .review(&used.pending[0], Verdict::Approve, None)
        .await
        .unwrap();
    h.wait_state(&agent, &used.pending[0], State::Succeeded)
        .await;
    let entries = h.ledger_synced().await;
    assert!(entries.iter().any(|e| e["request_id"] == fresh.as_str()));
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    assert!(count(&mut pg, "events").await > events_before);
    drop(pg);
    h.server.stop().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn a_target_that_already_holds_data_is_refused_and_left_as_it_was() {
    testkit::sqlite_only!("its source is a SQLite harness");
    let Some(db) = TestDatabase::create("migrate-store non-empty target").await else {
        return;
    };
    let h = Harness::start().await;
    let id = h.pending().await;
    h.settle().await;
    let (dir, _) = h.stop().await;
    let first = migrate_store(dir.path(), &db.url).await;
    assert!(first.success, "{}", first.stderr);
    let before = pg_state(&db.url).await;

    // Run twice by mistake: the second run changes nothing.
    let again = migrate_store(dir.path(), &with_password(&db.url)).await;
    assert!(!again.success);
    assert!(
        again
            .stderr
            .contains("is not empty: table `requests` has 1 row(s)"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("on 127.0.0.1:"), "{}", again.stderr);
    assert_eq!(pg_state(&db.url).await, before);
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT id FROM requests")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    assert_eq!(stored, id);
    drop(pg);
    db.drop().await;
}

#[tokio::test]
async fn a_store_a_server_is_running_on_is_refused_until_it_stops() {
    testkit::sqlite_only!("its source is a SQLite harness");
    let Some(db) = TestDatabase::create("migrate-store in use").await else {
        return;
    };
    let h = Harness::start().await;
    h.pending().await;
    let data: PathBuf = h.dir.path().to_owned();

    let refused = migrate_store(&data, &db.url).await;
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("is in use") && refused.stderr.contains("stop it first"),
        "{}",
        refused.stderr
    );
    // Refused before the target was touched: not even its schema is there.
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut pg)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    drop(pg);

    h.settle().await;
    let (dir, _) = h.stop().await;
    let run = migrate_store(dir.path(), &db.url).await;
    assert!(run.success, "once the server is stopped: {}", run.stderr);
    db.drop().await;
}

#[tokio::test]
async fn a_damaged_ledger_fails_verification_and_nothing_is_written() {
    testkit::sqlite_only!("its source is a SQLite harness");
    let Some(db) = TestDatabase::create("migrate-store damaged ledger").await else {
        return;
    };
    let h = Harness::start().await;
    for n in 0..3 {
        h.pending_with(&action_body(json!({ "n": n }))).await;
    }
    h.settle().await;
    let (dir, _) = h.stop().await;
    // Someone edits one entry in place: the agent of a later request becomes another.
    let mut lite = sqlite(dir.path()).await;
    let seq: i64 = sqlx::query_scalar(
        "SELECT min(seq) FROM ledger WHERE seq > 1 AND line LIKE '%\"actor\":\"agent-a\"%'",
    )
    .fetch_one(&mut lite)
    .await
    .unwrap();
    sqlx::query("UPDATE ledger SET line = replace(line, 'agent-a', 'agent-x') WHERE seq = ?")
        .bind(seq)
        .execute(&mut lite)
        .await
        .unwrap();
    lite.close().await.unwrap();

    let run = migrate_store(dir.path(), &with_password(&db.url)).await;
    assert!(!run.success);
    assert!(
        run.stderr
            .contains(&format!("the ledger does not verify at seq {seq}:"))
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    let (counts, head) = pg_state(&db.url).await;
    assert!(counts.iter().all(|(_, rows)| *rows == 0), "{counts:?}");
    assert_eq!(head, (0, GENESIS.to_owned(), 0));
    db.drop().await;
}

#[tokio::test]
async fn a_sqlite_store_of_another_version_is_refused_before_the_target_is_touched() {
    testkit::sqlite_only!("its source is a SQLite harness");
    let Some(db) = TestDatabase::create("migrate-store schema version").await else {
        return;
    };
    let h = Harness::start().await;
    h.pending().await;
    h.settle().await;
    let (dir, _) = h.stop().await;
    let mut lite = sqlite(dir.path()).await;
    let newest: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut lite)
        .await
        .unwrap();

    // Last used by an older countersign: a migration is missing.
    let saved: (String, Vec<u8>) =
        sqlx::query_as("SELECT description, checksum FROM _sqlx_migrations WHERE version = ?")
            .bind(newest)
            .fetch_one(&mut lite)
            .await
            .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(newest)
        .execute(&mut lite)
        .await
        .unwrap();
    let older = migrate_store(dir.path(), &db.url).await;
    assert!(!older.success);
    assert!(
        older.stderr.contains(&format!(
            "is older than this countersign (schema migration {newest}"
        )) && older
            .stderr
            .contains("start this version's server on it once"),
        "{}",
        older.stderr
    );

    // Last used by a newer one: a migration this build does not know.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?, ?, 1, ?, 0), (9999, 'from the future', 1, x'00', 0)",
    )
    .bind(newest)
    .bind(&saved.0)
    .bind(&saved.1)
    .execute(&mut lite)
    .await
    .unwrap();
    lite.close().await.unwrap();
    let newer = migrate_store(dir.path(), &db.url).await;
    assert!(!newer.success);
    assert!(
        newer
            .stderr
            .contains("has schema migration 9999, which this countersign does not know"),
        "{}",
        newer.stderr
    );

    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut pg)
    .await
    .unwrap();
    assert_eq!(tables, 0, "the target was not touched");
    drop(pg);
    db.drop().await;
}
