//! The policy in force: compiled from `policies/` at the base branch's current commit and
//! swapped atomically when the branch moves. A policy that does not compile is kept as its
//! errors, so intake fails closed until it is fixed.

use crate::forge::Forge;
use crate::policy::{CheckError, POLICY_DIR, Policy};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The policy at one base-branch commit, or why it cannot be used.
pub struct LoadedPolicy {
    pub commit: String,
    pub policy: Result<Arc<Policy>, Vec<CheckError>>,
}

pub struct PolicySource {
    current: RwLock<Arc<LoadedPolicy>>,
    /// The last policy loaded at an older commit (requests execute under their pinned one).
    pinned: RwLock<Option<Arc<LoadedPolicy>>>,
    /// The forge resolves `@org/team` owners (GitHub).
    remote_teams: std::sync::atomic::AtomicBool,
}

impl Default for PolicySource {
    fn default() -> Self {
        let not_loaded = CheckError::at_line("policies/CODEOWNERS", 1, 1, "policy not loaded yet");
        Self {
            current: RwLock::new(Arc::new(LoadedPolicy {
                commit: String::new(),
                policy: Err(vec![not_loaded]),
            })),
            pinned: RwLock::new(None),
            remote_teams: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl PolicySource {
    /// Teams missing from `teams.toml` are resolved by the forge (set before the first load).
    pub fn set_remote_teams(&self, on: bool) {
        self.remote_teams
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn compile(
        &self,
        commit: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Policy, Vec<CheckError>> {
        if self.remote_teams.load(std::sync::atomic::Ordering::Relaxed) {
            Policy::compile_with_remote_teams(commit, files)
        } else {
            Policy::compile(commit, files)
        }
    }

    pub fn current(&self) -> Arc<LoadedPolicy> {
        self.current.read().expect("policy lock").clone()
    }

    /// The policy at `commit` (the one a request was evaluated under): the current one when
    /// the base branch has not moved since, else compiled from that commit (and kept).
    pub async fn at(&self, forge: &dyn Forge, commit: &str) -> anyhow::Result<Arc<LoadedPolicy>> {
        let current = self.current();
        if current.commit == commit {
            return Ok(current);
        }
        if let Some(p) = self.pinned.read().expect("policy lock").as_ref()
            && p.commit == commit
        {
            return Ok(p.clone());
        }
        let files = forge.read_files(commit, POLICY_DIR).await?;
        let loaded = Arc::new(LoadedPolicy {
            commit: commit.to_owned(),
            policy: self.compile(commit, &files).map(Arc::new),
        });
        *self.pinned.write().expect("policy lock") = Some(loaded.clone());
        Ok(loaded)
    }

    /// Recompiles the policy if the base branch moved since the last load.
    pub async fn refresh(&self, forge: &dyn Forge) -> anyhow::Result<()> {
        let commit = forge.base_commit().await?;
        if self.current().commit == commit {
            return Ok(());
        }
        let files = forge.read_files(&commit, POLICY_DIR).await?;
        let started = std::time::Instant::now();
        let policy = self.compile(&commit, &files).map(Arc::new);
        let duration_ms = started.elapsed().as_millis() as u64;
        match &policy {
            Ok(_) => tracing::info!(policy.commit = %commit, duration_ms, "policy loaded"),
            Err(problems) => {
                for p in problems {
                    tracing::error!(policy.commit = %commit, policy.problem = %p, "policy problem");
                }
                tracing::error!(policy.commit = %commit, problems = problems.len(), "the policy on the base branch is invalid: refusing every request until it is fixed");
            }
        }
        *self.current.write().expect("policy lock") = Arc::new(LoadedPolicy { commit, policy });
        Ok(())
    }
}
