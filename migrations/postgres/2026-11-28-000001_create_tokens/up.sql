-- Reference data, tokens (selector + SHA-256 verifier, never the plaintext)
-- and the audit trail. The same tables as migrations/sqlite, in PostgreSQL types.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE environments (
    name       TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    sort_order INTEGER NOT NULL,
    enabled    BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    -- Insertion order: the tie-breaker for tokens created in the same millisecond.
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY NOT NULL,
    selector     TEXT NOT NULL UNIQUE,
    verifier     BYTEA NOT NULL UNIQUE,
    token_name   TEXT NOT NULL,
    token_type   TEXT NOT NULL CHECK (token_type IN ('client', 'backend', 'frontend', 'admin')),
    all_projects BOOLEAN NOT NULL,
    -- NULL means every environment, which only admin tokens have.
    environment  TEXT REFERENCES environments (name),
    expires_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    seen_at      TIMESTAMPTZ,
    revision     BIGINT NOT NULL,
    CHECK ((token_type = 'admin') = (environment IS NULL)),
    CHECK (octet_length(verifier) = 32)
);

CREATE INDEX api_tokens_token_name ON api_tokens (token_name);
CREATE INDEX api_tokens_created_at ON api_tokens (created_at);

CREATE TABLE api_token_projects (
    selector TEXT NOT NULL REFERENCES api_tokens (selector) ON DELETE CASCADE,
    project  TEXT NOT NULL REFERENCES projects (id),
    PRIMARY KEY (selector, project)
);

CREATE INDEX api_token_projects_project ON api_token_projects (project);

CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    data       TEXT,
    pre_data   TEXT
);

CREATE INDEX events_event_type_id ON events (event_type, id);
