-- Auth hardening (issue 3): the access token issued with each refresh
-- token (so a revoked session's access tokens can be denylisted at once),
-- a per-user "tokens issued before this are invalid" time (disable, role
-- change; re-published to Redis at start), and admin listing order.

ALTER TABLE platform.refresh_tokens
    ADD COLUMN IF NOT EXISTS access_jti text,
    ADD COLUMN IF NOT EXISTS access_exp timestamptz,
    ADD COLUMN IF NOT EXISTS revoked_reason text;

-- Finding the session of an access token (logout, "current" session).
CREATE INDEX IF NOT EXISTS refresh_tokens_access_jti_idx
    ON platform.refresh_tokens (access_jti)
    WHERE access_jti IS NOT NULL;
-- Re-publishing the denylist at start: revoked rows whose access token
-- may still be alive.
CREATE INDEX IF NOT EXISTS refresh_tokens_revoked_live_idx
    ON platform.refresh_tokens (access_exp)
    WHERE revoked_at IS NOT NULL;

ALTER TABLE platform.users
    ADD COLUMN IF NOT EXISTS tokens_valid_after timestamptz;

-- GET /users pages by (created_at, id).
CREATE INDEX IF NOT EXISTS users_created_idx
    ON platform.users (created_at, id);
