//! Executor specifications as the action registry embeds them (TOML, `type`-tagged,
//! unknown keys refused, durations like `"30s"`), and their validation. Errors name the field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The default name of the variable carrying the just-in-time credential.
pub const DEFAULT_TOKEN_ENV: &str = "COUNTERSIGN_TOKEN";
/// The variable carrying the request id.
pub const REQUEST_ID_ENV: &str = "COUNTERSIGN_REQUEST_ID";
/// The child's `PATH` unless the spec says otherwise.
pub const DEFAULT_PATH: &str = "/usr/bin:/bin";
/// HTTP methods an executor may use.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Timeouts must lie in this range.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Headers the HTTP executor sets itself; a spec may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "idempotency-key",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];
/// The fields a template may use (`Invocation::fields`).
pub const TEMPLATE_FIELDS: &[&str] = &["action", "resource", "environment", "agent", "request_id"];

/// How an approved action is carried out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExecutorSpec {
    Command(CommandSpec),
    Http(HttpSpec),
    /// A GitHub Actions `workflow_dispatch` (needs `[github]`), see
    /// [`super::workflow`].
    #[serde(rename = "github_workflow")]
    GithubWorkflow(super::workflow::WorkflowSpec),
}

/// Run a program (no shell) with a clean environment, the payload on stdin and the
/// credential in one variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Program (absolute path, or a bare name looked up in `path`) and its arguments.
    pub argv: Vec<String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The variable the credential is passed in.
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// Extra fixed variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The child's `PATH`.
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Call an HTTP endpoint with the payload as the JSON body and the credential as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    #[serde(default = "default_method")]
    pub method: String,
    /// A minijinja template over the request fields, e.g. `https://deploy.internal/{{ resource }}`.
    pub url: String,
    /// Header values are templates too.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_http_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_token_env() -> String {
    DEFAULT_TOKEN_ENV.to_owned()
}
fn default_path() -> String {
    DEFAULT_PATH.to_owned()
}
fn default_method() -> String {
    "POST".to_owned()
}
fn default_command_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A spec that cannot be used: which field, and why (never the field's secret value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

impl ExecutorSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            ExecutorSpec::Command(c) => c.validate(),
            ExecutorSpec::Http(h) => h.validate(),
            ExecutorSpec::GithubWorkflow(w) => w.validate(),
        }
    }

    /// The executor's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorSpec::Command(_) => "command",
            ExecutorSpec::Http(_) => "http",
            ExecutorSpec::GithubWorkflow(_) => "github_workflow",
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            ExecutorSpec::Command(c) => c.timeout,
            ExecutorSpec::Http(h) => h.timeout,
            ExecutorSpec::GithubWorkflow(w) => w.timeout,
        }
    }
}

fn check_timeout(t: Duration) -> Result<(), SpecError> {
    if t < MIN_TIMEOUT || t > MAX_TIMEOUT {
        return Err(err("timeout", "must be between 1s and 1h"));
    }
    Ok(())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl CommandSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        let Some(program) = self.argv.first() else {
            return Err(err("argv", "must not be empty"));
        };
        if program.is_empty() {
            return Err(err("argv[0]", "must not be empty"));
        }
        if program.contains('/') && !program.starts_with('/') {
            return Err(err(
                "argv[0]",
                "must be an absolute path or a program name looked up in `path`",
            ));
        }
        if let Some(i) = self.argv.iter().position(|a| a.contains('\0')) {
            return Err(err(format!("argv[{i}]"), "must not contain NUL"));
        }
        if let Some(cwd) = &self.cwd
            && !cwd.is_absolute()
        {
            return Err(err("cwd", "must be an absolute path"));
        }
        if !is_env_name(&self.token_env) {
            return Err(err(
                "token_env",
                "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
        if self.token_env == "PATH" || self.token_env == REQUEST_ID_ENV {
            return Err(err(
                "token_env",
                format!("must not be PATH or {REQUEST_ID_ENV}"),
            ));
        }
        for (name, value) in &self.env {
            let field = format!("env.{name}");
            if !is_env_name(name) {
                return Err(err(
                    field,
                    "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                ));
            }
            if name == "PATH" || name == REQUEST_ID_ENV || *name == self.token_env {
                return Err(err(
                    field,
                    "is set by countersign (use `path` for PATH, `token_env` for the credential)",
                ));
            }
            if value.contains('\0') {
                return Err(err(field, "must not contain NUL"));
            }
        }
        if self.path.is_empty() || self.path.contains('\0') {
            return Err(err("path", "must be a non-empty search path without NUL"));
        }
        check_timeout(self.timeout)
    }
}

/// Sample values for rendering templates during validation.
pub(crate) fn sample_fields() -> BTreeMap<String, String> {
    TEMPLATE_FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), format!("sample-{}", f.replace('_', "-"))))
        .collect()
}

/// Renders a template over the request fields; undefined fields are errors.
pub(crate) fn render(
    template: &str,
    fields: &BTreeMap<String, String>,
) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(template, fields)
}

