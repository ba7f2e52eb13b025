-- countersign's schema on PostgreSQL: the same tables and columns as the SQLite schema
-- (migrations/*.sql, as of 0010), in PostgreSQL's types. Every integer is BIGINT (unix
-- milliseconds, counters, 0/1 flags), so the row types are shared with SQLite. JSON and ledger
-- lines are TEXT: the stored bytes are exactly the bytes hashed. A test checks that the two
-- schemas name the same columns (tests/integration/postgres.rs).

CREATE TABLE requests (
    id                 TEXT PRIMARY KEY,
    agent_id           TEXT NOT NULL,
    kind               TEXT NOT NULL,
    action             TEXT NOT NULL,
    resource           TEXT NOT NULL,
    environment        TEXT NOT NULL,
    digest             TEXT NOT NULL,
    submission         TEXT NOT NULL,
    state              TEXT NOT NULL,
    review_ref         TEXT,
    review_url         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    forge_attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT NOT NULL DEFAULT 0,
    last_error         TEXT,
    decision_published BIGINT NOT NULL DEFAULT 0 CHECK (decision_published IN (0, 1)),
    policy_commit      TEXT,
    evaluation         TEXT,
    payload_erased_at  BIGINT,
    review_head        TEXT
);

CREATE INDEX requests_by_state_due ON requests (state, next_attempt_at);
CREATE INDEX requests_by_state_expiry ON requests (state, expires_at);
CREATE INDEX requests_to_erase ON requests (payload_erased_at, state);
CREATE INDEX requests_by_review ON requests (review_ref);

CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    kind        TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          BIGINT NOT NULL
);

CREATE INDEX events_by_request ON events (request_id, seq);

CREATE TABLE reviews (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    reviewer    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reason      TEXT,
    digest      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    teams       TEXT
);

CREATE INDEX reviews_by_request ON reviews (request_id, id);
-- One standing approval per reviewer and digest, whichever replica records it.
CREATE UNIQUE INDEX reviews_one_standing_approval
    ON reviews (request_id, reviewer, digest) WHERE decision = 'approve';

CREATE TABLE seen_signatures (
    agent_id    TEXT NOT NULL,
    signature   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, signature)
);

-- The key is claimed before its request row is written (replicas racing on one key wait for
-- each other at the primary key), so the reference is checked at commit.
CREATE TABLE idempotency_keys (
    agent_id    TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL REFERENCES requests (id) DEFERRABLE INITIALLY DEFERRED,
    response    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, key)
);

-- The ledger outbox: seq is gap-free and totally ordered; writers append under a lock on
-- ledger_head, so concurrent replicas chain `prev` to the entry before theirs.
CREATE TABLE ledger (
    seq         BIGINT PRIMARY KEY CHECK (seq > 0),
    request_id  TEXT NOT NULL,
    at          BIGINT NOT NULL,
    prev        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    line        TEXT NOT NULL
);

CREATE INDEX ledger_by_request ON ledger (request_id, seq);

-- The newest entry (seq 0 and the genesis hash when empty): one row, locked by every append.
CREATE TABLE ledger_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    at    BIGINT NOT NULL
);

CREATE TABLE notify_outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    routed      BIGINT NOT NULL DEFAULT 0 CHECK (routed IN (0, 1))
);

CREATE INDEX notify_outbox_unrouted ON notify_outbox (routed, id);

CREATE TABLE notify_deliveries (
    outbox_id       BIGINT NOT NULL REFERENCES notify_outbox (id),
    target          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    in_flight       BIGINT NOT NULL DEFAULT 0 CHECK (in_flight IN (0, 1)),
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    message_ref     TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, target)
);

CREATE INDEX notify_deliveries_due ON notify_deliveries (state, next_attempt_at);
CREATE INDEX notify_deliveries_by_request ON notify_deliveries (request_id, target, outbox_id);

CREATE TABLE notify_threads (
    request_id  TEXT NOT NULL,
    target      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    PRIMARY KEY (request_id, target)
);

CREATE TABLE credentials (
    jti         TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    audience    TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE INDEX credentials_by_request ON credentials (request_id);

CREATE TABLE executions (
    request_id   TEXT PRIMARY KEY REFERENCES requests (id),
    attempt_id   TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    executor     TEXT NOT NULL,
    idempotent   BIGINT NOT NULL CHECK (idempotent IN (0, 1)),
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT
);

CREATE TABLE callbacks (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      TEXT NOT NULL REFERENCES requests (id),
    url             TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    finished_at     BIGINT
);

CREATE INDEX callbacks_due ON callbacks (state, next_attempt_at);

CREATE TABLE github_inbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  TEXT NOT NULL UNIQUE,
    event        TEXT NOT NULL,
    pull         BIGINT,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);

CREATE INDEX github_inbox_pending ON github_inbox (processed_at, seq);

CREATE TABLE write_probe (
    id  BIGINT PRIMARY KEY CHECK (id = 1),
    at  BIGINT NOT NULL
);
