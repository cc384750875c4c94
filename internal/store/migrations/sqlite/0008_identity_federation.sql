-- A service identity may trust an external issuer's tokens (workload-identity
-- federation): the resource.Federation document, as JSON; '' for none.
ALTER TABLE identities ADD COLUMN federation_json TEXT NOT NULL DEFAULT '';
