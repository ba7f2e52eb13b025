-- GitHub reviews (issue 5). Webhook deliveries are queued here, each once per
-- X-GitHub-Delivery, and applied in order one at a time; free text in them (review bodies,
-- comments) is masked before it is stored.
CREATE TABLE github_inbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  TEXT NOT NULL UNIQUE,
    event        TEXT NOT NULL,              -- the typed event as JSON (masked)
    pull         INTEGER,                    -- the pull request it is about
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    outcome      TEXT                        -- what applying it did (for operators)
) STRICT;

CREATE INDEX github_inbox_pending ON github_inbox (processed_at, seq);

-- The commit countersign pushed for the review: approvals count only on it.
ALTER TABLE requests ADD COLUMN review_head TEXT;
-- The teams ("org/team") a reviewer belonged to when their decision was recorded (GitHub
-- resolves team membership at decision time), as a JSON array.
ALTER TABLE reviews ADD COLUMN teams TEXT;
