//! `[actions.*].executor` with `type = "github_workflow"`: which workflow to dispatch, where,
//! with which inputs (templates over the request fields and `payload`), and whether to follow
//! the run. The executor itself lives in `crate::execute::github_workflow`.

use super::github::check_repository;
use super::spec::{SpecError, TEMPLATE_FIELDS};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// GitHub accepts at most this many inputs in a `workflow_dispatch`.
pub const MAX_INPUTS: usize = 10;
/// GitHub's bound on the inputs of one dispatch (their JSON).
pub const MAX_INPUTS_BYTES: usize = 65_535;
/// Bounds of `timeout`: a workflow may run for hours (a GitHub-hosted job for at most 6).
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// Bounds of `poll_interval`.
pub const MIN_POLL: Duration = Duration::from_millis(100);
pub const MAX_POLL: Duration = Duration::from_secs(300);

/// The workflow: its file name under `.github/workflows/` or its numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkflowRef {
    Id(u64),
    File(String),
}

impl WorkflowRef {
    /// The path segment GitHub takes (`deploy.yml` or `1234`).
    pub fn as_path(&self) -> String {
        match self {
            WorkflowRef::Id(id) => id.to_string(),
            WorkflowRef::File(f) => f.clone(),
        }
    }
}

/// `[actions.*].executor` with `type = "github_workflow"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub workflow: WorkflowRef,
    /// `owner/name`; the GitOps repository when absent.
    #[serde(default)]
    pub repository: Option<String>,
    /// Branch, tag (`refs/tags/v1`) or commit; the repository's default branch when absent
    /// (the configured base branch for the GitOps repository).
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// Input name → template over the request fields and `payload`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Follow the run until it completes (success iff its conclusion is `success`).
    #[serde(default)]
    pub wait: bool,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How often the run is read while waiting.
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_poll() -> Duration {
    Duration::from_secs(10)
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// GitHub's input ids: a letter or `_`, then letters, digits, `-` and `_`.
fn is_input_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 100
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A template environment: strict undefined, no auto-escaping.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

fn check_ref(git_ref: &str) -> Result<(), SpecError> {
    let bad = git_ref.is_empty()
        || git_ref.len() > 255
        || git_ref.contains("..")
        || git_ref.starts_with('/')
        || git_ref.ends_with('/')
        || git_ref
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        return Err(err("ref", "must be a branch, tag or commit name"));
    }
    Ok(())
}

impl WorkflowSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        match &self.workflow {
            WorkflowRef::Id(0) => return Err(err("workflow", "must be a positive id")),
            WorkflowRef::Id(_) => {}
            WorkflowRef::File(f) => {
                let numeric = !f.is_empty() && f.chars().all(|c| c.is_ascii_digit());
                let file = (f.ends_with(".yml") || f.ends_with(".yaml"))
                    && f.len() <= 255
                    && f.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                if !numeric && !file {
                    return Err(err(
                        "workflow",
                        "must be a workflow file name (`deploy.yml`, without `.github/workflows/`) or its numeric id",
                    ));
                }
            }
        }
        if let Some(repository) = &self.repository {
            check_repository("repository", repository)?;
        }
        if let Some(git_ref) = &self.git_ref {
            check_ref(git_ref)?;
        }
        if self.inputs.len() > MAX_INPUTS {
            return Err(err(
                "inputs",
                format!("GitHub accepts at most {MAX_INPUTS} inputs"),
            ));
        }
        let env = environment();
        for (name, template) in &self.inputs {
            let field = format!("inputs.{name}");
            if !is_input_name(name) {
                return Err(err(
                    field,
                    "is not a workflow input name ([A-Za-z_][A-Za-z0-9_-]*)",
                ));
            }
            let compiled = env
                .template_from_str(template)
                .map_err(|e| err(&field, format!("template does not parse: {}", e.kind())))?;
            let mut unknown: Vec<String> = compiled
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| v != "payload" && !TEMPLATE_FIELDS.contains(&v.as_str()))
                .collect();
            unknown.sort();
            if let Some(first) = unknown.first() {
                return Err(err(
                    field,
                    format!(
                        "template uses `{first}`; it may use {} and `payload`",
                        TEMPLATE_FIELDS
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        if self.timeout < MIN_TIMEOUT || self.timeout > MAX_TIMEOUT {
            return Err(err("timeout", "must be between 1s and 6h"));
        }
        if self.poll_interval < MIN_POLL || self.poll_interval > MAX_POLL {
            return Err(err("poll_interval", "must be between 100ms and 5m"));
        }
        Ok(())
    }
}
