-- Relays poll instead of being woken by NOTIFY. Measured on this project's 2-core machine
-- (pgbench, 32 clients, one-row insert transactions): 10 000 commits/s without the trigger,
-- 1 600 with it, because NOTIFY serializes committing transactions on a global lock held
-- through the commit's WAL flush, which defeats group commit. An idle relay polls an empty
-- partial index instead (microseconds), backing off while there is no work.
DROP TRIGGER IF EXISTS outbox_notify_pending ON outbox;
DROP FUNCTION IF EXISTS outbox_notify_pending();
