//! The action registry, `policies/actions.toml`, parsed once into typed specs: which executor runs each action, the audience
//! of the credential it gets, and whether it is idempotent (so an interrupted run may be retried
//! with the same idempotency key). It is reviewed like the rest of `policies/`; an action
//! without an entry is refused at intake. `kind: change` requests need no entry: they execute
//! by merging their review.
//!
//! ```toml
//! [actions."db.export"]
//! executor = { type = "http", method = "POST", url = "https://exports.internal/{{ resource }}" }
//! audience = "https://exports.internal"
//! idempotent = true
//!
//! [actions."release.tag"]   # a GitHub installation token instead of countersign's JWT
//! executor = { type = "command", argv = ["/usr/local/bin/tag-release"] }
//! github = { repository = "acme/service", permissions = { contents = "write" } }
//!
//! [actions.deploy]          # a workflow_dispatch, with its own narrowed token
//! executor = { type = "github_workflow", workflow = "deploy.yml", inputs = { service = "{{ resource }}" } }
//! ```
//!
//! The credential: countersign's JWT with `audience` (required for `http` and `command`), or a
//! narrowed GitHub installation token with `github` (then no `audience` and no
//! `credential_helper`). `github_workflow` takes neither: it mints its own `actions` token.

pub mod github;
pub mod helper;
pub mod spec;
pub mod workflow;

pub use spec::{CommandSpec, ExecutorSpec, HttpSpec, SpecError};

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub const ACTIONS_FILE: &str = "policies/actions.toml";

/// The executors an action can name (`merge` runs `kind: change` requests only).
pub const EXECUTOR_TYPES: [&str; 3] = ["http", "command", "github_workflow"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsToml {
    #[serde(default)]
    pub actions: BTreeMap<Spanned<String>, ActionEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionEntry {
    /// `type` plus the executor's own settings.
    pub executor: Spanned<toml::Table>,
    /// The `aud` of the action's credential.
    pub audience: Option<String>,
    #[serde(default)]
    pub idempotent: bool,
    pub description: Option<String>,
    /// A program exchanging countersign's token for the credential the executor gets.
    pub credential_helper: Option<Spanned<toml::Table>>,
    /// A GitHub installation token narrowed to a repository and permissions, instead of
    /// countersign's JWT (`http` and `command`).
    pub github: Option<Spanned<toml::Table>>,
}

/// A registered action, as the engine uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    /// How it is carried out (validated).
    pub executor: ExecutorSpec,
    pub audience: Option<String>,
    pub idempotent: bool,
    pub credential_helper: Option<helper::HelperSpec>,
    /// The GitHub token the executor gets instead of countersign's JWT.
    pub github: Option<github::GitHubCredentialSpec>,
}

impl Action {
    /// `http`, `command` or `github_workflow`.
    pub fn executor_type(&self) -> &'static str {
        self.executor.kind()
    }
}

/// A mistake in `policies/actions.toml`: where (a byte offset into the file) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: usize,
    pub message: String,
}

