-- The relay's work queue moves out of the event log (see src/outbox.rs).
--
-- Before: pending = `outbox.published_at IS NULL`, and marking a row published was an UPDATE of
-- the whole 1.2 kB event row (a new row version plus an entry in every index: never HOT,
-- because published_at is in the partial indexes' predicates). Measured on this project's
-- 2-core machine: 26 to 32 ms per 1 000 rows, more than half of PostgreSQL's time per event.
--
-- Now: `outbox` is an append-only log; `outbox_pending` holds one narrow row per event not yet
-- acknowledged by Kafka, written by a trigger in the same statement as the event (so no writer
-- can forget it), and a relay marks events published by deleting their queue rows (1.7 ms per
-- 1 000 rows, measured the same way). An event is published exactly when it has no queue row.

DROP INDEX IF EXISTS outbox_pending_id_idx;
DROP INDEX IF EXISTS outbox_pending_order_idx;
DROP INDEX IF EXISTS outbox_published_idx;

CREATE TABLE outbox_pending (
    id              bigint PRIMARY KEY,       -- outbox.id (no foreign key: the relay deletes here, the pruner there, never the other way)
    aggregate_id    uuid NOT NULL,
    order_version   bigint NOT NULL,
    created_at      timestamptz NOT NULL
);
-- Relays claim orders by the oldest queue rows (primary key), then take the claimed orders'
-- rows in version order.
CREATE INDEX outbox_pending_by_order ON outbox_pending (aggregate_id, order_version);

INSERT INTO outbox_pending (id, aggregate_id, order_version, created_at)
SELECT id, aggregate_id, order_version, created_at FROM outbox WHERE published_at IS NULL;

ALTER TABLE outbox DROP COLUMN published_at;
-- Pruning goes by age; a BRIN index costs next to nothing on insert.
CREATE INDEX outbox_created_at_brin ON outbox USING brin (created_at);

CREATE FUNCTION outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id, aggregate_id, order_version, created_at)
    SELECT id, aggregate_id, order_version, created_at FROM new_events;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_enqueue AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_enqueue();

-- The claim, on the queue. Changes from migration 0004:
--
-- * The candidate scan takes the oldest `p_batch + p_in_flight_rows` queue rows and then drops
--   the relay's in-flight orders, with `<> ALL` over the array, which PostgreSQL hashes (the
--   function is planned for the actual array). No join: with the statistics of a table that
--   just grew by a bulk insert (a backlog, before autovacuum's ANALYZE), the planner chose a
--   nested-loop anti-join, 1.5 million comparisons and 150 ms per claim.
-- * Every pending row of the claimed orders is returned (no limit in the middle of an order),
--   followed by one marker row per claimed order (`out_id` NULL). The relay treats every
--   claimed order as held and releases it with its batch, so there is no second look at the
--   queue (a second statement would see a later snapshot than the fetch).
DROP FUNCTION outbox_claim(integer, integer, uuid[], uuid[]);
CREATE FUNCTION outbox_claim(
    p_batch integer, p_namespace integer, p_exclude uuid[], p_in_flight_rows integer,
    p_release uuid[])
RETURNS TABLE (
    out_id bigint, out_event_id uuid, out_aggregate_id uuid, out_event_type text,
    out_payload text, out_correlation_id text, out_traceparent text, out_created_at timestamptz
)
LANGUAGE plpgsql VOLATILE
-- Planned for the actual arrays each call (see migration 0005).
SET plan_cache_mode = force_custom_plan
-- Never JIT-compiled: with a backlog's stale statistics the fetch's cost estimate passed
-- jit_above_cost and each claim spent 60 to 110 ms compiling a plan that runs in 5 ms.
SET jit = off
AS $$
DECLARE
    claimed uuid[];
BEGIN
    PERFORM pg_advisory_unlock(p_namespace, hashtext(r::text)) FROM unnest(p_release) r;

    SELECT coalesce(array_agg(c.aggregate_id), '{}') INTO claimed
    FROM (
        SELECT DISTINCT oldest.aggregate_id
        FROM (
            SELECT p.aggregate_id FROM outbox_pending p
            ORDER BY p.id LIMIT p_batch + p_in_flight_rows
        ) oldest
        WHERE oldest.aggregate_id <> ALL(p_exclude)
    ) c
    WHERE pg_try_advisory_lock(p_namespace, hashtext(c.aggregate_id::text));

    IF cardinality(claimed) = 0 THEN
        RETURN;
    END IF;

    -- A statement of its own, so its snapshot is taken after the locks: rows another relay
    -- published (deleted from the queue) before unlocking are not returned.
    --
    -- Index lookups per claimed order, fenced by OFFSET 0 so the planner cannot turn them into
    -- a hash join: right after a bulk insert (a backlog, before autovacuum's ANALYZE), it
    -- misjudged the array filter and scanned the whole log per claim (104 ms instead of 4).
    RETURN QUERY
        SELECT o.id, o.event_id, o.aggregate_id, o.event_type, o.payload::text,
               o.correlation_id, o.traceparent, o.created_at
        FROM unnest(claimed) c(aggregate_id)
        CROSS JOIN LATERAL (
            SELECT q.id, q.order_version FROM outbox_pending q
            WHERE q.aggregate_id = c.aggregate_id OFFSET 0
        ) p
        CROSS JOIN LATERAL (
            SELECT e.* FROM outbox e WHERE e.id = p.id OFFSET 0
        ) o
        ORDER BY c.aggregate_id, p.order_version;
    RETURN QUERY
        SELECT NULL::bigint, NULL::uuid, c, NULL::text, NULL::text, NULL::text, NULL::text,
               NULL::timestamptz
        FROM unnest(claimed) c;
END
$$;
