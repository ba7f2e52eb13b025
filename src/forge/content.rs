//! What a review commit holds, shared by every forge: the masked request record
//! `requests/<yyyy>/<mm>/<id>.json`, its description rendered from `templates/pull_request.md.j2`
//! (`.md`, also the pull request body on GitHub), the commit message, and for `change` requests
//! the proposed files. Templates come from the base branch's tree, falling back to the built-in
//! copies with a warning; a template never blocks a review. Whatever a template renders, the
//! description and commit message show invisible and bidirectional characters as `<U+202E>`,
//! and the record as `\u202e` escapes ([`crate::text`]).

use super::ReviewRequest;
use crate::request::{Kind, RequestId};
use git2::{Oid, Repository, Signature};
use std::collections::BTreeMap;
use std::path::Path;

pub(super) const PR_TEMPLATE: &str = "templates/pull_request.md.j2";
pub(super) const COMMIT_TEMPLATE: &str = "templates/commit_message.txt.j2";
pub(super) const BUILTIN_PR_TEMPLATE: &str = include_str!("../../templates/pull_request.md.j2");
pub(super) const BUILTIN_COMMIT_TEMPLATE: &str =
    include_str!("../../templates/commit_message.txt.j2");

pub(super) const BOT_NAME: &str = "countersign";
pub(super) const BOT_EMAIL: &str = "countersign@localhost";

pub(super) fn bot() -> Result<Signature<'static>, git2::Error> {
    Signature::now(BOT_NAME, BOT_EMAIL)
}

/// What a review commit holds, prepared before touching a repository.
#[derive(Clone)]
pub(super) struct ReviewContent {
    /// `countersign/<id>`.
    pub branch: String,
    pub record_path: String,
    pub record: String,
    pub context: minijinja::Value,
    /// Proposed files of a `change` request: (path, content).
    pub changes: Vec<(String, String)>,
}

impl ReviewContent {
    /// `forge` names the forge in the template context (`local`, `github`), so a template can
    /// tell reviewers how to answer.
    pub fn prepare(request: &ReviewRequest<'_>, forge: &str) -> Self {
        let created = crate::time::rfc3339(request.created_at_ms);
        let expires = crate::time::rfc3339(request.expires_at_ms);
        let changes_summary: Vec<_> = request
            .changes
            .iter()
            .map(|c| serde_json::json!({ "path": c.path, "bytes": c.content.len() }))
            .collect();
        let record = serde_json::json!({
            "id": request.id.as_str(),
            "agent": request.agent.as_str(),
            "kind": request.kind.as_str(),
            "action": request.action,
            "resource": request.resource,
            "environment": request.environment,
            "justification": request.justification,
            "digest": request.digest.as_str(),
            "created_at": created,
            "expires_at": expires,
            "payload": request.payload,
            "masking": request.masking,
            "changes": changes_summary,
            "policy": request.evaluation,
        });
        let context = minijinja::context! {
            id => request.id.as_str(),
            agent => request.agent.as_str(),
            kind => request.kind.as_str(),
            action => request.action,
            resource => request.resource,
            environment => request.environment,
            justification => request.justification,
            digest => request.digest.as_str(),
            created_at => created,
            expires_at => expires,
            payload => serde_json::to_string_pretty(request.payload).unwrap_or_default(),
            masking => request.masking,
            changes => changes_summary,
            risk => request.evaluation.map(|e| e.risk.as_str()).unwrap_or("unknown"),
            policy => request.evaluation,
            policy_commit => request.evaluation.map(|e| e.policy_commit.chars().take(12).collect::<String>()),
            forge => forge,
        };
        ReviewContent {
            branch: format!("countersign/{}", request.id),
            record_path: format!("{}/{}.json", request_dir(request.id), request.id),
            record: crate::text::visible_json(
                &serde_json::to_string_pretty(&record).unwrap_or_default(),
            )
            .into_owned()
                + "\n",
            context,
            changes: match request.kind {
                Kind::Change => request
                    .changes
                    .iter()
                    .map(|c| (c.path.clone(), c.content.clone()))
                    .collect(),
                Kind::Action => vec![],
            },
        }
    }

