package presence_test

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/presence"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

var _ presence.Store = (*sqlite.Store)(nil)

// events records what the presence module fires.
type events struct {
	broadcast, initial []string // "full JID type" of each event
	// atBroadcast is how many stanzas the sender had been delivered when
	// PresenceBroadcast fired.
	atBroadcast []int
}

// setup returns a core with the presence module, a StanzaIn hook that
// refuses everything mallory@localhost sends or is sent, and rosters:
// bob and mallory are subscribed to alice, alice to bob.
func setup(t *testing.T, opts presence.Options) (*router.Router, *presence.Module, *events) {
	t.Helper()
	core, store := routertest.New(t)
	m, err := presence.Register(core, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	hooks := []struct {
		event router.Event
		fn    router.HookFunc
	}{
		{router.StanzaIn, func(e *router.EventData) bool {
			return e.To.Bare().String() == "mallory@localhost" || e.Stanza.From.Bare().String() == "mallory@localhost"
		}},
		{router.PresenceBroadcast, func(e *router.EventData) bool {
			ev.broadcast = append(ev.broadcast, e.Target.JID().String()+" "+e.Stanza.Type)
			if tg, ok := e.Target.(*routertest.Target); ok {
				got := tg.Take()
				ev.atBroadcast = append(ev.atBroadcast, len(got))
			}
			return false
		}},
		{router.PresenceInitial, func(e *router.EventData) bool {
			ev.initial = append(ev.initial, e.Target.JID().String()+" "+e.Stanza.Type)
			return false
		}},
	}
	for _, h := range hooks {
		if err := core.Hook(h.event, 100, "test", h.fn); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, e := range []struct {
		user string
		item storage.RosterItem
	}{
		{"alice", storage.RosterItem{Contact: "bob@localhost", From: true, To: true, InRoster: true}},
		{"alice", storage.RosterItem{Contact: "mallory@localhost", From: true, InRoster: true}},
		{"alice", storage.RosterItem{Contact: "remote@elsewhere.example", From: true, InRoster: true}},
		{"bob", storage.RosterItem{Contact: "alice@localhost", From: true, To: true, InRoster: true}},
	} {
		if _, err := store.PutRosterItem(ctx, "localhost", e.user, e.item, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	return core, m, ev
}

// available binds s and sends its initial presence, discarding what it
// gets.
func available(t *testing.T, core *router.Router, s string) *routertest.Target {
	t.Helper()
	tg := routertest.Bind(t, core, s)
	routertest.Send(t, core, tg, `<presence/>`)
	tg.Take()
	return tg
}

// got returns what tg got, one XML string each.
func got(t *testing.T, tg *routertest.Target) []string {
	t.Helper()
	var out []string
	for _, st := range tg.Take() {
		out = append(out, routertest.XML(t, st))
	}
	return out
}

// expect checks that tg got one stanza for each want, containing all its
// fragments, in any order.
func expect(t *testing.T, who string, tg *routertest.Target, want ...[]string) {
	t.Helper()
	all := got(t, tg)
	left := append([]string(nil), all...)
next:
	for _, frags := range want {
		for i, s := range left {
			ok := true
			for _, f := range frags {
				ok = ok && strings.Contains(s, f)
			}
			if ok {
				left = append(left[:i], left[i+1:]...)
				continue next
			}
		}
		t.Errorf("%s got no stanza with %q; got:\n%s", who, frags, strings.Join(all, "\n"))
	}
	if len(all) != len(want) {
		t.Errorf("%s got more than expected:\n%s", who, strings.Join(left, "\n"))
	}
}

func TestBroadcast(t *testing.T) {
	core, _, ev := setup(t, presence.Options{})
	bob := available(t, core, "bob@localhost/x")
	carol := available(t, core, "carol@localhost/c") // not subscribed
	mallory := available(t, core, "mallory@localhost/m")
	phone := routertest.Bind(t, core, "alice@localhost/phone") // bound, not available
	home := routertest.Bind(t, core, "alice@localhost/home")
	ev.broadcast, ev.initial, ev.atBroadcast = nil, nil, nil

	routertest.Send(t, core, home, `<presence><show>away</show><priority>5</priority></presence>`)
	// Its own presence, then bob's from the probe of its contacts.
	expect(t, "home", home,
		[]string{`from="alice@localhost/home" to="alice@localhost/home"`, `away</show>`},
		[]string{`from="bob@localhost/x" to="alice@localhost/home"`})
	expect(t, "bob", bob, []string{`from="alice@localhost/home" to="bob@localhost/x"`, `5</priority>`})
	expect(t, "carol", carol)
	expect(t, "mallory", mallory)
	expect(t, "phone", phone)
	if want := []string{"alice@localhost/home "}; !equal(ev.broadcast, want) || !equal(ev.initial, want) {
		t.Errorf("events: broadcast %q, initial %q; want %q each", ev.broadcast, ev.initial, want)
	}
	if !equal(ev.atBroadcast, []int{0}) {
		t.Errorf("PresenceBroadcast fired after %v deliveries, want before any", ev.atBroadcast)
	}
	if n := len(core.Available(jid.MustParse("alice@localhost"), true)); n != 1 {
		t.Errorf("%d available resources of alice, want 1", n)
	}

	// An update is not initial.
	routertest.Send(t, core, home, `<presence><priority>-1</priority></presence>`)
	expect(t, "home", home, []string{`from="alice@localhost/home"`, `-1</priority>`})
	expect(t, "bob", bob, []string{`from="alice@localhost/home"`})
	if len(ev.initial) != 1 || len(core.Available(jid.MustParse("alice@localhost"), true)) != 0 {
		t.Errorf("after an update: initial events %q; priority not recorded", ev.initial)
	}

	// The other resource sees it; unavailable goes to the session itself.
	routertest.Send(t, core, phone, `<presence/>`)
	expect(t, "home", home, []string{`from="alice@localhost/phone" to="alice@localhost/home"`})
	phone.Take()
	bob.Take()
	routertest.Send(t, core, home, `<presence type='unavailable'><status>bye</status></presence>`)
	for _, tg := range []*routertest.Target{home, phone, bob} {
		expect(t, tg.JID().String(), tg, []string{`from="alice@localhost/home"`, `type="unavailable"`, `bye</status>`})
	}
	if last := ev.broadcast[len(ev.broadcast)-1]; last != "alice@localhost/home unavailable" {
		t.Errorf("last broadcast event %q", last)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBroadcastRefused(t *testing.T) {
	for _, s := range []string{
		`<presence type='probe'/>`,
		`<presence type='subscribe'/>`,
		`<presence><priority>high</priority></presence>`,
		`<presence><priority>128</priority></presence>`,
		`<presence type='unavailable'><priority>-129</priority></presence>`,
	} {
		t.Run(s, func(t *testing.T) {
			core, _, ev := setup(t, presence.Options{})
			bob := available(t, core, "bob@localhost/x")
			alice := routertest.Bind(t, core, "alice@localhost/a")
			ev.broadcast = nil
			routertest.Send(t, core, alice, s)
			expect(t, "alice", alice, []string{`type="error"`, `<bad-request`})
			expect(t, "bob", bob)
			if len(ev.broadcast) != 0 {
				t.Errorf("broadcast events %q", ev.broadcast)
			}
		})
	}
}

func TestAddressedPresence(t *testing.T) {
	for _, tc := range []struct {
		name        string
		send        string
		alice, bob  [][]string
		directedFor int // directed presence records of alice/a
	}{
		{"probe of a contact she is subscribed to", `<presence to='bob@localhost' type='probe'/>`,
			[][]string{{`from="bob@localhost/x" to="alice@localhost/a"`}}, nil, 0},
		{"probe of one she is not subscribed to", `<presence to='carol@localhost' type='probe'/>`, nil, nil, 0},
		{"probe to a full JID: delivered as it is", `<presence to='bob@localhost/x' type='probe' id='p'/>`,
			nil, [][]string{{`from="alice@localhost/a" to="bob@localhost/x" id="p" type="probe"`}}, 0},
		{"error to an account: dropped", `<presence to='bob@localhost' type='error'/>`, nil, nil, 0},
		{"error to a full JID: delivered", `<presence to='bob@localhost/x' type='error'/>`,
			nil, [][]string{{`type="error"`}}, 0},
		{"to a resource not bound: dropped", `<presence to='bob@localhost/gone' type='probe'/>`, nil, nil, 0},
		{"to a remote domain: dropped", `<presence to='bob@elsewhere.example'/>`, nil, nil, 0},
		{"to the server: dropped", `<presence to='localhost'/>`, nil, nil, 0},
		{"to a resource of the server: service-unavailable", `<presence to='localhost/x' id='s'/>`,
			[][]string{{`from="localhost/x"`, `type="error"`, `<service-unavailable`}}, nil, 0},
		{"subscription: not the presence module's", `<presence to='bob@localhost' type='subscribe'/>`, nil, nil, 0},
		{"directed to an account", `<presence to='bob@localhost'><status>hi</status></presence>`,
			nil, [][]string{{`from="alice@localhost/a" to="bob@localhost/x"`, `hi</status>`}}, 1},
		{"directed to a full JID", `<presence to='bob@localhost/x'/>`,
			nil, [][]string{{`from="alice@localhost/a" to="bob@localhost/x"`}}, 1},
		{"directed to one who is refused", `<presence to='mallory@localhost'/>`, nil, nil, 0},
		{"directed unavailable", `<presence to='bob@localhost' type='unavailable'/>`,
			nil, [][]string{{`from="alice@localhost/a" to="bob@localhost/x" type="unavailable"`}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, m, _ := setup(t, presence.Options{})
			bob := available(t, core, "bob@localhost/x")
			alice := available(t, core, "alice@localhost/a")
			bob.Take()
			routertest.Send(t, core, alice, tc.send)
			expect(t, "alice", alice, tc.alice...)
			expect(t, "bob", bob, tc.bob...)
			if n := m.DirectedPresences(alice.JID()); n != tc.directedFor {
				t.Errorf("DirectedPresences = %d, want %d", n, tc.directedFor)
			}
		})
	}
}

func TestDirectedPresenceCapAndUnbind(t *testing.T) {
	core, m, ev := setup(t, presence.Options{DirectedMax: 2})
	bob := available(t, core, "bob@localhost/x")
	carol := available(t, core, "carol@localhost/c")
	dave := available(t, core, "dave@localhost/d")
	alice := routertest.Bind(t, core, "alice@localhost/a")
	other := available(t, core, "alice@localhost/other")
	bob.Take()

	// Not available yet: sent, not remembered.
	routertest.Send(t, core, alice, `<presence to='carol@localhost'/>`)
	expect(t, "carol", carol, []string{`from="alice@localhost/a"`})
	if n := m.DirectedPresences(alice.JID()); n != 0 {
		t.Errorf("an unavailable session remembers %d directed presences", n)
	}
	routertest.Send(t, core, alice, `<presence/>`)
	alice.Take()
	other.Take()
	bob.Take()

	routertest.Send(t, core, alice, `<presence to='carol@localhost'/>`)
	routertest.Send(t, core, alice, `<presence to='carol@localhost'/>`) // known: no new place
	routertest.Send(t, core, alice, `<presence to='dave@localhost/d'/>`)
	routertest.Send(t, core, alice, `<presence to='bob@localhost' id='third'/>`)
	expect(t, "alice", alice, []string{`id="third"`, `type="error"`, `<resource-constraint`})
	expect(t, "bob", bob)
	expect(t, "carol", carol, []string{`from="alice@localhost/a"`}, []string{`from="alice@localhost/a"`})
	expect(t, "dave", dave, []string{`from="alice@localhost/a"`})
	if n := m.DirectedPresences(alice.JID()); n != 2 {
		t.Errorf("DirectedPresences = %d, want 2", n)
	}
	// Unavailable to one frees its place.
	routertest.Send(t, core, alice, `<presence to='carol@localhost' type='unavailable'/>`)
	routertest.Send(t, core, alice, `<presence to='bob@localhost/x'/>`)
	expect(t, "alice", alice)
	carol.Take()
	bob.Take()

	ev.broadcast = nil
	core.Unbind(context.Background(), alice)
	unavailable := []string{`from="alice@localhost/a"`, `type="unavailable"`}
	expect(t, "other", other, unavailable)
	expect(t, "bob (subscriber and directed: once)", bob, unavailable)
	expect(t, "dave (directed)", dave, unavailable)
	expect(t, "carol (no longer directed)", carol)
	expect(t, "alice (unbound)", alice)
	if !equal(ev.broadcast, []string{"alice@localhost/a unavailable"}) {
		t.Errorf("broadcast events at unbind: %q", ev.broadcast)
	}
	// Bound again under the same JID: nothing remembered.
	again := available(t, core, "alice@localhost/a")
	if n := m.DirectedPresences(again.JID()); n != 0 {
		t.Errorf("DirectedPresences after unbind = %d, want 0", n)
	}

	bob.Take()

	// A session that was not available leaves silently.
	quiet := routertest.Bind(t, core, "alice@localhost/quiet")
	ev.broadcast = nil
	core.Unbind(context.Background(), quiet)
	expect(t, "bob", bob)
	if len(ev.broadcast) != 0 {
		t.Errorf("broadcast events for a session that was not available: %q", ev.broadcast)
	}
}

func TestUnavailableBroadcastForgetsDirected(t *testing.T) {
	core, m, _ := setup(t, presence.Options{})
	carol := available(t, core, "carol@localhost/c")
	alice := available(t, core, "alice@localhost/a")
	routertest.Send(t, core, alice, `<presence to='carol@localhost'/>`)
	routertest.Send(t, core, alice, `<presence type='unavailable'/>`)
	expect(t, "carol", carol, []string{`from="alice@localhost/a"`}, []string{`type="unavailable"`})
	if n := m.DirectedPresences(alice.JID()); n != 0 {
		t.Errorf("DirectedPresences after unavailable = %d, want 0", n)
	}
}

func TestBlockListChanged(t *testing.T) {
	core, m, _ := setup(t, presence.Options{})
	for _, s := range []string{"carol@localhost/c", "dave@localhost/d"} {
		available(t, core, s)
	}
	a, b := available(t, core, "alice@localhost/a"), available(t, core, "alice@localhost/b")
	routertest.Send(t, core, a, `<presence to='carol@localhost/c'/>`)
	routertest.Send(t, core, a, `<presence to='dave@localhost'/>`)
	routertest.Send(t, core, b, `<presence to='carol@localhost'/>`)
	audience := map[string]jid.JID{}
	core.Fire(router.BlockListChanged, &router.EventData{
		Ctx:      context.Background(),
		To:       jid.MustParse("alice@localhost"),
		Blocked:  func(other jid.JID) bool { return other.Bare().String() == "carol@localhost" },
		Audience: audience,
	})
	if len(audience) != 1 || !audience["carol@localhost"].Equal(jid.MustParse("carol@localhost")) {
		t.Errorf("audience %v, want carol@localhost", audience)
	}
	if na, nb := m.DirectedPresences(a.JID()), m.DirectedPresences(b.JID()); na != 1 || nb != 0 {
		t.Errorf("directed presences left: a %d, b %d; want 1, 0", na, nb)
	}
}

func TestDirectedDefault(t *testing.T) {
	core, m, _ := setup(t, presence.Options{})
	alice := available(t, core, "alice@localhost/a")
	for i := range presence.DefaultDirectedMax + 1 {
		st := &element.Stanza{Name: "presence", From: alice.JID(), To: jid.MustParse("u" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "@localhost")}
		core.Route(context.Background(), alice, st)
	}
	if n := m.DirectedPresences(alice.JID()); n != presence.DefaultDirectedMax {
		t.Errorf("DirectedPresences = %d, want the default cap %d", n, presence.DefaultDirectedMax)
	}
	expect(t, "alice", alice, []string{`<resource-constraint`})
}
