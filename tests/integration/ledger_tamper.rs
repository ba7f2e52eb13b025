//! `ledger verify` against tampering: each way of rewriting the ledger (edit, delete or
//! reorder lines, rewrite and force the history, drop a commit, forge or mis-sign a commit,
//! append to an old file) is caught and the report names the commit, file, line and seq. The
//! intact ledger passes, through the library and through the real binary.

use crate::ledger_support::*;
use countersign::ledger::verify::{self, Broken, Change, Problem, Report, Trust};
use countersign::ledger::{AllowedSigners, DEFAULT_BRANCH, Signer};
use serde_json::json;

fn check(f: &Fixture) -> Result<Report, Box<Broken>> {
    verify::verify(&f.repo_path(), DEFAULT_BRANCH, None)
        .unwrap()
        .map_err(Box::new)
}

fn check_against(f: &Fixture, signers: &Signer) -> Result<Report, Box<Broken>> {
    let keys = AllowedSigners::parse(&signers.allowed_signers_line()).unwrap();
    verify::verify(&f.repo_path(), DEFAULT_BRANCH, Some(&keys))
        .unwrap()
        .map_err(Box::new)
}

/// The broken point and its message.
fn broken(f: &Fixture) -> (Broken, String) {
    let b = *check(f).expect_err("the tampering must be caught");
    let message = b.to_string();
    (b, message)
}

/// The next entry after the test ledger (seq 16, day 3), valid on its own and in the chain.
fn next_line() -> String {
    let last = batches().into_iter().flatten().last().unwrap();
    let mut sealer = Sealer {
        seq: last.seq,
        prev: last.hash,
    };
    let at = MORNING_MS + 2 * DAY_MS + 3_600_000;
    sealer
        .next(
            at,
            REQ_D,
            "approved",
            "mallory",
            json!({"approvers": ["mallory"]}),
        )
        .line
}

#[test]
fn the_intact_ledger_verifies() {
    let f = Fixture::new();
    let report = check(&f).unwrap();
    let last = batches().into_iter().flatten().last().unwrap();
    assert_eq!((report.entries, report.files, report.commits), (15, 3, 8));
    let head = report.head.clone().unwrap();
    assert_eq!((head.seq, head.hash), (15, last.hash));
    assert_eq!(head.commit, f.tip().to_string());
    let root = f.commits()[0].to_string();
    assert!(matches!(&report.trust, Trust::FirstCommit(c) if c.id == root));
    assert_eq!(report.signers.len(), 1);
    assert_eq!(
        (
            report.signers[0].principal.as_str(),
            report.signers[0].commits
        ),
        (PRINCIPAL, 8)
    );
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let given = check_against(&f, &f.signer()).unwrap();
    assert_eq!(given.trust, Trust::Given);
}

#[test]
fn an_edited_line_committed_on_top_is_blamed_on_its_commit() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day1 = lines(&files[DAY1]);
    day1[3] = rehashed(&day1[3], "actor", json!("mallory"));
    files.insert(DAY1.into(), join(&day1));
    let oid = f.commit_on_tip(files, "innocent cleanup", Some(&f.signer()));
    let (b, message) = broken(&f);
    let Broken::History { commit, change } = b else {
        panic!("{message}")
    };
    assert_eq!(commit.id, oid.to_string());
    assert_eq!(
        change,
        Change::Rewrote {
            path: DAY1.into(),
            line: 4
        }
    );
    assert_eq!(
        message,
        format!(
            "commit {} (\"innocent cleanup\") changed line 4 of {DAY1}",
            short(oid)
        )
    );
}

