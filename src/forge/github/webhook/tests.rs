//! Verification and parsing against real example payloads from `@octokit/webhooks-examples`
//! (`tests/data/github/webhooks/<event>.<action>.json`).

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/github/webhooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture with `f` applied to its JSON.
fn edited(name: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

const OLD: &[u8] = b"old-secret";
const NEW: &[u8] = b"new-secret";

#[test]
fn a_good_signature_names_the_secret_that_matched() {
    let body = fixture("ping");
    let sig = sign(NEW, &body);
    assert_eq!(verify_signature(&[NEW], Some(sig.as_bytes()), &body), Ok(0));
    // Rotation: the second configured secret matches too.
    assert_eq!(
        verify_signature(&[OLD, NEW], Some(sig.as_bytes()), &body),
        Ok(1)
    );
    assert_eq!(
        verify_signature(&[OLD, NEW], Some(sign(OLD, &body).as_bytes()), &body),
        Ok(0)
    );
}

#[test]
fn bad_missing_and_malformed_signatures_are_refused() {
    let body = fixture("ping");
    let sig = sign(OLD, &body);
    assert_eq!(
        verify_signature(&[NEW], Some(sig.as_bytes()), &body),
        Err(SignatureError::Mismatch)
    );
    // A changed body no longer matches.
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_eq!(
        verify_signature(&[OLD], Some(sig.as_bytes()), &tampered),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(&[OLD], None, &body),
        Err(SignatureError::Missing)
    );
    // The SHA-1 header's prefix, upper-case prefix, truncated or non-hex digests.
    let hex = sig.strip_prefix("sha256=").unwrap();
    for bad in [
        format!("sha1={hex}"),
        format!("SHA256={hex}"),
        hex.to_owned(),
        format!("sha256={}", &hex[..62]),
        format!("sha256={}zz", &hex[..62]),
        String::new(),
    ] {
        assert_eq!(
            verify_signature(&[OLD], Some(bad.as_bytes()), &body),
            Err(SignatureError::Malformed),
            "{bad}"
        );
    }
    // Upper-case hex digits are still the same digest.
    let upper = format!("sha256={}", hex.to_ascii_uppercase());
    assert_eq!(
        verify_signature(&[OLD], Some(upper.as_bytes()), &body),
        Ok(0)
    );
    let none: [&[u8]; 0] = [];
    assert_eq!(
        verify_signature(&none, Some(sig.as_bytes()), &body),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn the_signature_matches_githubs_documented_example() {
    // docs.github.com "Validating webhook deliveries": secret "It's a Secret to Everybody",
    // payload "Hello, World!".
    assert_eq!(
        sign(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn review_submitted() {
    let GitHubEvent::Review(r) = parse_event(
        "pull_request_review",
        &fixture("pull_request_review.submitted"),
    )
    .unwrap() else {
        panic!("not a review")
    };
    assert_eq!(r.action, ReviewAction::Submitted);
    assert_eq!(r.state, ReviewState::Commented);
    assert_eq!(r.reviewer, "Codertocat");
    assert_eq!(
        r.commit_id.as_deref(),
        Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    );
    assert_eq!(r.pull.number, 2);
    assert_eq!(r.pull.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    assert_eq!(r.pull.head_branch, "changes");
    assert_eq!(
        r.source.repository.as_deref(),
        Some("Codertocat/Hello-World")
    );
    assert_eq!(r.source.sender, "Codertocat");
}

#[test]
fn review_states_and_edits() {
    let body = edited("pull_request_review.submitted", |v| {
        v["review"]["state"] = "approved".into();
    });
    let GitHubEvent::Review(r) = parse_event("pull_request_review", &body).unwrap() else {
        panic!()
    };
    assert_eq!(r.state, ReviewState::Approved);
    let body = edited("pull_request_review.submitted", |v| {
        v["action"] = "edited".into();
        v["review"]["state"] = "CHANGES_REQUESTED".into();
        v["review"]["body"] = "no: wrong table".into();
    });
    let GitHubEvent::Review(r) = parse_event("pull_request_review", &body).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.action, r.state, r.body.as_deref()),
        (
            ReviewAction::Edited,
            ReviewState::ChangesRequested,
            Some("no: wrong table")
        )
    );
}

#[test]
fn review_dismissed() {
    let GitHubEvent::Review(r) = parse_event(
        "pull_request_review",
        &fixture("pull_request_review.dismissed"),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.action, ReviewAction::Dismissed);
    assert_eq!(r.state, ReviewState::Dismissed);
}

#[test]
fn pull_request_actions() {
    for (name, action) in [
        ("pull_request.synchronize", PullRequestAction::Synchronize),
        ("pull_request.reopened", PullRequestAction::Reopened),
        (
            "pull_request.closed",
            PullRequestAction::Closed { merged: false },
        ),
    ] {
        let GitHubEvent::PullRequest(p) = parse_event("pull_request", &fixture(name)).unwrap()
        else {
            panic!("{name}")
        };
        assert_eq!(p.action, action, "{name}");
        assert_eq!(p.pull.number, 2);
        assert_eq!(p.source.sender, "Codertocat");
        assert_eq!(p.source.installation_id, Some(1));
    }
    let merged = edited("pull_request.closed", |v| {
        v["pull_request"]["merged"] = true.into();
        v["pull_request"]["merged_by"] = serde_json::json!({"login": "erin", "id": 7});
    });
    let GitHubEvent::PullRequest(p) = parse_event("pull_request", &merged).unwrap() else {
        panic!()
    };
    assert_eq!(p.action, PullRequestAction::Closed { merged: true });
    assert_eq!(p.pull.merged_by.as_deref(), Some("erin"));
    // Where it happened: the repository by id as well as by name.
    assert!(p.source.repository_id.is_some_and(|id| id > 0));
    assert!(p.source.repository.is_some());
    let GitHubEvent::PullRequest(p) =
        parse_event("pull_request", &fixture("pull_request.synchronize")).unwrap()
    else {
        panic!()
    };
    assert!(p.before.is_some());
}

#[test]
fn comments() {
    let GitHubEvent::Comment(c) =
        parse_event("issue_comment", &fixture("issue_comment.created")).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.action, CommentAction::Created);
    assert_eq!(c.issue, 1);
    assert!(!c.is_pull_request);
    assert_eq!(c.author, "Codertocat");
    assert!(c.body.starts_with("You are totally right!"));
    let on_pull = edited("issue_comment.created", |v| {
        v["issue"]["pull_request"] = serde_json::json!({ "url": "https://api.github.com/x" });
        v["comment"]["body"] = "/deny wrong table".into();
    });
    let GitHubEvent::Comment(c) = parse_event("issue_comment", &on_pull).unwrap() else {
        panic!()
    };
    assert!(c.is_pull_request);
    assert_eq!(c.body, "/deny wrong table");
    let GitHubEvent::Comment(c) =
        parse_event("issue_comment", &fixture("issue_comment.edited")).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.action, CommentAction::Edited);
}

#[test]
fn other_events_and_actions_are_unknown() {
    assert_eq!(
        parse_event("ping", &fixture("ping")).unwrap(),
        GitHubEvent::Ping
    );
    assert_eq!(
        parse_event("pull_request", &fixture("pull_request.opened")).unwrap(),
        GitHubEvent::Unknown {
            event: "pull_request".into(),
            action: Some("opened".into())
        }
    );
    assert_eq!(
        parse_event("push", br#"{"ref":"refs/heads/main"}"#).unwrap(),
        GitHubEvent::Unknown {
            event: "push".into(),
            action: None
        }
    );
    assert_eq!(
        parse_event("star", b"not json").unwrap(),
        GitHubEvent::Unknown {
            event: "star".into(),
            action: None
        }
    );
}

#[test]
fn broken_bodies_of_known_events_are_errors_that_quote_nothing() {
    let e = parse_event(
        "pull_request_review",
        b"{\"action\":\"submitted\",\"secret\":1",
    )
    .unwrap_err();
    assert!(e.to_string().contains("pull_request_review"), "{e}");
    let e = parse_event(
        "issue_comment",
        br#"{"action":"created","issue":{"number":"s3cret"},"comment":{},"sender":{"login":"x"}}"#,
    )
    .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
}
