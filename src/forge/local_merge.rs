//! Squash-merging a review branch of the embedded forge into the base branch: the executor of
//! `kind: change` requests. The merge commit names its request in a trailer, which is how a
//! second call (after a crash) finds it instead of merging twice.

use git2::{Oid, Repository, Signature};

/// How far back the base branch is searched for an earlier merge of the same request.
const SEARCH_DEPTH: usize = 1000;

/// The trailer naming the merged request.
pub(super) fn trailer(id: &str) -> String {
    format!("Countersign-Request: {id}")
}

/// Merges `review_branch` into `base_branch` as one commit whose only parent is the base
/// head; returns it, or the commit of an earlier merge of the same request. A conflict with
/// the base branch is an error (`MergeConflict`), not something to guess at.
pub(super) fn squash(
    repo: &Repository,
    base_branch: &str,
    review_branch: &str,
    id: &str,
    message: &str,
    signature: &Signature<'_>,
) -> Result<Oid, git2::Error> {
    let base_ref = format!("refs/heads/{base_branch}");
    let base = repo.find_reference(&base_ref)?.peel_to_commit()?;
    let wanted = trailer(id);
    let mut walk = repo.revwalk()?;
    walk.push(base.id())?;
    walk.simplify_first_parent()?;
    for oid in walk.take(SEARCH_DEPTH) {
        let commit = repo.find_commit(oid?)?;
        if commit
            .message()
            .is_some_and(|m| m.lines().any(|l| l.trim() == wanted))
        {
            return Ok(commit.id());
        }
    }
    let head = repo
        .find_reference(&format!("refs/heads/{review_branch}"))?
        .peel_to_commit()?;
    let mut index = repo.merge_commits(&base, &head, None)?;
    if index.has_conflicts() {
        return Err(git2::Error::new(
            git2::ErrorCode::MergeConflict,
            git2::ErrorClass::Merge,
            "the proposed change conflicts with the base branch",
        ));
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    let message = format!("{}\n\n{wanted}\n", message.trim_end());
    let commit = repo.commit(None, signature, signature, &message, &tree, &[&base])?;
    // Compare-and-swap: if the base branch moved meanwhile, fail and let the engine retry.
    repo.reference_matching(
        &base_ref,
        commit,
        true,
        base.id(),
        &format!("countersign: merge {id}"),
    )?;
    Ok(commit)
}
