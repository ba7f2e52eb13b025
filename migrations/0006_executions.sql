-- Execution of approved requests (issue 6). The request's state says where it is
-- (approved → executing → succeeded | failed | outcome_unknown); this row says what ran: the
-- current attempt (its id is fixed before anything runs, in the transaction that moves the
-- request to `executing`), the executor, and the outcome — masked and size-limited, never
-- the credential.
CREATE TABLE executions (
    request_id   TEXT PRIMARY KEY REFERENCES requests (id),
    attempt_id   TEXT NOT NULL,              -- a ULID, new for every attempt
    attempts     INTEGER NOT NULL,           -- 1, or 2 after an idempotent retry
    executor     TEXT NOT NULL,              -- http | command | github_workflow | merge
    idempotent   INTEGER NOT NULL,           -- may be retried after a crash
    started_at   INTEGER NOT NULL,           -- unix milliseconds (of the current attempt)
    finished_at  INTEGER,
    outcome      TEXT                        -- the masked Outcome as JSON
) STRICT, WITHOUT ROWID;

-- Set when the raw submission was replaced by its masked copy (after the retention).
ALTER TABLE requests ADD COLUMN payload_erased_at INTEGER;

-- Outcomes to POST to the agent's callback_url, signed with the agent's key, retried.
CREATE TABLE callbacks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT NOT NULL REFERENCES requests (id),
    url             TEXT NOT NULL,
    body            TEXT NOT NULL,           -- JSON, masked
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,                    -- never the body
    finished_at     INTEGER
) STRICT;

CREATE INDEX callbacks_due ON callbacks (state, next_attempt_at);
CREATE INDEX requests_to_erase ON requests (payload_erased_at, state);
