-- The pipeline's own tables: stores, the idempotency record, the pause switch, replay history.
CREATE TABLE stores (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL REFERENCES users (id),
    slug text NOT NULL UNIQUE,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    store_url text,
    published_at timestamptz,
    -- The request that published it: proves "published once" in the fault accounting.
    published_by_event_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_owner ON stores (owner_id);

-- One row per request event_id that reached a decision. Written in the same transaction as
-- the publish and the analytics rows, so a redelivery finds either all of them or none.
CREATE TABLE publish_requests (
    event_id uuid PRIMARY KEY,
    store_id uuid NOT NULL,
    user_id uuid NOT NULL,
    status text NOT NULL,
    reason text,
    outcome jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    source_partition integer,
    source_offset bigint,
    first_processed_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX publish_requests_store ON publish_requests (store_id);
CREATE INDEX publish_requests_processed_at ON publish_requests (processed_at);

-- The pause switch ("rollback partiel"): exactly one row.
CREATE TABLE publish_control (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    paused boolean NOT NULL DEFAULT false,
    reason text,
    changed_by text NOT NULL DEFAULT 'migrate',
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO publish_control DEFAULT VALUES ON CONFLICT DO NOTHING;

CREATE TABLE publish_control_history (
    id bigserial PRIMARY KEY,
    paused boolean NOT NULL,
    reason text,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dlq_replays (
    id bigserial PRIMARY KEY,
    replayed_at timestamptz NOT NULL DEFAULT now(),
    operator text NOT NULL,
    filters jsonb NOT NULL,
    dry_run boolean NOT NULL,
    forced boolean NOT NULL DEFAULT false,
    selected integer NOT NULL,
    sent integer NOT NULL,
    refused integer NOT NULL,
    parked integer NOT NULL
);
