//! Compiling `policies/` into a [`Policy`], collecting every problem as a [`CheckError`]:
//! CODEOWNERS syntax, unknown settings, sections or patterns, auto-approval above low risk,
//! undefined teams, approval counts larger than the owners who could give them.

use super::codeowners::{Codeowners, Owner};
use super::files::{AgentsToml, CheckError, PolicyToml, Risk, Settings, TeamsToml, parse_toml};
use super::{AgentPolicy, CODEOWNERS_FILE, DEFAULT_RISK, MAX_CREDENTIAL_TTL, Policy, RuleInfo};
use crate::actions;
use crate::request::AgentId;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const POLICY_FILE: &str = "policies/policy.toml";
const AGENTS_FILE: &str = "policies/agents.toml";
const TEAMS_FILE: &str = "policies/teams.toml";
/// Why an undefined team is an error, and when it would not be.
const UNDEFINED_TEAM_HINT: &str = " (with [github] configured, teams not listed there are resolved on GitHub: \
     check with --config naming the server's configuration, or with --github-teams)";

pub(super) fn compile(
    commit: &str,
    files: &BTreeMap<String, String>,
    remote_teams: bool,
) -> Result<Policy, Vec<CheckError>> {
    let mut errors = Vec::new();
    let text = |name: &str| files.get(name).map(String::as_str);

    let codeowners = match text(CODEOWNERS_FILE) {
        None => {
            errors.push(CheckError::at_line(
                CODEOWNERS_FILE,
                1,
                1,
                "file is missing: every request would be denied",
            ));
            None
        }
        Some(t) => match Codeowners::parse(t) {
            Ok(c) => Some(c),
            Err(es) => {
                errors
                    .extend(es.into_iter().map(|e| {
                        CheckError::at_line(CODEOWNERS_FILE, e.line, e.column, e.message)
                    }));
                None
            }
        },
    };
    let policy: PolicyToml = parse_toml(POLICY_FILE, text(POLICY_FILE)).unwrap_or_else(|e| {
        errors.push(e);
        PolicyToml::default()
    });
    let agents: AgentsToml = parse_toml(AGENTS_FILE, text(AGENTS_FILE)).unwrap_or_else(|e| {
        errors.push(e);
        AgentsToml::default()
    });
    let teams_toml: TeamsToml = parse_toml(TEAMS_FILE, text(TEAMS_FILE)).unwrap_or_else(|e| {
        errors.push(e);
        TeamsToml::default()
    });

    let actions_toml: actions::ActionsToml =
        parse_toml(actions::ACTIONS_FILE, text(actions::ACTIONS_FILE)).unwrap_or_else(|e| {
            errors.push(e);
            Default::default()
        });
    let mut problems = Vec::new();
    let actions = actions::compile(&actions_toml, &mut problems);
    let actions_text = text(actions::ACTIONS_FILE).unwrap_or("");
    errors.extend(
        problems
            .into_iter()
            .map(|p| CheckError::at(actions::ACTIONS_FILE, actions_text, p.offset, p.message)),
    );
    let teams = compile_teams(&teams_toml, text(TEAMS_FILE).unwrap_or(""), &mut errors);
    let mut notes = Vec::new();
    let agents = compile_agents(
        &agents,
        text(AGENTS_FILE).unwrap_or(""),
        &teams,
        remote_teams,
        &mut errors,
        &mut notes,
    );
    let Some(codeowners) = codeowners else {
        return Err(errors);
    };
    check_settings(
        &policy.defaults,
        POLICY_FILE,
        text(POLICY_FILE).unwrap_or(""),
        0,
        &mut errors,
    );
    let policy_text = text(POLICY_FILE).unwrap_or("");

    // Section settings, by case-insensitive name ("Default" names the implicit section).
    let mut section_settings: Vec<Settings> =
        vec![policy.defaults.clone(); codeowners.sections.len()];
    for (name, settings) in &policy.sections {
        let wanted = name.get_ref().to_lowercase();
        let index = codeowners.sections.iter().position(|s| {
            s.name.to_lowercase() == wanted || (s.name.is_empty() && wanted == "default")
        });
        match index {
            Some(i) => {
                section_settings[i] = settings.over(&policy.defaults);
                check_settings(
                    &section_settings[i],
                    POLICY_FILE,
                    policy_text,
                    name.span().start,
                    &mut errors,
                );
            }
            None => errors.push(CheckError::at(
                POLICY_FILE,
                policy_text,
                name.span().start,
                format!(
                    "unknown section `{}`: no such [section] in {CODEOWNERS_FILE}",
                    name.get_ref()
                ),
            )),
        }
    }
    let mut pattern_settings = HashMap::new();
    for (pattern, settings) in &policy.patterns {
        let rules: Vec<_> = codeowners
            .rules
            .iter()
            .filter(|r| r.pattern == *pattern.get_ref())
            .collect();
        if rules.is_empty() {
            errors.push(CheckError::at(
                POLICY_FILE,
                policy_text,
                pattern.span().start,
                format!(
                    "unknown pattern `{}`: no line of {CODEOWNERS_FILE} has it",
                    pattern.get_ref()
                ),
            ));
            continue;
        }
        for rule in rules {
            let merged = settings.over(&section_settings[rule.section]);
            check_settings(
                &merged,
                POLICY_FILE,
                policy_text,
                pattern.span().start,
                &mut errors,
            );
        }
        pattern_settings.insert(pattern.get_ref().clone(), settings.clone());
    }
    check_owners(&codeowners, &teams, remote_teams, &mut errors, &mut notes);
    if !errors.is_empty() {
        return Err(errors);
    }
    let file: std::sync::Arc<str> = CODEOWNERS_FILE.into();
    let rules = codeowners
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            let section = &codeowners.sections[rule.section];
            let settings = match pattern_settings.get(&rule.pattern) {
                Some(p) => p.over(&section_settings[rule.section]),
                None => section_settings[rule.section].clone(),
            };
            let owners = codeowners.effective_owners(index);
            let (users, emails) = super::expand(owners, &teams);
            RuleInfo {
                settings,
                section: if section.name.is_empty() {
                    "Default".into()
                } else {
                    section.name.as_str().into()
                },
                file: file.clone(),
                pattern: rule.pattern.as_str().into(),
                optional: section.optional,
                required: section.approvals,
                owners: owners.iter().map(|o| o.to_string()).collect(),
                users: users.into(),
                emails: emails.into(),
            }
        })
        .collect();
    Ok(Policy {
        commit: commit.to_owned(),
        codeowners,
        rules,
        agents,
        actions,
        teams,
        notes,
    })
}

