-- Rotation and the searchable audit trail (lifecycle.md §1, §3).
-- `api_tokens.successor`: the token this one was rotated to (one per token,
-- ever: it stays set when the successor is deleted). `events.token_name`:
-- the token's name beside the JSON, so free-text search never parses JSON,
-- filled here for the events written before. The indexes serve the search's
-- first page (newest first) per filter.

ALTER TABLE api_tokens ADD COLUMN successor TEXT;
ALTER TABLE events ADD COLUMN token_name TEXT;
UPDATE events SET token_name = COALESCE(data, pre_data)::json->>'tokenName';

CREATE INDEX events_created_by_id ON events (created_by, id);
CREATE INDEX events_created_at_id ON events (created_at, id);
