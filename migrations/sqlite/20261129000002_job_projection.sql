-- The lookup projection: one row per job (filterable columns + the whole view as a
-- document) and one row per status change. Written in the same transaction as the events.
-- Timestamps are RFC 3339 text in UTC, which sorts in time order.
CREATE TABLE job_summary
(
    job_id      text    PRIMARY KEY,
    customer_id integer NOT NULL,
    status      text    NOT NULL,
    type_id     integer NOT NULL,
    contact_id  integer NOT NULL,
    reference   text,
    created_at  text    NOT NULL,
    updated_at  text    NOT NULL,
    version     integer NOT NULL,
    document    text    NOT NULL
) STRICT;

CREATE INDEX job_summary_by_created ON job_summary (customer_id, created_at, job_id);
CREATE INDEX job_summary_by_updated ON job_summary (customer_id, updated_at, job_id);

CREATE TABLE job_status_history
(
    job_id      text    NOT NULL,
    sequence    integer NOT NULL,
    status      text    NOT NULL,
    occurred_at text    NOT NULL,
    comment     text,
    actor       text    NOT NULL,
    PRIMARY KEY (job_id, sequence)
) STRICT;
