-- The original platform's tables, with at least the columns the contract lists. IF NOT EXISTS
-- so the pipeline can be pointed at the real database, where they already exist.
CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS onboarding_step_definitions (
    id text NOT NULL,
    version integer NOT NULL,
    title text NOT NULL,
    description text,
    required boolean NOT NULL DEFAULT false,
    weight integer NOT NULL DEFAULT 0,
    market_rule jsonb,
    role_visibility text[],
    active_from timestamptz,
    active_to timestamptz,
    UNIQUE (id, version)
);

CREATE TABLE IF NOT EXISTS user_onboarding (
    user_id uuid NOT NULL REFERENCES users (id),
    step_id text NOT NULL,
    version integer NOT NULL,
    status text NOT NULL CHECK (status IN ('todo', 'done', 'skipped')),
    snooze_until timestamptz,
    snooze_count integer NOT NULL DEFAULT 0,
    completed_by text,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, step_id, version)
);

CREATE TABLE IF NOT EXISTS onboarding_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id),
    event_type text NOT NULL,
    step_id text,
    version integer,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    correlation_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS onboarding_events_user_type ON onboarding_events (user_id, event_type);
