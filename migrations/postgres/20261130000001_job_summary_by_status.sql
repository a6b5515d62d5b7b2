-- no-transaction
-- Every filter of a job list is served by an index within the customer (issue 13); this
-- one serves the status filter. Built CONCURRENTLY (outside a transaction, hence the line
-- above), so servers still running keep writing while it is built.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_summary_by_status ON job_summary (customer_id, status, created_at, job_id);
