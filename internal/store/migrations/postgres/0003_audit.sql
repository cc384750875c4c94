-- The audit log: each gateway node appends its own hash chain. body is the
-- event's canonical JSON exactly as hashed; nothing else is authoritative.
CREATE TABLE audit_events (
    node TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);

-- Signed checkpoints over each node's Merkle tree (RFC 6962). frontier is
-- the compact range of the tree at size, so a restart resumes without
-- rereading the log.
CREATE TABLE audit_checkpoints (
    node     TEXT NOT NULL,
    size     BIGINT NOT NULL,
    note     TEXT NOT NULL,
    frontier BYTEA NOT NULL,
    PRIMARY KEY (node, size)
);
