-- Account deletions (`ottr user del`, which may run in another process than
-- the server): the deletion removes the account's rows and downgrades the
-- entries other users have for it in the same transaction, and records it
-- here for a running server, which polls this table to end the account's
-- sessions and tell its contacts. seq orders the deletions and is never
-- reused; deleted_at is Unix seconds. done is 1 once a server has ended
-- the account's sessions and removed what they wrote meanwhile (or no
-- server runs): until then, for a short while, the account is not created
-- again. A deletion prunes the records older than a day.
CREATE TABLE account_deletions (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	host       TEXT    NOT NULL,
	username   TEXT    NOT NULL,
	deleted_at INTEGER NOT NULL,
	done       INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX account_deletions_by_account ON account_deletions (host, username);

-- One row per user whose roster held the deleted account: their entry's
-- subscription state before the deletion (the booleans are 0 or 1) and
-- their roster version after it.
CREATE TABLE account_deletion_contacts (
	seq         INTEGER NOT NULL REFERENCES account_deletions (seq) ON DELETE CASCADE,
	host        TEXT    NOT NULL,
	username    TEXT    NOT NULL,
	sub_to      INTEGER NOT NULL,
	sub_from    INTEGER NOT NULL,
	pending_out INTEGER NOT NULL,
	pending_in  INTEGER NOT NULL,
	in_roster   INTEGER NOT NULL,
	version     INTEGER NOT NULL,
	PRIMARY KEY (seq, host, username)
) STRICT, WITHOUT ROWID;
