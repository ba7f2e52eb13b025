//! GitHub's events in the forge's common words ([`ReviewEvent`]): a webhook delivery, or the
//! reviews and comments reconciliation lists, become approvals on a commit, denials with a
//! reason, pushes, merges and closes. The rules that are GitHub's own live here: a review's
//! latest `APPROVED`/`CHANGES_REQUESTED`/`DISMISSED` state is the reviewer's decision, a
//! `/deny <reason>` comment denies, an edited comment does not count, and a merge is by
//! `merged_by` (the sender when GitHub does not say).

use super::client::{Comment, Review};
use super::webhook::{
    CommentAction, GitHubEvent, PullRequestAction, ReviewAction as GhReviewAction,
    ReviewState as GhReviewState, Source,
};
use crate::forge::review_events::{Origin, ReviewAction, ReviewEvent};

/// The reason recorded when a reviewer asks for changes without writing one.
const CHANGES_REQUESTED: &str = "changes requested on GitHub";

impl Source {
    fn origin(&self) -> Origin {
        Origin {
            repository_id: self.repository_id,
            installation_id: self.installation_id,
        }
    }
}

impl GitHubEvent {
    /// The event in the forge's common words, or `None` when countersign does not act on it
    /// (`ping`, other events and actions, comments on issues that are not pull requests).
    pub fn review_event(&self) -> Option<ReviewEvent> {
        let (review, actor, action, source) = match self {
            GitHubEvent::Review(r) => {
                let action = match (r.action, r.state) {
                    (GhReviewAction::Dismissed, _) | (_, GhReviewState::Dismissed) => {
                        ReviewAction::Dismissed
                    }
                    (_, GhReviewState::Approved) => ReviewAction::Approved {
                        commit: r.commit_id.clone(),
                    },
                    (_, GhReviewState::ChangesRequested) => ReviewAction::Denied {
                        reason: changes_requested_reason(r.body.as_deref()),
                    },
                    _ => ReviewAction::Noted {
                        note: "review without a decision".into(),
                    },
                };
                (r.pull.number, r.reviewer.clone(), action, &r.source)
            }
            GitHubEvent::PullRequest(p) => {
                let sender = p.source.sender.clone();
                let (actor, action) = match p.action {
                    PullRequestAction::Synchronize => (sender, ReviewAction::Pushed),
                    PullRequestAction::Closed { merged: true } => (
                        p.pull.merged_by.clone().unwrap_or(sender),
                        ReviewAction::Merged,
                    ),
                    PullRequestAction::Closed { merged: false } => (sender, ReviewAction::Closed),
                    PullRequestAction::Reopened => (sender, ReviewAction::Reopened),
                };
                (p.pull.number, actor, action, &p.source)
            }
            GitHubEvent::Comment(c) if c.is_pull_request => {
                let action = if c.action == CommentAction::Edited {
                    ReviewAction::Noted {
                        note: "edited comment ignored".into(),
                    }
                } else {
                    match deny_command(&c.body) {
                        Some(reason) => ReviewAction::Denied {
                            reason: reason.to_owned(),
                        },
                        None => ReviewAction::Noted {
                            note: "comment".into(),
                        },
                    }
                };
                (c.issue, c.author.clone(), action, &c.source)
            }
            GitHubEvent::Comment(_) | GitHubEvent::Ping | GitHubEvent::Unknown { .. } => {
                return None;
            }
        };
        Some(ReviewEvent {
            review: review.to_string(),
            actor,
            action,
            origin: Some(source.origin()),
        })
    }
}

/// What reconciliation applies on pull request `number`: each reviewer's latest approving,
/// denying or dismissed review (in the order they were given), then the `/deny` comments.
/// Edited comments are ignored, as live; REST tells an edit only by `updated_at` (whole
/// seconds), so an edit within the second of posting is taken as written.
pub(super) fn decisions(number: u64, reviews: &[Review], comments: &[Comment]) -> Vec<ReviewEvent> {
    let mut latest: Vec<(&str, &Review)> = Vec::new();
    for r in reviews {
        let Some(login) = r.user.as_ref().map(|u| u.login.as_str()) else {
            continue;
        };
        if matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            latest.retain(|(l, _)| *l != login);
            latest.push((login, r));
        }
    }
    let event = |actor: &str, action| ReviewEvent {
        review: number.to_string(),
        actor: actor.to_owned(),
        action,
        origin: None,
    };
    let mut events: Vec<ReviewEvent> = latest
        .into_iter()
        .map(|(login, r)| {
            let action = match r.state.as_str() {
                "APPROVED" => ReviewAction::Approved {
                    commit: r.commit_id.clone(),
                },
                "CHANGES_REQUESTED" => ReviewAction::Denied {
                    reason: changes_requested_reason(r.body.as_deref()),
                },
                _ => ReviewAction::Dismissed,
            };
            event(login, action)
        })
        .collect();
    for c in comments {
        let (Some(user), Some(body)) = (c.user.as_ref(), c.body.as_deref()) else {
            continue;
        };
        if c.updated_at != c.created_at {
            continue;
        }
        if let Some(reason) = deny_command(body) {
            events.push(event(
                &user.login,
                ReviewAction::Denied {
                    reason: reason.to_owned(),
                },
            ));
        }
    }
    events
}

