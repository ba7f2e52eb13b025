//! Reviews on the embedded default: approve and deny flows, no self-approval by an agent's
//! owner, conflicts on closed requests, expiry, and the decision showing in git.

use countersign::api::{DecisionKind, State, Verdict};
use std::time::Duration;
use testkit::*;

#[tokio::test]
async fn an_independent_reviewer_approves_and_the_decision_reaches_status_and_git() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let view = h.reviewer(BOB).show(&id).await.unwrap();
    // The payload is the agent's own JSON (not an API document).
    assert_eq!(
        view.payload["limit"], 5,
        "nothing sensitive, nothing masked: {view:?}"
    );
    assert_eq!(view.masking.summary, "nothing masked");
    let approved = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, Some("looks right"))
        .await
        .unwrap();
    assert_eq!(approved.state, State::Approved);
    // The approved action then runs (the test registry's db.export is `/bin/true`).
    let status = h.wait_state(&h.agent_a(), &id, State::Succeeded).await;
    let decision = &status.decisions[0];
    assert_eq!(decision.reviewer, "bob");
    assert_eq!(decision.decision, DecisionKind::Approve);
    assert_eq!(
        decision.digest, status.digest,
        "the approval is bound to the request digest"
    );
    let branch = format!("countersign/{id}");
    let files = h.server.local_forge().review_files(&branch).unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(&format!("{id}.json")) && f.starts_with("requests/")),
        "{files:?}"
    );
    let note = wait_note(&h, &branch).await;
    assert!(
        note.contains("approved by bob") && note.contains(&status.digest),
        "{note}"
    );
}

#[tokio::test]
async fn a_denial_needs_a_reason_which_goes_back_to_the_agent() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let no_reason = h.reviewer(CAROL).review(&id, Verdict::Deny, None).await;
    assert_eq!(no_reason.refusal(), (422, "invalid_review".to_owned()));
    // A decision that is no `Verdict` cannot be sent by the typed client: sent raw.
    let (status, _) = h
        .raw(
            "POST",
            &format!("/v1/requests/{id}/reviews"),
            &[
                ("content-type", "application/json".into()),
                ("authorization", format!("Bearer {CAROL}")),
            ],
            br#"{"decision": "maybe", "reason": "x"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, 422);
    let denied = h
        .reviewer(CAROL)
        .review(&id, Verdict::Deny, Some("exports need a ticket number"))
        .await
        .unwrap();
    assert_eq!(denied.decision, Verdict::Deny);
    let status = h.wait_state(&h.agent_a(), &id, State::Denied).await;
    assert_eq!(
        status.decisions[0].reason.as_deref(),
        Some("exports need a ticket number")
    );
    assert!(
        wait_note(&h, &format!("countersign/{id}"))
            .await
            .contains("Reason: exports need a ticket number")
    );
}

#[tokio::test]
async fn an_owner_of_the_agent_can_never_approve_its_requests() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let refused = h.reviewer(ALICE).review(&id, Verdict::Approve, None).await;
    assert_eq!(
        refused.refusal(),
        (403, "self_approval_forbidden".to_owned())
    );
    let status = h.agent_a().status(&id).await.unwrap();
    assert_eq!(status.state, State::PendingReview);
    assert_eq!(status.decisions, [], "a refused approval leaves no trace");
    // alice owns only agent-a: she may approve agent-b's requests.
    let b = h
        .agent_b()
        .submit(&action_body(serde_json::json!({})), None)
        .await
        .unwrap();
    let b_id = b.id.as_str();
    h.wait_state(&h.agent_b(), b_id, State::PendingReview).await;
    h.reviewer(ALICE)
        .review(b_id, Verdict::Approve, None)
        .await
        .expect("alice may approve agent-b's request");
}

#[tokio::test]
async fn reviews_on_a_closed_request_get_409_and_unknown_reviewers_401() {
    let h = Harness::start().await;
    let id = h.pending().await;
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    for (token, decision) in [(CAROL, Verdict::Approve), (BOB, Verdict::Deny)] {
        let late = h.reviewer(token).review(&id, decision, Some("late")).await;
        assert_eq!(late.refusal(), (409, "request_not_pending".to_owned()));
    }
    let stranger = h
        .reviewer("csr_not_a_real_token")
        .review(&id, Verdict::Deny, Some("x"))
        .await;
    assert_eq!(stranger.refusal(), (401, "invalid_token".to_owned()));
    let missing = h
        .reviewer(BOB)
        .review("cr_01ARZ3NDEKTSV4RRFFQ69G5FAV", Verdict::Approve, None)
        .await;
    assert_eq!(missing.refusal().0, 404);
    let (status, _) = h
        .raw(
            "POST",
            &format!("/v1/requests/{id}/reviews"),
            &[("content-type", "application/json".into())],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn concurrent_decisions_yield_exactly_one() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let (bob, carol) = (h.reviewer(BOB), h.reviewer(CAROL));
    let (a, b) = tokio::join!(
        bob.review(&id, Verdict::Approve, None),
        carol.review(&id, Verdict::Deny, Some("no"))
    );
    let (recorded, refused) = match (a, b) {
        (Ok(_), refused @ Err(_)) => (Verdict::Approve, refused.refusal()),
        (refused @ Err(_), Ok(_)) => (Verdict::Deny, refused.refusal()),
        both => panic!("exactly one decision is recorded: {both:?}"),
    };
    assert_eq!(refused.0, 409, "{recorded:?} won: {refused:?}");
    let status = h.agent_a().status(&id).await.unwrap();
    assert_eq!(status.decisions.len(), 1);
}

#[tokio::test]
async fn undecided_requests_expire_and_can_no_longer_be_approved() {
    let h = Harness::start_with(|c| {
        c.request_ttl = Duration::from_millis(800);
        c.sweep_interval = Duration::from_millis(50);
    })
    .await;
    let id = h.pending().await;
    let status = h.wait_state(&h.agent_a(), &id, State::Expired).await;
    assert_eq!(status.decisions, []);
    let late = h.reviewer(BOB).review(&id, Verdict::Approve, None).await;
    assert_eq!(late.refusal().0, 409);
    let note = wait_note(&h, &format!("countersign/{id}")).await;
    assert!(note.contains("expired"), "{note}");
}

async fn wait_note(h: &Harness, branch: &str) -> String {
    let what = format!("a decision note on {branch}");
    wait_until(&what, Duration::from_secs(20), async || {
        h.server.local_forge().decision_note(branch).unwrap()
    })
    .await
}
