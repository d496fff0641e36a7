package roster

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

var _ Store = (*sqlite.Store)(nil)

// setup returns a core with the roster module and its store.
func setup(t *testing.T, opts Options) (*router.Router, *sqlite.Store, *Module) {
	t.Helper()
	core, store := routertest.New(t)
	m, err := Register(core, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return core, store, m
}

// online binds s, asks for its roster (so that it gets pushes) and makes
// it available.
func online(t *testing.T, core *router.Router, s string) *routertest.Target {
	t.Helper()
	tg := routertest.Bind(t, core, s)
	routertest.Send(t, core, tg, `<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>`)
	if got := tg.Take(); len(got) != 1 || got[0].Type != "result" {
		t.Fatalf("%s's roster get: %v", s, xmls(t, got))
	}
	core.SetPresence(tg, &element.Stanza{Name: "presence"}, 0)
	return tg
}

func xmls(t *testing.T, sts []*element.Stanza) []string {
	t.Helper()
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = routertest.XML(t, st)
	}
	return out
}

// expect checks that tg got exactly one stanza for each of want, in
// order, each containing every fragment of its entry.
func expect(t *testing.T, who string, tg *routertest.Target, want ...[]string) {
	t.Helper()
	got := xmls(t, tg.Take())
	if len(got) != len(want) {
		t.Errorf("%s got %d stanzas, want %d:\n%s", who, len(got), len(want), strings.Join(got, "\n"))
		return
	}
	for i, frags := range want {
		for _, f := range frags {
			if !strings.Contains(got[i], f) {
				t.Errorf("%s's stanza %d lacks %q:\n%s", who, i, f, got[i])
			}
		}
	}
}

