-- Every filter of a job list is served by an index within the customer (issue 13); this
-- one serves the type filter.
CREATE INDEX IF NOT EXISTS job_summary_by_type ON job_summary (customer_id, type_id);
