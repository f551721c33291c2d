-- Fencing in Kafka through the claim: each claim records the transactional id its owner
-- commits with (one per consumer process), so the next owner can initialise that id and
-- fence it. Owners from before this migration used one id per input partition.
ALTER TABLE partition_owners ADD COLUMN transactional_id text;
UPDATE partition_owners
   SET transactional_id = consumer_group || ':' || topic || ':' || partition;
ALTER TABLE partition_owners ALTER COLUMN transactional_id SET NOT NULL;
