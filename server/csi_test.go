package server_test

import (
	"fmt"
	"strings"
	"testing"

	"ottr.im/ottr/internal/xmpptest"
)

// TestCSIFeature: <csi xmlns='urn:xmpp:csi:0'/> is announced once the
// client authenticated, not before.
func TestCSIFeature(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	hasCSI := func(features xmpptest.Element) bool {
		for _, c := range features.Children {
			if c.XMLName.Space == "urn:xmpp:csi:0" && c.XMLName.Local == "csi" {
				return true
			}
		}
		return false
	}
	if f := r.StartTLS(ts.tlsConfig(), testHost); hasCSI(f) {
		t.Fatalf("csi announced before authentication: %s", f)
	}
	if e := r.Auth("X-TOKEN", []byte("\x00bob\x00"+ts.token(t, "bob"))); e.XMLName.Local != "success" {
		t.Fatalf("auth: %s", e)
	}
	if f := r.Open(testHost); !hasCSI(f) {
		t.Fatalf("csi not announced after authentication: %s", f)
	}
}

// TestCSI: XEP-0352 over real streams. While bob is inactive, three
// contacts change their presence several times: a message with a body
// goes through at once, after only the latest presence of each; after
// more changes and a chat state, <active/> brings the chat state and
// again only the latest presence of each contact.
func TestCSI(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "phone")
	var contacts []*xmpptest.Client
	for i := 1; i <= 3; i++ {
		c := ts.online(t, fmt.Sprintf("c%d", i), "x")
		xmpptest.SubscribeBoth(t, bob, c)
		contacts = append(contacts, c)
	}
	drain(t, bob)
	bob.Send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	drain(t, bob) // the ping's answer goes through, and the server read <inactive/> before it

	// change makes every contact send presence with status r<round>,
	// and waits until the server routed it.
	change := func(rounds ...int) {
		t.Helper()
		for _, n := range rounds {
			for _, c := range contacts {
				c.Send(fmt.Sprintf(`<presence><status>r%d</status></presence>`, n))
			}
		}
		for _, c := range contacts {
			drain(t, c)
		}
	}
	// latest checks that got holds exactly one presence per contact, with
	// the status of the given round.
	latest := func(got []xmpptest.Received, round int) {
		t.Helper()
		seen := map[string]int{}
		for _, r := range got {
			if r.Name != "presence" {
				continue
			}
			seen[r.From]++
			if !strings.Contains(r.Inner, fmt.Sprintf(">r%d<", round)) {
				t.Errorf("presence from %s is not the latest (r%d): %s", r.From, round, r.Inner)
			}
		}
		for _, c := range contacts {
			if n := seen[c.JID.String()]; n != 1 {
				t.Errorf("%d presences from %s, want 1 (got %+v)", n, c.JID, got)
			}
		}
		if len(seen) != len(contacts) {
			t.Errorf("presence from %d entities, want %d: %+v", len(seen), len(contacts), got)
		}
	}

	change(1, 2, 3)
	contacts[0].Send(`<message to='bob@localhost' type='chat' id='wake'><body>wake up</body></message>`)
	var before []xmpptest.Received
	for {
		r := bob.Next()
		if r.Name == "message" && r.ID == "wake" {
			break
		}
		before = append(before, r)
	}
	if len(before) != len(contacts) {
		t.Errorf("%d stanzas before the message, want %d presences", len(before), len(contacts))
	}
	latest(before, 3)

	change(4, 5)
	contacts[1].Send(`<message to='bob@localhost' type='chat' id='typing'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	drain(t, contacts[1])
	bob.Send(`<active xmlns='urn:xmpp:csi:0'/>`)
	after := drain(t, bob)
	if len(after) != len(contacts)+1 {
		t.Errorf("%d stanzas on <active/>, want %d presences and a chat state: %+v", len(after), len(contacts), after)
	}
	latest(after, 5)
	states := 0
	for _, r := range after {
		if r.Name == "message" && r.ID == "typing" {
			states++
		}
	}
	if states != 1 {
		t.Errorf("%d chat states on <active/>, want 1", states)
	}

	// Active again: presence arrives as it is sent.
	contacts[2].Send(`<presence><status>r6</status></presence>`)
	if p := bob.PresenceFrom(contacts[2].JID.String(), ""); !strings.Contains(p.Inner, ">r6<") {
		t.Fatalf("presence while active: %+v", p)
	}
}
