-- The event store. Columns from aggregate_type to metadata are the ones sqlite-es reads;
-- `position` (the rowid: SQLite has one writer, so rowid order is commit order) and
-- `recorded_at` are ours.
CREATE TABLE events
(
    position       integer PRIMARY KEY AUTOINCREMENT,
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       integer CHECK (sequence >= 0) NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        text                          NOT NULL,
    metadata       text                          NOT NULL,
    recorded_at    text                          NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    UNIQUE (aggregate_type, aggregate_id, sequence)
) STRICT;

-- Unused while the store is a pure event store; kept so sqlite-es finds what it expects.
CREATE TABLE snapshots
(
    aggregate_type   text                                  NOT NULL,
    aggregate_id     text                                  NOT NULL,
    last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
    payload          text                                  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;
