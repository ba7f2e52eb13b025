//! The request lifecycle and the transitions it allows.
//!
//! ```text
//! received → pending_review → approved | denied | expired | cancelled
//! approved → executing → succeeded | failed | outcome_unknown
//! approved → failed                 (refused before anything ran: payload altered, no executor)
//! executing → executing             (an idempotent action retried after a crash)
//! received → expired | cancelled   (the review could not be opened in time)
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    PendingReview,
    Approved,
    Denied,
    Expired,
    Cancelled,
    Executing,
    Succeeded,
    Failed,
    /// countersign stopped while the action ran: it may or may not have happened.
    OutcomeUnknown,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Received,
        State::PendingReview,
        State::Approved,
        State::Denied,
        State::Expired,
        State::Cancelled,
        State::Executing,
        State::Succeeded,
        State::Failed,
        State::OutcomeUnknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::PendingReview => "pending_review",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
            State::Executing => "executing",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// Whether nothing more will happen to the request.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Denied
                | State::Expired
                | State::Cancelled
                | State::Succeeded
                | State::Failed
                | State::OutcomeUnknown
        )
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Received, PendingReview | Expired | Cancelled)
                | (PendingReview, Approved | Denied | Expired | Cancelled)
                | (Approved, Executing | Failed)
                | (Executing, Executing | Succeeded | Failed | OutcomeUnknown)
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("approved "), None);
    }

    #[test]
    fn no_way_around_review() {
        assert!(!State::Received.can_become(State::Approved));
        assert!(!State::Received.can_become(State::Executing));
        assert!(!State::PendingReview.can_become(State::Executing));
        assert!(!State::Denied.can_become(State::Approved));
        assert!(!State::Expired.can_become(State::PendingReview));
        assert!(State::PendingReview.can_become(State::Approved));
        assert!(State::Approved.can_become(State::Executing));
    }
}
