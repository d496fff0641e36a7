-- Tokens already used (X-TOKEN), so that a token is refused the second time
-- after a restart too. claim is the auth package's 16-byte key of one token
-- of one JID (a hash of the JID, the OTP and the nonce: no credential and no
-- username in clear); expires is the Unix second from which the token can no
-- longer verify, after which the row is pruned.
CREATE TABLE token_claims (
	claim   BLOB    NOT NULL PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX token_claims_expires ON token_claims (expires);
