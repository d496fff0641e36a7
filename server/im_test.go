package server_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

func TestSubscriptionHandshake(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	xmpptest.SubscribeBoth(t, alice, bob)

	for _, c := range []*xmpptest.Client{alice, bob} {
		q := c.Roster("")
		if len(q.Items) != 1 || q.Items[0].Subscription != "both" {
			t.Fatalf("%s roster %+v", c.JID, q)
		}
	}
	// Presence changes now reach the contact.
	bob.Send(`<presence><show>away</show><status>lunch</status></presence>`)
	if p := alice.PresenceFrom("bob@localhost/b", ""); !strings.Contains(p.Inner, "lunch") {
		t.Fatalf("alice got %+v", p)
	}
	// A new resource of bob's is seen by alice, and sees alice (probe).
	bob2 := ts.mustLogin(t, "bob", "b2")
	bob2.Send(`<presence/>`)
	alice.PresenceFrom("bob@localhost/b2", "")
	bob2.PresenceFrom("alice@localhost/a", "")
	// Going offline, cleanly or by a dropped connection, is seen too.
	bob2.Send(`<presence type='unavailable'><status>bye</status></presence>`)
	alice.PresenceFrom("bob@localhost/b2", "unavailable")
	bob.Sess.Conn().Close() // no closing tag: a dropped connection
	alice.PresenceFrom("bob@localhost/b", "unavailable")
}

func TestRosterPushesToAllInterestedResources(t *testing.T) {
	ts := startServer(t, nil)
	a1 := ts.online(t, "alice", "one")
	a2 := ts.mustLogin(t, "alice", "two")
	a2.Roster("")
	a3 := ts.mustLogin(t, "alice", "three") // never asked for the roster
	id := "set1"
	r := a1.IQ(`<iq type='set' id='set1'><query xmlns='jabber:iq:roster'><item jid='Carol@localhost' name='Carol'><group>Friends</group><group>Work</group></item></query></iq>`, id)
	if r.Type != "result" {
		t.Fatalf("roster set: %+v", r)
	}
	for _, c := range []*xmpptest.Client{a1, a2} {
		it := c.RosterPush()
		sort.Strings(it.Groups)
		if it.JID != "carol@localhost" || it.Name != "Carol" || strings.Join(it.Groups, ",") != "Friends,Work" || it.Subscription != "none" {
			t.Fatalf("%s push %+v", c.JID, it)
		}
	}
	a3.Quiet(200 * time.Millisecond)

	// Versioning: the version moves with every change; an up-to-date
	// client gets an empty result.
	q := a1.Roster("")
	if q.Ver == nil || len(q.Items) != 1 {
		t.Fatalf("roster %+v", q)
	}
	if q2 := a1.Roster(*q.Ver); q2.Ver != nil || len(q2.Items) != 0 {
		t.Fatalf("up-to-date roster get returned %+v", q2)
	}
	if q3 := a1.Roster("0"); len(q3.Items) != 1 {
		t.Fatalf("stale roster get returned %+v", q3)
	}

	// Remove.
	r = a2.IQ(`<iq type='set' id='rm1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' subscription='remove'/></query></iq>`, "rm1")
	if r.Type != "result" {
		t.Fatalf("remove: %+v", r)
	}
	for _, c := range []*xmpptest.Client{a1, a2} {
		if it := c.RosterPush(); it.Subscription != "remove" {
			t.Fatalf("%s push %+v", c.JID, it)
		}
	}
	if q := a1.Roster(""); len(q.Items) != 0 {
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
			r := a.IQ(`<iq type='set' id='e1'><query xmlns='jabber:iq:roster'>`+tc.payload+`</query></iq>`, "e1")
			if r.Type != "error" || !strings.Contains(r.Inner, tc.cond) {
				t.Fatalf("got %+v, want %s", r, tc.cond)
			}
		})
	}
	// Another user's roster is not reachable.
	r := a.IQ(`<iq type='get' id='o1' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>`, "o1")
	if r.Type != "error" {
		t.Fatalf("foreign roster get: %+v", r)
	}
}

