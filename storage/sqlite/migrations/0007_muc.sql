-- Persistent group chat rooms (XEP-0045): one row per room of a MUC
-- service, its configuration as the MUC module encodes it (JSON), and the
-- room's affiliations (owner, admin, member, outcast) by bare JID.
CREATE TABLE muc_rooms (
	service   TEXT NOT NULL,
	name      TEXT NOT NULL,
	config    BLOB NOT NULL,
	PRIMARY KEY (service, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE muc_affiliations (
	service     TEXT NOT NULL,
	name        TEXT NOT NULL,
	jid         TEXT NOT NULL,
	affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	PRIMARY KEY (service, name, jid),
	FOREIGN KEY (service, name) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
