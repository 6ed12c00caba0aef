-- The acting token's identifier beside its name (contract §5,
-- `createdByTokenId`): names are not unique (every bootstrap token is named
-- `admin`). NULL for the command line, the system, and events written before.
ALTER TABLE events ADD COLUMN created_by_token_id TEXT;
