//! The fake GitHub's git side, on real bare repositories (git2): creating and seeding them,
//! committing files as a person would, reading refs, contents, trees and blobs for the REST
//! routes, merging pull requests (squash or merge commit), and listing every object's text for
//! the secrecy checks.

use git2::{ObjectType, Oid, Repository, Signature};
use std::collections::BTreeMap;
use std::path::Path;

pub fn open(path: &Path) -> Repository {
    Repository::open_bare(path).expect("fake GitHub bare repository")
}

/// Creates a bare repository whose HEAD is `default_branch`, accepting pushes over smart HTTP.
pub fn init_bare(path: &Path, default_branch: &str) {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true)
        .initial_head(&format!("refs/heads/{default_branch}"));
    let repo = Repository::init_opts(path, &opts).unwrap();
    let mut config = repo.config().unwrap();
    config.set_bool("http.receivepack", true).unwrap();
    config
        .set_bool("uploadpack.allowAnySHA1InWant", true)
        .unwrap();
}

/// Commits `files` (path, content; `None` deletes) on top of `branch` (created if missing,
/// from `from` if given, else as a root commit) and moves the branch; returns the new sha.
pub fn commit_files(
    path: &Path,
    branch: &str,
    from: Option<&str>,
    files: &[(&str, Option<&str>)],
    message: &str,
    author: (&str, &str),
) -> String {
    let repo = open(path);
    let refname = format!("refs/heads/{branch}");
    let parent = match repo.find_reference(&refname) {
        Ok(r) => Some(r.peel_to_commit().unwrap()),
        Err(_) => from.map(|f| resolve_commit(&repo, f).expect("start point exists")),
    };
    let mut index = git2::Index::new().unwrap();
    if let Some(p) = &parent {
        index.read_tree(&p.tree().unwrap()).unwrap();
    }
    for (file, content) in files {
        match content {
            Some(text) => {
                let oid = repo.blob(text.as_bytes()).unwrap();
                index.add(&entry(file, oid, text.len())).unwrap();
            }
            None => index.remove_path(Path::new(file)).unwrap(),
        }
    }
    let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
    let sig = Signature::now(author.0, author.1).unwrap();
    let parents: Vec<_> = parent.iter().collect();
    let oid = repo
        .commit(Some(&refname), &sig, &sig, message, &tree, &parents)
        .unwrap();
    oid.to_string()
}

fn entry(path: &str, id: Oid, size: usize) -> git2::IndexEntry {
    git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        file_size: size as u32,
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// A commit by branch name, `refs/...` name or (full) sha.
pub fn resolve_commit<'r>(repo: &'r Repository, rev: &str) -> Option<git2::Commit<'r>> {
    if let Ok(r) = repo.find_reference(&format!("refs/heads/{rev}")) {
        return r.peel_to_commit().ok();
    }
    if rev.starts_with("refs/")
        && let Ok(r) = repo.find_reference(rev)
    {
        return r.peel_to_commit().ok();
    }
    let oid = Oid::from_str(rev).ok().filter(|_| rev.len() == 40)?;
    repo.find_commit(oid).ok()
}

pub fn resolve(path: &Path, rev: &str) -> Option<String> {
    let repo = open(path);
    resolve_commit(&repo, rev).map(|c| c.id().to_string())
}

pub fn branch_sha(path: &Path, branch: &str) -> Option<String> {
    let repo = open(path);
    let r = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    Some(r.peel_to_commit().ok()?.id().to_string())
}

/// Deletes branch `branch`; false if it does not exist.
pub fn delete_branch(path: &Path, branch: &str) -> bool {
    let repo = open(path);
    let Ok(mut r) = repo.find_reference(&format!("refs/heads/{branch}")) else {
        return false;
    };
    r.delete().is_ok()
}

/// Every branch → sha.
pub fn branches(path: &Path) -> BTreeMap<String, String> {
    let repo = open(path);
    let mut out = BTreeMap::new();
    for b in repo.branches(Some(git2::BranchType::Local)).unwrap() {
        let (b, _) = b.unwrap();
        if let (Some(name), Some(oid)) = (b.name().unwrap(), b.get().target()) {
            out.insert(name.to_owned(), oid.to_string());
        }
    }
    out
}

