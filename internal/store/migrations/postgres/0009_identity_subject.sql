-- A person who signs in through OIDC is bound to the provider's account on
-- first sign-on: "issuer subject". Later sign-ons must come from the same
-- account, so an e-mail address reassigned at the provider cannot take
-- over the identity. '' for unbound (and for service identities).
ALTER TABLE identities ADD COLUMN oidc_subject TEXT NOT NULL DEFAULT '';
