-- IM state (roster, offline messages, per-user XML, block lists, last
-- activity). Rows belong to a user by (host, username), stored as the caller
-- prepared them and compared byte for byte. There are deliberately no foreign
-- keys to accounts: a token user may act (and be written to) before the
-- account row is ensured, and these rows are removed with the account by the
-- code that removes it.

-- One row per contact. groups is a JSON array of strings in the order the
-- user gave them. The booleans are 0 or 1. in_roster = 0 marks an entry that
-- only remembers a pending-in request or a pre-approval.
CREATE TABLE roster_items (
	host              TEXT    NOT NULL,
	username          TEXT    NOT NULL,
	contact           TEXT    NOT NULL,
	name              TEXT    NOT NULL DEFAULT '',
	groups            TEXT    NOT NULL DEFAULT '[]',
	sub_to            INTEGER NOT NULL DEFAULT 0,
	sub_from          INTEGER NOT NULL DEFAULT 0,
	pending_out       INTEGER NOT NULL DEFAULT 0,
	pending_in        INTEGER NOT NULL DEFAULT 0,
	pending_in_stanza BLOB,
	approved          INTEGER NOT NULL DEFAULT 0,
	in_roster         INTEGER NOT NULL DEFAULT 1,
	PRIMARY KEY (host, username, contact)
) STRICT, WITHOUT ROWID;

-- The roster version (RFC 6121 section 2.6), bumped by one with every change
-- to the user's roster_items; a user without a row has version 0.
CREATE TABLE roster_versions (
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	version  INTEGER NOT NULL,
	PRIMARY KEY (host, username)
) STRICT, WITHOUT ROWID;

-- Offline messages. AUTOINCREMENT so that an id is never reused, even after
-- the newest message is deleted: a delivery that deletes by id can never
-- remove a message stored after it read the queue. stored is Unix
-- nanoseconds.
CREATE TABLE offline_messages (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	stanza   BLOB    NOT NULL,
	stored   INTEGER NOT NULL
) STRICT;
CREATE INDEX offline_messages_user ON offline_messages (host, username, id);

-- Small per-user XML documents by key ("vcard", "private:" + namespace).
CREATE TABLE user_xml (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	key      TEXT NOT NULL,
	doc      BLOB NOT NULL,
	PRIMARY KEY (host, username, key)
) STRICT, WITHOUT ROWID;

-- Block lists (XEP-0191): one row per blocked JID.
CREATE TABLE block_list (
	host     TEXT NOT NULL,
	username TEXT NOT NULL,
	jid      TEXT NOT NULL,
	PRIMARY KEY (host, username, jid)
) STRICT, WITHOUT ROWID;

-- Last logout time (Unix nanoseconds) and status text (XEP-0012).
CREATE TABLE last_activity (
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	at       INTEGER NOT NULL,
	status   TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (host, username)
) STRICT, WITHOUT ROWID;
