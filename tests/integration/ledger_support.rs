//! Test ledgers: a small, realistic ledger written by `LedgerRepo` in a temporary bare
//! repository, and the git surgery to tamper with it (new commits on top, signed by any key or
//! unsigned, or a whole rewritten history forced onto the branch).
#![allow(dead_code)]

use countersign::ledger::entry::{self, Draft, Sealed, seal};
use countersign::ledger::{DEFAULT_BRANCH, GENESIS, LedgerRepo, Signer};
use git2::build::TreeUpdateBuilder;
use git2::{FileMode, ObjectType, Oid, Repository, Signature, Time, TreeWalkMode};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const PRINCIPAL: &str = "countersign@test";
pub const DAY1: &str = "ledger/2026/11/20/000000000001.jsonl";
pub const DAY2: &str = "ledger/2026/11/21/000000000007.jsonl";
pub const DAY3: &str = "ledger/2026/11/22/000000000013.jsonl";
/// 2026-11-20T09:00:00Z.
pub const MORNING_MS: i64 = 1_795_165_200_000;
pub const DAY_MS: i64 = 86_400_000;
pub const REQ_A: &str = "cr_01JDAAAAAAAAAAAAAAAAAAAAAA";
pub const REQ_B: &str = "cr_01JDBBBBBBBBBBBBBBBBBBBBBB";
pub const REQ_C: &str = "cr_01JDCCCCCCCCCCCCCCCCCCCCCC";
pub const REQ_D: &str = "cr_01JDDDDDDDDDDDDDDDDDDDDDDD";
pub const POLICY: &str = "3f2a1c9d4e5f60718293a4b5c6d7e8f901234567";

/// Numbers and chains entries.
pub struct Sealer {
    pub seq: i64,
    pub prev: String,
}

impl Default for Sealer {
    fn default() -> Sealer {
        Sealer {
            seq: 0,
            prev: GENESIS.to_owned(),
        }
    }
}

impl Sealer {
    pub fn next(
        &mut self,
        at_ms: i64,
        id: &str,
        event: &str,
        actor: &str,
        fields: Value,
    ) -> Sealed {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object")
        };
        self.seq += 1;
        let draft = Draft {
            request_id: id,
            event,
            actor,
            fields,
        };
        let sealed = seal(self.seq, at_ms, draft, &self.prev);
        self.prev = sealed.hash.clone();
        sealed
    }
}

fn received(agent: &str, action: &str, resource: &str) -> Value {
    json!({"agent": agent, "kind": "action", "action": action, "resource": resource,
           "environment": "prod", "digest": format!("sha256:{}", "ab".repeat(32)),
           "justification": "Quarterly churn report for [EMAIL]", "payload_summary": "{\"rows\":[NUMBER]}"})
}

