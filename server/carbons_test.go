package server_test

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

	"ottr.im/ottr/internal/xmpptest"
)

// carbonCopy is a received XEP-0280 carbon, parsed.
type carbonCopy struct {
	XMLName   xml.Name
	Forwarded struct {
		Message struct {
			From    string    `xml:"from,attr"`
			To      string    `xml:"to,attr"`
			Type    string    `xml:"type,attr"`
			Body    string    `xml:"body"`
			Private *struct{} `xml:"urn:xmpp:carbons:2 private"`
		} `xml:"jabber:client message"`
	} `xml:"urn:xmpp:forward:0 forwarded"`
}

// enableCarbons sends <enable/> for c and waits for the result.
func enableCarbons(t *testing.T, c *xmpptest.Client) {
	t.Helper()
	id := "carbons-" + c.JID.Resourcepart()
	if r := c.IQ(fmt.Sprintf(`<iq type='set' id='%s'><enable xmlns='urn:xmpp:carbons:2'/></iq>`, id), id); r.Type != "result" {
		t.Fatalf("%s: enable carbons: %+v", c.JID, r)
	}
}

// nextCarbon waits for a carbon at c and checks its wrapping: from c's
// bare JID (the module test checks the bytes) to c, of type chat, with one <sent/> or <received/>.
func nextCarbon(t *testing.T, c *xmpptest.Client) carbonCopy {
	t.Helper()
	r := c.WaitFor(func(r xmpptest.Received) bool {
		return r.Name == "message" && strings.Contains(r.Inner, "urn:xmpp:carbons:2")
	})
	// mellium's client shows a from of its own bare JID as none.
	if (r.From != "" && r.From != c.JID.Bare().String()) || r.To != c.JID.String() || r.Type != "chat" {
		t.Fatalf("%s: carbon from %q to %q type %q", c.JID, r.From, r.To, r.Type)
	}
	var cc carbonCopy
	if err := xml.Unmarshal([]byte(r.Inner), &cc); err != nil {
		t.Fatalf("%s: carbon %s: %v", c.JID, r.Inner, err)
	}
	return cc
}

// noCarbon fails the test if c was queued a carbon before the answer to a
// ping it sends now.
func noCarbon(t *testing.T, c *xmpptest.Client) {
	t.Helper()
	noneOf(t, c.JID.String(), drain(t, c), func(r xmpptest.Received) bool {
		return strings.Contains(r.Inner, "urn:xmpp:carbons:2")
	})
}

// TestCarbons: XEP-0280 over real streams. Alice has two resources with
// carbons enabled, bob one. What a1 sends reaches a2 as <sent/>; what bob
// sends to a1, or to alice's bare JID when a2 is not among the resources
// it goes to, reaches a2 as <received/>; <private/> and <no-copy/> are
// honoured, and <private/> is removed before delivery.
func TestCarbons(t *testing.T) {
	ts := startServer(t, nil)
	a1 := ts.online(t, "alice", "a1")
	a2 := ts.online(t, "alice", "a2")
	bob := ts.online(t, "bob", "b1")
	for _, c := range []*xmpptest.Client{a1, a2, bob} {
		enableCarbons(t, c)
	}
	if r := a1.IQ(`<iq type='get' id='disco' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "disco"); !strings.Contains(r.Inner, `var="urn:xmpp:carbons:2"`) {
		t.Fatalf("disco#info without carbons: %s", r.Inner)
	}

	// Sent from a1 to bob; received by a1 from bob; received at alice's
	// bare JID when a2, with a negative priority, is not among the
	// resources it goes to.
	for _, tc := range []struct {
		name       string
		from, to   *xmpptest.Client
		addr, body string
		before     func()
		kind       string
		silent     []*xmpptest.Client // get no carbon
		wantFrom   string
		wantOrigTo string
	}{
		{name: "sent", from: a1, to: bob, addr: "bob@localhost", body: "one", kind: "sent",
			silent: []*xmpptest.Client{a1, bob}, wantFrom: "alice@localhost/a1", wantOrigTo: "bob@localhost"},
		{name: "received", from: bob, to: a1, addr: "alice@localhost/a1", body: "two", kind: "received",
			silent: []*xmpptest.Client{a1, bob}, wantFrom: "bob@localhost/b1", wantOrigTo: "alice@localhost/a1"},
		{name: "received at the bare JID", from: bob, to: a1, addr: "alice@localhost", body: "three", kind: "received",
			before: func() {
				a2.Send(`<presence><priority>-1</priority></presence>`)
				a2.PresenceFrom(a2.JID.String(), "")
			},
			silent: []*xmpptest.Client{a1}, wantFrom: "bob@localhost/b1", wantOrigTo: "alice@localhost"},
	} {
		if tc.before != nil {
			tc.before()
		}
		tc.from.Send(fmt.Sprintf(`<message to='%s' type='chat'><body>%s</body></message>`, tc.addr, tc.body))
		if m := tc.to.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.Body == tc.body }); m.From != tc.wantFrom {
			t.Fatalf("%s: %s got %+v", tc.name, tc.to.JID, m)
		}
		c := nextCarbon(t, a2)
		if m := c.Forwarded.Message; c.XMLName.Local != tc.kind || m.Body != tc.body || m.From != tc.wantFrom || m.To != tc.wantOrigTo {
			t.Fatalf("%s: a2's carbon: %+v", tc.name, c)
		}
		for _, s := range tc.silent {
			noCarbon(t, s)
		}
	}

	// Private and no-copy, both ways: no copy; <private/> is stripped.
	for _, tc := range []struct{ hint, kept string }{
		{`<private xmlns='urn:xmpp:carbons:2'/>`, ""},
		{`<no-copy xmlns='urn:xmpp:hints'/>`, "no-copy"},
	} {
		// Each as delivered: with the hint kept, or without any.
		check := func(who string, m xmpptest.Received) {
			t.Helper()
			if tc.kept == "" && (strings.Contains(m.Inner, "private") || strings.Contains(m.Inner, "no-copy")) ||
				tc.kept != "" && !strings.Contains(m.Inner, tc.kept) {
				t.Errorf("%s got %s for %s", who, m.Inner, tc.hint)
			}
		}
		a1.Send(`<message to='bob@localhost/b1' type='chat'><body>out</body>` + tc.hint + `</message>`)
		check("bob", bob.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.Body == "out" }))
		noCarbon(t, a2)
		bob.Send(`<message to='alice@localhost/a1' type='chat'><body>in</body>` + tc.hint + `</message>`)
		check("a1", a1.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.Body == "in" }))
		noCarbon(t, a2)
	}

	// Disabled: no more copies.
	if r := a2.IQ(`<iq type='set' id='off'><disable xmlns='urn:xmpp:carbons:2'/></iq>`, "off"); r.Type != "result" {
		t.Fatalf("disable: %+v", r)
	}
	a1.Send(`<message to='bob@localhost' type='chat'><body>four</body></message>`)
	bob.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.Body == "four" })
	noCarbon(t, a2)
}
