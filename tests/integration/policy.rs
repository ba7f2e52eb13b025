//! The policy engine through the real server: scope and deny-by-default at intake, counts from
//! distinct eligible humans, exclusions (agent owners, the bot, non-owners), e-mail and team
//! owners, auto-approval, pinned policy commits, fail-closed on a broken policy, and requests
//! that change the policy itself. The harness policy is `TEST_CODEOWNERS` in the testkit.

use countersign::api::{
    PolicyOutcome, RequestStatus, RequirementProgress, Risk, State, SubmitAnswer, Verdict,
};
use countersign::cli::client::ClientError;
use countersign::config::Reviewer;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use testkit::*;

/// Distinct bodies, so two submissions in the same second never share a signature.
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn action(action: &str, resource: &str, environment: &str) -> Vec<u8> {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    serde_json::to_vec(&json!({
        "kind": "action",
        "action": action,
        "resource": resource,
        "environment": environment,
        "justification": "policy test",
        "payload": {"n": n},
    }))
    .unwrap()
}

async fn submit(
    agent: &countersign::cli::client::AgentClient,
    body: &[u8],
) -> Result<SubmitAnswer, ClientError> {
    agent.submit(body, None).await
}

async fn pending_action(h: &Harness, name: &str, resource: &str) -> String {
    let answer = submit(&h.agent_a(), &action(name, resource, "prod"))
        .await
        .unwrap();
    let id = answer.id.as_str().to_owned();
    h.wait_state(&h.agent_a(), &id, State::PendingReview).await;
    id
}

fn requirement<'a>(status: &'a RequestStatus, section: &str) -> &'a RequirementProgress {
    status
        .policy
        .as_ref()
        .expect("the policy's progress")
        .requirements
        .iter()
        .find(|r| r.section == section)
        .unwrap_or_else(|| panic!("no requirement for section {section}: {status:?}"))
}

#[tokio::test]
async fn two_person_rule_counts_distinct_eligible_humans() {
    let h = Harness::start().await;
    let id = pending_action(&h, "iam.grant", "prod/admin").await;
    // alice owns agent-a (configuration): listed in the rule but never eligible.
    let refused = h.reviewer(ALICE).review(&id, Verdict::Approve, None).await;
    assert_eq!(
        refused.refusal(),
        (403, "self_approval_forbidden".to_owned())
    );
    let first = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(
        first.state,
        State::PendingReview,
        "one of two approvals is not enough"
    );
    let again = h.reviewer(BOB).review(&id, Verdict::Approve, None).await;
    assert_eq!(again.refusal(), (409, "already_approved".to_owned()));
    let status = h.agent_a().status(&id).await.unwrap();
    let access = requirement(&status, "Access");
    assert_eq!(access.required, 2);
    assert_eq!(access.approved_by, ["bob"]);
    assert!(!access.satisfied);
    assert_eq!(access.excluded[0].name, "alice");
    assert_eq!(access.excluded[0].why, "owns the submitting agent");
    assert_eq!(access.line, 6);
    assert_eq!(access.file, "policies/CODEOWNERS");
    // The optional Audit section matches too but never blocks.
    assert!(requirement(&status, "Audit").optional);
    let second = h
        .reviewer(CAROL)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(second.state, State::Approved);
    let status = h.agent_a().status(&id).await.unwrap();
    assert_eq!(requirement(&status, "Access").approved_by, ["bob", "carol"]);
}

