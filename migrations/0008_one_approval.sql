-- Each approval counts once (issue 13, item 4): at most one standing approval per reviewer
-- and digest on a request. Withdrawn approvals (dismissed, made stale by a push) are not
-- standing, so the same reviewer may approve again afterwards. Duplicates recorded before
-- this constraint (concurrent approvals from one reviewer) are kept for the audit trail but
-- marked `duplicate`, so they never count; the earliest one stands.
UPDATE reviews SET decision = 'duplicate'
WHERE decision = 'approve'
  AND id NOT IN (
    SELECT MIN(id) FROM reviews WHERE decision = 'approve' GROUP BY request_id, reviewer, digest
  );

CREATE UNIQUE INDEX reviews_one_standing_approval
    ON reviews (request_id, reviewer, digest) WHERE decision = 'approve';
