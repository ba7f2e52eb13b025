//! countersign as a token issuer, checked from the outside: a resource service running on
//! loopback fetches the JWKS over HTTP and verifies tokens with its own code (ed25519-dalek,
//! not countersign's verifier); introspection over HTTP (RFC 7662, single use); discovery and
//! JWKS shapes; key rotation; key files 0600; no token in the database or the logs.

use testkit::jwt_check::verify_independently;
use testkit::logs;
use testkit::*;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign::api::{Discovery, IntrospectionAnswer, Jwks};
use countersign::credentials::{Grant, Issued};
use countersign::request::{AgentId, Digest, RequestId};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;

const CLIENT_TOKEN: &str = "cstc_resource_service_token_0123456789";
const AUDIENCE: &str = "https://warehouse.internal";

async fn harness() -> Harness {
    Harness::start_with(|c| {
        c.token_clients = vec![countersign::config::TokenClient {
            name: "warehouse".into(),
            token_sha256: Sha256::digest(CLIENT_TOKEN.as_bytes()).into(),
        }];
    })
    .await
}

fn grant(digest: &Digest, audience: &str, ttl: Option<Duration>) -> Grant {
    Grant {
        agent: AgentId::parse("agent-a").unwrap(),
        audience: audience.into(),
        ttl,
        request_id: RequestId::generate(),
        digest: digest.clone(),
        action: "db.export".into(),
        resource: "prod/customers".into(),
        environment: "prod".into(),
        approvers: vec!["alice".into()],
    }
}

async fn issue(h: &Harness, g: &Grant) -> Issued {
    h.server.engine.credentials().issue(g).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// The resource service: independent code trusting countersign only through its published keys.

struct Service {
    countersign: String,
    audience: &'static str,
    http: reqwest::Client,
}

/// `POST /apply` with `Authorization: Bearer <jwt>` and `X-Digest`: 200 with the claims, or the
/// refusal's status and reason. The JWKS and issuer are fetched over HTTP on every call.
async fn apply(State(s): State<Arc<Service>>, headers: HeaderMap) -> (StatusCode, String) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let token = get("authorization")
        .strip_prefix("Bearer ")
        .unwrap_or("")
        .to_owned();
    let fetch = |path: &'static str| {
        let (http, url) = (s.http.clone(), format!("{}{path}", s.countersign));
        async move { http.get(url).send().await?.json::<Value>().await }
    };
    let (Ok(discovery), Ok(jwks)) = (
        fetch("/.well-known/openid-configuration").await,
        fetch("/.well-known/jwks.json").await,
    ) else {
        return (StatusCode::BAD_GATEWAY, "issuer unreachable".into());
    };
    // Independent code: the service reads the discovery document as any JSON.
    let issuer = discovery["issuer"].as_str().unwrap_or("");
    match verify_independently(&token, &jwks, issuer, s.audience, &get("x-digest")) {
        Ok(claims) => (StatusCode::OK, claims.to_string()),
        Err(refusal) => refusal,
    }
}

