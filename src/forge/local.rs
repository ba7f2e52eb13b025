//! The embedded forge: a plain git repository. A review is a branch `countersign/<id>` with one
//! commit adding the masked request record `requests/<yyyy>/<mm>/<id>.json` and its rendered
//! description (`.md`) — plus, for `change` requests, the proposed files — on top of the base
//! branch. Decisions are attached to that commit as git notes under `refs/notes/countersign`.
//! git2 stays inside this module.

use super::{Decision, Forge, ForgeError, ReviewRef, ReviewRequest};
use crate::mask;
use crate::request::{Kind, RequestId};
use anyhow::Context as _;
use git2::{Oid, Repository, Signature};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files committed on the base branch of a newly created repository.
const SEED_FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# GitOps repository\n\nManaged by countersign: requests live on `countersign/*` branches, decisions in `refs/notes/countersign`.\n",
    ),
    (
        "policies/CODEOWNERS",
        include_str!("../../policies/CODEOWNERS"),
    ),
    (
        "policies/README.md",
        include_str!("../../policies/README.md"),
    ),
    (
        "templates/pull_request.md.j2",
        include_str!("../../templates/pull_request.md.j2"),
    ),
    (
        "templates/commit_message.txt.j2",
        include_str!("../../templates/commit_message.txt.j2"),
    ),
];

const NOTES_REF: &str = "refs/notes/countersign";
const BOT_NAME: &str = "countersign";
const BOT_EMAIL: &str = "countersign@localhost";

pub struct LocalForge {
    repo: Arc<Mutex<Repository>>,
    path: PathBuf,
    base_branch: String,
    public_url: String,
}

impl LocalForge {
    /// Opens an existing repository (which must have `base_branch`), or, with `create`, creates
    /// a bare repository seeded with the example `policies/` and `templates/`.
    pub fn open(
        path: &Path,
        base_branch: &str,
        create: bool,
        public_url: &str,
    ) -> anyhow::Result<Self> {
        let repo = match Repository::open(path) {
            Ok(repo) => repo,
            Err(_) if create && !path.exists() => init_seeded(path, base_branch)
                .with_context(|| format!("cannot create the git repository {}", path.display()))?,
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot open git repository {}: {}",
                    path.display(),
                    e.message()
                ));
            }
        };
        repo.find_branch(base_branch, git2::BranchType::Local)
            .map_err(|_| {
                anyhow::anyhow!(
                    "git repository {} has no branch `{base_branch}`",
                    path.display()
                )
            })?;
        Ok(Self {
            repo: Arc::new(Mutex::new(repo)),
            path: path.to_path_buf(),
            base_branch: base_branch.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Files (paths) in the commit at the tip of a review branch, for the demo and tests.
    pub fn review_files(&self, reference: &str) -> anyhow::Result<Vec<String>> {
        let repo = self.repo.lock().expect("repository lock");
        let commit = repo
            .revparse_single(&format!("refs/heads/{reference}"))?
            .peel_to_commit()?;
        let mut files = Vec::new();
        commit
            .tree()?
            .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() == Some(git2::ObjectType::Blob) {
                    files.push(format!("{dir}{}", entry.name().unwrap_or("?")));
                }
                git2::TreeWalkResult::Ok
            })?;
        Ok(files)
    }

    /// The decision note on a review branch's head, if any.
    pub fn decision_note(&self, reference: &str) -> anyhow::Result<Option<String>> {
        let repo = self.repo.lock().expect("repository lock");
        let head = repo
            .revparse_single(&format!("refs/heads/{reference}"))?
            .peel_to_commit()?
            .id();
        Ok(repo
            .find_note(Some(NOTES_REF), head)
            .ok()
            .and_then(|n| n.message().map(str::to_owned)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, git2::Error> + Send + 'static,
    ) -> Result<T, ForgeError> {
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || {
            let repo = repo.lock().expect("repository lock");
            f(&repo)
        })
        .await
        .map_err(|e| ForgeError::Transient(format!("git task failed: {e}")))?
        .map_err(classify)
    }
}

/// Every local git failure is worth retrying: a missing branch, a lock or a full disk are fixed
/// by an operator without countersign's help, and the engine backs off exponentially.
fn classify(e: git2::Error) -> ForgeError {
    ForgeError::Transient(format!("git: {}", e.message()))
}

fn bot() -> Result<Signature<'static>, git2::Error> {
    Signature::now(BOT_NAME, BOT_EMAIL)
}

fn init_seeded(path: &Path, base_branch: &str) -> Result<Repository, git2::Error> {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true).initial_head(base_branch).mkpath(true);
    let repo = Repository::init_opts(path, &opts)?;
    {
        let empty = repo.treebuilder(None)?.write()?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (file, content) in SEED_FILES {
            let blob = repo.blob(content.as_bytes())?;
            update.upsert(*file, blob, git2::FileMode::Blob);
        }
        let tree_id = update.create_updated(&repo, &repo.find_tree(empty)?)?;
        let tree = repo.find_tree(tree_id)?;
        let sig = bot()?;
        repo.commit(
            Some(&format!("refs/heads/{base_branch}")),
            &sig,
            &sig,
            "Initial GitOps repository: example policies and templates",
            &tree,
            &[],
        )?;
    }
    Ok(repo)
}

/// What a review commit holds, prepared outside the repository lock.
struct ReviewContent {
    branch: String,
    record_path: String,
    record: String,
    description: String,
    message: String,
    changes: Vec<(String, String)>,
}

