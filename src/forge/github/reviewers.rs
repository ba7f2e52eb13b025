//! From the policy evaluation to what GitHub shows: requested reviewers (users and teams from
//! the owners of the required CODEOWNERS lines), labels, the pending status line, and the
//! decision's status and comment.

use super::client::{MAX_BODY_CHARS, MAX_STATUS_CHARS, StatusState, bound, truncate};
use crate::forge::Decision;
use crate::policy::approval::Exclusions;
use crate::policy::{Evaluation, Outcome};
use crate::request::State;

/// GitHub accepts at most this many requested reviewers (users and teams together).
const MAX_REVIEWERS: usize = 15;

/// Users and team slugs to request reviews from.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reviewers {
    pub users: Vec<String>,
    pub teams: Vec<String>,
}

/// Who can never approve: the engine's rules when given, else the evaluation's agent owners.
pub fn exclusions_or_default(
    exclusions: Option<&Exclusions>,
    agent: &str,
    evaluation: Option<&Evaluation>,
) -> Exclusions {
    exclusions.cloned().unwrap_or_else(|| Exclusions {
        agent: agent.to_owned(),
        agent_owners: evaluation
            .map(|e| e.agent_owners.clone())
            .unwrap_or_default(),
        ..Exclusions::default()
    })
}

/// The owners of every required line: `@user` → user, `@org/team` → team slug when `org` is
/// the repository's owner (GitHub only takes its own organisation's teams), e-mail owners
/// skipped. People who can never approve (the agent's owners…) are left out, and so is
/// everyone when the policy approved the request itself.
pub fn reviewers(
    evaluation: Option<&Evaluation>,
    repo_owner: &str,
    exclusions: &Exclusions,
) -> Reviewers {
    let mut out = Reviewers::default();
    let Some(e) = evaluation else { return out };
    if e.outcome == Outcome::AutoApprove {
        return out;
    }
    for r in e
        .requirements
        .iter()
        .filter(|r| !r.optional && r.required > 0)
    {
        for owner in r.owners.iter() {
            let Some(name) = owner.strip_prefix('@') else {
                continue; // an e-mail owner
            };
            match name.split_once('/') {
                Some((org, team)) => {
                    if !org.eq_ignore_ascii_case(repo_owner) {
                        tracing::debug!(
                            github.team = owner,
                            "team of another organisation: not requested as reviewer"
                        );
                    } else if !contains(&out.teams, team) {
                        out.teams.push(team.to_owned());
                    }
                }
                None => {
                    if exclusions.may_list(name) && !contains(&out.users, name) {
                        out.users.push(name.to_owned());
                    }
                }
            }
        }
    }
    let room = MAX_REVIEWERS.saturating_sub(out.teams.len().min(MAX_REVIEWERS));
    out.teams.truncate(MAX_REVIEWERS);
    out.users.truncate(room);
    out
}

