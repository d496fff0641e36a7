-- HTTP upload slots and files (XEP-0363). id is the slot's random id,
-- also the file's name in data_dir/upload/files. state: 0 pending (the
-- PUT may start until expires), 1 writing (a PUT is writing the file),
-- 2 done (served), 3 deleted (the owner's account was deleted: the file
-- is removed from disk, then the row). created, expires and uploaded are
-- Unix seconds (uploaded 0 until done). A user's rows are bounded by the
-- module's per-user quota, in count and bytes.
CREATE TABLE uploads (
	id           TEXT    NOT NULL PRIMARY KEY,
	host         TEXT    NOT NULL,
	username     TEXT    NOT NULL,
	filename     TEXT    NOT NULL,
	size         INTEGER NOT NULL,
	content_type TEXT    NOT NULL,
	state        INTEGER NOT NULL,
	created      INTEGER NOT NULL,
	expires      INTEGER NOT NULL,
	uploaded     INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX uploads_owner ON uploads (host, username, state);
CREATE INDEX uploads_sweep ON uploads (state, expires, uploaded);
