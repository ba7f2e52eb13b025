//! The PostgreSQL store on a real PostgreSQL (issue 15, in progress): its schema matches the
//! SQLite one column for column, replicas appending to the ledger at once still make one
//! gap-free chain, a replayed signature is refused whichever replica saw it first, a
//! credential is used once however many replicas are asked, one replica holds a leader lease
//! and a paused old leader is fenced, the review inbox keeps one copy of a redelivery and one
//! of several concurrent cancellations wins, twenty claims of one approved request start one
//! attempt, intake, reviews and expiry through three replicas keep replay protection,
//! idempotency and single transitions, notifications and callbacks are claimed by one replica
//! until the claim expires, and a schema from a newer version is refused. Each test gets a
//! fresh database (`testkit::postgres`).

use countersign::api::{self, Verdict};
use countersign::app::Server;
use countersign::config::{DatabaseUrl, ServerConfig};
use countersign::forge::ReviewRef;
use countersign::ledger::entry::{GENESIS, check_line};
use countersign::mask::Masker;
use countersign::request::{AgentId, Digest, RequestId, State};
use countersign::store::credentials::NewCredential;
use countersign::store::execution::{Attempt, Finish};
use countersign::store::{
    CredentialStore, ExecutionStore, FenceError, Held, InsertOutcome, LedgerStore, NewRequest,
    NewReview, NotifyStore, PgStore, RequestStore, ReviewInboxStore, ReviewRow, Store, Synchronous,
    TransitionError,
};
use serde_json::{Map, Value, json};
use sqlx::Connection as _;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use testkit::postgres::TestDatabase;
use testkit::{BOB, CAROL, Harness, wait_until};

fn masker() -> Arc<Masker> {
    Arc::new(Masker::new(None, None))
}

async fn replicas(db: &TestDatabase, n: usize) -> Vec<PgStore> {
    let mut out = Vec::new();
    for i in 0..n {
        let store = PgStore::open(&db.url, masker()).await.unwrap();
        out.push(store.named(&format!("replica-{i}")));
    }
    out
}

