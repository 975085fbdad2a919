-- Uploaded files (contents in storage, see src/storage.c) and the datasets
-- that import_file jobs make from them. Each dataset's rows live in their
-- own table automation.ds_<id> with typed columns plus _row (1..n, the
-- order of the source records), created by the import.

CREATE TABLE automation.files (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    size         bigint      NOT NULL CHECK (size >= 0),
    content_type text        NOT NULL,
    sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_key  text        NOT NULL UNIQUE,
    owner_id     text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX files_owner_idx ON automation.files (owner_id, id DESC);

CREATE TABLE automation.datasets (
    id          bigserial   PRIMARY KEY,
    -- the import job; a retried job reuses its dataset
    job_id      bigint      UNIQUE,
    file_id     bigint      REFERENCES automation.files (id)
                            ON DELETE SET NULL,
    owner_id    text        NOT NULL,
    name        text        NOT NULL,
    format      text        NOT NULL,
    state       text        NOT NULL DEFAULT 'importing'
        CHECK (state IN ('importing', 'ready', 'failed')),
    row_count   bigint      NOT NULL DEFAULT 0,
    bad_rows    bigint      NOT NULL DEFAULT 0,
    -- [{"name","source_name","type","pg_type","stats":{...}}]
    columns     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- the first bad rows: [{"line","error"}]
    errors      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE INDEX datasets_owner_idx ON automation.datasets (owner_id, id DESC);

CREATE FUNCTION automation.file_json(f automation.files) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', f.id,
        'name', f.name,
        'size', f.size,
        'sha256', f.sha256,
        'content_type', f.content_type,
        'owner_id', f.owner_id,
        'created_at', automation.rfc3339(f.created_at))
$$;

CREATE FUNCTION automation.dataset_json(d automation.datasets) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', d.id,
        'name', d.name,
        'file_id', d.file_id,
        'job_id', d.job_id,
        'format', d.format,
        'state', d.state,
        'row_count', d.row_count,
        'bad_rows', d.bad_rows,
        'columns', d.columns,
        'errors', d.errors,
        'error', d.error,
        'owner_id', d.owner_id,
        'created_at', automation.rfc3339(d.created_at),
        'finished_at', automation.rfc3339(d.finished_at))
$$;
