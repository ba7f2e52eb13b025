-- Audit ledger outbox: every entry, numbered (1, 2, 3, … without gaps), chained and hashed in
-- the transaction of the change that causes it. The ledger writer copies entries to the ledger
-- branch of the GitOps repository in order; the branch says how far it got.
CREATE TABLE ledger (
    seq         INTEGER PRIMARY KEY,
    request_id  TEXT NOT NULL,             -- no foreign key: refused submissions have no row
    at          INTEGER NOT NULL,          -- the entry's timestamp, never decreasing
    prev        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    line        TEXT NOT NULL              -- the canonical JSON line (masked)
) STRICT;

CREATE INDEX ledger_by_request ON ledger (request_id, seq);