fn changes_requested_reason(body: Option<&str>) -> String {
    body.map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(CHANGES_REQUESTED)
        .to_owned()
}

/// The reason of a `/deny <reason>` comment (a default when none is given), or `None` when
/// the comment is not a denial.
fn deny_command(body: &str) -> Option<&str> {
    let rest = body.trim_start().strip_prefix("/deny")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(match rest.trim() {
        "" => "denied on GitHub with /deny (no reason given)",
        r => r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::github::Login;

    fn review(login: &str, state: &str, body: Option<&str>) -> Review {
        Review {
            id: 1,
            user: Some(Login {
                login: login.into(),
            }),
            state: state.into(),
            commit_id: Some("abc".into()),
            body: body.map(str::to_owned),
            submitted_at: None,
        }
    }

    fn comment(login: &str, body: &str, edited: bool) -> Comment {
        Comment {
            id: 2,
            user: Some(Login {
                login: login.into(),
            }),
            body: Some(body.into()),
            created_at: Some("2026-12-07T10:00:00Z".into()),
            updated_at: Some(if edited {
                "2026-12-07T10:00:05Z".into()
            } else {
                "2026-12-07T10:00:00Z".into()
            }),
        }
    }

    #[test]
    fn a_reviewers_latest_decision_counts_and_deny_comments_follow() {
        let reviews = [
            review("bob", "APPROVED", None),
            review("carol", "COMMENTED", Some("looks fine")),
            review("bob", "CHANGES_REQUESTED", Some("  ")),
            review("dave", "APPROVED", None),
        ];
        let comments = [
            comment("erin", "/deny not in a freeze", false),
            comment("frank", "/deny", true),
            comment("gina", "/denyall", false),
        ];
        let events = decisions(7, &reviews, &comments);
        let seen: Vec<(&str, &ReviewAction)> = events
            .iter()
            .map(|e| (e.actor.as_str(), &e.action))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "bob",
                    &ReviewAction::Denied {
                        reason: CHANGES_REQUESTED.into()
                    }
                ),
                (
                    "dave",
                    &ReviewAction::Approved {
                        commit: Some("abc".into())
                    }
                ),
                (
                    "erin",
                    &ReviewAction::Denied {
                        reason: "not in a freeze".into()
                    }
                ),
            ]
        );
        assert!(events.iter().all(|e| e.review == "7" && e.origin.is_none()));
    }

    fn parsed(event: &str, name: &str) -> GitHubEvent {
        let path = format!(
            "{}/tests/data/github/webhooks/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        super::super::parse_event(event, &std::fs::read(path).unwrap()).unwrap()
    }

    /// GitHub's example payloads (`@octokit/webhooks-examples`) in the forge's common words,
    /// also when read back from an inbox row an earlier version stored as GitHub's event.
    #[test]
    fn webhook_examples_become_review_events() {
        let cases = [
            ("pull_request_review", "pull_request_review.submitted"),
            ("pull_request_review", "pull_request_review.dismissed"),
            ("pull_request", "pull_request.synchronize"),
            ("pull_request", "pull_request.closed"),
            ("pull_request", "pull_request.reopened"),
        ];
        let mut actions = Vec::new();
        for (event, name) in cases {
            let github = parsed(event, name);
            let review = github.review_event().unwrap_or_else(|| panic!("{name}"));
            assert!(review.review.parse::<u64>().is_ok(), "{name}: {review:?}");
            assert!(!review.actor.is_empty(), "{name}");
            let origin = review.origin.expect("a webhook names its origin");
            assert!(origin.repository_id.is_some(), "{name}");
            let stored = serde_json::to_string(&github).unwrap();
            let legacy = serde_json::from_str::<GitHubEvent>(&stored)
                .unwrap()
                .review_event();
            assert_eq!(legacy.as_ref(), Some(&review), "{name}");
            actions.push(review.action);
        }
        assert!(matches!(actions[1], ReviewAction::Dismissed));
        assert_eq!(actions[2], ReviewAction::Pushed);
        assert!(matches!(
            actions[3],
            ReviewAction::Merged | ReviewAction::Closed
        ));
        assert_eq!(actions[4], ReviewAction::Reopened);
        // Pings and comments on plain issues are nothing countersign acts on.
        assert_eq!(parsed("ping", "ping").review_event(), None);
        for name in ["issue_comment.created", "issue_comment.edited"] {
            let on_issue = parsed("issue_comment", name);
            let GitHubEvent::Comment(c) = &on_issue else {
                panic!("{name}")
            };
            assert!(!c.is_pull_request, "{name}: the example is a plain issue's");
            assert_eq!(on_issue.review_event(), None, "{name}");
        }
    }

    #[test]
    fn deny_commands() {
        assert_eq!(deny_command("/deny too risky"), Some("too risky"));
        assert_eq!(
            deny_command("  /deny\n"),
            Some("denied on GitHub with /deny (no reason given)")
        );
        assert_eq!(deny_command("/denied"), None);
        assert_eq!(deny_command("please /deny"), None);
    }
}
