-- Auth: users and refresh tokens. A "session" is a refresh token family:
-- every rotation inserts a child row with the same family_id.
-- pgpool_migrate runs this in one transaction and records it once; the
-- IF NOT EXISTS guards only make a manual re-run harmless.
-- gen_random_uuid() is in core since PostgreSQL 13.

CREATE SCHEMA IF NOT EXISTS platform;

CREATE TABLE IF NOT EXISTS platform.users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Normalised by the service (trimmed, ASCII, lowercase).
    email         text NOT NULL,
    -- argon2id PHC string; NULL for accounts that cannot sign in with
    -- a password.
    password_hash text,
    roles         text[] NOT NULL DEFAULT '{user}',
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_len CHECK (octet_length(email) BETWEEN 3 AND 254)
);

CREATE OR REPLACE FUNCTION platform.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS users_touch_updated_at ON platform.users;
CREATE TRIGGER users_touch_updated_at
    BEFORE UPDATE ON platform.users
    FOR EACH ROW EXECUTE FUNCTION platform.touch_updated_at();

CREATE TABLE IF NOT EXISTS platform.refresh_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id    uuid NOT NULL,
    user_id      uuid NOT NULL
                 REFERENCES platform.users (id) ON DELETE CASCADE,
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash   bytea NOT NULL,
    -- The token this one replaced (NULL for a family's first token).
    parent_id    uuid REFERENCES platform.refresh_tokens (id)
                 ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- Set when rotated: presenting a used token again is reuse.
    used_at      timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    user_agent   text,
    ip           inet,
    CONSTRAINT refresh_tokens_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_hash_len CHECK (octet_length(token_hash) = 32)
);

-- Revoking or listing a family (reuse detection, logout).
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx
    ON platform.refresh_tokens (family_id);
-- A user's sessions newest first; also serves ON DELETE CASCADE.
CREATE INDEX IF NOT EXISTS refresh_tokens_user_idx
    ON platform.refresh_tokens (user_id, created_at DESC);
-- Purging expired rows.
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_idx
    ON platform.refresh_tokens (expires_at);
-- parent_id ON DELETE SET NULL lookups.
CREATE INDEX IF NOT EXISTS refresh_tokens_parent_idx
    ON platform.refresh_tokens (parent_id);