#[tokio::test]
async fn only_owners_of_a_matched_rule_may_approve_or_deny() {
    let h = Harness::start().await;
    let id = pending_action(&h, "db.export", "prod/customers").await;
    // dave owns only the optional Audit rule: his approval counts for nothing required.
    let status = h.agent_a().status(&id).await.unwrap();
    assert!(
        requirement(&status, "Exports")
            .eligible
            .iter()
            .all(|n| n != "dave")
    );
    let dave = h
        .reviewer(DAVE)
        .review(&id, Verdict::Approve, None)
        .await
        .expect("an optional-section owner may approve");
    assert_eq!(dave.state, State::PendingReview);
    // erin is not an owner of anything and cannot even deny.
    let h2 = Harness::start_with(|c| {
        c.reviewers.push(Reviewer {
            name: "erin".into(),
            token_sha256: Sha256::digest(b"csr_erin_token").into(),
            email: None,
        });
    })
    .await;
    let id2 = pending_action(&h2, "db.export", "prod/customers").await;
    let erin = h2.reviewer("csr_erin_token");
    let a = erin.review(&id2, Verdict::Approve, None).await;
    assert_eq!(a.refusal(), (403, "not_an_eligible_approver".to_owned()));
    let d = erin.review(&id2, Verdict::Deny, Some("no")).await;
    assert_eq!(d.refusal(), (403, "not_an_eligible_reviewer".to_owned()));
    // The refused approval is on record (for the audit trail), the state is unchanged.
    let events = h2
        .server
        .engine
        .store()
        .events(&countersign::request::RequestId::parse(&id2).unwrap())
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "approval_refused" && e.actor == "erin")
    );
    let status = h2.agent_a().status(&id2).await.unwrap();
    assert_eq!(status.state, State::PendingReview);
    let not_counted = &status.policy.unwrap().not_counted[0];
    assert_eq!(not_counted.reviewer, "erin");
    assert_eq!(
        not_counted.why.as_deref(),
        Some("is not an owner of any rule this request matched")
    );
}

#[tokio::test]
async fn the_bot_identity_and_agents_can_never_approve() {
    let h = Harness::start_with(|c| {
        c.reviewers.push(Reviewer {
            name: "countersign".into(),
            token_sha256: Sha256::digest(b"csr_bot").into(),
            email: None,
        });
    })
    .await;
    // Whatever the owners say, countersign's own identity never counts.
    let id = pending_action(&h, "db.export", "prod/customers").await;
    let bot = h
        .reviewer("csr_bot")
        .review(&id, Verdict::Approve, None)
        .await;
    assert_eq!(bot.refusal(), (403, "self_approval_forbidden".to_owned()));
}

#[tokio::test]
async fn requests_outside_the_agents_scope_or_uncovered_are_refused_and_only_audited() {
    let h = Harness::start().await;
    let cases = [
        (
            h.agent_b(),
            action("iam.grant", "prod/admin", "prod"),
            "out_of_scope",
            "outside the subjects agent `agent-b` may request",
        ),
        (
            h.agent_a(),
            action("unknown.thing", "prod/x", "prod"),
            "policy_denied",
            "no required rule",
        ),
        (
            h.agent_a(),
            action("nobody", "prod/x", "prod"),
            "policy_denied",
            "covered only by a line without owners (policies/CODEOWNERS:15)",
        ),
    ];
    for (agent, body, code, needle) in cases {
        let (status, error) = submit(&agent, &body).await.refusal_detail();
        assert_eq!((status, error.code.as_str()), (403, code), "{error:?}");
        assert!(error.message.contains(needle), "{error:?}");
    }
    // No request, event or review; each refusal is remembered only as a used signature and
    // an `intake_refused` ledger entry (the audit trail of what agents tried).
    let (rows, refs) = h.stored().await;
    for (table, n) in &rows {
        let expected = if matches!(*table, "seen_signatures" | "ledger") {
            3
        } else {
            0
        };
        assert_eq!(*n, expected, "{table}: {rows:?}");
    }
    assert_eq!(refs, 1);
    let refused = h.ledger_synced().await;
    let reasons: Vec<_> = refused
        .iter()
        .filter(|e| e["event"] == "intake_refused")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["out_of_scope", "policy_denied", "policy_denied"]);
}

