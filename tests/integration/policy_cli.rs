//! `countersign policy check|explain` on directories, as an operator or CI runs them.

use countersign::policy::Risk;
use countersign::policy::explain::{Decision, Explanation};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_example_policy_is_valid_and_explains_itself() {
    let (code, out, err) = run(&["policy", "check", "--dir", "policies"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&[
        "policy",
        "explain",
        "--dir",
        "policies",
        "--agent",
        "local-agent",
        "--subject",
        "actions/db.export/prod/customers",
    ]);
    assert_eq!(code, 0);
    let v: Explanation = serde_json::from_str(&out).unwrap();
    assert_eq!(v.decision, Decision::NeedsReview);
    assert_eq!(v.risk, Risk::High);
    assert_eq!(&*v.requirements[0].section, "Data exports");
    assert_eq!(&*v.requirements[0].file, "policies/CODEOWNERS");
    let (_, out, _) = run(&[
        "policy",
        "explain",
        "--dir",
        "policies",
        "--environment",
        "staging",
        "--subject",
        "actions/deploy/staging/web",
    ]);
    let v: Explanation = serde_json::from_str(&out).unwrap();
    assert_eq!(v.decision, Decision::AutoApprove, "{v:?}");
    let (_, out, _) = run(&[
        "policy",
        "explain",
        "--dir",
        "policies",
        "--subject",
        "secrets/prod.env",
    ]);
    let v: Explanation = serde_json::from_str(&out).unwrap();
    assert_eq!(v.decision, Decision::Deny);
    assert!(v.reason.unwrap().contains("secrets/prod.env"));
    let (_, out, _) = run(&[
        "policy",
        "explain",
        "--dir",
        "policies",
        "--agent",
        "demo-agent",
        "--subject",
        "actions/deploy/prod/web",
    ]);
    let v: Explanation = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v.decision,
        Decision::Deny,
        "outside demo-agent's allowed subjects: {v:?}"
    );
    assert_eq!(v.scope.map(|s| s.allowed), Some(false));
}

#[test]
fn check_reports_every_problem_with_its_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("CODEOWNERS"),
        "[Ops][3]\n/deploy/** @ann @ben\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[sections.Ops]\nrisk = \"high\"\nauto_approve = true\n[sections.Nope]\n",
    )
    .unwrap();
    let (code, out, _) = run(&["policy", "check", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l
            .starts_with("policies/policy.toml:1:11: auto_approve is only allowed for low risk")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("policies/policy.toml:4:11: unknown section `Nope`")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("policies/CODEOWNERS:2:1: section `Ops` needs 3 approvals but only 2")),
        "{out}"
    );
}

#[test]
fn github_teams_missing_from_teams_toml_are_resolved_on_github_when_github_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("CODEOWNERS"),
        "[Ops]\n/deploy/** @acme/platform\n",
    )
    .unwrap();
    std::fs::write(
        policies.join("agents.toml"),
        "[agents.bot]\nowners = [\"@acme/oncall\", \"ops@example.com\"]\nallowed = [\"deploy/**\"]\n",
    )
    .unwrap();
    let policies = policies.to_str().unwrap();
    // Without [github] nobody can resolve the teams: an error.
    let (code, out, _) = run(&["policy", "check", "--dir", policies]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "policies/CODEOWNERS:2:1: team `@acme/platform` is not defined in policies/teams.toml"
        ),
        "{out}"
    );
    assert!(
        out.contains("@acme/oncall"),
        "an agent's owner team too: {out}"
    );
    // With the server's configuration naming [github], they are resolved on GitHub.
    let config = dir.path().join("countersign.toml");
    std::fs::write(
        &config,
        "[github]\napp_id = 9\nprivate_key = { file = \"app.pem\" }\nrepository = \"acme/gitops\"\nwebhook_secrets = [{ env = \"GITHUB_WEBHOOK_SECRET\" }]\n",
    )
    .unwrap();
    let (code, out, err) = run(&[
        "policy",
        "check",
        "--config",
        config.to_str().unwrap(),
        "--dir",
        policies,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("@acme/platform") && out.contains("resolved on GitHub at decision time"),
        "{out}"
    );
    assert!(out.contains("@acme/oncall"), "{out}");
    // --github-teams says the same without a configuration file.
    let (code, out, _) = run(&["policy", "check", "--github-teams", "--dir", policies]);
    assert_eq!(code, 0, "{out}");
}
