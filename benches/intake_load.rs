//! Load benchmark: signed intake to durable 202 against the release binary.
//!
//! `cargo bench --bench intake_load` starts `countersign serve` (release build, embedded
//! default: SQLite + local git) as a separate process, then drives it from this process with
//! 32 concurrent keep-alive clients: first signed `POST /v1/requests` (every call freshly
//! signed, so replay protection is exercised), then unsigned `GET /healthz` on the same server,
//! and prints throughput, latency percentiles and the ratio between the two, plus how long the
//! background worker needs to open every review in git.
//!
//! Settings (environment): BENCH_SECONDS (default 10), BENCH_CLIENTS (default 32).
//! BENCH_POSTGRES (a `postgres://` URL of a database to create a fresh one from): the servers
//! run on PostgreSQL instead, behind the testkit's fake GitHub (in this process, on its own
//! thread), BENCH_REPLICAS of them (default 1) sharing the database; the clients spread
//! their calls over every replica. BENCH_DRAIN_WAIT (default 900): how many seconds to wait
//! for the reviews of the accepted requests to be opened.

use countersign::cli::client::AgentClient;
use countersign::request::signature::{self, AgentKey};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Every signed call gets a distinct body, so no two calls ever share a signature.
static SEQ: AtomicU64 = AtomicU64::new(0);
use std::time::{Duration, Instant};

const KEY: &str = "bench-agent-key-0123456789abcdef0123456789abcdef";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    name: &'static str,
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.name,
            self.ok,
            self.errors,
            self.rate(),
            self.pct(0.50),
            self.pct(0.90),
            self.pct(0.99),
            self.pct(1.0)
        )
    }
}

async fn drive(
    name: &'static str,
    clients: usize,
    duration: Duration,
    send: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>,
    expect: u16,
) -> (Phase, Option<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (stop, send) = (stop.clone(), send.clone());
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut errors, mut last_id) = (0usize, None);
            let _ = c;
            while !stop.load(Ordering::Relaxed) {
                let n = SEQ.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match send(n).send().await {
                    Ok(r) if r.status().as_u16() == expect => {
                        let body = r.bytes().await.unwrap_or_default();
                        lat.push(t.elapsed().as_micros() as u64);
                        if expect == 202 && n.is_multiple_of(64) {
                            last_id = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["id"].as_str().map(str::to_owned));
                        }
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors, last_id)
        });
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase {
        name,
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: vec![],
    };
    let mut last = None;
    while let Some(r) = tasks.join_next().await {
        let (lat, errors, id) = r.expect("client task");
        phase.ok += lat.len();
        phase.errors += errors;
        phase.latencies_us.extend(lat);
        last = id.or(last);
    }
    phase.elapsed = started.elapsed();
    phase.latencies_us.sort_unstable();
    (phase, last)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("intake_load: run with `cargo bench --bench intake_load`");
        return;
    }
    let seconds = env_or("BENCH_SECONDS", 10);
    let clients = env_or("BENCH_CLIENTS", 32) as usize;
    let drain_wait = env_or("BENCH_DRAIN_WAIT", 900);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.key"), KEY).unwrap();
    let postgres = std::env::var("BENCH_POSTGRES").ok();
    let replicas = env_or("BENCH_REPLICAS", 1) as usize;
    let (configs, database) = match &postgres {
        None => (vec![sqlite_config(dir.path())], None),
        Some(admin) => {
            let (url, name) = create_database(admin);
            let configs = (0..replicas)
                .map(|i| postgres_config(dir.path(), &url, i))
                .collect();
            (configs, Some((admin.clone(), name)))
        }
    };
    let mut servers: Vec<std::process::Child> = vec![];
    let mut urls = vec![];
    for config in &configs {
        let mut server = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "--log-level",
                "warn",
                "serve",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start countersign");
        let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        urls.push(first.rsplit(' ').next().unwrap().to_owned());
        std::thread::spawn(move || for _ in lines {});
        servers.push(server);
    }
    let url = urls[0].clone();
    let backend = match &postgres {
        None => format!(
            "SQLite (sqlite_synchronous={}), local git",
            std::env::var("COUNTERSIGN_SQLITE_SYNCHRONOUS").unwrap_or_else(|_| "normal".into())
        ),
        Some(_) => format!("PostgreSQL, {replicas} replica(s), fake GitHub"),
    };

    // The load generator gets one thread; the server process has the rest of the machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
        let key = AgentKey::new(KEY.as_bytes().to_vec()).unwrap();
        let post_urls: Vec<String> = urls.iter().map(|u| format!("{u}/v1/requests")).collect();
        let (h2, u2) = (http.clone(), post_urls);
        let intake: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync> = Arc::new(move |n| {
            let body = format!(
                r#"{{"kind":"action","action":"db.export","resource":"prod/customers","environment":"prod","justification":"load test","payload":{{"n":{n},"table":"orders","limit":100}}}}"#
            );
            let ts = countersign::time::now_secs();
            let sig = signature::sign(&key, ts, "POST", "/v1/requests", body.as_bytes());
            h2.post(&u2[n as usize % u2.len()])
                .header("content-type", "application/json")
                .header("x-countersign-agent", "bench-agent")
                .header("x-countersign-timestamp", ts.to_string())
                .header("x-countersign-signature", sig)
                .body(body)
        });
        let health_urls: Vec<String> = urls.iter().map(|u| format!("{u}/healthz")).collect();
        let h3 = http.clone();
        let health: Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync> =
            Arc::new(move |n| h3.get(&health_urls[n as usize % health_urls.len()]));

        let _ = drive("warm-up", clients, Duration::from_secs(1), intake.clone(), 202).await;
        let (signed, last) = drive("signed POST /v1/requests → 202", clients, Duration::from_secs(seconds), intake, 202).await;
        let drain_started = Instant::now();
        let (unsigned, _) = drive("unsigned GET /healthz", clients, Duration::from_secs(seconds), health, 200).await;

        // How far behind the git worker is: wait for the last sampled request's review.
        let agent = AgentClient::new(&url, "bench-agent", AgentKey::new(KEY.as_bytes().to_vec()).unwrap());
        let drained = match &last {
            Some(id) => agent
                .wait_for(id, Duration::from_secs(drain_wait), |s| s.state == countersign::api::State::PendingReview)
                .await
                .map(|_| drain_started.elapsed())
                .ok(),
            None => None,
        };

        println!("\nintake_load: {clients} concurrent clients, {seconds} s per phase, server = release binary, {backend}");
        println!("| phase | ok | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|---|---|");
        println!("{}", signed.row());
        println!("{}", unsigned.row());
        println!("\nratio signed intake / unsigned healthz throughput: {:.2}", signed.rate() / unsigned.rate());
        match drained {
            Some(d) => println!(
                "background review opening caught up {:.1} s after intake stopped (incl. the healthz phase)",
                d.as_secs_f64()
            ),
            None => println!("background review opening had not caught up {drain_wait} s after intake stopped"),
        }
        // Issue 15's targets: SQLite >= 5,000 req/s with p99 < 20 ms; PostgreSQL >= 2,000 req/s.
        let (rate, p99) = if postgres.is_none() { (5000.0, 20.0) } else { (2000.0, f64::INFINITY) };
        let pass = signed.rate() >= rate && signed.pct(0.99) < p99 && signed.errors == 0;
        println!("target (>= {rate} req/s, p99 < {p99} ms, no errors): {}", if pass { "MET" } else { "NOT MET" });
    });
    for mut server in servers {
        let _ = server.kill();
        let _ = server.wait();
    }
    if let Some((admin, name)) = database {
        drop_database(&admin, &name);
    }
}

