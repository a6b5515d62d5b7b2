-- no-transaction
-- Every filter of a job list is served by an index within the customer (issue 13); this
-- one serves the contact filter. Built CONCURRENTLY (outside a transaction, hence the line
-- above), so servers still running keep writing while it is built.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_summary_by_contact ON job_summary (customer_id, contact_id);
