//! Whose approval counts. Never eligible, whatever the owners say: the submitting agent, its
//! owners (from the configuration and `agents.toml`), the bot itself and every registered
//! agent. Each approval counts once per requirement, from distinct humans.

use super::{Evaluation, Requirement};
use serde::Serialize;

/// The identity countersign itself acts under; it can never approve.
pub const BOT_IDENTITY: &str = "countersign";

/// A human reviewer.
#[derive(Debug, Clone, Copy)]
pub struct Reviewer<'a> {
    pub name: &'a str,
    pub email: Option<&'a str>,
    /// Teams (`org/team`) the forge says the reviewer is in, checked against `@org/team`
    /// owners (teams listed in `teams.toml` are already expanded into `users`).
    pub teams: &'a [String],
}

/// Who can never approve a given request.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    pub agent: String,
    /// Owners of the agent (configuration and `agents.toml`), resolved by
    /// [`super::owners::resolve`]: user names, e-mail addresses, and `@org/team` for teams
    /// only the forge knows (matched against the teams a reviewer is in).
    pub agent_owners: Vec<String>,
    pub registered_agents: Vec<String>,
    /// Owners of the agent nothing could resolve (a team defined nowhere): fail closed, nobody
    /// may approve the agent's requests until that is fixed.
    pub unresolved_owners: Vec<String>,
}

/// Why someone's approval cannot count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ineligible {
    /// The reviewer is the submitting agent.
    IsTheAgent,
    /// The reviewer owns the submitting agent.
    OwnsTheAgent,
    /// The reviewer is another registered agent.
    IsAnAgent,
    /// The reviewer is countersign itself.
    IsTheBot,
    /// Some owner of the agent cannot be resolved, so nobody can be told apart from them.
    OwnersUnresolved,
    /// The reviewer is not an owner of any rule the request matched.
    NotAnOwner,
}

impl Ineligible {
    pub fn explain(self) -> &'static str {
        match self {
            Ineligible::IsTheAgent => "is the submitting agent",
            Ineligible::OwnsTheAgent => "owns the submitting agent",
            Ineligible::IsAnAgent => "is an agent, not a human",
            Ineligible::IsTheBot => "is countersign itself",
            Ineligible::OwnersUnresolved => {
                "cannot be told apart from the agent's owners (an owner team is defined nowhere)"
            }
            Ineligible::NotAnOwner => "is not an owner of any rule this request matched",
        }
    }
}

impl Exclusions {
    /// Why `name` may never approve this request, if so, for a reviewer known by name only
    /// (see [`Exclusions::excluded_reviewer`]).
    pub fn excluded(&self, name: &str) -> Option<Ineligible> {
        self.excluded_reviewer(Reviewer {
            name,
            email: None,
            teams: &[],
        })
    }

    /// Why `who` may never approve this request, if so: the check every approval path goes
    /// through, matching the agent's owners in every form (name, e-mail, team).
    pub fn excluded_reviewer(&self, who: Reviewer<'_>) -> Option<Ineligible> {
        let name = who.name.trim_start_matches('@');
        if name == self.agent {
            Some(Ineligible::IsTheAgent)
        } else if self.owns_the_agent(who) {
            Some(Ineligible::OwnsTheAgent)
        } else if self.registered_agents.iter().any(|a| a == name) {
            Some(Ineligible::IsAnAgent)
        } else if name == BOT_IDENTITY {
            Some(Ineligible::IsTheBot)
        } else if !self.unresolved_owners.is_empty() {
            Some(Ineligible::OwnersUnresolved)
        } else {
            None
        }
    }

    /// Whether `owner` (as written in CODEOWNERS: `@user`, `@org/team`, an e-mail) may be shown
    /// to people as someone who can approve: the same rule the approval path applies
    /// ([`Exclusions::excluded`]). Logins are case-insensitive on GitHub, so `@Alice` is asked
    /// about as written and in lower case.
    pub fn may_list(&self, owner: &str) -> bool {
        self.excluded(owner).is_none() && self.excluded(&owner.to_ascii_lowercase()).is_none()
    }

    /// Whether `who` is one of the agent's owners.
    pub fn owns_the_agent(&self, who: Reviewer<'_>) -> bool {
        self.agent_owners
            .iter()
            .any(|o| super::owners::matches(o, who.name, who.email, who.teams))
    }

    /// The agent's owner teams (`org/team`) whose membership the forge must be asked.
    pub fn forge_teams(&self) -> Vec<String> {
        super::owners::forge_teams(&self.agent_owners)
            .map(str::to_owned)
            .collect()
    }
}

fn owns(r: &Requirement, who: Reviewer<'_>) -> bool {
    r.users.iter().any(|u| u == who.name)
        || who
            .email
            .is_some_and(|e| r.emails.iter().any(|x| x.eq_ignore_ascii_case(e)))
        || who.teams.iter().any(|t| {
            r.owners.iter().any(|o| {
                o.strip_prefix('@')
                    .is_some_and(|o| o.eq_ignore_ascii_case(t))
            })
        })
}

