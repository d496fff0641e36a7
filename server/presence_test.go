package server_test

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

// drain makes c do a ping round trip and returns everything c received
// before the answer (what it had put aside included), which it no longer
// keeps: whatever the server queued for c before it answered.
func drain(t *testing.T, c *xmpptest.Client) []xmpptest.Received {
	t.Helper()
	id := fmt.Sprintf("drain%d", time.Now().UnixNano())
	c.Send(`<iq type='get' id='` + id + `' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var got []xmpptest.Received
	for {
		r := c.Next()
		if r.Name == "iq" && r.ID == id {
			return got
		}
		got = append(got, r)
	}
}

// noneOf fails the test if any of got matches.
func noneOf(t *testing.T, who string, got []xmpptest.Received, match func(xmpptest.Received) bool) {
	t.Helper()
	for _, r := range got {
		if match(r) {
			t.Fatalf("%s got %+v", who, r)
		}
	}
}

// TestDirectedPresenceCap: a session remembers at most
// limits.directed_presences entities it sent directed presence to;
// directed presence to one more is refused with resource-constraint and
// not sent, unavailable presence frees a place, and every remembered
// entity learns when the session goes offline (security review #3).
func TestDirectedPresenceCap(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.DirectedPresences = 3 })
	alice := ts.online(t, "alice", "a")
	var carol []*xmpptest.Client
	for i := 1; i <= 4; i++ {
		carol = append(carol, ts.mustLogin(t, "carol", fmt.Sprintf("c%d", i)))
	}
	fromAlice := func(r xmpptest.Received) bool { return r.Name == "presence" && r.From == "alice@localhost/a" }
	for _, c := range carol[:3] {
		alice.Send(fmt.Sprintf(`<presence to='%s'><status>psst</status></presence>`, c.JID))
		c.PresenceFrom("alice@localhost/a", "")
	}
	if n := ts.srv.DirectedPresences(alice.JID); n != 3 {
		t.Fatalf("%d directed presences remembered, want 3", n)
	}
	alice.Send(fmt.Sprintf(`<presence to='%s' id='over'><status>one too many</status></presence>`, carol[3].JID))
	if e := alice.NextNamed("presence", "error"); e.ID != "over" || !strings.Contains(e.Inner, "resource-constraint") {
		t.Fatalf("over the cap: %+v", e)
	}
	noneOf(t, "carol/c4", drain(t, carol[3]), fromAlice)
	if n := ts.srv.DirectedPresences(alice.JID); n != 3 {
		t.Fatalf("%d directed presences remembered after the refusal, want 3", n)
	}
	// An entity already remembered takes no new place.
	alice.Send(fmt.Sprintf(`<presence to='%s'><status>again</status></presence>`, carol[0].JID))
	if p := carol[0].PresenceFrom("alice@localhost/a", ""); !strings.Contains(p.Inner, "again") {
		t.Fatalf("update to a remembered entity: %+v", p)
	}
	// Unavailable frees a place.
	alice.Send(fmt.Sprintf(`<presence to='%s' type='unavailable'/>`, carol[0].JID))
	carol[0].PresenceFrom("alice@localhost/a", "unavailable")
	alice.Send(fmt.Sprintf(`<presence to='%s'/>`, carol[3].JID))
	carol[3].PresenceFrom("alice@localhost/a", "")
	// Going offline tells the three remembered ones, not the one that was
	// already told.
	alice.Send(`<presence type='unavailable'/>`)
	for _, c := range carol[1:] {
		c.PresenceFrom("alice@localhost/a", "unavailable")
	}
	noneOf(t, "carol/c1", drain(t, carol[0]), fromAlice)
}

// TestDirectedPresenceFlood sends 50,000 directed presences to distinct
// full JIDs with long resourceparts (the costliest to remember) from one
// session: the session remembers at most the cap, the rest are refused,
// and memory stays bounded (security review #3). Under the race detector,
// which makes it ten times slower and checks no memory bound, 5,000.
func TestDirectedPresenceFlood(t *testing.T) {
	ts := startServer(t, nil)
	const limit = 200 // the default limits.directed_presences
	n, count := 50000, "50,000"
	if raceEnabled {
		n, count = 5000, "5,000"
	}
	before := rssMiB(t)
	r := xmpptest.DialRaw(t, ts.addr)
	full := r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00flood\x00"+ts.token(t, "flood")), "r")
	r.Conn().SetDeadline(time.Now().Add(3 * time.Minute))
	r.Write(`<presence/>`)

	// The refusals come back while the flood goes on: read them all.
	refused := make(chan int, 1)
	go func() {
		count := 0
		defer func() { refused <- count }()
		for count < n-limit {
			tok, err := r.Token()
			if err != nil {
				return
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "resource-constraint" {
				count++
			}
		}
	}()
	long := strings.Repeat("r", 1000)
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<presence to='u%d@localhost/%d%s'/>`, i, i, long)
		if i%500 == 499 {
			r.Write(b.String())
			b.Reset()
		}
	}
	select {
	case got := <-refused:
		if got != n-limit {
			t.Fatalf("%d directed presences refused, want %d", got, n-limit)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the refusals did not all arrive")
	}
	if got := ts.srv.DirectedPresences(jid.MustParse(full)); got != limit {
		t.Fatalf("%d directed presences remembered, want %d", got, limit)
	}
	grew := rssMiB(t) - before
	t.Logf("RSS grew %.1f MiB for %s directed presences", grew, count)
	checkRSS(t, grew, 20)
	canary(t, ts)
}
