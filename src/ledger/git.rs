//! The ledger branch in a git repository: reading where it ends and appending entries as one
//! signed commit. Files are `ledger/<yyyy>/<mm>/<dd>/<first seq, 12 digits>.jsonl` segments of
//! at most [`SEGMENT_ENTRIES`] lines; a commit only ever appends lines to the last segment or adds
//! new ones. The branch root holds `README.md` (how to verify) and `allowed_signers` (the bot's
//! public keys). git2 stays inside this module and `verify`.

use super::entry::{self, GENESIS, Sealed};
use super::sign::Signer;
use anyhow::{Context as _, bail};
use git2::build::TreeUpdateBuilder;
use git2::{FileMode, ObjectType, Oid, Repository, Signature, Tree};
use std::path::Path;

/// The default ledger branch.
pub const DEFAULT_BRANCH: &str = "countersign/ledger";
/// Entries per file before a new segment starts (bounds what one commit rewrites).
pub const SEGMENT_ENTRIES: usize = 500;
/// The directory holding the entries.
pub const LEDGER_DIR: &str = "ledger";
pub const ALLOWED_SIGNERS: &str = "allowed_signers";
pub const README: &str = "README.md";
const AUDITOR_README: &str = include_str!("../../docs/LEDGER.md");
const COMMITTER_NAME: &str = "countersign";

/// The last entry on the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    /// The commit holding it.
    pub commit: String,
}

/// The segment entries are appended to.
#[derive(Debug, Clone)]
struct Segment {
    path: String,
    day: String,
    entries: usize,
    content: Vec<u8>,
}

pub struct LedgerRepo {
    repo: Repository,
    refname: String,
    signer: Signer,
    tip: Option<Oid>,
    head: Option<Head>,
    segment: Option<Segment>,
}

impl LedgerRepo {
    /// Opens the repository and reads where the ledger branch ends (it may not exist yet).
    pub fn open(repo_path: &Path, branch: &str, signer: Signer) -> anyhow::Result<LedgerRepo> {
        let repo = Repository::open(repo_path)
            .with_context(|| format!("cannot open git repository {}", repo_path.display()))?;
        anyhow::ensure!(
            is_valid_branch(branch),
            "`{branch}` is not a valid branch name"
        );
        let refname = format!("refs/heads/{branch}");
        let mut ledger = LedgerRepo {
            repo,
            refname,
            signer,
            tip: None,
            head: None,
            segment: None,
        };
        ledger.reload()?;
        Ok(ledger)
    }

    /// Re-reads the branch (after a failed update, or when someone else may have moved it).
    pub fn reload(&mut self) -> anyhow::Result<()> {
        self.tip = match self.repo.find_reference(&self.refname) {
            Ok(r) => Some(r.peel_to_commit()?.id()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(e).context("cannot read the ledger branch"),
        };
        self.head = None;
        self.segment = None;
        let Some(tip) = self.tip else {
            return Ok(());
        };
        let tree = self.repo.find_commit(tip)?.tree()?;
        let Some(segment) = last_segment(&self.repo, &tree)? else {
            return Ok(());
        };
        let text = std::str::from_utf8(&segment.content)
            .with_context(|| format!("{} is not UTF-8", segment.path))?;
        let last = text
            .lines()
            .last()
            .with_context(|| format!("{} is empty", segment.path))?;
        let checked = entry::check_line(last)
            .with_context(|| format!("the last line of {} is damaged", segment.path))?;
        self.head = Some(Head {
            seq: checked.seq,
            hash: checked.hash,
            commit: tip.to_string(),
        });
        self.segment = Some(segment);
        Ok(())
    }

    /// The last entry committed, if any.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The branch's tip commit (`None`: the branch does not exist yet).
    pub fn tip(&self) -> Option<String> {
        self.tip.map(|t| t.to_string())
    }

    /// The last entry at `commit` (`None`: the commit is not in this repository, or holds no
    /// entry yet).
    pub fn entry_at(&self, commit: &str) -> anyhow::Result<Option<Head>> {
        let Ok(oid) = Oid::from_str(commit) else {
            return Ok(None);
        };
        let Ok(found) = self.repo.find_commit(oid) else {
            return Ok(None);
        };
        let Some(segment) = last_segment(&self.repo, &found.tree()?)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&segment.content)
            .with_context(|| format!("{} is not UTF-8", segment.path))?;
        let Some(last) = text.lines().last() else {
            return Ok(None);
        };
        let checked = entry::check_line(last)
            .with_context(|| format!("the last line of {} is damaged", segment.path))?;
        Ok(Some(Head {
            seq: checked.seq,
            hash: checked.hash,
            commit: commit.to_owned(),
        }))
    }

