-- Reviews: approvals of one command (one-shot) or of access for a time
-- window (a grant). The review itself is a JSON document owned by package
-- review; the columns beside it are what lookups filter on. version makes
-- every change a compare-and-swap, so two approvers (or two gateway nodes)
-- deciding at once cannot lose a vote.
CREATE TABLE reviews (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    requester  TEXT NOT NULL,
    connection TEXT NOT NULL,
    created    BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX reviews_state ON reviews (state, created);
CREATE INDEX reviews_requester ON reviews (requester, connection, state);
