//! GitHub webhooks: signature verification (`X-Hub-Signature-256`, HMAC-SHA256 over the raw
//! body, checked in constant time against every configured secret) and the events countersign
//! handles, parsed into a small domain enum. Only the fields countersign uses are read, so
//! GitHub adding fields never breaks parsing.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header must be `sha256=` and 64 hex digits")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature matches no configured webhook secret")]
    Mismatch,
}

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) against every secret and returns the index of
/// the one that matched. Every secret is always tried, and each comparison is constant time.
pub fn verify_signature<S: AsRef<[u8]>>(
    secrets: &[S],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<usize, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut given = [0u8; 32];
    hex::decode_to_slice(hex_sig, &mut given).map_err(|_| SignatureError::Malformed)?;
    let mut matched = None;
    for (i, secret) in secrets.iter().enumerate() {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC takes keys of any size");
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        if bool::from(expected.as_slice().ct_eq(&given)) && matched.is_none() {
            matched = Some(i);
        }
    }
    matched.ok_or(SignatureError::Mismatch)
}

/// `X-Hub-Signature-256` for `body` under `secret`, as GitHub computes it (for tests and fakes).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl GitHubEvent {
    /// Where the event happened (`None` for `ping` and unknown events).
    pub fn source(&self) -> Option<&Source> {
        match self {
            GitHubEvent::Review(r) => Some(&r.source),
            GitHubEvent::PullRequest(p) => Some(&p.source),
            GitHubEvent::Comment(c) => Some(&c.source),
            GitHubEvent::Ping | GitHubEvent::Unknown { .. } => None,
        }
    }
}

/// A webhook event countersign acts on; anything else is [`GitHubEvent::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GitHubEvent {
    /// `pull_request_review` submitted / edited / dismissed.
    Review(ReviewEvent),
    /// `pull_request` synchronize / closed / reopened.
    PullRequest(PullRequestEvent),
    /// `issue_comment` created / edited.
    Comment(CommentEvent),
    /// `ping`, sent when the webhook is set up.
    Ping,
    /// Any other event or action: acknowledged and ignored.
    Unknown {
        event: String,
        action: Option<String>,
    },
}

/// Where an event happened. A GitHub App has one webhook URL for all its installations, so
/// this says whether the event is about countersign's repository at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `owner/name`.
    pub repository: Option<String>,
    /// The repository's numeric id (a name can be reused after a rename or deletion; an id
    /// cannot).
    #[serde(default)]
    pub repository_id: Option<u64>,
    pub installation_id: Option<u64>,
    /// Who caused the event.
    pub sender: String,
}

