//! Decisions made on GitHub, end to end: `countersign serve` with `[github]` against the
//! stateful fake GitHub, people acting through the fake's driver (reviews, comments, pushes,
//! closing), webhooks signed as GitHub signs them. Team owners (`@acme/data`) are resolved
//! through GitHub's API: the policy here has no `teams.toml` entry for them.

use countersign::api::{DecisionKind, RequestStatus, State, Verdict};
use serde_json::json;
use std::time::Duration;
use testkit::fake_github::{BASE, BOT_LOGIN, Builder, Failure, PullState};
use testkit::setup::policy_files;
use testkit::{GitHub, Setup, wait_until};

const CANARY: &str = "canary.person@example.org";

/// A second installation of the App, on another organisation, with its own `gitops`.
const OTHER_INSTALLATION: u64 = 7373;
const OTHER_ORG_REPO: &str = "umbrella/gitops";
/// Another repository of the same installation.
const SIBLING_REPO: &str = "acme/website";

/// The fake GitHub with the test policy (`teams.toml` without `acme/data`: GitHub resolves it)
/// and a server reconciling every `reconcile`.
async fn start(reconcile: &str) -> Setup {
    start_with(reconcile, |b| b).await
}

/// With a fake GitHub shaped further by `build` (more repositories, installations).
async fn start_with(reconcile: &str, build: impl FnOnce(Builder) -> Builder) -> Setup {
    start_full(reconcile, "[teams]\n", build, |_| {}).await
}

/// … with `teams_toml` as the policy's teams, and the server's configuration changed by
/// `configure`.
async fn start_full(
    reconcile: &str,
    teams_toml: &str,
    build: impl FnOnce(Builder) -> Builder,
    configure: impl FnOnce(&mut countersign::config::ServerConfig),
) -> Setup {
    let github = GitHub {
        files: policy_files(teams_toml),
        extra: format!("reconcile_interval = \"{reconcile}\""),
        webhooks: true,
    };
    Setup::github(github, build, configure).await
}

/// The steps these tests take on a [`Setup`].
trait Steps {
    /// Submits `body` and waits for its pull request: (request id, PR number).
    async fn pending(&self, body: &[u8]) -> (String, u64);
    async fn wait(&self, id: &str, state: State) -> RequestStatus;
    async fn status(&self, id: &str) -> RequestStatus;
    async fn event_kinds(&self, id: &str) -> Vec<String>;
}

impl Steps for Setup {
    async fn pending(&self, body: &[u8]) -> (String, u64) {
        let a = self.agent().submit(body, None).await.unwrap();
        let id = a.id.as_str().to_owned();
        let status = self.wait(&id, State::PendingReview).await;
        let number = status.review.unwrap().reference.parse().unwrap();
        (id, number)
    }

    async fn wait(&self, id: &str, state: State) -> RequestStatus {
        self.agent()
            .wait_for(id, Duration::from_secs(30), |s| s.state == state)
            .await
            .unwrap_or_else(|e| panic!("{id} never became {state:?}: {e}"))
    }

    async fn status(&self, id: &str) -> RequestStatus {
        self.agent().status(id).await.unwrap()
    }

    async fn event_kinds(&self, id: &str) -> Vec<String> {
        let id = countersign::request::RequestId::parse(id).unwrap();
        self.server
            .engine
            .store()
            .events(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

fn export(n: u32) -> Vec<u8> {
    testkit::action_body(json!({ "limit": n, "notify": CANARY }))
}

/// iam.grant needs two of alice, bob and carol (alice owns the agent, so bob and carol).
fn grant(n: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": format!("prod/role-{n}"),
        "environment": "prod", "justification": "on-call", "payload": {"n": n},
    }))
    .unwrap()
}

