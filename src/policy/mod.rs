//! The policy engine: who must approve what, read from `policies/` on the base branch at a
//! pinned commit. [`Policy::compile`] checks every file (errors as `file:line:column`);
//! [`Policy::evaluate`] maps a request's subjects to approval requirements or a refusal;
//! [`approval`] decides whose approvals count. Deny by default: a subject no rule covers, or
//! covers only with a line without owners, refuses the request.

pub mod approval;
pub mod codeowners;
mod compile;
pub mod explain;
mod files;
pub mod owners;
#[cfg(test)]
mod tests;

pub use files::{CheckError, Risk, Settings};

use crate::request::{Kind, Submission};
use codeowners::{Codeowners, Owner};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Directory of the policy files in the GitOps repository.
pub const POLICY_DIR: &str = "policies";
pub const CODEOWNERS_FILE: &str = "policies/CODEOWNERS";
/// Upper bound for any credential lifetime.
pub const MAX_CREDENTIAL_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_RISK: Risk = Risk::Medium;

/// A compiled policy at one commit.
pub struct Policy {
    pub commit: String,
    codeowners: Codeowners,
    /// Per rule (same index as the CODEOWNERS rules): everything evaluation needs, resolved once
    /// per policy commit.
    rules: Vec<RuleInfo>,
    agents: HashMap<String, AgentPolicy>,
    /// `policies/actions.toml`: the registered actions by name.
    actions: std::collections::BTreeMap<String, crate::actions::Action>,
    /// `policies/teams.toml`: `org/team` → member user names.
    teams: HashMap<String, Vec<String>>,
    /// What is worth knowing but not wrong (teams left for GitHub to resolve).
    notes: Vec<CheckError>,
}

/// A CODEOWNERS rule with its settings and owners resolved.
struct RuleInfo {
    /// Pattern settings over section settings over `[defaults]`.
    settings: Settings,
    section: Arc<str>,
    file: Arc<str>,
    pattern: Arc<str>,
    optional: bool,
    required: u32,
    owners: Arc<[String]>,
    users: Arc<[String]>,
    emails: Arc<[String]>,
}

/// An agent's entry in `agents.toml`.
pub struct AgentPolicy {
    /// Human owners resolved by [`owners::resolve`] (teams in `teams.toml` expanded): never
    /// eligible to approve the agent's requests.
    pub owners: Vec<String>,
    allowed: globset::GlobSet,
}

/// The subjects a request is judged by: each changed path for `change`,
/// `actions/<action>/<resource>` for `action`.
pub fn subjects(submission: &Submission) -> Vec<String> {
    match submission.kind {
        Kind::Change => submission.changes.iter().map(|c| c.path.clone()).collect(),
        Kind::Action => vec![format!(
            "actions/{}/{}",
            submission.action, submission.resource
        )],
    }
}

/// What the policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NeedsReview,
    AutoApprove,
    Deny,
}

/// One approval requirement: a matched CODEOWNERS line in one section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    pub section: Arc<str>,
    pub optional: bool,
    pub file: Arc<str>,
    pub line: usize,
    pub pattern: Arc<str>,
    pub subjects: Vec<Arc<str>>,
    /// Owners as written (`@alice`, `@org/team`, `a@example.com`).
    pub owners: Arc<[String]>,
    /// User names that may approve (teams expanded), before exclusions.
    pub users: Arc<[String]>,
    /// E-mail owners, matched against reviewers' configured e-mail.
    pub emails: Arc<[String]>,
    pub required: u32,
    pub risk: Risk,
    pub auto_approve: bool,
}

/// The evaluation stored with a request: what was decided, under which policy commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub policy_commit: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub risk: Risk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ttl_secs: Option<u64>,
    pub requirements: Vec<Requirement>,
    /// The agent's owners from `agents.toml`, resolved (see [`owners`]).
    #[serde(default)]
    pub agent_owners: Vec<String>,
}