/// The embedded default: SQLite and the local repository with its example policy, plus the
/// bench agent in agents.toml.
fn sqlite_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("countersign.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[agents]]\nid = \"bench-agent\"\nkeys = [{{ file = {:?} }}]\n",
            dir.join("data").display().to_string(),
            dir.join("agent.key").display().to_string()
        ),
    )
    .unwrap();
    let forge =
        countersign::forge::LocalForge::open(&dir.join("data/repo.git"), "main", true, "", false)
            .unwrap();
    forge
        .commit_files(
            "main",
            &[("policies/agents.toml", BENCH_AGENTS)],
            "bench agent",
        )
        .unwrap();
    config
}

const BENCH_AGENTS: &str =
    "[agents.bench-agent]\nowners = []\nallowed = [\"actions/db.export/**\"]\n";

/// Replica `i` on PostgreSQL at `url`, behind the fake GitHub (started on first use), sharing
/// the keys every replica must share.
fn postgres_config(dir: &std::path::Path, url: &str, i: usize) -> std::path::PathBuf {
    static GITHUB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let github = GITHUB.get_or_init(|| start_fake_github(dir));
    let replica = dir.join(format!("r{i}"));
    std::fs::create_dir_all(&replica).unwrap();
    std::fs::write(dir.join("payload.key"), "5".repeat(64)).unwrap();
    let config = replica.join("countersign.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\ndatabase_url = {url:?}\n\
             replica_name = \"bench-{i}\"\njwt_keys_dir = {jwt:?}\n\
             payload_key = {{ file = {payload:?} }}\n\n\
             [[agents]]\nid = \"bench-agent\"\nkeys = [{{ file = {agent:?} }}]\n\n\
             [ledger]\nkey_file = {ledger:?}\n\n[github]\n{github}",
            data = replica.join("data").display().to_string(),
            jwt = dir.join("jwt").display().to_string(),
            payload = dir.join("payload.key").display().to_string(),
            agent = dir.join("agent.key").display().to_string(),
            ledger = dir.join("ledger_ed25519").display().to_string(),
        ),
    )
    .unwrap();
    config
}

/// The fake GitHub with the example policy (and the bench agent), on a thread of its own;
/// returns the `[github]` section pointing at it.
fn start_fake_github(dir: &std::path::Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let files = [
                ("README.md", "# gitops\n"),
                (
                    "policies/CODEOWNERS",
                    include_str!("../policies/CODEOWNERS"),
                ),
                (
                    "policies/policy.toml",
                    include_str!("../policies/policy.toml"),
                ),
                ("policies/agents.toml", BENCH_AGENTS),
                (
                    "policies/teams.toml",
                    include_str!("../policies/teams.toml"),
                ),
                (
                    "policies/actions.toml",
                    include_str!("../policies/actions.toml"),
                ),
            ];
            let fake = testkit::fake_github::FakeGitHub::builder()
                .repo(
                    testkit::fake_github::REPO,
                    testkit::fake_github::BASE,
                    &files,
                )
                .start()
                .await;
            tx.send(fake.countersign_toml(&dir, "")).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Creates a fresh database next to `admin`'s; returns its URL and name.
fn create_database(admin: &str) -> (String, String) {
    use sqlx::{Connection as _, Executor as _};
    let name = format!("countersign_bench_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("BENCH_POSTGRES answers");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
    });
    let (server, _) = admin
        .rsplit_once('/')
        .expect("BENCH_POSTGRES ends in /<database>");
    (format!("{server}/{name}"), name)
}

fn drop_database(admin: &str, name: &str) {
    use sqlx::{Connection as _, Executor as _};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    });
}
