-- outbox_claim filters by arrays of up to a batch of order ids (the orders still in flight,
-- the orders claimed). With a cached generic plan those filters compare every row with every
-- array element (12 ms per claim for 1 000 orders, measured); planned for the actual values,
-- PostgreSQL hashes the arrays (1.3 ms). Re-planning each call costs far less than that.
ALTER FUNCTION outbox_claim(integer, integer, uuid[], uuid[]) SET plan_cache_mode = force_custom_plan;
