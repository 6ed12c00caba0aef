ALTER TABLE events DROP COLUMN format;
ALTER TABLE events DROP COLUMN selector;
