-- Times are Unix nanoseconds (0 = unset) so both dialects share one codec.
CREATE TABLE identities (
    name       TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    groups_json TEXT NOT NULL DEFAULT '[]',
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE connections (
    name              TEXT PRIMARY KEY,
    type              TEXT NOT NULL,
    spec_json         TEXT NOT NULL,
    credential_source TEXT NOT NULL,
    credential_ref    TEXT NOT NULL DEFAULT '',
    credential_sealed BLOB,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    identity     TEXT NOT NULL REFERENCES identities(name) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_identity ON tokens(identity);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