fn refusal_fields(reason: &str) -> Map<String, Value> {
    match json!({ "reason": reason, "contact": "ops@example.com" }) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn the_postgres_schema_has_the_same_tables_and_columns_as_the_sqlite_one() {
    let Some(db) = TestDatabase::create("postgres schema").await else {
        return;
    };
    let pg = PgStore::open(&db.url, masker()).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let pg_columns: BTreeSet<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .collect();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("countersign.db");
    let sqlite = Store::open(&file, Synchronous::Normal, masker())
        .await
        .unwrap();
    sqlite.close().await;
    let mut lite = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let sqlite_columns: BTreeSet<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(&mut lite)
    .await
    .unwrap()
    .into_iter()
    .collect();

    assert!(sqlite_columns.len() > 50, "{sqlite_columns:?}");
    let missing: Vec<_> = sqlite_columns.difference(&pg_columns).collect();
    assert!(missing.is_empty(), "missing on PostgreSQL: {missing:?}");
    // PostgreSQL has more, for replicas: the ledger head every append locks, the leader
    // leases, and the claims on queue rows any replica may send.
    let extra: Vec<_> = pg_columns
        .difference(&sqlite_columns)
        .filter(|(table, column)| {
            table != "ledger_head"
                && table != "leases"
                && table != "replicas"
                && column != "claimed_by"
                && column != "claim_until"
        })
        .collect();
    assert!(extra.is_empty(), "only on PostgreSQL: {extra:?}");
    pg.close().await;
    drop(conn);
    db.drop().await;
}

#[tokio::test]
async fn three_replicas_appending_at_once_make_one_gap_free_chain_and_share_replay_protection() {
    let Some(db) = TestDatabase::create("postgres ledger chain").await else {
        return;
    };
    let stores = replicas(&db, 3).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (r, store) in stores.iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            tasks.spawn(async move {
                for i in 0..25 {
                    let fresh = store
                        .record_intake_refusal(
                            &RequestId::generate(),
                            "agent-a",
                            &format!("sig-{r}-{t}-{i}"),
                            i64::MAX,
                            1_700_000_000_000 + i,
                            refusal_fields("policy_denied"),
                        )
                        .await
                        .unwrap();
                    assert!(fresh);
                }
                0
            });
        }
        // The same signature through every replica at once: stored once.
        let store = store.clone();
        tasks.spawn(async move {
            let fresh = store
                .record_intake_refusal(
                    &RequestId::generate(),
                    "agent-a",
                    "the-same-signature",
                    i64::MAX,
                    1_700_000_000_000,
                    refusal_fields("replayed"),
                )
                .await
                .unwrap();
            usize::from(fresh)
        });
    }
    let mut shared_signature_stored = 0;
    while let Some(done) = tasks.join_next().await {
        shared_signature_stored += done.unwrap();
    }
    assert_eq!(shared_signature_stored, 1);

    let entries = stores[1].ledger_after(0, 10_000).await.unwrap();
    assert_eq!(entries.len(), 3 * 4 * 25 + 1, "one entry per refusal");
    assert_eq!(stores[2].ledger_last_seq().await.unwrap(), 301);
    let mut prev = GENESIS.to_owned();
    let mut last_at = 0;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "gap-free and in order");
        assert_eq!(e.prev, prev, "entry {} chains to the one before", e.seq);
        let checked = check_line(&e.line).unwrap_or_else(|err| panic!("entry {}: {err}", e.seq));
        assert_eq!(checked.hash, e.hash);
        assert!(!e.line.contains("ops@example.com"), "entries are masked");
        assert!(e.at_ms >= last_at, "timestamps never run backwards");
        last_at = e.at_ms;
        prev = e.hash.clone();
    }
    assert_eq!(
        stores[0].ledger_hash(301).await.unwrap().as_deref(),
        Some(prev.as_str())
    );
    let replayed: Vec<_> = entries
        .iter()
        .filter(|e| e.line.contains("\"replayed\""))
        .collect();
    assert_eq!(replayed.len(), 1, "one replica stored the shared signature");
    let of_request = stores[0].ledger_of(&replayed[0].request_id).await.unwrap();
    assert_eq!(of_request.len(), 1);
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn a_credential_is_used_once_whichever_replicas_are_asked() {
    let Some(db) = TestDatabase::create("postgres credentials").await else {
        return;
    };
    let stores = replicas(&db, 3).await;
    let request = RequestId::generate();
    stores[0]
        .record_credential(&NewCredential {
            jti: "01JTESTJTI",
            request_id: request.as_str(),
            agent_id: "agent-a",
            audience: "https://deploy.example",
            scope: "deploy:prod:web",
            issued_at_ms: 1_000,
            expires_at_ms: 601_000,
        })
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = stores[i % 3].clone();
        tasks.spawn(async move { store.consume_credential("01JTESTJTI", 5_000).await.unwrap() });
    }
    let mut used = 0;
    while let Some(done) = tasks.join_next().await {
        used += usize::from(done.unwrap());
    }
    assert_eq!(used, 1, "exactly one introspection consumed it");
    let row = stores[2].credential("01JTESTJTI").await.unwrap().unwrap();
    assert_eq!(row.used_at, Some(5_000));
    assert!(
        !stores[1]
            .consume_credential("01JTESTJTI", 6_000)
            .await
            .unwrap()
    );
    assert!(
        !stores[1]
            .consume_credential("unknown", 6_000)
            .await
            .unwrap()
    );
    let entries = stores[1].ledger_of(request.as_str()).await.unwrap();
    let events: Vec<String> = entries
        .iter()
        .map(|e| check_line(&e.line).unwrap().event)
        .collect();
    assert_eq!(events, ["credential_issued", "credential_used"]);
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn a_schema_migrated_by_a_newer_version_is_refused_and_the_password_never_shown() {
    let Some(db) = TestDatabase::create("postgres newer schema").await else {
        return;
    };
    // A password in the URL (the local server trusts loopback, so it is not checked).
    let with_password =
        db.url
            .replacen("postgres://postgres@", "postgres://postgres:s3cret-pw@", 1);
    let store = PgStore::open(&with_password, masker()).await.unwrap();
    assert!(
        store.location().contains("countersign_test_"),
        "{}",
        store.location()
    );
    assert!(!store.location().contains("s3cret-pw"));
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let err = format!(
        "{:#}",
        PgStore::open(&with_password, masker()).await.err().unwrap()
    );
    assert!(err.contains("9999") && err.contains("newer"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
    let bad = format!(
        "{:#}",
        PgStore::open("postgres://u:s3cret-pw@[::1", masker())
            .await
            .err()
            .unwrap()
    );
    assert!(!bad.contains("s3cret-pw"), "{bad}");
    db.drop().await;
}

#[tokio::test]
async fn one_replica_leads_a_successor_takes_an_expired_lease_and_the_old_leader_is_fenced() {
    let Some(db) = TestDatabase::create("postgres leases").await else {
        return;
    };
    let stores = replicas(&db, 2).await;
    let (a, b) = (&stores[0], &stores[1]);
    let short = Duration::from_millis(300);
    let held_a = a.acquire_lease("leader", "replica-a", short).await.unwrap();
    assert_eq!(held_a, Some(Held { epoch: 1 }));
    let held_a = held_a.unwrap();
    assert_eq!(
        b.acquire_lease("leader", "replica-b", short).await.unwrap(),
        None,
        "held by a"
    );
    assert!(
        a.renew_lease("leader", "replica-a", &held_a, short)
            .await
            .unwrap()
    );

    // a stops renewing (paused): once the lease expires on the database's clock, b takes it.
    let held_b = wait_until(
        "b to take the expired lease",
        Duration::from_secs(10),
        async || {
            b.acquire_lease("leader", "replica-b", Duration::from_secs(30))
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(held_b, Held { epoch: 2 });

    // a wakes up: it cannot renew, and a write fenced by its epoch is refused whole.
    assert!(
        !a.renew_lease("leader", "replica-a", &held_a, short)
            .await
            .unwrap()
    );
    let probe = async |tx: &mut sqlx::Transaction<'static, sqlx::Postgres>| {
        sqlx::query("INSERT INTO write_probe (id, at) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET at = write_probe.at + 1")
            .execute(&mut **tx)
            .await
            .map(|_| ())
    };
    let refused = a.fenced("leader", &held_a, probe).await.unwrap_err();
    assert!(
        matches!(
            refused,
            FenceError::Superseded {
                held: 1,
                current: 2,
                ..
            }
        ),
        "{refused}"
    );
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let probes: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM write_probe")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(probes.0, 0, "the old leader wrote nothing");
    b.fenced("leader", &held_b, probe).await.unwrap();
    let probes: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM write_probe")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(probes.0, 1, "the leader's fenced write committed");

    // A lease given up at shutdown is taken at once, under a new epoch.
    b.release_lease("leader", "replica-b", &held_b)
        .await
        .unwrap();
    assert_eq!(
        a.acquire_lease("leader", "replica-a", short).await.unwrap(),
        Some(Held { epoch: 3 })
    );
    drop(conn);
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

/// A request under review on pull request #12, written straight into the database (the
/// PostgreSQL intake is not built yet).
async fn seed_pending_review(url: &str) -> RequestId {
    seed(url, "pending_review").await
}

async fn seed(url: &str, state: &str) -> RequestId {
    let id = RequestId::generate();
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO requests (id, agent_id, kind, action, resource, environment, digest, \
         submission, state, review_ref, created_at, updated_at, expires_at) \
         VALUES ($1, 'agent-a', 'action', 'deploy', 'web', 'prod', 'sha256:00', 'sealed', \
         $2, '12', 1, 1, 9999999999999)",
    )
    .bind(id.as_str())
    .bind(state)
    .execute(&mut conn)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn the_review_inbox_keeps_one_copy_of_a_delivery_and_one_cancellation_wins() {
    let Some(db) = TestDatabase::create("postgres inbox").await else {
        return;
    };
    let stores = replicas(&db, 3).await;
    let id = seed_pending_review(&db.url).await;

    // GitHub redelivers; the copies land on different replicas at once: one is queued.
    let mut tasks = tokio::task::JoinSet::new();
    for store in stores.clone() {
        tasks.spawn(async move {
            store
                .github_enqueue("delivery-1", "{\"review\":\"12\"}", Some(12), 10)
                .await
                .unwrap()
        });
    }
    let mut queued = 0;
    while let Some(done) = tasks.join_next().await {
        queued += usize::from(done.unwrap());
    }
    assert_eq!(queued, 1);
    assert!(
        stores[0]
            .github_enqueue("delivery-2", "{}", None, 20)
            .await
            .unwrap()
    );
    let pending = stores[1].github_pending(10).await.unwrap();
    let order: Vec<&str> = pending.iter().map(|r| r.delivery_id.as_str()).collect();
    assert_eq!(order, ["delivery-1", "delivery-2"]);
    stores[2]
        .github_processed(pending[0].seq, "applied", 30)
        .await
        .unwrap();
    assert_eq!(stores[0].github_pending(10).await.unwrap().len(), 1);
    assert_eq!(
        stores[0].github_prune(1_000).await.unwrap(),
        1,
        "only the applied one"
    );

    let found = stores[1].request_by_review("12").await.unwrap().unwrap();
    assert_eq!(found.id, id.as_str());
    assert_eq!(stores[2].pending_reviews().await.unwrap().len(), 1);

    // The pull request is closed while replicas act on it: one cancellation is recorded.
    let mut tasks = tokio::task::JoinSet::new();
    for store in stores.clone() {
        let id = id.clone();
        tasks.spawn(async move {
            store
                .cancel(&id, "carol", &json!({ "reason": "closed" }), 40)
                .await
        });
    }
    let mut cancelled = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(()) => cancelled += 1,
            Err(TransitionError::Conflict(c)) => assert_eq!(c.actual, State::Cancelled),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(cancelled, 1);
    let withdrawn = stores[0]
        .withdraw_approvals(&id, None, "stale", "countersign", 50)
        .await;
    assert!(matches!(withdrawn, Err(TransitionError::Conflict(_))));
    let entries = stores[0].ledger_of(id.as_str()).await.unwrap();
    let events: Vec<String> = entries
        .iter()
        .map(|e| check_line(&e.line).unwrap().event)
        .collect();
    assert_eq!(events, ["cancelled"]);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (notices,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM notify_outbox WHERE event = 'cancelled'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(notices, 1, "one notification queued with it");
    drop(conn);
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn twenty_claims_of_one_approved_request_over_three_replicas_start_one_attempt() {
    let Some(db) = TestDatabase::create("postgres executions").await else {
        return;
    };
    let stores = replicas(&db, 3).await;
    let id = seed(&db.url, "approved").await;
    assert_eq!(stores[0].approved_unstarted(10).await.unwrap().len(), 1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (store, id) = (stores[i % 3].clone(), id.clone());
        tasks.spawn(async move {
            let attempt = format!("attempt-{i}");
            let begun = store
                .begin_execution(&Attempt {
                    id: &id,
                    attempt_id: &attempt,
                    executor: "http",
                    idempotent: false,
                    now_ms: 100,
                })
                .await;
            match begun {
                Ok(()) => Some(attempt),
                Err(TransitionError::Conflict(c)) => {
                    assert_eq!(c.actual, State::Executing);
                    None
                }
                Err(e) => panic!("{e}"),
            }
        });
    }
    let mut winners = Vec::new();
    while let Some(done) = tasks.join_next().await {
        winners.extend(done.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one attempt started: {winners:?}");
    let attempt = winners.pop().unwrap();
    // While the winner's claim holds, no replica takes the execution for an interrupted one.
    assert!(stores[1].executing().await.unwrap().is_empty());
    let holder = running_replica(&db.url, &id).await;
    let winner = stores
        .iter()
        .find(|s| s.replica() == holder)
        .unwrap()
        .clone();
    // Renewed, the claim keeps holding; once it lapses (its replica died), any replica sees it.
    let short = winner.clone().with_claim_ttl(Duration::from_millis(300));
    short
        .renew_execution_claims(&[id.as_str().to_owned()])
        .await
        .unwrap();
    assert!(stores[1].executing().await.unwrap().is_empty());
    wait_until("the claim to lapse", Duration::from_secs(10), async || {
        stores[1].executing().await.unwrap().len() == 1
    })
    .await;
    let running = stores[1].executing().await.unwrap();
    assert_eq!(running[0].1.attempt_id, attempt);

    fn finish<'a>(id: &'a RequestId, attempt: &'a str) -> Finish<'a> {
        Finish {
            id,
            attempt_id: Some(attempt),
            to: State::Succeeded,
            event: "execution_succeeded",
            detail: json!({ "attempt_id": attempt }),
            outcome: Some(json!({ "success": true })),
            callback: Some(("https://agent.example/cb".into(), "{}".into())),
            erase_with: Some("sealed-masked".into()),
            now_ms: 200,
        }
    }
    // An attempt that is not the running one cannot finish it.
    assert!(matches!(
        stores[2].finish_execution(finish(&id, "attempt-x")).await,
        Err(TransitionError::Conflict(_))
    ));
    stores[2]
        .finish_execution(finish(&id, &attempt))
        .await
        .unwrap();
    let callbacks = stores[0].due_callbacks(1_000, 10).await.unwrap();
    assert_eq!(callbacks.len(), 1);
    stores[1]
        .callback_attempted(callbacks[0].id, "delivered", 0, None, 300)
        .await
        .unwrap();
    assert_eq!(
        stores[0].callback_status(&id).await.unwrap(),
        Some(("delivered".to_owned(), 1, None))
    );
    let (requests, callbacks) = stores[2].state_counts().await.unwrap();
    assert!(
        requests.contains(&("succeeded".to_owned(), 1)),
        "{requests:?}"
    );
    assert!(
        callbacks.contains(&("delivered".to_owned(), 1)),
        "{callbacks:?}"
    );
    let events: Vec<String> = stores[0]
        .ledger_of(id.as_str())
        .await
        .unwrap()
        .iter()
        .map(|e| check_line(&e.line).unwrap().event)
        .collect();
    assert_eq!(events, ["execution_started", "execution_succeeded"]);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (submission, erased): (String, Option<i64>) =
        sqlx::query_as("SELECT submission, payload_erased_at FROM requests WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((submission.as_str(), erased), ("sealed-masked", Some(200)));
    drop(conn);
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

/// The replica holding the claim on `id`'s execution.
async fn running_replica(url: &str, id: &RequestId) -> String {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let (who,): (String,) =
        sqlx::query_as("SELECT claimed_by FROM executions WHERE request_id = $1")
            .bind(id.as_str())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    who
}

fn new_request(signature: &str, idempotency: Option<(&str, &str)>, expires_at: i64) -> NewRequest {
    let id = RequestId::generate();
    NewRequest {
        id: id.clone(),
        agent: AgentId::parse("agent-a").unwrap(),
        kind: "action",
        action: "deploy".into(),
        resource: "web".into(),
        environment: "prod".into(),
        digest: Digest::of_bytes(b"deploy web"),
        submission_json: "sealed".into(),
        now_ms: 1_000,
        expires_at,
        signature: signature.into(),
        signature_expires_at: i64::MAX,
        idempotency: idempotency.map(|(k, f)| (k.to_owned(), Digest::of_bytes(f.as_bytes()))),
        response: json!({ "id": id.as_str() }).to_string(),
        received: refusal_fields("received"),
        policy_decision: refusal_fields("needs_review"),
        policy_commit: "abc".into(),
        evaluation_json: "{}".into(),
    }
}

/// Runs `n` calls of `call` spread over the replicas at once and returns their results.
async fn on_replicas<T: Send + 'static, F>(stores: &[PgStore], n: usize, call: F) -> Vec<T>
where
    F: Fn(PgStore, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(call(stores[i % stores.len()].clone(), i));
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        out.push(done.unwrap());
    }
    out
}

#[tokio::test]
async fn intake_reviews_and_expiry_over_three_replicas_keep_every_invariant() {
    let Some(db) = TestDatabase::create("postgres requests").await else {
        return;
    };
    let stores = replicas(&db, 3).await;

    // Thirty submissions at once: all stored, two ledger entries each, one chain.
    let stored = on_replicas(&stores, 30, |s, i| {
        Box::pin(async move {
            s.insert_request(new_request(&format!("sig-{i}"), None, 9_999_999_999_999))
                .await
                .unwrap()
        })
    })
    .await;
    assert!(stored.iter().all(|o| matches!(o, InsertOutcome::Inserted)));
    let entries = stores[0].ledger_after(0, 1_000).await.unwrap();
    assert_eq!(entries.len(), 60);
    assert!(
        entries
            .windows(2)
            .all(|w| w[1].prev == w[0].hash && w[1].seq == w[0].seq + 1)
    );

    // One signature through three replicas: stored once, the others are replays.
    let replays = on_replicas(&stores, 3, |s, _| {
        Box::pin(async move {
            s.insert_request(new_request("same-signature", None, 9_999_999_999_999))
                .await
                .unwrap()
        })
    })
    .await;
    assert_eq!(
        replays
            .iter()
            .filter(|o| matches!(o, InsertOutcome::Inserted))
            .count(),
        1
    );
    assert_eq!(
        replays
            .iter()
            .filter(|o| matches!(o, InsertOutcome::Replay))
            .count(),
        2
    );

    // One idempotency key, freshly signed retries through three replicas: one stored, the
    // others answered with its response; other content under the key is refused.
    let retries = on_replicas(&stores, 3, |s, i| {
        Box::pin(async move {
            s.insert_request(new_request(
                &format!("retry-{i}"),
                Some(("key-1", "content")),
                9_999_999_999_999,
            ))
            .await
            .unwrap()
        })
    })
    .await;
    assert_eq!(
        retries
            .iter()
            .filter(|o| matches!(o, InsertOutcome::Inserted))
            .count(),
        1
    );
    assert_eq!(
        retries
            .iter()
            .filter(|o| matches!(o, InsertOutcome::Repeat(_)))
            .count(),
        2
    );
    let reused = stores[1]
        .insert_request(new_request(
            "other",
            Some(("key-1", "other content")),
            9_999_999_999_999,
        ))
        .await
        .unwrap();
    assert!(matches!(reused, InsertOutcome::KeyReused));
    let (_, ledger_rows) = stores[2].table_counts().await.unwrap()[5];
    assert_eq!(ledger_rows, 64, "refused submissions wrote nothing");

    // The review is opened once; twenty approvals over three replicas approve it once.
    let request = new_request("to-review", None, 9_999_999_999_999);
    let id = request.id.clone();
    stores[0].insert_request(request).await.unwrap();
    let opened = on_replicas(&stores, 2, |s, _| {
        let id = id.clone();
        Box::pin(async move {
            let review = ReviewRef {
                reference: "7".into(),
                head: "abc".into(),
                url: "http://review/7".into(),
            };
            s.review_opened(&id, &review, 2_000, None).await.is_ok()
        })
    })
    .await;
    assert_eq!(opened.iter().filter(|ok| **ok).count(), 1);
    let decided = on_replicas(&stores, 20, |s, i| {
        let id = id.clone();
        Box::pin(async move {
            let reviewer = format!("reviewer-{i}");
            let digest = Digest::of_bytes(b"deploy web");
            let review = NewReview {
                reviewer: &reviewer,
                teams: &[],
                decision: "approve",
                reason: None,
                digest: digest.as_str(),
                detail: None,
            };
            let two_approvals = |all: &[ReviewRow]| (all.len() >= 2).then_some(State::Approved);
            s.record_review(&id, review, 3_000, &two_approvals).await
        })
    })
    .await;
    let approved = decided
        .iter()
        .filter(|r| matches!(r, Ok(State::Approved)))
        .count();
    let recorded = decided
        .iter()
        .filter(|r| matches!(r, Ok(State::PendingReview)))
        .count();
    assert_eq!((recorded, approved), (1, 1), "{decided:?}");
    assert_eq!(stores[1].reviews(&id).await.unwrap().len(), 2);
    let events: Vec<String> = stores[2]
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events,
        [
            "received",
            "policy_decision",
            "review_opened",
            "approval_recorded",
            "approved"
        ]
    );

    // Expiry through three replicas at once: each due request expires once.
    for i in 0..5 {
        stores[0]
            .insert_request(new_request(&format!("short-{i}"), None, 1_500))
            .await
            .unwrap();
    }
    let expired = on_replicas(&stores, 3, |s, _| {
        Box::pin(async move { s.expire_due(5_000).await.unwrap() })
    })
    .await;
    let mut ids: Vec<String> = expired
        .into_iter()
        .flatten()
        .map(|id| id.as_str().to_owned())
        .collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!((total, ids.len()), (5, 5), "each of the five expired once");
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn a_notification_or_callback_is_claimed_by_one_replica_until_its_claim_expires() {
    let Some(db) = TestDatabase::create("postgres claims").await else {
        return;
    };
    let stores: Vec<PgStore> = replicas(&db, 3)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.named(&format!("replica-{i}")))
        .collect();
    let id = seed_pending_review(&db.url).await;
    // Cancelling queues a notification (and its ledger entry); routing makes two deliveries.
    stores[0]
        .cancel(&id, "carol", &json!({ "reason": "closed" }), 10)
        .await
        .unwrap();
    let unrouted = stores[1].notify_unrouted(10).await.unwrap();
    assert_eq!(unrouted.len(), 1);
    let targets = ["slack".to_owned(), "teams".to_owned()];
    // Routed twice (two replicas, or a retry after a crash): still one delivery per target.
    stores[1]
        .notify_route(&unrouted[0], &targets, 20)
        .await
        .unwrap();
    stores[2]
        .notify_route(&unrouted[0], &targets, 20)
        .await
        .unwrap();
    assert!(stores[0].notify_unrouted(10).await.unwrap().is_empty());

    // Three replicas ask for due work at once: each delivery goes to one of them.
    let claimed = on_replicas(&stores, 3, |s, _| {
        Box::pin(async move { s.notify_due(1_000, 10).await.unwrap() })
    })
    .await;
    let mut all: Vec<String> = claimed.iter().flatten().map(|d| d.target.clone()).collect();
    all.sort();
    assert_eq!(
        all,
        ["slack", "teams"],
        "each delivery claimed once: {claimed:?}"
    );
    // Settled by its claimer: gone from the queue; the other stays claimed, not due again.
    let slack = claimed
        .iter()
        .flatten()
        .find(|d| d.target == "slack")
        .unwrap();
    stores[0].notify_sending(slack, 30).await.unwrap();
    stores[0]
        .notify_settled(slack, "delivered", Some("1700000000.0001"), None, 40)
        .await
        .unwrap();
    assert!(stores[1].notify_due(1_000, 10).await.unwrap().is_empty());
    assert_eq!(stores[2].notify_counts().await.unwrap(), (1, 0));

    // A callback is claimed once too; its claim ends when the attempt is recorded.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("INSERT INTO callbacks (request_id, url, body, next_attempt_at) VALUES ($1, 'https://agent.example/cb', '{}', 0)")
        .bind(id.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    let due = on_replicas(&stores, 3, |s, _| {
        Box::pin(async move { s.due_callbacks(1_000, 10).await.unwrap() })
    })
    .await;
    assert_eq!(due.iter().flatten().count(), 1, "{due:?}");
    let callback = due.into_iter().flatten().next().unwrap();
    stores[1]
        .callback_attempted(callback.id, "pending", 0, Some("timeout"), 50)
        .await
        .unwrap();
    assert_eq!(
        stores[2].due_callbacks(1_000, 10).await.unwrap().len(),
        1,
        "due again"
    );

    // A replica that dies holding a claim: once the claim expires, another takes the row.
    sqlx::query("UPDATE notify_deliveries SET claim_until = 0 WHERE target = 'teams'")
        .execute(&mut conn)
        .await
        .unwrap();
    let taken = stores[2].notify_due(1_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].target, "teams");
    let (holder,): (String,) =
        sqlx::query_as("SELECT claimed_by FROM notify_deliveries WHERE target = 'teams'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(holder, "replica-2");
    drop(conn);
    for s in &stores {
        s.close().await;
    }
    db.drop().await;
}

async fn readiness(h: &Harness) -> api::Readiness {
    h.http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn on_postgres(url: &str, replica: &str) -> impl FnOnce(&mut ServerConfig) {
    let (url, replica) = (url.to_owned(), replica.to_owned());
    move |c| {
        c.database_url = Some(DatabaseUrl::parse(url).unwrap());
        c.replica_name = Some(replica);
    }
}

#[tokio::test]
async fn a_server_on_postgres_merges_an_approved_change_and_refuses_a_second_replica() {
    let Some(db) = TestDatabase::create("postgres server").await else {
        return;
    };
    let h = Harness::start_with(on_postgres(&db.url, "replica-a")).await;
    let change = serde_json::to_vec(&json!({
        "kind": "change", "action": "apply", "resource": "gitops", "environment": "prod",
        "justification": "document the on-call rota",
        "changes": [{"path": "policies/ONCALL.md", "content": "# On call\n\n- bob\n"}],
    }))
    .unwrap();
    let (id, _) = h.pending_with(&change).await;
    for reviewer in [BOB, CAROL] {
        h.reviewer(reviewer)
            .review(&id, Verdict::Approve, None)
            .await
            .unwrap();
    }
    let done = h.wait_state(&h.agent_a(), &id, api::State::Succeeded).await;
    assert_eq!(done.execution.unwrap().executor, "merge");
    let entries = h.ledger_synced().await;
    let events: Vec<&str> = entries
        .iter()
        .filter(|e| e["request_id"] == id.as_str())
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(events.contains(&"execution_succeeded"), "{events:?}");

    // A second server on the same database is refused, naming the replica that runs.
    let other = tempfile::tempdir().unwrap();
    let mut c = testkit::config(other.path());
    on_postgres(&db.url, "replica-b")(&mut c);
    let refused = format!("{:#}", Server::start(&c).await.err().expect("refused"));
    assert!(
        refused.contains("replica-a") && refused.contains("only one replica may"),
        "{refused}"
    );

    let ready = readiness(&h).await;
    assert_eq!(ready.status, api::ReadyStatus::Ready);
    assert_eq!(
        (
            ready.replica.name.as_str(),
            ready.replica.role,
            ready.replica.lease_epoch
        ),
        ("replica-a", api::Role::Leader, Some(1))
    );

    // Stopped gracefully, it gives the lease up: it starts again at once and still has it all.
    let h = h.restart_with(on_postgres(&db.url, "replica-a")).await;
    wait_until(
        "the restarted server to lead",
        Duration::from_secs(30),
        async || h.server.leads(),
    )
    .await;
    let status = h.agent_a().status(&id).await.unwrap();
    assert_eq!(status.state, api::State::Succeeded);
    assert_eq!(
        readiness(&h).await.replica.lease_epoch,
        Some(2),
        "a new epoch"
    );
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("countersign_leader 1") && metrics.contains("countersign_lease_epoch 2"),
        "{metrics}"
    );
    h.server.stop().await.unwrap();
    db.drop().await;
}

#[tokio::test]
async fn a_database_reached_over_tls_is_checked_against_the_given_ca_and_encrypted() {
    let Some(server) = testkit::postgres::OwnServer::start_tls("postgres tls") else {
        return;
    };
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url,
        server.ca_file().display()
    );
    let pg = PgStore::open(&url, masker())
        .await
        .expect("TLS with the right CA");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (encrypted,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(encrypted, "the session is encrypted");
    drop(conn);
    pg.close().await;

    // The certificate is checked: a CA the server's certificate does not chain to is refused.
    let unchecked = format!("{}?sslmode=verify-full", server.url);
    let refused = format!(
        "{:#}",
        PgStore::open(&unchecked, masker())
            .await
            .err()
            .expect("refused")
    );
    assert!(
        refused.contains("cannot connect") && refused.contains("127.0.0.1"),
        "{refused}"
    );
}

#[tokio::test]
async fn one_batch_of_submissions_stores_a_repeated_signature_once_and_chains_every_entry() {
    let Some(db) = TestDatabase::create("postgres intake batch").await else {
        return;
    };
    let store = PgStore::open(&db.url, masker()).await.unwrap();
    // Sent together, they share a group commit: ten copies of one signature, ten distinct
    // ones, and a keyed one.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..21 {
        let store = store.clone();
        tasks.spawn(async move {
            let new = match i {
                0..10 => new_request("the-same-signature", None, i64::MAX),
                10..20 => new_request(&format!("signature-{i}"), None, i64::MAX),
                _ => new_request("keyed-signature", Some(("key-1", "fingerprint")), i64::MAX),
            };
            (i, store.insert_request(new).await.unwrap())
        });
    }
    let (mut same, mut distinct) = (vec![], vec![]);
    while let Some(done) = tasks.join_next().await {
        let (i, outcome) = done.unwrap();
        let inserted = matches!(outcome, InsertOutcome::Inserted);
        match i {
            0..10 => same.push(inserted),
            10..20 => distinct.push(inserted),
            _ => assert!(inserted, "{outcome:?}"),
        }
        if !inserted {
            assert!(matches!(outcome, InsertOutcome::Replay), "{outcome:?}");
        }
    }
    assert_eq!(
        same.iter().filter(|i| **i).count(),
        1,
        "one signature, stored once"
    );
    assert!(distinct.iter().all(|i| *i));
    let counts: std::collections::BTreeMap<&str, i64> =
        store.table_counts().await.unwrap().into_iter().collect();
    assert_eq!(
        (counts["requests"], counts["events"], counts["ledger"]),
        (12, 24, 24)
    );
    let entries = store.ledger_after(0, 100).await.unwrap();
    let mut prev = GENESIS.to_owned();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
        let checked = check_line(&e.line).unwrap();
        assert_eq!(checked.prev, prev);
        prev = checked.hash;
    }
    store.close().await;
    db.drop().await;
}
