-- The audit log: each gateway node appends its own hash chain. A row holds
-- a run of consecutive events (seq to last_seq), their canonical JSON
-- bodies exactly as hashed, one per line; nothing else is authoritative.
-- Runs keep the store's cost per event low enough for the data path.
CREATE TABLE audit_events (
    node     TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX audit_events_last ON audit_events(node, last_seq);

-- Signed checkpoints over each node's Merkle tree (RFC 6962). frontier is
-- the compact range of the tree at size, so a restart resumes without
-- rereading the log.
CREATE TABLE audit_checkpoints (
    node     TEXT NOT NULL,
    size     BIGINT NOT NULL,
    note     TEXT NOT NULL,
    frontier BLOB NOT NULL,
    PRIMARY KEY (node, size)
);
