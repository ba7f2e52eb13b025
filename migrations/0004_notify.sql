-- Notification outbox: one row per event people are told about, written in the transaction of
-- the event; the notifier routes each to the configured destinations (one delivery each).
CREATE TABLE notify_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    routed      INTEGER NOT NULL DEFAULT 0     -- deliveries created
) STRICT;

CREATE INDEX notify_outbox_unrouted ON notify_outbox (routed, id);

CREATE TABLE notify_deliveries (
    outbox_id       INTEGER NOT NULL REFERENCES notify_outbox (id),
    target          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed | skipped
    attempts        INTEGER NOT NULL DEFAULT 0,
    in_flight       INTEGER NOT NULL DEFAULT 0,       -- sent, answer not recorded: in doubt after a crash
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,                             -- never message content or secrets
    message_ref     TEXT,                             -- Slack ts of the message posted, if any
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, target)
) STRICT, WITHOUT ROWID;

CREATE INDEX notify_deliveries_due ON notify_deliveries (state, next_attempt_at);
CREATE INDEX notify_deliveries_by_request ON notify_deliveries (request_id, target, outbox_id);

-- The message announcing a request on a Slack bot destination: updated in place, replies go
-- in its thread.
CREATE TABLE notify_threads (
    request_id  TEXT NOT NULL,
    target      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    PRIMARY KEY (request_id, target)
) STRICT, WITHOUT ROWID;
