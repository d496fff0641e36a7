-- Personal eventing (XEP-0163): the nodes of each user's PEP service with
-- their configuration, and the items published to them. access is the
-- access model (open, presence, whitelist), send_last the
-- send_last_published_item option; persist is 0 or 1.
CREATE TABLE pep_nodes (
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	node      TEXT    NOT NULL,
	access    TEXT    NOT NULL,
	max_items INTEGER NOT NULL,
	persist   INTEGER NOT NULL,
	send_last TEXT    NOT NULL,
	PRIMARY KEY (host, username, node)
) STRICT, WITHOUT ROWID;

-- seq orders the items of a node by publication: republishing an item id
-- gives it a new seq. published is Unix nanoseconds; payload one element
-- as XML.
CREATE TABLE pep_items (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	node      TEXT    NOT NULL,
	item_id   TEXT    NOT NULL,
	published INTEGER NOT NULL,
	payload   BLOB    NOT NULL
) STRICT;
CREATE UNIQUE INDEX pep_items_id ON pep_items (host, username, node, item_id);
CREATE INDEX pep_items_node ON pep_items (host, username, node, seq);
