//! Execution against GitHub, through a real `Server` with `[github]` and the stateful fake
//! GitHub (`testkit::fake_github`); approvals go through the reviewer API. A
//! `github_workflow` action is dispatched once, with the inputs and ref it declares and a token
//! narrowed to one repository and `actions`; with `wait` its run is followed to `success`,
//! `failure` or the timeout (also when GitHub does not name the run); an action declaring
//! `github = {...}` gets a token with exactly those permissions (and the fake refuses anything
//! else); a `change` is squash-merged at the head it was reviewed on, and not at all when the
//! pull request moved; an action's pull request is merged after it succeeded; no token reaches
//! the logs, the outcomes, the ledger or anything GitHub shows.

use axum::extract::{Path as AxPath, State as AxState};
use axum::http::HeaderMap;
use countersign::api::{ExecutionOutcome, RequestStatus, State, Verdict};
use countersign::forge::Forge;
use countersign::request::RequestId;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::fake_github::{BASE, Builder, CallAuth, FULL_NAME};
use testkit::logs::{self, Logs};
use testkit::{GitHub, Setup, TEST_TEAMS_TOML, wait_until};

/// A raw payload value: it may reach the executor (and the workflow's inputs) but nothing
/// countersign writes itself.
const CANARY_EMAIL: &str = "canary.person@example.org";
const DISPATCHES: &str = "/repos/acme/gitops/actions/workflows/deploy.yml/dispatches";

const CODEOWNERS: &str = "[Ops]\n/actions/** @bob\n/deploy/** @bob\n";
const POLICY: &str = "[defaults]\nrisk = \"medium\"\n";
const AGENTS: &str = "[agents.agent-a]\nowners = []\nallowed = [\"actions/**\", \"deploy/**\"]\n";

// ---- setup -------------------------------------------------------------------------------------

/// A fake GitHub whose `main` holds the test policy and `actions` as `policies/actions.toml`
/// (plus whatever `more` adds), and a server with `[github]` pointing at it; approvals go
/// through the reviewer API (no webhooks).
async fn setup(actions: &str, more: impl FnOnce(Builder) -> Builder) -> Setup {
    let files = [
        ("README.md", "# gitops\n"),
        ("policies/CODEOWNERS", CODEOWNERS),
        ("policies/policy.toml", POLICY),
        ("policies/agents.toml", AGENTS),
        ("policies/teams.toml", TEST_TEAMS_TOML),
        ("policies/actions.toml", actions),
    ];
    let github = GitHub {
        files: files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect(),
        extra: String::new(),
        webhooks: false,
    };
    let workflow = |b: Builder| {
        b.workflow(
            "deploy.yml",
            "Deploy",
            &[("service", true), ("version", false), ("request", false)],
        )
    };
    Setup::github(github, |b| more(workflow(b)), |_| {}).await
}

/// The steps these tests take on a [`Setup`].
trait Steps {
    /// Submits, waits for the pull request, approves as bob; returns the id and the PR number.
    async fn approved(&self, body: Value) -> (String, u64);
    /// Submits and waits for the pull request; returns the id and the PR number.
    async fn pending(&self, body: Value) -> (String, u64);
    async fn approve(&self, id: &str);
    async fn final_state(&self, id: &str) -> RequestStatus;
    /// The ledger lines of a request (as committed to the ledger branch).
    async fn ledger(&self, id: &str) -> Vec<Value>;
    async fn events(&self, id: &str) -> Vec<String>;
    /// No installation token the fake ever saw (the broad one included) appears in the logs,
    /// in anything GitHub shows, or in these requests' status documents and ledger entries.
    async fn assert_no_token_leaked(&self, logs: &Logs, ids: &[&str]);
}

impl Steps for Setup {
    async fn approved(&self, body: Value) -> (String, u64) {
        let (id, pull) = self.pending(body).await;
        self.approve(&id).await;
        (id, pull)
    }

