//! The command line's arguments (clap): every command, its flags, and the environment variables
//! they can also come from.

use super::ledger;
use crate::config::ServeOverrides;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "countersign",
    version,
    about = "GitOps approval bot: AI agents ask, humans countersign in git"
)]
pub struct Cli {
    /// Configuration file (default: ./countersign.toml when present).
    #[arg(long, global = true, env = "COUNTERSIGN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
    /// Log level or filter (e.g. info, countersign=debug); RUST_LOG overrides it.
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_LOG_LEVEL",
        value_name = "FILTER"
    )]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded default: SQLite and a local git repository in .countersign/).
    Serve(ServeArgs),
    /// Submit a signed change request as an agent.
    Submit(SubmitArgs),
    /// Show a request's status, as the agent that submitted it.
    Status(StatusArgs),
    /// Approve, deny or inspect a request as a reviewer.
    Review(ReviewArgs),
    /// Walk the whole flow against a real server on a free loopback port.
    Demo(DemoArgs),
    /// Generate an agent key or a reviewer token.
    Keys(KeysArgs),
    /// Check a policies/ directory or explain what it decides.
    Policy(PolicyArgs),
    /// Mask PII and secrets in a JSON document or a text stream (as the server does).
    Mask(MaskArgs),
    /// Verify the audit ledger branch, show a request's timeline, export an audit period.
    Ledger(ledger::LedgerArgs),
    /// Copy a SQLite store into an empty PostgreSQL database and verify it (stop the server
    /// first).
    MigrateStore(super::migrate::MigrateStoreArgs),
}

#[derive(Debug, Args)]
pub struct MaskArgs {
    /// Input file, or - (default) for standard input.
    pub input: Option<PathBuf>,
    /// json: one or more JSON documents (each printed masked on one line); text: any text.
    #[arg(long, default_value = "text", value_parser = ["json", "text"])]
    pub format: String,
    /// Print the findings as JSON lines (type and location only) instead of the masked input.
    #[arg(long)]
    pub report: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Validate every policy file; problems print as file:line:column: message (exit 1).
    Check {
        /// The policies directory.
        #[arg(long, env = "COUNTERSIGN_POLICY_DIR", default_value = "policies")]
        dir: PathBuf,
        /// The server uses GitHub (`[github]`), which resolves `@org/team` owners itself:
        /// teams need not be listed in teams.toml. Implied when the configuration file
        /// (`--config`) has a `[github]` section.
        #[arg(long)]
        github_teams: bool,
    },
    /// Print, as JSON, which rules match, who must approve and the overall decision.
    Explain {
        /// The policies directory.
        #[arg(long, env = "COUNTERSIGN_POLICY_DIR", default_value = "policies")]
        dir: PathBuf,
        /// A subject such as actions/db.export/prod/customers or a file path (repeatable).
        #[arg(long, required_unless_present = "request")]
        subject: Vec<String>,
        /// A request body (JSON) to take the subjects and environment from.
        #[arg(long, value_name = "FILE", conflicts_with = "subject")]
        request: Option<PathBuf>,
        /// Also check the agent's allowed subjects (agents.toml).
        #[arg(long)]
        agent: Option<String>,
        /// Environment [default: the request's, or prod].
        #[arg(long)]
        environment: Option<String>,
    },
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "COUNTERSIGN_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for the database, keys and the embedded git repository [default: .countersign].
    #[arg(long, env = "COUNTERSIGN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use this existing git repository as the GitOps repository instead of <data-dir>/repo.git.
    #[arg(long, env = "COUNTERSIGN_REPO", value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// Base branch of the GitOps repository [default: main].
    #[arg(long, env = "COUNTERSIGN_BASE_BRANCH", value_name = "BRANCH")]
    pub base_branch: Option<String>,
    /// URL under which people reach this server, for links [default: http://<listen>].
    #[arg(long, env = "COUNTERSIGN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "COUNTERSIGN_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Accepted clock difference for signed calls [default: 5m].
    #[arg(long, env = "COUNTERSIGN_TIMESTAMP_SKEW", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timestamp_skew: Option<Duration>,
    /// How long a request waits for a decision before it expires [default: 24h].
    #[arg(long, env = "COUNTERSIGN_REQUEST_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub request_ttl: Option<Duration>,
    /// How often expiry is checked [default: 5s].
    #[arg(long, env = "COUNTERSIGN_SWEEP_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub sweep_interval: Option<Duration>,
    /// SQLite durability: normal (survives process crashes) or full (also power loss) [default: normal].
    #[arg(long, env = "COUNTERSIGN_SQLITE_SYNCHRONOUS", value_name = "MODE")]
    pub sqlite_synchronous: Option<String>,
    /// Branch of the GitOps repository holding the audit ledger [default: countersign/ledger].
    #[arg(long, env = "COUNTERSIGN_LEDGER_BRANCH", value_name = "BRANCH")]
    pub ledger_branch: Option<String>,
    /// PostgreSQL instead of SQLite in the data directory: postgres://user@host:port/database
    /// (any number of replicas may share it; see docs/DEPLOYMENT.md).
    #[arg(
        long,
        env = "COUNTERSIGN_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// This replica's name in logs and the database [default: host name and process id].
    #[arg(long, env = "COUNTERSIGN_REPLICA_NAME", value_name = "NAME")]
    pub replica_name: Option<String>,
    /// PostgreSQL: how long leadership and queue claims outlive a replica that stopped
    /// answering (failover time) [default: 30s].
    #[arg(long, env = "COUNTERSIGN_LEASE_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lease_ttl: Option<Duration>,
}

