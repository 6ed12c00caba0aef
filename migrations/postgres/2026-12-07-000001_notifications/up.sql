-- Lifecycle notifications (lifecycle.md §4).
--
-- `events.tx`: the writing transaction's id, for the webhook outbox's
-- per-endpoint cursor. Sequence values are not assigned in commit order (a
-- transaction can take id 10, another id 11 and commit first), so a cursor
-- over ids alone could step past an event that commits later. The outbox
-- reads in (tx, id) order and only events of transactions older than every
-- transaction still running (`pg_snapshot_xmin`), which can no longer gain
-- rows. Events written before this migration keep NULL: they precede every
-- endpoint's registration. (No rewrite: the default applies to new rows.)
ALTER TABLE events ADD COLUMN tx BIGINT;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_tx_id ON events (tx, id) WHERE tx IS NOT NULL;

-- One row per configured webhook endpoint: its cursor in the event log
-- (every event after it is still to be delivered or skipped), its retry
-- state, what it sent and gave up, and which instance holds it now.
CREATE TABLE webhook_endpoints (
    url             TEXT PRIMARY KEY NOT NULL,
    cursor_tx       BIGINT NOT NULL,
    cursor_id       BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    last_error      TEXT,
    last_error_at   TIMESTAMPTZ,
    sent            BIGINT NOT NULL DEFAULT 0,
    given_up        BIGINT NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    registered_at   TIMESTAMPTZ NOT NULL
);

-- Expiry notices recorded: the key makes each (token, threshold, expiry)
-- happen once, however many instances run and however often they restart.
CREATE TABLE expiry_notices (
    selector   TEXT NOT NULL,
    threshold  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (selector, threshold, expires_at)
);