func item(t *testing.T, store *sqlite.Store, user, contact string) RosterItem {
	t.Helper()
	it, _, err := store.RosterItem(context.Background(), "localhost", user, contact)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func TestSubscriptionHandshake(t *testing.T) {
	core, store, _ := setup(t, Options{})
	alice, bob := online(t, core, "alice@localhost/a"), online(t, core, "bob@localhost/b")

	routertest.Send(t, core, alice, `<presence to='bob@localhost' type='subscribe' id='sub1'/>`)
	expect(t, "alice", alice, []string{`type="set"`, `ver="1"`, `<item jid="bob@localhost" subscription="none" ask="subscribe">`})
	expect(t, "bob", bob, []string{`<presence`, `from="alice@localhost"`, `to="bob@localhost"`, `id="sub1"`, `type="subscribe"`})
	if it := item(t, store, "bob", "alice@localhost"); !it.PendingIn || it.InRoster {
		t.Errorf("bob's entry after the request: %+v, want pending-in, not in the roster", it)
	}

	routertest.Send(t, core, bob, `<presence to='alice@localhost/a' type='subscribed' id='sub2'/>`)
	expect(t, "bob", bob, []string{`ver="2"`, `<item jid="alice@localhost" subscription="from">`})
	expect(t, "alice", alice,
		[]string{`ver="2"`, `<item jid="bob@localhost" subscription="to">`},
		[]string{`from="bob@localhost"`, `to="alice@localhost"`, `id="sub2"`, `type="subscribed"`},
		[]string{`<presence`, `from="bob@localhost/b"`, `to="alice@localhost/a"`})
	if it := item(t, store, "alice", "bob@localhost"); !it.To || it.From || it.PendingOut {
		t.Errorf("alice's entry: %+v, want to", it)
	}
	if it := item(t, store, "bob", "alice@localhost"); !it.From || it.To || it.PendingIn || !it.InRoster {
		t.Errorf("bob's entry: %+v, want from, in the roster", it)
	}

	// Removing the contact cancels both ways (RFC 6121 §2.5.2).
	routertest.Send(t, core, bob, `<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='alice@localhost' subscription='remove'/></query></iq>`)
	expect(t, "bob", bob, []string{`subscription="remove"`}, []string{`type="result"`, `id="rm"`})
	expect(t, "alice", alice,
		[]string{`from="bob@localhost/b"`, `type="unavailable"`},
		[]string{`<item jid="bob@localhost" subscription="none">`},
		[]string{`from="bob@localhost"`, `type="unsubscribed"`})
	if it := item(t, store, "alice", "bob@localhost"); it.To || !it.InRoster {
		t.Errorf("alice's entry after bob removed her: %+v, want none, in the roster", it)
	}
}

func TestOutboundSubscriptionRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		prepare func(t *testing.T, store *sqlite.Store)
		send    string
		alice   [][]string // what alice gets
		bob     [][]string // what bob gets
		entry   string     // alice's entry for it, "" for none
	}{{
		name: "to her own bare JID: ignored",
		send: `<presence to='alice@localhost' type='subscribe'/>`,
	}, {
		name:  "to a remote domain: the roster changes, nothing is forwarded",
		send:  `<presence to='carol@remote.example/x' type='subscribe'/>`,
		alice: [][]string{{`<item jid="carol@remote.example" subscription="none" ask="subscribe">`}},
		entry: "carol@remote.example",
	}, {
		name: "to a local domain: not a subscription, left to the presence module",
		send: `<presence to='localhost' type='subscribe'/>`,
	}, {
		name:  "to an account that does not exist: unsubscribed comes back",
		send:  `<presence to='nobody@localhost' type='subscribe' id='s'/>`,
		alice: [][]string{{`ask="subscribe"`}, {`subscription="none"`}, {`from="nobody@localhost"`, `type="unsubscribed"`}},
		entry: "nobody@localhost",
	}, {
		name: "her roster is full: resource-constraint, nothing changed or forwarded",
		opts: Options{MaxItems: 1},
		prepare: func(t *testing.T, store *sqlite.Store) {
			if _, err := store.PutRosterItem(context.Background(), "localhost", "alice", RosterItem{Contact: "dave@localhost", InRoster: true}, storage.Quota{Count: 1, Bytes: 1 << 20}); err != nil {
				t.Fatal(err)
			}
		},
		send:  `<presence to='bob@localhost' type='subscribe' id='s'/>`,
		alice: [][]string{{`type="error"`, `from="bob@localhost"`, `id="s"`, `<resource-constraint`}},
	}, {
		name: "his roster is full: the request is refused with an error presence",
		opts: Options{MaxItems: 1},
		prepare: func(t *testing.T, store *sqlite.Store) {
			if _, err := store.PutRosterItem(context.Background(), "localhost", "bob", RosterItem{Contact: "dave@localhost", InRoster: true}, storage.Quota{Count: 1, Bytes: 1 << 20}); err != nil {
				t.Fatal(err)
			}
		},
		send:  `<presence to='bob@localhost' type='subscribe' id='s'/>`,
		alice: [][]string{{`ask="subscribe"`}, {`<presence`, `type="error"`, `from="bob@localhost"`, `to="alice@localhost"`, `id="s"`, `<resource-constraint`}},
		entry: "bob@localhost",
	}, {
		name:  "pre-approval: stored, not forwarded",
		send:  `<presence to='bob@localhost' type='subscribed'/>`,
		alice: [][]string{{`<item jid="bob@localhost" subscription="none" approved="true">`}},
		entry: "bob@localhost",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			core, store, _ := setup(t, tc.opts)
			if tc.prepare != nil {
				tc.prepare(t, store)
			}
			alice, bob := online(t, core, "alice@localhost/a"), online(t, core, "bob@localhost/b")
			routertest.Send(t, core, alice, tc.send)
			expect(t, "alice", alice, tc.alice...)
			expect(t, "bob", bob, tc.bob...)
			items, _, err := store.Roster(context.Background(), "localhost", "alice")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				if it.Contact != "dave@localhost" {
					got = append(got, it.Contact)
				}
			}
			if want := []string{tc.entry}; (tc.entry == "" && len(got) != 0) || (tc.entry != "" && (len(got) != 1 || got[0] != want[0])) {
				t.Errorf("alice's entries: %v, want %q", got, tc.entry)
			}
		})
	}
}

func TestPresenceOutLeavesOtherPresence(t *testing.T) {
	core, _, m := setup(t, Options{})
	from := routertest.Bind(t, core, "alice@localhost/a")
	for _, s := range []string{
		`<presence/>`, `<presence type='subscribe'/>`, `<presence to='bob@localhost'/>`,
		`<presence to='bob@localhost' type='probe'/>`, `<presence to='localhost/x' type='subscribe'/>`,
	} {
		st := routertest.Stanza(t, s)
		if m.presenceOut(&router.EventData{Ctx: context.Background(), From: from, Stanza: st, To: st.To}) {
			t.Errorf("the roster module stopped %s", s)
		}
	}
}