    /// How many commits of the branch `base` does not hold (all of them when `base` is `None`
    /// or not in this repository); counting stops at `limit`.
    pub fn commits_after(&self, base: Option<&str>, limit: usize) -> anyhow::Result<usize> {
        let Some(tip) = self.tip else {
            return Ok(0);
        };
        let mut walk = self.repo.revwalk()?;
        walk.push(tip)?;
        if let Some(base) = base.and_then(|b| Oid::from_str(b).ok())
            && self.repo.find_commit(base).is_ok()
        {
            walk.hide(base)?;
        }
        Ok(walk.take(limit).count())
    }

    /// Makes `commit` (fetched from the forge's copy of the branch) the local branch, which
    /// must not exist yet: after a lost clone, the ledger continues where the published branch
    /// ends instead of starting a second history. The commit must be a ledger that verifies
    /// against the keys it publishes itself; the writer then checks that its last entry is the
    /// database's.
    pub fn adopt(&mut self, commit: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.tip.is_none(),
            "the ledger branch exists already; only a missing branch is adopted"
        );
        let oid = Oid::from_str(commit).context("not a commit id")?;
        self.verify_published(oid)?;
        self.repo
            .reference(
                &self.refname,
                oid,
                false,
                "countersign: adopt the published ledger",
            )
            .context("cannot create the ledger branch")?;
        self.reload()
    }

    /// Moves the local branch to `commit` (the forge's copy of the branch) when that copy is
    /// ahead of it or went another way: another replica led meanwhile and published the
    /// database's entries in its own commits. A local branch ahead of the copy is kept (the
    /// pusher publishes it). The copy must verify, as for [`LedgerRepo::adopt`]; the writer
    /// then checks that its last entry is the database's, so nothing the database holds is
    /// lost by leaving local commits behind. Returns whether the branch moved.
    pub fn follow(&mut self, commit: &str) -> anyhow::Result<bool> {
        let Some(tip) = self.tip else {
            self.adopt(commit)?;
            return Ok(true);
        };
        let oid = Oid::from_str(commit).context("not a commit id")?;
        if tip == oid || self.repo.graph_descendant_of(tip, oid)? {
            return Ok(false);
        }
        self.verify_published(oid)?;
        self.repo
            .reference(
                &self.refname,
                oid,
                true,
                "countersign: follow the published ledger",
            )
            .context("cannot move the ledger branch")?;
        self.reload()?;
        Ok(true)
    }

    /// Checks that `oid` is a ledger that verifies against the keys it publishes itself.
    fn verify_published(&self, oid: Oid) -> anyhow::Result<()> {
        let signers = {
            let tree = self.repo.find_commit(oid)?.tree()?;
            read_text(&self.repo, &tree, ALLOWED_SIGNERS)?
        }
        .with_context(|| format!("the published ledger branch has no {ALLOWED_SIGNERS}"))?;
        let allowed = super::sign::AllowedSigners::parse(&signers)?;
        let path = self.repo.path().to_path_buf();
        match super::verify::verify_commit(&path, oid, Some(&allowed))? {
            Ok(_) => Ok(()),
            Err(broken) => bail!(
                "the published ledger branch does not verify, so countersign will not continue \
                 it: {broken}"
            ),
        }
    }

    /// Creates the branch (README and allowed signers) if it does not exist, and publishes the
    /// signing key in `allowed_signers` if it is not there yet (keys are never removed, so
    /// older commits stay verifiable).
    pub fn ensure_started(&mut self) -> anyhow::Result<()> {
        let line = self.signer.allowed_signers_line();
        let current = match self.tip {
            None => String::new(),
            Some(tip) => {
                let tree = self.repo.find_commit(tip)?.tree()?;
                read_text(&self.repo, &tree, ALLOWED_SIGNERS)?.unwrap_or_default()
            }
        };
        if current.lines().any(|l| l.trim() == line) {
            return Ok(());
        }
        let mut signers = current;
        if signers.is_empty() {
            signers.push_str(
                "# Keys that sign the countersign ledger (git's allowed-signers format).\n",
            );
        }
        signers.push_str(&line);
        signers.push('\n');
        let mut files = vec![(ALLOWED_SIGNERS.to_owned(), signers.into_bytes())];
        let message = if self.tip.is_none() {
            files.push((README.to_owned(), AUDITOR_README.as_bytes().to_vec()));
            format!(
                "Start the countersign audit ledger\n\nSigning key: {}\n",
                self.signer.fingerprint()
            )
        } else {
            format!("Publish ledger signing key {}\n", self.signer.fingerprint())
        };
        self.commit(&files, &message)?;
        Ok(())
    }

    /// Appends entries (which must continue the chain) in one signed commit.
    pub fn append(&mut self, entries: &[Sealed]) -> anyhow::Result<String> {
        let Some(first) = entries.first() else {
            bail!("nothing to append");
        };
        let (next, prev) = match &self.head {
            Some(h) => (h.seq + 1, h.hash.as_str()),
            None => (1, GENESIS),
        };
        if first.seq != next || first.prev != prev {
            bail!(
                "entry {} does not continue the ledger branch (it ends at {})",
                first.seq,
                next - 1
            );
        }
        if self.tip.is_none() {
            self.ensure_started()?;
        }
        let mut segment = self.segment.clone();
        let mut written: Vec<(String, Vec<u8>)> = Vec::new();
        for e in entries {
            let day = day_of(e.at_ms);
            let fits = segment
                .as_ref()
                .is_some_and(|s| s.day == day && s.entries < SEGMENT_ENTRIES);
            if !fits {
                if let Some(done) = segment.take() {
                    flush(&mut written, &done);
                }
                segment = Some(Segment {
                    path: format!("{LEDGER_DIR}/{day}/{:012}.jsonl", e.seq),
                    day,
                    entries: 0,
                    content: Vec::new(),
                });
            }
            let s = segment.as_mut().expect("set above");
            s.content.extend_from_slice(e.line.as_bytes());
            s.content.push(b'\n');
            s.entries += 1;
        }
        let segment = segment.expect("at least one entry");
        flush(&mut written, &segment);
        let message = commit_message(entries);
        let commit = self.commit(&written, &message)?;
        let last = entries.last().expect("not empty");
        self.head = Some(Head {
            seq: last.seq,
            hash: last.hash.clone(),
            commit: commit.clone(),
        });
        self.segment = Some(segment);
        Ok(commit)
    }

    /// One signed commit on the branch writing `files`; the branch moves only if nobody
    /// else moved it meanwhile.
    fn commit(&mut self, files: &[(String, Vec<u8>)], message: &str) -> anyhow::Result<String> {
        let oid = self.write_commit(files, message)?;
        let log = "countersign ledger append";
        let moved = match self.tip {
            Some(old) => self
                .repo
                .reference_matching(&self.refname, oid, true, old, log)
                .map(drop),
            None => self
                .repo
                .reference(&self.refname, oid, false, log)
                .map(drop),
        };
        if let Err(e) = moved {
            let why = match e.code() {
                // Another git process is updating the ref, or one was killed and left its lock
                // (countersign's own are removed at start): nothing moved.
                git2::ErrorCode::Locked => format!(
                    "the ledger branch is locked: {}/{}.lock exists (a git process is updating \
                     it, or one that was killed left the lock behind)",
                    self.repo.path().display(),
                    self.refname
                ),
                // Someone else moved the branch: forget what we believed about it.
                git2::ErrorCode::Modified | git2::ErrorCode::Exists => {
                    "the ledger branch moved under countersign".to_owned()
                }
                _ => "cannot update the ledger branch".to_owned(),
            };
            let _ = self.reload();
            return Err(e).context(why);
        }
        self.tip = Some(oid);
        Ok(oid.to_string())
    }

    /// Writes the signed commit object (not yet on the branch).
    fn write_commit(&self, files: &[(String, Vec<u8>)], message: &str) -> anyhow::Result<Oid> {
        let repo = &self.repo;
        let parent = self.tip.map(|t| repo.find_commit(t)).transpose()?;
        let base = match &parent {
            Some(p) => p.tree()?,
            None => repo.find_tree(repo.treebuilder(None)?.write()?)?,
        };
        let mut update = TreeUpdateBuilder::new();
        for (path, bytes) in files {
            update.upsert(path.as_str(), repo.blob(bytes)?, FileMode::Blob);
        }
        let tree = repo.find_tree(update.create_updated(repo, &base)?)?;
        let who = Signature::now(COMMITTER_NAME, self.signer.principal())?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let buffer = repo.commit_create_buffer(&who, &who, message, &tree, &parents)?;
        let content = buffer.as_str().context("commit buffer is not UTF-8")?;
        let signature = self.signer.sign(content.as_bytes())?;
        Ok(repo.commit_signed(content, &signature, Some("gpgsig"))?)
    }
}

