-- Session recordings: each session's timed stream, in compressed chunks.
-- A chunk's SHA-256 is in the audit chain (a "recording" event written by
-- the same node), so a chunk changed here no longer matches its event.
CREATE TABLE recording_chunks (
    session TEXT NOT NULL,
    chunk   BIGINT NOT NULL,
    node    TEXT NOT NULL,
    created TEXT NOT NULL,
    body    BYTEA NOT NULL,
    PRIMARY KEY (session, chunk)
);
