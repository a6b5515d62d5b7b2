-- no-transaction
-- Fills the customer column of the events stored before it existed, 10 000 events a
-- transaction (by position, through its unique index), so no transaction holds many rows
-- or runs long, and writers carry on meanwhile (they only insert; the trigger fills theirs).
DO
$$
DECLARE
    highest bigint := (SELECT coalesce(max(position), 0) FROM events);
    low     bigint := 0;
BEGIN
    WHILE low < highest LOOP
        UPDATE events SET customer_id = metadata ->> 'customerId'
        WHERE position > low AND position <= low + 10000 AND customer_id IS NULL;
        COMMIT;
        low := low + 10000;
    END LOOP;
END
$$;
