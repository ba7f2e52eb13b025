//! The GitHub forge against the stateful fake GitHub (`testkit::fake_github`): pull
//! requests with labels, reviewers and statuses; idempotent re-opening after a crash at each
//! step; recovery from 502s and rate limits; decisions; policy read at a pinned commit;
//! narrowed tokens and merging; and `countersign serve` with `[github]`.

use countersign::engine::State;
use countersign::forge::github::{Access, GitHubConfig, GitHubForge, Permissions, RetryPolicy};
use countersign::forge::{Decision, Forge, ForgeError, ReviewRef, ReviewRequest};
use countersign::mask::Masker;
use countersign::policy::{Evaluation, Outcome, Requirement, Risk};
use countersign::request::{AgentId, Digest, FileChange, Kind, RequestId};
use countersign::telemetry::Metrics;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use testkit::fake_github::{BASE, FULL_NAME, Failure, FakeGitHub, PullState, REPO};
use testkit::{
    GitHub, Setup, TEST_ACTIONS_TOML, TEST_AGENTS_TOML, TEST_CODEOWNERS, TEST_POLICY_TOML,
    TEST_TEAMS_TOML,
};

/// A raw value that must never reach GitHub: masked before the forge sees the payload.
const CANARY_EMAIL: &str = "canary.person@example.org";
const PR_TEMPLATE: &str = include_str!("../../templates/pull_request.md.j2");

fn seed_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("policies/CODEOWNERS", TEST_CODEOWNERS),
        ("policies/policy.toml", TEST_POLICY_TOML),
        ("policies/agents.toml", TEST_AGENTS_TOML),
        ("policies/teams.toml", TEST_TEAMS_TOML),
        ("policies/actions.toml", TEST_ACTIONS_TOML),
        ("templates/pull_request.md.j2", PR_TEMPLATE),
    ]
}

/// `[github]` for the fake, as an operator would write it.
fn github_config(fake: &FakeGitHub, dir: &Path) -> GitHubConfig {
    let config = fake.countersign_config(dir, "");
    assert_eq!(config.git_url, fake.git_url(REPO));
    config
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        secondary_wait: Duration::from_millis(200),
        max_inline_wait: Duration::from_secs(30),
    }
}

/// The GitHub forge alone, on the fake (no server, whose own calls would mix with the
/// forge's: [`Setup::github`] is for tests through a server).
struct Forged {
    fake: FakeGitHub,
    dir: tempfile::TempDir,
    forge: GitHubForge,
    metrics: Arc<Metrics>,
}

async fn setup() -> Forged {
    let fake = FakeGitHub::start(&seed_files()).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let forge = GitHubForge::with_retry_policy(
        &github_config(&fake, dir.path()),
        dir.path(),
        Some(metrics.clone()),
        quick(),
    )
    .unwrap();
    Forged {
        fake,
        dir,
        forge,
        metrics,
    }
}

fn requirement(section: &str, owners: &[&str], required: u32) -> Requirement {
    Requirement {
        section: section.into(),
        optional: false,
        file: "policies/CODEOWNERS".into(),
        line: 3,
        pattern: "/actions/db.export/**".into(),
        subjects: vec!["actions/db.export/prod/customers".into()],
        owners: owners.iter().map(|o| o.to_string()).collect(),
        users: Arc::from(Vec::<String>::new()),
        emails: Arc::from(Vec::<String>::new()),
        required,
        risk: Risk::High,
        auto_approve: false,
    }
}

/// A request as the engine hands it over: payload and justification already masked.
struct Request {
    id: RequestId,
    agent: AgentId,
    payload: Value,
    justification: String,
    masking: String,
    digest: Digest,
    evaluation: Evaluation,
    changes: Vec<FileChange>,
}

