-- The lookup projection: one row per job (filterable columns + the whole view as a
-- document) and one row per status change. Written in the same transaction as the events.
CREATE TABLE job_summary
(
    job_id      text        PRIMARY KEY,
    customer_id bigint      NOT NULL,
    status      text        NOT NULL,
    type_id     bigint      NOT NULL,
    contact_id  bigint      NOT NULL,
    reference   text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint      NOT NULL,
    document    jsonb       NOT NULL
);

CREATE INDEX job_summary_by_created ON job_summary (customer_id, created_at, job_id);
CREATE INDEX job_summary_by_updated ON job_summary (customer_id, updated_at, job_id);

CREATE TABLE job_status_history
(
    job_id      text        NOT NULL,
    sequence    bigint      NOT NULL,
    status      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    comment     text,
    actor       text        NOT NULL,
    PRIMARY KEY (job_id, sequence)
);
