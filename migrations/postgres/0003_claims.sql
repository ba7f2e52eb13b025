-- Queue work any replica may do is claimed row by row: a replica takes due rows nobody holds
-- (`FOR UPDATE SKIP LOCKED`), marks them with its name and a claim that expires on the
-- database's clock, and clears the claim when it records the attempt. A replica that dies
-- mid-attempt leaves a claim that expires; then another takes the row.
ALTER TABLE notify_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE notify_deliveries ADD COLUMN claim_until BIGINT;
ALTER TABLE callbacks ADD COLUMN claimed_by TEXT;
ALTER TABLE callbacks ADD COLUMN claim_until BIGINT;
