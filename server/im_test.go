package server_test

import (
	"encoding/xml"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// rosterItem is an item as a client sees it.
type rosterItem struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Ask          string   `xml:"ask,attr"`
	Approved     string   `xml:"approved,attr"`
	Groups       []string `xml:"group"`
}

type rosterQuery struct {
	Ver   *string      `xml:"ver,attr"`
	Items []rosterItem `xml:"item"`
}

func parseQuery(t *testing.T, inner string) rosterQuery {
	t.Helper()
	var q rosterQuery
	if strings.TrimSpace(inner) == "" {
		return q
	}
	if err := xml.Unmarshal([]byte(inner), &q); err != nil {
		t.Fatalf("roster query %q: %v", inner, err)
	}
	return q
}

// getRoster requests the roster (which makes the resource interested in
// pushes) and returns it.
func (c *client) getRoster(ver string) rosterQuery {
	c.t.Helper()
	id := fmt.Sprintf("r%d", time.Now().UnixNano())
	verAttr := ""
	if ver != "" {
		verAttr = fmt.Sprintf(" ver='%s'", ver)
	}
	r := c.iq(fmt.Sprintf(`<iq type='get' id='%s'><query xmlns='jabber:iq:roster'%s/></iq>`, id, verAttr), id)
	if r.Type != "result" {
		c.t.Fatalf("roster get: %+v", r)
	}
	return parseQuery(c.t, r.Inner)
}

// expectPush waits for a roster push and answers it.
func (c *client) expectPush() rosterItem {
	c.t.Helper()
	{
		r := c.waitFor(func(r received) bool {
			return r.Name == "iq" && r.Type == "set" && strings.Contains(r.Inner, "jabber:iq:roster")
		})
		q := parseQuery(c.t, r.Inner)
		if len(q.Items) != 1 {
			c.t.Fatalf("push with %d items: %s", len(q.Items), r.Inner)
		}
		if r.From != "" && r.From != c.jid.Bare().String() {
			c.t.Fatalf("push from %q", r.From)
		}
		return q.Items[0]
	}
}

// iq sends a request and returns the response with the same id.
func (c *client) iq(x, id string) received {
	c.t.Helper()
	c.send(x)
	return c.waitFor(func(r received) bool {
		return r.Name == "iq" && r.ID == id && (r.Type == "result" || r.Type == "error")
	})
}

// presenceFrom waits for a presence of the given type from the given JID.
func (c *client) presenceFrom(from, typ string) received {
	c.t.Helper()
	return c.waitFor(func(r received) bool { return r.Name == "presence" && r.From == from && r.Type == typ })
}

// subscribe runs the whole handshake between a and b (both online and
// having requested their rosters), leaving both subscribed to each other.
func subscribeBoth(t *testing.T, a, b *client) {
	t.Helper()
	ab, bb := a.jid.Bare().String(), b.jid.Bare().String()
	a.send(fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, bb))
	if it := a.expectPush(); it.JID != bb || it.Subscription != "none" || it.Ask != "subscribe" {
		t.Fatalf("a's push after subscribe: %+v", it)
	}
	if p := b.presenceFrom(ab, "subscribe"); p.To != bb {
		t.Fatalf("subscribe to %q", p.To)
	}
	b.send(fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, ab))
	if it := b.expectPush(); it.JID != ab || it.Subscription != "from" {
		t.Fatalf("b's push after approving: %+v", it)
	}
	a.presenceFrom(bb, "subscribed")
	if it := a.expectPush(); it.Subscription != "to" || it.Ask != "" {
		t.Fatalf("a's push after approval: %+v", it)
	}
	// b's presence follows the approval.
	a.presenceFrom(b.jid.String(), "")
	// And the other way.
	b.send(fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, ab))
	if it := b.expectPush(); it.Subscription != "from" || it.Ask != "subscribe" {
		t.Fatalf("b's push after subscribe: %+v", it)
	}
	a.presenceFrom(bb, "subscribe")
	a.send(fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, bb))
	if it := a.expectPush(); it.Subscription != "both" {
		t.Fatalf("a's push: %+v", it)
	}
	if it := b.expectPush(); it.Subscription != "both" {
		t.Fatalf("b's push: %+v", it)
	}
	b.presenceFrom(a.jid.String(), "")
}

