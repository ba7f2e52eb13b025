//! The `github_workflow` executor: a `workflow_dispatch` of a GitHub Actions workflow, with
//! inputs rendered from the request, dispatched with an installation token narrowed to that one
//! repository and `actions: write`; optionally (`wait = true`) followed until the run completes,
//! with a token narrowed to `actions: read`. Success: GitHub accepted the dispatch (`wait =
//! false`), or the run concluded `success` before `timeout` (`wait = true`).
//!
//! ```toml
//! executor = { type = "github_workflow", workflow = "deploy.yml", repository = "acme/deploy",
//!              ref = "main", inputs = { service = "{{ resource }}", version = "{{ payload.version }}",
//!              request = "{{ request_id }}" }, wait = true, timeout = "30m" }
//! ```
//!
//! **Inputs** are a map from the workflow's input name to a template (minijinja, strict) over
//! the request fields `action`, `resource`, `environment`, `agent`, `request_id` and the raw
//! `payload` (`{{ payload.version }}`; `{{ payload.spec | tojson }}` for a structure). Every
//! value is sent as a string, as GitHub requires; at most [`MAX_INPUTS`]. A payload key the
//! template names but the payload lacks fails the run before anything is dispatched.
//!
//! **Finding the run.** The dispatch asks GitHub to `return_run_details`: GitHub answers `200`
//! with the run's id, and that is the run. A GitHub that answers `204` without it (GitHub
//! Enterprise Server before the feature; or one refusing the flag with `422`, then the dispatch
//! is sent once more without it — a `422` creates nothing) is handled like this: before
//! dispatching, the workflow's recent runs are listed; after, the runs that were not there
//! before, triggered by `workflow_dispatch`, by the App's bot, on the dispatched branch, are the
//! candidates. A candidate whose title (`run-name`) contains the request id is the run; else a
//! single candidate is. Dispatches of one workflow are serialised inside countersign from that
//! listing until the run is found, so two approved requests never take each other's run. With
//! several countersign replicas dispatching one workflow at once, give the workflow a
//! `run-name` containing the request id (`run-name: deploy ${{ inputs.request }}`) and pass
//! `request = "{{ request_id }}"`: then the match is exact.
//!
//! A timed-out run is not cancelled; the outcome names it. The dispatch itself is sent once:
//! a 5xx or a network error is not retried (it may have created a run), and fails the attempt.

use super::Outcome;
use super::github_credential::{MintedToken, TokenMinter};
use super::output::limit;
use crate::actions::workflow::environment;
pub use crate::actions::workflow::{
    MAX_INPUTS, MAX_INPUTS_BYTES, MAX_POLL, MAX_TIMEOUT, MIN_POLL, MIN_TIMEOUT, WorkflowRef,
    WorkflowSpec,
};
use crate::forge::github::{Access, GitHubClient, Permissions, WorkflowRun};
use crate::mask::Masker;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How many of the workflow's latest runs are listed when looking for the dispatched one.
const RUNS_PAGE: u32 = 50;
/// A polling token is replaced when it has less than this left.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Renders the inputs for one request: every template over the request fields and the raw
/// payload. Errors name the input, never a value.
pub fn build_inputs(
    spec: &WorkflowSpec,
    fields: &BTreeMap<String, String>,
    payload: &Value,
) -> Result<BTreeMap<String, String>, String> {
    let mut context: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    context.insert("payload".into(), payload.clone());
    let context = Value::Object(context);
    let env = environment();
    let mut out = BTreeMap::new();
    for (name, template) in &spec.inputs {
        let value = env.render_str(template, &context).map_err(|e| {
            format!(
                "input `{name}`: template does not render: {} (does the payload have what it names?)",
                e.kind()
            )
        })?;
        out.insert(name.clone(), value);
    }
    let size = serde_json::to_vec(&out).map(|v| v.len()).unwrap_or(0);
    if size > MAX_INPUTS_BYTES {
        return Err(format!(
            "the inputs are {size} bytes; GitHub accepts at most {MAX_INPUTS_BYTES}"
        ));
    }
    Ok(out)
}