#[tokio::test]
async fn low_risk_auto_approval_is_recorded_as_approved_by_policy() {
    let h = Harness::start().await;
    let answer = submit(&h.agent_a(), &action("deploy", "staging/web", "staging"))
        .await
        .unwrap();
    let policy = answer.policy.expect("the policy's verdict");
    assert_eq!(
        (policy.outcome, policy.risk),
        (PolicyOutcome::AutoApprove, Risk::Low)
    );
    let id = answer.id.as_str();
    // Approved by policy, then run (the test registry's deploy is `/bin/true`).
    let status = h.wait_state(&h.agent_a(), id, State::Succeeded).await;
    assert_eq!(status.decisions, [], "no human approved it");
    let events = h
        .server
        .engine
        .store()
        .events(&countersign::request::RequestId::parse(id).unwrap())
        .await
        .unwrap();
    let approved = events.iter().find(|e| e.kind == "approved").unwrap();
    assert_eq!(approved.actor, "policy");
    assert!(approved.detail.contains(&status.policy.unwrap().commit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reviewer_approving_from_many_connections_at_once_counts_once() {
    testkit::sqlite_only!(
        "writes to the SQLite file (PostgreSQL has its own test of the constraint)"
    );
    let h = Harness::start().await;
    // iam.grant needs two approvals, so every one of bob's attempts meets a pending request.
    let id = pending_action(&h, "iam.grant", "prod/admin").await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..16 {
        // A client of its own each, connected before the start: a connection of its own.
        let bob = h.reviewer(BOB);
        let id = id.clone();
        let start = start.clone();
        racing.spawn(async move {
            bob.show(&id).await.unwrap();
            start.wait().await;
            bob.review(&id, Verdict::Approve, None).await
        });
    }
    let (mut accepted, mut refused) = (0, Vec::new());
    while let Some(a) = racing.join_next().await {
        match a.unwrap() {
            Ok(_) => accepted += 1,
            refusal => refused.push(refusal.refusal()),
        }
    }
    assert_eq!(accepted, 1, "exactly one approval is accepted: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| *r == (409, "already_approved".to_owned())),
        "{refused:?}"
    );
    let rid = countersign::request::RequestId::parse(&id).unwrap();
    let store = h.server.engine.store();
    assert_eq!(
        store.reviews(&rid).await.unwrap().len(),
        1,
        "one review row"
    );
    let recorded = |events: &[countersign::store::EventRow]| {
        events
            .iter()
            .filter(|e| e.kind == "approval_recorded")
            .count()
    };
    assert_eq!(recorded(&store.events(&rid).await.unwrap()), 1);
    let ledger = h.ledger_synced().await;
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e["request_id"] == id.as_str() && e["event"] == "approval_recorded")
            .count(),
        1,
        "one ledger entry"
    );
    // A withdrawn approval no longer stands: the same reviewer may approve again.
    let withdrawn = store
        .withdraw_approvals(
            &rid,
            Some("bob"),
            "test",
            "countersign",
            countersign::time::now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(withdrawn, 1);
    let again = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(again.decision, Verdict::Approve);
    let twice = h.reviewer(BOB).review(&id, Verdict::Approve, None).await;
    assert_eq!(twice.refusal().0, 409);
    // The database itself holds one standing approval per reviewer and digest, whatever
    // writes to it.
    let db = h.dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let duplicate = sqlx::query(
        "INSERT INTO reviews (request_id, reviewer, decision, digest, at) \
         SELECT request_id, reviewer, decision, digest, at FROM reviews \
         WHERE request_id = ? AND decision = 'approve'",
    )
    .bind(&id)
    .execute(&pool)
    .await;
    assert!(
        duplicate
            .unwrap_err()
            .to_string()
            .contains("UNIQUE constraint failed"),
        "a second standing approval is refused by the database"
    );
    pool.close().await;
}

#[tokio::test]
async fn e_mail_owners_match_reviewers_by_their_configured_address() {
    let h = Harness::start().await;
    let id = pending_action(&h, "mail", "prod/newsletter").await;
    let dave = h
        .reviewer(DAVE)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(dave.state, State::Approved);
}

#[tokio::test]
async fn each_request_keeps_the_policy_commit_it_was_judged_under() {
    let h = Harness::start().await;
    let old = pending_action(&h, "db.export", "prod/customers").await;
    let commit_of = async |id: &str| h.agent_a().status(id).await.unwrap().policy.unwrap().commit;
    let old_commit = commit_of(&old).await;
    // The data team shrinks to carol on the base branch.
    h.server
        .local_forge()
        .commit_files(
            "main",
            &[(
                "policies/teams.toml",
                "[teams]\n\"acme/data\" = [\"@carol\"]\n",
            )],
            "shrink data team",
        )
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
    let new = pending_action(&h, "db.export", "prod/customers").await;
    let new_commit = commit_of(&new).await;
    assert_ne!(old_commit, new_commit);
    let refused = h.reviewer(BOB).review(&new, Verdict::Approve, None).await;
    assert_eq!(refused.refusal().1, "not_an_eligible_approver");
    let pinned = h
        .reviewer(BOB)
        .review(&old, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(
        pinned.state,
        State::Approved,
        "the old request keeps its policy"
    );
}

#[tokio::test]
async fn a_broken_policy_refuses_everything_until_it_is_fixed() {
    let h = Harness::start().await;
    h.server
        .local_forge()
        .commit_files(
            "main",
            &[(
                "policies/CODEOWNERS",
                "[Exports] @acme/data\n/actions/[oops\n",
            )],
            "broken",
        )
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
    let refused = submit(&h.agent_a(), &action("db.export", "prod/customers", "prod")).await;
    assert_eq!(refused.refusal(), (503, "policy_unavailable".to_owned()));
    h.server
        .local_forge()
        .commit_files("main", &[("policies/CODEOWNERS", TEST_CODEOWNERS)], "fix")
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
    submit(&h.agent_a(), &action("db.export", "prod/customers", "prod"))
        .await
        .expect("accepted once the policy is fixed");
}

#[tokio::test]
async fn a_request_changing_the_policy_is_governed_by_the_current_policy_rules() {
    let h = Harness::start().await;
    // The change would make agent-a's exports need nobody; the base policy's [Policy] section
    // (two of bob and carol) decides whether it may land.
    let body = serde_json::to_vec(&json!({
        "kind": "change",
        "action": "apply",
        "resource": "gitops",
        "environment": "prod",
        "justification": "loosen exports",
        "changes": [{"path": "policies/CODEOWNERS", "content": "* @agent-a\n"}],
    }))
    .unwrap();
    let answer = submit(&h.agent_a(), &body).await.unwrap();
    let id = answer.id.as_str();
    let pending = h.wait_state(&h.agent_a(), id, State::PendingReview).await;
    let policy = requirement(&pending, "Policy");
    assert_eq!(policy.required, 2);
    assert_eq!(policy.subjects, ["policies/CODEOWNERS"]);
    assert_eq!(
        h.reviewer(BOB)
            .review(id, Verdict::Approve, None)
            .await
            .unwrap()
            .state,
        State::PendingReview
    );
    assert_eq!(
        h.reviewer(CAROL)
            .review(id, Verdict::Approve, None)
            .await
            .unwrap()
            .state,
        State::Approved
    );
    // The proposed policy lives on the request's branch only; the base policy is unchanged.
    let base = h.server.engine.policy();
    assert_eq!(base.commit, pending.policy.unwrap().commit);
}

#[tokio::test]
async fn an_action_without_a_registered_executor_is_refused_at_intake() {
    let h = Harness::start().await;
    // The registry loses iam.grant on the base branch.
    let without: String = TEST_ACTIONS_TOML
        .split("\n\n")
        .filter(|entry| !entry.contains("iam.grant"))
        .collect::<Vec<_>>()
        .join("\n\n");
    h.server
        .local_forge()
        .commit_files(
            "main",
            &[("policies/actions.toml", without.as_str())],
            "unregister iam.grant",
        )
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
    let (status, error) = submit(&h.agent_a(), &action("iam.grant", "prod/admin", "prod"))
        .await
        .refusal_detail();
    assert_eq!((status, error.code.as_str()), (422, "unregistered_action"));
    let message = &error.message;
    assert!(
        message.contains("`iam.grant` has no executor registered in policies/actions.toml"),
        "{message}"
    );
    // Registered actions still pass; nothing was stored for the refusal but its audit entry.
    submit(&h.agent_a(), &action("db.export", "prod/customers", "prod"))
        .await
        .unwrap();
    let entries = h.ledger_synced().await;
    let refused: Vec<_> = entries
        .iter()
        .filter(|e| e["event"] == "intake_refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["reason"], "unregistered_action");
    let (rows, _) = h.stored().await;
    let count = |t: &str| rows.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!(count("requests"), 1);
}

#[test]
fn policy_check_reports_a_broken_action_registry() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for (name, text) in [
        ("CODEOWNERS", TEST_CODEOWNERS),
        ("policy.toml", TEST_POLICY_TOML),
        ("agents.toml", TEST_AGENTS_TOML),
        ("teams.toml", TEST_TEAMS_TOML),
        (
            "actions.toml",
            "[actions.\"db.export\"]\nexecutor = { type = \"ftp\" }\naudience = \"x\"\n",
        ),
    ] {
        std::fs::write(policies.join(name), text).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["policy", "check", "--dir"])
        .arg(&policies)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains(
            "policies/actions.toml:2:12: action `db.export`: unknown executor type `ftp`"
        ),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn an_agent_owned_by_a_team_or_an_e_mail_address_cannot_be_approved_by_those_owners() {
    // agent-a is owned by the team ops/oncall (bob, per teams.toml) and by dave's address.
    let h = Harness::start_with(|c| {
        c.agents[0].owners = vec!["@ops/oncall".into(), "dave@example.com".into()];
    })
    .await;
    h.server
        .local_forge()
        .commit_files(
            "main",
            &[(
                "policies/teams.toml",
                "[teams]\n\"acme/data\" = [\"@alice\", \"@bob\", \"@carol\"]\n\"ops/oncall\" = [\"@bob\"]\n",
            )],
            "ops/oncall",
        )
        .unwrap();
    h.server.engine.refresh_policy().await.unwrap();
    // bob owns the matching line (through acme/data) and the agent (through ops/oncall).
    let id = pending_action(&h, "db.export", "prod/customers").await;
    let (status, error) = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .refusal_detail();
    assert_eq!(
        (status, error.code.as_str()),
        (403, "self_approval_forbidden")
    );
    assert!(
        error.message.contains("owns the submitting agent"),
        "{error:?}"
    );
    // dave owns the mail line by his address, and the agent by the same address.
    let mail = pending_action(&h, "mail", "prod/newsletter").await;
    let dave = h.reviewer(DAVE).review(&mail, Verdict::Approve, None).await;
    assert_eq!(dave.refusal(), (403, "self_approval_forbidden".to_owned()));
    // Someone who does not own the agent still can.
    let carol = h
        .reviewer(CAROL)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(carol.state, State::Approved);
}

#[tokio::test]
async fn an_agent_owner_that_is_no_user_team_or_e_mail_address_is_refused_at_start_up() {
    for bad in ["@ops/on call", "ops/oncall/x", "@", "dave@", "bob smith"] {
        let dir = tempfile::tempdir().unwrap();
        seed_repo(dir.path());
        let mut c = config(dir.path());
        c.agents[0].owners = vec!["@alice".into(), bad.into()];
        let err = match countersign::app::Server::start(&c).await {
            Ok(_) => panic!("owner `{bad}` was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("agent-a") && err.contains(&format!("`{bad}`")),
            "{err}"
        );
    }
}
