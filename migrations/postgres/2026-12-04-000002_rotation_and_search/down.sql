DROP INDEX events_created_at_id;
DROP INDEX events_created_by_id;
ALTER TABLE events DROP COLUMN token_name;
ALTER TABLE api_tokens DROP COLUMN successor;
