-- Workflows: cron-scheduled chains of steps; each step runs as a job in
-- automation.jobs (see services/automation/src/workflows.h).
--
-- Exactly once per cron slot across replicas: every replica's scheduler
-- calls automation.fire_slot() for the slots it finds due; the unique
-- (workflow_id, scheduled_at) index lets only the first insert win, and the
-- run's first step job is inserted by the same statement (one transaction).
-- Step chaining is a trigger on automation.jobs, so the next step is
-- enqueued in the transaction that records the previous step's outcome.

CREATE TABLE automation.workflows (
    id          bigserial   PRIMARY KEY,
    owner_id    text        NOT NULL,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    schedule    text,                         -- NULL: run only on demand
    timezone    text        NOT NULL DEFAULT 'UTC',
    enabled     boolean     NOT NULL DEFAULT true,
    steps       jsonb       NOT NULL CHECK (jsonb_typeof(steps) = 'array'
                                            AND jsonb_array_length(steps) > 0),
    missed_run  text        NOT NULL DEFAULT 'skip'
        CHECK (missed_run IN ('skip', 'run_once')),
    overlap     text        NOT NULL DEFAULT 'allow'
        CHECK (overlap IN ('allow', 'forbid', 'replace')),
    -- Scheduler cursor: every slot at or before it has been handled (fired,
    -- skipped or caught up). Reset to now() when the schedule, time zone
    -- or enabled flag changes, so a changed schedule never catches up.
    slot_cursor timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workflows_owner_idx ON automation.workflows (owner_id, id DESC);

CREATE TABLE automation.runs (
    id           bigserial   PRIMARY KEY,
    workflow_id  bigint      NOT NULL
        REFERENCES automation.workflows (id) ON DELETE CASCADE,
    owner_id     text        NOT NULL,
    scheduled_at timestamptz,                 -- the cron slot; NULL: manual
    trigger      text        NOT NULL
        CHECK (trigger IN ('schedule', 'catch_up', 'manual')),
    state        text        NOT NULL
        CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled',
                         'skipped')),
    steps        jsonb       NOT NULL,        -- snapshot taken at start
    current_step integer     NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

-- One run per cron slot (manual runs have NULL slots, which never clash).
CREATE UNIQUE INDEX runs_slot_idx ON automation.runs (workflow_id, scheduled_at);
CREATE INDEX runs_workflow_idx ON automation.runs (workflow_id, id DESC);
CREATE INDEX runs_active_idx ON automation.runs (workflow_id)
    WHERE state = 'running';

-- Which job ran which step. No foreign key to automation.jobs: tests and
-- operators truncate that table on its own.
CREATE TABLE automation.run_steps (
    run_id     bigint  NOT NULL
        REFERENCES automation.runs (id) ON DELETE CASCADE,
    step_index integer NOT NULL,
    job_id     bigint  NOT NULL UNIQUE,
    PRIMARY KEY (run_id, step_index)
);