/// The branch a ref names, if it names one (`main`, `refs/heads/main`).
fn branch_of(git_ref: &str) -> Option<&str> {
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        return Some(b);
    }
    let sha_like = git_ref.len() >= 7 && git_ref.chars().all(|c| c.is_ascii_hexdigit());
    (!git_ref.starts_with("refs/") && !sha_like).then_some(git_ref)
}

/// The result of looking for the dispatched run among the workflow's runs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    Found(u64),
    NotYet,
    /// Several new runs by countersign, none naming the request.
    Ambiguous(usize),
}

/// Finds the dispatched run: among runs absent before the dispatch (`known`), triggered by
/// `workflow_dispatch`, by `actor` (the App's bot), on `branch` (when the ref is a branch),
/// the one whose title names `request_id`, else the only one.
pub(crate) fn pick_run(
    runs: &[WorkflowRun],
    known: &HashSet<u64>,
    request_id: &str,
    actor: &str,
    branch: Option<&str>,
) -> Pick {
    let candidates: Vec<&WorkflowRun> = runs
        .iter()
        .filter(|r| !known.contains(&r.id))
        .filter(|r| r.event == "workflow_dispatch")
        .filter(|r| {
            r.actor
                .as_ref()
                .is_none_or(|a| a.login.eq_ignore_ascii_case(actor))
        })
        .filter(|r| branch.is_none_or(|b| r.head_branch.as_deref().is_none_or(|h| h == b)))
        .collect();
    let named = candidates.iter().find(|r| {
        [&r.display_title, &r.name]
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| t.contains(request_id)))
    });
    match (named, candidates.as_slice()) {
        (Some(r), _) => Pick::Found(r.id),
        (None, []) => Pick::NotYet,
        (None, [only]) => Pick::Found(only.id),
        (None, many) => Pick::Ambiguous(many.len()),
    }
}

/// One lock per `(GitHub, repository, workflow)`: every dispatch of the workflow takes it, and a waiting
/// one holds it from listing the runs before the dispatch until its run is found, so no other
/// dispatch of that workflow starts here meanwhile.
fn dispatch_lock(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(key.to_ascii_lowercase()).or_default().clone()
}

/// What the executor needs besides the spec.
pub struct WorkflowContext<'a> {
    pub client: &'a GitHubClient,
    pub minter: &'a dyn TokenMinter,
    pub request_id: &'a str,
    pub fields: &'a BTreeMap<String, String>,
    pub payload: &'a Value,
    pub masker: &'a Masker,
}

/// What the outcome reports (its `output`, as JSON).
#[derive(Default)]
struct Report {
    repository: String,
    workflow: String,
    git_ref: String,
    run_id: Option<u64>,
    run_url: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    dispatch_status: Option<u16>,
    credential: Option<String>,
}

impl Report {
    fn outcome(
        &self,
        started_at_ms: i64,
        started: Instant,
        error: Option<String>,
        masker: &Masker,
    ) -> Outcome {
        let output = json!({
            "repository": self.repository,
            "workflow": self.workflow,
            "ref": self.git_ref,
            "dispatched": self.dispatch_status.is_some(),
            "run_id": self.run_id,
            "run_url": self.run_url,
            "status": self.status,
            "conclusion": self.conclusion,
        });
        Outcome {
            success: error.is_none(),
            exit_status: None,
            signal: None,
            http_status: self.dispatch_status,
            output: limit(masker.text(&output.to_string()), false),
            error: error.map(|e| limit(masker.text(&e), false)),
            started_at_ms,
            duration_ms: crate::time::duration_ms(started.elapsed()),
            credential: self.credential.clone(),
            outcome_unknown: false,
        }
    }
}

fn actions(access: Access) -> Permissions {
    Permissions::new()
        .with("actions", access)
        .expect("a valid permission name")
}

/// Dispatches the workflow (and follows its run with `wait`). Never panics; every failure is
/// an unsuccessful [`Outcome`] naming what happened.
pub async fn run(spec: &WorkflowSpec, cx: &WorkflowContext<'_>) -> Outcome {
    let started_at_ms = crate::time::now_ms();
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let repository = spec
        .repository
        .clone()
        .unwrap_or_else(|| format!("{}/{}", cx.client.owner(), cx.client.repo()));
    let mut report = Report {
        repository: repository.clone(),
        workflow: spec.workflow.as_path(),
        ..Report::default()
    };
    let error = follow(spec, cx, &repository, deadline, &mut report).await;
    report.outcome(started_at_ms, started, error.err(), cx.masker)
}

