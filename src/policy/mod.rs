//! The policy engine: who must approve what, read from `policies/` on the base branch at a
//! pinned commit. [`Policy::compile`] checks every file (errors as `file:line:column`);
//! [`Policy::evaluate`] maps a request's subjects to approval requirements or a refusal;
//! [`approval`] decides whose approvals count. Deny by default: a subject no rule covers, or
//! covers only with a line without owners, refuses the request.

pub mod approval;
pub mod codeowners;
mod compile;
mod files;
#[cfg(test)]
mod tests;

pub use files::{CheckError, Risk, Settings};

use crate::request::{Kind, Submission};
use codeowners::{Codeowners, Owner};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    defaults: Settings,
    /// Per section index: its settings over `[defaults]`.
    section_settings: Vec<Settings>,
    /// Per pattern as written: its settings (applied over the section's).
    pattern_settings: HashMap<String, Settings>,
    agents: HashMap<String, AgentPolicy>,
    teams: HashMap<String, Vec<String>>,
}

/// An agent's entry in `agents.toml`.
pub struct AgentPolicy {
    /// Human owners, teams expanded: never eligible to approve the agent's requests.
    pub owners: Vec<String>,
    allowed: globset::GlobSet,
    pub allowed_patterns: Vec<String>,
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
    pub section: String,
    pub optional: bool,
    pub file: String,
    pub line: usize,
    pub pattern: String,
    pub subjects: Vec<String>,
    /// Owners as written (`@alice`, `@org/team`, `a@example.com`).
    pub owners: Vec<String>,
    /// User names that may approve (teams expanded), before exclusions.
    pub users: Vec<String>,
    /// E-mail owners, matched against reviewers' configured e-mail.
    pub emails: Vec<String>,
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
    /// The agent's owners from `agents.toml` (teams expanded).
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
        compile::compile(commit, files)
    }

    pub fn agent(&self, id: &str) -> Option<&AgentPolicy> {
        self.agents.get(id)
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
        // (section, rule) → subjects, in first-seen order.
        let mut matched: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        for subject in subjects {
            let mut covered = false;
            let mut cleared_by = None;
            for (section, rule) in self.codeowners.matches(subject) {
                let settings = self.settings_for(section, rule);
                if !applies(&settings, environment) {
                    continue;
                }
                if self.codeowners.effective_owners(rule).is_empty() {
                    cleared_by = Some(self.codeowners.rules[rule].line);
                    continue;
                }
                let required_section = !self.codeowners.sections[section].optional;
                covered |= required_section;
                matched
                    .entry((section, rule))
                    .or_default()
                    .push(subject.clone());
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
        let entries: Vec<(usize, usize, Vec<String>, Settings)> = matched
            .into_iter()
            .map(|((section, rule), subjects)| {
                (section, rule, subjects, self.settings_for(section, rule))
            })
            .collect();
        let required: Vec<&Settings> = entries
            .iter()
            .filter(|(section, ..)| !self.codeowners.sections[*section].optional)
            .map(|(.., settings)| settings)
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
            requirements: entries
                .into_iter()
                .map(|(section, rule, subjects, _)| self.requirement(section, rule, subjects))
                .collect(),
            agent_owners,
        }
    }

    /// Pattern settings over section settings over defaults.
    fn settings_for(&self, section: usize, rule: usize) -> Settings {
        let section_settings = &self.section_settings[section];
        match self
            .pattern_settings
            .get(&self.codeowners.rules[rule].pattern)
        {
            Some(p) => p.over(section_settings),
            None => section_settings.clone(),
        }
    }

    fn requirement(&self, section: usize, rule: usize, subjects: Vec<String>) -> Requirement {
        let s = &self.codeowners.sections[section];
        let owners = self.codeowners.effective_owners(rule);
        let settings = self.settings_for(section, rule);
        let (users, emails) = self.expand(owners);
        Requirement {
            section: display_section(&s.name),
            optional: s.optional,
            file: CODEOWNERS_FILE.to_owned(),
            line: self.codeowners.rules[rule].line,
            pattern: self.codeowners.rules[rule].pattern.clone(),
            subjects,
            owners: owners.iter().map(|o| o.to_string()).collect(),
            users,
            emails,
            required: s.approvals,
            risk: settings.risk.unwrap_or(DEFAULT_RISK),
            auto_approve: settings.auto_approve.unwrap_or(false),
        }
    }

    /// Owners → (user names, e-mails), teams expanded through `teams.toml`.
    fn expand(&self, owners: &[Owner]) -> (Vec<String>, Vec<String>) {
        let mut users = BTreeSet::new();
        let mut emails = BTreeSet::new();
        for owner in owners {
            match owner {
                Owner::User(u) => {
                    users.insert(u.clone());
                }
                Owner::Team { org, team } => {
                    let members = self.teams.get(&format!("{org}/{team}"));
                    users.extend(members.into_iter().flatten().cloned());
                }
                Owner::Email(e) => {
                    emails.insert(e.to_ascii_lowercase());
                }
            }
        }
        (users.into_iter().collect(), emails.into_iter().collect())
    }

    /// The settings that apply when nothing more specific is set.
    pub fn defaults(&self) -> &Settings {
        &self.defaults
    }
}

fn applies(settings: &Settings, environment: &str) -> bool {
    settings
        .environments
        .as_ref()
        .is_none_or(|envs| envs.iter().any(|e| e == environment))
}

/// The implicit section (rules before any header) is shown as "Default".
fn display_section(name: &str) -> String {
    if name.is_empty() {
        "Default".to_owned()
    } else {
        name.to_owned()
    }
}
