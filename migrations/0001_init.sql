-- countersign store, version 1. Instants are unix milliseconds.

CREATE TABLE requests (
    id              TEXT PRIMARY KEY,          -- cr_<ULID>
    agent_id        TEXT NOT NULL,
    kind            TEXT NOT NULL,             -- action | change
    action          TEXT NOT NULL,
    resource        TEXT NOT NULL,
    environment     TEXT NOT NULL,
    digest          TEXT NOT NULL,             -- sha256:<hex> of the RFC 8785 canonical content
    submission      TEXT NOT NULL,             -- the validated submission as JSON (raw payload)
    state           TEXT NOT NULL,
    review_ref      TEXT,                      -- forge reference once the review is open
    review_url      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    forge_attempts  INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,                      -- last forge error (never contains request data)
    decision_published INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX requests_by_state_due ON requests (state, next_attempt_at);
CREATE INDEX requests_by_state_expiry ON requests (state, expires_at);

-- Every state change and review, in order; feeds the audit ledger.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    kind        TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL,                 -- JSON, masked
    at          INTEGER NOT NULL
) STRICT;

CREATE INDEX events_by_request ON events (request_id, seq);

CREATE TABLE reviews (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    reviewer    TEXT NOT NULL,
    decision    TEXT NOT NULL,                 -- approve | deny
    reason      TEXT,
    digest      TEXT NOT NULL,                 -- the digest the decision was given on
    at          INTEGER NOT NULL
) STRICT;

CREATE INDEX reviews_by_request ON reviews (request_id, id);

-- Signatures already used by an accepted state-changing call, kept until they leave the window.
CREATE TABLE seen_signatures (
    agent_id    TEXT NOT NULL,
    signature   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, signature)
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    agent_id    TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, key)
) STRICT, WITHOUT ROWID;