async fn start_service(countersign: &str, audience: &'static str) -> String {
    let service = Arc::new(Service {
        countersign: countersign.to_owned(),
        audience,
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .route("/apply", axum::routing::post(apply))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn call_service(h: &Harness, service: &str, token: &str, digest: &Digest) -> (u16, String) {
    let r = h
        .http
        .post(format!("{service}/apply"))
        .bearer_auth(token)
        .header("x-digest", digest.as_str())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `POST /v1/tokens/introspect`: the status and the raw body (an [`IntrospectionAnswer`] or
/// an error body; see [`active`]).
async fn introspect(h: &Harness, auth: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut req = h
        .http
        .post(format!("{}/v1/tokens/introspect", h.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The introspection answer in a raw body.
fn active(answer: &Value) -> IntrospectionAnswer {
    serde_json::from_value(answer.clone()).unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_and_jwks_are_published_for_relying_parties() {
    let h = harness().await;
    let r = h
        .http
        .get(format!("{}/.well-known/openid-configuration", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "max-age=300");
    let d: Discovery = r.json().await.unwrap();
    assert_eq!(d.issuer, h.url);
    assert_eq!(d.jwks_uri, format!("{}/.well-known/jwks.json", h.url));
    assert_eq!(
        d.introspection_endpoint,
        format!("{}/v1/tokens/introspect", h.url)
    );
    assert_eq!(d.id_token_signing_alg_values_supported, ["EdDSA"]);
    assert!(d.claims_supported.iter().any(|c| c == "digest"));

    let r = h
        .http
        .get(format!("{}/.well-known/jwks.json", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "max-age=300");
    let raw: Value = r.json().await.unwrap();
    // On the wire on purpose: a JWK has exactly these members (RFC 7517; nothing private).
    assert_eq!(
        raw["keys"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["alg", "crv", "kid", "kty", "use", "x"]
    );
    let jwks: Jwks = serde_json::from_value(raw).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let k = &jwks.keys[0];
    assert_eq!((k.kty.as_str(), k.crv.as_str()), ("OKP", "Ed25519"));
    assert_eq!((k.alg.as_str(), k.use_.as_str()), ("EdDSA", "sig"));
    assert_eq!(URL_SAFE_NO_PAD.decode(&k.x).unwrap().len(), 32);
    assert_eq!(k.kid, h.server.engine.credentials().current_kid().as_str());
}

#[tokio::test]
async fn a_resource_service_accepts_only_a_valid_token_for_its_audience_and_digest() {
    let h = harness().await;
    let service = start_service(&h.url, AUDIENCE).await;
    let digest = Digest::of_bytes(b"the approved export");
    let issued = issue(&h, &grant(&digest, AUDIENCE, None)).await;

    let (status, body) = call_service(&h, &service, &issued.token, &digest).await;
    assert_eq!(status, 200, "{body}");
    let claims: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims["sub"], "agent:agent-a");
    assert_eq!(claims["jti"], issued.jti.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    for claim in [
        "request_id",
        "action",
        "resource",
        "environment",
        "approvers",
        "nbf",
    ] {
        assert!(!claims[claim].is_null(), "{claim}");
    }

    // The same token presented for other content.
    let other = Digest::of_bytes(b"something else");
    let (status, body) = call_service(&h, &service, &issued.token, &other).await;
    assert_eq!((status, body.as_str()), (403, "bound to other content"));

    // A token for another audience.
    let elsewhere = issue(&h, &grant(&digest, "https://other.internal", None)).await;
    let (status, body) = call_service(&h, &service, &elsewhere.token, &digest).await;
    assert_eq!((status, body.as_str()), (403, "wrong audience"));

    // Tampered: claims changed (signature kept), and signature changed.
    let parts: Vec<&str> = issued.token.split('.').collect();
    let mut claims_json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims_json["resource"] = json!("prod/everything");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims_json.to_string()),
        parts[2]
    );
    let (status, body) = call_service(&h, &service, &forged, &digest).await;
    assert_eq!((status, body.as_str()), (401, "bad signature"));
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    let (status, _) = call_service(&h, &service, &flipped, &digest).await;
    assert_eq!(status, 401);
    // countersign's introspection agrees.
    let (_, answer) = introspect(&h, Some(CLIENT_TOKEN), &[("token", &forged)]).await;
    assert_eq!(answer, json!({ "active": false }));

    // Expired: a one-second token, presented after it ran out.
    let short = issue(&h, &grant(&digest, AUDIENCE, Some(Duration::from_secs(1)))).await;
    assert_eq!(short.expires_at - short.issued_at, 1);
    // A JWT is checked against the verifier's own clock (the system's, not the engine's), so
    // real seconds pass here (about 7 s): waited for as a condition.
    wait_until(
        "the service to call the one-second token expired",
        Duration::from_secs(10),
        async || call_service(&h, &service, &short.token, &digest).await == (401, "expired".into()),
    )
    .await;
    // Beyond the 5 s leeway, introspection calls it inactive too.
    wait_until(
        "introspection to call the token inactive",
        Duration::from_secs(15),
        async || {
            let (_, answer) = introspect(&h, Some(CLIENT_TOKEN), &[("token", &short.token)]).await;
            answer == json!({ "active": false })
        },
    )
    .await;
    let elapsed = countersign::time::now_secs() - short.expires_at;
    assert!(
        elapsed >= 5,
        "inactive only beyond the leeway ({elapsed} s)"
    );

    // Lifetimes above an hour are refused outright.
    let long = grant(&digest, AUDIENCE, Some(Duration::from_secs(3601)));
    assert!(h.server.engine.credentials().issue(&long).await.is_err());
}

#[tokio::test]
async fn introspection_answers_rfc_7662_and_a_consumed_token_is_inactive() {
    let h = harness().await;
    let digest = Digest::of_bytes(b"content");
    let g = grant(&digest, AUDIENCE, Some(Duration::from_secs(120)));
    let issued = issue(&h, &g).await;
    let token = issued.token.as_str();

    let (status, answer) = introspect(&h, Some(CLIENT_TOKEN), &[("token", token)]).await;
    assert_eq!(status, 200, "{answer}");
    let answer = active(&answer);
    assert!(answer.active);
    assert_eq!(answer.sub.as_deref(), Some("agent:agent-a"));
    assert_eq!(answer.aud.as_deref(), Some(AUDIENCE));
    assert_eq!(answer.iss.as_deref(), Some(h.url.as_str()));
    assert_eq!(answer.jti.as_deref(), Some(issued.jti.as_str()));
    assert_eq!(answer.exp, Some(issued.expires_at));
    assert_eq!(answer.token_type.as_deref(), Some("Bearer"));
    assert_eq!(answer.client_id.as_deref(), Some("agent-a"));
    assert_eq!(
        answer.scope.as_deref(),
        Some("db.export:prod:prod/customers")
    );
    assert_eq!(answer.request_id.as_deref(), Some(g.request_id.as_str()));
    assert_eq!(answer.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(answer.approvers, Some(vec!["alice".to_owned()]));

    // Single use: the first consuming call answers active and marks it used.
    let form = [
        ("token", token),
        ("token_type_hint", "access_token"),
        ("consume", "true"),
    ];
    let (status, answer) = introspect(&h, Some(CLIENT_TOKEN), &form).await;
    assert_eq!((status, active(&answer).active), (200, true));
    // On the wire on purpose: an inactive token is only `{"active": false}` (RFC 7662 says
    // nothing more may be told), which the typed answer cannot show.
    let (_, answer) = introspect(&h, Some(CLIENT_TOKEN), &form).await;
    assert_eq!(answer, json!({ "active": false }));
    let (_, answer) = introspect(&h, Some(CLIENT_TOKEN), &[("token", token)]).await;
    assert_eq!(answer, json!({ "active": false }));

    // Unauthenticated or unknown callers, a missing token, another content type.
    let (status, answer) = introspect(&h, None, &[("token", token)]).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (401, "missing_token")
    );
    let (status, answer) = introspect(&h, Some(ALICE), &[("token", token)]).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (401, "invalid_token")
    );
    let (status, answer) = introspect(&h, Some(CLIENT_TOKEN), &[("consume", "true")]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(error_detail(&answer).message.contains("token"), "{answer}");
    let r = h
        .http
        .post(format!("{}/v1/tokens/introspect", h.url))
        .bearer_auth(CLIENT_TOKEN)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // The ledger knows the token by its id, audience, scope and expiry: nothing more.
    let entries = h
        .server
        .engine
        .store()
        .ledger_of(g.request_id.as_str())
        .await
        .unwrap();
    let lines: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::from_str(&e.line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let issued_line = lines[0].to_string();
    assert!(issued_line.contains("credential_issued") && issued_line.contains(&issued.jti));
    assert!(
        issued_line.contains(AUDIENCE) && issued_line.contains("db.export:prod:prod/customers")
    );
    assert!(lines[1].to_string().contains("credential_used"));
    for line in &lines {
        assert!(!line.to_string().contains(token.split('.').nth(2).unwrap()));
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_verifiable_across_restarts() {
    let h = harness().await;
    let service = start_service(&h.url, AUDIENCE).await;
    let digest = Digest::of_bytes(b"rotate");
    let credentials = h.server.engine.credentials().clone();
    let old_kid = credentials.current_kid();
    let before = issue(&h, &grant(&digest, AUDIENCE, None)).await;
    let new_kid = credentials.rotate().unwrap();
    assert_ne!(old_kid, new_kid);
    let after = issue(&h, &grant(&digest, AUDIENCE, None)).await;
    assert_eq!(
        (before.kid.as_str(), after.kid.as_str()),
        (old_kid.as_str(), new_kid.as_str())
    );
    let header = |t: &str| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header(&after.token)["kid"], new_kid.as_str());
    assert_eq!(header(&after.token)["typ"], "JWT");
    for token in [&before.token, &after.token] {
        let (status, body) = call_service(&h, &service, token, &digest).await;
        assert_eq!(status, 200, "{body}");
    }
    // Both keys are published, the newest first, and survive a restart (under the same
    // public URL, the `iss` of the tokens).
    let issuer = h.url.clone();
    let h = h
        .restart_with(|c| {
            c.public_url = Some(issuer);
            c.token_clients = vec![countersign::config::TokenClient {
                name: "warehouse".into(),
                token_sha256: Sha256::digest(CLIENT_TOKEN.as_bytes()).into(),
            }]
        })
        .await;
    assert_eq!(h.server.engine.credentials().current_kid(), new_kid);
    let jwks = h.server.engine.credentials().jwks();
    let kids: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    let (_, answer) = introspect(&h, Some(CLIENT_TOKEN), &[("token", &before.token)]).await;
    assert!(active(&answer).active, "{answer}");
}

#[test]
fn key_files_are_private_and_tokens_reach_neither_the_database_nor_the_logs() {
    testkit::sqlite_only!("reads the SQLite file and restarts on its data directory");
    logs::capture(|logs| async move {
        let h = harness().await;
        let digest = Digest::of_bytes(b"secrecy");
        let mut tokens = Vec::new();
        for _ in 0..3 {
            let issued = issue(&h, &grant(&digest, AUDIENCE, None)).await;
            let (_, answer) = introspect(
                &h,
                Some(CLIENT_TOKEN),
                &[("token", &issued.token), ("consume", "true")],
            )
            .await;
            assert!(active(&answer).active);
            tokens.push(issued.token.to_string());
        }
        let jwt_dir = h.dir.path().join("keys/jwt");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&jwt_dir), 0o700);
            let files: Vec<_> = std::fs::read_dir(&jwt_dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(files.len(), 1);
            assert!(files[0].to_str().unwrap().ends_with(".key"));
            assert_eq!(mode(&files[0]), 0o600);
        }
        let (dir, _) = h.stop().await;
        let mut stored = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                stored.extend(std::fs::read(&path).unwrap());
            }
        }
        let logs = logs.bytes();
        assert!(
            logs.windows(11).any(|w| w == b"credential "),
            "the logs were captured"
        );
        for token in &tokens {
            let signature = token.split('.').nth(2).unwrap().as_bytes();
            let claims = token.split('.').nth(1).unwrap().as_bytes();
            for (what, bytes) in [("database", &stored), ("logs", &logs)] {
                assert!(
                    !bytes.windows(signature.len()).any(|w| w == signature),
                    "token in {what}"
                );
                assert!(
                    !bytes.windows(claims.len()).any(|w| w == claims),
                    "token in {what}"
                );
            }
        }
    })
}
