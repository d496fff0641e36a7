-- Push registrations (XEP-0357): a user's app server (service, a JID) and
-- node, with the publish-options form the client gave as XML (empty when
-- none). A user has a few, bounded by the module; enabling the same
-- service and node again replaces the options. created is Unix seconds.
CREATE TABLE push_registrations (
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	service   TEXT    NOT NULL,
	node      TEXT    NOT NULL,
	options   BLOB    NOT NULL,
	created   INTEGER NOT NULL,
	PRIMARY KEY (host, username, service, node)
) STRICT, WITHOUT ROWID;