    pub fn description_path(&self) -> String {
        self.record_path.replace(".json", ".md")
    }
}

/// A review commit written to the object database (no reference moved yet).
pub(super) struct BuiltCommit {
    pub id: Oid,
    /// The rendered description (the `.md` file; the pull request body on GitHub).
    pub description: String,
}

/// Writes the review commit on top of `parent`, rendering the templates of `parent`'s tree.
pub(super) fn build_commit(
    repo: &Repository,
    parent: &git2::Commit<'_>,
    content: &ReviewContent,
) -> Result<BuiltCommit, git2::Error> {
    let base_tree = parent.tree()?;
    let description = render(
        template_in_tree(repo, &base_tree, PR_TEMPLATE).as_deref(),
        PR_TEMPLATE,
        BUILTIN_PR_TEMPLATE,
        &content.context,
    );
    let message = render(
        template_in_tree(repo, &base_tree, COMMIT_TEMPLATE).as_deref(),
        COMMIT_TEMPLATE,
        BUILTIN_COMMIT_TEMPLATE,
        &content.context,
    );
    let description_path = content.description_path();
    let mut update = git2::build::TreeUpdateBuilder::new();
    let files = [
        (&content.record_path, &content.record),
        (&description_path, &description),
    ];
    for (path, text) in files
        .into_iter()
        .chain(content.changes.iter().map(|(p, c)| (p, c)))
    {
        let blob = repo.blob(text.as_bytes())?;
        update.upsert(path.as_str(), blob, git2::FileMode::Blob);
    }
    let tree = repo.find_tree(update.create_updated(repo, &base_tree)?)?;
    let sig = bot()?;
    let id = repo.commit(None, &sig, &sig, &message, &tree, &[parent])?;
    Ok(BuiltCommit { id, description })
}

/// The text of `path` in `tree`, if it is there and UTF-8.
pub(super) fn template_in_tree(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    path: &str,
) -> Option<String> {
    tree.get_path(Path::new(path))
        .ok()
        .and_then(|entry| repo.find_blob(entry.id()).ok())
        .and_then(|blob| String::from_utf8(blob.content().to_vec()).ok())
}

/// Renders the repository's copy of a template (`source`), falling back to the built-in one
/// (with a warning) when it is missing or broken, with invisible and bidirectional characters
/// shown as `<U+202E>` whatever the template did. Never fails.
pub(super) fn render(
    source: Option<&str>,
    path: &str,
    builtin: &str,
    ctx: &minijinja::Value,
) -> String {
    crate::text::visible(&render_any(source, path, builtin, ctx)).into_owned()
}

fn render_any(source: Option<&str>, path: &str, builtin: &str, ctx: &minijinja::Value) -> String {
    match source {
        Some(source) => match render_source(source, ctx) {
            Ok(text) => return text,
            Err(e) => {
                tracing::warn!(template.path = path, error = %e, "template in the repository is broken; using the built-in one")
            }
        },
        None => tracing::warn!(
            template.path = path,
            "template missing from the base branch; using the built-in one"
        ),
    }
    render_source(builtin, ctx).unwrap_or_else(|_| "countersign request".to_owned())
}

/// Templates get a `markdown` filter: agent text shown as written, never as links or markup.
fn render_source(source: &str, ctx: &minijinja::Value) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.add_filter("markdown", |s: String| crate::text::escape_markdown(&s));
    env.render_str(source, ctx)
}

/// `requests/<yyyy>/<mm>` from the request's creation time.
pub(super) fn request_dir(id: &RequestId) -> String {
    let stamp = crate::time::rfc3339(id.timestamp_ms());
    format!("requests/{}/{}", &stamp[0..4], &stamp[5..7])
}

