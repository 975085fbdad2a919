-- Job queue: one row per job, claimed with FOR UPDATE SKIP LOCKED under a
-- lease (see services/automation/src/queue.c). Rows are kept after they
-- finish: succeeded, dead (the dead letter) and cancelled jobs stay
-- visible through the API.

CREATE TABLE automation.jobs (
    id               bigserial PRIMARY KEY,
    type             text        NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    args             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state            text        NOT NULL DEFAULT 'available'
        CHECK (state IN ('available', 'scheduled', 'running', 'retryable',
                         'succeeded', 'dead', 'cancelled')),
    -- lower runs first: 1 highest .. 4 lowest (as River)
    priority         smallint    NOT NULL DEFAULT 2
        CHECK (priority BETWEEN 1 AND 4),
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    idempotency_key  text
        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    owner_id         text        NOT NULL,
    lease_expires_at timestamptz,
    locked_by        text,
    cancel_requested boolean     NOT NULL DEFAULT false,
    progress         smallint    NOT NULL DEFAULT 0
        CHECK (progress BETWEEN 0 AND 100),
    progress_message text,
    result           jsonb,
    last_error       text,
    errors           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK (state <> 'running' OR (lease_expires_at IS NOT NULL
                                  AND locked_by IS NOT NULL))
);

-- One job per (owner, key): enqueue uses ON CONFLICT on this index.
CREATE UNIQUE INDEX jobs_idempotency_idx ON automation.jobs
    (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Claiming: only waiting rows, in claim order.
CREATE INDEX jobs_claim_idx ON automation.jobs (priority, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');

-- Finding expired leases.
CREATE INDEX jobs_lease_idx ON automation.jobs (lease_expires_at)
    WHERE state = 'running';

-- Listing an owner's jobs newest first.
CREATE INDEX jobs_owner_idx ON automation.jobs (owner_id, id DESC);

-- RFC 3339 in UTC with microseconds, whatever the session TimeZone.
CREATE FUNCTION automation.rfc3339(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The API shape of a job (json keeps this key order).
CREATE FUNCTION automation.job_json(j automation.jobs) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', j.id,
        'type', j.type,
        'state', j.state,
        'args', j.args,
        'priority', j.priority,
        'run_at', automation.rfc3339(j.run_at),
        'attempts', j.attempts,
        'max_attempts', j.max_attempts,
        'idempotency_key', j.idempotency_key,
        'owner_id', j.owner_id,
        'cancel_requested', j.cancel_requested,
        'progress', j.progress,
        'progress_message', j.progress_message,
        'result', j.result,
        'last_error', j.last_error,
        'errors', j.errors,
        'created_at', automation.rfc3339(j.created_at),
        'started_at', automation.rfc3339(j.started_at),
        'finished_at', automation.rfc3339(j.finished_at))
$$;

-- Wake-ups in the same transaction as the change: a job became available
-- (idle workers of every replica claim at once), or a running job was
-- asked to cancel (its worker stops the handler).
CREATE FUNCTION automation.jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'available'
       AND (TG_OP = 'INSERT' OR OLD.state <> 'available') THEN
        PERFORM pg_notify('automation_jobs', 'job');
    ELSIF TG_OP = 'UPDATE' AND NEW.state = 'running'
          AND NEW.cancel_requested AND NOT OLD.cancel_requested THEN
        PERFORM pg_notify('automation_jobs', 'cancel:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify
    AFTER INSERT OR UPDATE OF state, cancel_requested ON automation.jobs
    FOR EACH ROW EXECUTE FUNCTION automation.jobs_notify();
