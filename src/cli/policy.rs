//! `countersign policy check|explain`: validate a `policies/` directory and show what it
//! decides for given subjects or a request, without a server.

use crate::policy::{POLICY_DIR, Policy};
use crate::request::parse_submission;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// Reads every text file under `dir`, keyed as it would be in the repository (`policies/...`).
fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                let key = format!(
                    "{POLICY_DIR}/{}",
                    relative.to_string_lossy().replace('\\', "/")
                );
                files.insert(key, text);
            }
        }
    }
    Ok(files)
}

/// Compiles `dir`; with `github_teams`, teams missing from `teams.toml` are left to GitHub.
fn compile(
    dir: &Path,
    github_teams: bool,
) -> anyhow::Result<Result<Policy, Vec<crate::policy::CheckError>>> {
    let files = read_dir(dir)?;
    Ok(if github_teams {
        Policy::compile_with_remote_teams("working-tree", &files)
    } else {
        Policy::compile("working-tree", &files)
    })
}

/// `policy check`: prints every problem as `file:line:column: message`; exit 1 if any. With
/// `github_teams` (the server has `[github]`), teams missing from `teams.toml` are resolved on
/// GitHub at decision time: listed as notes, not errors.
pub fn check(dir: &Path, github_teams: bool) -> anyhow::Result<ExitCode> {
    match compile(dir, github_teams)? {
        Ok(policy) => {
            for note in policy.notes() {
                println!("{note}");
            }
            println!("{}: policy is valid", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            eprintln!("{} problem(s) in {}", problems.len(), dir.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `policy explain`: the decision for subjects (or a request file) as JSON.
pub fn explain(
    dir: &Path,
    subjects: &[String],
    request: Option<&Path>,
    agent: Option<&str>,
    environment: Option<&str>,
    github_teams: bool,
) -> anyhow::Result<ExitCode> {
    let policy = match compile(dir, github_teams)? {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::bail!(
                "the policy in {} is invalid; fix it first (`countersign policy check`)",
                dir.display()
            );
        }
    };
    let (subjects, environment) = match request {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let submission =
                parse_submission(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let env = environment
                .map(str::to_owned)
                .unwrap_or(submission.environment.clone());
            (crate::policy::subjects(&submission), env)
        }
        None if subjects.is_empty() => {
            anyhow::bail!("give --subject (repeatable) or --request FILE")
        }
        None => (subjects.to_vec(), environment.unwrap_or("prod").to_owned()),
    };
    let out = policy.explain(&dir.display().to_string(), agent, &environment, &subjects);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
