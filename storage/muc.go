package storage

// MUCRoom is a persistent group chat room (XEP-0045) as stored: its
// service's domain, its name (the localpart of its JID), its
// configuration as the MUC module encodes it, and its affiliations.
type MUCRoom struct {
	// Service is the MUC service's domain, such as conference.example.org.
	Service string
	// Name is the room's localpart.
	Name string
	// Config is the room's configuration, subject included, encoded by
	// the module (opaque to the store).
	Config []byte
	// Affiliations maps a bare JID to its affiliation: owner, admin,
	// member or outcast.
	Affiliations map[string]string
}