/// The whole run; `Err` is the outcome's error. `report` is filled in as things happen.
async fn follow(
    spec: &WorkflowSpec,
    cx: &WorkflowContext<'_>,
    repository: &str,
    deadline: Instant,
    report: &mut Report,
) -> Result<(), String> {
    spec.validate()
        .map_err(|e| format!("invalid github_workflow executor: {e}"))?;
    let inputs = build_inputs(spec, cx.fields, cx.payload)?;
    let workflow = spec.workflow.as_path();
    let token = cx.minter.mint(&actions(Access::Write), repository).await?;
    report.credential = Some(token.id.clone());
    let dispatched = dispatch(
        spec, cx, repository, &workflow, &inputs, &token, deadline, report,
    )
    .await;
    cx.minter.revoke(&token).await;
    let (found, lock) = dispatched?;
    if !spec.wait {
        return Ok(());
    }
    let mut poller = Poller {
        minter: cx.minter,
        repository,
        token: None,
    };
    let result = wait_for_run(spec, cx, &mut poller, found, lock, deadline, report).await;
    if let Some(t) = poller.token.take() {
        cx.minter.revoke(&t).await;
    }
    result
}

/// What the dispatch left: the run if known, else how to find it (the runs listed before and
/// the lock held since then).
enum Found {
    Run(u64),
    Search {
        known: HashSet<u64>,
        branch: Option<String>,
    },
}

type Held = Option<tokio::sync::OwnedMutexGuard<()>>;

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    spec: &WorkflowSpec,
    cx: &WorkflowContext<'_>,
    repository: &str,
    workflow: &str,
    inputs: &BTreeMap<String, String>,
    token: &MintedToken,
    deadline: Instant,
    report: &mut Report,
) -> Result<(Found, Held), String> {
    let git_ref = match &spec.git_ref {
        Some(r) => r.clone(),
        None if is_gitops(cx.client, repository) => cx.client.base_branch().to_owned(),
        None => cx
            .client
            .default_branch_as(&token.token, repository)
            .await
            .map_err(|e| format!("cannot read the repository's default branch: {e}"))?,
    };
    report.git_ref = git_ref.clone();
    // Every dispatch of this workflow from here takes its lock, so that while one request looks
    // for its run among the new ones, no other dispatch (waiting or not) adds a run.
    let lock = dispatch_lock(&format!("{} {repository}/{workflow}", cx.client.api_url()));
    let held = tokio::time::timeout_at(deadline.into(), lock.lock_owned())
        .await
        .map_err(|_| {
            format!(
                "timed out after {} waiting for another dispatch of this workflow to find its run (nothing was dispatched)",
                humantime::format_duration(spec.timeout)
            )
        })?;
    // The runs before the dispatch: only needed to find the run if GitHub does not name it.
    let mut known = HashSet::new();
    if spec.wait {
        let runs = cx
            .client
            .workflow_runs_as(&token.token, repository, workflow, RUNS_PAGE)
            .await
            .map_err(|e| format!("cannot list the workflow's runs: {e}"))?;
        known = runs.iter().map(|r| r.id).collect();
    }
    let answer = cx
        .client
        .dispatch_workflow_as(&token.token, repository, workflow, &git_ref, inputs)
        .await
        .map_err(|e| format!("workflow dispatch failed: {e}"))?;
    report.dispatch_status = Some(answer.status);
    tracing::info!(
        request.id = cx.request_id,
        github.repository = repository,
        github.workflow = workflow,
        github.run = answer.run.as_ref().map(|r| r.workflow_run_id),
        "workflow dispatched"
    );
    match answer.run {
        Some(run) => {
            report.run_id = Some(run.workflow_run_id);
            report.run_url = run.html_url.clone();
            Ok((Found::Run(run.workflow_run_id), None))
        }
        None if spec.wait => Ok((
            Found::Search {
                known,
                branch: branch_of(&git_ref).map(str::to_owned),
            },
            Some(held),
        )),
        None => Ok((
            Found::Search {
                known,
                branch: None,
            },
            None,
        )),
    }
}