-- Enqueues step `idx` of run `rid` as a job owned by the run's owner.
CREATE FUNCTION automation.start_step(rid bigint, idx integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r automation.runs;
    s jsonb;
    jid bigint;
BEGIN
    SELECT * INTO r FROM automation.runs WHERE id = rid;
    s := r.steps -> idx;
    INSERT INTO automation.jobs (type, args, owner_id, max_attempts)
    VALUES (s ->> 'type', COALESCE(s -> 'args', '{}'::jsonb), r.owner_id,
            COALESCE((s ->> 'max_attempts')::int, 3))
    RETURNING id INTO jid;
    INSERT INTO automation.run_steps (run_id, step_index, job_id)
    VALUES (rid, idx, jid);
    UPDATE automation.runs SET current_step = idx WHERE id = rid;
    RETURN jid;
END
$$;

-- Cancels a running run and its current step job (overlap "replace",
-- workflow deletion). Locks the run's jobs before the run, the order a
-- worker finishing a step takes (job row, then the trigger's run row), so
-- the two never deadlock.
CREATE FUNCTION automation.cancel_run(rid bigint, why text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM automation.jobs j
    JOIN automation.run_steps rs ON rs.job_id = j.id
    WHERE rs.run_id = rid ORDER BY j.id FOR UPDATE OF j;
    UPDATE automation.runs SET state = 'cancelled', error = why,
        finished_at = now()
    WHERE id = rid AND state = 'running';
    UPDATE automation.jobs j SET
        state = CASE WHEN j.state = 'running' THEN 'running'
                     ELSE 'cancelled' END,
        cancel_requested = (j.state = 'running'),
        finished_at = CASE WHEN j.state = 'running' THEN NULL
                           ELSE now() END
    FROM automation.run_steps rs
    WHERE rs.run_id = rid AND rs.job_id = j.id
      AND j.state IN ('available', 'scheduled', 'retryable', 'running');
END
$$;

-- Fires one slot of a workflow: the whole decision in one transaction,
-- serialised per workflow by the row lock. `slot` NULL is a manual run.
-- Returns the new run's id, or NULL when the slot was already handled.
--   kind:   'schedule' | 'catch_up' | 'manual' | 'skip' (only advance the
--           cursor: missed slots under the "skip" policy)
--   cursor: the new slot_cursor (never moves back)
CREATE FUNCTION automation.fire_slot(wid bigint, slot timestamptz,
                                     kind text, cursor timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    w automation.workflows;
    active bigint;
    rid bigint;
    st text := 'running';
BEGIN
    SELECT * INTO w FROM automation.workflows WHERE id = wid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF kind <> 'manual' THEN
        IF NOT w.enabled OR w.schedule IS NULL OR slot <= w.slot_cursor THEN
            RETURN NULL;                      -- another replica handled it
        END IF;
        UPDATE automation.workflows
        SET slot_cursor = greatest(slot_cursor, cursor) WHERE id = wid;
        IF kind = 'skip' THEN
            RETURN NULL;
        END IF;
    END IF;
    SELECT id INTO active FROM automation.runs
    WHERE workflow_id = wid AND state = 'running' ORDER BY id LIMIT 1;
    IF active IS NOT NULL AND w.overlap = 'forbid' THEN
        st := 'skipped';
    ELSIF active IS NOT NULL AND w.overlap = 'replace' THEN
        FOR active IN SELECT id FROM automation.runs
                      WHERE workflow_id = wid AND state = 'running' LOOP
            PERFORM automation.cancel_run(active, 'replaced by a newer run');
        END LOOP;
    END IF;
    INSERT INTO automation.runs (workflow_id, owner_id, scheduled_at,
                                 trigger, state, steps, error, finished_at)
    VALUES (wid, w.owner_id, slot, kind, st, w.steps,
            CASE WHEN st = 'skipped' THEN 'previous run still active' END,
            CASE WHEN st = 'skipped' THEN now() END)
    ON CONFLICT (workflow_id, scheduled_at) DO NOTHING
    RETURNING id INTO rid;
    IF rid IS NOT NULL AND st = 'running' THEN
        PERFORM automation.start_step(rid, 0);
    END IF;
    RETURN rid;
END
$$;

-- A step job reached a final state: advance, finish or fail its run, in
-- the transaction that stored the job's outcome.
CREATE FUNCTION automation.step_done() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rs automation.run_steps;
    r automation.runs;
BEGIN
    SELECT * INTO rs FROM automation.run_steps WHERE job_id = NEW.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO r FROM automation.runs WHERE id = rs.run_id FOR UPDATE;
    IF r.state <> 'running' OR r.current_step <> rs.step_index THEN
        RETURN NULL;
    END IF;
    IF NEW.state = 'succeeded' THEN
        IF rs.step_index + 1 < jsonb_array_length(r.steps) THEN
            PERFORM automation.start_step(r.id, rs.step_index + 1);
        ELSE
            UPDATE automation.runs SET state = 'succeeded',
                finished_at = now() WHERE id = r.id;
        END IF;
    ELSIF NEW.state = 'dead' THEN
        UPDATE automation.runs SET state = 'failed', finished_at = now(),
            error = format('step %s (%s) failed: %s', rs.step_index + 1,
                           NEW.type, COALESCE(NEW.last_error, 'failed'))
        WHERE id = r.id;
    ELSE
        UPDATE automation.runs SET state = 'cancelled', finished_at = now(),
            error = format('step %s (%s) was cancelled', rs.step_index + 1,
                           NEW.type)
        WHERE id = r.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_step_done
    AFTER UPDATE OF state ON automation.jobs
    FOR EACH ROW
    WHEN (NEW.state IN ('succeeded', 'dead', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION automation.step_done();

-- API shapes.
CREATE FUNCTION automation.workflow_json(w automation.workflows) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', w.id,
        'name', w.name,
        'schedule', w.schedule,
        'timezone', w.timezone,
        'enabled', w.enabled,
        'steps', w.steps,
        'missed_run', w.missed_run,
        'overlap', w.overlap,
        'owner_id', w.owner_id,
        'created_at', automation.rfc3339(w.created_at),
        'updated_at', automation.rfc3339(w.updated_at))
$$;

CREATE FUNCTION automation.run_json(r automation.runs) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', r.id,
        'workflow_id', r.workflow_id,
        'state', r.state,
        'trigger', r.trigger,
        'scheduled_at', automation.rfc3339(r.scheduled_at),
        'current_step', r.current_step,
        'error', r.error,
        'owner_id', r.owner_id,
        'created_at', automation.rfc3339(r.created_at),
        'finished_at', automation.rfc3339(r.finished_at),
        'steps', (
            SELECT json_agg(json_build_object(
                'index', s.i - 1,
                'type', s.step ->> 'type',
                'name', s.step -> 'name',
                'job_id', j.id,
                'state', COALESCE(j.state,
                    CASE WHEN r.state = 'running' THEN 'pending'
                         ELSE 'not_run' END),
                'attempts', COALESCE(j.attempts, 0),
                'result', j.result,
                'error', j.last_error,
                'started_at', automation.rfc3339(j.started_at),
                'finished_at', automation.rfc3339(j.finished_at))
                ORDER BY s.i)
            FROM jsonb_array_elements(r.steps) WITH ORDINALITY AS s(step, i)
            LEFT JOIN automation.run_steps rs
              ON rs.run_id = r.id AND rs.step_index = s.i - 1
            LEFT JOIN automation.jobs j ON j.id = rs.job_id))
$$;
