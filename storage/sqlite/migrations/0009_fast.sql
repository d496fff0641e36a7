-- XEP-0484 FAST tokens: never the token, only the SHA-256 of the message a
-- login with it sends (id) and the server's answer (responder). A token is
-- bound to a user, a client (agent, the SASL2 user-agent id) and a
-- mechanism. expires is Unix seconds, created Unix nanoseconds (it orders
-- a client's tokens); count is the highest replay counter seen (0 for
-- none).
CREATE TABLE fast_tokens (
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	agent     TEXT    NOT NULL,
	id        BLOB    NOT NULL,
	mechanism TEXT    NOT NULL,
	responder BLOB    NOT NULL,
	expires   INTEGER NOT NULL,
	used      INTEGER NOT NULL DEFAULT 0,
	count     INTEGER NOT NULL DEFAULT 0,
	created   INTEGER NOT NULL,
	PRIMARY KEY (host, username, agent, id)
) STRICT, WITHOUT ROWID;
