-- Analytics: raw events partitioned by month, a dedupe table keyed by
-- message_id, and per-hour rollups kept up to date by the writer in the
-- same transaction as the events (see src/analytics_writer.c).
--
-- owner is the user id of whoever sent the event ('' for the service's
-- own events about unknown users): non-admins see only their own rows.
-- Rollups are kept per scope: each event counts in scope = owner and in
-- scope = '*' (everything, for admins), and under its own name and under
-- event = '' (all events; names are never empty), so every kind of
-- summary reads rollups of its own instead of re-aggregating.

CREATE SEQUENCE IF NOT EXISTS platform.analytics_event_id_seq;

CREATE TABLE IF NOT EXISTS platform.analytics_events (
    id          bigint NOT NULL
                DEFAULT nextval('platform.analytics_event_id_seq'),
    ts          timestamptz NOT NULL,
    event       text NOT NULL,
    distinct_id text NOT NULL,
    owner       text NOT NULL DEFAULT '',
    properties  jsonb NOT NULL DEFAULT '{}',
    message_id  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);

-- Rows older than the oldest monthly partition (back-filled history).
-- Partitions are only created for the current month onwards, so a new
-- partition never overlaps rows already sitting here.
CREATE TABLE IF NOT EXISTS platform.analytics_events_default
    PARTITION OF platform.analytics_events DEFAULT;

-- Time-range scans: BRIN is tiny and events arrive roughly in time order.
CREATE INDEX IF NOT EXISTS analytics_events_ts_brin
    ON platform.analytics_events USING brin (ts);
-- GET /analytics/events: one owner's newest rows first (keyset cursor).
CREATE INDEX IF NOT EXISTS analytics_events_owner_ts_idx
    ON platform.analytics_events (owner, ts, id);

-- A unique index on a partitioned table must contain the partition key,
-- so message_id uniqueness across partitions lives in its own table.
CREATE TABLE IF NOT EXISTS platform.analytics_dedupe (
    message_id  text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
-- Pruning old ids (ANALYTICS_DEDUPE_RETENTION_DAYS); rows arrive in
-- received_at order, so BRIN stays tiny and nearly free to maintain.
CREATE INDEX IF NOT EXISTS analytics_dedupe_received_brin
    ON platform.analytics_dedupe USING brin (received_at);

-- Events per (scope, event, hour); uniq = rows of analytics_hourly_ids
-- for the same key (distinct distinct_ids in that hour).
CREATE TABLE IF NOT EXISTS platform.analytics_hourly (
    scope text NOT NULL,
    event text NOT NULL,
    hour  timestamptz NOT NULL,
    n     bigint NOT NULL,
    uniq  bigint NOT NULL,
    PRIMARY KEY (scope, event, hour)
);

-- Exact presence of each distinct_id per (scope, event, hour): unique
-- counts over any union of hours (a day, a range) are COUNT(DISTINCT)
-- over these rows, never a sum of hourly uniques.
CREATE TABLE IF NOT EXISTS platform.analytics_hourly_ids (
    scope       text NOT NULL,
    event       text NOT NULL,
    hour        timestamptz NOT NULL,
    distinct_id text NOT NULL,
    PRIMARY KEY (scope, event, hour, distinct_id)
);

-- Creates the monthly partitions from the current month (UTC) to
-- `months_ahead` months later; returns how many it created. A month that
-- cannot be created (a concurrent replica won the race, or rows for it
-- already sit in the default partition) is skipped with a warning.
CREATE OR REPLACE FUNCTION platform.analytics_ensure_partitions(
    months_ahead int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    m     timestamp;
    name  text;
    made  int := 0;
BEGIN
    FOR i IN 0..months_ahead LOOP
        m := date_trunc('month', now() AT TIME ZONE 'UTC')
             + make_interval(months => i);
        name := 'analytics_events_' || to_char(m, 'YYYYMM');
        IF to_regclass('platform.' || quote_ident(name)) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE platform.%I PARTITION OF '
                    'platform.analytics_events FOR VALUES FROM (%L) TO (%L)',
                    name, (m AT TIME ZONE 'UTC'),
                    ((m + interval '1 month') AT TIME ZONE 'UTC'));
                made := made + 1;
            EXCEPTION WHEN others THEN
                RAISE WARNING 'analytics partition %: %', name, SQLERRM;
            END;
        END IF;
    END LOOP;
    RETURN made;
END;
$$;

SELECT platform.analytics_ensure_partitions(3);