fn not_counted(status: &RequestStatus) -> Vec<(String, String)> {
    status
        .policy
        .as_ref()
        .unwrap()
        .not_counted
        .iter()
        .map(|r| (r.reviewer.clone(), r.why.clone().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_team_members_approval_on_github_approves_and_the_action_runs() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&export(1)).await;
    s.fake.approve_as("bob", pr).await;
    let status = s.wait(&id, State::Succeeded).await;
    assert_eq!(status.decisions[0].reviewer, "bob");
    assert_eq!(status.decisions[0].decision, DecisionKind::Approve);
    let exports = &status.policy.as_ref().unwrap().requirements[0];
    assert_eq!(exports.approved_by, ["bob"], "{status:?}");
    // The raw payload never reached anything GitHub shows.
    assert_eq!(s.fake.find_visible(CANARY), Vec::<String>::new());
    // A pending request sees the approval as counted for the team's line only.
    let kinds = s.event_kinds(&id).await;
    assert!(kinds.contains(&"approved".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn approvals_by_the_agents_owner_the_bot_a_non_owner_or_on_an_old_commit_do_not_count() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&export(2)).await;
    let head = s.fake.pull(pr).head_sha;
    s.fake.approve_as("alice", pr).await; // owns agent-a
    s.fake.approve_as(BOT_LOGIN, pr).await; // countersign itself
    s.fake.approve_as("mallory", pr).await; // not in @acme/data
    s.fake
        .approve_on_commit_as("carol", pr, "0123456789abcdef0123456789abcdef01234567")
        .await;
    let refused = wait_until(
        "four approvals not counted",
        Duration::from_secs(10),
        async || {
            let refused = not_counted(&s.status(&id).await);
            (refused.len() == 4).then_some(refused)
        },
    )
    .await;
    let why = |who: &str| {
        refused
            .iter()
            .find(|(r, _)| r == who)
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("{who} not refused: {refused:?}"))
    };
    assert_eq!(why("alice"), "owns the submitting agent");
    assert_eq!(why(BOT_LOGIN), "is countersign itself");
    assert_eq!(
        why("mallory"),
        "is not an owner of any rule this request matched"
    );
    assert!(why("carol").contains("not the commit under review"));
    let status = s.status(&id).await;
    assert_eq!(status.state, State::PendingReview, "{status:?}");
    assert_eq!(s.fake.pull(pr).head_sha, head);
    // carol approving the head counts.
    s.fake.approve_as("carol", pr).await;
    s.wait(&id, State::Succeeded).await;
}

#[tokio::test]
async fn a_push_to_the_pull_request_denies_and_a_dismissed_approval_stops_counting() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&grant(1)).await;
    let review = s.fake.approve_as("carol", pr).await;
    s.fake.dismiss_review(pr, review, "bob").await;
    wait_until(
        "carol's approval withdrawn",
        Duration::from_secs(10),
        async || {
            s.event_kinds(&id)
                .await
                .contains(&"approval_withdrawn".into())
        },
    )
    .await;
    s.fake.approve_as("bob", pr).await;
    s.settle().await;
    let status = s.status(&id).await;
    assert_eq!(
        status.state,
        State::PendingReview,
        "carol's dismissed approval no longer counts: {status:?}"
    );
    // Anyone pushing to the branch changes what is under review: denied.
    s.fake
        .push_to_pr_as("erin", pr, "requests/extra.txt", "sneaky\n")
        .await;
    let status = s.wait(&id, State::Denied).await;
    let reason = last_reason(&status);
    assert!(reason.contains("@erin pushed"), "{reason}");
}

#[tokio::test]
async fn changes_requested_and_deny_comments_deny_with_their_reason() {
    let s = start("5m").await;
    let (first, pr1) = s.pending(&export(3)).await;
    s.fake
        .request_changes_as("carol", pr1, "limit is too high")
        .await;
    let status = s.wait(&first, State::Denied).await;
    assert_eq!(status.decisions[0].reviewer, "carol");
    assert_eq!(
        status.decisions[0].reason.as_deref(),
        Some("limit is too high")
    );

    let (second, pr2) = s.pending(&export(4)).await;
    // Edited comments are ignored (they can be rewritten after the fact), and so are other
    // people's denials and ordinary comments.
    let c = s.fake.comment_as("bob", pr2, "looks fine").await;
    s.fake.edit_comment_as("bob", c, "/deny edited later").await;
    s.fake
        .comment_as("mallory", pr2, "/deny not mine to deny")
        .await;
    s.settle().await;
    assert_eq!(s.status(&second).await.state, State::PendingReview);
    s.fake.comment_as("bob", pr2, "/deny wrong table").await;
    let status = s.wait(&second, State::Denied).await;
    assert_eq!(status.decisions[0].reviewer, "bob");
    assert_eq!(status.decisions[0].reason.as_deref(), Some("wrong table"));
    // The denial is shown on GitHub: the pull request is closed with the reason.
    wait_until(
        "the pull request to be closed",
        Duration::from_secs(10),
        async || s.fake.pull(pr2).state == PullState::Closed,
    )
    .await;
}