#[test]
fn an_edited_line_in_a_rewritten_history_breaks_the_chain() {
    let f = Fixture::new();
    let original = lines(&f.files(f.tip())[DAY1]);
    let edited = rehashed(&original[3], "actor", json!("mallory"));
    let mut snapshots = f.snapshots();
    for s in &mut snapshots {
        if let Some(day1) = s.files.get_mut(DAY1) {
            let text = String::from_utf8(day1.clone()).unwrap();
            *day1 = text.replace(&original[3], &edited).into_bytes();
        }
    }
    let oids = f.rewrite(&snapshots, Some(&f.signer()));
    let (b, message) = broken(&f);
    let Broken::Entry { at, problem } = b else {
        panic!("{message}")
    };
    assert_eq!((at.path.as_str(), at.line, at.seq), (DAY1, 5, Some(5)));
    assert_eq!(
        at.commit.unwrap().id,
        oids[2].to_string(),
        "seq 5 came with the second batch"
    );
    assert_eq!(
        problem,
        Problem::Chain {
            stated: field(&original[3], "hash").as_str().unwrap().to_owned(),
            expected: field(&edited, "hash").as_str().unwrap().to_owned(),
        }
    );
    assert!(message.starts_with(&format!(
        "line 5 of {DAY1} (seq 5, added by commit {}",
        short(oids[2])
    )));
    assert!(message.contains(": prev is sha256:"), "{message}");
}

#[test]
fn an_edited_line_without_its_hash_recomputed_is_a_hash_mismatch() {
    let f = Fixture::new();
    let original = lines(&f.files(f.tip())[DAY1]);
    let edited = original[3].replace("\"alice\"", "\"mallory\"");
    let mut snapshots = f.snapshots();
    for s in &mut snapshots {
        if let Some(day1) = s.files.get_mut(DAY1) {
            let text = String::from_utf8(day1.clone()).unwrap();
            *day1 = text.replace(&original[3], &edited).into_bytes();
        }
    }
    f.rewrite(&snapshots, Some(&f.signer()));
    let (b, message) = broken(&f);
    assert!(
        matches!(b, Broken::Entry { ref at, .. } if at.line == 4 && at.seq == Some(4)),
        "{message}"
    );
    assert!(
        message.contains(&format!("line 4 of {DAY1} (seq 4,")),
        "{message}"
    );
    assert!(message.contains("hash mismatch"), "{message}");
    // An unsigned commit later on does not hide the first broken point.
    f.commit_on_tip(f.files(f.tip()), "later", None);
    assert_eq!(broken(&f).1, message);
}