impl ServeArgs {
    pub fn overrides(&self) -> ServeOverrides {
        ServeOverrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            repo: self.repo.clone(),
            base_branch: self.base_branch.clone(),
            public_url: self.public_url.clone(),
            max_body_bytes: self.max_body_bytes,
            timestamp_skew: self.timestamp_skew,
            request_ttl: self.request_ttl,
            sweep_interval: self.sweep_interval,
            sqlite_synchronous: self.sqlite_synchronous.clone(),
            ledger_branch: self.ledger_branch.clone(),
            database_url: self.database_url.clone(),
            replica_name: self.replica_name.clone(),
            lease_ttl: self.lease_ttl,
        }
    }
}

/// Where the server is and who the agent is.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Server base URL [default: http://127.0.0.1:8080].
    #[arg(long, env = "COUNTERSIGN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Agent id [default: local-agent].
    #[arg(long, env = "COUNTERSIGN_AGENT", value_name = "ID")]
    pub agent: Option<String>,
    /// File holding the agent key [default: .countersign/keys/<agent>.key].
    #[arg(long, env = "COUNTERSIGN_AGENT_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The agent key itself (environment only; never pass secrets as flags).
    #[arg(
        long,
        env = "COUNTERSIGN_AGENT_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub agent_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Send this file verbatim as the JSON body (other request flags are then ignored).
    #[arg(long, env = "COUNTERSIGN_SUBMIT_BODY_FILE", value_name = "FILE", conflicts_with_all = ["action", "payload", "payload_file", "change"])]
    pub body_file: Option<PathBuf>,
    /// action or change.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_KIND", default_value = "action")]
    pub kind: String,
    /// The operation, e.g. db.export.
    #[arg(
        long,
        env = "COUNTERSIGN_SUBMIT_ACTION",
        required_unless_present = "body_file"
    )]
    pub action: Option<String>,
    /// What it acts on, e.g. prod/customers.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_RESOURCE", default_value = "")]
    pub resource: String,
    /// Target environment, e.g. prod.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_ENVIRONMENT", default_value = "")]
    pub environment: String,
    /// Why the agent needs this.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_JUSTIFICATION", default_value = "")]
    pub justification: String,
    /// Payload as JSON text.
    #[arg(
        long,
        env = "COUNTERSIGN_SUBMIT_PAYLOAD",
        value_name = "JSON",
        conflicts_with = "payload_file"
    )]
    pub payload: Option<String>,
    /// Payload from a JSON file.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_PAYLOAD_FILE", value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// A proposed file edit for kind change: REPO_PATH=LOCAL_FILE (repeatable; comma-separated in the environment).
    #[arg(
        long,
        env = "COUNTERSIGN_SUBMIT_CHANGES",
        value_delimiter = ',',
        value_name = "REPO_PATH=LOCAL_FILE"
    )]
    pub change: Vec<String>,
    /// URL the agent wants to be called back on.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_CALLBACK_URL")]
    pub callback_url: Option<String>,
    /// Makes retries safe: the same key returns the original answer.
    #[arg(long, env = "COUNTERSIGN_SUBMIT_IDEMPOTENCY_KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Request id (cr_...).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Server base URL [default: http://127.0.0.1:8080].
    #[arg(long, global = true, env = "COUNTERSIGN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// File holding the reviewer token [default: .countersign/keys/local-reviewer.token].
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_REVIEWER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub token_file: Option<PathBuf>,
    /// The reviewer token itself (environment only).
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_REVIEWER_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub reviewer_token: Option<String>,
    #[command(subcommand)]
    pub action: ReviewAction,
}

#[derive(Debug, Subcommand)]
pub enum ReviewAction {
    /// Approve a pending request.
    Approve {
        id: String,
        /// Optional note recorded with the approval.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a pending request; the reason goes back to the agent.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Show the masked request and its decisions.
    Show { id: String },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's state (database, git repository) in this directory.
    #[arg(long, env = "COUNTERSIGN_DEMO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub kind: KeysKind,
}

#[derive(Debug, Subcommand)]
pub enum KeysKind {
    /// A new agent signing key (prints a config snippet).
    Agent {
        /// Agent id for the snippet.
        #[arg(long, default_value = "my-agent")]
        id: String,
        /// Write the key to this new file (0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A new JWT signing key for the tokens countersign issues: it signs from the next start
    /// on; older keys stay in the JWKS, so tokens they signed keep verifying.
    RotateJwt {
        /// Data directory holding keys/jwt/ [default: `jwt_keys_dir` of the configuration,
        /// else its `data_dir`, or .countersign].
        #[arg(long, env = "COUNTERSIGN_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// A new payload key for <data-dir>/keys/payload.key: it seals from the next start on; the
    /// old one moves to keys/payload-previous/ so what it sealed stays readable.
    RotatePayload {
        /// Data directory holding keys/ [default: `data_dir` of the configuration, or
        /// .countersign].
        #[arg(long, env = "COUNTERSIGN_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// A new reviewer token and the hash to configure.
    Reviewer {
        /// Reviewer name for the snippet.
        #[arg(long)]
        name: String,
        /// Write the token to this new file (0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}