    async fn pending(&self, body: Value) -> (String, u64) {
        let answer = self
            .agent()
            .submit(&serde_json::to_vec(&body).unwrap(), None)
            .await
            .unwrap();
        let id = answer.id.as_str().to_owned();
        let status = self
            .agent()
            .wait_for(&id, Duration::from_secs(30), |s| {
                s.state == State::PendingReview
            })
            .await
            .unwrap();
        let pull: u64 = status.review.unwrap().reference.parse().unwrap();
        (id, pull)
    }

    async fn approve(&self, id: &str) {
        let r = self.bob().review(id, Verdict::Approve, None).await.unwrap();
        assert_eq!(r.state, State::Approved);
    }

    async fn final_state(&self, id: &str) -> RequestStatus {
        self.agent()
            .wait_for(id, Duration::from_secs(60), |s| {
                matches!(
                    s.state,
                    State::Succeeded | State::Failed | State::OutcomeUnknown
                )
            })
            .await
            .unwrap()
    }

    async fn ledger(&self, id: &str) -> Vec<Value> {
        let store = self.server.engine.store();
        let rows = store.ledger_of(id).await.unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(&r.line).unwrap())
            .collect()
    }

    async fn events(&self, id: &str) -> Vec<String> {
        let store = self.server.engine.store();
        let events = store.events(&RequestId::parse(id).unwrap()).await.unwrap();
        events.into_iter().map(|e| e.kind).collect()
    }

    async fn assert_no_token_leaked(&self, logs: &Logs, ids: &[&str]) {
        let tokens: std::collections::BTreeSet<String> = self
            .fake
            .calls()
            .iter()
            .filter_map(|c| c.token().map(str::to_owned))
            .collect();
        assert!(!tokens.is_empty());
        let mut texts = vec![logs.text()];
        for id in ids {
            let status = self.agent().status(id).await.unwrap();
            texts.push(serde_json::to_string(&status).unwrap());
            texts.extend(self.ledger(id).await.iter().map(Value::to_string));
        }
        for token in &tokens {
            assert!(
                self.fake.find_visible(token).is_empty(),
                "a token is visible on GitHub"
            );
            for text in &texts {
                assert!(!text.contains(token.as_str()), "a token leaked");
            }
        }
    }
}

/// The permissions and repositories the token of `call` had.
fn scope(auth: &CallAuth) -> (BTreeMap<String, String>, Option<Vec<String>>) {
    match auth {
        CallAuth::Installation {
            permissions,
            repositories,
            ..
        } => (permissions.clone(), repositories.clone()),
        other => panic!("not an installation token: {other:?}"),
    }
}