/// An absolute http(s) URL with a host, or why not (without echoing it).
pub(crate) fn parse_url(rendered: &str) -> Result<reqwest::Url, &'static str> {
    let url = reqwest::Url::parse(rendered).map_err(|_| "does not render to a valid URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host");
    }
    Ok(url)
}

impl HttpSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        if !METHODS.contains(&self.method.as_str()) {
            return Err(err(
                "method",
                format!("must be one of {}", METHODS.join(", ")),
            ));
        }
        let sample = sample_fields();
        let url = render(&self.url, &sample)
            .map_err(|e| err("url", format!("template does not render: {}", e.kind())))?;
        parse_url(&url).map_err(|m| err("url", m))?;
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(err(field, "is not a valid header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(err(field, "is set by countersign"));
            }
            let rendered = render(value, &sample)
                .map_err(|e| err(&field, format!("template does not render: {}", e.kind())))?;
            if reqwest::header::HeaderValue::from_str(&rendered).is_err() {
                return Err(err(field, "does not render to a valid header value"));
            }
        }
        check_timeout(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ExecutorSpec, String> {
        #[derive(Deserialize)]
        struct Doc {
            executor: ExecutorSpec,
        }
        toml::from_str::<Doc>(toml_text)
            .map(|d| d.executor)
            .map_err(|e| e.to_string())
    }

    fn field_of(toml_text: &str) -> String {
        parse(toml_text).unwrap().validate().unwrap_err().field
    }

    #[test]
    fn command_from_toml_with_defaults() {
        let spec = parse(r#"executor = { type = "command", argv = ["/usr/bin/deploy", "--now"], timeout = "30s" }"#)
            .unwrap();
        let ExecutorSpec::Command(c) = &spec else {
            panic!("not a command: {spec:?}")
        };
        assert_eq!(c.argv, ["/usr/bin/deploy", "--now"]);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.token_env, DEFAULT_TOKEN_ENV);
        assert_eq!(c.path, DEFAULT_PATH);
        assert!(c.env.is_empty() && c.cwd.is_none());
        spec.validate().unwrap();
    }

    #[test]
    fn http_from_toml() {
        let spec = parse(
            r#"executor = { type = "http", method = "PUT", url = "https://deploy.internal/{{ resource }}?env={{ environment }}", headers = { X-Action = "{{ action }}" }, timeout = "10s" }"#,
        )
        .unwrap();
        let ExecutorSpec::Http(h) = &spec else {
            panic!("not http: {spec:?}")
        };
        assert_eq!(h.method, "PUT");
        assert_eq!(h.headers["X-Action"], "{{ action }}");
        assert_eq!(h.timeout, Duration::from_secs(10));
        spec.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        let e =
            parse(r#"executor = { type = "command", argv = ["x"], shell = true }"#).unwrap_err();
        assert!(e.contains("shell"), "{e}");
        let e = parse(r#"executor = { type = "ftp", url = "x" }"#).unwrap_err();
        assert!(e.contains("ftp"), "{e}");
        let e = parse(r#"executor = { type = "command", argv = ["x"], timeout = "soon" }"#)
            .unwrap_err();
        assert!(e.contains("timeout") || e.contains("soon"), "{e}");
    }

    #[test]
    fn command_validation_names_the_field() {
        let c = |rest: &str| format!(r#"executor = {{ type = "command", {rest} }}"#);
        assert_eq!(field_of(&c("argv = []")), "argv");
        assert_eq!(field_of(&c(r#"argv = [""]"#)), "argv[0]");
        assert_eq!(field_of(&c(r#"argv = ["bin/deploy"]"#)), "argv[0]");
        assert_eq!(field_of(&c(r#"argv = ["deploy", "a\u0000b"]"#)), "argv[1]");
        assert_eq!(field_of(&c(r#"argv = ["deploy"], cwd = "rel""#)), "cwd");
        assert_eq!(
            field_of(&c(r#"argv = ["deploy"], token_env = "1X""#)),
            "token_env"
        );
        assert_eq!(
            field_of(&c(r#"argv = ["deploy"], token_env = "PATH""#)),
            "token_env"
        );
        assert_eq!(
            field_of(&c(r#"argv = ["deploy"], env = { PATH = "/x" }"#)),
            "env.PATH"
        );
        assert_eq!(
            field_of(&c(
                r#"argv = ["deploy"], env = { COUNTERSIGN_TOKEN = "x" }"#
            )),
            "env.COUNTERSIGN_TOKEN"
        );
        assert_eq!(
            field_of(&c(r#"argv = ["deploy"], env = { "A-B" = "x" }"#)),
            "env.A-B"
        );
        assert_eq!(field_of(&c(r#"argv = ["deploy"], path = """#)), "path");
        assert_eq!(
            field_of(&c(r#"argv = ["deploy"], timeout = "500ms""#)),
            "timeout"
        );
        assert_eq!(
            field_of(&c(r#"argv = ["deploy"], timeout = "2h""#)),
            "timeout"
        );
        parse(&c(
            r#"argv = ["deploy"], timeout = "1h", env = { MODE = "fast" }, cwd = "/srv""#,
        ))
        .unwrap()
        .validate()
        .unwrap();
    }

    #[test]
    fn http_validation_names_the_field() {
        let h = |rest: &str| format!(r#"executor = {{ type = "http", {rest} }}"#);
        assert_eq!(
            field_of(&h(r#"method = "TRACE", url = "https://x""#)),
            "method"
        );
        assert_eq!(field_of(&h(r#"url = "ftp://x/{{ resource }}""#)), "url");
        assert_eq!(field_of(&h(r#"url = "{{ resource }}""#)), "url");
        assert_eq!(field_of(&h(r#"url = "https://x/{{ nope }}""#)), "url");
        assert_eq!(field_of(&h(r#"url = "https://x/{{ resource""#)), "url");
        assert_eq!(
            field_of(&h(
                r#"url = "https://x", headers = { Authorization = "Basic x" }"#
            )),
            "headers.Authorization"
        );
        assert_eq!(
            field_of(&h(r#"url = "https://x", headers = { "Bad Name" = "x" }"#)),
            "headers.Bad Name"
        );
        assert_eq!(
            field_of(&h(
                r#"url = "https://x", headers = { X-A = "{{ missing }}" }"#
            )),
            "headers.X-A"
        );
        assert_eq!(
            field_of(&h(r#"url = "https://x", timeout = "0s""#)),
            "timeout"
        );
        let spec = parse(&h(r#"url = "http://127.0.0.1:8080/{{ request_id }}""#)).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn error_display_names_the_field() {
        let e = err("argv", "must not be empty");
        assert_eq!(e.to_string(), "`argv`: must not be empty");
    }
}