impl Request {
    fn new() -> Self {
        let masked = Masker::new(None, None).mask_request(
            &json!({ "table": "customers", "notify": CANARY_EMAIL, "limit": 5 }),
            &format!("weekly report for {CANARY_EMAIL}"),
        );
        assert!(!masked.payload.to_string().contains(CANARY_EMAIL));
        Request {
            id: RequestId::generate(),
            agent: AgentId::parse("agent-b").unwrap(),
            payload: masked.payload,
            justification: masked.justification,
            masking: masked.summary,
            digest: Digest::of_bytes(b"the request"),
            evaluation: Evaluation {
                policy_commit: "0123456789abcdef0123456789abcdef01234567".into(),
                outcome: Outcome::NeedsReview,
                reason: None,
                risk: Risk::High,
                expires_after_secs: None,
                credential_ttl_secs: None,
                requirements: vec![
                    requirement("Exports", &["@acme/data"], 2),
                    requirement("Audit", &["@dave", "@erin", "dpo@acme.example"], 1),
                ],
                agent_owners: vec!["@erin".into()],
            },
            changes: vec![],
        }
    }

    fn review(&self) -> ReviewRequest<'_> {
        ReviewRequest {
            id: &self.id,
            agent: &self.agent,
            kind: if self.changes.is_empty() {
                Kind::Action
            } else {
                Kind::Change
            },
            action: "db.export",
            resource: "prod/customers",
            environment: "prod",
            justification: &self.justification,
            payload: &self.payload,
            masking: &self.masking,
            changes: &self.changes,
            digest: &self.digest,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_086_400_000,
            evaluation: Some(&self.evaluation),
            exclusions: None,
        }
    }

    fn branch(&self) -> String {
        format!("countersign/{}", self.id)
    }
}

/// REST calls the fake has seen (git's smart HTTP excluded).
fn rest_calls(fake: &FakeGitHub) -> usize {
    fake.calls()
        .iter()
        .filter(|c| !c.path.contains(".git/"))
        .count()
}

fn number(review: &ReviewRef) -> u64 {
    review.reference.parse().unwrap()
}

