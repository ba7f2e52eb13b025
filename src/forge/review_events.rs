//! What people do on a review, in words every forge shares: the events the engine's review
//! inbox applies (an approval on a commit, a denial with its reason, a push, a merge, …) and
//! what the engine asks of a forge that hosts human decisions ([`ReviewHost`]: its own account,
//! a review's state, each reviewer's latest decision) and of one that knows teams
//! ([`TeamDirectory`]). The GitHub forge implements both over webhooks and its REST API and
//! translates GitHub's events into these; the engine never sees GitHub's shapes.

use super::ForgeError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Something that happened on a review, as the forge reports it (a webhook delivery, or what
/// reconciliation found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewEvent {
    /// The review it is about: [`super::ReviewRef::reference`] (a pull request number on
    /// GitHub).
    pub review: String,
    /// Who acted: a forge login.
    pub actor: String,
    pub action: ReviewAction,
    /// Where the forge says it happened; checked against countersign's own before it counts.
    #[serde(default)]
    pub origin: Option<Origin>,
}

/// What the actor did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReviewAction {
    /// An approving review, given on `commit` (`None`: on a commit since gone).
    Approved { commit: Option<String> },
    /// A denial: a review asking for changes, or a deny command. The reason is free text a
    /// person typed (masked before it is stored).
    Denied { reason: String },
    /// The actor's review was dismissed: their approval no longer counts.
    Dismissed,
    /// Commits were pushed to the review.
    Pushed,
    /// The review was merged into the base branch.
    Merged,
    /// The review was closed without merging.
    Closed,
    /// A closed review was opened again.
    Reopened,
    /// Nothing to decide (a plain comment, a review without a decision): `note` says what.
    Noted { note: String },
}

/// The forge's ids of the repository and the app installation an event came from. A forge
/// app has one webhook for all its installations and repositories, so an event about another
/// repository's review #10 must not act on countersign's review #10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub repository_id: Option<u64>,
    pub installation_id: Option<u64>,
}

/// Why an event is not about countersign's repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    Repository,
    Installation,
}

impl Foreign {
    pub fn as_str(self) -> &'static str {
        match self {
            Foreign::Repository => "foreign_repository",
            Foreign::Installation => "foreign_installation",
        }
    }
}

impl Origin {
    /// Whether this is countersign's repository (by id: a name can be reused) and
    /// installation, given as `(repository id, installation id)`.
    pub fn check(&self, (repository, installation): (u64, u64)) -> Result<(), Foreign> {
        if self.repository_id != Some(repository) {
            return Err(Foreign::Repository);
        }
        if self.installation_id != Some(installation) {
            return Err(Foreign::Installation);
        }
        Ok(())
    }
}

/// A review as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewStatus {
    pub state: ReviewState,
    /// The commit at the review's head.
    pub head: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewState {
    Open,
    /// Closed without merging.
    Closed,
    /// Merged, by this login when the forge says.
    Merged {
        by: Option<String>,
    },
}

/// A forge where people decide on reviews themselves (GitHub pull request reviews): the
/// engine's review inbox applies its events and reconciles with it.
#[async_trait::async_trait]
pub trait ReviewHost: Send + Sync + 'static {
    /// The forge's name for people ("GitHub") and for a review ("pull request"), for the
    /// reasons recorded with decisions.
    fn labels(&self) -> (&'static str, &'static str);

    /// How often pending reviews are reconciled with the forge.
    fn reconcile_interval(&self) -> Duration;

    /// Learns countersign's own ids on the forge (at start-up; until they are known, events
    /// are checked when they are applied).
    async fn prepare(&self) -> Result<(), ForgeError>;

    /// The account countersign acts as on the forge: its pushes, merges and closes are its own.
    async fn own_login(&self) -> Result<String, ForgeError>;

    /// Whether `origin` is countersign's repository and installation.
    async fn check_origin(&self, origin: &Origin) -> Result<Result<(), Foreign>, ForgeError>;

    /// The review as it stands now.
    async fn status(&self, review: &str) -> Result<ReviewStatus, ForgeError>;

    /// What reconciliation applies, as events: each reviewer's latest approving, denying or
    /// dismissed review, then the deny commands (reasons as typed, not yet masked).
    async fn decisions(&self, review: &str) -> Result<Vec<ReviewEvent>, ForgeError>;

    /// An inbox entry stored by an earlier version in the forge's own format, if it is one.
    fn legacy_event(&self, stored: &str) -> Option<ReviewEvent> {
        let _ = stored;
        None
    }
}

/// Team membership the forge knows (GitHub organisation teams).
#[async_trait::async_trait]
pub trait TeamDirectory: Send + Sync + 'static {
    /// Which of `teams` (`org/team`) `login` is an active member of.
    async fn teams_of(&self, login: &str, teams: Vec<String>) -> Result<Vec<String>, ForgeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(repository_id: Option<u64>, installation_id: Option<u64>) -> Origin {
        Origin {
            repository_id,
            installation_id,
        }
    }

    #[test]
    fn only_countersigns_repository_id_and_installation_are_its_own() {
        let ours = (42, 7);
        assert_eq!(origin(Some(42), Some(7)).check(ours), Ok(()));
        // The same name is not enough: a repository recreated under it has another id.
        assert_eq!(
            origin(Some(43), Some(7)).check(ours),
            Err(Foreign::Repository)
        );
        assert_eq!(origin(None, Some(7)).check(ours), Err(Foreign::Repository));
        assert_eq!(
            origin(Some(42), Some(8)).check(ours),
            Err(Foreign::Installation)
        );
        assert_eq!(
            origin(Some(42), None).check(ours),
            Err(Foreign::Installation)
        );
    }

    #[test]
    fn events_are_stored_in_a_forge_neutral_form() {
        let event = ReviewEvent {
            review: "12".into(),
            actor: "bob".into(),
            action: ReviewAction::Denied {
                reason: "not now".into(),
            },
            origin: Some(origin(Some(1), Some(2))),
        };
        let stored = serde_json::to_string(&event).unwrap();
        assert!(stored.contains(r#""type":"denied""#), "{stored}");
        assert_eq!(serde_json::from_str::<ReviewEvent>(&stored).unwrap(), event);
    }
}
