package carbons_test

import (
	"context"
	"strings"
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/carbons"
	"ottr.im/ottr/router"
)

// fixture is a core with carbons and five sessions: alice's a1 and a2
// enabled carbons, a3 did not; bob's b1 (priority 1) and b2 (priority
// 0) enabled them.
type fixture struct {
	core       *router.Router
	mod        *carbons.Module
	a1, a2, a3 *routertest.Target
	b1, b2     *routertest.Target
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	core, _ := routertest.New(t)
	mod, err := carbons.Register(core)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{core: core, mod: mod}
	for _, s := range []struct {
		tg       **routertest.Target
		jid      string
		priority int
		enable   bool
	}{
		{&f.a1, "alice@localhost/a1", 0, true},
		{&f.a2, "alice@localhost/a2", 0, true},
		{&f.a3, "alice@localhost/a3", 0, false},
		{&f.b1, "bob@localhost/b1", 1, true},
		{&f.b2, "bob@localhost/b2", 0, true},
	} {
		tg := routertest.Bind(t, core, s.jid)
		if _, ok := core.SetPresence(tg, &element.Stanza{Name: "presence"}, s.priority); !ok {
			t.Fatalf("%s not bound", s.jid)
		}
		if s.enable {
			if got := routertest.Ask(t, core, tg, `<iq type="set" id="on"><enable xmlns="urn:xmpp:carbons:2"/></iq>`); !strings.Contains(got, `type="result"`) {
				t.Fatalf("enable for %s: %s", s.jid, got)
			}
		}
		*s.tg = tg
	}
	return f
}

// kinds summarizes what tg got: "msg" for a plain message (with
// "+private" when it still carries <private/>), "sent" or "received" for
// a carbon (checked to come from the user's bare JID to tg, with the
// original inside), the type for anything else.
func kinds(t *testing.T, tg *routertest.Target) string {
	t.Helper()
	var out []string
	for _, st := range tg.Take() {
		x := routertest.XML(t, st)
		switch {
		case st.Name != "message" || st.Type == "error":
			out = append(out, st.Name+"/"+st.Type)
		case st.From.Resourcepart() == "" && (strings.Contains(x, `<sent xmlns="urn:xmpp:carbons:2">`) || strings.Contains(x, `<received xmlns="urn:xmpp:carbons:2">`)):
			kind := "sent"
			if strings.Contains(x, "<received") {
				kind = "received"
			}
			if !st.From.Equal(tg.JID().Bare()) || !st.To.Equal(tg.JID()) {
				t.Errorf("%s: carbon from %s to %s", tg.JID(), st.From, st.To)
			}
			if !strings.Contains(x, `<forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client"`) {
				t.Errorf("%s: carbon without the forwarded message: %s", tg.JID(), x)
			}
			out = append(out, kind)
		case strings.Contains(x, "<private"):
			out = append(out, "msg+private")
		default:
			out = append(out, "msg")
		}
	}
	return strings.Join(out, ",")
}

// TestCopies is XEP-0280 §6-§8: which messages are copied, and to whom.
func TestCopies(t *testing.T) {
	for _, tc := range []struct {
		name, send string
		// What a2, a3, b1, b2 get (a1 is the sender and never gets a
		// copy; a1 gets only bounces, checked as a1).
		a1, a2, a3, b1, b2 string
	}{
		{name: "chat to bare: best resource gets it, the other bob a received copy",
			send: `<message to="bob@localhost" type="chat"><body>hi</body></message>`,
			a2:   "sent", b1: "msg", b2: "received"},
		{name: "chat to full: the other bob resource gets a received copy",
			send: `<message to="bob@localhost/b2" type="chat"><body>hi</body></message>`,
			a2:   "sent", b1: "received", b2: "msg"},
		{name: "chat state without body is chat: copied",
			send: `<message to="bob@localhost/b2" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`,
			a2:   "sent", b1: "received", b2: "msg"},
		{name: "normal with body",
			send: `<message to="bob@localhost/b2"><body>hi</body></message>`,
			a2:   "sent", b1: "received", b2: "msg"},
		{name: "normal without body",
			send: `<message to="bob@localhost/b2" type="normal"><x xmlns="urn:example"/></message>`,
			b2:   "msg"},
		{name: "headline",
			send: `<message to="bob@localhost/b2" type="headline"><body>news</body></message>`,
			b2:   "msg"},
		{name: "error",
			send: `<message to="bob@localhost/b2" type="error"><body>hi</body><error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
			b2:   "message/error"},
		{name: "private: no copy either side, stripped on delivery",
			send: `<message to="bob@localhost/b2" type="chat"><body>hi</body><private xmlns="urn:xmpp:carbons:2"/></message>`,
			b2:   "msg"},
		{name: "private to bare",
			send: `<message to="bob@localhost" type="chat"><body>hi</body><private xmlns="urn:xmpp:carbons:2"/></message>`,
			b1:   "msg"},
		{name: "no-copy hint",
			send: `<message to="bob@localhost/b2" type="chat"><body>hi</body><no-copy xmlns="urn:xmpp:hints"/></message>`,
			b2:   "msg"},
		{name: "a carbon is not copied",
			send: `<message to="bob@localhost/b2" type="chat"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"/></received></message>`,
			b2:   "msg"},
		{name: "MUC private message: sent copy, no received copy",
			send: `<message to="bob@localhost/b2" type="chat"><body>hi</body><x xmlns="http://jabber.org/protocol/muc#user"/></message>`,
			a2:   "sent", b2: "msg"},
		{name: "to a full JID not bound: bare rules, one copy",
			send: `<message to="bob@localhost/gone" type="chat"><body>hi</body></message>`,
			a2:   "sent", b1: "msg", b2: "received"},
		{name: "groupchat to an account is bounced, never copied",
			send: `<message to="bob@localhost" type="groupchat"><body>hi</body></message>`,
			a1:   "message/error"},
		{name: "to another resource of one's own: received copies to the others",
			send: `<message to="alice@localhost/a3" type="chat"><body>hi</body></message>`,
			a2:   "received", a3: "msg"},
		{name: "to one's own bare JID",
			send: `<message type="chat"><body>hi</body></message>`,
			a1:   "msg", a2: "msg", a3: "msg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			routertest.Send(t, f.core, f.a1, tc.send)
			for _, c := range []struct {
				tg   *routertest.Target
				want string
			}{{f.a1, tc.a1}, {f.a2, tc.a2}, {f.a3, tc.a3}, {f.b1, tc.b1}, {f.b2, tc.b2}} {
				if got := kinds(t, c.tg); got != c.want {
					t.Errorf("%s got %q, want %q", c.tg.JID(), got, c.want)
				}
			}
		})
	}
}

