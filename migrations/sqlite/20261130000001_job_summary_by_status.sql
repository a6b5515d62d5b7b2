-- Every filter of a job list is served by an index within the customer (issue 13); this
-- one serves the status filter.
CREATE INDEX IF NOT EXISTS job_summary_by_status ON job_summary (customer_id, status, created_at, job_id);
