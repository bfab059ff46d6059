-- A correlation id is for tracing only: it never deduplicates (ARCHITECTURE.md, "Correlation").
--
-- Before, orders.correlation_id was unique, so a second, different order sent with the same
-- X-Correlation-ID was refused (or answered with the first order): any caller that reused an id
-- for tracing a whole session lost orders, and anyone who knew another caller's id could make
-- that caller's order be returned to them. Retries are deduplicated by the Idempotency-Key (and
-- by a reserved order_number) instead. The index stays, non-unique, for look-ups by id.
DROP INDEX IF EXISTS orders_correlation_id_key;
CREATE INDEX IF NOT EXISTS orders_correlation_id_idx ON orders (correlation_id);