// TestCopyForm checks one carbon of each direction to the byte, as it is
// written on the stream.
func TestCopyForm(t *testing.T) {
	f := newFixture(t)
	routertest.Send(t, f.core, f.a1, `<message to="bob@localhost/b2" id="m1" type="chat"><body>hi</body></message>`)
	for _, c := range []struct {
		tg   *routertest.Target
		want string
	}{
		{f.a2, `<message from="alice@localhost" to="alice@localhost/a2" type="chat"><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="alice@localhost/a1" to="bob@localhost/b2" id="m1" type="chat"><body>hi</body></message></forwarded></sent></message>`},
		{f.b1, `<message from="bob@localhost" to="bob@localhost/b1" type="chat"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="alice@localhost/a1" to="bob@localhost/b2" id="m1" type="chat"><body>hi</body></message></forwarded></received></message>`},
	} {
		got := c.tg.Take()
		if len(got) != 1 {
			t.Fatalf("%s got %d stanzas, want 1", c.tg.JID(), len(got))
		}
		if x := string(got[0].AppendXML(nil)); x != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.tg.JID(), x, c.want)
		}
	}
}

// TestEnableDisable: the flag per session, its iq errors, its end with
// the session, and the disco feature.
func TestEnableDisable(t *testing.T) {
	f := newFixture(t)
	if !f.mod.Enabled(f.a2) || f.mod.Enabled(f.a3) {
		t.Fatalf("enabled: a2 %v a3 %v", f.mod.Enabled(f.a2), f.mod.Enabled(f.a3))
	}
	for _, tc := range []struct{ send, want string }{
		// Twice is no error (§10.1).
		{`<iq type="set" id="d1"><disable xmlns="urn:xmpp:carbons:2"/></iq>`, `type="result"`},
		{`<iq type="set" id="d2"><disable xmlns="urn:xmpp:carbons:2"/></iq>`, `type="result"`},
		{`<iq type="get" id="g"><enable xmlns="urn:xmpp:carbons:2"/></iq>`, `<bad-request`},
		// Only for one's own session.
		{`<iq type="set" id="o" to="bob@localhost"><enable xmlns="urn:xmpp:carbons:2"/></iq>`, `<service-unavailable`},
	} {
		if got := routertest.Ask(t, f.core, f.a2, tc.send); !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %s, want %s", tc.send, got, tc.want)
		}
	}
	if f.mod.Enabled(f.a2) {
		t.Error("a2 still enabled after disable")
	}
	routertest.Send(t, f.core, f.a1, `<message to="bob@localhost/b2" type="chat"><body>hi</body></message>`)
	if got := kinds(t, f.a2); got != "" {
		t.Errorf("a2 disabled got %q", got)
	}
	f.core.Unbind(context.Background(), f.b1)
	if f.mod.Enabled(f.b1) {
		t.Error("b1 still enabled after unbind")
	}
	found := false
	for _, feat := range f.core.Features() {
		found = found || feat == carbons.NS
	}
	if !found {
		t.Errorf("features %v lack %s", f.core.Features(), carbons.NS)
	}
}

// TestRerouted: a message the server routes again on its own (no sender
// session, as XEP-0198 does with what a session never acknowledged) gets
// no second copy and is not touched.
func TestRerouted(t *testing.T) {
	f := newFixture(t)
	f.core.MessageToBare(context.Background(), nil, routertest.Stanza(t,
		`<message from="alice@localhost/a1" to="bob@localhost" type="chat"><body>again</body></message>`))
	if got := kinds(t, f.b1); got != "msg" {
		t.Errorf("b1 got %q, want msg", got)
	}
	if got := kinds(t, f.b2); got != "" {
		t.Errorf("b2 got %q, want nothing", got)
	}
}

// TestEnableReplaced: a session replaced by a new one for its full JID
// while its enable was on its way is not recorded.
func TestEnableReplaced(t *testing.T) {
	f := newFixture(t)
	newA3 := routertest.Bind(t, f.core, "alice@localhost/a3")
	routertest.Send(t, f.core, f.a3, `<iq type="set" id="late"><enable xmlns="urn:xmpp:carbons:2"/></iq>`)
	if f.mod.Enabled(f.a3) || f.mod.Enabled(newA3) {
		t.Errorf("replaced session enabled: old %v new %v", f.mod.Enabled(f.a3), f.mod.Enabled(newA3))
	}
}
