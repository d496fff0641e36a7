package main

import "testing"

// TestInteropSlixmppMUC has slixmpp's own multi-user chat plugin
// (xep_0045) drive ottr's group chat service (testdata/interop/
// slixmpp_muc.py): alice finds conference.localhost in the server's
// disco#items, creates a room (110 and 201, owner and moderator) and
// submits its configuration form; bob joins; both talk and get both
// messages from the occupant JIDs; alice kicks bob (307 to both); bob
// comes back with the two messages as history and leaves; carol's message
// is retracted by alice (xep_0425, XEP-0425 as slixmpp 1.8 speaks it) and
// carol is told; carol asks room/alice for her software version
// (xep_0092) and alice's slixmpp answers through the room.
func TestInteropSlixmppMUC(t *testing.T) {
	runSlixmppScript(t, "slixmpp_muc.py", []string{"alice", "bob", "carol"}, nil)
}