/// The batches of the test ledger, one commit each: A approved and run, B denied, C refused at
/// intake (day 2), D received on day 3.
pub fn batches() -> Vec<Vec<Sealed>> {
    let mut s = Sealer::default();
    let t = |day: i64, minute: i64| MORNING_MS + day * DAY_MS + minute * 60_000;
    let decision = json!({"policy_commit": POLICY, "outcome": "needs_review", "risk": "high",
                          "requirements": [{"section": "Exports", "approvals": 1}]});
    vec![
        vec![
            s.next(t(0, 0), REQ_A, "received", "agent-a", received("agent-a", "db.export", "prod/customers")),
            s.next(t(0, 0), REQ_A, "policy_decision", "policy", decision.clone()),
            s.next(t(0, 1), REQ_A, "review_opened", "countersign", json!({"review_ref": "countersign/review/a"})),
        ],
        vec![
            s.next(t(0, 30), REQ_A, "approval_recorded", "alice", json!({"section": "Exports"})),
            s.next(t(0, 30), REQ_A, "approved", "alice", json!({"approvers": ["alice"], "policy_commit": POLICY})),
        ],
        vec![s.next(t(0, 600), REQ_B, "received", "agent-b", received("agent-b", "iam.grant", "prod/admin"))],
        vec![
            s.next(t(1, 0), REQ_B, "policy_decision", "policy", decision.clone()),
            s.next(t(1, 5), REQ_B, "denied", "bob", json!({"reason": "not during the freeze"})),
        ],
        vec![s.next(t(1, 10), REQ_C, "intake_refused", "countersign",
            json!({"agent": "agent-c", "action": "db.drop", "resource": "prod/all", "environment": "prod", "reason": "agent not allowed"}))],
        vec![
            s.next(t(1, 20), REQ_A, "credential_issued", "countersign", json!({"jti": "jti_0001", "audience": "db-gateway"})),
            s.next(t(1, 21), REQ_A, "execution_started", "agent-a", json!({})),
            s.next(t(1, 25), REQ_A, "outcome", "agent-a", json!({"status": "succeeded"})),
        ],
        vec![
            s.next(t(2, 0), REQ_D, "received", "agent-a", received("agent-a", "deploy", "staging/web")),
            s.next(t(2, 0), REQ_D, "policy_decision", "policy", decision),
            s.next(t(2, 1), REQ_D, "review_opened", "countersign", json!({"review_ref": "countersign/review/d"})),
        ],
    ]
}

/// A ledger branch in a temporary bare repository, written by countersign's own writer.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    key: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(batches())
    }

    /// A ledger of these batches, one commit each.
    pub fn with(batches: Vec<Vec<Sealed>>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_bare(dir.path().join("repo.git")).unwrap();
        let key = dir.path().join("ledger_ed25519");
        let fixture = Fixture { dir, key };
        let mut ledger =
            LedgerRepo::open(&fixture.repo_path(), DEFAULT_BRANCH, fixture.signer()).unwrap();
        for batch in batches {
            ledger.append(&batch).unwrap();
        }
        fixture
    }

    pub fn repo_path(&self) -> PathBuf {
        self.dir.path().join("repo.git")
    }

    pub fn repo(&self) -> Repository {
        Repository::open_bare(self.repo_path()).unwrap()
    }

    /// The bot's key (the same on every call).
    pub fn signer(&self) -> Signer {
        Signer::load_or_create(&self.key, PRINCIPAL).unwrap()
    }

    /// The genuine allowed-signers file, as an auditor would keep it.
    pub fn allowed_signers_file(&self) -> PathBuf {
        let path = self.dir.path().join("allowed_signers");
        std::fs::write(&path, format!("{}\n", self.signer().allowed_signers_line())).unwrap();
        path
    }

    pub fn tip(&self) -> Oid {
        self.repo()
            .refname_to_id(&format!("refs/heads/{DEFAULT_BRANCH}"))
            .unwrap()
    }

    /// The commits of the branch, root first.
    pub fn commits(&self) -> Vec<Oid> {
        let repo = self.repo();
        let mut walk = repo.revwalk().unwrap();
        walk.push(self.tip()).unwrap();
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .unwrap();
        walk.map(Result::unwrap).collect()
    }

    /// Every file of a commit.
    pub fn files(&self, commit: Oid) -> BTreeMap<String, Vec<u8>> {
        let repo = self.repo();
        let tree = repo.find_commit(commit).unwrap().tree().unwrap();
        let mut files = BTreeMap::new();
        tree.walk(TreeWalkMode::PreOrder, |root, e| {
            if e.kind() == Some(ObjectType::Blob) {
                let blob = repo.find_blob(e.id()).unwrap();
                files.insert(
                    format!("{root}{}", e.name().unwrap()),
                    blob.content().to_vec(),
                );
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
        files
    }

    /// Every commit's files and message, root first.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let repo = self.repo();
        self.commits()
            .into_iter()
            .map(|c| Snapshot {
                files: self.files(c),
                message: repo.find_commit(c).unwrap().message().unwrap().to_owned(),
            })
            .collect()
    }

    /// A new commit on the tip with `files` changed, moved onto the branch.
    pub fn commit_on_tip(
        &self,
        files: BTreeMap<String, Vec<u8>>,
        message: &str,
        signer: Option<&Signer>,
    ) -> Oid {
        let tip = self.tip();
        let oid = write_commit(&self.repo(), Some(tip), &files, message, signer);
        self.force(oid);
        oid
    }

    /// Rewrites the whole branch from `snapshots` (signed by `signer`, or unsigned) and forces
    /// it; returns the new commits, root first.
    pub fn rewrite(&self, snapshots: &[Snapshot], signer: Option<&Signer>) -> Vec<Oid> {
        let repo = self.repo();
        let mut parent = None;
        let mut oids = Vec::new();
        for s in snapshots {
            let oid = write_commit(&repo, parent, &s.files, &s.message, signer);
            oids.push(oid);
            parent = Some(oid);
        }
        self.force(*oids.last().unwrap());
        oids
    }

    pub fn force(&self, oid: Oid) {
        let refname = format!("refs/heads/{DEFAULT_BRANCH}");
        self.repo()
            .reference(&refname, oid, true, "tamper")
            .unwrap();
    }
}

/// One commit's full content.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub files: BTreeMap<String, Vec<u8>>,
    pub message: String,
}