fn contains(list: &[String], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// `countersign` and `risk:<level>`.
pub fn labels(evaluation: Option<&Evaluation>) -> Vec<String> {
    let risk = evaluation.map(|e| e.risk.as_str()).unwrap_or("unknown");
    vec!["countersign".to_owned(), format!("risk:{risk}")]
}

/// The pending status: "needs 2 of @acme/data; 1 of @alice @bob", naming only owners who
/// may approve (teams stand for their members; who in them may approve is checked when they
/// do).
pub fn pending_description(evaluation: Option<&Evaluation>, exclusions: &Exclusions) -> String {
    let Some(e) = evaluation else {
        return "awaiting review".to_owned();
    };
    if e.outcome == Outcome::AutoApprove {
        return "approved by policy (low risk)".to_owned();
    }
    let parts: Vec<String> = e
        .requirements
        .iter()
        .filter(|r| !r.optional && r.required > 0)
        .map(|r| {
            let eligible: Vec<&str> = r
                .owners
                .iter()
                .map(String::as_str)
                .filter(|o| exclusions.may_list(o))
                .collect();
            match eligible.is_empty() {
                true => format!("{} of (no eligible owner)", r.required),
                false => format!("{} of {}", r.required, eligible.join(" ")),
            }
        })
        .collect();
    if parts.is_empty() {
        return "awaiting review".to_owned();
    }
    truncate(&format!("needs {}", parts.join("; ")), MAX_STATUS_CHARS)
}

/// What a decision looks like on the pull request.
#[derive(Debug, PartialEq, Eq)]
pub struct DecisionView {
    pub status: StatusState,
    pub description: String,
    /// Comment posted before closing (denied, expired, cancelled); `None` keeps it open.
    pub close_with: Option<String>,
}

/// The hidden marker that makes the closing comment idempotent.
pub fn decision_marker(decision: &Decision<'_>) -> String {
    format!(
        "<!-- countersign:decision {} {} -->",
        decision.id,
        decision.state.as_str()
    )
}

/// How a decision is shown on the pull request. `full_text` is where the whole (masked)
/// decision can be read; texts cut to GitHub's limits point there. Every text here fits:
/// the comment within [`MAX_BODY_CHARS`] (its reason is cut, the footer and marker never),
/// the status description within [`MAX_STATUS_CHARS`].
pub fn decision_view(decision: &Decision<'_>, full_text: Option<&str>) -> DecisionView {
    let actor = truncate(&mention(decision.actor), 60);
    let more = match full_text {
        Some(url) => format!("\n\n*(cut to fit GitHub's limit: the full text is at <{url}>)*"),
        None => "\n\n*(cut to fit GitHub's limit)*".to_owned(),
    };
    let footer = format!(
        "\n\nRequest `{}`, digest `{}`.\n{}",
        decision.id,
        decision.digest,
        decision_marker(decision)
    );
    // Room for the reason: the limit less the longest heading and the footer, with margin.
    let room = MAX_BODY_CHARS - 1_024 - footer.chars().count();
    let reason = decision
        .reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| bound(&format!("\n\nReason:\n\n{}", quote(r)), room, &more))
        .unwrap_or_default();
    let (status, description, close_with) = match decision.state {
        State::Approved => (StatusState::Success, format!("approved by {actor}"), None),
        State::Denied => (
            StatusState::Failure,
            format!("denied by {actor}"),
            Some(format!(
                "**countersign: denied** by {actor}; this pull request is closed.{reason}"
            )),
        ),
        State::Expired => (
            StatusState::Failure,
            "expired before the required approvals".to_owned(),
            Some(format!(
                "**countersign: expired** before it received the approvals its policy requires; this pull request is closed.{reason}"
            )),
        ),
        State::Cancelled => (
            StatusState::Failure,
            "cancelled".to_owned(),
            Some(format!(
                "**countersign: cancelled**; this pull request is closed.{reason}"
            )),
        ),
        State::Executing => (StatusState::Success, "approved; executing".to_owned(), None),
        State::Succeeded => (
            StatusState::Success,
            "approved and executed".to_owned(),
            None,
        ),
        State::Failed => (
            StatusState::Failure,
            "approved; execution failed".to_owned(),
            None,
        ),
        State::OutcomeUnknown => (
            StatusState::Failure,
            "approved; outcome unknown (interrupted)".to_owned(),
            None,
        ),
        State::Received | State::PendingReview => {
            (StatusState::Pending, "awaiting review".to_owned(), None)
        }
    };
    DecisionView {
        status,
        description: truncate(&description, MAX_STATUS_CHARS),
        close_with: close_with.map(|text| text + &footer),
    }
}

/// `@name` for GitHub logins, the plain name for countersign's own actors.
fn mention(actor: &str) -> String {
    match actor {
        "countersign" | "policy" => actor.to_owned(),
        a if a.starts_with('@') => a.to_owned(),
        a => format!("@{a}"),
    }
}

