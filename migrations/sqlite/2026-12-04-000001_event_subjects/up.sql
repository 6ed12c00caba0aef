-- Every event names its token in a column of its own (`selector`), filled
-- here from the JSON for events written before, so readers such as the
-- change feed never parse that JSON; `format` says which format the JSON is
-- in (1: the only one there was). SQLite cannot add a NOT NULL column without
-- a default, so the table is rebuilt, keeping its AUTOINCREMENT position:
-- event ids must never be reused.

CREATE TABLE events_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    event_type TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    data       TEXT,
    pre_data   TEXT,
    selector   TEXT NOT NULL,
    format     INTEGER NOT NULL DEFAULT 1
);

INSERT INTO events_new (id, event_type, created_by, created_at, data, pre_data, selector, format)
SELECT id, event_type, created_by, created_at, data, pre_data,
       json_extract(COALESCE(data, pre_data), '$.secret'), 1
FROM events
ORDER BY id;

DELETE FROM sqlite_sequence WHERE name = 'events_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events_new', seq FROM sqlite_sequence WHERE name = 'events';

DROP INDEX events_event_type_id;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

CREATE INDEX events_event_type_id ON events (event_type, id);
