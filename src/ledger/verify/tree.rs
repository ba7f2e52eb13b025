//! What a commit changed: the files that differ between two trees, found by walking both in
//! git's order and skipping every subtree whose id did not change (so a commit that appends to
//! one segment costs a few tree reads, however long the ledger).

use git2::{ObjectType, Oid, Repository, Tree};

/// A file (or anything that is not a directory) that differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Delta {
    Added {
        path: String,
        id: Oid,
        mode: i32,
    },
    Modified {
        path: String,
        old: Oid,
        new: Oid,
        mode: i32,
    },
    Deleted {
        path: String,
    },
}

impl Delta {
    pub fn path(&self) -> &str {
        match self {
            Delta::Added { path, .. } | Delta::Modified { path, .. } | Delta::Deleted { path } => {
                path
            }
        }
    }
}

struct Item {
    /// The name, with `/` after directories: git sorts tree entries by this.
    key: Vec<u8>,
    name: String,
    id: Oid,
    mode: i32,
    dir: bool,
}

fn items(tree: Option<&Tree<'_>>) -> Vec<Item> {
    let Some(tree) = tree else {
        return Vec::new();
    };
    tree.iter()
        .map(|e| {
            let dir = e.kind() == Some(ObjectType::Tree);
            let mut key = e.name_bytes().to_vec();
            let name = String::from_utf8_lossy(&key).into_owned();
            if dir {
                key.push(b'/');
            }
            Item {
                key,
                name,
                id: e.id(),
                mode: e.filemode(),
                dir,
            }
        })
        .collect()
}

/// Appends to `out` every file that differs between `old` and `new` (either may be absent).
pub(super) fn diff(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    prefix: &str,
    out: &mut Vec<Delta>,
) -> Result<(), git2::Error> {
    let (olds, news) = (items(old), items(new));
    let (mut i, mut j) = (0, 0);
    let sub = |item: &Item| -> Result<Tree<'_>, git2::Error> { repo.find_tree(item.id) };
    while i < olds.len() || j < news.len() {
        let (o, n) = (olds.get(i), news.get(j));
        match (o, n) {
            (Some(o), Some(n)) if o.key == n.key => {
                i += 1;
                j += 1;
                if o.id == n.id && o.mode == n.mode {
                    continue;
                }
                let path = format!("{prefix}{}", n.name);
                if n.dir {
                    diff(
                        repo,
                        Some(&sub(o)?),
                        Some(&sub(n)?),
                        &format!("{path}/"),
                        out,
                    )?;
                } else {
                    out.push(Delta::Modified {
                        path,
                        old: o.id,
                        new: n.id,
                        mode: n.mode,
                    });
                }
            }
            (Some(o), n) if n.is_none_or(|n| o.key < n.key) => {
                i += 1;
                let path = format!("{prefix}{}", o.name);
                if o.dir {
                    diff(repo, Some(&sub(o)?), None, &format!("{path}/"), out)?;
                } else {
                    out.push(Delta::Deleted { path });
                }
            }
            (_, Some(n)) => {
                j += 1;
                let path = format!("{prefix}{}", n.name);
                if n.dir {
                    diff(repo, None, Some(&sub(n)?), &format!("{path}/"), out)?;
                } else {
                    out.push(Delta::Added {
                        path,
                        id: n.id,
                        mode: n.mode,
                    });
                }
            }
            (_, None) => unreachable!("the loop runs while either side has items"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::FileMode;
    use git2::build::TreeUpdateBuilder;

    #[test]
    fn finds_added_modified_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let empty = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let tree = |base: &Tree<'_>, files: &[(&str, Option<&str>)]| {
            let mut up = TreeUpdateBuilder::new();
            for (path, content) in files {
                match content {
                    Some(c) => up.upsert(*path, repo.blob(c.as_bytes()).unwrap(), FileMode::Blob),
                    None => up.remove(*path),
                };
            }
            repo.find_tree(up.create_updated(&repo, base).unwrap())
                .unwrap()
        };
        let a = tree(
            &empty,
            &[
                ("README.md", Some("r")),
                ("ledger/a/x", Some("1")),
                ("ledger/b", Some("2")),
            ],
        );
        let b = tree(
            &a,
            &[
                ("ledger/a/x", Some("1\n2")),
                ("ledger/b", None),
                ("ledger/a/y", Some("3")),
            ],
        );
        let mut out = Vec::new();
        diff(&repo, Some(&a), Some(&b), "", &mut out).unwrap();
        let paths: Vec<String> = out
            .iter()
            .map(|d| match d {
                Delta::Added { path, .. } => format!("+{path}"),
                Delta::Modified { path, .. } => format!("~{path}"),
                Delta::Deleted { path } => format!("-{path}"),
            })
            .collect();
        assert_eq!(paths, ["~ledger/a/x", "+ledger/a/y", "-ledger/b"]);
        out.clear();
        diff(&repo, None, Some(&a), "", &mut out).unwrap();
        assert_eq!(out.len(), 3);
    }
}