/// A commit's details for the REST shapes.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    pub sha: String,
    pub tree: String,
    pub message: String,
    pub author: (String, String, i64),
    pub committer: (String, String, i64),
    pub parents: Vec<String>,
}

pub fn commit_info(path: &Path, sha: &str) -> Option<CommitInfo> {
    let repo = open(path);
    let c = resolve_commit(&repo, sha)?;
    let who = |s: git2::Signature| {
        let name = s.name().unwrap_or("").to_owned();
        (name, s.email().unwrap_or("").to_owned(), s.when().seconds())
    };
    Some(CommitInfo {
        sha: c.id().to_string(),
        tree: c.tree_id().to_string(),
        message: c.message().unwrap_or("").to_owned(),
        author: who(c.author()),
        committer: who(c.committer()),
        parents: c.parent_ids().map(|p| p.to_string()).collect(),
    })
}

/// Commits reachable from `head` but not from `base` (a pull request's commits), oldest first.
pub fn commits_between(path: &Path, base: &str, head: &str) -> Vec<CommitInfo> {
    let repo = open(path);
    let mut walk = repo.revwalk().unwrap();
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .unwrap();
    walk.push(Oid::from_str(head).unwrap()).unwrap();
    if let Some(b) = resolve_commit(&repo, base) {
        walk.hide(b.id()).unwrap();
    }
    let ids: Vec<_> = walk.filter_map(Result::ok).collect();
    drop(repo);
    let info = |id: Oid| commit_info(path, &id.to_string()).unwrap();
    ids.into_iter().map(info).collect()
}

/// What `contents/{path}` finds.
pub enum Content {
    File {
        sha: String,
        content: Vec<u8>,
    },
    /// `(name, sha, is_dir, size)` per entry.
    Dir(Vec<(String, String, bool, usize)>),
}

pub fn content(path: &Path, rev: &str, file: &str) -> Option<Content> {
    let repo = open(path);
    let root = resolve_commit(&repo, rev)?.tree().ok()?;
    let file = file.trim_matches('/');
    let obj = if file.is_empty() {
        root.into_object()
    } else {
        root.get_path(Path::new(file)).ok()?.to_object(&repo).ok()?
    };
    match obj.kind() {
        Some(ObjectType::Blob) => {
            let blob = obj.peel_to_blob().unwrap();
            let sha = blob.id().to_string();
            Some(Content::File {
                sha,
                content: blob.content().to_vec(),
            })
        }
        Some(ObjectType::Tree) => {
            let t = obj.peel_to_tree().unwrap();
            let entries = t.iter().map(|e| {
                let dir = e.kind() == Some(ObjectType::Tree);
                let size = if dir {
                    0
                } else {
                    repo.find_blob(e.id()).map(|b| b.size()).unwrap_or(0)
                };
                (
                    e.name().unwrap_or("").to_owned(),
                    e.id().to_string(),
                    dir,
                    size,
                )
            });
            Some(Content::Dir(entries.collect()))
        }
        _ => None,
    }
}

/// A tree's entries `(path, mode, type, sha, size)`; `rev` is a tree sha, a commit sha or a
/// branch name (GitHub accepts all three).
pub fn tree(path: &Path, rev: &str, recursive: bool) -> Option<(String, Vec<TreeEntry>)> {
    let repo = open(path);
    let tree = match Oid::from_str(rev).ok().and_then(|o| repo.find_tree(o).ok()) {
        Some(t) => t,
        None => resolve_commit(&repo, rev)?.tree().ok()?,
    };
    let mut out = Vec::new();
    let mut walk = |dir: &str, e: &git2::TreeEntry| {
        let kind = match e.kind() {
            Some(ObjectType::Tree) => "tree",
            Some(ObjectType::Commit) => "commit",
            _ => "blob",
        };
        let size = (kind == "blob").then(|| repo.find_blob(e.id()).map(|b| b.size()).unwrap_or(0));
        out.push(TreeEntry {
            path: format!("{dir}{}", e.name().unwrap_or("")),
            mode: format!("{:06o}", e.filemode()),
            kind,
            sha: e.id().to_string(),
            size,
        });
        if recursive {
            git2::TreeWalkResult::Ok
        } else {
            git2::TreeWalkResult::Skip
        }
    };
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| walk(dir, e))
        .unwrap();
    Some((tree.id().to_string(), out))
}

