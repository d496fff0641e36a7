package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
)

const (
	mucService = "conference." + testHost
	mucRoom    = "lounge@" + mucService
)

// mucPresence waits for presence from the occupant nick of mucRoom whose
// children hold every one of parts.
func mucPresence(c *xmpptest.Client, nick, typ string, parts ...string) xmpptest.Received {
	return c.WaitFor(func(r xmpptest.Received) bool {
		if r.Name != "presence" || r.From != mucRoom+"/"+nick || r.Type != typ {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(r.Inner, p) {
				return false
			}
		}
		return true
	})
}

// mucMessage waits for a groupchat message from nick with body.
func mucMessage(c *xmpptest.Client, nick, body string) xmpptest.Received {
	return c.WaitFor(func(r xmpptest.Received) bool {
		return r.Name == "message" && r.From == mucRoom+"/"+nick && r.Body == body
	})
}

func mucJoin(c *xmpptest.Client, nick, inner string) {
	c.Send(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>`, mucRoom, nick, inner))
}

func mucOwnerSubmit(t *testing.T, c *xmpptest.Client, id, fields string) {
	t.Helper()
	r := c.IQ(`<iq type='set' id='`+id+`' to='`+mucRoom+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+fields+`</x></query></iq>`, id)
	if r.Type != "result" {
		t.Fatalf("configuring the room: %+v", r)
	}
}

// TestMUC runs a room's life over real sockets: creation and
// configuration, joins with history, messages, a kick and a ban, and the
// persistent room after a restart.
func TestMUC(t *testing.T) {
	var dataDir string
	ts := startServer(t, func(c *config.Config) { dataDir = c.DataDir })
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	carol := ts.online(t, "carol", "c")

	// The service is listed by the host and describes itself.
	items := alice.IQ(`<iq type='get' id='items' to='`+testHost+`'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "items")
	if !strings.Contains(items.Inner, `jid="`+mucService+`"`) {
		t.Errorf("the host's disco#items does not list %s: %s", mucService, items.Inner)
	}
	info := alice.IQ(`<iq type='get' id='info' to='`+mucService+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "info")
	if !strings.Contains(info.Inner, `category="conference"`) || !strings.Contains(info.Inner, `var="http://jabber.org/protocol/muc"`) {
		t.Errorf("the service's disco#info: %s", info.Inner)
	}

	// Create: locked (201) until the owner submits the form.
	mucJoin(alice, "alice", "")
	mucPresence(alice, "alice", "", `code="110"`, `code="201"`, `affiliation="owner"`, `role="moderator"`)
	mucJoin(bob, "bob", "")
	if r := bob.NextNamed("presence", "error"); !strings.Contains(r.Inner, "item-not-found") {
		t.Errorf("joining a locked room: %+v", r)
	}
	form := alice.IQ(`<iq type='get' id='form' to='`+mucRoom+`'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`, "form")
	if !strings.Contains(form.Inner, "muc#roomconfig_persistentroom") {
		t.Fatalf("configuration form: %s", form.Inner)
	}
	mucOwnerSubmit(t, alice, "cfg",
		`<field var='muc#roomconfig_persistentroom'><value>1</value></field>`+
			`<field var='muc#roomconfig_roomname'><value>Lounge</value></field>`+
			`<field var='muc#maxhistoryfetch'><value>10</value></field>`)
	alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && strings.Contains(r.Inner, "subject") })

	mucJoin(bob, "bob", "")
	mucPresence(bob, "alice", "", `affiliation="owner"`)
	mucPresence(bob, "bob", "", `code="110"`, `role="participant"`, `occupant-id`)
	mucPresence(alice, "bob", "", `jid="`+bob.JID.String()+`"`) // moderators see real JIDs
	// One after the other, so that the history's order is known.
	for _, m := range []struct {
		c          *xmpptest.Client
		nick, body string
	}{{alice, "alice", "one"}, {bob, "bob", "two"}, {alice, "alice", "three"}} {
		m.c.Send(`<message type='groupchat' to='` + mucRoom + `'><body>` + m.body + `</body></message>`)
		mucMessage(alice, m.nick, m.body)
		mucMessage(bob, m.nick, m.body)
	}
	alice.Send(`<message type='groupchat' to='` + mucRoom + `'><subject>Welcome</subject></message>`)
	alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && strings.Contains(r.Inner, "Welcome") })
	mucJoin(carol, "carol", `<history maxstanzas='2'/>`)
	mucPresence(carol, "carol", "", `code="110"`)
	if r := mucMessage(carol, "bob", "two"); !strings.Contains(r.Inner, "urn:xmpp:delay") {
		t.Errorf("history without delay: %+v", r)
	}
	mucMessage(carol, "alice", "three")
	subject := carol.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && strings.Contains(r.Inner, "subject") })
	if !strings.Contains(subject.Inner, "Welcome") {
		t.Errorf("subject on join: %+v", subject)
	}
	carol.NoneWithin(200*time.Millisecond, func(r xmpptest.Received) bool { return r.Body == "one" })

	// Private message between occupants.
	bob.Send(`<message type='chat' to='` + mucRoom + `/carol'><body>psst</body></message>`)
	if r := carol.WaitFor(func(r xmpptest.Received) bool { return r.Body == "psst" }); r.From != mucRoom+"/bob" {
		t.Errorf("private message from %s, want %s/bob", r.From, mucRoom)
	}

	// Kick carol (307), then ban her (301): she cannot come back.
	if r := alice.IQ(`<iq type='set' id='kick' to='`+mucRoom+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='carol' role='none'><reason>calm down</reason></item></query></iq>`, "kick"); r.Type != "result" {
		t.Fatalf("kick: %+v", r)
	}
	mucPresence(carol, "carol", "unavailable", `code="307"`, `code="110"`, "calm down")
	mucPresence(bob, "carol", "unavailable", `code="307"`)
	mucJoin(carol, "carol", `<history maxstanzas='0'/>`)
	mucPresence(carol, "carol", "", `code="110"`)
	if r := alice.IQ(`<iq type='set' id='ban' to='`+mucRoom+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='carol@`+testHost+`' affiliation='outcast'/></query></iq>`, "ban"); r.Type != "result" {
		t.Fatalf("ban: %+v", r)
	}
	mucPresence(carol, "carol", "unavailable", `code="301"`)
	mucPresence(bob, "carol", "unavailable", `code="301"`, `affiliation="outcast"`)
	mucJoin(carol, "carol", "")
	if r := carol.NextNamed("presence", "error"); !strings.Contains(r.Inner, "forbidden") {
		t.Errorf("a banned user's join: %+v", r)
	}

	// Bob's session ends: the room learns it.
	bob.Close()
	mucPresence(alice, "bob", "unavailable")

	// Restart: the persistent room is back with its name, subject and
	// outcasts; history is not kept over a restart.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("shutdown: %v", err)
	}
	ts2 := startServer(t, func(c *config.Config) { c.DataDir = dataDir })
	dave := ts2.online(t, "dave", "d")
	info = dave.IQ(`<iq type='get' id='ri' to='`+mucRoom+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "ri")
	if info.Type != "result" || !strings.Contains(info.Inner, `name="Lounge"`) || !strings.Contains(info.Inner, "muc_persistent") {
		t.Fatalf("the room after a restart: %+v", info)
	}
	mucJoin(dave, "dave", "")
	r := mucPresence(dave, "dave", "", `code="110"`)
	if strings.Contains(r.Inner, `code="201"`) {
		t.Errorf("joining the stored room created it again: %s", r.Inner)
	}
	subject = dave.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && strings.Contains(r.Inner, "subject") })
	if !strings.Contains(subject.Inner, "Welcome") {
		t.Errorf("subject after restart: %+v", subject)
	}
	carol2 := ts2.online(t, "carol", "c")
	mucJoin(carol2, "carol", "")
	if r := carol2.NextNamed("presence", "error"); !strings.Contains(r.Inner, "forbidden") {
		t.Errorf("a banned user's join after restart: %+v", r)
	}
	alice2 := ts2.online(t, "alice", "a")
	mucJoin(alice2, "alice", "")
	mucPresence(alice2, "alice", "", `affiliation="owner"`)
}