func TestSubscriptionRequestWhileOffline(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	bob.Close() // bob has an account now, and is offline
	alice := ts.online(t, "alice", "a")
	alice.Send(`<presence to='bob@localhost' type='subscribe'><status>it is alice</status></presence>`)
	alice.RosterPush()
	// bob gets it at his next login, with the status text.
	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	p := bob.PresenceFrom("alice@localhost", "subscribe")
	if !strings.Contains(p.Inner, "it is alice") {
		t.Fatalf("redelivered request %+v", p)
	}
	// Pending-in entries are not in the roster.
	if q := bob.Roster(""); len(q.Items) != 0 {
		t.Fatalf("bob's roster %+v", q)
	}
	// Deny.
	bob.Send(`<presence to='alice@localhost' type='unsubscribed'/>`)
	alice.PresenceFrom("bob@localhost", "unsubscribed")
	if it := alice.RosterPush(); it.Subscription != "none" || it.Ask != "" {
		t.Fatalf("alice after denial: %+v", it)
	}
	// And it is not redelivered again.
	bob.Close()
	bob = ts.mustLogin(t, "bob", "b2")
	bob.Send(`<presence/>`)
	bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool {
		return r.Name == "presence" && r.Type == "subscribe"
	})
}

func TestPreApprovalAndCancel(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	// bob pre-approves alice: her request is approved without asking him.
	bob.Send(`<presence to='alice@localhost' type='subscribed'/>`)
	if it := bob.RosterPush(); it.Approved != "true" || it.Subscription != "none" {
		t.Fatalf("pre-approval push %+v", it)
	}
	alice.Send(`<presence to='bob@localhost' type='subscribe'/>`)
	alice.RosterPush()
	alice.PresenceFrom("bob@localhost", "subscribed")
	if it := alice.RosterPush(); it.Subscription != "to" {
		t.Fatalf("alice push %+v", it)
	}
	if it := bob.RosterPush(); it.Subscription != "from" || it.Approved != "" {
		t.Fatalf("bob push %+v", it)
	}
	alice.PresenceFrom("bob@localhost/b", "")
	// bob cancels: alice loses the subscription and sees him go.
	bob.Send(`<presence to='alice@localhost' type='unsubscribed'/>`)
	if it := bob.RosterPush(); it.Subscription != "none" {
		t.Fatalf("bob push %+v", it)
	}
	alice.PresenceFrom("bob@localhost/b", "unavailable")
	alice.PresenceFrom("bob@localhost", "unsubscribed")
	if it := alice.RosterPush(); it.Subscription != "none" {
		t.Fatalf("alice push %+v", it)
	}
	// alice unsubscribes from nothing: no change, nothing sent.
	bob.Send(`<presence type='unavailable'/>`)
}

func TestDirectedPresence(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	carol := ts.online(t, "carol", "c") // no subscription between them
	alice.Send(`<presence to='carol@localhost/c'><status>psst</status></presence>`)
	carol.PresenceFrom("alice@localhost/a", "")
	alice.Send(`<presence type='unavailable'/>`)
	carol.PresenceFrom("alice@localhost/a", "unavailable")
}

func TestOfflineMessages(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	bob.Close()
	alice := ts.online(t, "alice", "a")
	for i := 0; i < 5; i++ {
		typ := "chat"
		if i%2 == 1 {
			typ = "normal"
		}
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='%s' id='o%d'><body>offline %d</body></message>`, typ, i, i))
	}
	// headline and a message to a full JID of an offline resource
	alice.Send(`<message to='bob@localhost' type='headline'><body>not stored</body></message>`)
	alice.Send(`<message to='bob@localhost/b' type='chat'><body>offline 5</body></message>`)
	alice.Quiet(300 * time.Millisecond) // no errors

	bob = ts.mustLogin(t, "bob", "b")
	bob.Quiet(300 * time.Millisecond) // nothing before initial presence
	bob.Send(`<presence/>`)
	for i := 0; i < 6; i++ {
		m := bob.NextNamed("message", "*")
		if m.Body != fmt.Sprintf("offline %d", i) {
			t.Fatalf("message %d: %+v", i, m)
		}
		if m.From != "alice@localhost/a" || !strings.Contains(m.Inner, "urn:xmpp:delay") || !strings.Contains(m.Inner, "stamp=") {
			t.Fatalf("message %d lacks from or delay: %+v", i, m)
		}
	}
	// Delivered once: the next login gets nothing.
	bob.Close()
	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	bob.NoneWithin(400*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
}

func TestOfflineQuota(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.OfflineMessages = 3 })
	bob := ts.online(t, "bob", "b")
	bob.Close()
	alice := ts.online(t, "alice", "a")
	for i := 0; i < 4; i++ {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='q%d'><body>%d</body></message>`, i, i))
	}
	e := alice.NextNamed("message", "error")
	if e.ID != "q3" || !strings.Contains(e.Inner, "resource-constraint") {
		t.Fatalf("over quota: %+v", e)
	}
}

