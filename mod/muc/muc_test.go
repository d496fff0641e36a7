package muc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/muc"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/sqlite"
)

var _ muc.Store = (*sqlite.Store)(nil)

const (
	svc  = "conference.localhost"
	room = "room@conference.localhost"
)

// clock is a settable clock for the rate buckets and history stamps.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type fixture struct {
	core  *router.Router
	store *sqlite.Store
	mod   *muc.Module
	clk   *clock
}

func newFixture(t *testing.T, opts muc.Options) *fixture {
	t.Helper()
	core, store := routertest.New(t)
	return register(t, core, store, opts)
}

func register(t testing.TB, core *router.Router, store *sqlite.Store, opts muc.Options) *fixture {
	t.Helper()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	opts.Services = []string{svc}
	if opts.Now == nil {
		opts.Now = clk.now
	}
	m, err := muc.Register(context.Background(), core, store, opts)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(m.Close)
	return &fixture{core: core, store: store, mod: m, clk: clk}
}

// xmls returns what tg got, as XML.
func xmls(t *testing.T, tg *routertest.Target) []string {
	t.Helper()
	var out []string
	for _, st := range tg.Take() {
		out = append(out, routertest.XML(t, st))
	}
	return out
}

// must fails the test unless one of got contains every one of parts.
func must(t *testing.T, got []string, parts ...string) string {
	t.Helper()
	for _, g := range got {
		ok := true
		for _, p := range parts {
			if !strings.Contains(g, p) {
				ok = false
				break
			}
		}
		if ok {
			return g
		}
	}
	t.Fatalf("no stanza has all of %q; got:\n%s", parts, strings.Join(got, "\n"))
	return ""
}

// mustNot fails the test if one of got contains part.
func mustNot(t *testing.T, got []string, part string) {
	t.Helper()
	for _, g := range got {
		if strings.Contains(g, part) {
			t.Fatalf("a stanza has %q:\n%s", part, g)
		}
	}
}

func join(t *testing.T, f *fixture, tg *routertest.Target, nick, inner string) []string {
	t.Helper()
	routertest.Send(t, f.core, tg, fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>`, room, nick, inner))
	return xmls(t, tg)
}

// create makes alice's room with an instant configuration, or with the
// given form fields.
func create(t *testing.T, f *fixture, alice *routertest.Target, fields string) {
	t.Helper()
	got := join(t, f, alice, "alice", "")
	must(t, got, `code="110"`, `code="201"`, `affiliation="owner"`, `role="moderator"`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+fields+`</x></query></iq>`)
	got = xmls(t, alice)
	must(t, got, `type="result"`, `id="cfg"`)
}

func field(v, value string) string {
	return `<field var='` + v + `'><value>` + value + `</value></field>`
}

func TestCreateJoinTalk(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	carol := routertest.Bind(t, f.core, "carol@localhost/c")

	got := join(t, f, alice, "alice", "")
	must(t, got, `from="room@conference.localhost/alice"`, `code="110"`, `code="201"`, `affiliation="owner"`, `occupant-id`)
	// The subject even in a locked room: clients wait for it.
	must(t, got, `<subject></subject>`)
	// Locked until configured: others do not find it.
	got = join(t, f, bob, "bob", "")
	must(t, got, `type="error"`, `item-not-found`)

	routertest.Send(t, f.core, alice, `<iq type='get' id='g' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`)
	must(t, xmls(t, alice), `type="result"`, `muc#roomconfig_whois`, `muc#roomconfig_persistentroom`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+
		field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig")+field("muc#roomconfig_roomname", "The Room")+field("muc#roomconfig_whois", "anyone")+`</x></query></iq>`)
	got = xmls(t, alice)
	must(t, got, `type="result"`)
	mustNot(t, got, `<subject>`)

	got = join(t, f, bob, "bob", "")
	must(t, got, `from="room@conference.localhost/alice"`, `jid="alice@localhost/a"`) // non-anonymous
	must(t, got, `from="room@conference.localhost/bob"`, `code="110"`, `code="100"`, `role="participant"`)
	must(t, xmls(t, alice), `from="room@conference.localhost/bob"`, `affiliation="none"`)

	routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`' id='m1'><body>one</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>`)
	routertest.Send(t, f.core, bob, `<message type='groupchat' to='`+room+`' id='m2'><body>two</body></message>`)
	for _, tg := range []*routertest.Target{alice, bob} {
		got := xmls(t, tg)
		m := must(t, got, `from="room@conference.localhost/alice"`, `>one</body>`)
		if strings.Contains(m, "forged") {
			t.Errorf("a forged occupant id went through: %s", m)
		}
		must(t, got, `from="room@conference.localhost/bob"`, `>two</body>`)
	}

	// History on join: the last one only, with its delay; then the subject.
	got = join(t, f, carol, "carol", `<history maxstanzas='1'/>`)
	mustNot(t, got, `>one</body>`)
	must(t, got, `>two</body>`, `urn:xmpp:delay`)
	if last := got[len(got)-1]; !strings.Contains(last, "<subject>") {
		t.Errorf("the last stanza on join is not the subject: %s", last)
	}
	xmls(t, alice)
	xmls(t, bob)

	// Subject: a participant may not change it; a moderator may.
	routertest.Send(t, f.core, bob, `<message type='groupchat' to='`+room+`'><subject>hi</subject></message>`)
	must(t, xmls(t, bob), `type="error"`, `forbidden`)
	routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`'><subject>Topic</subject></message>`)
	must(t, xmls(t, carol), `>Topic</subject>`, `from="room@conference.localhost/alice"`)

	// Private message: from the occupant JID, with the muc#user marker.
	routertest.Send(t, f.core, bob, `<message type='chat' to='`+room+`/carol'><body>psst</body></message>`)
	must(t, xmls(t, carol), `from="room@conference.localhost/bob"`, `>psst</body>`, `http://jabber.org/protocol/muc#user`)
	mustNot(t, xmls(t, alice), "psst")
	routertest.Send(t, f.core, bob, `<message type='chat' to='`+room+`/nobody'><body>x</body></message>`)
	must(t, xmls(t, bob), `item-not-found`)

	// A stranger may neither speak nor send private messages.
	dave := routertest.Bind(t, f.core, "dave@localhost/d")
	routertest.Send(t, f.core, dave, `<message type='groupchat' to='`+room+`'><body>spam</body></message>`)
	must(t, xmls(t, dave), `not-acceptable`)
	routertest.Send(t, f.core, dave, `<message type='chat' to='`+room+`/bob'><body>spam</body></message>`)
	must(t, xmls(t, dave), `not-acceptable`)
	mustNot(t, xmls(t, bob), "spam")

	// Nick change: 303 from the old nick, then the new one.
	routertest.Send(t, f.core, carol, `<presence to='`+room+`/caz'/>`)
	got = xmls(t, alice)
	must(t, got, `from="room@conference.localhost/carol"`, `type="unavailable"`, `code="303"`, `nick="caz"`)
	must(t, got, `from="room@conference.localhost/caz"`)
	// Nick conflict.
	routertest.Send(t, f.core, carol, `<presence to='`+room+`/bob'/>`)
	must(t, xmls(t, carol), `type="error"`, `conflict`)
	got = join(t, f, dave, "bob", "")
	must(t, got, `type="error"`, `conflict`)

	// Leave.
	routertest.Send(t, f.core, bob, `<presence type='unavailable' to='`+room+`/bob'/>`)
	must(t, xmls(t, bob), `type="unavailable"`, `code="110"`)
	must(t, xmls(t, alice), `from="room@conference.localhost/bob"`, `type="unavailable"`)
	if n := f.mod.Occupants(jid.MustParse(room)); n != 2 {
		t.Errorf("occupants = %d, want 2", n)
	}
}

