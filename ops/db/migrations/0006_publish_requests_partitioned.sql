-- The idempotency ledger, range-partitioned by the time of the decision, so that what is past
-- the retention goes by dropping whole partitions (consumers/ledger.py keeps them: created
-- ahead, dropped past IDEMPOTENCY_RETENTION) rather than by deleting rows.
--
-- A key on a partitioned table must include the partition key, so event_id alone is no longer
-- unique: a request is recorded once because the batch that decides it holds its store's row
-- lock and found no earlier record (consumers/repository.py).
--
-- The rows there are already move into one partition ending at the start of today (UTC),
-- dropped once that is past the retention; today and the next two days get a partition each.
-- The default partition only catches rows no partition covers yet (maintenance not run for
-- days); maintenance moves them into the partition it creates for them.
ALTER TABLE publish_requests RENAME TO publish_requests_unpartitioned;
ALTER INDEX publish_requests_pkey RENAME TO publish_requests_unpartitioned_pkey;
ALTER INDEX publish_requests_store RENAME TO publish_requests_unpartitioned_store;
ALTER INDEX publish_requests_processed_at RENAME TO publish_requests_unpartitioned_processed_at;

CREATE TABLE publish_requests (
    event_id uuid NOT NULL,
    store_id uuid NOT NULL,
    user_id uuid NOT NULL,
    status text NOT NULL,
    reason text,
    outcome jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    source_partition integer,
    source_offset bigint,
    first_processed_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, first_processed_at)
) PARTITION BY RANGE (first_processed_at);
-- `store-publish status` counts the recent decisions. The index by store had no reader.
CREATE INDEX publish_requests_processed_at ON publish_requests (processed_at);

DO $$
DECLARE
    today timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    lo timestamptz;
BEGIN
    EXECUTE format(
        'CREATE TABLE publish_requests_before PARTITION OF publish_requests
             FOR VALUES FROM (MINVALUE) TO (%L)', today);
    FOR day IN 0..2 LOOP
        lo := today + make_interval(days => day);
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF publish_requests FOR VALUES FROM (%L) TO (%L)',
            'publish_requests_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS'),
            lo, lo + interval '1 day');
    END LOOP;
END
$$;
CREATE TABLE publish_requests_default PARTITION OF publish_requests DEFAULT;

INSERT INTO publish_requests
       (event_id, store_id, user_id, status, reason, outcome, attempts, source_partition,
        source_offset, first_processed_at, processed_at)
SELECT event_id, store_id, user_id, status, reason, outcome, attempts, source_partition,
       source_offset, first_processed_at, processed_at
  FROM publish_requests_unpartitioned;
DROP TABLE publish_requests_unpartitioned;
