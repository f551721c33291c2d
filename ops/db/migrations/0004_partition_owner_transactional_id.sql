-- Fencing in Kafka through the claim: each claim records the transactional id its owner
-- commits with (one per consumer process), and a claim keeps the id it replaced, so the new
-- owner learns, in the same statement, which id to initialise to fence the old one.
-- Owners from before this migration used one id per input partition.
ALTER TABLE partition_owners
    ADD COLUMN transactional_id text,
    ADD COLUMN previous_transactional_id text;
UPDATE partition_owners
   SET transactional_id = consumer_group || ':' || topic || ':' || partition;
ALTER TABLE partition_owners ALTER COLUMN transactional_id SET NOT NULL;
