//! The executors against real processes and a real HTTP server on loopback: the command gets
//! the payload on stdin, the credential in its variable and nothing else from our environment;
//! a slow command is killed at its timeout with its whole process group; exit codes, big and
//! secret-bearing output; the HTTP call's body, bearer token, Idempotency-Key and templates;
//! 5xx, timeouts and refused connections without the URL's query.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use countersign::execute::{
    CommandSpec, ExecutorSpec, HttpSpec, Invocation, OUTPUT_LIMIT, Outcome, TRUNCATED, run,
};
use countersign::mask::Masker;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ0ZXN0In0.c2lnbmF0dXJlLXRlc3Q";
const REQUEST_ID: &str = "cr_01JEXECUTORTEST0000000000";
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPL3";

fn fields() -> BTreeMap<String, String> {
    [
        ("action", "deploy"),
        ("resource", "svc-payments"),
        ("environment", "prod"),
        ("agent", "agent-1"),
        ("request_id", REQUEST_ID),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn execute(spec: ExecutorSpec, payload: &Value) -> Outcome {
    spec.validate().expect("a valid spec");
    let fields = fields();
    let inv = Invocation {
        request_id: REQUEST_ID,
        payload,
        token: TOKEN,
        fields: &fields,
    };
    run(&spec, &inv, &Masker::default()).await
}

fn command(argv: &[&str], timeout: Duration) -> ExecutorSpec {
    ExecutorSpec::Command(CommandSpec {
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        cwd: None,
        token_env: "DEPLOY_TOKEN".into(),
        env: [("MODE".to_owned(), "fast".to_owned())].into(),
        path: "/usr/bin:/bin".into(),
        timeout,
    })
}

fn sh(script: &str, timeout: Duration) -> ExecutorSpec {
    command(&["/bin/sh", "-c", script], timeout)
}

fn assert_clean(outcome: &Outcome) {
    let all = format!("{} {:?}", outcome.output, outcome.error);
    assert!(!all.contains(TOKEN), "the credential leaked: {all}");
    assert!(
        !all.contains(&TOKEN[..20]),
        "part of the credential leaked: {all}"
    );
}

#[tokio::test]
async fn command_gets_payload_on_stdin_and_only_its_own_environment() {
    // The canary must be in countersign's own environment, which only a process of its own can
    // set safely: the test runs again in a child process with it.
    if testkit::child::rerun_with_env(
        "execute::command_gets_payload_on_stdin_and_only_its_own_environment",
        &[("COUNTERSIGN_TEST_CANARY", "canary-value-1")],
    ) {
        return;
    }
    assert_eq!(
        std::env::var("COUNTERSIGN_TEST_CANARY").as_deref(),
        Ok("canary-value-1"),
        "countersign's own environment has the canary"
    );
    let payload = json!({"replicas": 3, "image": "registry/app:1.2"});
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("env; echo ---; cat; echo; pwd", Duration::from_secs(10));
    if let ExecutorSpec::Command(c) = &mut spec {
        c.cwd = Some(dir.path().to_owned());
    }
    let outcome = execute(spec, &payload).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.exit_status, Some(0));
    assert_eq!(outcome.signal, None);
    assert_eq!(outcome.error, None);
    let (env, rest) = outcome.output.split_once("---\n").unwrap();
    let mut vars: Vec<&str> = env
        .lines()
        .map(|l| l.split_once('=').unwrap().0)
        // The shell adds its own bookkeeping variables.
        .filter(|v| !["PWD", "SHLVL", "_", "OLDPWD"].contains(v))
        .collect();
    vars.sort();
    assert_eq!(
        vars,
        ["COUNTERSIGN_REQUEST_ID", "DEPLOY_TOKEN", "MODE", "PATH"]
    );
    assert!(env.contains("DEPLOY_TOKEN=[credential]\n"), "{env}");
    assert!(env.contains(&format!("COUNTERSIGN_REQUEST_ID={REQUEST_ID}\n")));
    assert!(env.contains("PATH=/usr/bin:/bin\n"));
    assert!(env.contains("MODE=fast\n"));
    assert!(!outcome.output.contains("canary"));
    let (stdin, cwd) = rest.split_once('\n').unwrap();
    assert_eq!(serde_json::from_str::<Value>(stdin).unwrap(), payload);
    assert_eq!(
        std::fs::canonicalize(cwd.trim()).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
    assert_clean(&outcome);
}

/// Whether a pid is gone (or only a zombie waiting for its new parent to reap it).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(')').unwrap().1.trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

#[tokio::test]
async fn slow_command_and_its_grandchild_are_killed_at_the_timeout() {
    let started = Instant::now();
    let outcome = execute(
        sh("sleep 30 & echo $!; sleep 30", Duration::from_secs(1)),
        &json!({}),
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!outcome.success);
    assert_eq!(outcome.signal, Some(9));
    assert_eq!(outcome.exit_status, None);
    assert_eq!(
        outcome.error.as_deref(),
        Some("timed out after 1s (process group killed)")
    );
    assert!(outcome.duration_ms >= 1000, "{outcome:?}");
    let grandchild: i32 = outcome.output.trim().parse().unwrap();
    testkit::wait_until(
        "the grandchild to be killed with its process group",
        Duration::from_secs(5),
        async || is_gone(grandchild),
    )
    .await;
}

#[tokio::test]
async fn non_zero_exit_is_a_failure_with_stderr() {
    let outcome = execute(
        sh("echo out; echo oops >&2; exit 3", Duration::from_secs(10)),
        &json!({}),
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(outcome.exit_status, Some(3));
    assert_eq!(outcome.error.as_deref(), Some("exited with status 3"));
    assert_eq!(outcome.output, "out\n[stderr]\noops\n");
}

#[tokio::test]
async fn a_missing_program_is_reported() {
    let outcome = execute(
        command(&["/nonexistent/deploy"], Duration::from_secs(5)),
        &json!({}),
    )
    .await;
    assert!(!outcome.success);
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("could not start /nonexistent/deploy"),
        "{error}"
    );
}

#[tokio::test]
async fn big_output_is_truncated_and_the_child_does_not_block() {
    // 1 MiB on stdout and stderr, far over the limit and a pipe's buffer.
    let outcome = execute(
        sh(
            "head -c 1048576 /dev/zero | tr '\\0' a; head -c 1048576 /dev/zero | tr '\\0' b >&2",
            Duration::from_secs(20),
        ),
        &json!({}),
    )
    .await;
    assert!(outcome.success, "{:?}", outcome.error);
    assert!(
        outcome.output.len() <= OUTPUT_LIMIT,
        "{}",
        outcome.output.len()
    );
    assert!(outcome.output.ends_with(TRUNCATED));
    assert!(outcome.output.starts_with("aaaa"));
}

#[tokio::test]
async fn secrets_and_the_credential_in_output_are_masked() {
    let script =
        format!("echo \"key {AWS_KEY}\"; echo \"token $DEPLOY_TOKEN\"; echo 'also {TOKEN}' >&2");
    let outcome = execute(sh(&script, Duration::from_secs(10)), &json!({})).await;
    assert!(outcome.success, "{outcome:?}");
    assert!(!outcome.output.contains(AWS_KEY), "{}", outcome.output);
    assert!(
        outcome.output.contains("token [credential]"),
        "{}",
        outcome.output
    );
    assert!(
        outcome.output.contains("also [credential]"),
        "{}",
        outcome.output
    );
    assert_clean(&outcome);
}

// ---- HTTP ----

#[derive(Default, Clone)]
struct Seen {
    calls: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn http(url: String, headers: &[(&str, &str)], timeout: Duration) -> ExecutorSpec {
    ExecutorSpec::Http(HttpSpec {
        method: "POST".into(),
        url,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        timeout,
    })
}

#[tokio::test]
async fn http_sends_body_bearer_idempotency_key_and_templated_url_and_headers() {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route(
            "/deploy/{resource}",
            post(
                |State(seen): State<Seen>,
                 Path(resource): Path<String>,
                 headers: HeaderMap,
                 body: axum::Json<Value>| async move {
                    seen.calls.lock().unwrap().push((resource, headers, body.0));
                    (
                        StatusCode::ACCEPTED,
                        format!("queued; echo Bearer {TOKEN}; key {AWS_KEY}"),
                    )
                },
            ),
        )
        .with_state(seen.clone());
    let base = serve(app).await;
    let payload = json!({"image": "registry/app:1.2", "replicas": 3});
    let outcome = execute(
        http(
            format!("{base}/deploy/{{{{ resource }}}}?env={{{{ environment }}}}"),
            &[("X-Action", "{{ action }}/{{ agent }}")],
            Duration::from_secs(10),
        ),
        &payload,
    )
    .await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.http_status, Some(202));
    assert_eq!(outcome.error, None);
    assert!(
        outcome
            .output
            .starts_with("queued; echo Bearer [credential]"),
        "{}",
        outcome.output
    );
    assert!(!outcome.output.contains(AWS_KEY));
    assert_clean(&outcome);

    let calls = seen.calls.lock().unwrap();
    let (resource, headers, body) = &calls[0];
    assert_eq!(calls.len(), 1);
    assert_eq!(resource, "svc-payments");
    assert_eq!(body, &payload);
    assert_eq!(headers["authorization"], format!("Bearer {TOKEN}").as_str());
    assert_eq!(headers["idempotency-key"], REQUEST_ID);
    assert_eq!(headers["x-action"], "deploy/agent-1");
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn http_5xx_is_a_failure_with_its_status() {
    let app = axum::Router::new().route(
        "/",
        post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
    );
    let base = serve(app).await;
    let outcome = execute(
        http(format!("{base}/"), &[], Duration::from_secs(10)),
        &json!({}),
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(outcome.http_status, Some(503));
    assert_eq!(outcome.output, "down for maintenance");
    assert_eq!(
        outcome.error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
}

#[tokio::test]
async fn http_timeout_is_reported() {
    let app = axum::Router::new().route(
        "/",
        post(|| async {
            // A service slower than the executor's timeout.
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    );
    let base = serve(app).await;
    let started = Instant::now();
    let outcome = execute(
        http(format!("{base}/"), &[], Duration::from_secs(1)),
        &json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!outcome.success);
    assert_eq!(outcome.http_status, None);
    assert_eq!(outcome.error.as_deref(), Some("timed out after 1s"));
    assert!(
        outcome.outcome_unknown,
        "the call was sent: the target may have acted on it"
    );
}

#[tokio::test]
async fn refused_connection_error_has_no_url_query_or_credential() {
    // A port that was just free: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let outcome = execute(
        http(
            format!("http://127.0.0.1:{port}/hook?sig=s3cr3t-query-value&r={{{{ resource }}}}"),
            &[],
            Duration::from_secs(5),
        ),
        &json!({}),
    )
    .await;
    assert!(!outcome.success);
    assert_eq!(outcome.http_status, None);
    let error = outcome.error.clone().unwrap();
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(!error.contains("s3cr3t"), "{error}");
    assert!(!error.contains("/hook"), "{error}");
    assert!(!error.contains("svc-payments"), "{error}");
    assert!(
        !outcome.outcome_unknown,
        "nothing was sent: a clean failure"
    );
    assert_clean(&outcome);
}
