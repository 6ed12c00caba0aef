-- Lifecycle notifications (lifecycle.md §4).
--
-- `events.tx`: where an event stands in commit order, for the webhook
-- outbox's per-endpoint cursor. On SQLite one writer assigns event ids in
-- commit order, so the id alone is the position and `tx` stays NULL; the
-- partial index then holds no rows and costs a write nothing. (PostgreSQL
-- fills it: its ids are not in commit order.)
ALTER TABLE events ADD COLUMN tx BIGINT;
CREATE INDEX events_tx_id ON events (tx, id) WHERE tx IS NOT NULL;

-- One row per configured webhook endpoint: its cursor in the event log
-- (every event after it is still to be delivered or skipped), its retry
-- state, what it sent and gave up, and which instance holds it now.
CREATE TABLE webhook_endpoints (
    url             TEXT PRIMARY KEY NOT NULL,
    cursor_tx       BIGINT NOT NULL,
    cursor_id       BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    last_error      TEXT,
    last_error_at   TIMESTAMP,
    sent            BIGINT NOT NULL DEFAULT 0,
    given_up        BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     TIMESTAMP,
    registered_at   TIMESTAMP NOT NULL
);

-- Expiry notices recorded: the key makes each (token, threshold, expiry)
-- happen once, however many instances run and however often they restart.
CREATE TABLE expiry_notices (
    selector   TEXT NOT NULL,
    threshold  TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (selector, threshold, expires_at)
);
