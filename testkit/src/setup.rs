//! The one way the GitHub tests start countersign against the fake GitHub: [`Setup::github`]
//! builds the fake (its `acme/gitops` seeded with the test policy or given files), writes the
//! server's `[github]` section ([`FakeGitHub::countersign_config`]) and starts a real server on
//! a temporary data directory.

use crate::fake_github::{BASE, Builder, FakeGitHub, REPO};
use crate::{
    BOB, KEY_A_NEW, TEST_ACTIONS_TOML, TEST_AGENTS_TOML, TEST_CODEOWNERS, TEST_POLICY_TOML,
    TEST_TEAMS_TOML, key,
};
use countersign::app::Server;
use countersign::cli::client::{AgentClient, ReviewerClient};
use countersign::config::ServerConfig;

/// What [`Setup::github`] starts; [`GitHub::default`] is the test policy on `main`, no extra
/// `[github]` lines, and webhooks delivered to the server.
pub struct GitHub {
    /// The files on `main` of `acme/gitops`.
    pub files: Vec<(String, String)>,
    /// More `key = value` lines for `[github]` (e.g. `reconcile_interval = "1s"`).
    pub extra: String,
    /// Whether the fake delivers its webhooks to the server's `/webhooks/github`.
    pub webhooks: bool,
}

impl Default for GitHub {
    fn default() -> Self {
        Self {
            files: policy_files(TEST_TEAMS_TOML),
            extra: String::new(),
            webhooks: true,
        }
    }
}

/// The test policy (`TEST_*`) as repository files, with `teams` as `policies/teams.toml`.
pub fn policy_files(teams: &str) -> Vec<(String, String)> {
    [
        ("policies/CODEOWNERS", TEST_CODEOWNERS),
        ("policies/policy.toml", TEST_POLICY_TOML),
        ("policies/agents.toml", TEST_AGENTS_TOML),
        ("policies/teams.toml", teams),
        ("policies/actions.toml", TEST_ACTIONS_TOML),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_owned(), c.to_owned()))
    .collect()
}

/// A fake GitHub and a countersign server using it through `[github]`.
pub struct Setup {
    pub fake: FakeGitHub,
    pub server: Server,
    /// The server's data directory (its configuration is [`crate::config`] of it).
    pub dir: tempfile::TempDir,
    /// The server has notification destinations (for [`Setup::settle`]).
    notifying: bool,
}

impl Setup {
    /// Starts the fake GitHub (`FakeGitHub::builder()` with `github.files` on `acme/gitops`,
    /// then shaped further by `build`) and a server with [`crate::config`]'s agents and
    /// reviewers, `[github]` pointing at the fake, and whatever `configure` changes.
    pub async fn github(
        github: GitHub,
        build: impl FnOnce(Builder) -> Builder,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Setup {
        let files: Vec<(&str, &str)> = github
            .files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        let fake = build(FakeGitHub::builder().repo(REPO, BASE, &files))
            .start()
            .await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config(dir.path());
        config.github = Some(fake.countersign_config(dir.path(), &github.extra));
        configure(&mut config);
        let server = Server::start(&config).await.expect("server starts");
        if github.webhooks {
            fake.set_webhook_url(&format!("{}/webhooks/github", server.url()));
        }
        let notifying = !config.notify.targets.is_empty();
        Setup {
            fake,
            server,
            dir,
            notifying,
        }
    }

    /// Waits until the fake has delivered every webhook it queued (or lost it, as told) and
    /// the server is idle (see [`crate::settle`]; its ledger branch is in its clone of
    /// `acme/gitops`).
    pub async fn settle(&self) {
        crate::wait_until(
            "the fake GitHub to deliver its webhooks",
            std::time::Duration::from_secs(30),
            async || {
                let deliveries = self.fake.deliveries();
                deliveries
                    .iter()
                    .all(|d| d.lost || d.status.is_some() || d.error.is_some())
            },
        )
        .await;
        let db = crate::config(self.dir.path()).database_path();
        let clone = self.dir.path().join("github/acme/gitops.git");
        let timeout = std::time::Duration::from_secs(30);
        crate::settle::settle(
            &crate::settle::Db::Sqlite(db),
            &clone,
            self.notifying,
            timeout,
        )
        .await;
    }

    /// agent-a (with its current key).
    pub fn agent(&self) -> AgentClient {
        AgentClient::new(&self.server.url(), "agent-a", key(KEY_A_NEW))
    }

    /// A reviewer by API token (`BOB`, …).
    pub fn reviewer(&self, token: &str) -> ReviewerClient {
        ReviewerClient::new(&self.server.url(), token)
    }

    /// bob, who may approve most of the test policy.
    pub fn bob(&self) -> ReviewerClient {
        self.reviewer(BOB)
    }
}
