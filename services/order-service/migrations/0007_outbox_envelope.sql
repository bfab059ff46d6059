-- Each event is stored as it goes on the wire: the CloudEvent's structured JSON, built once by
-- the writer in the change's own transaction (`envelope`), and shipped unchanged by the relay.
--
-- Before, the writer stored the event's `data` as jsonb and the relay rebuilt the envelope for
-- every send: PostgreSQL parsed the data into jsonb on insert and printed it back to text on
-- every claim, and the relay parsed that text and serialized the envelope around it (measured
-- with perf during a 300 000-event drain: PostgreSQL 38 % of the machine, mostly reading the
-- events; the relay's process 16 %, mostly building them).
--
-- Rows written before this migration keep their `payload` (and no envelope); the relay still
-- builds their envelope as before. A row has one or the other.

ALTER TABLE outbox ADD COLUMN envelope text;
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE outbox ADD CONSTRAINT outbox_payload_or_envelope
    CHECK (payload IS NOT NULL OR envelope IS NOT NULL);

-- The claim of migration 0006, returning the envelope too (the function body is otherwise the
-- same; see 0006 for why it is written this way).
DROP FUNCTION outbox_claim(integer, integer, uuid[], integer, uuid[]);
CREATE FUNCTION outbox_claim(
    p_batch integer, p_namespace integer, p_exclude uuid[], p_in_flight_rows integer,
    p_release uuid[])
RETURNS TABLE (
    out_id bigint, out_event_id uuid, out_aggregate_id uuid, out_event_type text,
    out_payload text, out_correlation_id text, out_traceparent text, out_created_at timestamptz,
    out_envelope text
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
               o.correlation_id, o.traceparent, o.created_at, o.envelope
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
               NULL::timestamptz, NULL::text
        FROM unnest(claimed) c;
END
$$;
