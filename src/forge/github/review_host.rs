//! GitHub as a [`ReviewHost`] and a [`TeamDirectory`]: pull requests' state, each reviewer's
//! latest decision and `/deny` comments for reconciliation, countersign's own repository and
//! installation ids to tell its deliveries from another repository's, and organisation team
//! membership (answers cached for a minute).

use super::GitHubClient;
use super::webhook::GitHubEvent;
use crate::forge::ForgeError;
use crate::forge::review_events::{
    Foreign, Origin, ReviewEvent, ReviewHost, ReviewState, ReviewStatus, TeamDirectory,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a team membership answer is trusted.
const TEAM_CACHE: Duration = Duration::from_secs(60);

/// Reviews and teams on GitHub, through the App's client.
pub struct GitHubReviews {
    client: Arc<GitHubClient>,
    reconcile_interval: Duration,
    /// `(team, login)` lower-cased → (member, when asked).
    teams: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

impl GitHubReviews {
    pub fn new(client: Arc<GitHubClient>, reconcile_interval: Duration) -> Self {
        Self {
            client,
            reconcile_interval,
            teams: Mutex::default(),
        }
    }

    /// countersign's repository id and installation id (asked of GitHub once).
    async fn identity(&self) -> Result<(u64, u64), ForgeError> {
        if let Some(known) = self.client.known_identity() {
            return Ok(known);
        }
        Ok((
            self.client.repository_id().await?,
            self.client.installation_id().await?,
        ))
    }

    fn number(review: &str) -> Result<u64, ForgeError> {
        review
            .parse()
            .map_err(|_| ForgeError::Permanent(format!("`{review}` is not a pull request number")))
    }
}

#[async_trait::async_trait]
impl ReviewHost for GitHubReviews {
    fn labels(&self) -> (&'static str, &'static str) {
        ("GitHub", "pull request")
    }

    fn reconcile_interval(&self) -> Duration {
        self.reconcile_interval
    }

    async fn prepare(&self) -> Result<(), ForgeError> {
        self.identity().await.map(|_| ())
    }

    async fn own_login(&self) -> Result<String, ForgeError> {
        self.client.bot_login().await
    }

    async fn check_origin(&self, origin: &Origin) -> Result<Result<(), Foreign>, ForgeError> {
        Ok(origin.check(self.identity().await?))
    }

    async fn status(&self, review: &str) -> Result<ReviewStatus, ForgeError> {
        let pull = self.client.get_pull(Self::number(review)?).await?;
        let state = if pull.is_merged() {
            ReviewState::Merged {
                by: pull.merger().map(str::to_owned),
            }
        } else if pull.is_open() {
            ReviewState::Open
        } else {
            ReviewState::Closed
        };
        Ok(ReviewStatus {
            state,
            head: pull.head.sha,
        })
    }

    async fn decisions(&self, review: &str) -> Result<Vec<ReviewEvent>, ForgeError> {
        let number = Self::number(review)?;
        let reviews = self.client.reviews(number).await?;
        let comments = self.client.comments(number).await?;
        Ok(super::events::decisions(number, &reviews, &comments))
    }

    /// Inbox entries written before events were stored forge-neutral: GitHub's parsed event.
    fn legacy_event(&self, stored: &str) -> Option<ReviewEvent> {
        serde_json::from_str::<GitHubEvent>(stored)
            .ok()?
            .review_event()
    }
}

#[async_trait::async_trait]
impl TeamDirectory for GitHubReviews {
    async fn teams_of(
        &self,
        login: &str,
        mut wanted: Vec<String>,
    ) -> Result<Vec<String>, ForgeError> {
        wanted.sort_by_key(|t| t.to_lowercase());
        wanted.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let mut member_of = Vec::new();
        for team in wanted {
            let Some((org, slug)) = team.split_once('/') else {
                continue;
            };
            let key = (team.to_lowercase(), login.to_lowercase());
            let cached = self
                .teams
                .lock()
                .expect("team cache")
                .get(&key)
                .filter(|(_, at)| at.elapsed() < TEAM_CACHE)
                .map(|(m, _)| *m);
            let member = match cached {
                Some(m) => m,
                None => {
                    let m = self.client.is_team_member(org, slug, login).await?;
                    self.teams
                        .lock()
                        .expect("team cache")
                        .insert(key, (m, Instant::now()));
                    m
                }
            };
            if member {
                member_of.push(team);
            }
        }
        Ok(member_of)
    }
}
