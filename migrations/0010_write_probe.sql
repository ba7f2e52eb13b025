-- One row rewritten by the readiness check: proves a write transaction commits to disk (a full
-- disk or a read-only file fails it).
CREATE TABLE write_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  INTEGER NOT NULL
);
