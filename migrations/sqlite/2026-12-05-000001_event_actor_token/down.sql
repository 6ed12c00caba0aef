ALTER TABLE events DROP COLUMN created_by_token_id;