fn flush(written: &mut Vec<(String, Vec<u8>)>, segment: &Segment) {
    written.retain(|(p, _)| p != &segment.path);
    written.push((segment.path.clone(), segment.content.clone()));
}

/// Whether `name` can be a branch (`refs/heads/<name>` is a valid reference name).
pub fn is_valid_branch(name: &str) -> bool {
    git2::Reference::is_valid_name(&format!("refs/heads/{name}"))
}

/// `yyyy/mm/dd` of an instant, in UTC.
pub fn day_of(at_ms: i64) -> String {
    let stamp = crate::time::rfc3339(at_ms);
    stamp[..10].replace('-', "/")
}

/// The subject names the entry (or the range); the body has one sentence per entry.
fn commit_message(entries: &[Sealed]) -> String {
    let sentences: Vec<String> = entries
        .iter()
        .map(|e| match serde_json::from_str(&e.line) {
            Ok(serde_json::Value::Object(map)) => entry::sentence(&map),
            _ => format!("entry {}", e.seq),
        })
        .collect();
    let (a, b) = (entries[0].seq, entries[entries.len() - 1].seq);
    if let [one] = sentences.as_slice() {
        return format!("{one}\n\nLedger-Seq: {a}\n");
    }
    format!(
        "Ledger entries {a}–{b} ({} entries)\n\n{}\n\nLedger-Seq: {a}-{b}\n",
        entries.len(),
        sentences.join("\n")
    )
}

