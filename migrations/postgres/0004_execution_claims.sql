-- An execution is claimed by the replica running it, until `claim_until` (database clock),
-- renewed while it runs. A replica that dies mid-action leaves a claim that lapses; then any
-- replica recovers the execution (retried if idempotent, `outcome_unknown` otherwise).
ALTER TABLE executions ADD COLUMN claimed_by TEXT;
ALTER TABLE executions ADD COLUMN claim_until BIGINT;
CREATE INDEX executions_claims ON executions (claim_until) WHERE finished_at IS NULL;