fn perms(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn only_gitops() -> Option<Vec<String>> {
    Some(vec![FULL_NAME.to_owned()])
}

/// What an execution ended with (`None` while it runs).
fn outcome_of(status: &RequestStatus) -> &ExecutionOutcome {
    let execution = status.execution.as_ref().expect("an execution");
    execution.outcome.as_ref().expect("an outcome")
}

/// The executor's output (the workflow executor prints a JSON object: its own format).
fn output_of(status: &RequestStatus) -> Value {
    serde_json::from_str(&outcome_of(status).output).unwrap()
}

fn deploy(action: &str, payload: Value) -> Value {
    json!({
        "kind": "action",
        "action": action,
        "resource": "api",
        "environment": "prod",
        "justification": "ship 1.4.2",
        "payload": payload,
    })
}

// ---- github_workflow ---------------------------------------------------------------------------

const WORKFLOW_ACTIONS: &str = r#"
[actions.deploy]
executor = { type = "github_workflow", workflow = "deploy.yml", inputs = { service = "{{ resource }}", version = "{{ payload.version }}", request = "{{ request_id }}" } }

[actions."deploy.wait"]
executor = { type = "github_workflow", workflow = "deploy.yml", inputs = { service = "{{ resource }}" }, wait = true, timeout = "30s", poll_interval = "100ms" }

[actions."deploy.short"]
executor = { type = "github_workflow", workflow = "deploy.yml", ref = "main", inputs = { service = "{{ resource }}" }, wait = true, timeout = "2s", poll_interval = "100ms" }
"#;

#[test]
fn a_workflow_is_dispatched_once_with_a_token_narrowed_to_actions() {
    logs::capture(|logs| async move {
        let s = setup(WORKFLOW_ACTIONS, |b| b).await;
        let (id, pull) = s
            .approved(deploy(
                "deploy",
                json!({ "version": "1.4.2", "contact": CANARY_EMAIL }),
            ))
            .await;
        let status = s.final_state(&id).await;
        assert_eq!(status.state, State::Succeeded, "{status:?}");
        let execution = status.execution.as_ref().unwrap();
        assert_eq!(execution.executor, "github_workflow", "{status:?}");

        // Dispatched once, with the inputs and the ref.
        let runs = s.fake.runs();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            runs[0].inputs,
            json!({ "service": "api", "version": "1.4.2", "request": id })
        );
        assert_eq!(runs[0].head_branch, BASE);
        let dispatches = s.fake.calls_to("POST", DISPATCHES);
        assert_eq!(dispatches.len(), 1);
        assert_eq!(dispatches[0].status, 200, "GitHub named the run");
        // With a token for this repository and `actions: write` only (GitHub adds metadata).
        let (granted, repositories) = scope(&dispatches[0].auth);
        assert_eq!(
            granted,
            perms(&[("actions", "write"), ("metadata", "read")])
        );
        assert_eq!(repositories, only_gitops());
        // Revoked once the dispatch was done.
        let token = dispatches[0].token().unwrap().to_owned();
        assert!(s.fake.with_state(|st| st.token(&token).is_none()));
        assert_eq!(
            s.fake
                .calls_to("DELETE", "/installation/token")
                .iter()
                .filter(|c| c.token() == Some(token.as_str()))
                .count(),
            1
        );

        // The outcome names the run.
        let outcome = outcome_of(&status);
        assert_eq!(outcome.http_status, Some(200), "{outcome:?}");
        let output = output_of(&status);
        assert_eq!(output["run_id"], runs[0].id, "{output}");
        assert_eq!(output["workflow"], "deploy.yml");
        assert_eq!(output["repository"], FULL_NAME);
        assert_eq!(output["ref"], BASE);
        assert!(
            output["run_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/actions/runs/{}", runs[0].id)),
            "{output}"
        );

        // The ledger records the token (kind, repository, permissions, expiry), never the token.
        let ledger = s.ledger(&id).await;
        let issued: Vec<&Value> = ledger
            .iter()
            .filter(|e| e["event"] == "credential_issued")
            .collect();
        assert_eq!(issued.len(), 1, "{ledger:?}");
        assert_eq!(issued[0]["kind"], "github_installation_token");
        assert_eq!(issued[0]["repository"], FULL_NAME);
        assert_eq!(
            issued[0]["permissions"],
            json!({ "actions": "write", "metadata": "read" })
        );
        assert!(issued[0]["expires_at"].is_string());
        assert_eq!(outcome.credential.as_deref(), issued[0]["id"].as_str());

        // After success, the action's pull request is merged (squash, narrowed token).
        wait_until(
            "the action's pull request to be merged",
            Duration::from_secs(40),
            async || s.fake.pull(pull).merged,
        )
        .await;
        let merges = s
            .fake
            .calls_to("PUT", &format!("/repos/acme/gitops/pulls/{pull}/merge"));
        assert_eq!(merges.len(), 1);
        let (granted, repositories) = scope(&merges[0].auth);
        assert_eq!(
            granted,
            perms(&[
                ("contents", "write"),
                ("metadata", "read"),
                ("pull_requests", "write")
            ])
        );
        assert_eq!(repositories, only_gitops());
        let main = s.fake.branch_sha(BASE).unwrap();
        assert_eq!(
            s.fake.pull(pull).merge_commit_sha.as_deref(),
            Some(main.as_str())
        );
        // The status shows the outcome last.
        let head = s.fake.pull(pull).head_sha;
        wait_until(
            "the last status to say \"approved and executed\"",
            Duration::from_secs(40),
            async || {
                s.fake
                    .statuses(&head)
                    .last()
                    .and_then(|st| st.description.clone())
                    == Some("approved and executed".to_owned())
            },
        )
        .await;

        s.assert_no_token_leaked(&logs, &[&id]).await;
        s.server.stop().await.unwrap();
    })
}