#[tokio::test]
async fn a_policy_change_in_the_pull_request_branch_is_ignored() {
    let s = start("5m").await;
    // A change request that would make mallory an owner of policies/.
    let change = serde_json::to_vec(&json!({
        "kind": "change", "action": "apply", "resource": "gitops", "environment": "prod",
        "justification": "let mallory own policies",
        "changes": [{"path": "policies/CODEOWNERS", "content": "[Policy]\n/policies/ @mallory\n"}],
    }))
    .unwrap();
    let (id, pr) = s.pending(&change).await;
    s.fake.approve_as("mallory", pr).await;
    wait_until(
        "mallory's approval not counted",
        Duration::from_secs(10),
        async || !not_counted(&s.status(&id).await).is_empty(),
    )
    .await;
    let status = s.status(&id).await;
    assert_eq!(status.state, State::PendingReview);
    assert_eq!(
        not_counted(&status),
        [(
            "mallory".to_owned(),
            "is not an owner of any rule this request matched".to_owned()
        )]
    );
}

#[tokio::test]
async fn forged_webhooks_are_refused_and_duplicates_applied_once() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&grant(2)).await;
    let forged = json!({
        "action": "submitted",
        "review": {"id": 1, "state": "approved", "commit_id": s.fake.pull(pr).head_sha, "user": {"login": "bob"}},
        "pull_request": {"number": pr, "head": {"sha": s.fake.pull(pr).head_sha, "ref": format!("countersign/{id}")}, "state": "open"},
        "sender": {"login": "bob"},
    })
    .to_string();
    assert_eq!(
        s.fake
            .send_forged_webhook("pull_request_review", &forged, Some("not-the-secret"))
            .await,
        Some(401)
    );
    assert_eq!(
        s.fake
            .send_forged_webhook("pull_request_review", &forged, None)
            .await,
        Some(401)
    );
    s.fake.approve_as("carol", pr).await;
    let delivery = s
        .fake
        .deliveries()
        .into_iter()
        .rfind(|d| d.event == "pull_request_review")
        .unwrap();
    assert_eq!(s.fake.redeliver(&delivery.id).await, Some(200));
    assert_eq!(s.fake.redeliver(&delivery.id).await, Some(200));
    s.settle().await;
    let kinds = s.event_kinds(&id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "approval_recorded").count(),
        1,
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "approval_refused"), "{kinds:?}");
    assert_eq!(s.status(&id).await.state, State::PendingReview);
}

#[tokio::test]
async fn a_lost_webhook_is_recovered_by_reconciliation_through_rate_limits_and_502s() {
    let s = start("1s").await;
    let (id, pr) = s.pending(&export(5)).await;
    s.fake.lose_next_webhooks(1);
    // GitHub misbehaves while countersign reconciles: a secondary rate limit, then a 502.
    s.fake.fail_next(
        "GET",
        "/repos/acme/gitops/pulls",
        1,
        Failure::SecondaryRateLimit {
            retry_after_secs: 1,
        },
    );
    s.fake.fail_next(
        "GET",
        "/repos/acme/gitops/pulls",
        1,
        Failure::ServerError(502),
    );
    s.fake.approve_as("bob", pr).await;
    assert!(s.fake.deliveries().last().unwrap().lost);
    s.wait(&id, State::Succeeded).await;
}

