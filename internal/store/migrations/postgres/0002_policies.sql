-- Policies: the applied document as JSON. Compiled (CEL) by the gateway
-- when it loads them, never by the store.
CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    spec_json  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