/// The newest segment: the greatest name at each level under `ledger/`.
fn last_segment(repo: &Repository, root: &Tree) -> anyhow::Result<Option<Segment>> {
    let Some(mut tree) = subtree(repo, root, LEDGER_DIR)? else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    for _ in 0..3 {
        let Some(name) = max_name(&tree, ObjectType::Tree) else {
            return Ok(None);
        };
        tree = subtree(repo, &tree, &name)?.expect("listed above");
        parts.push(name);
    }
    let Some(file) = max_name(&tree, ObjectType::Blob) else {
        return Ok(None);
    };
    let blob = repo.find_blob(tree.get_name(&file).expect("listed").id())?;
    let content = blob.content().to_vec();
    Ok(Some(Segment {
        path: format!("{LEDGER_DIR}/{}/{file}", parts.join("/")),
        day: parts.join("/"),
        entries: content.iter().filter(|b| **b == b'\n').count(),
        content,
    }))
}

fn max_name(tree: &Tree, kind: ObjectType) -> Option<String> {
    tree.iter()
        .filter(|e| e.kind() == Some(kind))
        .filter_map(|e| e.name().map(str::to_owned))
        .max()
}

fn subtree<'r>(repo: &'r Repository, tree: &Tree, name: &str) -> anyhow::Result<Option<Tree<'r>>> {
    match tree.get_name(name) {
        Some(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(e.id())?)),
        _ => Ok(None),
    }
}

