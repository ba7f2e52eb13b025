//! Approval-to-executor-start latency on the embedded default: from the moment a reviewer's
//! deciding approval is sent until the approved action's HTTP executor call reaches the
//! service — the review call, the decision transaction, waking the execution loop, the digest
//! re-check (the payload opened), the `executing` transition, issuing and recording the
//! credential, and the executor's request.
//!
//! `cargo bench --bench execution_start`. Target (issue #6): p50 under 20 ms. `REQUESTS`
//! (default 200) requests are approved one at a time, each after its review is open.

use axum::http::HeaderMap;
use countersign::api::{State, Verdict};
use countersign::app::Server;
use countersign::cli::client::{AgentClient, ReviewerClient};
use countersign::config::{Agent, Reviewer, ServerConfig};
use countersign::request::AgentId;
use countersign::request::signature::AgentKey;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AGENT_KEY: &str = "bench-agent-key-0123456789abcdef0123456789";
const BOB: &str = "csr_bench_bob_token_0123456789abcdef";

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn service() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let app = axum::Router::new().route(
        "/run",
        axum::routing::post(move |headers: HeaderMap| {
            let at = Instant::now();
            let seen = seen.clone();
            async move {
                if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
                    seen.lock().unwrap().insert(key.to_owned(), at);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::embedded(dir.path().to_path_buf());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.agents.push(Agent {
        id: AgentId::parse("demo-agent").unwrap(),
        owners: vec!["alice".into()],
        keys: vec![AgentKey::new(AGENT_KEY.as_bytes().to_vec()).unwrap()],
    });
    config.reviewers.push(Reviewer {
        name: "bob".into(),
        token_sha256: Sha256::digest(BOB.as_bytes()).into(),
        email: None,
    });
    let server = Server::start(&config).await.unwrap();
    let url = server.url();
    let (target, arrivals) = service().await;
    server
        .local_forge()
        .commit_files(
            "main",
            &[(
                "policies/actions.toml",
                &format!(
                    "[actions.\"db.export\"]\nexecutor = {{ type = \"http\", url = \"{target}/run\" }}\naudience = \"bench\"\nidempotent = true\n"
                ),
            )],
            "bench actions",
        )
        .unwrap();
    server.engine.refresh_policy().await.unwrap();
    let agent = AgentClient::new(
        &url,
        "demo-agent",
        AgentKey::new(AGENT_KEY.as_bytes().to_vec()).unwrap(),
    );
    let bob = ReviewerClient::new(&url, BOB);
    let mut latencies = Vec::with_capacity(requests);
    let mut review_calls = Vec::with_capacity(requests);
    for i in 0..requests {
        let body = serde_json::to_vec(&json!({
            "kind": "action", "action": "db.export", "resource": "prod/customers",
            "environment": "prod", "justification": "benchmark",
            "payload": {"table": "customers", "limit": 500, "n": i, "where": {"email": "ann@example.com"}},
        }))
        .unwrap();
        let a = agent.submit(&body, None).await.unwrap();
        let id = a.id.as_str().to_owned();
        agent
            .wait_for(&id, Duration::from_secs(20), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
        let sent = Instant::now();
        let r = bob.review(&id, Verdict::Approve, None).await.unwrap();
        review_calls.push(sent.elapsed());
        assert_eq!(r.state, State::Approved);
        let arrived = loop {
            if let Some(at) = arrivals.lock().unwrap().get(&id) {
                break *at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        // The first few warm up connections and caches.
        if i >= 5 {
            latencies.push(arrived.duration_since(sent));
        }
    }
    latencies.sort();
    review_calls.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "approval → executor start over {} approvals: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p50 < 20 ms)",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
    println!(
        "  of which the approving review call itself: p50 {:.2} ms",
        ms(percentile(&review_calls, 0.5))
    );
    server.stop().await.unwrap();
}