pub struct TreeEntry {
    pub path: String,
    pub mode: String,
    pub kind: &'static str,
    pub sha: String,
    pub size: Option<usize>,
}

pub fn blob(path: &Path, sha: &str) -> Option<Vec<u8>> {
    let repo = open(path);
    let oid = Oid::from_str(sha).ok()?;
    Some(repo.find_blob(oid).ok()?.content().to_vec())
}

#[derive(Debug, PartialEq)]
pub enum MergeError {
    Conflict,
}

/// Merges `head` into `base_branch` as GitHub would: `squash` makes one commit with the merged
/// tree on top of the base; `merge` a two-parent merge commit. Moves the base branch; returns
/// the new commit's sha.
pub fn merge(
    path: &Path,
    base_branch: &str,
    head: &str,
    squash: bool,
    message: &str,
    author: (&str, &str),
) -> Result<String, MergeError> {
    let repo = open(path);
    let refname = format!("refs/heads/{base_branch}");
    let base = repo
        .find_reference(&refname)
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let head = repo.find_commit(Oid::from_str(head).unwrap()).unwrap();
    let ancestor = repo.merge_base(base.id(), head.id()).ok();
    let ancestor_tree = ancestor.map(|a| repo.find_commit(a).unwrap().tree().unwrap());
    let mut index = repo
        .merge_trees(
            ancestor_tree.as_ref().unwrap_or(&base.tree().unwrap()),
            &base.tree().unwrap(),
            &head.tree().unwrap(),
            None,
        )
        .unwrap();
    if index.has_conflicts() {
        return Err(MergeError::Conflict);
    }
    let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
    let author = Signature::now(author.0, author.1).unwrap();
    let committer = Signature::now("GitHub", "noreply@github.com").unwrap();
    let parents = if squash {
        vec![&base]
    } else {
        vec![&base, &head]
    };
    let oid = repo
        .commit(
            Some(&refname),
            &author,
            &committer,
            message,
            &tree,
            &parents,
        )
        .unwrap();
    Ok(oid.to_string())
}

/// `(where, text)` for every object in the repository: blob contents, commit messages with
/// author and committer, tree entry names, ref names.
pub fn visible_objects(path: &Path, full_name: &str) -> Vec<(String, String)> {
    let repo = open(path);
    let odb = repo.odb().unwrap();
    let mut ids = Vec::new();
    odb.foreach(|id| {
        ids.push(*id);
        true
    })
    .unwrap();
    let mut out = Vec::new();
    for id in ids {
        let at = format!("{full_name} git object {id}");
        let Ok(obj) = repo.find_object(id, None) else {
            continue;
        };
        let text = match obj.kind() {
            Some(ObjectType::Blob) => {
                String::from_utf8_lossy(obj.as_blob().unwrap().content()).into_owned()
            }
            Some(ObjectType::Commit) => {
                let c = obj.as_commit().unwrap();
                let raw = String::from_utf8_lossy(c.message_bytes()).into_owned();
                format!("{}\n{}\n{raw}", c.author(), c.committer())
            }
            Some(ObjectType::Tree) => {
                let t = obj.as_tree().unwrap();
                let names = t.iter().map(|e| e.name().unwrap_or("").to_owned());
                names.collect::<Vec<_>>().join("\n")
            }
            Some(ObjectType::Tag) => {
                let t = obj.as_tag().unwrap();
                format!("{}\n{}", t.name().unwrap_or(""), t.message().unwrap_or(""))
            }
            _ => continue,
        };
        out.push((at, text));
    }
    for r in repo.references().unwrap().flatten() {
        let name = r.name().unwrap_or("").to_owned();
        out.push((format!("{full_name} ref"), name));
    }
    out
}
