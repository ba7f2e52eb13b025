//! countersign's integration tests, one binary: real servers on loopback ports, real git, real
//! SQLite, the real `countersign` binary in child processes, and the fakes of the testkit
//! (`testkit/`: fake GitHub, Slack and Teams, the `Harness`). Every file is one module, one
//! area; every test runs in this one process, so none may change process-wide state (the
//! environment, the current directory, a global log subscriber): see `testkit::logs` and
//! `testkit::child` for the ways around it.

// The server on the embedded forge: intake, reviews, policy, storage.
mod durability;
mod embedded;
mod intake;
mod migrate_store;
mod policy;
mod policy_cli;
mod postgres;
mod replicas;
mod reviews;
mod secrecy;

// Executors, executions and their credentials.
mod credentials;
mod execute;
mod execution;
mod execution_crash;

// The GitHub forge against the fake GitHub, and the fakes' own checks.
mod fake_chat_selftest;
mod fake_github_selftest;
mod github_execution;
mod github_forge;
mod github_reviews;

// Notifications (Slack and Teams).
mod notify;

// The ledger: writing, pushing, exporting, verifying.
mod ledger;
mod ledger_export;
mod ledger_push;
mod ledger_support;
mod ledger_tamper;

// Masking.
mod corpus;
mod mask_accuracy;
mod mask_cli;
mod mask_fuzz;