fn prepare(request: &ReviewRequest<'_>) -> ReviewContent {
    let s = request.submission;
    let created = crate::time::rfc3339(request.created_at_ms);
    let expires = crate::time::rfc3339(request.expires_at_ms);
    let masked_payload = mask::type_skeleton(&s.payload);
    let changes_summary: Vec<_> = s
        .changes
        .iter()
        .map(|c| serde_json::json!({ "path": c.path, "bytes": c.content.len() }))
        .collect();
    let record = serde_json::json!({
        "id": request.id.as_str(),
        "agent": request.agent.as_str(),
        "kind": s.kind.as_str(),
        "action": s.action,
        "resource": s.resource,
        "environment": s.environment,
        "justification": s.justification,
        "digest": request.digest.as_str(),
        "created_at": created,
        "expires_at": expires,
        "payload": masked_payload,
        "changes": changes_summary,
    });
    let ctx = minijinja::context! {
        id => request.id.as_str(),
        agent => request.agent.as_str(),
        kind => s.kind.as_str(),
        action => &s.action,
        resource => &s.resource,
        environment => &s.environment,
        justification => &s.justification,
        digest => request.digest.as_str(),
        created_at => created,
        expires_at => expires,
        payload => serde_json::to_string_pretty(&masked_payload).unwrap_or_default(),
    };
    let dir = request_dir(request.id);
    ReviewContent {
        branch: format!("countersign/{}", request.id),
        record_path: format!("{dir}/{}.json", request.id),
        record: serde_json::to_string_pretty(&record).unwrap_or_default() + "\n",
        description: render(
            PR_TEMPLATE,
            include_str!("../../templates/pull_request.md.j2"),
            &ctx,
        ),
        message: render(
            COMMIT_TEMPLATE,
            include_str!("../../templates/commit_message.txt.j2"),
            &ctx,
        ),
        changes: match s.kind {
            Kind::Change => s
                .changes
                .iter()
                .map(|c| (c.path.clone(), c.content.clone()))
                .collect(),
            Kind::Action => vec![],
        },
    }
}

const PR_TEMPLATE: &str = "pull_request.md.j2";
const COMMIT_TEMPLATE: &str = "commit_message.txt.j2";

/// Renders a built-in template. (Per-repository templates from the base branch arrive with the
/// GitHub forge; the local forge seeds the same files.)
fn render(name: &str, source: &str, ctx: &minijinja::Value) -> String {
    let mut env = minijinja::Environment::new();
    let rendered = env
        .add_template(name, source)
        .and_then(|_| env.get_template(name)?.render(ctx));
    match rendered {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(template = name, error = %e, "template failed to render; using a plain summary");
            format!(
                "countersign request {}",
                ctx.get_attr("id")
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            )
        }
    }
}

/// `requests/<yyyy>/<mm>` from the request's creation time.
fn request_dir(id: &RequestId) -> String {
    let stamp = crate::time::rfc3339(id.timestamp_ms());
    format!("requests/{}/{}", &stamp[0..4], &stamp[5..7])
}

#[async_trait::async_trait]
impl Forge for LocalForge {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn open_review(&self, request: &ReviewRequest<'_>) -> Result<ReviewRef, ForgeError> {
        let content = prepare(request);
        let base = self.base_branch.clone();
        let url = format!("{}/v1/requests/{}/review", self.public_url, request.id);
        let branch = content.branch.clone();
        let head = self
            .blocking(move |repo| {
                // Idempotent: a crash after the branch was written leaves it in place.
                if let Ok(existing) = repo.find_branch(&content.branch, git2::BranchType::Local) {
                    return Ok(existing.get().peel_to_commit()?.id());
                }
                let parent = repo
                    .find_branch(&base, git2::BranchType::Local)?
                    .get()
                    .peel_to_commit()?;
                let mut update = git2::build::TreeUpdateBuilder::new();
                for (path, text) in [
                    (&content.record_path, &content.record),
                    (
                        &content.record_path.replace(".json", ".md"),
                        &content.description,
                    ),
                ]
                .into_iter()
                .chain(content.changes.iter().map(|(p, c)| (p, c)))
                {
                    let blob = repo.blob(text.as_bytes())?;
                    update.upsert(path.as_str(), blob, git2::FileMode::Blob);
                }
                let tree_id = update.create_updated(repo, &parent.tree()?)?;
                let tree = repo.find_tree(tree_id)?;
                let sig = bot()?;
                let commit = repo.commit(None, &sig, &sig, &content.message, &tree, &[&parent])?;
                repo.branch(&content.branch, &repo.find_commit(commit)?, false)?;
                Ok(commit)
            })
            .await?;
        Ok(ReviewRef {
            reference: branch,
            head: head.to_string(),
            url,
        })
    }

    async fn publish_decision(
        &self,
        review: &str,
        decision: &Decision<'_>,
    ) -> Result<(), ForgeError> {
        let mut note = format!(
            "countersign: {} by {}\nRequest: {}\nDigest: {}\n",
            decision.state, decision.actor, decision.id, decision.digest
        );
        if let Some(reason) = decision.reason {
            note.push_str(&format!("Reason: {reason}\n"));
        }
        let branch = review.to_owned();
        self.blocking(move |repo| {
            let head: Oid = repo
                .find_branch(&branch, git2::BranchType::Local)?
                .get()
                .peel_to_commit()?
                .id();
            let sig = bot()?;
            repo.note(&sig, &sig, Some(NOTES_REF), head, &note, true)?;
            Ok(())
        })
        .await
    }

    async fn health(&self) -> Result<(), ForgeError> {
        let base = self.base_branch.clone();
        self.blocking(move |repo| repo.find_branch(&base, git2::BranchType::Local).map(|_| ()))
            .await
    }
}
