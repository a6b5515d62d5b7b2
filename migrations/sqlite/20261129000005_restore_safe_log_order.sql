-- Restore safety needs nothing on SQLite: its log is in rowid order, which a copy of the
-- file keeps. This migration exists so both stores count the same migrations.
SELECT 1;
