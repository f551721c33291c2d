-- The pipeline's PostgreSQL roles and what each may do in the database.
--
-- Rendered from ops/runtime/pg_roles.py by `python -m ops.db.roles`; never edit by hand.
-- `store-publish migrate` applies it after the migrations, on every run, in their
-- transaction: each role ends with exactly the grants below (what else it was granted on
-- this schema's tables and sequences is revoked). Nothing is granted to PUBLIC.
--
-- The process roles may log in but have no password: a DBA sets one (ALTER ROLE ...
-- PASSWORD), or makes them NOLOGIN and grants them to login users of their own; migrate
-- never changes either once the role exists. The ledger's owner never logs in: the
-- consumer, its member, takes it (SET LOCAL ROLE) for the ledger's maintenance alone, and
-- does not inherit its rights (NOINHERIT).

-- Roles (the cluster's).

DO $$
DECLARE
    wanted record;
BEGIN
    FOR wanted IN SELECT * FROM (VALUES
        ('store_publish_ledger', 'NOLOGIN', 'NOLOGIN'),
        ('store_publish_consumer', 'LOGIN NOINHERIT', 'NOINHERIT'),
        ('store_publish_stream', 'LOGIN', NULL),
        ('store_publish_gateway', 'LOGIN', NULL),
        ('store_publish_oncall', 'LOGIN', NULL)
    ) AS r(name, attributes, insisted) LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = wanted.name) THEN
                EXECUTE format('CREATE ROLE %I %s', wanted.name, wanted.attributes);
            ELSIF wanted.insisted = 'NOLOGIN' AND EXISTS (SELECT FROM pg_roles
                      WHERE rolname = wanted.name AND rolcanlogin)
               OR wanted.insisted = 'NOINHERIT' AND EXISTS (SELECT FROM pg_roles
                      WHERE rolname = wanted.name AND rolinherit) THEN
                EXECUTE format('ALTER ROLE %I %s', wanted.name, wanted.insisted);
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migrate of another database
        END;
    END LOOP;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_auth_members m
                     JOIN pg_roles g ON g.oid = m.roleid
                     JOIN pg_roles r ON r.oid = m.member
                    WHERE g.rolname = 'store_publish_ledger' AND r.rolname = 'store_publish_consumer') THEN
        GRANT store_publish_ledger TO store_publish_consumer;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- granted meanwhile by a migrate of another database
END
$$;

-- Grants (this database's).
-- Nobody but the owners creates objects in the schema (PostgreSQL 15's default).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- store_publish_ledger: owns the idempotency ledger and its partitions, makes and drops
-- them; may create tables in the schema for that, and nothing else.
GRANT USAGE, CREATE ON SCHEMA public TO store_publish_ledger;
DO $$
DECLARE
    ledger regclass;
BEGIN
    FOR ledger IN SELECT 'publish_requests'::regclass
                  UNION ALL
                  SELECT inhrelid::regclass FROM pg_inherits
                   WHERE inhparent = 'publish_requests'::regclass LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO store_publish_ledger', ledger);
    END LOOP;
END
$$;

-- The process roles: each starts from nothing on the schema, then gets its grants.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM store_publish_consumer, store_publish_stream,
    store_publish_gateway, store_publish_oncall;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM store_publish_consumer, store_publish_stream,
    store_publish_gateway, store_publish_oncall;
REVOKE ALL ON SCHEMA public FROM store_publish_consumer, store_publish_stream,
    store_publish_gateway, store_publish_oncall;
GRANT USAGE ON SCHEMA public TO store_publish_consumer, store_publish_stream,
    store_publish_gateway, store_publish_oncall;

-- store_publish_consumer: decides and publishes requests; writes outcomes and dead letters.
GRANT SELECT (id) ON TABLE users TO store_publish_consumer;
GRANT SELECT (id, version, active_from, active_to) ON TABLE onboarding_step_definitions TO
    store_publish_consumer;
GRANT SELECT (user_id, step_id, version, status) ON TABLE user_onboarding TO
    store_publish_consumer;
GRANT SELECT (id, owner_id, slug, status, store_url, published_at) ON TABLE stores TO
    store_publish_consumer;
GRANT UPDATE (status, store_url, published_at, published_by_event_id, updated_at) ON TABLE
    stores TO store_publish_consumer;
GRANT INSERT (user_id, event_type, step_id, version, metadata, correlation_id, request_event_id)
    ON TABLE onboarding_events TO store_publish_consumer;
GRANT SELECT (request_event_id, event_type, step_id) ON TABLE onboarding_events TO
    store_publish_consumer;
GRANT SELECT, INSERT ON TABLE publish_requests TO store_publish_consumer;
GRANT SELECT ON TABLE publish_control TO store_publish_consumer;
GRANT UPDATE (id) ON TABLE publish_control TO store_publish_consumer;
GRANT SELECT, INSERT, UPDATE ON TABLE partition_owners TO store_publish_consumer;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE consumer_states TO store_publish_consumer;

-- store_publish_stream: computes rates over outcomes; writes alerts; may pause on auto-rollback.
GRANT SELECT (id, paused, reason, changed_by, changed_at) ON TABLE publish_control TO
    store_publish_stream;
GRANT UPDATE (paused, reason, changed_by, changed_at) ON TABLE publish_control TO
    store_publish_stream;
GRANT SELECT (paused, reason, changed_by, changed_at), INSERT (paused, reason, changed_by,
    changed_at) ON TABLE publish_control_history TO store_publish_stream;
GRANT USAGE ON SEQUENCE publish_control_history_id_seq TO store_publish_stream;

-- store_publish_gateway: turns HTTP calls into requests; waits for their outcomes.
GRANT SELECT (id) ON TABLE users TO store_publish_gateway;
GRANT SELECT (id, owner_id, created_at) ON TABLE stores TO store_publish_gateway;
GRANT SELECT (id, paused) ON TABLE publish_control TO store_publish_gateway;
GRANT SELECT (event_id, user_id, outcome, first_processed_at) ON TABLE publish_requests TO
    store_publish_gateway;

-- store_publish_oncall: lists and replays dead letters; pauses and resumes; reads status.
GRANT SELECT ON TABLE publish_control TO store_publish_oncall;
GRANT UPDATE (paused, reason, changed_by, changed_at) ON TABLE publish_control TO
    store_publish_oncall;
GRANT SELECT, INSERT ON TABLE publish_control_history TO store_publish_oncall;
GRANT USAGE ON SEQUENCE publish_control_history_id_seq TO store_publish_oncall;
GRANT SELECT, INSERT ON TABLE dlq_replays TO store_publish_oncall;
GRANT USAGE ON SEQUENCE dlq_replays_id_seq TO store_publish_oncall;
GRANT SELECT ON TABLE consumer_states TO store_publish_oncall;
GRANT SELECT (status, reason, attempts, processed_at) ON TABLE publish_requests TO
    store_publish_oncall;
