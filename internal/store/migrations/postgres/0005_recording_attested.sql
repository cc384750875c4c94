-- attested_seq is the audit event that attested the chunk, set once that
-- event is appended. A chunk stored just before a crash has none; the next
-- start attests it, marked as attested late. The audit log, not this
-- column, is what verification trusts.
ALTER TABLE recording_chunks ADD COLUMN attested_seq BIGINT;