#[tokio::test]
async fn a_review_is_a_pull_request_with_labels_reviewers_and_a_pending_status() {
    let s = setup().await;
    let request = Request::new();
    let review = s.forge.open_review(&request.review()).await.unwrap();

    let pull = s.fake.pull(number(&review));
    assert_eq!(pull.title, "agent-b: db.export on prod/customers (prod)");
    assert_eq!(pull.head_ref, request.branch());
    assert_eq!(pull.base_ref, BASE);
    assert_eq!(pull.state, PullState::Open);
    assert_eq!(review.head, pull.head_sha);
    assert_eq!(
        s.fake.branch_sha(&request.branch()).as_deref(),
        Some(review.head.as_str())
    );
    assert!(
        review.url.ends_with(&format!("/pull/{}", pull.number)),
        "{}",
        review.url
    );
    let body = pull.body.unwrap();
    assert!(
        body.contains("agent-b requests `db.export` on `prod/customers` (prod)"),
        "{body}"
    );
    assert!(body.contains(request.id.as_str()) && body.contains(request.digest.as_str()));
    assert!(body.contains("/deny <reason>"), "{body}");
    assert!(body.contains("@acme/data"), "{body}");
    assert_eq!(pull.labels, ["countersign", "risk:high"]);
    // Teams by slug; users from the owners, without the agent's owner (erin) or e-mails.
    assert_eq!(pull.requested_teams, ["data"]);
    assert_eq!(pull.requested_reviewers, ["dave"]);
    let statuses = s.fake.statuses(&review.head);
    let status = statuses.last().unwrap();
    assert_eq!(
        (status.context.as_str(), status.state.as_str()),
        ("countersign/approval", "pending")
    );
    assert_eq!(
        status.description.as_deref(),
        Some("needs 2 of @acme/data; 1 of @dave dpo@acme.example"),
        "erin owns the agent: she cannot approve, so she is not listed"
    );

    // The branch holds the masked record and its description on top of the base branch.
    let stamp = countersign::time::rfc3339(request.id.timestamp_ms());
    let dir = format!("requests/{}/{}/{}", &stamp[..4], &stamp[5..7], request.id);
    let record: Value = serde_json::from_str(
        &s.fake
            .file_at(&review.head, &format!("{dir}.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["payload"], request.payload);
    assert!(s.fake.file_at(&review.head, &format!("{dir}.md")).is_some());
    assert_eq!(
        s.fake
            .file_at(&review.head, "policies/CODEOWNERS")
            .as_deref(),
        Some(TEST_CODEOWNERS)
    );

    // The raw canary is nowhere a person could read: titles, bodies, comments, statuses,
    // git objects.
    assert_eq!(s.fake.find_visible(CANARY_EMAIL), Vec::<String>::new());

    // At most 6 REST calls, the installation token included (4 without it).
    let calls = rest_calls(&s.fake);
    assert!(calls <= 6, "{calls} calls: {:#?}", s.fake.calls());
    let metrics = s.metrics.render();
    assert!(
        metrics.contains("countersign_github_review_open_calls_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "countersign_github_api_calls_total{route=\"POST /repos/{owner}/{repo}/pulls\",outcome=\"ok\"} 1"
    ));

    // A second review reuses the cached installation token: 4 calls.
    let before = rest_calls(&s.fake);
    s.forge.open_review(&Request::new().review()).await.unwrap();
    assert_eq!(rest_calls(&s.fake) - before, 4, "{:#?}", s.fake.calls());
}

#[tokio::test]
async fn change_requests_carry_the_proposed_files() {
    let s = setup().await;
    let mut request = Request::new();
    request.changes = vec![FileChange {
        path: "deploy/app.yaml".into(),
        content: "replicas: 3\n".into(),
    }];
    let review = s.forge.open_review(&request.review()).await.unwrap();
    assert_eq!(
        s.fake.file_at(&review.head, "deploy/app.yaml").as_deref(),
        Some("replicas: 3\n")
    );
}

#[tokio::test]
async fn reopening_after_a_crash_at_any_step_finds_the_same_pull_request() {
    let s = setup().await;
    let request = Request::new();

    // Crash after the push, before the pull request: GitHub keeps failing the creation.
    s.fake.fail_next(
        "POST",
        "/repos/acme/gitops/pulls",
        4,
        Failure::ServerError(500),
    );
    let e = s.forge.open_review(&request.review()).await.unwrap_err();
    assert!(matches!(e, ForgeError::Transient(_)), "{e}");
    let pushed = s.fake.branch_sha(&request.branch()).unwrap();
    assert!(s.fake.pulls().is_empty());

    // Crash after the pull request, before its labels.
    s.fake.fail_next(
        "POST",
        "/repos/acme/gitops/issues/",
        4,
        Failure::ServerError(502),
    );
    s.forge.open_review(&request.review()).await.unwrap_err();
    assert_eq!(s.fake.pulls().len(), 1);
    assert!(s.fake.pulls()[0].labels.is_empty());

    // The engine tries again: the same branch and pull request, now complete.
    let review = s.forge.open_review(&request.review()).await.unwrap();
    assert_eq!(s.fake.pulls().len(), 1);
    assert_eq!(review.head, pushed);
    assert_eq!(s.fake.branch_sha(&request.branch()).unwrap(), pushed);
    let pull = s.fake.pull(number(&review));
    assert_eq!(pull.labels, ["countersign", "risk:high"]);
    assert_eq!(pull.requested_teams, ["data"]);

    // And once more after a crash before the engine recorded it: nothing new, no reviewer
    // pinged twice.
    let before = s.fake.calls_to("POST", "/repos/acme/gitops/pulls/").len();
    let again = s.forge.open_review(&request.review()).await.unwrap();
    assert_eq!(again, review);
    assert_eq!(s.fake.pulls().len(), 1);
    assert_eq!(
        s.fake.calls_to("POST", "/repos/acme/gitops/pulls/").len(),
        before,
        "no reviewers requested again"
    );

    // Even with the local clone lost.
    let forge = GitHubForge::with_retry_policy(
        &github_config(&s.fake, s.dir.path()),
        &s.dir.path().join("elsewhere"),
        None,
        quick(),
    )
    .unwrap();
    assert_eq!(forge.open_review(&request.review()).await.unwrap(), review);
    assert_eq!(s.fake.pulls().len(), 1);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_recovered_without_losing_the_review() {
    let s = setup().await;
    s.fake.fail_next(
        "POST",
        "/repos/acme/gitops/pulls",
        1,
        Failure::ServerError(502),
    );
    s.fake.fail_next(
        "POST",
        "/repos/acme/gitops/issues/",
        1,
        Failure::SecondaryRateLimit {
            retry_after_secs: 1,
        },
    );
    s.fake.fail_next(
        "POST",
        "/repos/acme/gitops/statuses/",
        1,
        Failure::PrimaryRateLimit {
            status: 403,
            reset_in_secs: 1,
        },
    );
    let request = Request::new();
    let review = s.forge.open_review(&request.review()).await.unwrap();
    let pull = s.fake.pull(number(&review));
    assert_eq!(s.fake.pulls().len(), 1);
    assert_eq!(pull.labels, ["countersign", "risk:high"]);
    assert_eq!(s.fake.statuses(&review.head).len(), 1);
    let metrics = s.metrics.render();
    for outcome in ["server_error", "rate_limited"] {
        assert!(
            metrics.contains(&format!("outcome=\"{outcome}\"")),
            "{outcome}: {metrics}"
        );
    }

    // A long pause is not waited out inside the call: transient, and nothing is lost.
    s.fake.fail_next(
        "POST",
        "/repos/acme/gitops/pulls",
        1,
        Failure::SecondaryRateLimit {
            retry_after_secs: 3600,
        },
    );
    let other = Request::new();
    let e = s.forge.open_review(&other.review()).await.unwrap_err();
    assert!(matches!(e, ForgeError::Transient(_)), "{e}");
}

fn decision<'a>(
    request: &'a Request,
    state: State,
    actor: &'a str,
    reason: Option<&'a str>,
) -> Decision<'a> {
    Decision {
        id: &request.id,
        state,
        actor,
        reason,
        digest: &request.digest,
    }
}

#[tokio::test]
async fn decisions_set_the_status_and_close_denied_pull_requests_once() {
    let s = setup().await;
    let approved = Request::new();
    let review = s.forge.open_review(&approved.review()).await.unwrap();
    s.forge
        .publish_decision(
            &review.reference,
            &decision(&approved, State::Approved, "alice", None),
        )
        .await
        .unwrap();
    let status = s.fake.statuses(&review.head).pop().unwrap();
    assert_eq!(
        (status.state.as_str(), status.description.as_deref()),
        ("success", Some("approved by @alice"))
    );
    assert_eq!(s.fake.pull(number(&review)).state, PullState::Open);

    let denied = Request::new();
    let review = s.forge.open_review(&denied.review()).await.unwrap();
    let d = decision(
        &denied,
        State::Denied,
        "bob",
        Some("wrong table: use <email>"),
    );
    s.forge
        .publish_decision(&review.reference, &d)
        .await
        .unwrap();
    // Publishing again (a crash before the engine recorded it) adds nothing.
    s.forge
        .publish_decision(&review.reference, &d)
        .await
        .unwrap();
    let pull = s.fake.pull(number(&review));
    assert_eq!(pull.state, PullState::Closed);
    assert!(!pull.merged);
    let comments = s.fake.comments(pull.number);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("denied** by @bob"),
        "{}",
        comments[0].body
    );
    assert!(comments[0].body.contains("> wrong table: use <email>"));
    let status = s.fake.statuses(&review.head).pop().unwrap();
    assert_eq!(
        (status.state.as_str(), status.description.as_deref()),
        ("failure", Some("denied by @bob"))
    );

    let expired = Request::new();
    let review = s.forge.open_review(&expired.review()).await.unwrap();
    s.forge
        .publish_decision(
            &review.reference,
            &decision(&expired, State::Expired, "countersign", None),
        )
        .await
        .unwrap();
    let pull = s.fake.pull(number(&review));
    assert_eq!(pull.state, PullState::Closed);
    assert!(s.fake.comments(pull.number)[0].body.contains("expired"));

    assert!(matches!(
        s.forge
            .publish_decision(
                "not-a-number",
                &decision(&expired, State::Expired, "x", None)
            )
            .await,
        Err(ForgeError::Permanent(_))
    ));
}

#[tokio::test]
async fn policy_is_read_from_the_base_branch_at_a_pinned_commit() {
    let s = setup().await;
    let base = s.forge.base_commit().await.unwrap();
    assert_eq!(Some(base.clone()), s.fake.branch_sha(BASE));
    let files = s.forge.read_files(&base, "policies").await.unwrap();
    assert_eq!(files["policies/CODEOWNERS"], TEST_CODEOWNERS);
    assert_eq!(files.len(), 5);
    s.forge.health().await.unwrap();

    // A pull request changing the policy does not change what is read at the base commit.
    let request = Request::new();
    let review = s.forge.open_review(&request.review()).await.unwrap();
    s.fake
        .push_to_pr_as(
            "mallory",
            number(&review),
            "policies/CODEOWNERS",
            "* @mallory\n",
        )
        .await;
    let files = s.forge.read_files(&base, "policies").await.unwrap();
    assert_eq!(files["policies/CODEOWNERS"], TEST_CODEOWNERS);
    // The base head is read with conditional requests: a repeat is served from the cache.
    let before = rest_calls(&s.fake);
    assert_eq!(s.forge.base_commit().await.unwrap(), base);
    assert_eq!(rest_calls(&s.fake), before);
}

#[tokio::test]
async fn narrowed_tokens_and_squash_merges() {
    let s = setup().await;
    let client = s.forge.client();
    let permissions = Permissions::new()
        .with("contents", Access::Write)
        .unwrap()
        .with("pull_requests", Access::Write)
        .unwrap();
    let token = client.token_for(&permissions, FULL_NAME).await.unwrap();
    assert_eq!(token.permissions["contents"], Access::Write);
    let minted = s
        .fake
        .with_state(|st| {
            st.tokens
                .iter()
                .find(|t| t.value == token.token.expose())
                .cloned()
        })
        .unwrap();
    assert_eq!(minted.repositories, Some(vec![FULL_NAME.to_owned()]));
    assert_eq!(
        minted.permissions.get("contents").map(String::as_str),
        Some("write")
    );
    assert!(!minted.permissions.contains_key("issues"));
    assert!(!format!("{token:?}").contains(token.token.expose()));

    // More than the app has, another owner, or nothing at all: refused.
    let too_much = Permissions::new()
        .with("administration", Access::Write)
        .unwrap();
    assert!(matches!(
        client.token_for(&too_much, REPO).await,
        Err(ForgeError::Permanent(_))
    ));
    assert!(client.token_for(&permissions, "other/repo").await.is_err());
    assert!(client.token_for(&Permissions::new(), REPO).await.is_err());

    // The execution step merges an approved pull request (squash), exactly once.
    let request = Request::new();
    let review = s.forge.open_review(&request.review()).await.unwrap();
    let n = number(&review);
    s.fake.approve_as("alice", n).await;
    let merged = client.merge(n, &review.head).await.unwrap();
    assert!(s.fake.pull(n).merged);
    assert_eq!(s.fake.branch_sha(BASE).as_deref(), Some(merged.as_str()));
    assert_eq!(client.merge(n, &review.head).await.unwrap(), merged);
}

#[tokio::test]
async fn a_lost_installation_token_is_replaced() {
    let s = setup().await;
    s.forge.open_review(&Request::new().review()).await.unwrap();
    // GitHub forgets every token (an expiry the cache did not see coming).
    s.fake.with_state(|st| st.tokens.clear());
    s.forge.open_review(&Request::new().review()).await.unwrap();
    assert_eq!(s.fake.pulls().len(), 2);
}

#[tokio::test]
async fn serve_with_a_github_section_opens_pull_requests_and_takes_webhooks() {
    let github = GitHub {
        files: seed_files()
            .into_iter()
            .map(|(p, c)| (p.to_owned(), c.to_owned()))
            .collect(),
        extra: String::new(),
        // Set below, once the pull request is open.
        webhooks: false,
    };
    let Setup {
        fake, server, dir, ..
    } = Setup::github(github, |b| b, |_| {}).await;
    assert_eq!(
        fake.countersign_config(dir.path(), "").git_url,
        fake.git_url(REPO)
    );
    assert!(server.github_forge().is_some());
    let agent = countersign::cli::client::AgentClient::new(
        &server.url(),
        "agent-a",
        testkit::key(testkit::KEY_A_NEW),
    );
    let answer = agent
        .submit(&testkit::action_body(json!({ "limit": 5 })), None)
        .await
        .unwrap();
    let id = answer.id.as_str().to_owned();
    let status = agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == countersign::api::State::PendingReview
        })
        .await
        .unwrap();
    let pull = fake.pulls().pop().expect("a pull request");
    assert_eq!(pull.head_ref, format!("countersign/{id}"));
    assert_eq!(pull.requested_teams, ["data"]);
    assert_eq!(
        status.review.as_ref().map(|r| r.reference.clone()),
        Some(pull.number.to_string()),
        "{status:?}"
    );

    // Webhooks reach the route, signed with the configured secret.
    fake.set_webhook_url(&format!("{}/webhooks/github", server.url()));
    assert_eq!(fake.ping().await, Some(200));
    fake.approve_as("alice", pull.number).await;
    let deliveries = fake.deliveries();
    let review = deliveries
        .iter()
        .find(|d| d.event == "pull_request_review")
        .unwrap();
    assert_eq!(review.status, Some(200), "{review:?}");
    // The ledger branch is written in the local clone.
    let clone_path = server.github_forge().unwrap().repo_path().to_path_buf();
    server.stop().await.unwrap();
    let clone = git2::Repository::open_bare(clone_path).unwrap();
    assert!(
        clone
            .find_reference("refs/heads/countersign/ledger")
            .is_ok()
    );
}