/// The pull request as the event shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRef {
    pub number: u64,
    pub head_sha: String,
    /// The head branch (`countersign/<id>` for countersign's reviews).
    pub head_branch: String,
    /// `open` or `closed`.
    pub state: String,
    /// Who merged it, once merged.
    #[serde(default)]
    pub merged_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewAction {
    Submitted,
    Edited,
    Dismissed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    /// A state GitHub may add later.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewEvent {
    pub action: ReviewAction,
    pub source: Source,
    pub pull: PullRef,
    pub review_id: u64,
    pub reviewer: String,
    pub state: ReviewState,
    /// The commit the review was given on (`None` for reviews on a commit since gone).
    pub commit_id: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullRequestAction {
    Synchronize,
    Closed { merged: bool },
    Reopened,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestEvent {
    pub action: PullRequestAction,
    pub source: Source,
    pub pull: PullRef,
    /// For `synchronize`: the head before the push.
    pub before: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommentAction {
    Created,
    Edited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentEvent {
    pub action: CommentAction,
    pub source: Source,
    /// The issue or pull request number.
    pub issue: u64,
    /// Whether the issue is a pull request.
    pub is_pull_request: bool,
    pub comment_id: u64,
    pub author: String,
    pub body: String,
}

/// A known event whose body is not what GitHub sends.
#[derive(Debug, thiserror::Error)]
#[error("the `{event}` event body is not valid: {problem}")]
pub struct ParseError {
    pub event: String,
    pub problem: String,
}

/// Parses a delivery by its `X-GitHub-Event` name.
pub fn parse_event(event: &str, body: &[u8]) -> Result<GitHubEvent, ParseError> {
    let fail = |e: serde_json::Error| ParseError {
        event: event.to_owned(),
        problem: format!("line {}, column {}: {}", e.line(), e.column(), category(&e)),
    };
    let unknown = |action: Option<String>| GitHubEvent::Unknown {
        event: event.to_owned(),
        action,
    };
    Ok(match event {
        "ping" => GitHubEvent::Ping,
        "pull_request_review" => {
            let p: wire::ReviewPayload = serde_json::from_slice(body).map_err(fail)?;
            let action = match p.action.as_str() {
                "submitted" => ReviewAction::Submitted,
                "edited" => ReviewAction::Edited,
                "dismissed" => ReviewAction::Dismissed,
                _ => return Ok(unknown(Some(p.action))),
            };
            let state = match p.review.state.to_ascii_lowercase().as_str() {
                "approved" => ReviewState::Approved,
                "changes_requested" => ReviewState::ChangesRequested,
                "commented" => ReviewState::Commented,
                "dismissed" => ReviewState::Dismissed,
                _ => ReviewState::Other,
            };
            GitHubEvent::Review(ReviewEvent {
                action,
                source: p.common.source(),
                pull: p.pull_request.into(),
                review_id: p.review.id,
                reviewer: p.review.user.login,
                state,
                commit_id: p.review.commit_id,
                body: p.review.body,
            })
        }
        "pull_request" => {
            let p: wire::PullRequestPayload = serde_json::from_slice(body).map_err(fail)?;
            let action = match p.action.as_str() {
                "synchronize" => PullRequestAction::Synchronize,
                "closed" => PullRequestAction::Closed {
                    merged: p.pull_request.merged.unwrap_or(false),
                },
                "reopened" => PullRequestAction::Reopened,
                _ => return Ok(unknown(Some(p.action))),
            };
            GitHubEvent::PullRequest(PullRequestEvent {
                action,
                source: p.common.source(),
                pull: p.pull_request.into(),
                before: p.before,
            })
        }
        "issue_comment" => {
            let p: wire::CommentPayload = serde_json::from_slice(body).map_err(fail)?;
            let action = match p.action.as_str() {
                "created" => CommentAction::Created,
                "edited" => CommentAction::Edited,
                _ => return Ok(unknown(Some(p.action))),
            };
            GitHubEvent::Comment(CommentEvent {
                action,
                source: p.common.source(),
                issue: p.issue.number,
                is_pull_request: p.issue.pull_request.is_some(),
                comment_id: p.comment.id,
                author: p.comment.user.login,
                body: p.comment.body.unwrap_or_default(),
            })
        }
        _ => {
            let action = serde_json::from_slice::<wire::ActionOnly>(body)
                .ok()
                .and_then(|a| a.action);
            unknown(action)
        }
    })
}

/// serde's message may quote a value from the body; only its category is reported.
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Eof => "truncated",
    }
}

/// GitHub's JSON, reduced to what countersign reads.
mod wire {
    use super::{PullRef, Source};
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct ActionOnly {
        pub action: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct User {
        pub login: String,
    }

    #[derive(Deserialize)]
    pub struct Repository {
        pub id: Option<u64>,
        pub full_name: String,
    }

    #[derive(Deserialize)]
    pub struct Installation {
        pub id: u64,
    }

    #[derive(Deserialize)]
    pub struct Common {
        pub repository: Option<Repository>,
        pub installation: Option<Installation>,
        pub sender: User,
    }

    impl Common {
        pub fn source(self) -> Source {
            Source {
                repository_id: self.repository.as_ref().and_then(|r| r.id),
                repository: self.repository.map(|r| r.full_name),
                installation_id: self.installation.map(|i| i.id),
                sender: self.sender.login,
            }
        }
    }

    #[derive(Deserialize)]
    pub struct Head {
        pub sha: String,
        #[serde(rename = "ref")]
        pub branch: String,
    }

    #[derive(Deserialize)]
    pub struct PullRequest {
        pub number: u64,
        pub state: String,
        pub head: Head,
        pub merged: Option<bool>,
        pub merged_by: Option<User>,
    }

    impl From<PullRequest> for PullRef {
        fn from(p: PullRequest) -> Self {
            PullRef {
                number: p.number,
                head_sha: p.head.sha,
                head_branch: p.head.branch,
                state: p.state,
                merged_by: p.merged_by.map(|u| u.login),
            }
        }
    }

    #[derive(Deserialize)]
    pub struct Review {
        pub id: u64,
        pub user: User,
        pub state: String,
        pub commit_id: Option<String>,
        pub body: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct ReviewPayload {
        pub action: String,
        pub review: Review,
        pub pull_request: PullRequest,
        #[serde(flatten)]
        pub common: Common,
    }

    #[derive(Deserialize)]
    pub struct PullRequestPayload {
        pub action: String,
        pub pull_request: PullRequest,
        pub before: Option<String>,
        #[serde(flatten)]
        pub common: Common,
    }

    #[derive(Deserialize)]
    pub struct Issue {
        pub number: u64,
        pub pull_request: Option<serde::de::IgnoredAny>,
    }

    #[derive(Deserialize)]
    pub struct Comment {
        pub id: u64,
        pub user: User,
        pub body: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct CommentPayload {
        pub action: String,
        pub issue: Issue,
        pub comment: Comment,
        #[serde(flatten)]
        pub common: Common,
    }
}

#[cfg(test)]
mod tests;
