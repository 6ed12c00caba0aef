DROP INDEX events_selector_id;
ALTER TABLE events DROP COLUMN format;
ALTER TABLE events DROP COLUMN selector;