fn check_settings(
    s: &Settings,
    file: &str,
    text: &str,
    offset: usize,
    errors: &mut Vec<CheckError>,
) {
    let risk = s.risk.unwrap_or(DEFAULT_RISK);
    if s.auto_approve == Some(true) && risk != Risk::Low {
        errors.push(CheckError::at(
            file,
            text,
            offset,
            format!(
                "auto_approve is only allowed for low risk, not {}",
                risk.as_str()
            ),
        ));
    }
    if s.credential_ttl
        .is_some_and(|d| d.is_zero() || d > MAX_CREDENTIAL_TTL)
    {
        errors.push(CheckError::at(
            file,
            text,
            offset,
            "credential_ttl must be between 1s and 1h",
        ));
    }
    if s.expires_after.is_some_and(|d| d.is_zero()) {
        errors.push(CheckError::at(
            file,
            text,
            offset,
            "expires_after must be positive",
        ));
    }
    for env in s.environments.iter().flatten() {
        if AgentId::parse(env).is_none() {
            errors.push(CheckError::at(
                file,
                text,
                offset,
                format!("invalid environment name `{env}`"),
            ));
        }
    }
}

fn user_name(raw: &str) -> Option<&str> {
    let name = raw.strip_prefix('@').unwrap_or(raw);
    AgentId::parse(name).map(|_| name)
}

fn compile_teams(
    t: &TeamsToml,
    text: &str,
    errors: &mut Vec<CheckError>,
) -> HashMap<String, Vec<String>> {
    let mut teams = HashMap::new();
    for (name, members) in &t.teams {
        let key = name.get_ref().trim_start_matches('@').to_owned();
        let valid = key.split_once('/').is_some_and(|(org, team)| {
            AgentId::parse(org).is_some() && AgentId::parse(team).is_some()
        });
        if !valid {
            errors.push(CheckError::at(
                TEAMS_FILE,
                text,
                name.span().start,
                format!("team `{}` must be written org/team", name.get_ref()),
            ));
            continue;
        }
        let mut names = BTreeSet::new();
        for m in members {
            match user_name(m.get_ref()) {
                Some(u) => {
                    names.insert(u.to_owned());
                }
                None => errors.push(CheckError::at(
                    TEAMS_FILE,
                    text,
                    m.span().start,
                    format!("invalid member `{}`: expected @user", m.get_ref()),
                )),
            }
        }
        teams.insert(key, names.into_iter().collect());
    }
    teams
}