// TestMUCModeration has a moderator retract a message (XEP-0425) in a
// persistent room over real sockets: every occupant is told, and the
// room's archive (XEP-0313 on the room) and history keep a tombstone
// instead of the text.
func TestMUCModeration(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	mucJoin(alice, "alice", "")
	mucPresence(alice, "alice", "", `code="201"`)
	mucOwnerSubmit(t, alice, "cfg", `<field var='muc#roomconfig_persistentroom'><value>1</value></field>`)
	mucJoin(bob, "bob", "")
	mucPresence(bob, "bob", "", `code="110"`, `code="170"`)
	bob.Send(`<message type='groupchat' to='` + mucRoom + `'><body>buy cheap watches</body></message>`)
	spam := mucMessage(alice, "bob", "buy cheap watches")
	const marker = `<stanza-id xmlns="urn:xmpp:sid:0" by="` + mucRoom + `" id="`
	i := strings.Index(spam.Inner, marker)
	if i < 0 {
		t.Fatalf("no stanza-id by the room: %s", spam.Inner)
	}
	id := spam.Inner[i+len(marker):]
	id = id[:strings.IndexByte(id, '"')]
	bob.Send(`<message type='groupchat' to='` + mucRoom + `'><body>sorry</body></message>`)
	mucMessage(alice, "bob", "sorry")

	if r := alice.IQ(`<iq type='set' id='mod' to='`+mucRoom+`'><moderate xmlns='urn:xmpp:message-moderate:1' id='`+id+`'><retract xmlns='urn:xmpp:message-retract:1'/><reason>spam</reason></moderate></iq>`, "mod"); r.Type != "result" {
		t.Fatalf("moderation: %+v", r)
	}
	for _, c := range []*xmpptest.Client{alice, bob} {
		r := c.WaitFor(func(r xmpptest.Received) bool {
			return r.Name == "message" && r.From == mucRoom && strings.Contains(r.Inner, "urn:xmpp:message-retract:1")
		})
		if !strings.Contains(r.Inner, `id="`+id+`"`) || !strings.Contains(r.Inner, mucRoom+"/alice") {
			t.Errorf("%s: retraction %s", c.JID, r.Inner)
		}
	}

	// The archive: a tombstone, then the other message.
	alice.Send(`<iq type='set' id='mam' to='` + mucRoom + `'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>`)
	var results []xmpptest.Received
	for len(results) < 2 {
		results = append(results, alice.WaitFor(func(r xmpptest.Received) bool {
			return r.Name == "message" && r.From == mucRoom && strings.Contains(r.Inner, `queryid="q"`)
		}))
	}
	fin := alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "iq" && r.ID == "mam" })
	if fin.Type != "result" || !strings.Contains(fin.Inner, `complete="true"`) {
		t.Errorf("archive query end: %+v", fin)
	}
	if r := results[0].Inner; strings.Contains(r, "cheap watches") || !strings.Contains(r, "retracted") {
		t.Errorf("first archived message is not a tombstone: %s", r)
	}
	if r := results[1].Inner; !strings.Contains(r, "sorry") {
		t.Errorf("second archived message: %s", r)
	}

	// A newcomer's history has the tombstone too.
	carol := ts.online(t, "carol", "c")
	mucJoin(carol, "carol", "")
	carol.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && strings.Contains(r.Inner, "subject") })
	carol.NoneWithin(100*time.Millisecond, func(r xmpptest.Received) bool { return strings.Contains(r.Inner, "cheap watches") })
}