fn is_gitops(client: &GitHubClient, repository: &str) -> bool {
    repository.eq_ignore_ascii_case(&format!("{}/{}", client.owner(), client.repo()))
}

/// The `actions: read` token used while following a run, replaced before it expires.
struct Poller<'a> {
    minter: &'a dyn TokenMinter,
    repository: &'a str,
    token: Option<MintedToken>,
}

impl Poller<'_> {
    async fn token(&mut self) -> Result<&MintedToken, String> {
        let stale = self.token.as_ref().is_none_or(|t| {
            t.expires_at
                .duration_since(SystemTime::now())
                .map_or(true, |left| left < TOKEN_MARGIN)
        });
        if stale {
            let fresh = self
                .minter
                .mint(&actions(Access::Read), self.repository)
                .await?;
            if let Some(old) = self.token.replace(fresh) {
                self.minter.revoke(&old).await;
            }
        }
        Ok(self.token.as_ref().expect("set above"))
    }
}

async fn wait_for_run(
    spec: &WorkflowSpec,
    cx: &WorkflowContext<'_>,
    poller: &mut Poller<'_>,
    found: Found,
    mut held: Held,
    deadline: Instant,
    report: &mut Report,
) -> Result<(), String> {
    let repository = poller.repository;
    let timeout = humantime::format_duration(spec.timeout);
    let workflow = spec.workflow.as_path();
    let run_id = match found {
        Found::Run(id) => id,
        Found::Search { known, branch } => {
            let actor = cx
                .client
                .bot_login()
                .await
                .map_err(|e| format!("cannot tell the App's bot login: {e}"))?;
            loop {
                let token = poller.token().await?;
                let runs = cx
                    .client
                    .workflow_runs_as(&token.token, repository, &workflow, RUNS_PAGE)
                    .await;
                match runs.map(|r| {
                    (
                        pick_run(&r, &known, cx.request_id, &actor, branch.as_deref()),
                        r,
                    )
                }) {
                    Ok((Pick::Found(id), runs)) => {
                        let run = runs.iter().find(|r| r.id == id).expect("picked from runs");
                        report.run_id = Some(id);
                        report.run_url = Some(run.html_url.clone());
                        break id;
                    }
                    Ok((Pick::Ambiguous(n), _)) => {
                        return Err(format!(
                            "the workflow was dispatched, but {n} new runs by countersign match and none names the request; give the workflow a `run-name` containing an input set to `{{{{ request_id }}}}`"
                        ));
                    }
                    Ok((Pick::NotYet, _)) => {}
                    Err(e) => {
                        tracing::warn!(request.id = cx.request_id, error = %e, "could not list workflow runs; trying again")
                    }
                }
                if Instant::now() + spec.poll_interval > deadline {
                    return Err(format!(
                        "timed out after {timeout}: the workflow was dispatched, but its run did not appear"
                    ));
                }
                tokio::time::sleep(spec.poll_interval).await;
            }
        }
    };
    held.take();
    loop {
        let token = poller.token().await?;
        match cx
            .client
            .workflow_run_as(&token.token, repository, run_id)
            .await
        {
            Ok(run) => {
                report.status = Some(run.status.clone());
                report.conclusion = run.conclusion.clone();
                report.run_url = Some(run.html_url.clone());
                if run.status == "completed" {
                    return match run.conclusion.as_deref() {
                        Some("success") => Ok(()),
                        other => Err(format!(
                            "workflow run {run_id} concluded `{}`",
                            other.unwrap_or("none")
                        )),
                    };
                }
            }
            Err(e) => {
                tracing::warn!(request.id = cx.request_id, github.run = run_id, error = %e, "could not read the workflow run; trying again")
            }
        }
        if Instant::now() + spec.poll_interval > deadline {
            return Err(format!(
                "timed out after {timeout} waiting for workflow run {run_id} (last status `{}`; the run was not cancelled)",
                report.status.as_deref().unwrap_or("unknown")
            ));
        }
        tokio::time::sleep(spec.poll_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ExecutorSpec;
    use crate::forge::github::Login;
    use serde::Deserialize;

    fn parse(text: &str) -> Result<WorkflowSpec, String> {
        #[derive(Deserialize)]
        struct Doc {
            executor: ExecutorSpec,
        }
        match toml::from_str::<Doc>(text)
            .map_err(|e| e.to_string())?
            .executor
        {
            ExecutorSpec::GithubWorkflow(w) => Ok(w),
            other => Err(format!("not a workflow: {other:?}")),
        }
    }

    fn spec(rest: &str) -> WorkflowSpec {
        parse(&format!(
            r#"executor = {{ type = "github_workflow", {rest} }}"#
        ))
        .unwrap()
    }

    fn field_of(rest: &str) -> String {
        spec(rest).validate().unwrap_err().field
    }

    fn fields() -> BTreeMap<String, String> {
        [
            ("action", "deploy"),
            ("resource", "api"),
            ("environment", "prod"),
            ("agent", "agent-a"),
            ("request_id", "cr_01TEST"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn defaults_and_both_workflow_forms() {
        let s = spec(r#"workflow = "deploy.yml""#);
        s.validate().unwrap();
        assert_eq!(s.workflow, WorkflowRef::File("deploy.yml".into()));
        assert_eq!((s.repository, s.git_ref), (None, None));
        assert!(!s.wait && s.inputs.is_empty());
        assert_eq!(s.timeout, Duration::from_secs(1800));
        assert_eq!(s.poll_interval, Duration::from_secs(10));
        let s = spec(
            r#"workflow = 161335, repository = "acme/deploy", ref = "refs/tags/v1.2", wait = true, timeout = "2h", poll_interval = "500ms""#,
        );
        s.validate().unwrap();
        assert_eq!(s.workflow.as_path(), "161335");
        assert_eq!(s.git_ref.as_deref(), Some("refs/tags/v1.2"));
        assert!(s.wait);
        spec(r#"workflow = "161335""#).validate().unwrap();
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(
            field_of(r#"workflow = ".github/workflows/x.yml""#),
            "workflow"
        );
        assert_eq!(field_of(r#"workflow = "deploy""#), "workflow");
        assert_eq!(field_of("workflow = 0"), "workflow");
        assert_eq!(
            field_of(r#"workflow = "d.yml", repository = "acme""#),
            "repository"
        );
        assert_eq!(field_of(r#"workflow = "d.yml", ref = "a b""#), "ref");
        assert_eq!(field_of(r#"workflow = "d.yml", ref = "x..y""#), "ref");
        assert_eq!(
            field_of(r#"workflow = "d.yml", inputs = { "1x" = "a" }"#),
            "inputs.1x"
        );
        assert_eq!(
            field_of(r#"workflow = "d.yml", inputs = { a = "{{ secret }}" }"#),
            "inputs.a"
        );
        assert_eq!(
            field_of(r#"workflow = "d.yml", inputs = { a = "{{ resource" }"#),
            "inputs.a"
        );
        let many: Vec<String> = (0..11).map(|i| format!("i{i} = \"x\"")).collect();
        assert_eq!(
            field_of(&format!(
                r#"workflow = "d.yml", inputs = {{ {} }}"#,
                many.join(", ")
            )),
            "inputs"
        );
        assert_eq!(field_of(r#"workflow = "d.yml", timeout = "7h""#), "timeout");
        assert_eq!(
            field_of(r#"workflow = "d.yml", poll_interval = "10ms""#),
            "poll_interval"
        );
        let e =
            parse(r#"executor = { type = "github_workflow", workflow = "d.yml", token = "x" }"#)
                .unwrap_err();
        assert!(e.contains("token"), "{e}");
        let e = parse(r#"executor = { type = "github_workflow" }"#).unwrap_err();
        assert!(e.contains("workflow"), "{e}");
    }

    #[test]
    fn inputs_are_strings_from_request_fields_and_payload() {
        let s = spec(
            r#"workflow = "d.yml", inputs = { service = "{{ resource }}", env = "{{ environment }}", version = "{{ payload.version }}", replicas = "{{ payload.replicas }}", spec = "{{ payload.spec | tojson }}", request = "{{ request_id }}", note = "by {{ agent }} for {{ action }}" }"#,
        );
        s.validate().unwrap();
        let payload = json!({ "version": "1.4.2", "replicas": 3, "spec": { "a": [1, true] } });
        let inputs = build_inputs(&s, &fields(), &payload).unwrap();
        let want: BTreeMap<String, String> = [
            ("service", "api"),
            ("env", "prod"),
            ("version", "1.4.2"),
            ("replicas", "3"),
            ("spec", r#"{"a":[1,true]}"#),
            ("request", "cr_01TEST"),
            ("note", "by agent-a for deploy"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(inputs, want);
        // No escaping: what the payload says is what the workflow gets.
        let s = spec(r#"workflow = "d.yml", inputs = { q = "{{ payload.q }}" }"#);
        let inputs = build_inputs(&s, &fields(), &json!({ "q": "<a & 'b'>" })).unwrap();
        assert_eq!(inputs["q"], "<a & 'b'>");
    }

    #[test]
    fn a_missing_payload_key_fails_without_echoing_values() {
        let s = spec(r#"workflow = "d.yml", inputs = { version = "{{ payload.version }}" }"#);
        let e = build_inputs(&s, &fields(), &json!({ "other": "secret-value" })).unwrap_err();
        assert!(e.starts_with("input `version`"), "{e}");
        assert!(!e.contains("secret-value"), "{e}");
        let big = "x".repeat(MAX_INPUTS_BYTES);
        let s = spec(r#"workflow = "d.yml", inputs = { blob = "{{ payload.blob }}" }"#);
        assert!(build_inputs(&s, &fields(), &json!({ "blob": big })).is_err());
    }

    fn run(id: u64, actor: &str, branch: &str, title: &str) -> WorkflowRun {
        WorkflowRun {
            id,
            name: Some("Deploy".into()),
            display_title: Some(title.into()),
            status: "queued".into(),
            conclusion: None,
            html_url: format!("https://github.com/acme/gitops/actions/runs/{id}"),
            head_branch: Some(branch.into()),
            event: "workflow_dispatch".into(),
            actor: Some(Login {
                login: actor.into(),
            }),
        }
    }

    #[test]
    fn the_dispatched_run_is_new_by_the_bot_on_the_branch() {
        let bot = "countersign[bot]";
        let known: HashSet<u64> = [1, 2].into();
        let old = run(1, bot, "main", "Deploy");
        let mut by_hand = run(3, "alice", "main", "Deploy");
        by_hand.event = "workflow_dispatch".into();
        let other_branch = run(4, bot, "release", "Deploy");
        let mut pushed = run(5, bot, "main", "Deploy");
        pushed.event = "push".into();
        let ours = run(6, bot, "main", "Deploy");
        let runs = vec![
            old.clone(),
            by_hand.clone(),
            other_branch.clone(),
            pushed.clone(),
        ];
        assert_eq!(
            pick_run(&runs, &known, "cr_A", bot, Some("main")),
            Pick::NotYet
        );
        let mut with_ours = runs.clone();
        with_ours.push(ours.clone());
        assert_eq!(
            pick_run(&with_ours, &known, "cr_A", bot, Some("main")),
            Pick::Found(6)
        );
        // Two new runs by countersign: only the one naming the request is taken.
        let mut two = with_ours.clone();
        two.push(run(7, bot, "main", "Deploy"));
        assert_eq!(
            pick_run(&two, &known, "cr_A", bot, Some("main")),
            Pick::Ambiguous(2)
        );
        two.push(run(8, bot, "main", "deploy for cr_A"));
        assert_eq!(
            pick_run(&two, &known, "cr_A", bot, Some("main")),
            Pick::Found(8)
        );
        // A tag or commit ref: the branch is not compared.
        assert_eq!(branch_of("refs/tags/v1"), None);
        assert_eq!(branch_of("0123456789abcdef0123456789abcdef01234567"), None);
        assert_eq!(branch_of("refs/heads/main"), Some("main"));
        assert_eq!(branch_of("main"), Some("main"));
        assert_eq!(
            pick_run(&[other_branch], &known, "cr_A", bot, None),
            Pick::Found(4)
        );
    }
}