fn compile_agents(
    a: &AgentsToml,
    text: &str,
    teams: &HashMap<String, Vec<String>>,
    remote_teams: bool,
    errors: &mut Vec<CheckError>,
    notes: &mut Vec<CheckError>,
) -> HashMap<String, AgentPolicy> {
    let mut agents = HashMap::new();
    for (id, entry) in &a.agents {
        if AgentId::parse(id.get_ref()).is_none() {
            errors.push(CheckError::at(
                AGENTS_FILE,
                text,
                id.span().start,
                format!("invalid agent id `{}`", id.get_ref()),
            ));
            continue;
        }
        let mut owners = BTreeSet::new();
        for o in &entry.owners {
            let at = |message: String| CheckError::at(AGENTS_FILE, text, o.span().start, message);
            let owner = match super::owners::parse(o.get_ref()) {
                Ok(owner) => owner,
                Err(why) => {
                    errors.push(at(format!("invalid owner `{}`: {why}", o.get_ref())));
                    continue;
                }
            };
            match super::owners::resolve(&owner, teams, remote_teams) {
                super::owners::Resolved::Owners(resolved) => {
                    if let Owner::Team { .. } = owner
                        && resolved.iter().any(|r| r.starts_with('@'))
                    {
                        notes.push(at(format!(
                            "note: team `{owner}` is not in {TEAMS_FILE}: resolved on GitHub at decision time"
                        )));
                    }
                    owners.extend(resolved);
                }
                super::owners::Resolved::Undefined(team) => errors.push(at(format!(
                    "team `{team}` is not defined in {TEAMS_FILE}{}",
                    UNDEFINED_TEAM_HINT
                ))),
            }
        }
        let mut builder = globset::GlobSetBuilder::new();
        for pattern in &entry.allowed {
            match globset::GlobBuilder::new(pattern.get_ref())
                .literal_separator(true)
                .build()
            {
                Ok(g) => {
                    builder.add(g);
                }
                Err(e) => errors.push(CheckError::at(
                    AGENTS_FILE,
                    text,
                    pattern.span().start,
                    format!("invalid glob: {}", e.kind()),
                )),
            }
        }
        let allowed = builder
            .build()
            .unwrap_or_else(|_| globset::GlobSet::empty());
        agents.insert(
            id.get_ref().clone(),
            AgentPolicy {
                owners: owners.into_iter().collect(),
                allowed,
            },
        );
    }
    agents
}

/// Teams must be defined, and no rule may need more approvals than it has owners.
///
/// With `remote_teams` (the GitHub forge), a CODEOWNERS team missing from `teams.toml` is
/// resolved through GitHub when its members review: its size is unknown here, so the count
/// check passes for rules it owns.
fn check_owners(
    c: &Codeowners,
    teams: &HashMap<String, Vec<String>>,
    remote_teams: bool,
    errors: &mut Vec<CheckError>,
    notes: &mut Vec<CheckError>,
) {
    for (index, rule) in c.rules.iter().enumerate() {
        let section = &c.sections[rule.section];
        let mut people = BTreeSet::new();
        let mut unknown_size = false;
        for owner in c.effective_owners(index) {
            match owner {
                Owner::User(u) => {
                    people.insert(u.clone());
                }
                Owner::Email(e) => {
                    people.insert(e.to_ascii_lowercase());
                }
                Owner::Team { org, team } => match teams.get(&format!("{org}/{team}")) {
                    Some(members) => people.extend(members.iter().cloned()),
                    None if remote_teams => {
                        unknown_size = true;
                        notes.push(CheckError::at_line(
                            CODEOWNERS_FILE,
                            rule.line,
                            1,
                            format!(
                                "note: team `{owner}` is not in {TEAMS_FILE}: resolved on GitHub at decision time"
                            ),
                        ));
                    }
                    None => errors.push(CheckError::at_line(
                        CODEOWNERS_FILE,
                        rule.line,
                        1,
                        format!(
                            "team `{owner}` is not defined in {TEAMS_FILE}{UNDEFINED_TEAM_HINT}"
                        ),
                    )),
                },
            }
        }
        let owned = !c.effective_owners(index).is_empty();
        if owned
            && !unknown_size
            && !section.optional
            && (people.len() as u64) < u64::from(section.approvals)
        {
            errors.push(CheckError::at_line(
                CODEOWNERS_FILE,
                rule.line,
                1,
                format!(
                    "section `{}` needs {} approvals but only {} owner(s) could give them",
                    if section.name.is_empty() {
                        "Default"
                    } else {
                        &section.name
                    },
                    section.approvals,
                    people.len()
                ),
            ));
        }
    }
}
