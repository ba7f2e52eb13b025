//! Rate-limit and backoff decisions, and the retry loop against a scripted loopback server.

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn wait(status: u16, h: &[(&'static str, &str)], body: &str, waits: u32) -> Option<Duration> {
    rate_limit_wait(
        StatusCode::from_u16(status).unwrap(),
        &headers(h),
        body.as_bytes(),
        1_000,
        &RetryPolicy::default(),
        waits,
    )
}

#[test]
fn retry_after_wins() {
    assert_eq!(
        wait(
            403,
            &[("retry-after", "7"), ("x-ratelimit-remaining", "0")],
            "",
            0
        ),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        wait(429, &[("retry-after", "0")], "", 0),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn primary_limit_waits_until_reset() {
    let h = [
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1030"),
    ];
    assert_eq!(wait(403, &h, "", 0), Some(Duration::from_secs(31)));
    assert_eq!(wait(429, &h, "", 0), Some(Duration::from_secs(31)));
    // A reset in the past still waits a moment.
    let h = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "10")];
    assert_eq!(wait(403, &h, "", 0), Some(Duration::from_secs(1)));
}

#[test]
fn secondary_limit_from_the_body_waits_a_minute_and_doubles() {
    let body = r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
    let h = [("x-ratelimit-remaining", "4000")];
    assert_eq!(wait(403, &h, body, 0), Some(Duration::from_secs(60)));
    assert_eq!(wait(403, &h, body, 1), Some(Duration::from_secs(120)));
    assert_eq!(wait(403, &h, body, 9), Some(Duration::from_secs(960)));
    assert_eq!(wait(429, &[], "", 0), Some(Duration::from_secs(60)));
}

#[test]
fn permission_errors_are_not_rate_limits() {
    let h = [("x-ratelimit-remaining", "4999")];
    let body = r#"{"message":"Resource not accessible by integration"}"#;
    assert_eq!(wait(403, &h, body, 0), None);
    assert_eq!(wait(404, &[("retry-after", "5")], "", 0), None);
    assert_eq!(wait(200, &[("x-ratelimit-remaining", "0")], "", 0), None);
}

#[test]
fn decisions() {
    let p = RetryPolicy::default();
    let d = |s: u16, body: &str| {
        decide(
            StatusCode::from_u16(s).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            0,
            &p,
            0,
        )
    };
    assert_eq!(d(200, ""), Next::Done);
    assert_eq!(d(304, ""), Next::Done);
    assert_eq!(d(422, ""), Next::Done);
    assert_eq!(d(502, ""), Next::Retry);
    assert_eq!(d(503, ""), Next::Retry);
    assert_eq!(
        d(403, "secondary rate limit"),
        Next::Pause(Duration::from_secs(60))
    );
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let p = RetryPolicy::default();
    assert_eq!(backoff(1, &p, 0.0), Duration::from_millis(250));
    assert_eq!(backoff(1, &p, 1.0), Duration::from_millis(500));
    assert_eq!(backoff(2, &p, 0.0), Duration::from_millis(500));
    assert_eq!(backoff(3, &p, 0.5), Duration::from_millis(1500));
    assert_eq!(backoff(30, &p, 1.0), Duration::from_secs(30));
    assert_eq!(backoff(30, &p, 0.0), Duration::from_secs(15));
}

#[test]
fn client_errors_name_status_and_route_only() {
    let e = client_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "POST /repos/{owner}/{repo}/pulls",
    );
    assert!(matches!(e, ForgeError::Permanent(_)));
    assert_eq!(
        e.to_string(),
        "forge refused the operation: GitHub answered 422 Unprocessable Entity to POST /repos/{owner}/{repo}/pulls: GitHub refused the content"
    );
}

#[tokio::test]
async fn calls_are_counted_per_operation() {
    let ((), n) = count_calls(async {
        for _ in 0..3 {
            let _ = CALLS.try_with(|c| c.set(c.get() + 1));
        }
    })
    .await;
    assert_eq!(n, 3);
    // Outside a counted operation nothing happens.
    assert!(CALLS.try_with(|c| c.get()).is_err());
}

/// A loopback server answering from a script, one entry per request:
/// (status, headers, body, delay).
type Script = Vec<(u16, Vec<(&'static str, &'static str)>, &'static str, u64)>;

async fn scripted(script: Script) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let script = Arc::new(script);
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, h) = (script.clone(), hits.clone());
    let app = axum::Router::new().fallback(move || {
        let (script, hits) = (s.clone(), h.clone());
        async move {
            let i = hits.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
            let (status, headers, body, delay) = script[i].clone();
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut response = axum::response::Response::builder().status(status);
            for (k, v) in headers {
                response = response.header(k, v);
            }
            response.body(axum::body::Body::from(body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        secondary_wait: Duration::from_millis(20),
        max_inline_wait: Duration::from_secs(5),
    }
}

async fn get(rest: &Rest) -> Result<Reply, ForgeError> {
    let token = Token::new("t".into());
    let call = Call::new(
        Method::GET,
        "/repos/{owner}/{repo}",
        "/repos/a/b".into(),
        &token,
    );
    rest.send(&call).await
}

#[tokio::test]
async fn server_errors_and_secondary_limits_are_waited_out() {
    let secondary = r#"{"message":"You have exceeded a secondary rate limit"}"#;
    let (url, hits) = scripted(vec![
        (502, vec![], "", 0),
        (403, vec![], secondary, 0),
        (429, vec![("retry-after", "0")], "", 0),
        (200, vec![], "{}", 0),
    ])
    .await;
    let metrics = Arc::new(Metrics::new());
    let rest = Rest::new(&url, Duration::from_secs(5), quick(), Some(metrics.clone())).unwrap();
    // Three failures in a row, but only one of them counts against max_attempts.
    let (reply, calls) = count_calls(get(&rest)).await;
    assert_eq!(reply.unwrap().status, StatusCode::OK);
    assert_eq!(calls, 4);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 4);
    let text = metrics.render();
    for outcome in ["server_error", "rate_limited", "ok"] {
        assert!(
            text.contains(&format!(
                "countersign_github_api_calls_total{{route=\"GET /repos/{{owner}}/{{repo}}\",outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {text}"
        );
    }
}

#[tokio::test]
async fn attempts_are_bounded_and_client_errors_are_final() {
    let (url, hits) = scripted(vec![(503, vec![], "", 0)]).await;
    let rest = Rest::new(&url, Duration::from_secs(5), quick(), None).unwrap();
    let e = get(&rest).await.unwrap_err();
    assert!(matches!(e, ForgeError::Transient(_)), "{e}");
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);

    let (url, hits) = scripted(vec![(404, vec![], r#"{"message":"s3cret"}"#, 0)]).await;
    let rest = Rest::new(&url, Duration::from_secs(5), quick(), None).unwrap();
    let reply = get(&rest).await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let e = reply.ok("GET /repos/{owner}/{repo}").unwrap_err();
    assert!(matches!(e, ForgeError::Permanent(_)) && !e.to_string().contains("s3cret"));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let (url, hits) = scripted(vec![(200, vec![], "{}", 2_000), (200, vec![], "{}", 0)]).await;
    let rest = Rest::new(&url, Duration::from_millis(200), quick(), None).unwrap();
    assert_eq!(get(&rest).await.unwrap().status, StatusCode::OK);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn long_pauses_fail_fast_and_hold_every_call() {
    let (url, hits) = scripted(vec![
        (403, vec![("retry-after", "3600")], "", 0),
        (200, vec![], "{}", 0),
    ])
    .await;
    let rest = Rest::new(&url, Duration::from_secs(5), quick(), None).unwrap();
    let e = get(&rest).await.unwrap_err();
    assert!(
        matches!(e, ForgeError::Transient(_)) && e.to_string().contains("paused"),
        "{e}"
    );
    // The next call is not even sent while the pause lasts: nothing is lost, the engine
    // retries the work later.
    assert!(get(&rest).await.is_err());
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_used_up_primary_limit_pauses_the_next_call() {
    let (url, hits) = scripted(vec![
        (
            200,
            vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
            "{}",
            0,
        ),
        (200, vec![], "{}", 0),
    ])
    .await;
    let rest = Rest::new(&url, Duration::from_secs(5), quick(), None).unwrap();
    assert!(get(&rest).await.is_ok());
    // The reset is in the past: the pause is a second, waited out inline.
    let started = Instant::now();
    assert!(get(&rest).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}