/// The `@org/team` owners of a requirement, as `org/team`.
pub fn team_owners(r: &Requirement) -> impl Iterator<Item = &str> {
    r.owners
        .iter()
        .filter_map(|o| o.strip_prefix('@'))
        .filter(|o| o.contains('/'))
}

/// Whether `who` may approve: the indices of the requirements their approval counts for.
pub fn check_approver(
    eval: &Evaluation,
    who: Reviewer<'_>,
    exclusions: &Exclusions,
) -> Result<Vec<usize>, Ineligible> {
    if let Some(why) = exclusions.excluded_reviewer(who) {
        return Err(why);
    }
    let counts: Vec<usize> = (0..eval.requirements.len())
        .filter(|&i| owns(&eval.requirements[i], who))
        .collect();
    if counts.is_empty() {
        Err(Ineligible::NotAnOwner)
    } else {
        Ok(counts)
    }
}

/// Whether `who` may deny: an owner of any matched rule (even one excluded from approving,
/// such as the agent's owner: stopping a request is always safe) or an owner of the agent.
pub fn may_deny(eval: &Evaluation, who: Reviewer<'_>, exclusions: &Exclusions) -> bool {
    let excluded = exclusions.excluded_reviewer(who);
    if matches!(
        excluded,
        Some(Ineligible::IsTheAgent | Ineligible::IsAnAgent | Ineligible::IsTheBot)
    ) {
        return false;
    }
    excluded == Some(Ineligible::OwnsTheAgent) || eval.requirements.iter().any(|r| owns(r, who))
}

/// Progress of one requirement.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub section: std::sync::Arc<str>,
    pub file: std::sync::Arc<str>,
    pub line: usize,
    pub pattern: std::sync::Arc<str>,
    pub subjects: Vec<std::sync::Arc<str>>,
    pub owners: std::sync::Arc<[String]>,
    pub optional: bool,
    pub required: u32,
    /// Distinct humans whose approval counts here.
    pub approved_by: Vec<String>,
    pub satisfied: bool,
    /// Owners who can approve (after exclusions).
    pub eligible: Vec<String>,
    /// Owners who cannot, and why.
    pub excluded: Vec<Excluded>,
    /// Fewer eligible owners than required approvals: this can never be satisfied.
    pub unsatisfiable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    pub name: String,
    pub why: &'static str,
}

/// Progress of every requirement, given the approvals recorded so far.
pub fn progress(
    eval: &Evaluation,
    approvals: &[Reviewer<'_>],
    exclusions: &Exclusions,
) -> Vec<Progress> {
    eval.requirements
        .iter()
        .map(|r| {
            let mut approved_by: Vec<String> = approvals
                .iter()
                .filter(|a| exclusions.excluded_reviewer(**a).is_none() && owns(r, **a))
                .map(|a| a.name.to_owned())
                .collect();
            approved_by.sort();
            approved_by.dedup();
            let (eligible, excluded): (Vec<&String>, Vec<&String>) = r
                .users
                .iter()
                .partition(|u| exclusions.excluded(u).is_none());
            // E-mail owners who own the agent by the same address never count either.
            let emails: Vec<&String> = r
                .emails
                .iter()
                .filter(|e| {
                    !exclusions.owns_the_agent(Reviewer {
                        name: "",
                        email: Some(e.as_str()),
                        teams: &[],
                    })
                })
                .collect();
            // Members of a team are not all known here (the forge may resolve them when
            // they review), so a requirement with a team owner is never called unsatisfiable.
            let eligible_count = eligible.len()
                + emails.len()
                + if team_owners(r).next().is_some() {
                    r.required as usize
                } else {
                    0
                };
            Progress {
                section: r.section.clone(),
                file: r.file.clone(),
                line: r.line,
                pattern: r.pattern.clone(),
                subjects: r.subjects.clone(),
                owners: r.owners.clone(),
                optional: r.optional,
                required: r.required,
                satisfied: r.optional || approved_by.len() as u64 >= u64::from(r.required),
                approved_by,
                eligible: eligible
                    .into_iter()
                    .cloned()
                    .chain(emails.into_iter().cloned())
                    .collect(),
                excluded: excluded
                    .into_iter()
                    .map(|u| Excluded {
                        name: u.clone(),
                        why: exclusions
                            .excluded(u)
                            .map(Ineligible::explain)
                            .unwrap_or(""),
                    })
                    .collect(),
                unsatisfiable: !r.optional && (eligible_count as u64) < u64::from(r.required),
            }
        })
        .collect()
}

/// Every required requirement has enough distinct eligible approvals.
pub fn satisfied(eval: &Evaluation, approvals: &[Reviewer<'_>], exclusions: &Exclusions) -> bool {
    progress(eval, approvals, exclusions)
        .iter()
        .all(|p| p.satisfied)
}