/// A reason as a Markdown quote, invisible characters shown (`<U+202E>`).
fn quote(text: &str) -> String {
    crate::text::visible(text)
        .lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Requirement, Risk};
    use crate::request::{Digest, RequestId};
    use std::sync::Arc;

    fn requirement(owners: &[&str], required: u32, optional: bool) -> Requirement {
        Requirement {
            section: "Data".into(),
            optional,
            file: "policies/CODEOWNERS".into(),
            line: 3,
            pattern: "actions/db.export/*".into(),
            subjects: vec![],
            owners: owners.iter().map(|o| o.to_string()).collect(),
            users: Arc::from(vec![]),
            emails: Arc::from(vec![]),
            required,
            risk: Risk::High,
            auto_approve: false,
        }
    }

    fn none_excluded() -> Exclusions {
        exclusions_or_default(None, "agent-a", Some(&evaluation(vec![])))
    }

    fn evaluation(requirements: Vec<Requirement>) -> Evaluation {
        Evaluation {
            policy_commit: "abc".into(),
            outcome: Outcome::NeedsReview,
            reason: None,
            risk: Risk::High,
            expires_after_secs: None,
            credential_ttl_secs: None,
            requirements,
            agent_owners: vec!["@alice".into()],
        }
    }

    #[test]
    fn owners_become_users_and_teams() {
        let e = evaluation(vec![
            requirement(
                &["@acme/data", "@bob", "dpo@acme.example", "@Alice"],
                2,
                false,
            ),
            requirement(&["@acme/data", "@carol", "@other/team"], 1, false),
            requirement(&["@dave"], 0, true),
        ]);
        assert_eq!(
            reviewers(Some(&e), "acme", &none_excluded()),
            Reviewers {
                users: vec!["bob".into(), "carol".into()],
                teams: vec!["data".into()],
            }
        );
        assert_eq!(
            reviewers(None, "acme", &none_excluded()),
            Reviewers::default()
        );
        let mut auto = e.clone();
        auto.outcome = Outcome::AutoApprove;
        assert_eq!(
            reviewers(Some(&auto), "acme", &none_excluded()),
            Reviewers::default()
        );
    }

    #[test]
    fn at_most_fifteen_reviewers() {
        let owners: Vec<String> = (0..20).map(|i| format!("@user{i}")).collect();
        let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
        let mut all = owners.clone();
        all.push("@acme/ops");
        let r = reviewers(
            Some(&evaluation(vec![requirement(&all, 1, false)])),
            "acme",
            &none_excluded(),
        );
        assert_eq!(r.teams, ["ops"]);
        assert_eq!(r.users.len(), 14);
    }

    #[test]
    fn labels_and_pending_status() {
        let e = evaluation(vec![
            requirement(&["@acme/data"], 2, false),
            requirement(&["@alice", "@bob"], 1, false),
            requirement(&["@zed"], 0, true),
        ]);
        assert_eq!(labels(Some(&e)), ["countersign", "risk:high"]);
        assert_eq!(labels(None), ["countersign", "risk:unknown"]);
        // alice owns the agent: she is not listed as someone who may approve.
        let x = none_excluded();
        assert_eq!(
            pending_description(Some(&e), &x),
            "needs 2 of @acme/data; 1 of @bob"
        );
        let only_owner = evaluation(vec![requirement(&["@alice"], 1, false)]);
        assert_eq!(
            pending_description(Some(&only_owner), &x),
            "needs 1 of (no eligible owner)"
        );
        let long = evaluation(vec![requirement(&["@a-very-long-team-name"; 20], 1, false)]);
        assert_eq!(pending_description(Some(&long), &x).chars().count(), 140);
        assert_eq!(pending_description(None, &x), "awaiting review");
    }

    fn decision_view_(d: &Decision<'_>) -> DecisionView {
        decision_view(d, Some("https://cs.example/v1/requests/x/review"))
    }

    #[test]
    fn a_long_reason_is_cut_to_githubs_limit_keeping_the_link_and_the_marker() {
        let id = RequestId::generate();
        let digest = Digest::of_bytes(b"x");
        let reason = "wrong row\n".repeat(7_000);
        let actor = "x".repeat(300);
        let d = Decision {
            id: &id,
            state: State::Denied,
            actor: &actor,
            reason: Some(&reason),
            digest: &digest,
        };
        let view = decision_view_(&d);
        let comment = view.close_with.unwrap();
        assert!(comment.chars().count() <= MAX_BODY_CHARS);
        assert!(comment.contains("> wrong row\n> wrong row"));
        assert!(comment.contains("<https://cs.example/v1/requests/x/review>"));
        assert!(comment.ends_with(&decision_marker(&d)));
        assert!(view.description.chars().count() <= MAX_STATUS_CHARS);
        let short = decision_view(
            &Decision {
                reason: Some("no"),
                ..d
            },
            None,
        );
        assert!(!short.close_with.unwrap().contains("cut to fit"));
    }

    #[test]
    fn decisions_on_the_pull_request() {
        let id = RequestId::generate();
        let digest = Digest::of_bytes(b"x");
        let d = |state, actor, reason| Decision {
            id: &id,
            state,
            actor,
            reason,
            digest: &digest,
        };
        let approved = decision_view_(&d(State::Approved, "bob", None));
        assert_eq!(approved.status, StatusState::Success);
        assert_eq!(approved.description, "approved by @bob");
        assert!(approved.close_with.is_none());

        let denied = decision_view_(&d(State::Denied, "bob", Some("wrong table\nuse orders_v2")));
        assert_eq!(denied.status, StatusState::Failure);
        assert_eq!(denied.description, "denied by @bob");
        let comment = denied.close_with.unwrap();
        assert!(
            comment.contains("> wrong table\n> use orders_v2"),
            "{comment}"
        );
        assert!(comment.contains(&decision_marker(&d(State::Denied, "bob", None))));
        assert!(comment.contains(digest.as_str()));

        let expired = decision_view_(&d(State::Expired, "countersign", None));
        assert_eq!(expired.status, StatusState::Failure);
        assert!(expired.close_with.unwrap().contains("expired"));
        let cancelled = decision_view_(&d(State::Cancelled, "countersign", None));
        assert!(cancelled.close_with.is_some());
    }

    #[test]
    fn a_reason_with_bidi_controls_is_quoted_with_them_shown() {
        let id = RequestId::generate();
        let digest = Digest::of_bytes(b"x");
        let denied = decision_view_(&Decision {
            id: &id,
            state: State::Denied,
            actor: "bob",
            reason: Some("ok \u{202E}txet desrever\u{202C} a\u{200B}b"),
            digest: &digest,
        });
        let comment = denied.close_with.unwrap();
        assert!(
            comment.contains("> ok <U+202E>txet desrever<U+202C> a<U+200B>b"),
            "{comment}"
        );
    }
}
