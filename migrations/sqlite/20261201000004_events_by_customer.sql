-- A customer's events in log order (rowid order): see the PostgreSQL migration.
CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id, position);
