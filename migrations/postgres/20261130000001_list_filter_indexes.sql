-- Every filter of a job list is served by an index, within the customer (issue 13): a
-- filter no index serves makes a list read every job of the customer. Status comes with the
-- default order, so "my open jobs, oldest first" reads only what it returns.
CREATE INDEX job_summary_by_status ON job_summary (customer_id, status, created_at, job_id);
CREATE INDEX job_summary_by_type ON job_summary (customer_id, type_id);
CREATE INDEX job_summary_by_contact ON job_summary (customer_id, contact_id);
CREATE INDEX job_summary_by_reference ON job_summary (customer_id, reference)
    WHERE reference IS NOT NULL;
