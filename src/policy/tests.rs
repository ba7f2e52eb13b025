//! Evaluation and check tests for the policy engine (CODEOWNERS matching itself is tested in
//! `codeowners`).

use super::approval::{self, Exclusions, Ineligible, Reviewer};
use super::{Outcome, Policy, Risk};
use std::collections::BTreeMap;

const CODEOWNERS: &str = "\
[Exports] @acme/data
/actions/db.export/**
/actions/db.export/prod/payments/** @cfo

[Access][2]
/actions/iam.grant/** @alice @bob @carol

^[Audit]
/actions/** @auditor

[Deploy]
/actions/deploy/** @ops
/actions/deploy/staging/** @ops

[Prod only]
/actions/deploy/** @sre

[Cleared]
/actions/cleared/**
";

const POLICY: &str = "\
[defaults]
risk = \"medium\"
expires_after = \"24h\"
credential_ttl = \"10m\"

[sections.Exports]
risk = \"high\"
credential_ttl = \"5m\"

[sections.\"Prod only\"]
environments = [\"prod\"]

[patterns.\"/actions/deploy/staging/**\"]
risk = \"low\"
auto_approve = true
";

const AGENTS: &str = "\
[agents.exporter]
owners = [\"@alice\", \"@acme/leads\"]
allowed = [\"actions/db.export/**\", \"actions/iam.grant/**\", \"actions/deploy/**\", \"actions/cleared/**\", \"actions/unowned/**\"]
";

const TEAMS: &str = "\
[teams]
\"acme/data\" = [\"@alice\", \"@bob\", \"@carol\"]
\"acme/leads\" = [\"@lena\"]
";

fn files(overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> = [
        ("policies/CODEOWNERS", CODEOWNERS),
        ("policies/policy.toml", POLICY),
        ("policies/agents.toml", AGENTS),
        ("policies/teams.toml", TEAMS),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        f.insert((*k).to_owned(), (*v).to_owned());
    }
    f
}

fn policy() -> Policy {
    Policy::compile("c0ffee", &files(&[])).unwrap_or_else(|e| panic!("{e:?}"))
}

fn exclusions(p: &Policy) -> Exclusions {
    Exclusions {
        agent: "exporter".into(),
        agent_owners: p.agent("exporter").unwrap().owners.clone(),
        registered_agents: vec!["exporter".into(), "other-bot".into()],
        unresolved_owners: vec![],
    }
}

fn who(name: &str) -> Reviewer<'_> {
    Reviewer {
        name,
        email: None,
        teams: &[],
    }
}

#[test]
fn action_subjects_map_to_sections_with_last_match_winning() {
    let p = policy();
    let e = p.evaluate(
        "exporter",
        "prod",
        &["actions/db.export/prod/payments/2024".into()],
    );
    assert_eq!(e.outcome, Outcome::NeedsReview);
    assert_eq!(e.policy_commit, "c0ffee");
    let exports = e
        .requirements
        .iter()
        .find(|r| &*r.section == "Exports")
        .unwrap();
    assert_eq!(
        (exports.line, exports.users.to_vec()),
        (3, vec!["cfo".to_owned()])
    );
    assert_eq!(e.risk, Risk::High);
    assert_eq!(
        e.credential_ttl_secs,
        Some(300),
        "the most restrictive lifetime wins"
    );
    assert!(
        e.requirements
            .iter()
            .any(|r| &*r.section == "Audit" && r.optional)
    );
}

#[test]
fn every_matched_section_must_be_satisfied_and_counts_need_distinct_humans() {
    let p = policy();
    let subjects = [
        "actions/iam.grant/prod/admin".to_owned(),
        "actions/db.export/prod/x".to_owned(),
    ];
    let e = p.evaluate("exporter", "prod", &subjects);
    let x = exclusions(&p);
    // bob covers Exports (team) and one of two Access approvals.
    assert!(!approval::satisfied(&e, &[who("bob")], &x));
    assert!(
        !approval::satisfied(&e, &[who("bob"), who("bob")], &x),
        "one human counts once"
    );
    // alice owns the agent: her approval counts nowhere.
    assert!(!approval::satisfied(&e, &[who("bob"), who("alice")], &x));
    assert!(approval::satisfied(&e, &[who("bob"), who("carol")], &x));
    let progress = approval::progress(&e, &[who("bob")], &x);
    let access = progress.iter().find(|p| &*p.section == "Access").unwrap();
    assert_eq!(
        (access.required, access.approved_by.clone()),
        (2, vec!["bob".to_owned()])
    );
    assert!(access.excluded.iter().any(|e| e.name == "alice"));
    assert!(!access.unsatisfiable, "bob and carol remain");
}

#[test]
fn the_agent_its_owners_the_bot_and_agents_are_never_eligible() {
    let p = policy();
    let e = p.evaluate("exporter", "prod", &["actions/db.export/prod/x".into()]);
    let x = exclusions(&p);
    assert_eq!(
        approval::check_approver(&e, who("exporter"), &x),
        Err(Ineligible::IsTheAgent)
    );
    assert_eq!(
        approval::check_approver(&e, who("alice"), &x),
        Err(Ineligible::OwnsTheAgent)
    );
    assert_eq!(
        approval::check_approver(&e, who("lena"), &x),
        Err(Ineligible::OwnsTheAgent),
        "owner through a team"
    );
    assert_eq!(
        approval::check_approver(&e, who("other-bot"), &x),
        Err(Ineligible::IsAnAgent)
    );
    assert_eq!(
        approval::check_approver(&e, who("countersign"), &x),
        Err(Ineligible::IsTheBot)
    );
    assert_eq!(
        approval::check_approver(&e, who("mallory"), &x),
        Err(Ineligible::NotAnOwner)
    );
    assert!(approval::check_approver(&e, who("carol"), &x).is_ok());
    assert!(
        approval::may_deny(&e, who("alice"), &x),
        "owners may always stop their agent"
    );
    assert!(!approval::may_deny(&e, who("mallory"), &x));
    assert!(!approval::may_deny(&e, who("other-bot"), &x));
}

#[test]
fn a_section_emptied_by_exclusions_is_reported_unsatisfiable() {
    let p = Policy::compile(
        "c",
        &files(&[
            ("policies/CODEOWNERS", "[Solo]\n/actions/** @alice\n"),
            ("policies/policy.toml", ""),
        ]),
    )
    .unwrap();
    let e = p.evaluate("exporter", "prod", &["actions/db.export/x".into()]);
    let progress = approval::progress(&e, &[], &exclusions(&p));
    assert!(progress[0].unsatisfiable);
    assert!(progress[0].eligible.is_empty());
}

#[test]
fn deny_by_default_names_the_subject() {
    let p = policy();
    let e = p.evaluate("exporter", "prod", &["actions/unowned/x".into()]);
    assert_eq!(e.outcome, Outcome::Deny);
    assert!(e.reason.unwrap().contains("actions/unowned/x"));
    // Only an optional section matches → still denied.
    let e = p.evaluate("exporter", "prod", &["actions/other/y".into()]);
    assert_eq!(e.outcome, Outcome::Deny);
    // A line without owners clears ownership.
    let e = p.evaluate("exporter", "prod", &["actions/cleared/z".into()]);
    assert_eq!(e.outcome, Outcome::Deny);
    assert!(e.reason.unwrap().contains("CODEOWNERS:19"));
    // One uncovered subject denies the whole request.
    let e = p.evaluate(
        "exporter",
        "prod",
        &["actions/db.export/a".into(), "README.md".into()],
    );
    assert_eq!(e.outcome, Outcome::Deny);
}

#[test]
fn a_change_inside_a_directory_matched_by_a_wildcard_needs_that_directory_owner() {
    // As on GitHub: `deploy/f*` matches the directory `deploy/frontend`, so it owns what lies
    // inside; countersign used to answer "no owner" here and deny by default.
    let codeowners = "deploy/f* @ops\n/b*/ @ops\nconf/**/ @ops\n";
    let agents = "[agents.exporter]\nowners = []\nallowed = [\"**\"]\n";
    let p = Policy::compile(
        "c0ffee",
        &files(&[
            ("policies/CODEOWNERS", codeowners),
            ("policies/agents.toml", agents),
            ("policies/policy.toml", ""),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    for path in [
        "deploy/frontend/values.yaml",
        "deploy/frontend/charts/web/Chart.yaml",
        "base/kustomization.yaml",
        "conf/prod/app.toml",
    ] {
        let e = p.evaluate("exporter", "prod", &[path.into()]);
        assert_eq!(e.outcome, Outcome::NeedsReview, "{path}: {:?}", e.reason);
        assert_eq!(e.requirements[0].users.to_vec(), ["ops"], "{path}");
    }
    // An anchored lone `*` still owns only the files directly in the directory.
    let p = Policy::compile(
        "c0ffee",
        &files(&[
            ("policies/CODEOWNERS", "deploy/* @ops\n"),
            ("policies/agents.toml", agents),
            ("policies/policy.toml", ""),
        ]),
    )
    .unwrap();
    let e = p.evaluate("exporter", "prod", &["deploy/web/values.yaml".into()]);
    assert_eq!(e.outcome, Outcome::Deny);
}

#[test]
fn environments_restrict_sections_and_auto_approval_needs_low_risk_everywhere() {
    let p = policy();
    let staging = p.evaluate(
        "exporter",
        "staging",
        &["actions/deploy/staging/web".into()],
    );
    assert_eq!(staging.outcome, Outcome::AutoApprove, "{staging:?}");
    assert!(
        staging
            .requirements
            .iter()
            .all(|r| &*r.section != "Prod only")
    );
    // In prod the [Prod only] section applies too, and it is not auto-approved.
    let prod = p.evaluate("exporter", "prod", &["actions/deploy/staging/web".into()]);
    assert_eq!(prod.outcome, Outcome::NeedsReview);
    assert!(prod.requirements.iter().any(|r| &*r.section == "Prod only"));
}

#[test]
fn scope_comes_from_agents_toml() {
    let p = policy();
    assert!(
        p.check_scope("exporter", &["actions/db.export/prod/x".into()])
            .is_ok()
    );
    let e = p
        .check_scope("exporter", &["deploy/prod/values.yaml".into()])
        .unwrap_err();
    assert!(e.contains("deploy/prod/values.yaml"), "{e}");
    let e = p
        .check_scope("stranger", &["actions/db.export/x".into()])
        .unwrap_err();
    assert!(e.contains("not declared"), "{e}");
}

fn check(overrides: &[(&str, &str)]) -> Vec<String> {
    match Policy::compile("c", &files(overrides)) {
        Ok(_) => vec![],
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn check_reports_problems_with_file_line_and_column() {
    assert!(check(&[]).is_empty());
    let errors = check(&[(
        "policies/policy.toml",
        "[sections.Exprts]\nrisk = \"high\"\n",
    )]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("policies/policy.toml:1:11: unknown section `Exprts`"),
        "{errors:?}"
    );
    let errors = check(&[(
        "policies/policy.toml",
        "[patterns.\"/nope/**\"]\nrisk = \"low\"\n",
    )]);
    assert!(
        errors[0].contains("unknown pattern `/nope/**`"),
        "{errors:?}"
    );
    let errors = check(&[(
        "policies/policy.toml",
        "[sections.Exports]\nauto_approve = true\n",
    )]);
    assert!(
        errors[0].contains("auto_approve is only allowed for low risk"),
        "{errors:?}"
    );
    let errors = check(&[(
        "policies/policy.toml",
        "[defaults]\nrisk = \"low\"\ncolour = \"red\"\n",
    )]);
    assert!(
        errors[0].starts_with("policies/policy.toml:3:1:") && errors[0].contains("colour"),
        "{errors:?}"
    );
    let errors = check(&[(
        "policies/policy.toml",
        "[defaults]\ncredential_ttl = \"2h\"\n",
    )]);
    assert!(errors[0].contains("credential_ttl"), "{errors:?}");
    let errors = check(&[
        ("policies/CODEOWNERS", "[Big][4]\n/actions/** @a @b @c\n"),
        ("policies/policy.toml", ""),
    ]);
    assert!(
        errors[0].starts_with("policies/CODEOWNERS:2:1:")
            && errors[0].contains("needs 4 approvals but only 3"),
        "{errors:?}"
    );
    let errors = check(&[
        ("policies/CODEOWNERS", "/actions/** @acme/ghosts\n"),
        ("policies/policy.toml", ""),
    ]);
    assert!(
        errors[0].contains("team `@acme/ghosts` is not defined"),
        "{errors:?}"
    );
    let errors = check(&[(
        "policies/agents.toml",
        "[agents.x]\nowners = [\"@acme/ghosts\"]\nallowed = [\"a/[\"]\n",
    )]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let missing: BTreeMap<String, String> = BTreeMap::new();
    let errors = Policy::compile("c", &missing).err().unwrap();
    assert!(
        errors[0]
            .to_string()
            .contains("CODEOWNERS:1:1: file is missing")
    );
}
