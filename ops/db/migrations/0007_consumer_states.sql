-- What each running consumer says about itself, for `store-publish status`: working, or held
-- back and why (a database fault with its SQLSTATE, an unreachable database, the pause
-- switch). Written by the consumer when its state changes and every 30 s; a row not updated
-- for a day is deleted by the next write, so the table holds the live consumers and a few
-- recent ones, never more.
CREATE TABLE consumer_states (
    owner          text PRIMARY KEY,          -- host:pid, as in partition_owners.owner
    consumer_group text NOT NULL,
    state          text NOT NULL CHECK (state IN ('working', 'paused', 'database_unavailable',
                                                  'database_fault', 'stopped')),
    sqlstate       text,
    error          text,
    since          timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
