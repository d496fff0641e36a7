-- The message archive (XEP-0313) with two b-tree writes fewer per
-- message: seq is the rowid without AUTOINCREMENT (no sqlite_sequence
-- row to write with every insert), and there is no index on stored.
--
-- seq still orders each archive: SQLite gives a new row the largest seq
-- of the table plus one, so a message is added after every message the
-- table holds; a seq may come back once the newest rows of the table are
-- gone, which nothing minds (nothing compares seqs across archives or
-- with rows that are gone; the archive UIDs clients see are the ids).
-- Expiry deletes the oldest rows by seq whose stored is before the
-- cut-off (stored is set when a message is queued, so it grows with seq
-- nearly always): see expireArchive.
CREATE TABLE archive_lean (
	seq       INTEGER PRIMARY KEY,
	host      TEXT    NOT NULL,
	username  TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	with_jid  TEXT    NOT NULL,
	with_bare TEXT    NOT NULL,
	stored    INTEGER NOT NULL,
	stanza    BLOB    NOT NULL
) STRICT;
INSERT INTO archive_lean (seq, host, username, id, with_jid, with_bare, stored, stanza)
	SELECT seq, host, username, id, with_jid, with_bare, stored, stanza FROM archive ORDER BY seq;
DROP TABLE archive;
ALTER TABLE archive_lean RENAME TO archive;
CREATE UNIQUE INDEX archive_id ON archive (host, username, id);
CREATE INDEX archive_user ON archive (host, username, seq);
CREATE INDEX archive_with ON archive (host, username, with_bare, seq);
