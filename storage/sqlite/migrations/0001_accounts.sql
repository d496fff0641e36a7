-- Accounts: one row per user of a virtual host. password_hash is an opaque
-- PHC-style string produced by the auth package, or '' for accounts that only
-- log in with tokens. created_at is Unix seconds. host and username are stored
-- as the caller prepared them and compared byte for byte.
CREATE TABLE accounts (
	host          TEXT    NOT NULL,
	username      TEXT    NOT NULL,
	password_hash TEXT    NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	PRIMARY KEY (host, username)
) STRICT, WITHOUT ROWID;