#[test]
fn waiting_follows_the_run_to_its_conclusion() {
    logs::capture(|logs| async move {
        let s = setup(WORKFLOW_ACTIONS, |b| b).await;

        // success: GitHub names the run; it is read with an `actions: read` token.
        s.fake.auto_finish_runs(Some("success"));
        let (ok, _) = s.approved(deploy("deploy.wait", json!({ "n": 0 }))).await;
        let status = s.final_state(&ok).await;
        assert_eq!(status.state, State::Succeeded, "{status:?}");
        let run = s.fake.runs()[0].clone();
        let output = output_of(&status);
        assert_eq!(
            (&output["run_id"], &output["status"], &output["conclusion"]),
            (&json!(run.id), &json!("completed"), &json!("success")),
            "{output}"
        );
        let reads = s.fake.calls_to(
            "GET",
            &format!("/repos/acme/gitops/actions/runs/{}", run.id),
        );
        assert!(!reads.is_empty());
        for read in &reads {
            let (granted, repositories) = scope(&read.auth);
            assert_eq!(granted, perms(&[("actions", "read"), ("metadata", "read")]));
            assert_eq!(repositories, only_gitops());
        }

        // failure, on a GitHub that does not name the run (204): found among the new runs.
        s.fake.dispatch_run_details(false);
        s.fake.auto_finish_runs(Some("failure"));
        let (failed, _) = s.approved(deploy("deploy.wait", json!({ "n": -1 }))).await;
        let status = s.final_state(&failed).await;
        assert_eq!(status.state, State::Failed, "{status:?}");
        let outcome = outcome_of(&status);
        assert_eq!(outcome.http_status, Some(204));
        let second = s.fake.runs()[1].clone();
        assert!(
            outcome
                .error
                .as_deref()
                .unwrap()
                .contains(&format!("workflow run {} concluded `failure`", second.id)),
            "{outcome:?}"
        );
        assert_eq!(output_of(&status)["run_id"], second.id);

        // timeout: the run never completes.
        s.fake.auto_finish_runs(None);
        let (slow, _) = s.approved(deploy("deploy.short", json!({}))).await;
        let status = s.final_state(&slow).await;
        assert_eq!(status.state, State::Failed, "{status:?}");
        let error = outcome_of(&status).error.as_deref().unwrap();
        assert!(error.contains("timed out after 2s"), "{error}");
        assert_eq!(s.fake.runs().len(), 3, "each request dispatched once");
        assert_eq!(s.fake.calls_to("POST", DISPATCHES).len(), 3);

        // Two requests of one workflow at once, GitHub naming neither run: each finds its own.
        s.fake.auto_finish_runs(Some("success"));
        let (a, _) = s.pending(deploy("deploy.wait", json!({ "n": 1 }))).await;
        let (b, _) = s.pending(deploy("deploy.wait", json!({ "n": 2 }))).await;
        tokio::join!(s.approve(&a), s.approve(&b));
        let mut seen = Vec::new();
        for id in [&a, &b] {
            let status = s.final_state(id).await;
            assert_eq!(status.state, State::Succeeded, "{status:?}");
            seen.push(output_of(&status)["run_id"].as_u64().unwrap());
        }
        let fresh: Vec<u64> = s.fake.runs()[3..].iter().map(|r| r.id).collect();
        seen.sort();
        assert_eq!(seen, fresh, "one run each, none taken twice");

        s.assert_no_token_leaked(&logs, &[&ok, &failed, &slow, &a, &b])
            .await;
        s.server.stop().await.unwrap();
    })
}

// ---- a `github` credential for an http action --------------------------------------------------