func TestInboundSubscriptionFromBlockedEntity(t *testing.T) {
	core, store, _ := setup(t, Options{})
	// alice blocks mallory: StanzaIn refuses what mallory sends her, and,
	// as the blocking module does, presence other than subscriptions from
	// her to mallory.
	if err := core.Hook(router.StanzaIn, 100, "test", func(ev *router.EventData) bool {
		from, to := ev.Stanza.From.Bare().String(), ev.To.Bare().String()
		return (to == "alice@localhost" && from == "mallory@localhost") ||
			(ev.Stanza.Name == "presence" && !ev.Stanza.IsSubscription() && from == "alice@localhost" && to == "mallory@localhost")
	}); err != nil {
		t.Fatal(err)
	}
	alice, mallory := online(t, core, "alice@localhost/a"), online(t, core, "mallory@localhost/m")
	routertest.Send(t, core, mallory, `<presence to='alice@localhost' type='subscribe'/>`)
	expect(t, "mallory", mallory, []string{`ask="subscribe"`})
	expect(t, "alice", alice)
	if it := item(t, store, "alice", "mallory@localhost"); it.PendingIn {
		t.Errorf("alice's entry for mallory: %+v, want none", it)
	}

	// alice blocks bob after he asked: the request is not redelivered.
	bob := routertest.Bind(t, core, "bob@localhost/b")
	routertest.Send(t, core, bob, `<presence to='alice@localhost' type='subscribe'/>`)
	alice.Take()
	core.Fire(router.PresenceInitial, &router.EventData{Ctx: context.Background(), Target: alice})
	expect(t, "alice", alice, []string{`from="bob@localhost"`, `type="subscribe"`})
	// A request stored before the block is not redelivered after it.
	if _, err := store.PutRosterItem(context.Background(), "localhost", "alice", RosterItem{Contact: "mallory@localhost", PendingIn: true}, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	core.Fire(router.PresenceInitial, &router.EventData{Ctx: context.Background(), Target: alice})
	expect(t, "alice", alice, []string{`from="bob@localhost"`, `type="subscribe"`})

	// alice removes mallory, whom she blocks: mallory's subscriptions to
	// and from her end all the same (RFC 6121 §2.5.2).
	ctx := context.Background()
	for _, e := range []struct{ user, contact string }{{"alice", "mallory@localhost"}, {"mallory", "alice@localhost"}} {
		if _, err := store.PutRosterItem(ctx, "localhost", e.user, RosterItem{Contact: e.contact, To: true, From: true, InRoster: true}, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	mallory.Take()
	routertest.Send(t, core, alice, `<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='mallory@localhost' subscription='remove'/></query></iq>`)
	expect(t, "alice", alice, []string{`subscription="remove"`}, []string{`type="result"`})
	expect(t, "mallory", mallory,
		[]string{`<item jid="alice@localhost" subscription="to">`},
		[]string{`from="alice@localhost"`, `type="unsubscribe"`},
		[]string{`<item jid="alice@localhost" subscription="none">`},
		[]string{`from="alice@localhost"`, `type="unsubscribed"`})
	if it := item(t, store, "mallory", "alice@localhost"); it.To || it.From {
		t.Errorf("mallory's entry for alice after alice removed her: %+v, want no subscription", it)
	}
}

func TestRedeliverPendingRequests(t *testing.T) {
	core, store, _ := setup(t, Options{})
	alice := online(t, core, "alice@localhost/a")
	for _, u := range []string{"bob", "carol"} {
		if _, err := store.EnsureAccount(context.Background(), "localhost", u); err != nil {
			t.Fatal(err)
		}
	}
	routertest.Send(t, core, alice, `<presence to='bob@localhost' type='subscribe' id='keep'><status>hi Bob</status></presence>`)
	// A request too large to keep whole is redelivered bare.
	routertest.Send(t, core, alice, `<presence to='carol@localhost' type='subscribe' id='big'><status>`+strings.Repeat("x", maxPendingInStanza)+`</status></presence>`)

	bob := routertest.Bind(t, core, "bob@localhost/b")
	core.Fire(router.PresenceInitial, &router.EventData{Ctx: context.Background(), Target: bob})
	expect(t, "bob", bob, []string{`from="alice@localhost"`, `to="bob@localhost"`, `id="keep"`, `type="subscribe"`, `hi Bob</status>`})
	carol := routertest.Bind(t, core, "carol@localhost/c")
	core.Fire(router.PresenceInitial, &router.EventData{Ctx: context.Background(), Target: carol})
	got := carol.Take()
	if len(got) != 1 || routertest.XML(t, got[0]) != `<presence xmlns="jabber:client" from="alice@localhost" to="carol@localhost" type="subscribe"></presence>` {
		t.Errorf("carol got %v, want one bare request", xmls(t, got))
	}
}

func TestRosterGetAndSet(t *testing.T) {
	core, _, m := setup(t, Options{})
	a := online(t, core, "alice@localhost/a")
	other := routertest.Bind(t, core, "alice@localhost/other") // never asked: no pushes
	for _, tc := range []struct {
		iq   string
		want [][]string
	}{
		{`<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>`,
			[][]string{{`type="set"`, `<item jid="bob@localhost" name="Bob" subscription="none"><group>Friends</group></item>`}, {`type="result"`, `id="1"`}}},
		{`<iq type='get' id='2'><query xmlns='jabber:iq:roster'/></iq>`,
			[][]string{{`type="result"`, `<query xmlns="jabber:iq:roster" ver="1"><item jid="bob@localhost" name="Bob" subscription="none"><group>Friends</group></item></query>`}}},
		{`<iq type='get' id='3'><query xmlns='jabber:iq:roster' ver='1'/></iq>`,
			[][]string{{`id="3" type="result"></iq>`}}},
		{`<iq type='set' id='4'><query xmlns='jabber:iq:roster'><item jid='a@localhost'/><item jid='b@localhost'/></query></iq>`,
			[][]string{{`type="error"`, `<bad-request`}}},
		{`<iq type='set' id='5'><query xmlns='jabber:iq:roster'><item jid='@@'/></query></iq>`,
			[][]string{{`type="error"`, `<jid-malformed`}}},
		{`<iq type='set' id='6'><query xmlns='jabber:iq:roster'><item jid='nobody@localhost' subscription='remove'/></query></iq>`,
			[][]string{{`type="error"`, `<item-not-found`}}},
		{`<iq type='set' id='7'><query xmlns='jabber:iq:roster'><item jid='c@localhost' name='` + strings.Repeat("n", 1024) + `'/></query></iq>`,
			[][]string{{`type="error"`, `<not-acceptable`}}},
		{`<iq type='set' id='8'><query xmlns='jabber:iq:roster'><item jid='c@localhost'><group>G</group><group> G </group></item></query></iq>`,
			[][]string{{`type="error"`, `<bad-request`}}},
		{`<iq type='get' id='9'><query xmlns='jabber:iq:roster'><item jid='c@localhost'/></query></iq>`,
			[][]string{{`type="error"`, `<bad-request`}}},
		{`<iq type='set' id='10'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`,
			[][]string{{`type="set"`, `<item jid="bob@localhost" subscription="remove">`}, {`type="result"`, `id="10"`}}},
	} {
		routertest.Send(t, core, a, tc.iq)
		expect(t, tc.iq, a, tc.want...)
	}
	expect(t, "the resource that never asked", other)

	// The interest ends with the session.
	core.Unbind(context.Background(), a)
	m.mu.Lock()
	n := len(m.requested)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d sessions still marked after unbind", n)
	}
}

func TestRosterQuotaOnSet(t *testing.T) {
	core, _, _ := setup(t, Options{MaxItems: 1})
	a := online(t, core, "alice@localhost/a")
	routertest.Send(t, core, a, `<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>`)
	expect(t, "alice", a, []string{`type="set"`}, []string{`type="result"`})
	routertest.Send(t, core, a, `<iq type='set' id='2'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>`)
	expect(t, "alice", a, []string{`type="error"`, `<resource-constraint`})
}

func TestAccountDeletedTellsTheContact(t *testing.T) {
	core, store, _ := setup(t, Options{})
	ctx := context.Background()
	bob := online(t, core, "bob@localhost/b")
	// bob's entry for alice as the deletion left it: none in his roster.
	if _, err := store.PutRosterItem(ctx, "localhost", "bob", RosterItem{Contact: "carol@localhost", Name: "Carol", InRoster: true}, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		user  string
		entry storage.DeletedContact
		want  [][]string
	}{
		{"subscribed both ways, entry gone", "alice@localhost", storage.DeletedContact{To: true, From: true, InRoster: true, Version: 7}, [][]string{
			{`from="alice@localhost/a"`, `to="bob@localhost/b"`, `type="unavailable"`},
			{`from="alice@localhost"`, `to="bob@localhost"`, `type="unsubscribed"`},
			{`from="alice@localhost"`, `to="bob@localhost"`, `type="unsubscribe"`},
			{`ver="7"`, `<item jid="alice@localhost" subscription="remove">`},
		}},
		{"entry kept", "carol@localhost", storage.DeletedContact{PendingIn: true, InRoster: true, Version: 8}, [][]string{
			{`from="carol@localhost"`, `type="unsubscribe"`},
			{`ver="8"`, `<item jid="carol@localhost" name="Carol" subscription="none">`},
		}},
		{"hidden entry: no push", "dave@localhost", storage.DeletedContact{PendingOut: true}, [][]string{
			{`from="dave@localhost"`, `type="unsubscribed"`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := jid.MustParse(tc.user)
			avail, _ := jid.New(user.Localpart(), user.Domainpart(), user.Localpart()[:1])
			core.Fire(router.AccountDeleted, &router.EventData{Ctx: ctx, To: user, Deleted: &router.DeletedContact{
				Contact: jid.MustParse("bob@localhost"), Available: []jid.JID{avail}, Entry: tc.entry,
			}})
			expect(t, "bob", bob, tc.want...)
		})
	}
	// The event without a contact is not the roster's.
	core.Fire(router.AccountDeleted, &router.EventData{Ctx: ctx, To: jid.MustParse("alice@localhost")})
	expect(t, "bob", bob)
}
