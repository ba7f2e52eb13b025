//! The audit ledger: every lifecycle event as an append-only, hash-chained, signed entry on a
//! dedicated branch of the GitOps repository, readable by auditors with plain git.
//!
//! Entries are written to the database in the transaction of the state change that causes
//! them (the store's `ledger` table, an outbox); the ledger writer job (`crate::jobs::ledger_writer`) commits them to git in order,
//! grouping those that arrive together; with a remote (GitHub), [`push`] publishes the branch
//! there, fast-forward only. `docs/LEDGER.md` (also the branch's README) describes
//! the format for auditors.

pub mod entry;
pub mod export;
pub mod git;
pub mod push;
pub mod sign;
pub mod status;
pub mod verify;

pub use entry::{Draft, GENESIS, Sealed};
pub use git::{DEFAULT_BRANCH, LedgerRepo};
pub use push::{LedgerRemote, PushError, PushSettings, PushStatus, Pushed};
pub use sign::{AllowedSigners, Signer};
pub use status::LedgerStatus;