fn read_text(repo: &Repository, tree: &Tree, path: &str) -> anyhow::Result<Option<String>> {
    match tree.get_path(Path::new(path)) {
        Ok(e) => {
            let blob = repo.find_blob(e.id())?;
            Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
        }
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::{Draft, seal};

    pub(crate) fn entries(from: i64, n: i64, prev: &str, at_ms: i64) -> Vec<Sealed> {
        let mut prev = prev.to_owned();
        (from..from + n)
            .map(|seq| {
                let draft = Draft {
                    request_id: "cr_01JD00000000000000000000AA",
                    event: "expired",
                    actor: "countersign",
                    fields: serde_json::Map::new(),
                };
                let e = seal(seq, at_ms + seq, draft, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn git(dir: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(args)
            .output()
            .expect("git runs")
    }

    #[test]
    fn appends_segments_and_resumes_where_the_branch_ends() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_bare(dir.path()).unwrap();
        let mut ledger =
            LedgerRepo::open(dir.path(), DEFAULT_BRANCH, Signer::generate("cs@test")).unwrap();
        assert_eq!(ledger.head(), None);
        let day = 1_763_683_200_000; // 2025-11-21T00:00:00Z
        let first = entries(1, 600, GENESIS, day);
        ledger.append(&first[..2]).unwrap();
        ledger.append(&first[2..]).unwrap();
        // Out of order or a broken chain is refused.
        assert!(ledger.append(&first[5..6]).is_err());
        let mut reopened =
            LedgerRepo::open(dir.path(), DEFAULT_BRANCH, Signer::generate("cs@test")).unwrap();
        let head = reopened.head().unwrap().clone();
        assert_eq!(
            (head.seq, head.hash.as_str()),
            (600, first[599].hash.as_str())
        );
        // The next day starts a new file.
        let next = entries(601, 1, &head.hash, day + 86_400_000);
        reopened.append(&next).unwrap();
        let files = git(
            dir.path(),
            &["ls-tree", "-r", "--name-only", DEFAULT_BRANCH],
        );
        let files = String::from_utf8(files.stdout).unwrap();
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            [
                "README.md",
                "allowed_signers",
                "ledger/2025/11/21/000000000001.jsonl",
                "ledger/2025/11/21/000000000501.jsonl",
                "ledger/2025/11/22/000000000601.jsonl",
            ]
        );
    }

    #[test]
    fn git_itself_verifies_the_signatures() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_bare(dir.path()).unwrap();
        let signer = Signer::generate("countersign@localhost");
        let mut ledger = LedgerRepo::open(dir.path(), DEFAULT_BRANCH, signer).unwrap();
        ledger.append(&entries(1, 3, GENESIS, 0)).unwrap();
        let signers = dir.path().join("signers");
        let out = git(
            dir.path(),
            &["show", &format!("{DEFAULT_BRANCH}:allowed_signers")],
        );
        std::fs::write(&signers, out.stdout).unwrap();
        let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
        let out = git(
            dir.path(),
            &["-c", &config, "verify-commit", "-v", DEFAULT_BRANCH],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("Good \"git\" signature"), "{stderr}");
        let root = git(dir.path(), &["rev-list", "--max-parents=0", DEFAULT_BRANCH]);
        let root = String::from_utf8(root.stdout).unwrap();
        let out = git(dir.path(), &["-c", &config, "verify-commit", root.trim()]);
        assert!(out.status.success());
        let log = git(dir.path(), &["log", "--format=%s", DEFAULT_BRANCH]);
        let log = String::from_utf8(log.stdout).unwrap();
        assert!(
            log.starts_with("Ledger entries 1–3 (3 entries)\nStart the countersign audit ledger"),
            "{log}"
        );
    }
}