/// A service that uses the token it is given against GitHub and reports what GitHub said.
#[derive(Clone)]
struct Service {
    github: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn act(
    AxState(svc): AxState<Service>,
    AxPath(request): AxPath<String>,
    headers: HeaderMap,
) -> String {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    svc.seen.lock().unwrap().push(token.clone());
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", svc.github))
            .bearer_auth(&token)
            .header("accept", "application/vnd.github+json")
    };
    let comment = call(
        reqwest::Method::POST,
        "/repos/acme/gitops/issues/1/comments",
    )
    .json(&json!({ "body": format!("countersign ran {request}") }))
    .send()
    .await
    .unwrap()
    .status()
    .as_u16();
    let contents = call(
        reqwest::Method::GET,
        "/repos/acme/gitops/contents/README.md",
    )
    .send()
    .await
    .unwrap()
    .status()
    .as_u16();
    let other_repo = call(reqwest::Method::GET, "/repos/acme/service")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    // The token echoed back: countersign must replace it in the stored output.
    json!({ "comment": comment, "contents": contents, "other_repo": other_repo, "echo": format!("token={token}") })
        .to_string()
}

#[test]
fn a_github_credential_has_exactly_the_declared_permissions() {
    logs::capture(|logs| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let actions = format!(
            r#"
    [actions."issue.note"]
    executor = {{ type = "http", url = "http://127.0.0.1:{port}/act/{{{{ request_id }}}}" }}
    github = {{ repository = "acme/gitops", permissions = {{ issues = "write" }} }}
    "#
        );
        let s = setup(&actions, |b| {
            b.repo("service", "main", &[("README.md", "x\n")])
        })
        .await;
        let svc = Service {
            github: s.fake.url(),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/act/{request}", axum::routing::post(act))
            .with_state(svc.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let (id, pull) = s
            .approved(json!({
                "kind": "action", "action": "issue.note", "resource": "gitops", "environment": "prod",
                "justification": "leave a note", "payload": { "contact": CANARY_EMAIL },
            }))
            .await;
        assert_eq!(pull, 1);
        let status = s.final_state(&id).await;
        assert_eq!(status.state, State::Succeeded, "{status:?}");
        let outcome = outcome_of(&status);
        // The action's own output (its format, not the API's).
        let output: Value = serde_json::from_str(&outcome.output).unwrap();
        // issues: write lets it comment; contents and another repository are refused by GitHub.
        assert_eq!(
            (
                &output["comment"],
                &output["contents"],
                &output["other_repo"]
            ),
            (&json!(201), &json!(403), &json!(404)),
            "{output}"
        );
        assert_eq!(output["echo"], "token=[credential]");

        // The token it got: exactly those permissions, that repository, revoked afterwards.
        let token = svc.seen.lock().unwrap()[0].clone();
        assert!(token.starts_with("ghs_"));
        let used: Vec<_> = s
            .fake
            .calls()
            .into_iter()
            .filter(|c| c.token() == Some(token.as_str()))
            .collect();
        assert_eq!(used.len(), 4, "three calls by the service, one revocation");
        for call in &used {
            let (granted, repositories) = scope(&call.auth);
            assert_eq!(granted, perms(&[("issues", "write"), ("metadata", "read")]));
            assert_eq!(repositories, only_gitops());
        }
        assert!(
            s.fake.with_state(|st| st.token(&token).is_none()),
            "revoked"
        );
        let comments = s.fake.comments(1);
        assert!(
            comments
                .iter()
                .any(|c| c.body == format!("countersign ran {id}"))
        );

        // Recorded like the JWT: a ledger entry with what it may do, named in the outcome.
        let ledger = s.ledger(&id).await;
        let issued: Vec<&Value> = ledger
            .iter()
            .filter(|e| e["event"] == "credential_issued")
            .collect();
        assert_eq!(issued.len(), 1, "no JWT as well: {ledger:?}");
        assert_eq!(issued[0]["kind"], "github_installation_token");
        assert_eq!(
            issued[0]["permissions"],
            json!({ "issues": "write", "metadata": "read" })
        );
        assert_eq!(outcome.credential.as_deref(), issued[0]["id"].as_str());
        s.assert_no_token_leaked(&logs, &[&id]).await;
        s.server.stop().await.unwrap();
    })
}

// ---- merging `change` requests -----------------------------------------------------------------

fn change(content: &str) -> Value {
    json!({
        "kind": "change", "action": "apply", "resource": "gitops", "environment": "prod",
        "justification": "scale the api",
        "changes": [{ "path": "deploy/api.yaml", "content": content }],
    })
}

#[test]
fn an_approved_change_is_squash_merged_at_the_reviewed_head() {
    logs::capture(|logs| async move {
        let s = setup("", |b| b).await;
        let (id, pull) = s.approved(change("replicas: 3\n")).await;
        let reviewed = s.fake.pull(pull).head_sha;
        let status = s.final_state(&id).await;
        assert_eq!(status.state, State::Succeeded, "{status:?}");
        assert_eq!(status.execution.as_ref().unwrap().executor, "merge");

        let pr = s.fake.pull(pull);
        assert!(pr.merged);
        let main = s.fake.branch_sha(BASE).unwrap();
        assert_eq!(pr.merge_commit_sha.as_deref(), Some(main.as_str()));
        assert!(outcome_of(&status).output.contains(&main));
        assert_eq!(
            s.fake.file_at(BASE, "deploy/api.yaml").as_deref(),
            Some("replicas: 3\n")
        );
        let repo = git2::Repository::open_bare(s.fake.repo_path(FULL_NAME)).unwrap();
        let commit = repo
            .find_commit(git2::Oid::from_str(&main).unwrap())
            .unwrap();
        assert_eq!(commit.parent_count(), 1, "a squash commit");
        assert!(
            commit
                .message()
                .unwrap()
                .contains(&format!("Countersign-Request: {id}"))
        );

        // Pinned to the reviewed head, with a token for this repository, contents and pull requests.
        let merges = s
            .fake
            .calls_to("PUT", &format!("/repos/acme/gitops/pulls/{pull}/merge"));
        assert_eq!(merges.len(), 1);
        let (granted, repositories) = scope(&merges[0].auth);
        assert_eq!(
            granted,
            perms(&[
                ("contents", "write"),
                ("metadata", "read"),
                ("pull_requests", "write")
            ])
        );
        assert_eq!(repositories, only_gitops());
        assert_eq!(s.fake.pull(pull).head_sha, reviewed);
        // Merging again (a retry after a crash) answers the same commit and changes nothing.
        let forge = s.server.github_forge().unwrap();
        let again = forge
            .merge_review(&pull.to_string(), &RequestId::parse(&id).unwrap())
            .await
            .unwrap();
        assert_eq!(again, main);
        assert_eq!(s.fake.branch_sha(BASE).as_deref(), Some(main.as_str()));
        s.assert_no_token_leaked(&logs, &[&id]).await;
        s.server.stop().await.unwrap();
    })
}

#[tokio::test]
async fn a_pull_request_pushed_to_after_review_is_not_merged() {
    let s = setup("", |b| b).await;
    let (id, pull) = s.pending(change("replicas: 3\n")).await;
    let reviewed = s.fake.pull(pull).head_sha;
    // Someone with push access changes the pull request; the approval is for the digest.
    s.fake
        .push_to_pr_as("mallory", pull, "deploy/api.yaml", "replicas: 300\n")
        .await;
    s.approve(&id).await;
    let status = s.final_state(&id).await;
    assert_eq!(status.state, State::Failed, "{status:?}");
    let error = outcome_of(&status).error.as_deref().unwrap();
    assert!(
        error.contains("changed after review") && error.contains(&reviewed[..12]),
        "{error}"
    );
    assert!(!s.fake.pull(pull).merged);
    assert_eq!(s.fake.file_at(BASE, "deploy/api.yaml"), None);
    assert!(s.events(&id).await.contains(&"execution_failed".to_owned()));
    s.server.stop().await.unwrap();
}
