-- no-transaction
-- A customer's events in log order: the change feed and webhook delivery read a page of
-- one customer's events after a cursor, at the cost of the page however much of the log
-- belongs to other customers. Built CONCURRENTLY, so servers keep writing meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_by_customer ON events (customer_id, transaction_id, position);