// TestMUCFlood: a user floods the service with joins that create rooms,
// over a real socket. The stanza rate of its session (20 at once, then
// 10/s) holds: most joins are refused with resource-constraint, few rooms
// exist; a full room refuses one more occupant; the service still serves
// others at once.
func TestMUCFlood(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.MUCOccupants = 2 })
	eve := ts.online(t, "eve", "e")
	const n = 300
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `<presence to='flood%d@%s/eve'/>`, i, mucService)
	}
	eve.Send(b.String())
	created, refused := 0, 0
	for created+refused < n {
		r := eve.NextNamed("presence", "*")
		switch {
		case r.Type == "error" && strings.Contains(r.Inner, "resource-constraint"):
			refused++
		case r.Type == "" && strings.Contains(r.Inner, `code="201"`):
			created++
		}
	}
	// 20 at once, and what 10/s refilled while the burst was read.
	t.Logf("%d joins at once: %d rooms created, %d refused", n, created, refused)
	if created > 40 || refused < n-40 {
		t.Errorf("%d rooms created and %d joins refused of %d at once; want at most 40 created", created, refused, n)
	}

	// A full room: the third occupant is refused.
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	carol := ts.online(t, "carol", "c")
	mucJoin(alice, "alice", "")
	mucPresence(alice, "alice", "", `code="201"`)
	mucOwnerSubmit(t, alice, "cfg", "")
	mucJoin(bob, "bob", "")
	mucPresence(bob, "bob", "", `code="110"`)
	mucJoin(carol, "carol", "")
	if r := carol.NextNamed("presence", "error"); !strings.Contains(r.Inner, "service-unavailable") {
		t.Errorf("joining a full room: %+v", r)
	}
	// The room still works for those inside.
	alice.Send(`<message type='groupchat' to='` + mucRoom + `'><body>still here</body></message>`)
	mucMessage(bob, "alice", "still here")
}
