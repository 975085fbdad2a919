-- Rollups applied in batches instead of in every ingest transaction.
--
-- An ingest group (src/analytics_copy.c) commits its events together
-- with ONE row here: the group's counts per (owner, event, hour) and the
-- presence keys it may have added, as arrays. analytics_rollup_apply()
-- folds every pending row into analytics_hourly / analytics_hourly_ids
-- and deletes it, in one transaction, so a group's rollups are applied
-- exactly once whatever crashes in between. Ingest transactions then take
-- no lock on the hot rollup rows (two writers no longer wait for each
-- other's COMMIT), and the upserts of many groups share one statement.
--
-- Reads stay exact: the service applies pending rows before every
-- rollup read (GET /analytics/summary, /analytics/top), and writer 0
-- applies them every ANALYTICS_ROLLUP_INTERVAL_MS. Anyone reading the
-- rollup tables in SQL calls platform.analytics_rollup_apply() first.

CREATE TABLE IF NOT EXISTS platform.analytics_rollup_pending (
    -- counts: owner[], event[], hour[] (hours since the epoch), n[]
    c_owner text[]   NOT NULL,
    c_event text[]   NOT NULL,
    c_hour  bigint[] NOT NULL,
    c_n     bigint[] NOT NULL,
    -- presence keys not known to be stored: scope[], event[], hour[],
    -- distinct_id[] (uniq grows by the rows actually inserted)
    p_scope text[]   NOT NULL,
    p_event text[]   NOT NULL,
    p_hour  bigint[] NOT NULL,
    p_did   text[]   NOT NULL
);

-- Applies every pending row committed before the call; returns how many.
-- Appliers are serialised by a transaction-level advisory lock, so when
-- it returns, every row committed before the call has been applied (by
-- this call or by one that held the lock first).
CREATE OR REPLACE FUNCTION platform.analytics_rollup_apply() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    applied bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM platform.analytics_rollup_pending) THEN
        RETURN 0;
    END IF;
    -- the key space of pgpool's migration locks ('basalt:' || schema)
    PERFORM pg_advisory_xact_lock(hashtext('basalt:analytics_rollup'));
    WITH p AS (
        DELETE FROM platform.analytics_rollup_pending RETURNING *),
    ids AS (
        INSERT INTO platform.analytics_hourly_ids
            (scope, event, hour, distinct_id)
        SELECT DISTINCT k.s, k.e, 'epoch'::timestamptz + k.h * interval '1 hour',
               k.d
        FROM p CROSS JOIN LATERAL
             unnest(p.p_scope, p.p_event, p.p_hour, p.p_did) AS k (s, e, h, d)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT DO NOTHING
        RETURNING scope, event, hour),
    c AS (
        SELECT k.s, k.e, 'epoch'::timestamptz + a.h * interval '1 hour' AS hr,
               sum(a.n)::bigint AS n
        FROM p CROSS JOIN LATERAL
             unnest(p.c_owner, p.c_event, p.c_hour, p.c_n) AS a (o, ev, h, n)
        CROSS JOIN LATERAL
             (VALUES (a.o, a.ev), ('*', a.ev), (a.o, ''), ('*', '')) AS k (s, e)
        GROUP BY 1, 2, 3),
    up AS (
        INSERT INTO platform.analytics_hourly AS x
            (scope, event, hour, n, uniq)
        SELECT c.s, c.e, c.hr, c.n, coalesce(u.n, 0)
        FROM c LEFT JOIN
             (SELECT scope, event, hour, count(*) AS n FROM ids
              GROUP BY 1, 2, 3) u
          ON u.scope = c.s AND u.event = c.e AND u.hour = c.hr
        ORDER BY 1, 2, 3
        ON CONFLICT (scope, event, hour) DO UPDATE
        SET n = x.n + EXCLUDED.n, uniq = x.uniq + EXCLUDED.uniq
        RETURNING 1)
    SELECT count(*) INTO applied FROM p;
    RETURN applied;
END;
$$;