#[test]
fn deleted_lines_are_caught() {
    // On top of the history: the commit that deleted them is named.
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day1 = lines(&files[DAY1]);
    day1.remove(1);
    files.insert(DAY1.into(), join(&day1));
    let oid = f.commit_on_tip(files, "drop", Some(&f.signer()));
    let (b, message) = broken(&f);
    assert!(
        matches!(
            b,
            Broken::History {
                change: Change::Rewrote { line: 2, .. },
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains(&short(oid)), "{message}");

    // The last line of the newest file.
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day3 = lines(&files[DAY3]);
    day3.pop();
    files.insert(DAY3.into(), join(&day3));
    let oid = f.commit_on_tip(files, "trim", Some(&f.signer()));
    let (_, message) = broken(&f);
    assert_eq!(
        message,
        format!("commit {} (\"trim\") removed line 3 of {DAY3}", short(oid))
    );

    // Deleted from the history itself (re-signed with the bot's key): seq jumps.
    let f = Fixture::new();
    let gone = lines(&f.files(f.tip())[DAY1])[1].clone();
    let mut snapshots = f.snapshots();
    for s in &mut snapshots {
        if let Some(day1) = s.files.get_mut(DAY1) {
            let text = String::from_utf8(day1.clone()).unwrap();
            *day1 = text.replace(&format!("{gone}\n"), "").into_bytes();
        }
    }
    f.rewrite(&snapshots, Some(&f.signer()));
    let (b, message) = broken(&f);
    assert!(
        matches!(
            b,
            Broken::Entry {
                problem: Problem::SeqJump { from: 1, to: 3 },
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.starts_with(&format!("line 2 of {DAY1} (seq 3,")),
        "{message}"
    );
    assert!(message.ends_with("seq jumps from 1 to 3"), "{message}");
}

#[test]
fn reordered_lines_are_caught() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day2 = lines(&files[DAY2]);
    day2.swap(1, 2);
    files.insert(DAY2.into(), join(&day2));
    let oid = f.commit_on_tip(files, "sort", Some(&f.signer()));
    let (_, message) = broken(&f);
    assert_eq!(
        message,
        format!("commit {} (\"sort\") changed line 2 of {DAY2}", short(oid))
    );

    let f = Fixture::new();
    let mut snapshots = f.snapshots();
    for s in &mut snapshots {
        if let Some(day1) = s.files.get_mut(DAY1) {
            let mut l = lines(day1);
            l.swap(1, 2);
            *day1 = join(&l);
        }
    }
    f.rewrite(&snapshots, Some(&f.signer()));
    let (_, message) = broken(&f);
    assert!(
        message.starts_with(&format!("line 2 of {DAY1} (seq 3,")),
        "{message}"
    );
    assert!(message.ends_with("seq jumps from 1 to 3"), "{message}");
}

#[test]
fn a_history_rewritten_with_another_key_is_caught() {
    let f = Fixture::new();
    let mallory = Signer::generate("mallory@evil");
    // Rebuilt with another key, the bot's key still published: caught at the first commit.
    let oids = f.rewrite(&f.snapshots(), Some(&mallory));
    let (b, message) = broken(&f);
    assert_eq!(
        b,
        Broken::UnknownKey {
            commit: b_commit(&b),
            fingerprint: mallory.fingerprint(),
        }
    );
    assert_eq!(b_commit(&b).id, oids[0].to_string());
    assert!(message.contains(&format!(
        "is signed by an unknown key {}",
        mallory.fingerprint()
    )));

    // Rebuilt with another key that also replaces the published one: the branch agrees with
    // itself (trust on first commit passes), only the auditor's own copy of the keys catches it.
    let mut snapshots = f.snapshots();
    for s in &mut snapshots {
        s.files.insert(
            "allowed_signers".into(),
            format!("{}\n", mallory.allowed_signers_line()).into_bytes(),
        );
    }
    let oids = f.rewrite(&snapshots, Some(&mallory));
    assert!(check(&f).is_ok());
    let b = *check_against(&f, &f.signer()).unwrap_err();
    assert!(
        matches!(&b, Broken::UnknownKey { commit, fingerprint }
        if commit.id == oids[0].to_string() && *fingerprint == mallory.fingerprint()),
        "{b}"
    );
}

fn b_commit(b: &Broken) -> countersign::ledger::verify::CommitRef {
    match b {
        Broken::UnknownKey { commit, .. } | Broken::Unsigned { commit } => commit.clone(),
        other => panic!("{other}"),
    }
}

#[test]
fn a_history_rewritten_unsigned_is_caught_at_its_first_commit() {
    let f = Fixture::new();
    let oids = f.rewrite(&f.snapshots(), None);
    let (b, message) = broken(&f);
    assert_eq!(b_commit(&b).id, oids[0].to_string());
    assert_eq!(
        message,
        format!(
            "commit {} (\"Start the countersign audit ledger\") is not signed",
            short(oids[0])
        )
    );
}

#[test]
fn a_dropped_commit_is_caught() {
    // Commit 5 appended seq 9 to the day-2 file; later commits are rebuilt without it and
    // re-signed with the bot's key: the chain has a gap.
    let f = Fixture::new();
    let mut snapshots = f.snapshots();
    let dropped = lines(&snapshots[5].files[DAY2])[2].clone();
    assert_eq!(field(&dropped, "seq"), json!(9));
    snapshots.remove(5);
    for s in &mut snapshots[5..] {
        let text = String::from_utf8(s.files[DAY2].clone()).unwrap();
        s.files.insert(
            DAY2.into(),
            text.replace(&format!("{dropped}\n"), "").into_bytes(),
        );
    }
    let oids = f.rewrite(&snapshots, Some(&f.signer()));
    let (b, message) = broken(&f);
    let Broken::Entry { at, problem } = b else {
        panic!("{message}")
    };
    assert_eq!(problem, Problem::SeqJump { from: 8, to: 10 });
    assert_eq!((at.path.as_str(), at.line, at.seq), (DAY2, 3, Some(10)));
    assert_eq!(at.commit.unwrap().id, oids[5].to_string());

    // Rebuilt without the key: the first rebuilt commit is not signed.
    let f = Fixture::new();
    let commits = f.commits();
    let snapshots = f.snapshots();
    let mut parent = commits[4];
    let mut first = None;
    for s in &snapshots[6..] {
        let mut files = s.files.clone();
        let text = String::from_utf8(files[DAY2].clone()).unwrap();
        files.insert(
            DAY2.into(),
            text.replace(&format!("{dropped}\n"), "").into_bytes(),
        );
        parent = write_commit(&f.repo(), Some(parent), &files, &s.message, None);
        first.get_or_insert(parent);
    }
    f.force(parent);
    let (b, message) = broken(&f);
    assert_eq!(b_commit(&b).id, first.unwrap().to_string());
    assert!(message.ends_with("is not signed"), "{message}");
}

#[test]
fn a_forged_unsigned_commit_is_caught() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day3 = lines(&files[DAY3]);
    day3.push(next_line());
    files.insert(DAY3.into(), join(&day3));
    let oid = f.commit_on_tip(files.clone(), "cr_01JDDD approved by @mallory", None);
    let (b, message) = broken(&f);
    assert_eq!(b_commit(&b).id, oid.to_string());
    assert_eq!(
        message,
        format!(
            "commit {} (\"cr_01JDDD approved by @mallory\") is not signed",
            short(oid)
        )
    );
    // The same commit signed by the bot's key would have been fine: the entry itself is valid.
    let f = Fixture::new();
    f.commit_on_tip(files, "cr_01JDDD approved by @mallory", Some(&f.signer()));
    assert_eq!(check(&f).unwrap().entries, 16);
}

#[test]
fn a_commit_signed_by_an_unknown_key_is_caught() {
    let f = Fixture::new();
    let mallory = Signer::generate("mallory@evil");
    let mut files = f.files(f.tip());
    let mut day3 = lines(&files[DAY3]);
    day3.push(next_line());
    files.insert(DAY3.into(), join(&day3));
    let oid = f.commit_on_tip(files, "approve", Some(&mallory));
    let (b, message) = broken(&f);
    assert_eq!(b_commit(&b).id, oid.to_string());
    assert_eq!(
        message,
        format!(
            "commit {} (\"approve\") is signed by an unknown key {}",
            short(oid),
            mallory.fingerprint()
        )
    );
}

#[test]
fn appending_to_an_old_file_is_caught() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let mut day1 = lines(&files[DAY1]);
    day1.push(next_line());
    files.insert(DAY1.into(), join(&day1));
    let oid = f.commit_on_tip(files, "late", Some(&f.signer()));
    let (_, message) = broken(&f);
    assert_eq!(
        message,
        format!(
            "commit {} (\"late\") appended to {DAY1}, which is not the newest file ({DAY3})",
            short(oid)
        )
    );
}

#[test]
fn files_may_not_be_deleted_or_added_out_of_place() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    files.remove(DAY2);
    let oid = f.commit_on_tip(files, "tidy", Some(&f.signer()));
    assert_eq!(
        broken(&f).1,
        format!("commit {} (\"tidy\") deleted {DAY2}", short(oid))
    );

    let f = Fixture::new();
    let mut files = f.files(f.tip());
    let early = "ledger/2026/11/19/000000000016.jsonl";
    files.insert(early.into(), join(&[next_line()]));
    f.commit_on_tip(files, "backdate", Some(&f.signer()));
    assert!(broken(&f).1.ends_with(&format!(
        "added {early}, which sorts before the newest file {DAY3}"
    )));

    let f = Fixture::new();
    let mut files = f.files(f.tip());
    files.insert("ledger/notes.txt".into(), b"hello\n".to_vec());
    f.commit_on_tip(files, "notes", Some(&f.signer()));
    assert!(
        broken(&f)
            .1
            .contains("wrote ledger/notes.txt, which is not a ledger segment")
    );
}

