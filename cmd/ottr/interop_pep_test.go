package main

import (
	"testing"
)

// TestInteropSlixmppPEP has slixmpp's PEP and avatar plugins (xep_0163,
// xep_0084, xep_0118, with xep_0115 capabilities) run against the built
// ottr (testdata/interop/slixmpp_pep.py): alice publishes an avatar and a
// tune, bob (subscribed, with +notify in his capabilities) receives both
// events and retrieves the avatar data and the tune item, alice's
// disco#info has pubsub/pep, and a second resource of bob gets alice's
// last avatar metadata with a delay stamp when it comes online.
func TestInteropSlixmppPEP(t *testing.T) {
	runSlixmppScript(t, "slixmpp_pep.py", []string{"alice", "bob"}, nil)
}
