-- Fencing by partition: each assignment of an input partition to a consumer raises its epoch,
-- and every batch transaction checks it holds the current one. A consumer that stalled past
-- its session and wakes as a zombie cannot write, and so never re-initialises the
-- partition's transactional producer over its new owner's.
CREATE TABLE partition_owners (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    epoch bigint NOT NULL DEFAULT 1,
    owner text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