#[test]
fn a_merge_commit_is_caught_and_other_files_may_change() {
    let f = Fixture::new();
    let mut files = f.files(f.tip());
    files.insert("README.md".into(), b"# moved to the wiki\n".to_vec());
    let oid = f.commit_on_tip(files, "Shorter README", Some(&f.signer()));
    let report = check(&f).unwrap();
    assert_eq!(
        report.notes,
        [format!(
            "commit {} (\"Shorter README\") changed README.md",
            short(oid)
        )]
    );

    let repo = f.repo();
    let commits = f.commits();
    let (a, b) = (
        repo.find_commit(f.tip()).unwrap(),
        repo.find_commit(commits[3]).unwrap(),
    );
    let who = git2::Signature::now("x", "x@test").unwrap();
    let buffer = repo
        .commit_create_buffer(&who, &who, "Merge", &a.tree().unwrap(), &[&a, &b])
        .unwrap();
    let text = buffer.as_str().unwrap();
    let merge = repo
        .commit_signed(
            text,
            &f.signer().sign(text.as_bytes()).unwrap(),
            Some("gpgsig"),
        )
        .unwrap();
    f.force(merge);
    assert_eq!(
        broken(&f).1,
        format!(
            "commit {} (\"Merge\") is a merge commit: the ledger branch must be linear",
            short(merge)
        )
    );
}