// online logs in, requests the roster and sends initial presence.
func (ts *testServer) online(t *testing.T, user, resource string) *client {
	t.Helper()
	c := ts.mustLogin(t, user, resource)
	c.getRoster("")
	c.send(`<presence/>`)
	c.presenceFrom(c.jid.String(), "")
	return c
}

func TestSubscriptionHandshake(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	subscribeBoth(t, alice, bob)

	for _, c := range []*client{alice, bob} {
		q := c.getRoster("")
		if len(q.Items) != 1 || q.Items[0].Subscription != "both" {
			t.Fatalf("%s roster %+v", c.jid, q)
		}
	}
	// Presence changes now reach the contact.
	bob.send(`<presence><show>away</show><status>lunch</status></presence>`)
	if p := alice.presenceFrom("bob@localhost/b", ""); !strings.Contains(p.Inner, "lunch") {
		t.Fatalf("alice got %+v", p)
	}
	// A new resource of bob's is seen by alice, and sees alice (probe).
	bob2 := ts.mustLogin(t, "bob", "b2")
	bob2.send(`<presence/>`)
	alice.presenceFrom("bob@localhost/b2", "")
	bob2.presenceFrom("alice@localhost/a", "")
	// Going offline, cleanly or by a dropped connection, is seen too.
	bob2.send(`<presence type='unavailable'><status>bye</status></presence>`)
	alice.presenceFrom("bob@localhost/b2", "unavailable")
	bob.sess.Conn().Close() // no closing tag: a dropped connection
	alice.presenceFrom("bob@localhost/b", "unavailable")
}

func TestRosterPushesToAllInterestedResources(t *testing.T) {
	ts := startServer(t, nil)
	a1 := ts.online(t, "alice", "one")
	a2 := ts.mustLogin(t, "alice", "two")
	a2.getRoster("")
	a3 := ts.mustLogin(t, "alice", "three") // never asked for the roster
	id := "set1"
	r := a1.iq(`<iq type='set' id='set1'><query xmlns='jabber:iq:roster'><item jid='Carol@localhost' name='Carol'><group>Friends</group><group>Work</group></item></query></iq>`, id)
	if r.Type != "result" {
		t.Fatalf("roster set: %+v", r)
	}
	for _, c := range []*client{a1, a2} {
		it := c.expectPush()
		sort.Strings(it.Groups)
		if it.JID != "carol@localhost" || it.Name != "Carol" || strings.Join(it.Groups, ",") != "Friends,Work" || it.Subscription != "none" {
			t.Fatalf("%s push %+v", c.jid, it)
		}
	}
	a3.quiet(200 * time.Millisecond)

	// Versioning: the version moves with every change; an up-to-date
	// client gets an empty result.
	q := a1.getRoster("")
	if q.Ver == nil || len(q.Items) != 1 {
		t.Fatalf("roster %+v", q)
	}
	if q2 := a1.getRoster(*q.Ver); q2.Ver != nil || len(q2.Items) != 0 {
		t.Fatalf("up-to-date roster get returned %+v", q2)
	}
	if q3 := a1.getRoster("0"); len(q3.Items) != 1 {
		t.Fatalf("stale roster get returned %+v", q3)
	}

	// Remove.
	r = a2.iq(`<iq type='set' id='rm1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' subscription='remove'/></query></iq>`, "rm1")
	if r.Type != "result" {
		t.Fatalf("remove: %+v", r)
	}
	for _, c := range []*client{a1, a2} {
		if it := c.expectPush(); it.Subscription != "remove" {
			t.Fatalf("%s push %+v", c.jid, it)
		}
	}
	if q := a1.getRoster(""); len(q.Items) != 0 {
		t.Fatalf("roster after remove %+v", q)
	}
}

