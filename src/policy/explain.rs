//! `countersign policy explain`: what the policy decides for subjects, as a typed document an
//! operator or CI reads (`--json` is its only form): the overall decision with its reason, the
//! agent's scope check, and each subject's own outcome and requirements.

use super::{Outcome, Policy, Requirement, Risk};
use serde::{Deserialize, Serialize};

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Where the policy was read from.
    pub policy: String,
    pub environment: String,
    pub decision: Decision,
    /// Why, when denied (the scope check's reason first).
    pub reason: Option<String>,
    pub risk: Risk,
    pub expires_after_secs: Option<u64>,
    pub credential_ttl_secs: Option<u64>,
    /// The agent's allowed subjects (`agents.toml`), when an agent was named.
    pub scope: Option<Scope>,
    pub subjects: Vec<SubjectDecision>,
    /// Who must approve, over all subjects.
    pub requirements: Vec<Requirement>,
}

/// The overall decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Deny,
    AutoApprove,
    NeedsReview,
}

/// The agent's scope check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub agent: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One subject on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectDecision {
    pub subject: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub requirements: Vec<Requirement>,
}

impl Policy {
    /// What this policy decides for `subjects` in `environment`, for `agent` if one is named.
    pub fn explain(
        &self,
        source: &str,
        agent: Option<&str>,
        environment: &str,
        subjects: &[String],
    ) -> Explanation {
        let agent_name = agent.unwrap_or("");
        let per_subject = subjects
            .iter()
            .map(|s| {
                let e = self.evaluate(agent_name, environment, std::slice::from_ref(s));
                SubjectDecision {
                    subject: s.clone(),
                    outcome: e.outcome,
                    reason: e.reason,
                    requirements: e.requirements,
                }
            })
            .collect();
        let overall = self.evaluate(agent_name, environment, subjects);
        let scope = agent.map(|a| match self.check_scope(a, subjects) {
            Ok(()) => Scope {
                agent: a.to_owned(),
                allowed: true,
                reason: None,
            },
            Err(reason) => Scope {
                agent: a.to_owned(),
                allowed: false,
                reason: Some(reason),
            },
        });
        let decision = match (&scope, overall.outcome) {
            (Some(s), _) if !s.allowed => Decision::Deny,
            (_, Outcome::Deny) => Decision::Deny,
            (_, Outcome::AutoApprove) => Decision::AutoApprove,
            (_, Outcome::NeedsReview) => Decision::NeedsReview,
        };
        Explanation {
            policy: source.to_owned(),
            environment: environment.to_owned(),
            decision,
            reason: scope
                .as_ref()
                .and_then(|s| s.reason.clone())
                .or(overall.reason),
            risk: overall.risk,
            expires_after_secs: overall.expires_after_secs,
            credential_ttl_secs: overall.credential_ttl_secs,
            scope,
            subjects: per_subject,
            requirements: overall.requirements,
        }
    }
}
