-- Leader leases: work that must have one writer (the ledger writer and pusher, the forge
-- inbox, reconciliation) runs on the replica holding the lease. `epoch` grows with every
-- change of holder and fences writes: a write checks it in its own transaction. Expiry is
-- decided by the database's clock, never a replica's.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       BIGINT NOT NULL CHECK (epoch > 0),
    expires_at  BIGINT NOT NULL             -- unix milliseconds, database clock
);