func TestRosterSetErrors(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.mustLogin(t, "alice", "a")
	for _, tc := range []struct{ name, payload, cond string }{
		{"two items", `<item jid='b@localhost'/><item jid='c@localhost'/>`, "bad-request"},
		{"no items", ``, "bad-request"},
		{"bad jid", `<item jid='a@b@c'/>`, "jid-malformed"},
		{"empty group", `<item jid='b@localhost'><group></group></item>`, "not-acceptable"},
		{"duplicate group", `<item jid='b@localhost'><group>x</group><group>x</group></item>`, "bad-request"},
		{"remove absent", `<item jid='zed@localhost' subscription='remove'/>`, "item-not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.iq(`<iq type='set' id='e1'><query xmlns='jabber:iq:roster'>`+tc.payload+`</query></iq>`, "e1")
			if r.Type != "error" || !strings.Contains(r.Inner, tc.cond) {
				t.Fatalf("got %+v, want %s", r, tc.cond)
			}
		})
	}
	// Another user's roster is not reachable.
	r := a.iq(`<iq type='get' id='o1' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>`, "o1")
	if r.Type != "error" {
		t.Fatalf("foreign roster get: %+v", r)
	}
}

func TestSubscriptionRequestWhileOffline(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	bob.close() // bob has an account now, and is offline
	alice := ts.online(t, "alice", "a")
	alice.send(`<presence to='bob@localhost' type='subscribe'><status>it is alice</status></presence>`)
	alice.expectPush()
	// bob gets it at his next login, with the status text.
	bob = ts.mustLogin(t, "bob", "b")
	bob.send(`<presence/>`)
	p := bob.presenceFrom("alice@localhost", "subscribe")
	if !strings.Contains(p.Inner, "it is alice") {
		t.Fatalf("redelivered request %+v", p)
	}
	// Pending-in entries are not in the roster.
	if q := bob.getRoster(""); len(q.Items) != 0 {
		t.Fatalf("bob's roster %+v", q)
	}
	// Deny.
	bob.send(`<presence to='alice@localhost' type='unsubscribed'/>`)
	alice.presenceFrom("bob@localhost", "unsubscribed")
	if it := alice.expectPush(); it.Subscription != "none" || it.Ask != "" {
		t.Fatalf("alice after denial: %+v", it)
	}
	// And it is not redelivered again.
	bob.close()
	bob = ts.mustLogin(t, "bob", "b2")
	bob.send(`<presence/>`)
	for {
		select {
		case r := <-bob.in:
			if r.Name == "presence" && r.Type == "subscribe" {
				t.Fatalf("denied request redelivered: %+v", r)
			}
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
}

func TestPreApprovalAndCancel(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	// bob pre-approves alice: her request is approved without asking him.
	bob.send(`<presence to='alice@localhost' type='subscribed'/>`)
	if it := bob.expectPush(); it.Approved != "true" || it.Subscription != "none" {
		t.Fatalf("pre-approval push %+v", it)
	}
	alice.send(`<presence to='bob@localhost' type='subscribe'/>`)
	alice.expectPush()
	alice.presenceFrom("bob@localhost", "subscribed")
	if it := alice.expectPush(); it.Subscription != "to" {
		t.Fatalf("alice push %+v", it)
	}
	if it := bob.expectPush(); it.Subscription != "from" || it.Approved != "" {
		t.Fatalf("bob push %+v", it)
	}
	alice.presenceFrom("bob@localhost/b", "")
	// bob cancels: alice loses the subscription and sees him go.
	bob.send(`<presence to='alice@localhost' type='unsubscribed'/>`)
	if it := bob.expectPush(); it.Subscription != "none" {
		t.Fatalf("bob push %+v", it)
	}
	alice.presenceFrom("bob@localhost/b", "unavailable")
	alice.presenceFrom("bob@localhost", "unsubscribed")
	if it := alice.expectPush(); it.Subscription != "none" {
		t.Fatalf("alice push %+v", it)
	}
	// alice unsubscribes from nothing: no change, nothing sent.
	bob.send(`<presence type='unavailable'/>`)
}

func TestDirectedPresence(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	carol := ts.online(t, "carol", "c") // no subscription between them
	alice.send(`<presence to='carol@localhost/c'><status>psst</status></presence>`)
	carol.presenceFrom("alice@localhost/a", "")
	alice.send(`<presence type='unavailable'/>`)
	carol.presenceFrom("alice@localhost/a", "unavailable")
}

func TestOfflineMessages(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	bob.close()
	alice := ts.online(t, "alice", "a")
	for i := 0; i < 5; i++ {
		typ := "chat"
		if i%2 == 1 {
			typ = "normal"
		}
		alice.send(fmt.Sprintf(`<message to='bob@localhost' type='%s' id='o%d'><body>offline %d</body></message>`, typ, i, i))
	}
	// headline and a message to a full JID of an offline resource
	alice.send(`<message to='bob@localhost' type='headline'><body>not stored</body></message>`)
	alice.send(`<message to='bob@localhost/b' type='chat'><body>offline 5</body></message>`)
	alice.quiet(300 * time.Millisecond) // no errors

	bob = ts.mustLogin(t, "bob", "b")
	bob.quiet(300 * time.Millisecond) // nothing before initial presence
	bob.send(`<presence/>`)
	for i := 0; i < 6; i++ {
		m := bob.nextNamed("message", "*")
		if m.Body != fmt.Sprintf("offline %d", i) {
			t.Fatalf("message %d: %+v", i, m)
		}
		if m.From != "alice@localhost/a" || !strings.Contains(m.Inner, "urn:xmpp:delay") || !strings.Contains(m.Inner, "stamp=") {
			t.Fatalf("message %d lacks from or delay: %+v", i, m)
		}
	}
	// Delivered once: the next login gets nothing.
	time.Sleep(200 * time.Millisecond)
	bob.close()
	bob = ts.mustLogin(t, "bob", "b")
	bob.send(`<presence/>`)
	for {
		select {
		case r := <-bob.in:
			if r.Name == "message" {
				t.Fatalf("offline message delivered twice: %+v", r)
			}
			continue
		case <-time.After(400 * time.Millisecond):
		}
		break
	}
}

func TestOfflineQuota(t *testing.T) {
	ts := startServer(t, nil)
	ts.srv.Router().SetOfflineMax(3)
	bob := ts.online(t, "bob", "b")
	bob.close()
	alice := ts.online(t, "alice", "a")
	for i := 0; i < 4; i++ {
		alice.send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='q%d'><body>%d</body></message>`, i, i))
	}
	e := alice.nextNamed("message", "error")
	if e.ID != "q3" || !strings.Contains(e.Inner, "resource-constraint") {
		t.Fatalf("over quota: %+v", e)
	}
}

func TestBlocking(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	mallory := ts.online(t, "mallory", "m")
	r := alice.iq(`<iq type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "bl1")
	if r.Type != "result" || strings.Contains(r.Inner, "item") {
		t.Fatalf("empty blocklist: %+v", r)
	}
	r = alice.iq(`<iq type='set' id='bl2'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>`, "bl2")
	if r.Type != "result" {
		t.Fatalf("block: %+v", r)
	}
	// The interested resource gets a push.
	push := alice.nextNamed("iq", "set")
	if !strings.Contains(push.Inner, "mallory@localhost") {
		t.Fatalf("push %+v", push)
	}
	mallory.send(`<message to='alice@localhost/a' type='chat' id='mb'><body>hey</body></message>`)
	if e := mallory.nextNamed("message", "error"); e.ID != "mb" {
		t.Fatalf("mallory got %+v", e)
	}
	alice.send(`<message to='mallory@localhost' type='chat' id='ab'><body>x</body></message>`)
	if e := alice.nextNamed("message", "error"); e.ID != "ab" || !strings.Contains(e.Inner, "urn:xmpp:blocking:errors") {
		t.Fatalf("alice got %+v", e)
	}
	r = alice.iq(`<iq type='get' id='bl3'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "bl3")
	if !strings.Contains(r.Inner, "mallory@localhost") {
		t.Fatalf("blocklist %+v", r)
	}
	alice.iq(`<iq type='set' id='bl4'><unblock xmlns='urn:xmpp:blocking'/></iq>`, "bl4")
	mallory.send(`<message to='alice@localhost/a' type='chat'><body>again</body></message>`)
	if m := alice.nextNamed("message", "chat"); m.Body != "again" {
		t.Fatalf("after unblock %+v", m)
	}
}

func TestSmallServices(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	for _, tc := range []struct {
		name, x, typ, want string
	}{
		{"version", `<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>`, "result", "ottr"},
		{"time", `<iq type='get' id='t' to='localhost'><time xmlns='urn:xmpp:time'/></iq>`, "result", "<utc"},
		{"uptime", `<iq type='get' id='l' to='localhost'><query xmlns='jabber:iq:last'/></iq>`, "result", "seconds="},
		{"last of a stranger", `<iq type='get' id='l2' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>`, "error", "forbidden"},
		{"disco items", `<iq type='get' id='di' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "result", ""},
		{"disco account", `<iq type='get' id='da' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", "registered"},
		{"disco no account", `<iq type='get' id='dn' to='nobody@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "error", "item-not-found"},
		{"server features", `<iq type='get' id='df' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", "urn:xmpp:blocking"},
		{"vcard empty", `<iq type='get' id='vc0'><vCard xmlns='vcard-temp'/></iq>`, "result", "vcard-temp"},
		{"vcard set", `<iq type='set' id='vc1'><vCard xmlns='vcard-temp'><FN>Alice A.</FN></vCard></iq>`, "result", ""},
		{"vcard get", `<iq type='get' id='vc2'><vCard xmlns='vcard-temp'/></iq>`, "result", "Alice A."},
		{"vcard too big", `<iq type='set' id='vc3'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>` + strings.Repeat("A", 70<<10) + `</BINVAL></PHOTO></vCard></iq>`, "error", "not-acceptable"},
		{"vcard of other", `<iq type='set' id='vc4' to='bob@localhost'><vCard xmlns='vcard-temp'/></iq>`, "error", "forbidden"},
		{"private set", `<iq type='set' id='p1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs></query></iq>`, "result", ""},
		{"private get", `<iq type='get' id='p2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>`, "result", "dark"},
		{"private unknown", `<iq type='get' id='p3'><query xmlns='jabber:iq:private'><other xmlns='urn:example:other'/></query></iq>`, "result", "urn:example:other"},
		{"private reserved", `<iq type='set' id='p4'><query xmlns='jabber:iq:private'><x xmlns='jabber:x:data'/></query></iq>`, "error", "not-acceptable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := ""
			if i := strings.Index(tc.x, "id='"); i >= 0 {
				id = tc.x[i+4 : i+4+strings.Index(tc.x[i+4:], "'")]
			}
			r := alice.iq(tc.x, id)
			if r.Type != tc.typ || !strings.Contains(r.Inner, tc.want) {
				t.Fatalf("got %+v, want %s containing %q", r, tc.typ, tc.want)
			}
		})
	}
	// bob reads alice's vCard.
	if r := bob.iq(`<iq type='get' id='bv' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>`, "bv"); !strings.Contains(r.Inner, "Alice A.") {
		t.Fatalf("bob read %+v", r)
	}
	// Last activity of a subscribed contact who went offline.
	subscribeBoth(t, alice, bob)
	bob.send(`<presence type='unavailable'><status>gone fishing</status></presence>`)
	alice.presenceFrom("bob@localhost/b", "unavailable")
	if r := alice.iq(`<iq type='get' id='lb' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>`, "lb"); r.Type != "result" || !strings.Contains(r.Inner, "gone fishing") {
		t.Fatalf("last activity %+v", r)
	}
}