impl Policy {
    /// Compiles the policy files (paths relative to the repository root, e.g.
    /// `policies/CODEOWNERS`) found at `commit`.
    pub fn compile(
        commit: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Policy, Vec<CheckError>> {
        compile::compile(commit, files, false)
    }

    /// Like [`Policy::compile`], for a forge that resolves `@org/team` owners itself (GitHub):
    /// teams (CODEOWNERS owners and agent owners) need not be listed in `teams.toml`; those
    /// that are not are resolved on GitHub at decision time (see [`Policy::notes`]).
    pub fn compile_with_remote_teams(
        commit: &str,
        files: &BTreeMap<String, String>,
    ) -> Result<Policy, Vec<CheckError>> {
        compile::compile(commit, files, true)
    }

    pub fn agent(&self, id: &str) -> Option<&AgentPolicy> {
        self.agents.get(id)
    }

    /// `policies/teams.toml`: `org/team` → member user names.
    pub fn teams(&self) -> &HashMap<String, Vec<String>> {
        &self.teams
    }

    /// Remarks that are not errors, as `file:line:column: message` (teams not in
    /// `teams.toml` that GitHub resolves at decision time).
    pub fn notes(&self) -> &[CheckError] {
        &self.notes
    }

    /// The registry entry of an action (`None`: not registered, refused at intake).
    pub fn action(&self, name: &str) -> Option<&crate::actions::Action> {
        self.actions.get(name)
    }

    /// Refuses subjects outside the agent's allowed set (checked at intake, before anything is
    /// stored). Agents missing from `agents.toml` may do nothing.
    pub fn check_scope(&self, agent: &str, subjects: &[String]) -> Result<(), String> {
        let Some(entry) = self.agents.get(agent) else {
            return Err(format!(
                "agent `{agent}` is not declared in policies/agents.toml"
            ));
        };
        for subject in subjects {
            if !entry.allowed.is_match(subject) {
                return Err(format!(
                    "subject `{subject}` is outside the subjects agent `{agent}` may request"
                ));
            }
        }
        Ok(())
    }

    /// Evaluates a request's subjects in an environment.
    pub fn evaluate(&self, agent: &str, environment: &str, subjects: &[String]) -> Evaluation {
        let agent_owners = self
            .agents
            .get(agent)
            .map(|a| a.owners.clone())
            .unwrap_or_default();
        let deny = |reason: String| Evaluation {
            policy_commit: self.commit.clone(),
            outcome: Outcome::Deny,
            reason: Some(reason),
            risk: Risk::Critical,
            expires_after_secs: None,
            credential_ttl_secs: None,
            requirements: vec![],
            agent_owners: agent_owners.clone(),
        };
        // rule → subjects, in first-seen order; rules are numbered in file order.
        let mut matched: BTreeMap<usize, Vec<Arc<str>>> = BTreeMap::new();
        let mut found = Vec::new();
        for subject in subjects {
            let shared: Arc<str> = subject.as_str().into();
            let mut covered = false;
            let mut cleared_by = None;
            self.codeowners.matches_into(subject, &mut found);
            for &(_, rule) in &found {
                let info = &self.rules[rule];
                if !applies(&info.settings, environment) {
                    continue;
                }
                if info.owners.is_empty() {
                    cleared_by = Some(self.codeowners.rules[rule].line);
                    continue;
                }
                covered |= !info.optional;
                matched.entry(rule).or_default().push(shared.clone());
            }
            if !covered {
                return deny(match cleared_by {
                    Some(line) => format!(
                        "subject `{subject}` is covered only by a line without owners ({CODEOWNERS_FILE}:{line}); denied by default"
                    ),
                    None => format!(
                        "no required rule in {CODEOWNERS_FILE} covers subject `{subject}` in environment `{environment}`; denied by default"
                    ),
                });
            }
        }
        let required: Vec<&Settings> = matched
            .keys()
            .map(|&rule| &self.rules[rule])
            .filter(|info| !info.optional)
            .map(|info| &info.settings)
            .collect();
        let risk_of = |s: &Settings| s.risk.unwrap_or(DEFAULT_RISK);
        let risk = required
            .iter()
            .map(|s| risk_of(s))
            .max()
            .unwrap_or(DEFAULT_RISK);
        let auto = required
            .iter()
            .all(|s| s.auto_approve.unwrap_or(false) && risk_of(s) == Risk::Low);
        let expires_after_secs = required.iter().filter_map(|s| s.expires_after).min();
        let credential_ttl_secs = required.iter().filter_map(|s| s.credential_ttl).min();
        Evaluation {
            policy_commit: self.commit.clone(),
            outcome: if auto {
                Outcome::AutoApprove
            } else {
                Outcome::NeedsReview
            },
            reason: None,
            risk,
            expires_after_secs: expires_after_secs.map(|d| d.as_secs()),
            credential_ttl_secs: credential_ttl_secs.map(|d| d.as_secs()),
            requirements: matched
                .into_iter()
                .map(|(rule, subjects)| self.requirement(rule, subjects))
                .collect(),
            agent_owners,
        }
    }

    fn requirement(&self, rule: usize, subjects: Vec<Arc<str>>) -> Requirement {
        let info = &self.rules[rule];
        Requirement {
            section: info.section.clone(),
            optional: info.optional,
            file: info.file.clone(),
            line: self.codeowners.rules[rule].line,
            pattern: info.pattern.clone(),
            subjects,
            owners: info.owners.clone(),
            users: info.users.clone(),
            emails: info.emails.clone(),
            required: info.required,
            risk: info.settings.risk.unwrap_or(DEFAULT_RISK),
            auto_approve: info.settings.auto_approve.unwrap_or(false),
        }
    }
}

/// Owners → (user names, e-mails), teams expanded through `teams`.
fn expand(owners: &[Owner], teams: &HashMap<String, Vec<String>>) -> (Vec<String>, Vec<String>) {
    let mut users = BTreeSet::new();
    let mut emails = BTreeSet::new();
    for owner in owners {
        match owner {
            Owner::User(u) => {
                users.insert(u.clone());
            }
            Owner::Team { org, team } => {
                let members = teams.get(&format!("{org}/{team}"));
                users.extend(members.into_iter().flatten().cloned());
            }
            Owner::Email(e) => {
                emails.insert(e.to_ascii_lowercase());
            }
        }
    }
    (users.into_iter().collect(), emails.into_iter().collect())
}

fn applies(settings: &Settings, environment: &str) -> bool {
    settings
        .environments
        .as_ref()
        .is_none_or(|envs| envs.iter().any(|e| e == environment))
}
