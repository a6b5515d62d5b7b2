-- A customer column on the events (issue 14), so a customer's part of the log — the change
-- feed, webhook delivery, `jobs-admin export --customer` — is read through an index instead
-- of by filtering every event's metadata. On SQLite it is a virtual generated column: it
-- costs nothing to add, holds for every event however it was inserted, and is stored only
-- in the index the migration after next builds. The value is the metadata's `customerId`
-- as written (text); NULL for metadata that is not JSON (`->>` would fail on it, and with
-- it every insert of such an event and the index's build).
ALTER TABLE events ADD COLUMN customer_id text
    GENERATED ALWAYS AS (CASE WHEN json_valid(metadata) THEN metadata ->> 'customerId' END) VIRTUAL;
