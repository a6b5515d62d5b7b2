-- A customer column on the events (issue 14), so a customer's part of the log — the change
-- feed, webhook delivery, `jobs-admin export --customer` — is read through an index instead
-- of by filtering every event's metadata. Adding a nullable column is instant (no rewrite,
-- a moment's lock); new events get their customer from a trigger, whoever inserts them;
-- events already stored are filled by the next migration, in batches, while servers keep
-- writing. The value is the metadata's `customerId` as written (text).
-- The ALTER needs the table's lock for a moment; queued behind a long transaction it would
-- hold every writer back meanwhile, so it gives up instead (the migration then fails, and
-- runs again at the next start).
SET LOCAL lock_timeout = '10s';
ALTER TABLE events ADD COLUMN customer_id text;

CREATE FUNCTION events_customer_id() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    NEW.customer_id := NEW.metadata ->> 'customerId';
    RETURN NEW;
END
$$;

CREATE TRIGGER events_customer_id
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_customer_id();
