-- Credentials countersign issued (JWTs for the actions of approved requests): one row per
-- token, for introspection and single use. Never the token itself: only its id, binding,
-- audience and lifetime.
CREATE TABLE credentials (
    jti         TEXT PRIMARY KEY,          -- a ULID
    request_id  TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    audience    TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,          -- unix milliseconds
    expires_at  INTEGER NOT NULL,          -- unix milliseconds
    used_at     INTEGER                    -- set once, by an introspection with consume=true
) STRICT, WITHOUT ROWID;

CREATE INDEX credentials_by_request ON credentials (request_id);
