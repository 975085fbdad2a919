-- message_id dedupe per sender (issue 4).
--
-- Until now a message_id was unique across all senders: an event whose
-- id another user had already used was taken for a retry and dropped, so
-- two clients numbering their ids alike lost each other's events, and a
-- user who learnt someone's ids could suppress their events. Segment
-- scopes messageId per source; here the scope is the event's owner (the
-- sender's user id, '' for the service's own events).
--
-- Dedupe rows are keyed (owner_key, message_id). owner_key stands in for
-- the owner's text id, 8 bytes instead of 36 in every index entry: the
-- first 8 bytes of SHA-256(owner) (UTF-8) as a big-endian signed bigint.
-- Making another owner's key match yours takes a second preimage of
-- SHA-256 truncated to 64 bits (~2^64 hashes), so nobody can pick a scope
-- that shares yours. Within one owner the index keeps message_id order,
-- so clients that number or time-order their ids append to it. The writer
-- (src/analytics_group.c) computes the same key;
-- platform.analytics_owner_key() is the SQL form.

CREATE OR REPLACE FUNCTION platform.analytics_owner_key(owner text)
RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || substr(encode(sha256(convert_to(owner, 'UTF8')), 'hex'),
                          1, 16))::bit(64)::bigint
$$;

ALTER TABLE platform.analytics_dedupe RENAME TO analytics_dedupe_global;
ALTER INDEX platform.analytics_dedupe_received_brin
    RENAME TO analytics_dedupe_global_received_brin;

-- Filled first, indexed after: building the primary key by one sort is
-- far cheaper than inserting millions of keys into it one by one.
CREATE TABLE platform.analytics_dedupe (
    owner_key   bigint NOT NULL,
    message_id  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- The ids kept so far, under their owner's key. A global id belonged to
-- exactly one stored event; ids whose event is gone protect nothing.
-- Takes time in proportion to the events table (one pass over it).
INSERT INTO platform.analytics_dedupe (owner_key, message_id, received_at)
SELECT DISTINCT ON (1, 2) platform.analytics_owner_key(e.owner),
       d.message_id, d.received_at
FROM platform.analytics_dedupe_global d
JOIN platform.analytics_events e ON e.message_id = d.message_id
ORDER BY 1, 2, 3;

ALTER TABLE platform.analytics_dedupe ADD PRIMARY KEY (owner_key, message_id);
-- Pruning old ids (ANALYTICS_DEDUPE_RETENTION_DAYS).
CREATE INDEX analytics_dedupe_received_brin
    ON platform.analytics_dedupe USING brin (received_at);

DROP TABLE platform.analytics_dedupe_global;
