-- Restore safety. The global log is read in (transaction_id, position) order, and an event
-- is final once its transaction is older than every running one. Transaction ids are the
-- cluster's own: after a dump is restored into another cluster, the stored ids may lie
-- ahead of the ids the new cluster hands out, so new events would sort before restored
-- ones (and restored ones would never count as final). So events record the cluster's id
-- plus an offset kept here, which is 0 until `jobs-admin repair-log` raises it past the
-- restored ids; the horizon and the log's end are shifted by the same offset.
CREATE TABLE log_clock
(
    single_row         boolean PRIMARY KEY DEFAULT true CHECK (single_row),
    transaction_offset bigint  NOT NULL DEFAULT 0 CHECK (transaction_offset >= 0)
);
INSERT INTO log_clock DEFAULT VALUES;

CREATE FUNCTION log_transaction_offset() RETURNS bigint
    LANGUAGE sql STABLE AS 'SELECT transaction_offset FROM log_clock';

-- The id an event of the current transaction records.
CREATE FUNCTION log_transaction_id() RETURNS xid8
    LANGUAGE sql VOLATILE
    AS 'SELECT (pg_current_xact_id()::text::bigint + log_transaction_offset())::text::xid8';

-- Events with ids below this are final: their transactions are older than every running one.
CREATE FUNCTION log_horizon() RETURNS xid8
    LANGUAGE sql STABLE
    AS 'SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + log_transaction_offset())::text::xid8';

-- Transactions that begin from now on record ids from this one on.
CREATE FUNCTION log_end() RETURNS bigint
    LANGUAGE sql STABLE
    AS 'SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint + log_transaction_offset()';

ALTER TABLE events ALTER COLUMN transaction_id SET DEFAULT log_transaction_id();
