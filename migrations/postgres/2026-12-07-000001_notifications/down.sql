DROP TABLE expiry_notices;
DROP TABLE webhook_endpoints;
DROP INDEX events_tx_id;
ALTER TABLE events DROP COLUMN tx;
