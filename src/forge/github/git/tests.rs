//! The clone against real repositories: a `file://` origin, and an origin served over smart
//! HTTP by `git http-backend` behind basic auth, reached through our reqwest transport.

use super::*;
use crate::forge::ReviewRequest;
use crate::request::{AgentId, Digest, FileChange, Kind, RequestId};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;

const TOKEN: &str = "ghs_test_token";

/// A bare origin with `main` holding a policy file and a custom PR template.
fn origin(dir: &Path) -> (PathBuf, Oid) {
    let path = dir.join("origin.git");
    let repo = Repository::init_bare(&path).unwrap();
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (p, text) in [
        ("policies/CODEOWNERS", "* @acme/ops\n"),
        ("policies/nested/a.toml", "a = 1\n"),
        ("templates/pull_request.md.j2", "custom body for {{ id }}\n"),
    ] {
        update.upsert(p, repo.blob(text.as_bytes()).unwrap(), git2::FileMode::Blob);
    }
    let empty = repo.treebuilder(None).unwrap().write().unwrap();
    let tree = update
        .create_updated(&repo, &repo.find_tree(empty).unwrap())
        .unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let commit = repo
        .commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            "seed",
            &repo.find_tree(tree).unwrap(),
            &[],
        )
        .unwrap();
    (path, commit)
}

fn content(id: &RequestId, changes: &[FileChange]) -> ReviewContent {
    let agent = AgentId::parse("agent-a").unwrap();
    let digest = Digest::of_bytes(b"x");
    let payload = serde_json::json!({ "table": "orders" });
    ReviewContent::prepare(
        &ReviewRequest {
            id,
            agent: &agent,
            kind: if changes.is_empty() {
                Kind::Action
            } else {
                Kind::Change
            },
            action: "db.export",
            resource: "prod/customers",
            environment: "prod",
            justification: "report",
            payload: &payload,
            masking: "nothing masked",
            changes,
            digest: &digest,
            created_at_ms: 0,
            expires_at_ms: 0,
            evaluation: None,
            exclusions: None,
        },
        "github",
    )
}

fn branch_head(origin: &Path, branch: &str) -> Option<Oid> {
    let repo = Repository::open_bare(origin).unwrap();
    repo.find_reference(&format!("refs/heads/{branch}"))
        .ok()
        .map(|r| r.target().unwrap())
}

fn file_at(origin: &Path, commit: Oid, path: &str) -> String {
    let repo = Repository::open_bare(origin).unwrap();
    let tree = repo.find_commit(commit).unwrap().tree().unwrap();
    content::template_in_tree(&repo, &tree, path).unwrap()
}

#[tokio::test]
async fn push_review_is_idempotent_across_crashes_and_lost_clones() {
    let dir = tempfile::tempdir().unwrap();
    let (origin_path, base) = origin(dir.path());
    let url = format!("file://{}", origin_path.display());
    let timeout = Duration::from_secs(10);
    let mirror = Mirror::open(&dir.path().join("clone.git"), &url, "main", timeout).unwrap();
    assert!(!mirror.needs_token());
    let id = RequestId::generate();
    let changes = [FileChange {
        path: "deploy/app.yaml".into(),
        content: "replicas: 3\n".into(),
    }];

    let pushed = mirror
        .push_review(None, content(&id, &changes))
        .await
        .unwrap();
    let branch = format!("countersign/{id}");
    assert_eq!(branch_head(&origin_path, &branch), Some(pushed.head));
    assert_eq!(pushed.description, format!("custom body for {id}"));
    let repo = Repository::open_bare(&origin_path).unwrap();
    let commit = repo.find_commit(pushed.head).unwrap();
    assert_eq!(commit.parent_id(0).unwrap(), base);
    assert_eq!(
        file_at(&origin_path, pushed.head, "deploy/app.yaml"),
        "replicas: 3\n"
    );
    let record_path = content(&id, &changes).record_path;
    let record: serde_json::Value =
        serde_json::from_str(&file_at(&origin_path, pushed.head, &record_path)).unwrap();
    assert_eq!(record["payload"]["table"], "orders");

    // The engine calls again after a crash: the pushed branch is found, nothing new is pushed.
    let again = mirror
        .push_review(None, content(&id, &changes))
        .await
        .unwrap();
    assert_eq!(again.head, pushed.head);
    assert_eq!(again.description, pushed.description);

    // Even with the local clone gone.
    let fresh = Mirror::open(&dir.path().join("clone2.git"), &url, "main", timeout).unwrap();
    let third = fresh
        .push_review(None, content(&id, &changes))
        .await
        .unwrap();
    assert_eq!(third.head, pushed.head);
    assert_eq!(branch_head(&origin_path, &branch), Some(pushed.head));
}

#[tokio::test]
async fn files_are_read_at_the_pinned_commit_fetching_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let (origin_path, base) = origin(dir.path());
    let url = format!("file://{}", origin_path.display());
    let mirror = Mirror::open(
        &dir.path().join("clone.git"),
        &url,
        "main",
        Duration::from_secs(10),
    )
    .unwrap();
    let files = mirror
        .read_files(None, &base.to_string(), "policies")
        .await
        .unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["policies/CODEOWNERS", "policies/nested/a.toml"]
    );
    assert_eq!(mirror.fetch_base(None).await.unwrap(), base.to_string());
    let missing = mirror
        .read_files(None, &base.to_string(), "nothing-here")
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert!(matches!(
        mirror.read_files(None, "zz", "policies").await,
        Err(ForgeError::Permanent(_))
    ));
}

/// `git http-backend` as CGI behind basic auth (`x-access-token:<TOKEN>`).
async fn http_backend(State(root): State<PathBuf>, request: Request) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
    );
    let authorised = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorised {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"git\"")
            .body(Body::empty())
            .unwrap();
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env(
            "CONTENT_TYPE",
            parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &body)
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout[..split.0]).to_string();
    let mut response = Response::builder();
    for line in head.lines() {
        let (k, v) = line.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("status") {
            let code: u16 = v.trim()[..3].parse().unwrap();
            response = response.status(code);
        } else {
            response = response.header(k.trim(), v.trim());
        }
    }
    response
        .body(Body::from(out.stdout[split.0 + split.1..].to_vec()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_fetches_over_smart_http_with_the_installation_token() {
    let dir = tempfile::tempdir().unwrap();
    let (origin_path, base) = origin(dir.path());
    let app = axum::Router::new()
        .fallback(http_backend)
        .with_state(dir.path().to_path_buf());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/origin.git");
    let mirror = Mirror::open(
        &dir.path().join("clone.git"),
        &url,
        "main",
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(mirror.needs_token());
    let token = || Some(Token::new(TOKEN.to_owned()));

    assert_eq!(mirror.fetch_base(token()).await.unwrap(), base.to_string());
    let id = RequestId::generate();
    let pushed = mirror
        .push_review(token(), content(&id, &[]))
        .await
        .unwrap();
    assert_eq!(
        branch_head(&origin_path, &format!("countersign/{id}")),
        Some(pushed.head)
    );
    let again = mirror
        .push_review(token(), content(&id, &[]))
        .await
        .unwrap();
    assert_eq!(again.head, pushed.head);

    // A wrong token is refused, and the error names neither the token nor the URL's secret.
    let e = mirror
        .fetch_base(Some(Token::new("ghs_wrong".into())))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401"), "{e}");
    assert!(!e.contains("ghs_"), "{e}");
    let e = mirror
        .push_review(None, content(&RequestId::generate(), &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401"), "{e}");
}
