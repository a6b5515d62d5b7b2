-- A generated column needs no filling on SQLite (PostgreSQL's stored column does). This
-- migration exists so both stores count the same migrations.
SELECT 1;
