//! Owners of agents, in every form countersign accepts (`@user` or `user`, `@org/team`,
//! `name@example.com`), from the configuration and from `policies/agents.toml`: their syntax,
//! checked at start-up and when the policy compiles, and their resolution into the list
//! [`super::approval::Exclusions`] matches reviewers against. This is the one place owners
//! are resolved; every approval path (API, CLI, GitHub) goes through the result.
//!
//! Resolved owners are strings: a user name (`alice`), a lower-case e-mail address, or
//! `@org/team` for a team whose members only the forge knows (GitHub, asked when a reviewer
//! acts); teams listed in `teams.toml` are expanded into their members.

use super::codeowners::{Owner, parse_owner};
use std::collections::HashMap;

/// Parses one owner as written by an operator. Users may omit the `@`.
pub fn parse(raw: &str) -> Result<Owner, String> {
    let raw = raw.trim();
    let token = if raw.contains('@') {
        raw.to_owned()
    } else {
        format!("@{raw}")
    };
    parse_owner(&token).ok_or_else(|| "expected @user, @org/team or an e-mail address".to_owned())
}

/// How an owner resolved.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Entries to exclude (see the module documentation for their forms).
    Owners(Vec<String>),
    /// A team that neither `teams.toml` nor the forge can expand.
    Undefined(String),
}

/// Resolves one owner: users as they are, e-mail addresses lower-cased, teams through
/// `teams` (`org/team` → members), else, when the forge resolves teams (`remote_teams`), kept
/// as `@org/team` for it to answer at decision time.
pub fn resolve(
    owner: &Owner,
    teams: &HashMap<String, Vec<String>>,
    remote_teams: bool,
) -> Resolved {
    match owner {
        Owner::User(u) => Resolved::Owners(vec![u.clone()]),
        Owner::Email(e) => Resolved::Owners(vec![e.to_ascii_lowercase()]),
        Owner::Team { org, team } => {
            let key = format!("{org}/{team}");
            match teams.get(&key) {
                Some(members) => Resolved::Owners(members.clone()),
                None if remote_teams => Resolved::Owners(vec![format!("@{}", key.to_lowercase())]),
                None => Resolved::Undefined(format!("@{key}")),
            }
        }
    }
}

/// Whether a reviewer is the resolved owner `owner`: by name (case-insensitive, as GitHub
/// logins are), by e-mail address, or by membership of a forge-resolved team.
pub fn matches(owner: &str, name: &str, email: Option<&str>, teams: &[String]) -> bool {
    let name = name.trim_start_matches('@');
    match owner.strip_prefix('@') {
        Some(team) if team.contains('/') => teams.iter().any(|t| t.eq_ignore_ascii_case(team)),
        Some(user) => user.eq_ignore_ascii_case(name),
        None if owner.contains('@') => email.is_some_and(|e| e.eq_ignore_ascii_case(owner)),
        None => owner.eq_ignore_ascii_case(name),
    }
}

/// The forge-resolved teams (`org/team`) among resolved owners.
pub fn forge_teams(owners: &[String]) -> impl Iterator<Item = &str> {
    owners
        .iter()
        .filter_map(|o| o.strip_prefix('@'))
        .filter(|o| o.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_owner_form_parses_and_nothing_else_does() {
        assert_eq!(parse("@alice").unwrap(), Owner::User("alice".into()));
        assert_eq!(parse("alice").unwrap(), Owner::User("alice".into()));
        assert_eq!(
            parse("@ops/oncall").unwrap(),
            Owner::Team {
                org: "ops".into(),
                team: "oncall".into()
            }
        );
        assert_eq!(
            parse("ops/oncall").unwrap(),
            Owner::Team {
                org: "ops".into(),
                team: "oncall".into()
            }
        );
        assert_eq!(
            parse("Dave@Example.com").unwrap(),
            Owner::Email("Dave@Example.com".into())
        );
        for bad in [
            "",
            "@",
            "@ops/on call",
            "ops/oncall/x",
            "dave@",
            "bob smith",
            "@a@b.c",
        ] {
            assert!(parse(bad).is_err(), "`{bad}` must be refused");
        }
    }

    #[test]
    fn owners_resolve_through_teams_toml_then_the_forge() {
        let teams = HashMap::from([("ops/oncall".to_owned(), vec!["bob".to_owned()])]);
        let team = |t: &str| parse(t).unwrap();
        assert_eq!(
            resolve(&team("@ops/oncall"), &teams, false),
            Resolved::Owners(vec!["bob".into()])
        );
        assert_eq!(
            resolve(&team("@acme/SRE"), &teams, true),
            Resolved::Owners(vec!["@acme/sre".into()])
        );
        assert_eq!(
            resolve(&team("@acme/sre"), &teams, false),
            Resolved::Undefined("@acme/sre".into())
        );
        assert_eq!(
            resolve(&team("Dave@Example.com"), &teams, false),
            Resolved::Owners(vec!["dave@example.com".into()])
        );
    }

    #[test]
    fn reviewers_match_owners_by_name_address_or_forge_team() {
        assert!(matches("bob", "@Bob", None, &[]));
        assert!(matches(
            "dave@example.com",
            "dave",
            Some("DAVE@example.com"),
            &[]
        ));
        assert!(!matches("dave@example.com", "dave", None, &[]));
        assert!(matches("@acme/sre", "carol", None, &["acme/SRE".into()]));
        assert!(!matches("@acme/sre", "acme/sre", None, &[]));
    }
}