func TestSessionEndLeaves(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	create(t, f, alice, "")
	join(t, f, bob, "bob", "")
	xmls(t, alice)

	f.core.Unbind(context.Background(), bob)
	must(t, xmls(t, alice), `from="room@conference.localhost/bob"`, `type="unavailable"`)

	// Unavailable broadcast presence (what the presence module fires)
	// leaves too; the temporary room then goes.
	f.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: alice,
		Stanza: &element.Stanza{Name: "presence", Type: "unavailable"}})
	if n := f.mod.Rooms(svc); n != 0 {
		t.Errorf("rooms = %d after the last occupant left, want 0", n)
	}
}

func TestSelfPing(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	create(t, f, alice, "")
	got := routertest.Ask(t, f.core, alice, `<iq type='get' id='p' to='`+room+`/alice'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if !strings.Contains(got, `type="result"`) {
		t.Errorf("self-ping of a joined occupant = %s, want a result", got)
	}
	got = routertest.Ask(t, f.core, bob, `<iq type='get' id='p' to='`+room+`/bob'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if !strings.Contains(got, `not-acceptable`) {
		t.Errorf("self-ping of a stranger = %s, want not-acceptable", got)
	}
	// disco#info of the service and the room.
	got = routertest.Ask(t, f.core, bob, `<iq type='get' id='d' to='`+svc+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	for _, want := range []string{`category="conference"`, `var="http://jabber.org/protocol/muc"`, `urn:xmpp:occupant-id:0`} {
		if !strings.Contains(got, want) {
			t.Errorf("service disco#info lacks %s: %s", want, got)
		}
	}
	got = routertest.Ask(t, f.core, bob, `<iq type='get' id='d' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	for _, want := range []string{`muc_temporary`, `muc_semianonymous`, `muc#roominfo`} {
		if !strings.Contains(got, want) {
			t.Errorf("room disco#info lacks %s: %s", want, got)
		}
	}
	// No reserved nick: an empty answer, not the room's identity (which
	// clients would take for the nick).
	got = routertest.Ask(t, f.core, bob, `<iq type='get' id='n' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>`)
	if !strings.Contains(got, `type="result"`) || strings.Contains(got, "identity") {
		t.Errorf("reserved nick query = %s, want an empty result", got)
	}
}

func TestKickBanMembers(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	carol := routertest.Bind(t, f.core, "carol@localhost/c")
	create(t, f, alice, "")
	join(t, f, bob, "bob", "")
	join(t, f, carol, "carol", "")
	xmls(t, alice)
	xmls(t, bob)

	// A participant may not kick.
	got := routertest.Ask(t, f.core, bob, `<iq type='set' id='k' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='carol' role='none'/></query></iq>`)
	if !strings.Contains(got, "forbidden") {
		t.Errorf("a participant's kick = %s, want forbidden", got)
	}
	// The owner kicks carol: 307 with actor and reason.
	routertest.Send(t, f.core, alice, `<iq type='set' id='k' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='carol' role='none'><reason>out</reason></item></query></iq>`)
	must(t, xmls(t, alice), `type="result"`, `id="k"`)
	must(t, xmls(t, carol), `type="unavailable"`, `code="307"`, `code="110"`, `>out</reason>`, `nick="alice"`)
	must(t, xmls(t, bob), `from="room@conference.localhost/carol"`, `code="307"`)
	// Kicked, carol may come back.
	join(t, f, carol, "carol", "")
	xmls(t, alice)
	xmls(t, bob)

	// Ban: carol leaves with 301 and cannot come back.
	routertest.Send(t, f.core, alice, `<iq type='set' id='b' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='carol@localhost' affiliation='outcast'/></query></iq>`)
	must(t, xmls(t, carol), `type="unavailable"`, `code="301"`, `affiliation="outcast"`)
	must(t, xmls(t, bob), `code="301"`)
	must(t, join(t, f, carol, "carol", ""), `type="error"`, `forbidden`)

	routertest.Send(t, f.core, alice, `<iq type='get' id='l' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>`)
	must(t, xmls(t, alice), `jid="carol@localhost"`, `affiliation="outcast"`)

	// An owner cannot be kicked, the last owner cannot step down.
	routertest.Send(t, f.core, alice, `<iq type='set' id='x' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='alice' role='none'/></query></iq>`)
	must(t, xmls(t, alice), `not-allowed`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='x' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='alice@localhost' affiliation='member'/></query></iq>`)
	must(t, xmls(t, alice), `conflict`)

	// Members-only: bob, not a member, goes with 322; a member comes in.
	routertest.Send(t, f.core, alice, `<iq type='set' id='c' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+field("muc#roomconfig_membersonly", "1")+`</x></query></iq>`)
	must(t, xmls(t, bob), `type="unavailable"`, `code="322"`)
	must(t, join(t, f, bob, "bob", ""), `registration-required`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='m' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='bob@localhost' affiliation='member'/></query></iq>`)
	xmls(t, alice)
	must(t, join(t, f, bob, "bob", ""), `code="110"`, `affiliation="member"`)

	// Destroy: everyone gets <destroy/>; the room is gone.
	routertest.Send(t, f.core, alice, `<iq type='set' id='d' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>bye</reason></destroy></query></iq>`)
	must(t, xmls(t, bob), `type="unavailable"`, `<destroy`, `bye`)
	if n := f.mod.Rooms(svc); n != 0 {
		t.Errorf("rooms = %d after destroy, want 0", n)
	}
}

func TestPersistentRoomSurvives(t *testing.T) {
	core, store := routertest.New(t)
	f := register(t, core, store, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1")+field("muc#roomconfig_roomname", "Kept"))
	routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`'><subject>Kept subject</subject></message>`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='b' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='eve@localhost' affiliation='outcast'/></query></iq>`)
	routertest.Send(t, f.core, alice, `<presence type='unavailable' to='`+room+`/alice'/>`)
	if n := f.mod.Rooms(svc); n != 1 {
		t.Fatalf("rooms = %d after the owner left a persistent room, want 1", n)
	}

	// A new core over the same store: a restart.
	core2 := router.New(router.Options{Hosts: []string{routertest.Host}, Accounts: store})
	f2 := register(t, core2, store, muc.Options{})
	if n := f2.mod.Rooms(svc); n != 1 {
		t.Fatalf("rooms after restart = %d, want 1", n)
	}
	eve := routertest.Bind(t, f2.core, "eve@localhost/e")
	must(t, join(t, f2, eve, "eve", ""), `forbidden`)
	bob := routertest.Bind(t, f2.core, "bob@localhost/b")
	got := join(t, f2, bob, "bob", "")
	must(t, got, `code="110"`)
	mustNot(t, got, `code="201"`)
	must(t, got, `>Kept subject</subject>`)
	alice2 := routertest.Bind(t, f2.core, "alice@localhost/a")
	must(t, join(t, f2, alice2, "alice", ""), `affiliation="owner"`)

	// Deleted accounts: bob's membership goes, stored too; eve's ban
	// stays (a new account could take her address).
	routertest.Send(t, f2.core, alice2, `<iq type='set' id='m' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='bob@localhost' affiliation='member'/></query></iq>`)
	must(t, xmls(t, alice2), `id="m"`, `type="result"`)
	for _, u := range []string{"bob@localhost", "eve@localhost"} {
		f2.core.ForgetAccount(context.Background(), jid.MustParse(u))
	}
	stored, err := store.MUCRooms(context.Background(), svc)
	if err != nil || len(stored) != 1 {
		t.Fatalf("MUCRooms = %v, %v", stored, err)
	}
	if a, ok := stored[0].Affiliations["bob@localhost"]; ok {
		t.Errorf("a deleted account's affiliation is still stored: %s", a)
	}
	if a := stored[0].Affiliations["eve@localhost"]; a != "outcast" {
		t.Errorf("a deleted account's ban = %q, want outcast kept", a)
	}
}

func TestLimits(t *testing.T) {
	t.Run("rooms per user and per service", func(t *testing.T) {
		f := newFixture(t, muc.Options{MaxRoomsPerUser: 2, MaxRooms: 3})
		alice := routertest.Bind(t, f.core, "alice@localhost/a")
		bob := routertest.Bind(t, f.core, "bob@localhost/b")
		for i, tc := range []struct {
			tg   *routertest.Target
			want string
		}{{alice, "201"}, {alice, "201"}, {alice, "resource-constraint"}, {bob, "201"}, {bob, "resource-constraint"}} {
			routertest.Send(t, f.core, tc.tg, fmt.Sprintf(`<presence to='r%d@%s/n'/>`, i, svc))
			must(t, xmls(t, tc.tg), tc.want)
		}
		if n := f.mod.Rooms(svc); n != 3 {
			t.Errorf("rooms = %d, want 3", n)
		}
	})
	t.Run("occupants", func(t *testing.T) {
		f := newFixture(t, muc.Options{MaxOccupants: 2})
		alice := routertest.Bind(t, f.core, "alice@localhost/a")
		create(t, f, alice, "")
		bob := routertest.Bind(t, f.core, "bob@localhost/b")
		join(t, f, bob, "bob", "")
		carol := routertest.Bind(t, f.core, "carol@localhost/c")
		must(t, join(t, f, carol, "carol", ""), `service-unavailable`)
	})
	t.Run("rate", func(t *testing.T) {
		f := newFixture(t, muc.Options{Rate: 2})
		alice := routertest.Bind(t, f.core, "alice@localhost/a")
		create(t, f, alice, "")
		refused := 0
		for range 20 {
			routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`'><body>flood</body></message>`)
			for _, g := range xmls(t, alice) {
				if strings.Contains(g, "resource-constraint") {
					refused++
				}
			}
		}
		// Burst 4, minus the join and the configuration's own stanza.
		if refused < 15 {
			t.Errorf("refused %d of 20 messages at once, want at least 15", refused)
		}
		f.clk.t = f.clk.t.Add(time.Second)
		routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`'><body>later</body></message>`)
		must(t, xmls(t, alice), `>later</body>`)
	})
	t.Run("join and create floods", func(t *testing.T) {
		f := newFixture(t, muc.Options{Rate: 2})
		eve := routertest.Bind(t, f.core, "eve@localhost/e")
		// Creating and leaving rooms over and over: each join costs a
		// token, whether it fails or not, and leaving does not refill.
		constrained := 0
		for i := range 20 {
			routertest.Send(t, f.core, eve, fmt.Sprintf(`<presence to='r%d@%s/eve'/>`, i, svc))
			routertest.Send(t, f.core, eve, fmt.Sprintf(`<presence type='unavailable' to='r%d@%s/eve'/>`, i, svc))
			for _, g := range xmls(t, eve) {
				if strings.Contains(g, "resource-constraint") {
					constrained++
				}
			}
		}
		if constrained < 15 {
			t.Errorf("%d of 20 create-and-leave cycles refused at once, want at least 15", constrained)
		}
		if n := f.mod.Rooms(svc); n > 4 {
			t.Errorf("%d rooms exist, want none left", n)
		}
	})
	t.Run("archive queries", func(t *testing.T) {
		f := newFixture(t, muc.Options{Rate: 2, ArchiveMessages: 10})
		alice := routertest.Bind(t, f.core, "alice@localhost/a")
		create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
		refused := 0
		for range 20 {
			routertest.Send(t, f.core, alice, `<iq type='set' id='q' to='`+room+`'><query xmlns='urn:xmpp:mam:2'/></iq>`)
			for _, g := range xmls(t, alice) {
				if strings.Contains(g, "resource-constraint") {
					refused++
				}
			}
		}
		if refused < 15 {
			t.Errorf("refused %d of 20 archive queries at once, want at least 15", refused)
		}
	})
	t.Run("history bytes", func(t *testing.T) {
		f := newFixture(t, muc.Options{MaxHistoryBytes: 2048, Rate: 1000})
		alice := routertest.Bind(t, f.core, "alice@localhost/a")
		create(t, f, alice, "")
		for i := range 40 {
			routertest.Send(t, f.core, alice, fmt.Sprintf(`<message type='groupchat' to='%s'><body>%03d %s</body></message>`, room, i, strings.Repeat("x", 100)))
		}
		xmls(t, alice)
		bob := routertest.Bind(t, f.core, "bob@localhost/b")
		got := join(t, f, bob, "bob", "")
		n := 0
		for _, g := range got {
			if strings.Contains(g, "urn:xmpp:delay") {
				n++
			}
		}
		if n == 0 || n > 2048/100 {
			t.Errorf("history sent on join = %d messages, want 1 to %d", n, 2048/100)
		}
		must(t, got, ">039 ")
	})
}

func TestInvitation(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	// bob is available, so that the invitation reaches him.
	f.core.SetPresence(bob, &element.Stanza{Name: "presence"}, 0)
	create(t, f, alice, field("muc#roomconfig_membersonly", "1"))
	routertest.Send(t, f.core, alice, `<message to='`+room+`'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@localhost'><reason>come</reason></invite></x></message>`)
	must(t, xmls(t, bob), `from="room@conference.localhost"`, `from="alice@localhost"`, `come`, `jabber:x:conference`)
	// The invitation made bob a member of the members-only room.
	must(t, join(t, f, bob, "bob", ""), `code="110"`, `affiliation="member"`)
}

// stanzaID returns the stanza-id the room gave the message in x.
func stanzaID(t *testing.T, x string) string {
	t.Helper()
	const marker = `<stanza-id xmlns="urn:xmpp:sid:0" by="` + room + `" id="`
	i := strings.Index(x, marker)
	if i < 0 {
		t.Fatalf("no stanza-id by the room in %s", x)
	}
	rest := x[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestArchiveAndModeration(t *testing.T) {
	f := newFixture(t, muc.Options{ArchiveMessages: 100})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
	got := join(t, f, bob, "bob", "")
	must(t, got, `code="110"`, `code="170"`) // the room is archived
	xmls(t, alice)

	routertest.Send(t, f.core, bob, `<message type='groupchat' to='`+room+`'><body>rude</body><stanza-id xmlns='urn:xmpp:sid:0' by='`+room+`' id='forged'/></message>`)
	routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`'><body>fine</body></message>`)
	rude := must(t, xmls(t, alice), `>rude</body>`)
	if strings.Contains(rude, "forged") {
		t.Fatalf("a forged stanza-id went through: %s", rude)
	}
	rudeID := stanzaID(t, rude)
	xmls(t, bob)

	// The archive, paged by one.
	routertest.Send(t, f.core, bob, `<iq type='set' id='q' to='`+room+`'><query xmlns='urn:xmpp:mam:2' queryid='x'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set></query></iq>`)
	got = xmls(t, bob)
	must(t, got, `queryid="x"`, `id="`+rudeID+`"`, `>rude</body>`, `urn:xmpp:forward:0`)
	must(t, got, `type="result"`, `<fin`, `<set xmlns="http://jabber.org/protocol/rsm">`, `<count>2</count>`)
	mustNot(t, got, `complete="true"`)

	// Only a moderator may retract, and only what exists.
	routertest.Send(t, f.core, bob, `<iq type='set' id='m' to='`+room+`'><moderate xmlns='urn:xmpp:message-moderate:1' id='`+rudeID+`'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>`)
	must(t, xmls(t, bob), `forbidden`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='m' to='`+room+`'><moderate xmlns='urn:xmpp:message-moderate:1' id='nothing'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>`)
	must(t, xmls(t, alice), `item-not-found`)

	// The older form (slixmpp 1.8's, in a fastening).
	routertest.Send(t, f.core, alice, `<iq type='set' id='m' to='`+room+`'><apply-to xmlns='urn:xmpp:fasten:0' id='`+rudeID+`'><moderate xmlns='urn:xmpp:message-moderate:0'><retract xmlns='urn:xmpp:message-retract:0'/><reason>spam</reason></moderate></apply-to></iq>`)
	got = xmls(t, alice)
	must(t, got, `type="result"`, `id="m"`)
	for _, g := range [][]string{got, xmls(t, bob)} {
		must(t, g, `from="`+room+`"`, `<retract xmlns="urn:xmpp:message-retract:1" id="`+rudeID+`"`, `by="`+room+`/alice"`, `spam`, `urn:xmpp:fasten:0`)
	}

	// History and archive keep a tombstone, not the text.
	carol := routertest.Bind(t, f.core, "carol@localhost/c")
	got = join(t, f, carol, "carol", "")
	mustNot(t, got, ">rude<")
	must(t, got, `retracted`, `id="`+rudeID+`"`)
	must(t, got, `>fine</body>`)
	routertest.Send(t, f.core, carol, `<iq type='set' id='q2' to='`+room+`'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	got = xmls(t, carol)
	mustNot(t, got, ">rude<")
	must(t, got, `retracted`, `spam`)
	must(t, got, `complete="true"`)

	// A banned user may not read the archive.
	routertest.Send(t, f.core, alice, `<iq type='set' id='b' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='eve@localhost' affiliation='outcast'/></query></iq>`)
	eve := routertest.Bind(t, f.core, "eve@localhost/e")
	routertest.Send(t, f.core, eve, `<iq type='set' id='q3' to='`+room+`'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	must(t, xmls(t, eve), `forbidden`)

	// The owner turns the archive off (ejabberd's field name): no more
	// 170, no archive feature.
	routertest.Send(t, f.core, alice, `<iq type='get' id='g' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>`)
	must(t, xmls(t, alice), `var="mam"`)
	routertest.Send(t, f.core, alice, `<iq type='set' id='off' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+field("mam", "0")+`</x></query></iq>`)
	xmls(t, alice)
	must(t, xmls(t, carol), `code="104"`) // occupants learn the configuration changed
	if info := routertest.Ask(t, f.core, carol, `<iq type='get' id='d' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`); strings.Contains(info, "urn:xmpp:mam:2") {
		t.Errorf("the room still says it archives: %s", info)
	}
	routertest.Send(t, f.core, carol, `<iq type='set' id='q4' to='`+room+`'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	must(t, xmls(t, carol), `service-unavailable`)
}

// TestOneNickTwoSessions: a user joins with one nick from two resources;
// the room shows one occupant, both sessions get what it is sent, and
// the others see it leave only when the last session does.
func TestOneNickTwoSessions(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	phone := routertest.Bind(t, f.core, "bob@localhost/phone")
	laptop := routertest.Bind(t, f.core, "bob@localhost/laptop")
	create(t, f, alice, "")
	join(t, f, phone, "bob", "")
	must(t, xmls(t, alice), `from="room@conference.localhost/bob"`)
	got := join(t, f, laptop, "bob", "")
	must(t, got, `from="room@conference.localhost/bob"`, `code="110"`)
	if n := f.mod.Occupants(jid.MustParse(room)); n != 2 {
		t.Errorf("occupants = %d, want 2 (alice, bob)", n)
	}
	// Another user may not take the nick.
	mallory := routertest.Bind(t, f.core, "mallory@localhost/m")
	must(t, join(t, f, mallory, "bob", ""), `conflict`)
	xmls(t, alice)
	xmls(t, phone)

	routertest.Send(t, f.core, alice, `<message type='chat' to='`+room+`/bob'><body>to both</body></message>`)
	must(t, xmls(t, phone), `>to both</body>`)
	must(t, xmls(t, laptop), `>to both</body>`)

	routertest.Send(t, f.core, phone, `<presence type='unavailable' to='`+room+`/bob'/>`)
	must(t, xmls(t, phone), `type="unavailable"`, `code="110"`)
	mustNot(t, xmls(t, alice), `type="unavailable"`)
	f.core.Unbind(context.Background(), laptop)
	must(t, xmls(t, alice), `from="room@conference.localhost/bob"`, `type="unavailable"`)
}

// TestRejoin: a session that joins a room it is in already (as a client
// does after a failed self-ping) gets the room again: the others'
// presence, its own with 110, history and subject; it stays one occupant.
func TestRejoin(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	create(t, f, alice, "")
	join(t, f, bob, "bob", "")
	routertest.Send(t, f.core, alice, `<message type='groupchat' to='`+room+`'><body>before</body></message>`)
	xmls(t, alice)
	xmls(t, bob)
	got := join(t, f, bob, "bob", `<history maxstanzas='5'/>`)
	must(t, got, `from="room@conference.localhost/alice"`, `affiliation="owner"`)
	must(t, got, `from="room@conference.localhost/bob"`, `code="110"`)
	must(t, got, `>before</body>`, `urn:xmpp:delay`)
	if last := got[len(got)-1]; !strings.Contains(last, "<subject>") {
		t.Errorf("the rejoin does not end with the subject: %s", last)
	}
	mustNot(t, xmls(t, alice), `type="unavailable"`)
	if n := f.mod.Occupants(jid.MustParse(room)); n != 2 {
		t.Errorf("occupants = %d after a rejoin, want 2", n)
	}
}

// Going unavailable (broadcast) takes a session out of its rooms but
// does not refill its rate bucket: cycling unavailable, join and a burst
// of messages floods a room no faster than the rate.
func TestUnavailableKeepsRate(t *testing.T) {
	f := newFixture(t, muc.Options{Rate: 2})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
	eve := routertest.Bind(t, f.core, "eve@localhost/e")
	sent := 0
	for range 10 {
		join(t, f, eve, "eve", "")
		for range 4 {
			routertest.Send(t, f.core, eve, `<message type='groupchat' to='`+room+`'><body>flood</body></message>`)
		}
		for _, g := range xmls(t, eve) {
			if strings.Contains(g, ">flood</body>") && !strings.Contains(g, `type="error"`) {
				sent++
			}
		}
		f.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: eve,
			Stanza: &element.Stanza{Name: "presence", Type: "unavailable"}})
		xmls(t, eve)
	}
	// A burst of 4 tokens, no time passing: at most 4 stanzas of the 50
	// (joins included) get through.
	if sent > 4 {
		t.Errorf("%d messages went to the room at once, want at most the burst of 4", sent)
	}
}

// Requests that change a room (configuration, affiliations, moderation,
// its vCard) cost a token as messages do: an owner cannot make the
// service write its rooms at any rate.
func TestRoomSetsAreRated(t *testing.T) {
	f := newFixture(t, muc.Options{Rate: 2})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, field("muc#roomconfig_persistentroom", "1"))
	refused := 0
	for i := range 20 {
		routertest.Send(t, f.core, alice, fmt.Sprintf(`<iq type='set' id='s%d' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='u%d@localhost'/></query></iq>`, i, room, i))
		routertest.Send(t, f.core, alice, fmt.Sprintf(`<iq type='set' id='c%d' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`, i, room))
		for _, g := range xmls(t, alice) {
			if strings.Contains(g, "resource-constraint") {
				refused++
			}
		}
	}
	if refused < 30 {
		t.Errorf("refused %d of 40 room changes at once, want at least 30", refused)
	}
	f.clk.t = f.clk.t.Add(time.Second)
	routertest.Send(t, f.core, alice, `<iq type='set' id='later' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	must(t, xmls(t, alice), `id="later"`, `type="result"`)
}

// What a room sends every occupant is bounded in bytes too: a large
// message or presence costs more tokens than a small one, so that one
// occupant cannot fill everyone's send queue (which closes their
// sessions) with a burst of stanzas of the largest size.
func TestBroadcastBytesAreRated(t *testing.T) {
	f := newFixture(t, muc.Options{Rate: 2})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, "")
	eve := routertest.Bind(t, f.core, "eve@localhost/e")
	join(t, f, eve, "eve", "")
	xmls(t, alice)
	big := strings.Repeat("x", 64<<10)
	for range 5 {
		routertest.Send(t, f.core, eve, `<message type='groupchat' to='`+room+`'><body>`+big+`</body></message>`)
		routertest.Send(t, f.core, eve, `<presence to='`+room+`/eve'><status>`+big+`</status></presence>`)
	}
	got := 0
	for _, g := range xmls(t, alice) {
		got += len(g)
	}
	// The burst allows one large stanza (it may run the bucket into
	// debt), not ten.
	if got > 2*len(big) {
		t.Errorf("alice was sent %d bytes by eve's burst, want at most %d", got, 2*len(big))
	}
	// Small messages pass again once the debt is paid.
	f.clk.t = f.clk.t.Add(time.Minute)
	routertest.Send(t, f.core, eve, `<message type='groupchat' to='`+room+`'><body>small</body></message>`)
	must(t, xmls(t, alice), `>small</body>`)
}

// threeInRoom has alice create the room and bob and eve join it, with
// nothing left for alice or bob to read.
func threeInRoom(t *testing.T, f *fixture) (alice, bob, eve *routertest.Target) {
	t.Helper()
	alice = routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, "")
	bob = routertest.Bind(t, f.core, "bob@localhost/b")
	join(t, f, bob, "bob", "")
	eve = routertest.Bind(t, f.core, "eve@localhost/e")
	join(t, f, eve, "eve", "")
	xmls(t, alice)
	xmls(t, bob)
	return alice, bob, eve
}

// A private message carries no stanza-id or occupant-id the sender made
// up: a stanza-id by the addressee's account would pass for one of its
// archive (XEP-0359 §5), an occupant id for another occupant's
// (XEP-0421).
func TestPrivateMessageForgedIDs(t *testing.T) {
	f := newFixture(t, muc.Options{})
	_, bob, eve := threeInRoom(t, f)
	routertest.Send(t, f.core, eve, `<message type='chat' to='`+room+`/bob'><body>hi</body>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>`+
		`<occupant-id xmlns='urn:xmpp:occupant-id:0' id='alices-id'/></message>`)
	got := must(t, xmls(t, bob), `>hi</body>`)
	for _, bad := range []string{`forged`, `alices-id`} {
		if strings.Contains(got, bad) {
			t.Errorf("bob got eve's %q: %s", bad, got)
		}
	}
}

// Each invitee of an invitation costs a token: one message naming 16
// people is not 16 messages for the price of one.
func TestInvitationsAreRated(t *testing.T) {
	f := newFixture(t, muc.Options{Rate: 2})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	create(t, f, alice, "")
	var users []*routertest.Target
	var invites strings.Builder
	for i := range 16 {
		u := routertest.Bind(t, f.core, fmt.Sprintf("u%d@localhost/r", i))
		f.core.SetPresence(u, &element.Stanza{Name: "presence"}, 0)
		users = append(users, u)
		fmt.Fprintf(&invites, `<invite to='u%d@localhost'/>`, i)
	}
	eve := routertest.Bind(t, f.core, "eve@localhost/e")
	join(t, f, eve, "eve", "")
	for range 4 {
		routertest.Send(t, f.core, eve, `<message to='`+room+`'><x xmlns='http://jabber.org/protocol/muc#user'>`+invites.String()+`</x></message>`)
	}
	got := 0
	for _, u := range users {
		for _, g := range xmls(t, u) {
			if strings.Contains(g, "invite") {
				got++
			}
		}
	}
	if got > 16 {
		t.Errorf("eve's 4 messages made %d invitations at once, want at most 16", got)
	}
}

// TestLookAlikeNicks: nicks are compared as RFC 8266 nicknames, so no
// occupant can pass for another with another case or full-width letters,
// and a string that is no nickname cannot join.
func TestLookAlikeNicks(t *testing.T) {
	f := newFixture(t, muc.Options{})
	alice := routertest.Bind(t, f.core, "alice@localhost/a")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	mallory := routertest.Bind(t, f.core, "mallory@localhost/m")
	create(t, f, alice, "")
	must(t, join(t, f, bob, "Bob", ""), `code="110"`)
	xmls(t, alice)
	for _, nick := range []string{"bob", "BOB", "Ｂｏｂ"} {
		must(t, join(t, f, mallory, nick, ""), `conflict`)
	}
	mustNot(t, xmls(t, alice), `mallory`)
	// Messages to another case of bob's nick reach bob.
	routertest.Send(t, f.core, alice, `<message type='chat' to='`+room+`/bob'><body>hi bob</body></message>`)
	must(t, xmls(t, bob), `>hi bob</body>`)
	// Bob may change the case of his own nick.
	routertest.Send(t, f.core, bob, `<presence to='`+room+`/BOB'/>`)
	must(t, xmls(t, bob), `code="303"`)
	must(t, join(t, f, mallory, "mallory", ""), `code="110"`)
}

// An occupant's answer to an iq relayed through the room reaches the
// session that asked, once; a result or error that answers no request
// goes nowhere: relayed, it would let an occupant send another stanzas
// past the room's rate, from behind its nick. A session waits for at
// most 16 answers at once, each for a minute.
func TestOccupantIQAnswers(t *testing.T) {
	f := newFixture(t, muc.Options{Rate: 100})
	alice, bob, eve := threeInRoom(t, f)

	routertest.Send(t, f.core, bob, `<iq type='get' id='v1' to='`+room+`/alice'><query xmlns='jabber:iq:version'/></iq>`)
	must(t, xmls(t, alice), `type="get"`, `id="v1"`, `from="`+room+`/bob"`, `jabber:iq:version`)
	answer := `<iq type='result' id='v1' to='` + room + `/bob'><query xmlns='jabber:iq:version'><name>x</name></query></iq>`
	routertest.Send(t, f.core, alice, answer)
	must(t, xmls(t, bob), `type="result"`, `id="v1"`, `from="`+room+`/alice"`, `>x</name>`)

	// Answered once only; nobody else answers for alice, and nobody
	// answers what bob did not ask.
	routertest.Send(t, f.core, alice, answer)
	for range 50 {
		routertest.Send(t, f.core, eve, answer)
		routertest.Send(t, f.core, eve, `<iq type='error' id='x' to='`+room+`/bob'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	}
	if got := xmls(t, bob); len(got) > 0 {
		t.Errorf("bob got iq answers to nothing he asked:\n%s", strings.Join(got, "\n"))
	}
	if got := xmls(t, eve); len(got) > 0 {
		t.Errorf("eve's answers were answered:\n%s", strings.Join(got, "\n"))
	}

	// At most 16 requests wait for an answer; one answered, or a minute
	// later, makes room for the next.
	ask := func(id string) []string {
		routertest.Send(t, f.core, bob, `<iq type='get' id='`+id+`' to='`+room+`/alice'><ping xmlns='urn:xmpp:ping'/></iq>`)
		return xmls(t, bob)
	}
	for i := range 16 {
		if got := ask(fmt.Sprintf("p%d", i)); len(got) > 0 {
			t.Fatalf("request %d: %s", i, got)
		}
	}
	must(t, ask("p16"), `type="error"`, `resource-constraint`)
	routertest.Send(t, f.core, alice, `<iq type='result' id='p3' to='`+room+`/bob'/>`)
	must(t, xmls(t, bob), `type="result"`, `id="p3"`)
	if got := ask("p17"); len(got) > 0 {
		t.Errorf("after an answer, the next request: %s", got)
	}
	f.clk.t = f.clk.t.Add(time.Minute)
	routertest.Send(t, f.core, alice, `<iq type='result' id='p4' to='`+room+`/bob'/>`)
	if got := xmls(t, bob); len(got) > 0 {
		t.Errorf("an answer after a minute was relayed: %s", got)
	}
	if got := ask("p18"); len(got) > 0 {
		t.Errorf("a minute later, the next request: %s", got)
	}
	xmls(t, alice)
}
