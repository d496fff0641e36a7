package server_test

import (
	"strings"
	"testing"
)

// TestCSIResumed: a resumed stream starts active (XEP-0352 §4.2): what
// was held for the session arrives on the new connection, and presence
// sent afterwards is no longer collapsed with it.
func TestCSIResumed(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.smLogin(t, "bob", "phone", true)
	carol := ts.online(t, "carol", "x")
	bob.conn.write(`<inactive xmlns='urn:xmpp:csi:0'/><iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for e := bob.next(); e.XMLName.Local != "iq"; e = bob.next() {
	}
	carol.Send(`<presence to='bob@localhost/phone'><status>p1</status></presence>`)
	drain(t, carol) // p1 is held for bob now

	bob.conn.kill()
	bob, e := ts.resumeTCP(t, "bob", false, bob.id, bob.h)
	wantResumed(t, e, bob.id)
	carol.Send(`<presence to='bob@localhost/phone'><status>p2</status></presence>`)
	drain(t, carol)
	// Inactive still, p2 would have replaced p1.
	bob.conn.write(`<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var statuses []string
	for {
		e := bob.next()
		if e.XMLName.Local == "iq" && smAttr(e, "id") == "end" {
			break
		}
		if e.XMLName.Local == "presence" && attr(e, "", "from") == "carol@localhost/x" {
			s, _ := e.Child("status")
			statuses = append(statuses, s.Text)
		}
	}
	if got := strings.Join(statuses, ","); got != "p1,p2" {
		t.Errorf("bob got carol's presence %q, want p1,p2", got)
	}
}