/// Checks every entry; returns the registry by action name. Each mistake is pushed to
/// `errors` and its entry left out.
pub fn compile(toml: &ActionsToml, errors: &mut Vec<Problem>) -> BTreeMap<String, Action> {
    let mut out = BTreeMap::new();
    for (name, entry) in &toml.actions {
        let at = |offset: usize, message: String| Problem { offset, message };
        let n = name.get_ref();
        if !crate::request::is_valid_action_name(n) {
            errors.push(at(
                name.span().start,
                format!("`{n}` is not a valid action name"),
            ));
            continue;
        }
        let exec = entry.executor.get_ref();
        let kind = match exec.get("type").and_then(toml::Value::as_str) {
            Some(t) if EXECUTOR_TYPES.contains(&t) => t.to_owned(),
            Some("merge") => {
                errors.push(at(
                    entry.executor.span().start,
                    format!("action `{n}`: `merge` runs `kind: change` requests, not actions"),
                ));
                continue;
            }
            Some(other) => {
                errors.push(at(
                    entry.executor.span().start,
                    format!(
                        "action `{n}`: unknown executor type `{other}` (expected one of {})",
                        EXECUTOR_TYPES.join(", ")
                    ),
                ));
                continue;
            }
            None => {
                errors.push(at(
                    entry.executor.span().start,
                    format!("action `{n}`: the executor needs a `type`"),
                ));
                continue;
            }
        };
        let spec = toml::Value::Table(exec.clone())
            .try_into::<ExecutorSpec>()
            .map_err(|e| e.message().to_owned())
            .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()));
        let executor = match spec {
            Ok(spec) => spec,
            Err(problem) => {
                errors.push(at(
                    entry.executor.span().start,
                    format!("action `{n}`: executor: {problem}"),
                ));
                continue;
            }
        };
        let workflow = kind == "github_workflow";
        let github = match &entry.github {
            None => None,
            Some(_) if workflow => {
                errors.push(at(
                    name.span().start,
                    format!("action `{n}`: `github` is for `http` and `command`; the github_workflow executor gets its own token narrowed to `actions`"),
                ));
                continue;
            }
            Some(g) => {
                let spec = toml::Value::Table(g.get_ref().clone())
                    .try_into::<github::GitHubCredentialSpec>()
                    .map_err(|e| e.message().to_owned())
                    .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()));
                match spec {
                    Ok(s) => Some(s),
                    Err(problem) => {
                        errors.push(at(
                            g.span().start,
                            format!("action `{n}`: github: {problem}"),
                        ));
                        continue;
                    }
                }
            }
        };
        if entry.credential_helper.is_some() && (workflow || github.is_some()) {
            errors.push(at(
                name.span().start,
                format!("action `{n}`: `credential_helper` exchanges countersign's JWT; an action with a GitHub token has none"),
            ));
            continue;
        }
        let credential_helper = match &entry.credential_helper {
            None => None,
            Some(h) => {
                let spec = toml::Value::Table(h.get_ref().clone())
                    .try_into::<helper::HelperSpec>()
                    .map_err(|e| e.message().to_owned())
                    .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()));
                match spec {
                    Ok(s) => Some(s),
                    Err(problem) => {
                        errors.push(at(
                            h.span().start,
                            format!("action `{n}`: credential_helper: {problem}"),
                        ));
                        continue;
                    }
                }
            }
        };
        let audience = entry.audience.clone().filter(|a| !a.trim().is_empty());
        if audience.is_some() && (workflow || github.is_some()) {
            errors.push(at(
                name.span().start,
                format!("action `{n}`: `audience` is the `aud` of countersign's JWT; an action with a GitHub token has none"),
            ));
            continue;
        }
        if audience.is_none() && !workflow && github.is_none() {
            errors.push(at(
                name.span().start,
                format!(
                    "action `{n}`: `audience` (the credential's `aud`) is required for `{kind}`"
                ),
            ));
            continue;
        }
        out.insert(
            n.clone(),
            Action {
                name: n.clone(),
                executor,
                audience,
                idempotent: entry.idempotent,
                credential_helper,
                github,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles `text` and names each mistake like `policy check` does (`file:line:col: …`).
    fn check(text: &str) -> (BTreeMap<String, Action>, Vec<String>) {
        let mut errors = Vec::new();
        let parsed: ActionsToml = match toml::from_str(text) {
            Ok(p) => p,
            Err(e) => return (BTreeMap::new(), vec![e.message().to_owned()]),
        };
        let actions = compile(&parsed, &mut errors);
        let located = errors
            .iter()
            .map(|p| {
                let line = text[..p.offset].matches('\n').count() + 1;
                let column = p.offset - text[..p.offset].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{ACTIONS_FILE}:{line}:{column}: {}", p.message)
            })
            .collect();
        (actions, located)
    }

    #[test]
    fn registered_actions_compile_and_mistakes_are_located() {
        let (actions, errors) = check(
            "[actions.\"db.export\"]\nexecutor = { type = \"http\", url = \"https://x/{{ resource }}\" }\naudience = \"https://x\"\nidempotent = true\n\n[actions.deploy]\nexecutor = { type = \"github_workflow\", workflow = \"deploy.yml\" }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(actions["db.export"].idempotent);
        assert_eq!(actions["deploy"].executor_type(), "github_workflow");
        assert_eq!(actions["deploy"].audience, None);

        let (_, errors) = check(
            "[actions.a]\nexecutor = { type = \"shell\" }\naudience = \"x\"\n\n[actions.b]\nexecutor = { argv = [\"/bin/true\"] }\naudience = \"x\"\n\n[actions.c]\nexecutor = { type = \"command\", argv = [\"/bin/true\"] }\n\n[actions.d]\nexecutor = { type = \"merge\" }\n",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].starts_with("policies/actions.toml:2:")
                && errors[0].contains("unknown executor type `shell`"),
            "{errors:?}"
        );
        assert!(errors[1].contains("needs a `type`"), "{errors:?}");
        assert!(
            errors[2].starts_with("policies/actions.toml:9:") && errors[2].contains("`audience`"),
            "{errors:?}"
        );
        assert!(
            errors[3].contains("`merge` runs `kind: change`"),
            "{errors:?}"
        );
        let (_, errors) =
            check("[actions.a]\nexecutor = { type = \"http\" }\naudience = \"x\"\ntimeout = 3\n");
        assert!(errors[0].contains("unknown field `timeout`"), "{errors:?}");
    }

    #[test]
    fn github_workflows_and_github_tokens_are_checked() {
        let (actions, errors) = check(
            "[actions.deploy]\nexecutor = { type = \"github_workflow\", workflow = \"deploy.yml\", repository = \"acme/svc\", inputs = { service = \"{{ resource }}\", version = \"{{ payload.version }}\" }, wait = true, timeout = \"45m\" }\n\n[actions.tag]\nexecutor = { type = \"command\", argv = [\"/bin/true\"] }\ngithub = { repository = \"acme/svc\", permissions = { contents = \"write\", pull_requests = \"read\" } }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(actions["deploy"].executor_type(), "github_workflow");
        let github = actions["tag"].github.as_ref().unwrap();
        assert_eq!(github.repository.as_deref(), Some("acme/svc"));
        assert_eq!(
            github.permissions["contents"],
            crate::support::github::Access::Write
        );
        assert_eq!(actions["tag"].audience, None);

        let (_, errors) = check(
            "[actions.a]\nexecutor = { type = \"github_workflow\", workflow = \"deploy\" }\n\n\
             [actions.b]\nexecutor = { type = \"github_workflow\", workflow = \"d.yml\", inputs = { x = \"{{ nope }}\" } }\n\n\
             [actions.c]\nexecutor = { type = \"command\", argv = [\"/bin/true\"] }\ngithub = { permissions = { contents = \"admin\" } }\n\n\
             [actions.d]\nexecutor = { type = \"command\", argv = [\"/bin/true\"] }\ngithub = { permissions = { everything = \"write\" } }\n\n\
             [actions.e]\nexecutor = { type = \"command\", argv = [\"/bin/true\"] }\naudience = \"x\"\ngithub = { permissions = { issues = \"write\" } }\n\n\
             [actions.f]\nexecutor = { type = \"github_workflow\", workflow = \"d.yml\" }\ngithub = { permissions = { issues = \"write\" } }\n\n\
             [actions.g]\nexecutor = { type = \"github_workflow\", workflow = \"d.yml\" }\ncredential_helper = { argv = [\"/bin/cat\"] }\n",
        );
        assert_eq!(errors.len(), 7, "{errors:?}");
        assert!(
            errors[0].starts_with("policies/actions.toml:2:") && errors[0].contains("`workflow`"),
            "{errors:?}"
        );
        assert!(errors[1].contains("`inputs.x`"), "{errors:?}");
        assert!(
            errors[2].contains("github:") && errors[2].contains("admin"),
            "{errors:?}"
        );
        assert!(errors[3].contains("`permissions.everything`"), "{errors:?}");
        assert!(errors[4].contains("`audience`"), "{errors:?}");
        assert!(errors[5].contains("its own token"), "{errors:?}");
        assert!(errors[6].contains("`credential_helper`"), "{errors:?}");
    }
}
