-- The replicas running on this database: each announces itself at start with fingerprints of
-- the keys every replica must share (never the keys), and keeps `seen_at` fresh (database
-- clock) while it runs. A replica whose keys differ from a running one's is refused at start.
CREATE TABLE replicas (
    name     TEXT PRIMARY KEY,
    keys     TEXT NOT NULL,
    seen_at  BIGINT NOT NULL
);
