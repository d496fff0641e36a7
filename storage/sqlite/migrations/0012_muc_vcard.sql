-- Room vCards (XEP-0054 for rooms, XEP-0153 room avatars): the vCard an
-- owner of a persistent room set, as XML, and the SHA-1 (hex) of its
-- photo, "" when it has none, which the MUC module puts in the room's
-- presence. It goes with its room.
CREATE TABLE muc_vcards (
	service TEXT NOT NULL,
	name    TEXT NOT NULL,
	vcard   BLOB NOT NULL,
	photo   TEXT NOT NULL,
	PRIMARY KEY (service, name),
	FOREIGN KEY (service, name) REFERENCES muc_rooms (service, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
