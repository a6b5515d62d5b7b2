-- Idempotency keys (RFC draft "The Idempotency-Key HTTP Header Field"): one row per key a
-- client sent for a customer. While the first request with the key runs, the row is a
-- claim (claim_token, claimed_until_ms: a lease another server may take over once it has
-- run out); the request's answer is written into it in the transaction of its events, so an
-- acknowledged write and its key commit together. Times are Unix milliseconds, so both
-- stores compare them as numbers. Rows older than the retention (24 h by default) are purged.
CREATE TABLE idempotency_keys
(
    customer_id      integer NOT NULL,
    client_id        text    NOT NULL,
    idempotency_key  text    NOT NULL,
    -- SHA-256 of the request: method, path and canonical body.
    fingerprint      text    NOT NULL,
    created_at_ms    integer NOT NULL,
    claim_token      text,
    claimed_until_ms integer,
    -- The answer, once there is one: status, the headers to repeat (JSON [name, value]
    -- pairs) and the body.
    status           integer,
    headers          text,
    body             text,
    PRIMARY KEY (customer_id, client_id, idempotency_key)
) STRICT;

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms);