/// Text files under `dir` (recursively) at `commit`, keyed by their path from the root.
pub(super) fn read_files(
    repo: &Repository,
    commit: Oid,
    dir: &str,
) -> Result<BTreeMap<String, String>, git2::Error> {
    let dir = dir.trim_end_matches('/');
    let tree = repo.find_commit(commit)?.tree()?;
    let mut files = BTreeMap::new();
    let Ok(entry) = tree.get_path(Path::new(dir)) else {
        return Ok(files);
    };
    let subtree = repo.find_tree(entry.id())?;
    subtree.walk(git2::TreeWalkMode::PreOrder, |parent, e| {
        if e.kind() == Some(git2::ObjectType::Blob)
            && let Ok(blob) = repo.find_blob(e.id())
            && let Ok(text) = std::str::from_utf8(blob.content())
        {
            let name = e.name().unwrap_or_default();
            files.insert(format!("{dir}/{parent}{name}"), text.to_owned());
        }
        git2::TreeWalkResult::Ok
    })?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(forge: &str) -> minijinja::Value {
        minijinja::context! { id => "cr_1", agent => "a", action => "x", resource => "r", environment => "e", forge => forge }
    }

    #[test]
    fn broken_or_missing_templates_fall_back_to_the_builtin() {
        for source in [Some("{% if %}"), None] {
            let text = render(source, PR_TEMPLATE, BUILTIN_PR_TEMPLATE, &ctx("local"));
            assert!(text.contains("a requests `x` on `r` (e)"), "{text}");
        }
        let text = render(
            Some("custom {{ agent }}"),
            PR_TEMPLATE,
            BUILTIN_PR_TEMPLATE,
            &ctx("local"),
        );
        assert_eq!(text, "custom a");
    }

    #[test]
    fn invisible_characters_are_shown_in_every_template_output() {
        let ctx = minijinja::context! { agent => "a\u{202E}b", justification => "x\u{200B}y" };
        for (source, builtin) in [
            (Some("{{ agent }} {{ justification }}"), BUILTIN_PR_TEMPLATE),
            (None, BUILTIN_COMMIT_TEMPLATE),
        ] {
            let text = render(source, PR_TEMPLATE, builtin, &ctx);
            assert!(crate::text::first_invisible(&text).is_none(), "{text}");
        }
        let text = render(Some("{{ agent }}"), PR_TEMPLATE, BUILTIN_PR_TEMPLATE, &ctx);
        assert_eq!(text, "a<U+202E>b");
        let link = minijinja::context! { justification => "[click here](https://evil.example/x) <a href=x>" };
        let text = render(None, PR_TEMPLATE, BUILTIN_PR_TEMPLATE, &link);
        assert!(
            text.contains(r"**Why:** \[click here\]\(https://evil.example/x\) \<a href=x\>"),
            "{text}"
        );
        let commit = render(None, COMMIT_TEMPLATE, BUILTIN_COMMIT_TEMPLATE, &ctx);
        assert!(commit.contains("Why: x<U+200B>y\n"), "{commit}");
        let long = minijinja::context! { justification => "line one\nline two ".repeat(100) };
        let commit = render(None, COMMIT_TEMPLATE, BUILTIN_COMMIT_TEMPLATE, &long);
        let why = commit.lines().find(|l| l.starts_with("Why: ")).unwrap();
        assert!(
            why.starts_with("Why: line one line two") && why.chars().count() == 305,
            "{commit}"
        );
    }

    #[test]
    fn the_builtin_description_tells_reviewers_how_to_answer_on_each_forge() {
        let local = render(None, PR_TEMPLATE, BUILTIN_PR_TEMPLATE, &ctx("local"));
        assert!(
            local.contains("countersign review approve|deny cr_1"),
            "{local}"
        );
        let github = render(None, PR_TEMPLATE, BUILTIN_PR_TEMPLATE, &ctx("github"));
        assert!(github.contains("/deny <reason>"), "{github}");
        assert!(!github.contains("countersign review"), "{github}");
    }
}
