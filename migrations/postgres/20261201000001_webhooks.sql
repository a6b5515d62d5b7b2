-- Webhook subscriptions (issue 14): a customer's receivers of its events. Not
-- event-sourced: delivery state changes with every event delivered. Times are Unix
-- milliseconds of the database's clock, as for idempotency keys, so both stores compare
-- them as numbers and servers with skewed clocks still agree on leases.
--
-- - `event_types`: a JSON array of event type names; empty means every type.
-- - `status`: `active`, `paused` (by the customer), or `failing` (deliveries of one event
--   failed for the whole retry window; nothing more is sent until the customer resumes).
-- - `secret`, `previous_secret`: the signing secrets (Standard Webhooks' `whsec_…`). They
--   must be kept in the clear to sign with. After a rotation the previous one also signs
--   until `previous_secret_until_ms`, so a receiver can switch over without a gap.
-- - The checkpoint is the log cursor just after the last event handled (delivered, or not
--   of a subscribed type); delivery resumes after it.
-- - `attempts`, `failing_since_ms`, `next_attempt_ms`: the failed attempts at the event
--   after the checkpoint, when the first of them was, and when to try again.
-- - `lease_owner`, `lease_until_ms`: the server delivering, and until when; another server
--   takes over once the lease has run out.
CREATE TABLE webhook_subscriptions
(
    subscription_id          text    PRIMARY KEY,
    customer_id              bigint  NOT NULL,
    url                      text    NOT NULL,
    event_types              jsonb   NOT NULL,
    status                   text    NOT NULL CHECK (status IN ('active', 'paused', 'failing')),
    secret                   text    NOT NULL,
    previous_secret          text,
    previous_secret_until_ms bigint,
    created_at_ms            bigint  NOT NULL,
    updated_at_ms            bigint  NOT NULL,
    checkpoint_transaction   bigint  NOT NULL,
    checkpoint_position      bigint  NOT NULL,
    delivered                bigint  NOT NULL DEFAULT 0,
    attempts                 integer NOT NULL DEFAULT 0,
    failing_since_ms         bigint,
    next_attempt_ms          bigint,
    lease_owner              text,
    lease_until_ms           bigint
);

CREATE INDEX webhook_subscriptions_by_customer ON webhook_subscriptions (customer_id, created_at_ms);

-- Failed delivery attempts, newest kept (the deliverer prunes each subscription's to 100).
CREATE TABLE webhook_failed_deliveries
(
    attempt_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id text    NOT NULL,
    event_id        text    NOT NULL,
    job_id          text    NOT NULL,
    sequence        bigint  NOT NULL,
    event_type      text    NOT NULL,
    attempt         integer NOT NULL,
    attempted_at_ms bigint  NOT NULL,
    response_status integer,
    error           text    NOT NULL
);

CREATE INDEX webhook_failed_deliveries_by_subscription
    ON webhook_failed_deliveries (subscription_id, attempt_id);
