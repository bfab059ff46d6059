-- One round trip per relay batch for release + claim + fetch (see src/outbox/relay.rs).
--
-- 1. Releases the advisory locks of the relay's previous, already marked batch.
-- 2. Claims the orders of the oldest pending rows (except p_exclude, the orders of the relay's
--    batch still in flight) with a session advisory lock each; orders other relays hold are
--    skipped.
-- 3. Returns the pending rows of the claimed orders by order and version. This query runs
--    after the locks were taken and, the function being VOLATILE, under a fresh snapshot: rows
--    another relay marked published before releasing an order are not returned again.
-- 4. Releases claimed orders that returned no row (all published meanwhile, or past the limit).
CREATE FUNCTION outbox_claim(p_batch integer, p_namespace integer, p_exclude uuid[], p_release uuid[])
RETURNS TABLE (
    out_id bigint, out_event_id uuid, out_aggregate_id uuid, out_event_type text,
    out_payload text, out_correlation_id text, out_traceparent text, out_created_at timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    claimed uuid[];
    kept uuid[] := '{}';
    last_aggregate uuid;
BEGIN
    PERFORM pg_advisory_unlock(p_namespace, hashtext(r::text)) FROM unnest(p_release) r;

    SELECT coalesce(array_agg(c.aggregate_id), '{}') INTO claimed
    FROM (
        SELECT DISTINCT oldest.aggregate_id
        FROM (
            SELECT o.aggregate_id FROM outbox o
            WHERE o.published_at IS NULL AND NOT (o.aggregate_id = ANY(p_exclude))
            ORDER BY o.id LIMIT p_batch
        ) oldest
    ) c
    WHERE pg_try_advisory_lock(p_namespace, hashtext(c.aggregate_id::text));

    IF cardinality(claimed) = 0 THEN
        RETURN;
    END IF;

    FOR out_id, out_event_id, out_aggregate_id, out_event_type, out_payload,
        out_correlation_id, out_traceparent, out_created_at IN
        SELECT o.id, o.event_id, o.aggregate_id, o.event_type, o.payload::text,
               o.correlation_id, o.traceparent, o.created_at
        FROM outbox o
        WHERE o.published_at IS NULL AND o.aggregate_id = ANY(claimed)
        ORDER BY o.aggregate_id, o.order_version
        LIMIT p_batch
    LOOP
        IF last_aggregate IS DISTINCT FROM out_aggregate_id THEN
            kept := kept || out_aggregate_id;
            last_aggregate := out_aggregate_id;
        END IF;
        RETURN NEXT;
    END LOOP;

    PERFORM pg_advisory_unlock(p_namespace, hashtext(c::text))
    FROM unnest(claimed) c WHERE NOT (c = ANY(kept));
END
$$;
