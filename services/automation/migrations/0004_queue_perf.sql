-- Job queue hot path (see "Performance" in the service README).
--
-- jobs_notify used to run its PL/pgSQL function for every row of every
-- INSERT and every state change (claim, completion) only to do nothing
-- for most of them. Now the WHEN clauses decide without calling it, and an
-- insert statement sends one wake-up however many rows it adds (a bulk
-- enqueue of 10,000 jobs: one pg_notify instead of 10,000 deduplicated
-- ones). The payloads are unchanged: 'job' and 'cancel:<id>'.
-- An insert in a transaction with automation.notify = 'off' sends none:
-- the API's enqueue wakes the workers itself after its commit, because
-- PostgreSQL serialises notifying commits through their WAL flush.

DROP TRIGGER jobs_notify ON automation.jobs;

CREATE FUNCTION automation.jobs_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- auto_queue_enqueue() sets automation.notify = off and NOTIFYs after
    -- its durable commit (see queue.c: notifying commits are serialised)
    IF current_setting('automation.notify', true) IS DISTINCT FROM 'off'
       AND EXISTS (SELECT 1 FROM inserted WHERE state = 'available') THEN
        PERFORM pg_notify('automation_jobs', 'job');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert
    AFTER INSERT ON automation.jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION automation.jobs_notify_inserted();

CREATE TRIGGER jobs_notify_update
    AFTER UPDATE OF state, cancel_requested ON automation.jobs
    FOR EACH ROW
    WHEN ((NEW.state = 'available' AND OLD.state <> 'available')
          OR (NEW.state = 'running' AND NEW.cancel_requested
              AND NOT OLD.cancel_requested))
    EXECUTE FUNCTION automation.jobs_notify();
