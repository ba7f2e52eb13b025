-- Policy engine: every request records the policy commit it was judged under and the
-- evaluation (requirements, risk, outcome; subjects and owners only, never payload data).
ALTER TABLE requests ADD COLUMN policy_commit TEXT;
ALTER TABLE requests ADD COLUMN evaluation TEXT;