#[tokio::test]
async fn closing_the_pull_request_cancels_the_request() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&export(6)).await;
    s.fake.close_pr_as("carol", pr).await;
    let status = s.wait(&id, State::Cancelled).await;
    assert!(status.decisions.is_empty());
    let kinds = s.event_kinds(&id).await;
    assert!(kinds.contains(&"cancelled".to_owned()), "{kinds:?}");
    // An approval after that changes nothing.
    s.fake.reopen_pr_as("carol", pr).await;
    s.fake.approve_as("bob", pr).await;
    s.settle().await;
    assert_eq!(s.status(&id).await.state, State::Cancelled);
}

#[tokio::test]
async fn a_deny_comment_whose_webhook_was_lost_is_found_by_reconciliation() {
    let s = start("1s").await;
    let (id, pr) = s.pending(&export(7)).await;
    s.fake.lose_next_webhooks(2);
    let edited = s.fake.comment_as("carol", pr, "first thoughts").await;
    s.fake.advance_clock(Duration::from_secs(2)); // GitHub's timestamps are whole seconds
    s.fake
        .edit_comment_as("carol", edited, "/deny added later")
        .await;
    // Two more reads of the comments: at least one whole reconciliation pass saw the edit.
    let comments = format!("/repos/acme/gitops/issues/{pr}/comments");
    let seen = s.fake.calls_to("GET", &comments).len();
    wait_until(
        "two reconciliation passes over the comments",
        Duration::from_secs(30),
        async || s.fake.calls_to("GET", &comments).len() >= seen + 2,
    )
    .await;
    s.settle().await;
    assert_eq!(
        s.status(&id).await.state,
        State::PendingReview,
        "an edited comment is not a denial"
    );
    s.fake.lose_next_webhooks(1);
    s.fake.comment_as("bob", pr, "/deny wrong bucket").await;
    let status = s.wait(&id, State::Denied).await;
    assert_eq!(status.decisions[0].reviewer, "bob");
    assert_eq!(status.decisions[0].reason.as_deref(), Some("wrong bucket"));
}

#[tokio::test]
async fn members_of_a_team_owning_the_agent_cannot_approve_its_requests_on_github() {
    // agent-a is owned by ops/oncall (bob, from teams.toml) and acme/oncall (carol, known
    // only to GitHub).
    let s = start_full(
        "5m",
        "[teams]\n\"ops/oncall\" = [\"@bob\"]\n",
        |b| b,
        |c| {
            c.agents[0].owners = vec!["@ops/oncall".into(), "@acme/oncall".into()];
        },
    )
    .await;
    s.fake.add_team_member("acme", "oncall", "carol");
    let (id, pr) = s.pending(&export(40)).await;
    s.fake.approve_as("bob", pr).await;
    s.fake.approve_as("carol", pr).await;
    let status = wait_until(
        "bob's and carol's approvals not counted",
        Duration::from_secs(10),
        async || {
            let status = s.status(&id).await;
            (not_counted(&status).len() >= 2).then_some(status)
        },
    )
    .await;
    let refused = not_counted(&status);
    for who in ["bob", "carol"] {
        assert!(
            refused
                .iter()
                .any(|(r, why)| r == who && why.contains("owns the submitting agent")),
            "{who}: {status:?}"
        );
    }
    assert_eq!(status.state, State::PendingReview, "{status:?}");
    // alice does not own the agent any more: hers counts.
    s.fake.approve_as("alice", pr).await;
    s.wait(&id, State::Succeeded).await;
}

/// Waits until `until` holds for the request's event kinds.
async fn wait_events(s: &Setup, id: &str, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    wait_until(
        "the request's events to match",
        Duration::from_secs(30),
        async || {
            let kinds = s.event_kinds(id).await;
            until(&kinds).then_some(kinds)
        },
    )
    .await
}

