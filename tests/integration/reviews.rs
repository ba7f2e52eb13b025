//! Reviews on the embedded default: approve and deny flows, no self-approval by an agent's
//! owner, conflicts on closed requests, expiry, and the decision showing in git.

use std::time::Duration;
use testkit::*;

#[tokio::test]
async fn an_independent_reviewer_approves_and_the_decision_reaches_status_and_git() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let view = h.reviewer(BOB).show_value(&id).await.unwrap();
    assert_eq!(view.status, 200);
    assert_eq!(
        view.body["payload"]["limit"], 5,
        "nothing sensitive, nothing masked: {}",
        view.body
    );
    assert_eq!(view.body["masking"]["summary"], "nothing masked");
    let approved = h
        .reviewer(BOB)
        .review_value(&id, "approve", Some("looks right"))
        .await
        .unwrap();
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["state"], "approved");
    // The approved action then runs (the test registry's db.export is `/bin/true`).
    let status = h.wait_state(&h.agent_a(), &id, "succeeded").await;
    let decision = &status["decisions"][0];
    assert_eq!(decision["reviewer"], "bob");
    assert_eq!(decision["decision"], "approve");
    assert_eq!(
        decision["digest"], status["digest"],
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
        note.contains("approved by bob") && note.contains(status["digest"].as_str().unwrap()),
        "{note}"
    );
}

#[tokio::test]
async fn a_denial_needs_a_reason_which_goes_back_to_the_agent() {
    let h = Harness::start().await;
    let id = h.pending().await;
    let no_reason = h
        .reviewer(CAROL)
        .review_value(&id, "deny", None)
        .await
        .unwrap();
    assert_eq!(no_reason.status, 422);
    assert_eq!(no_reason.body["error"]["code"], "invalid_review");
    let bogus = h
        .reviewer(CAROL)
        .review_value(&id, "maybe", Some("x"))
        .await
        .unwrap();
    assert_eq!(bogus.status, 422);
    let denied = h
        .reviewer(CAROL)
        .review_value(&id, "deny", Some("exports need a ticket number"))
        .await
        .unwrap();
    assert_eq!(denied.status, 200, "{}", denied.body);
    let status = h.wait_state(&h.agent_a(), &id, "denied").await;
    assert_eq!(
        status["decisions"][0]["reason"],
        "exports need a ticket number"
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
    let refused = h
        .reviewer(ALICE)
        .review_value(&id, "approve", None)
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "self_approval_forbidden");
    let status = h.agent_a().status_value(&id).await.unwrap();
    assert_eq!(status.body["state"], "pending_review");
    assert_eq!(
        status.body["decisions"].as_array().unwrap().len(),
        0,
        "a refused approval leaves no trace"
    );
    // alice owns only agent-a: she may approve agent-b's requests.
    let b = h
        .agent_b()
        .submit_value(&action_body(serde_json::json!({})), None)
        .await
        .unwrap();
    let b_id = b.body["id"].as_str().unwrap();
    h.wait_state(&h.agent_b(), b_id, "pending_review").await;
    assert_eq!(
        h.reviewer(ALICE)
            .review_value(b_id, "approve", None)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn reviews_on_a_closed_request_get_409_and_unknown_reviewers_401() {
    let h = Harness::start().await;
    let id = h.pending().await;
    assert_eq!(
        h.reviewer(BOB)
            .review_value(&id, "approve", None)
            .await
            .unwrap()
            .status,
        200
    );
    for (token, decision) in [(CAROL, "approve"), (BOB, "deny")] {
        let late = h
            .reviewer(token)
            .review_value(&id, decision, Some("late"))
            .await
            .unwrap();
        assert_eq!(late.status, 409, "{}", late.body);
        assert_eq!(late.body["error"]["code"], "request_not_pending");
    }
    let stranger = h
        .reviewer("csr_not_a_real_token")
        .review_value(&id, "deny", Some("x"))
        .await
        .unwrap();
    assert_eq!(
        (
            stranger.status.as_u16(),
            stranger.body["error"]["code"].as_str()
        ),
        (401, Some("invalid_token"))
    );
    let missing = h
        .reviewer(BOB)
        .review_value("cr_01ARZ3NDEKTSV4RRFFQ69G5FAV", "approve", None)
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
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
        bob.review_value(&id, "approve", None),
        carol.review_value(&id, "deny", Some("no"))
    );
    let codes = [a.unwrap().status.as_u16(), b.unwrap().status.as_u16()];
    assert!(codes.contains(&200) && codes.contains(&409), "{codes:?}");
    let status = h.agent_a().status_value(&id).await.unwrap();
    assert_eq!(status.body["decisions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn undecided_requests_expire_and_can_no_longer_be_approved() {
    let h = Harness::start_with(|c| {
        c.request_ttl = Duration::from_millis(800);
        c.sweep_interval = Duration::from_millis(50);
    })
    .await;
    let id = h.pending().await;
    let status = h.wait_state(&h.agent_a(), &id, "expired").await;
    assert_eq!(status["decisions"].as_array().unwrap().len(), 0);
    let late = h
        .reviewer(BOB)
        .review_value(&id, "approve", None)
        .await
        .unwrap();
    assert_eq!(late.status, 409);
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
