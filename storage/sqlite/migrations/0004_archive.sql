-- The message archive (XEP-0313). seq orders one user's archive and is
-- never reused (AUTOINCREMENT); id is the archive UID the user's clients
-- see, chosen by the server at random, unique within the user's archive.
-- with_jid is the other party as the message named it, with_bare its bare
-- JID. stored is Unix nanoseconds.
CREATE TABLE archive (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	with_jid  TEXT    NOT NULL,
	with_bare TEXT    NOT NULL,
	stored    INTEGER NOT NULL,
	stanza    BLOB    NOT NULL
) STRICT;
CREATE UNIQUE INDEX archive_id ON archive (host, username, id);
CREATE INDEX archive_user ON archive (host, username, seq);
CREATE INDEX archive_with ON archive (host, username, with_bare, seq);
-- Expiry deletes the oldest messages of every user, a few per write.
CREATE INDEX archive_stored ON archive (stored);

-- How many messages, and bytes of stanzas, each user's archive holds:
-- kept with every insert and delete, so that the quota costs no scan.
CREATE TABLE archive_usage (
	host     TEXT    NOT NULL,
	username TEXT    NOT NULL,
	messages INTEGER NOT NULL,
	bytes    INTEGER NOT NULL,
	PRIMARY KEY (host, username)
) STRICT, WITHOUT ROWID;

-- Archiving preferences (XEP-0441): the default mode ('always', 'never'
-- or 'roster') and JSON arrays of the JIDs always and never archived.
CREATE TABLE archive_prefs (
	host         TEXT NOT NULL,
	username     TEXT NOT NULL,
	default_mode TEXT NOT NULL,
	always       TEXT NOT NULL DEFAULT '[]',
	never        TEXT NOT NULL DEFAULT '[]',
	PRIMARY KEY (host, username)
) STRICT, WITHOUT ROWID;
