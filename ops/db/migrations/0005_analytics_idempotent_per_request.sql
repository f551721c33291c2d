-- The analytics rows a decision writes (`store.published`, one `gating.blocked` per missing
-- step) carry the request's event id in a column of their own, unique per request, event type
-- and step: a request decided again once its idempotency record is gone (a dead letter
-- replayed past the ledger's retention) adds no second row. Nullable, and the index partial,
-- so the platform's other writers of this table are not concerned.
ALTER TABLE onboarding_events ADD COLUMN IF NOT EXISTS request_event_id uuid;

-- The rows written before this migration say which request wrote them in their metadata;
-- the first of each (request, type, step) takes the column, so the index can be built.
UPDATE onboarding_events AS e
   SET request_event_id = f.request_event_id
  FROM (SELECT id, (metadata->>'requestEventId')::uuid AS request_event_id,
               row_number() OVER (
                   PARTITION BY metadata->>'requestEventId', event_type, coalesce(step_id, '')
                   ORDER BY created_at, id) AS nth
          FROM onboarding_events
         WHERE event_type IN ('store.published', 'gating.blocked')
           AND request_event_id IS NULL
           AND metadata->>'requestEventId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       ) AS f
 WHERE e.id = f.id AND f.nth = 1;

CREATE UNIQUE INDEX IF NOT EXISTS onboarding_events_request_once
    ON onboarding_events (request_event_id, event_type, (coalesce(step_id, '')))
    WHERE request_event_id IS NOT NULL;