async fn metrics(s: &Setup) -> String {
    reqwest::get(format!("{}/metrics", s.server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn events_on_another_repositorys_pull_request_with_the_same_number_do_not_touch_the_request()
{
    let s = start_with("5m", |b| {
        b.repo("website", BASE, &[("README.md", "# site\n")])
            .other_installation(OTHER_INSTALLATION, "umbrella", &["gitops"])
    })
    .await;
    let (id, pr) = s.pending(&grant(3)).await;
    for repo in [SIBLING_REPO, OTHER_ORG_REPO] {
        s.fake.drive(Some(repo));
        let n = s
            .fake
            .open_pr_as("mallory", "feature", &[("x.txt", "x\n")], "unrelated")
            .await;
        assert_eq!(n, pr, "the foreign pull request has the same number");
        // Each of these would end the request if it were about countersign's pull request.
        s.fake.comment_as("bob", n, "/deny not this one").await;
        s.fake.request_changes_as("carol", n, "nope").await;
        s.fake.approve_as("bob", n).await;
        s.fake.close_pr_as("mallory", n).await;
        assert_eq!(s.fake.pull_of(repo, n).state, PullState::Closed);
    }
    s.fake.drive(None);
    let foreign: Vec<_> = s
        .fake
        .deliveries()
        .into_iter()
        .filter(|d| d.json()["repository"]["full_name"] != "acme/gitops")
        .collect();
    assert_eq!(foreign.len(), 10, "{foreign:?}");
    assert!(
        foreign.iter().all(|d| d.status == Some(200)),
        "foreign deliveries are acknowledged: {foreign:?}"
    );
    // A delivery naming countersign's repository, but from another repository id (deleted and
    // recreated under the same name) or installation, is foreign too.
    let own = s
        .fake
        .deliveries()
        .into_iter()
        .find(|d| d.event == "pull_request" && d.json()["repository"]["full_name"] == "acme/gitops")
        .unwrap();
    for (pointer, value) in [
        ("/repository/id", json!(1)),
        ("/installation/id", json!(OTHER_INSTALLATION)),
    ] {
        let mut body = own.json();
        body["action"] = json!("closed");
        body["sender"]["login"] = json!("mallory");
        *body.pointer_mut(pointer).unwrap() = value;
        let status = s
            .fake
            .send_forged_webhook(
                "pull_request",
                &body.to_string(),
                Some(testkit::fake_github::WEBHOOK_SECRET),
            )
            .await;
        assert_eq!(status, Some(200));
    }
    // Deliveries are applied in order: once carol's approval here counts, everything before it
    // was seen.
    s.fake.approve_as("carol", pr).await;
    let kinds = wait_events(&s, &id, |k| k.iter().any(|k| k == "approval_recorded")).await;
    let status = s.status(&id).await;
    assert_eq!(status.state, State::PendingReview, "{status:?} {kinds:?}");
    let decisions = &status.decisions;
    assert_eq!(decisions.len(), 1, "{status:?}");
    assert_eq!(decisions[0].reviewer, "carol");
    assert!(not_counted(&status).is_empty(), "{status:?}");
    let m = metrics(&s).await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("countersign_github_webhooks_ignored")
                && l.contains("foreign_repository")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("countersign_github_webhooks_ignored")
                && l.contains("foreign_installation")),
        "{m}"
    );
}

/// The reason of the request's last decision.
fn last_reason(status: &RequestStatus) -> String {
    let last = status.decisions.last().expect("a decision");
    last.reason.clone().expect("a reason")
}

#[tokio::test]
async fn a_human_merging_the_pull_request_before_approval_denies_and_nothing_executes_even_when_approved_after()
 {
    let chat = testkit::fake_chat::FakeChat::start().await;
    let hook = countersign::notify::Target {
        name: "ops".into(),
        kind: countersign::notify::TargetKind::SlackWebhook {
            url: zeroize::Zeroizing::new(chat.slack_webhook_url("ops")),
        },
        route: Default::default(),
        mention: Some("<!subteam^S0OPS>".into()),
    };
    let s = start_full("5m", "[teams]\n", |b| b, |c| c.notify.targets = vec![hook]).await;
    let (id, pr) = s.pending(&grant(4)).await;
    s.fake.merge_pr_as("erin", pr).await;
    let status = s.wait(&id, State::Denied).await;
    assert_eq!(last_reason(&status), "merged without approval by @erin");
    // Loudly: the destination's mention, though the request's risk is only medium.
    let loud = |st: &testkit::fake_chat::State| {
        st.webhook_posts("slack").iter().any(|(_, body)| {
            let text = body.to_string();
            text.contains("Merged without approval")
                && text.contains("<!subteam^S0OPS>")
                && text.contains("@erin")
        })
    };
    assert!(
        chat.wait_for(loud, Duration::from_secs(20)).await,
        "{:?}",
        chat.webhook_posts("slack")
    );
    // The ledger names who merged.
    let rid = countersign::request::RequestId::parse(&id).unwrap();
    let events = s.server.engine.store().events(&rid).await.unwrap();
    let denied = events.iter().find(|e| e.kind == "denied").unwrap();
    assert!(
        denied.detail.to_string().contains("\"merged_by\":\"erin\""),
        "{:?}",
        denied.detail
    );
    // Approvals after that change nothing.
    s.fake.approve_as("bob", pr).await;
    s.fake.approve_as("carol", pr).await;
    s.settle().await;
    let status = s.status(&id).await;
    assert_eq!(status.state, State::Denied, "{status:?}");
    let kinds = s.event_kinds(&id).await;
    for k in ["approved", "executing", "succeeded", "approval_recorded"] {
        assert!(!kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_human_merge_whose_webhook_was_lost_still_denies_when_the_approvals_arrive() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&grant(5)).await;
    s.fake.lose_next_webhooks(1);
    s.fake.merge_pr_as("erin", pr).await;
    assert!(s.fake.deliveries().last().unwrap().lost);
    s.fake.approve_as("bob", pr).await;
    s.fake.approve_as("carol", pr).await;
    let status = s.wait(&id, State::Denied).await;
    assert_eq!(last_reason(&status), "merged without approval by @erin");
    let kinds = s.event_kinds(&id).await;
    for k in ["approved", "executing", "succeeded"] {
        assert!(!kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_change_a_person_merged_is_never_taken_as_countersigns_execution() {
    let s = start("5m").await;
    let change = serde_json::to_vec(&json!({
        "kind": "change", "action": "apply", "resource": "gitops", "environment": "prod",
        "justification": "notes",
        "changes": [{"path": "policies/notes.md", "content": "notes\n"}],
    }))
    .unwrap();
    let (id, pr) = s.pending(&change).await;
    // The merge's webhook is lost, and the approvals come through the API, before any
    // reconciliation: the merge step is the last line.
    s.fake.lose_next_webhooks(1);
    s.fake.merge_pr_as("erin", pr).await;
    for token in [testkit::BOB, testkit::CAROL] {
        let r = countersign::cli::client::ReviewerClient::new(&s.server.url(), token)
            .review(&id, Verdict::Approve, None)
            .await;
        assert!(r.is_ok(), "{r:?}");
    }
    let status = s
        .agent()
        .wait_for(&id, Duration::from_secs(30), |st| {
            matches!(
                st.state,
                State::Succeeded | State::Failed | State::OutcomeUnknown
            )
        })
        .await
        .unwrap();
    assert_eq!(status.state, State::Failed, "{status:?}");
    assert!(
        serde_json::to_string(&status)
            .unwrap()
            .contains("merged without countersign by @erin"),
        "{status:?}"
    );
}

#[tokio::test]
async fn reconciliation_finds_a_human_merge_whose_webhook_was_lost() {
    let s = start("1s").await;
    let (id, pr) = s.pending(&grant(6)).await;
    s.fake.lose_next_webhooks(1);
    s.fake.merge_pr_as("erin", pr).await;
    let status = s.wait(&id, State::Denied).await;
    assert_eq!(last_reason(&status), "merged without approval by @erin");
}

#[tokio::test]
async fn a_60000_character_review_body_is_posted_as_a_bounded_comment_and_the_pr_is_closed() {
    let s = start("5m").await;
    let (id, pr) = s.pending(&export(8)).await;
    // 6,000 lines of 10 characters: quoted line by line it would grow past GitHub's limit.
    let body = "wrong row\n".repeat(6_000);
    assert_eq!(body.chars().count(), 60_000);
    s.fake.request_changes_as("carol", pr, &body).await;
    s.wait(&id, State::Denied).await;
    wait_until(
        "the pull request to be closed",
        Duration::from_secs(30),
        async || s.fake.pull(pr).state == PullState::Closed,
    )
    .await;
    let comments = s.fake.comments(pr);
    let decision = comments
        .iter()
        .find(|c| c.body.contains("countersign: denied"))
        .expect("the decision comment");
    let len = decision.body.chars().count();
    assert!(len <= 65_536, "{len}");
    assert!(decision.body.contains("> wrong row\n> wrong row"));
    assert!(
        decision
            .body
            .contains(&format!("{}/v1/requests/{id}/review", s.server.url())),
        "a link to the full text: {}",
        &decision.body[decision.body.len() - 600..]
    );
    assert!(
        decision.body.contains("countersign:decision"),
        "the marker is kept"
    );
    // The status's description fits its 140 characters; its link leads to the full text.
    let status = s.fake.statuses(&s.fake.pull(pr).head_sha).pop().unwrap();
    assert_eq!(status.state, "failure");
    assert!(
        status
            .target_url
            .as_deref()
            .is_some_and(|u| u.ends_with(&format!("/v1/requests/{id}/review"))),
        "{status:?}"
    );
    // No call was refused on the way.
    let refused: Vec<_> = s
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.status == 422)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test]
async fn the_pending_status_names_only_people_who_can_approve() {
    let s = start("5m").await;
    // iam.grant: two of @alice @bob @carol, and alice owns agent-a.
    let (_, pr) = s.pending(&grant(7)).await;
    let head = s.fake.pull(pr).head_sha;
    let pending = s
        .fake
        .statuses(&head)
        .into_iter()
        .rfind(|st| st.state == "pending")
        .expect("a pending status");
    let text = pending.description.unwrap();
    assert_eq!(text, "needs 2 of @bob @carol");
    let requested = s.fake.pull(pr).requested_reviewers;
    assert!(!requested.contains(&"alice".to_owned()), "{requested:?}");
}

#[tokio::test]
async fn reconciliation_does_not_page_through_foreign_pull_requests() {
    let s = start("1s").await;
    // A busy repository: 250 open pull requests that are not countersign's.
    s.fake.with_state(|st| {
        let repo = st.repo_mut("acme/gitops").unwrap();
        let template = testkit::fake_github::Pull {
            number: 0,
            id: 0,
            user: "mallory".into(),
            title: "busy".into(),
            body: None,
            head_ref: String::new(),
            head_sha: "0".repeat(40),
            base_ref: BASE.into(),
            state: PullState::Open,
            draft: false,
            merged: false,
            merge_commit_sha: None,
            merged_by: None,
            labels: vec![],
            requested_reviewers: vec![],
            requested_teams: vec![],
            reviews: vec![],
            created_at: 0,
            updated_at: 0,
            closed_at: None,
            merged_at: None,
        };
        for _ in 0..250 {
            let n = repo.next_number;
            repo.next_number += 1;
            let mut p = template.clone();
            p.number = n;
            p.id = 7_000_000 + n;
            p.head_ref = format!("busy/{n}");
            repo.pulls.insert(n, p);
        }
    });
    let (id, pr) = s.pending(&export(9)).await;
    // Two reconciliation passes over the pending request.
    let reviews = format!("/repos/acme/gitops/pulls/{pr}/reviews");
    wait_until(
        "two reconciliation passes",
        Duration::from_secs(30),
        async || s.fake.calls_to("GET", &reviews).len() >= 2,
    )
    .await;
    let listed = s.fake.pulls_listed();
    assert!(listed <= 1, "{listed} pull requests listed");
    assert_eq!(s.status(&id).await.state, State::PendingReview);
    // And a lost approval is still found.
    s.fake.lose_next_webhooks(1);
    s.fake.approve_as("bob", pr).await;
    s.wait(&id, State::Succeeded).await;
    assert!(s.fake.pulls_listed() <= 1);
}