#[test]
fn the_binary_exits_0_when_intact_1_when_broken_2_when_unusable() {
    let f = Fixture::new();
    let repo = f.repo_path();
    let repo = repo.to_str().unwrap();
    let out = countersign(&["ledger", "verify", "--repo", repo], f.dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = batches().into_iter().flatten().last().unwrap().hash;
    assert!(
        stdout.starts_with(&format!(
            "ok: 15 entries in 3 files, 8 commits; chain head seq 15 {hash} (commit {}); ",
            short(f.tip())
        )),
        "{stdout}"
    );
    assert!(stdout.contains("trust on first commit"), "{stdout}");
    assert!(
        stdout.contains(&format!("signed by {PRINCIPAL} (8 commits)")),
        "{stdout}"
    );

    let signers = f.allowed_signers_file();
    let signers = signers.to_str().unwrap();
    let out = countersign(
        &[
            "ledger",
            "verify",
            "--repo",
            repo,
            "--allowed-signers",
            signers,
        ],
        f.dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains(&format!("signatures checked against {signers}")),
        "{stdout}"
    );

    // The default repository is .countersign/repo.git; COUNTERSIGN_REPO overrides it.
    let out = countersign(&["ledger", "verify"], f.dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot open git repository .countersign/repo.git")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["ledger", "verify"])
        .env("COUNTERSIGN_REPO", repo)
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    for (args, expected) in [
        (vec!["--branch", "nope"], "no branch `nope`"),
        (
            vec!["--allowed-signers", "/nonexistent/signers"],
            "cannot read allowed signers /nonexistent/signers",
        ),
        (
            vec!["--allowed-signers", repo],
            "cannot read allowed signers",
        ),
    ] {
        let mut all = vec!["ledger", "verify", "--repo", repo];
        all.extend(args);
        let out = countersign(&all, f.dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let garbage = f.dir.path().join("garbage");
    std::fs::write(&garbage, "alice not-a-key\n").unwrap();
    let out = countersign(
        &[
            "ledger",
            "verify",
            "--repo",
            repo,
            "--allowed-signers",
            garbage.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));

    // Broken: exit 1, the point on stderr.
    let mallory = Signer::generate("mallory@evil");
    let mut files = f.files(f.tip());
    let mut day3 = lines(&files[DAY3]);
    day3.push(next_line());
    files.insert(DAY3.into(), join(&day3));
    let oid = f.commit_on_tip(files, "approve", Some(&mallory));
    let out = countersign(
        &[
            "ledger",
            "verify",
            "--repo",
            repo,
            "--allowed-signers",
            signers,
        ],
        f.dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "broken: commit {} (\"approve\") is signed by an unknown key {}",
            short(oid),
            mallory.fingerprint()
        )
    );
}

#[test]
fn an_object_altered_on_disk_is_caught() {
    let f = Fixture::new();
    let repo = f.repo();
    let tree = repo.find_commit(f.tip()).unwrap().tree().unwrap();
    let blob = tree.get_path(std::path::Path::new(DAY1)).unwrap().id();
    // Same object name, other content (as an attacker editing .git/objects would leave it).
    let mut day1 = lines(&f.files(f.tip())[DAY1]);
    day1[3] = rehashed(&day1[3], "actor", json!("mallory"));
    let forged = repo.blob(&join(&day1)).unwrap();
    let loose = |oid: git2::Oid| {
        let hex = oid.to_string();
        f.repo_path()
            .join("objects")
            .join(&hex[..2])
            .join(&hex[2..])
    };
    std::fs::remove_file(loose(blob)).unwrap();
    std::fs::copy(loose(forged), loose(blob)).unwrap();
    let (b, message) = broken(&f);
    let Broken::Corrupt { commit, .. } = b else {
        panic!("{message}")
    };
    assert_eq!(
        commit.id,
        f.commits()[3].to_string(),
        "the commit that wrote it"
    );
    assert!(
        message.contains("holds an object altered on disk"),
        "{message}"
    );
}

#[test]
fn lines_deep_in_long_files_are_named_exactly() {
    // 600 entries in one commit: ledger/…/000000000001.jsonl (500) and …/000000000501.jsonl.
    let mut sealer = Sealer::default();
    let batch: Vec<_> = (0..600)
        .map(|i| sealer.next(MORNING_MS + i, REQ_A, "expired", "countersign", json!({})))
        .collect();
    let second = "ledger/2026/11/20/000000000501.jsonl";
    let f = Fixture::with(vec![batch]);
    let report = check(&f).unwrap();
    assert_eq!((report.entries, report.files), (600, 2));

    let mut snapshots = f.snapshots();
    let mut first = lines(&snapshots[1].files[DAY1]);
    first[299] = first[299].replace("\"expired\"", "\"approved\"");
    snapshots[1].files.insert(DAY1.into(), join(&first));
    let oids = f.rewrite(&snapshots, Some(&f.signer()));
    let (_, message) = broken(&f);
    assert!(
        message.starts_with(&format!(
            "line 300 of {DAY1} (seq 300, added by commit {}",
            short(oids[1])
        )),
        "{message}"
    );
    assert!(message.contains("hash mismatch"), "{message}");

    // The first line of the second file moved to the end of the first: 501 entries.
    let f = Fixture::with(vec![{
        let mut sealer = Sealer::default();
        (0..600)
            .map(|i| sealer.next(MORNING_MS + i, REQ_A, "expired", "countersign", json!({})))
            .collect()
    }]);
    let mut snapshots = f.snapshots();
    let mut first = lines(&snapshots[1].files[DAY1]);
    let mut rest = lines(&snapshots[1].files[second]);
    first.push(rest.remove(0));
    snapshots[1].files.insert(DAY1.into(), join(&first));
    snapshots[1].files.insert(second.into(), join(&rest));
    f.rewrite(&snapshots, Some(&f.signer()));
    let (_, message) = broken(&f);
    assert!(
        message.starts_with(&format!("line 501 of {DAY1} (seq 501,")),
        "{message}"
    );
    assert!(
        message.ends_with("the file holds more than 500 entries"),
        "{message}"
    );
}

#[test]
fn a_new_signing_key_needs_the_auditors_signers_file() {
    // countersign publishes a new key in a commit signed by that key: the branch's first commit
    // does not know it, so trust on first commit stops there; the auditor's file with both
    // keys verifies the whole branch.
    let f = Fixture::new();
    let rotated = Signer::generate("countersign@new-host");
    let rotated_line = rotated.allowed_signers_line();
    let mut ledger =
        countersign::ledger::LedgerRepo::open(&f.repo_path(), DEFAULT_BRANCH, rotated).unwrap();
    ledger.ensure_started().unwrap();
    let publish = f.tip();
    let (b, message) = broken(&f);
    assert!(
        matches!(&b, Broken::UnknownKey { commit, .. } if commit.id == publish.to_string()),
        "{message}"
    );
    assert!(
        message.contains("(\"Publish ledger signing key SHA256:"),
        "{message}"
    );
    let both = format!("{}\n{rotated_line}\n", f.signer().allowed_signers_line());
    let keys = AllowedSigners::parse(&both).unwrap();
    let report = verify::verify(&f.repo_path(), DEFAULT_BRANCH, Some(&keys))
        .unwrap()
        .unwrap();
    assert_eq!(report.signers.len(), 2);
    assert_eq!(report.notes.len(), 1);
    assert!(
        report.notes[0].ends_with("changed allowed_signers"),
        "{:?}",
        report.notes
    );
}
