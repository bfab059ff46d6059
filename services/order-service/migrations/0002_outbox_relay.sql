-- The outbox relay's needs (owned by the outbox module, see src/outbox.rs).
--
-- order_version: the order's version after the change. Events of one order are published in
-- this order; it is commit order by construction (a change locks the order row and bumps the
-- version), unlike the bigserial id, which is taken before commit and can commit out of order.
-- One event per order version: a change can never produce two events, nor two changes one.
ALTER TABLE outbox ADD COLUMN order_version bigint;
UPDATE outbox SET order_version = (payload ->> 'version')::bigint WHERE order_version IS NULL;
ALTER TABLE outbox ALTER COLUMN order_version SET NOT NULL;
CREATE UNIQUE INDEX outbox_order_version_key ON outbox (aggregate_id, order_version);

-- Relays look for work by the oldest pending rows, then fetch the pending rows of the orders
-- they locked in version order.
DROP INDEX IF EXISTS outbox_pending_idx;
CREATE INDEX outbox_pending_id_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_pending_order_idx ON outbox (aggregate_id, order_version) WHERE published_at IS NULL;

-- Wake idle relays as soon as an event commits (NOTIFY is delivered at commit, once per
-- transaction for the same payload). Relays also poll, so a lost notification only delays.
CREATE FUNCTION outbox_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_pending', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify_pending AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_pending();