func TestBlocking(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	mallory := ts.online(t, "mallory", "m")
	r := alice.IQ(`<iq type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "bl1")
	if r.Type != "result" || strings.Contains(r.Inner, "item") {
		t.Fatalf("empty blocklist: %+v", r)
	}
	r = alice.IQ(`<iq type='set' id='bl2'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>`, "bl2")
	if r.Type != "result" {
		t.Fatalf("block: %+v", r)
	}
	// The interested resource gets a push.
	push := alice.NextNamed("iq", "set")
	if !strings.Contains(push.Inner, "mallory@localhost") {
		t.Fatalf("push %+v", push)
	}
	mallory.Send(`<message to='alice@localhost/a' type='chat' id='mb'><body>hey</body></message>`)
	if e := mallory.NextNamed("message", "error"); e.ID != "mb" {
		t.Fatalf("mallory got %+v", e)
	}
	alice.Send(`<message to='mallory@localhost' type='chat' id='ab'><body>x</body></message>`)
	if e := alice.NextNamed("message", "error"); e.ID != "ab" || !strings.Contains(e.Inner, "urn:xmpp:blocking:errors") {
		t.Fatalf("alice got %+v", e)
	}
	r = alice.IQ(`<iq type='get' id='bl3'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "bl3")
	if !strings.Contains(r.Inner, "mallory@localhost") {
		t.Fatalf("blocklist %+v", r)
	}
	// Offline, alice is still protected (her list comes from storage),
	// and nothing from mallory is stored for her.
	alice.Close()
	waitFor(t, func() bool { return ts.srv.Router().Sessions() == 1 })
	mallory.Send(`<message to='alice@localhost' type='chat' id='off'><body>while away</body></message>`)
	if e := mallory.NextNamed("message", "error"); e.ID != "off" {
		t.Fatalf("mallory got %+v", e)
	}
	alice = ts.online(t, "alice", "a")
	alice.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
	r = alice.IQ(`<iq type='get' id='bl5'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "bl5")
	if !strings.Contains(r.Inner, "mallory@localhost") {
		t.Fatalf("blocklist after logging in again: %+v", r)
	}
	alice.IQ(`<iq type='set' id='bl4'><unblock xmlns='urn:xmpp:blocking'/></iq>`, "bl4")
	mallory.Send(`<message to='alice@localhost/a' type='chat'><body>again</body></message>`)
	if m := alice.NextNamed("message", "chat"); m.Body != "again" {
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
			r := alice.IQ(tc.x, id)
			if r.Type != tc.typ || !strings.Contains(r.Inner, tc.want) {
				t.Fatalf("got %+v, want %s containing %q", r, tc.typ, tc.want)
			}
		})
	}
	// bob reads alice's vCard.
	if r := bob.IQ(`<iq type='get' id='bv' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>`, "bv"); !strings.Contains(r.Inner, "Alice A.") {
		t.Fatalf("bob read %+v", r)
	}
	// Last activity of a subscribed contact who went offline.
	xmpptest.SubscribeBoth(t, alice, bob)
	bob.Send(`<presence type='unavailable'><status>gone fishing</status></presence>`)
	alice.PresenceFrom("bob@localhost/b", "unavailable")
	if r := alice.IQ(`<iq type='get' id='lb' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>`, "lb"); r.Type != "result" || !strings.Contains(r.Inner, "gone fishing") {
		t.Fatalf("last activity %+v", r)
	}
}

// TestBlockingStopsPresence: once bob blocks alice, nothing of hers
// reaches him, presence included (XEP-0191 §3.5), and she sees him go
// unavailable (§3.3); unblocking brings presence back both ways
// (security review #7).
func TestBlockingStopsPresence(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	xmpptest.SubscribeBoth(t, alice, bob)
	carol := ts.online(t, "carol", "c")
	drain(t, alice)
	drain(t, bob)

	r := bob.IQ(`<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>`, "blk")
	if r.Type != "result" {
		t.Fatalf("block: %+v", r)
	}
	alice.PresenceFrom("bob@localhost/b", "unavailable")

	fromAlice := func(r xmpptest.Received) bool { return strings.HasPrefix(r.From, "alice@localhost") }
	alice.Send(`<presence><status>hello</status></presence>`)
	alice.Send(`<presence to='bob@localhost/b'><status>hello directly</status></presence>`)
	alice.Send(`<presence to='bob@localhost'><status>hello to the bare JID</status></presence>`)
	alice.Send(`<presence to='bob@localhost' type='probe'/>`)
	alice.Send(`<presence to='bob@localhost' type='subscribe'/>`)
	alice.Send(`<message to='bob@localhost' type='chat' id='m1'><body>hello</body></message>`)
	if e := alice.NextNamed("message", "error"); e.ID != "m1" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("message to the blocker: %+v", e)
	}
	// iq requests to his account are answered for him: not to alice.
	if e := alice.IQ(`<iq type='get' id='v1' to='bob@localhost'><vCard xmlns='vcard-temp'/></iq>`, "v1"); e.Type != "error" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("vCard of the blocker: %+v", e)
	}
	if e := alice.IQ(`<iq type='get' id='l1' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>`, "l1"); e.Type != "error" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("last activity of the blocker: %+v", e)
	}
	// alice got no presence of bob's back from her probe either.
	noneOf(t, "alice", drain(t, alice), func(r xmpptest.Received) bool {
		return r.Name == "presence" && strings.HasPrefix(r.From, "bob@localhost") && r.Type != "unavailable"
	})
	// Everything alice sent was routed before her ping came back; carol's
	// message comes after it, so bob has been sent anything of alice's by
	// then.
	carol.Send(`<message to='bob@localhost/b' type='chat'><body>canary</body></message>`)
	var got []xmpptest.Received
	for r := bob.Next(); r.Body != "canary"; r = bob.Next() {
		got = append(got, r)
	}
	noneOf(t, "bob", got, fromAlice)
	noneOf(t, "bob", drain(t, bob), fromAlice)

	// Unblocked: each sees the other's presence again.
	bob.IQ(`<iq type='set' id='ublk'><unblock xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></unblock></iq>`, "ublk")
	alice.PresenceFrom("bob@localhost/b", "")
	if p := bob.PresenceFrom("alice@localhost/a", ""); !strings.Contains(p.Inner, "hello") {
		t.Fatalf("bob after unblocking: %+v", p)
	}
	alice.Send(`<presence><status>back</status></presence>`)
	if p := bob.PresenceFrom("alice@localhost/a", ""); !strings.Contains(p.Inner, "back") {
		t.Fatalf("bob after unblocking: %+v", p)
	}
}

// TestBlockingStopsStoredStanzas: what a blocked entity left before the
// block (an offline message, a subscription request) is not delivered at
// the blocker's next login either (security review #7).
func TestBlockingStopsStoredStanzas(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	bob.Close()
	waitFor(t, func() bool { return ts.srv.Router().Sessions() == 0 })
	alice := ts.online(t, "alice", "a")
	alice.Send(`<presence to='bob@localhost' type='subscribe'><status>hello</status></presence>`)
	alice.Send(`<message to='bob@localhost' type='chat'><body>stored hello</body></message>`)
	drain(t, alice)
	carol := ts.online(t, "carol", "c")
	carol.Send(`<message to='bob@localhost' type='chat'><body>canary</body></message>`)
	drain(t, carol)

	bob = ts.mustLogin(t, "bob", "b")
	if r := bob.IQ(`<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>`, "blk"); r.Type != "result" {
		t.Fatalf("block: %+v", r)
	}
	bob.Send(`<presence/>`)
	// Requests come before offline messages, and those oldest first:
	// alice's would be in before carol's.
	var got []xmpptest.Received
	for r := bob.Next(); r.Body != "canary"; r = bob.Next() {
		got = append(got, r)
	}
	noneOf(t, "bob", got, func(r xmpptest.Received) bool { return strings.HasPrefix(r.From, "alice@localhost") })
	noneOf(t, "bob", drain(t, bob), func(r xmpptest.Received) bool { return strings.HasPrefix(r.From, "alice@localhost") })
}
