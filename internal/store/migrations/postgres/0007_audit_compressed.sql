-- Audit runs are stored compressed (zstd) in zbody, with body left empty:
-- a run of JSON events shrinks several times over, and the store writes that
-- much less on the data path. Runs written before keep their body; readers
-- accept both. The events' hashes are over the decompressed bodies, so
-- compression changes nothing that verify checks.
ALTER TABLE audit_events ADD COLUMN zbody BYTEA;
