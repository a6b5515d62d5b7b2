-- Every filter of a job list is served by an index within the customer (issue 13); this
-- one serves the reference filter.
CREATE INDEX IF NOT EXISTS job_summary_by_reference ON job_summary (customer_id, reference) WHERE reference IS NOT NULL;
