//! What countersign POSTs to an agent's `callback_url` when its request ends (signed like the
//! agent's own calls, with `X-Countersign-Request` naming the request).

use super::{ExecutionOutcome, RequestId, State};
use serde::{Deserialize, Serialize};

/// The body of a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackBody {
    pub id: RequestId,
    /// The final state (`succeeded`, `failed`, `outcome_unknown`, ...).
    pub state: State,
    pub digest: String,
    /// The ledger event that ended it.
    pub event: String,
    /// Why it ended that way, when countersign says; `null` otherwise.
    pub reason: Option<String>,
    /// What ran; `null` when nothing did.
    pub outcome: Option<ExecutionOutcome>,
    pub at: String,
}