/// A commit object holding exactly `files`, signed in the `gpgsig` header or not signed.
pub fn write_commit(
    repo: &Repository,
    parent: Option<Oid>,
    files: &BTreeMap<String, Vec<u8>>,
    message: &str,
    signer: Option<&Signer>,
) -> Oid {
    let empty = repo
        .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
        .unwrap();
    let mut update = TreeUpdateBuilder::new();
    for (path, content) in files {
        update.upsert(path.as_str(), repo.blob(content).unwrap(), FileMode::Blob);
    }
    let tree = repo
        .find_tree(update.create_updated(repo, &empty).unwrap())
        .unwrap();
    let who = Signature::new("countersign", PRINCIPAL, &Time::new(1_795_165_200, 0)).unwrap();
    let parent = parent.map(|p| repo.find_commit(p).unwrap());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let buffer = repo
        .commit_create_buffer(&who, &who, message, &tree, &parents)
        .unwrap();
    let content = buffer.as_str().unwrap();
    match signer {
        Some(s) => repo
            .commit_signed(
                content,
                &s.sign(content.as_bytes()).unwrap(),
                Some("gpgsig"),
            )
            .unwrap(),
        None => repo
            .odb()
            .unwrap()
            .write(ObjectType::Commit, content.as_bytes())
            .unwrap(),
    }
}

/// The lines of a file (without newlines).
pub fn lines(content: &[u8]) -> Vec<String> {
    String::from_utf8(content.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn join(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `line` with `key` set to `value` and its hash recomputed, so that it checks on its own.
pub fn rehashed(line: &str, key: &str, value: Value) -> String {
    let Value::Object(mut map) = serde_json::from_str::<Value>(line).unwrap() else {
        panic!()
    };
    map.insert(key.to_owned(), value);
    map.remove("hash");
    let mut v = Value::Object(map);
    let hash = entry::hash_of(&v);
    v["hash"] = hash.into();
    entry::canonical(&v)
}

/// The field of a ledger line.
pub fn field(line: &str, key: &str) -> Value {
    serde_json::from_str::<Map<String, Value>>(line).unwrap()[key].clone()
}

pub fn short(oid: Oid) -> String {
    oid.to_string()[..7].to_owned()
}

/// Runs the real binary.
pub fn countersign(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .current_dir(cwd)
        .env_remove("COUNTERSIGN_REPO")
        .env_remove("COUNTERSIGN_LEDGER_BRANCH")
        .env_remove("COUNTERSIGN_CONFIG")
        .output()
        .unwrap()
}