#[tokio::test]
async fn reads_for_reconciliation_and_eligibility() {
    let s = setup().await;
    let client = s.forge.client();
    assert_eq!(
        client.bot_login().await.unwrap(),
        testkit::fake_github::BOT_LOGIN
    );
    assert!(client.is_team_member("acme", "data", "bob").await.unwrap());
    assert!(!client.is_team_member("acme", "data", "dave").await.unwrap());

    let request = Request::new();
    let review = s.forge.open_review(&request.review()).await.unwrap();
    let n = number(&review);
    s.fake.approve_as("bob", n).await;
    s.fake
        .request_changes_as("carol", n, "not this table")
        .await;
    let pull = client.get_pull(n).await.unwrap();
    assert!(pull.is_open() && !pull.is_merged() && pull.merger().is_none());
    // The repository's id, which webhooks are matched against.
    let id = s.fake.with_state(|st| st.repo("acme/gitops").unwrap().id);
    assert_eq!(client.repository_id().await.unwrap(), id);
    let reviews = client.reviews(n).await.unwrap();
    let seen: Vec<_> = reviews
        .iter()
        .map(|r| {
            (
                r.user.as_ref().unwrap().login.as_str(),
                r.state.as_str(),
                r.commit_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("bob", "APPROVED", Some(review.head.as_str())),
            ("carol", "CHANGES_REQUESTED", Some(review.head.as_str()))
        ]
    );
}
