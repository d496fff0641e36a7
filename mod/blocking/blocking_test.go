package blocking_test

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/blocking"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

var _ blocking.Store = (*sqlite.Store)(nil)

var ctx = context.Background()

// setup returns a core with the blocking module over a new store, and
// the store.
func setup(t *testing.T, opts blocking.Options) (*router.Router, *sqlite.Store) {
	t.Helper()
	core, store := routertest.New(t)
	if _, err := blocking.Register(core, store, opts); err != nil {
		t.Fatal(err)
	}
	return core, store
}

// available binds a session for full and makes it available.
func available(t *testing.T, core *router.Router, full string) *routertest.Target {
	t.Helper()
	tg := routertest.Bind(t, core, full)
	core.SetPresence(tg, &element.Stanza{Name: "presence"}, 0)
	return tg
}

func block(t *testing.T, store *sqlite.Store, user string, jids ...string) {
	t.Helper()
	if err := store.Block(ctx, routertest.Host, user, jids, 100); err != nil {
		t.Fatal(err)
	}
}

// one returns the only stanza tg got, failing the test otherwise.
func one(t *testing.T, tg *routertest.Target) string {
	t.Helper()
	got := tg.Take()
	if len(got) != 1 {
		var all []string
		for _, st := range got {
			all = append(all, routertest.XML(t, st))
		}
		t.Fatalf("%s got %d stanzas, want 1: %v", tg.JID(), len(got), all)
	}
	return routertest.XML(t, got[0])
}

// all returns what tg got, as XML.
func all(t *testing.T, tg *routertest.Target) []string {
	t.Helper()
	var out []string
	for _, st := range tg.Take() {
		out = append(out, routertest.XML(t, st))
	}
	return out
}

func none(t *testing.T, tg *routertest.Target) {
	t.Helper()
	if got := tg.Take(); len(got) != 0 {
		t.Fatalf("%s got %d stanzas, want none; the first: %s", tg.JID(), len(got), routertest.XML(t, got[0]))
	}
}

// TestOutbound: what a user sends to an entity it blocked (XEP-0191
// §3.6).
func TestOutbound(t *testing.T) {
	const blockedErr = `<not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></not-acceptable><blocked xmlns="urn:xmpp:blocking:errors"></blocked></error>`
	for _, tc := range []struct {
		name, send string
		// want is what alice gets back ("" for nothing); bob says
		// whether bob/phone gets the stanza.
		want string
		bob  bool
	}{
		{"message to the bare JID", `<message to="bob@localhost" id="m1" type="chat"><body>hi</body></message>`, blockedErr, false},
		{"message to a full JID", `<message to="bob@localhost/phone" id="m2"><body>hi</body></message>`, blockedErr, false},
		{"iq request to a full JID", `<iq to="bob@localhost/phone" id="i1" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`, blockedErr, false},
		{"iq result to a full JID", `<iq to="bob@localhost/phone" id="i2" type="result"/>`, blockedErr, false},
		{"iq request to the bare JID", `<iq to="bob@localhost" id="i3" type="get"><query xmlns="jabber:iq:version"/></iq>`, blockedErr, false},
		{"iq result to the bare JID is dropped as always", `<iq to="bob@localhost" id="i4" type="result"/>`, "", false},
		{"presence is dropped silently", `<presence to="bob@localhost/phone"/>`, "", false},
		{"subscription is dropped silently", `<presence to="bob@localhost" type="subscribe"/>`, "", false},
		{"message to a blocked remote entity", `<message to="x@evil.example" id="m3"><body>hi</body></message>`, `<remote-server-not-found `, false},
		{"iq request to a blocked remote entity", `<iq to="x@evil.example" id="i5" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`, blockedErr, false},
		{"message to carol passes", `<message to="carol@localhost/phone" id="m4"><body>hi</body></message>`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, store := setup(t, blocking.Options{})
			block(t, store, "alice", "bob@localhost", "evil.example")
			alice := available(t, core, "alice@localhost/home")
			bob := available(t, core, "bob@localhost/phone")
			carol := available(t, core, "carol@localhost/phone")
			routertest.Send(t, core, alice, tc.send)
			if tc.want == "" {
				none(t, alice)
			} else if got := one(t, alice); !strings.Contains(got, `type="error"`) || !strings.Contains(got, tc.want) {
				t.Errorf("alice got %s, want an error with %s", got, tc.want)
			}
			none(t, bob)
			if strings.Contains(tc.send, "carol") {
				one(t, carol)
			}
		})
	}
}

// TestInbound: what reaches an account that blocked the sender
// (XEP-0191 §3.5).
func TestInbound(t *testing.T) {
	const unavailable = `<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable>`
	for _, tc := range []struct {
		name, send string
		want       string // what bob gets back, "" for nothing
		delivered  bool   // whether alice gets it
	}{
		{"message to the bare JID", `<message to="alice@localhost" id="m1" type="chat"><body>hi</body></message>`, unavailable, false},
		{"message to a full JID", `<message to="alice@localhost/home" id="m2" type="chat"><body>hi</body></message>`, unavailable, false},
		{"iq to the account", `<iq to="alice@localhost" id="i1" type="get"><query xmlns="test:account"/></iq>`, unavailable, false},
		{"iq to a full JID", `<iq to="alice@localhost/home" id="i2" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`, unavailable, false},
		{"error message gets no error", `<message to="alice@localhost/home" id="m3" type="error"/>`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, store := setup(t, blocking.Options{})
			answered := false
			err := core.HandleIQ(xml.Name{Space: "test:account", Local: "query"}, router.AtAccount, "", router.IQHandlerFunc(
				func(context.Context, router.IQRequest) (xml.TokenReader, error) { answered = true; return nil, nil }))
			if err != nil {
				t.Fatal(err)
			}
			block(t, store, "alice", "bob@localhost")
			alice := available(t, core, "alice@localhost/home")
			bob := available(t, core, "bob@localhost/phone")
			routertest.Send(t, core, bob, tc.send)
			if tc.want == "" {
				none(t, bob)
			} else if got := one(t, bob); !strings.Contains(got, tc.want) || strings.Contains(got, "blocking:errors") {
				t.Errorf("bob got %s, want %s alone", got, tc.want)
			}
			none(t, alice)
			if answered {
				t.Error("the account's iq handler answered a blocked entity")
			}
		})
	}
}

// TestPresenceBothWays: presence does not pass between two entities when
// either blocked the other, except a subscription change, which only its
// addressee's list refuses.
func TestPresenceBothWays(t *testing.T) {
	for _, tc := range []struct {
		name    string
		blocker string
		typ     string
		blocked bool
	}{
		{"addressee blocks sender", "bob", "", true},
		{"sender blocks addressee's full JID", "alice", "", true},
		{"sender blocks addressee, probe", "alice", "probe", true},
		{"nobody blocks", "", "", false},
		{"addressee blocks sender, unsubscribe", "bob", "unsubscribe", true},
		{"sender blocks addressee, unsubscribed", "alice", "unsubscribed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, store := setup(t, blocking.Options{})
			switch tc.blocker {
			case "bob":
				block(t, store, "bob", "alice@localhost")
			case "alice":
				block(t, store, "alice", "bob@localhost/phone")
			}
			available(t, core, "alice@localhost/home")
			bob := available(t, core, "bob@localhost/phone")
			p := &element.Stanza{Name: "presence", Type: tc.typ, From: mustJID(t, "alice@localhost/home")}
			if got := core.Admit(ctx, nil, p, bob.JID()); got == tc.blocked {
				t.Errorf("Admit = %v, want %v", got, !tc.blocked)
			}
			none(t, bob)
		})
	}
}

// TestCommand: the iq payloads on the user's own account, and the pushes
// to the sessions that asked for the list.
func TestCommand(t *testing.T) {
	core, _ := setup(t, blocking.Options{MaxItems: 2})
	home := available(t, core, "alice@localhost/home")
	phone := available(t, core, "alice@localhost/phone")
	for _, step := range []struct {
		send  string
		want  string // in home's answer
		push  string // in phone's push, "" for none
		asker bool   // phone asks for the list first
	}{
		{send: `<iq id="1" type="get"><blocklist xmlns="urn:xmpp:blocking"/></iq>`, want: `<blocklist xmlns="urn:xmpp:blocking"></blocklist>`},
		{send: `<iq id="2" type="set"><block xmlns="urn:xmpp:blocking"><item jid="bob@localhost"/></block></iq>`, want: `type="result"`},
		{asker: true, send: `<iq id="3" type="set"><block xmlns="urn:xmpp:blocking"><item jid="Carol@LocalHost"/></block></iq>`, want: `type="result"`,
			push: `<block xmlns="urn:xmpp:blocking"><item jid="carol@localhost"></item></block>`},
		{send: `<iq id="4" type="get"><blocklist xmlns="urn:xmpp:blocking"/></iq>`, want: `<item jid="bob@localhost"></item><item jid="carol@localhost"></item>`},
		{send: `<iq id="5" type="set"><block xmlns="urn:xmpp:blocking"><item jid="dave@localhost"/></block></iq>`, want: `<resource-constraint `},
		{send: `<iq id="6" type="set"><block xmlns="urn:xmpp:blocking"><item jid="a@x"/><item jid="b@x"/><item jid="c@x"/></block></iq>`, want: `more than 2 items`},
		{send: `<iq id="7" type="set"><block xmlns="urn:xmpp:blocking"><item jid="@@"/></block></iq>`, want: `<jid-malformed `},
		{send: `<iq id="8" type="set"><block xmlns="urn:xmpp:blocking"/></iq>`, want: `<bad-request `},
		{send: `<iq id="9" type="get"><block xmlns="urn:xmpp:blocking"/></iq>`, want: `<bad-request `},
		{send: `<iq id="10" type="set"><unblock xmlns="urn:xmpp:blocking"><item jid="bob@localhost"/></unblock></iq>`, want: `type="result"`,
			push: `<unblock xmlns="urn:xmpp:blocking"><item jid="bob@localhost"></item></unblock>`},
		{send: `<iq id="11" type="set"><unblock xmlns="urn:xmpp:blocking"/></iq>`, want: `type="result"`,
			push: `<unblock xmlns="urn:xmpp:blocking"></unblock>`},
		{send: `<iq id="12" type="get"><blocklist xmlns="urn:xmpp:blocking"/></iq>`, want: `<blocklist xmlns="urn:xmpp:blocking"></blocklist>`},
	} {
		if step.asker {
			routertest.Send(t, core, phone, `<iq id="p" type="get"><blocklist xmlns="urn:xmpp:blocking"/></iq>`)
			one(t, phone)
		}
		routertest.Send(t, core, home, step.send)
		// home asked for the list first: it gets the pushes too, before
		// the answer.
		got := all(t, home)
		changed := step.want == `type="result"`
		if !strings.Contains(got[len(got)-1], step.want) || changed != (len(got) == 2) {
			t.Errorf("%s: home got %s, want %s, after a push if the list changed", step.send, got, step.want)
		}
		if step.push == "" {
			none(t, phone)
			continue
		}
		push := one(t, phone)
		if !strings.Contains(push, `type="set"`) || !strings.Contains(push, `from="alice@localhost"`) ||
			!strings.Contains(push, `id="push`) || !strings.Contains(push, step.push) {
			t.Errorf("%s: phone got %s, want a push of %s", step.send, push, step.push)
		}
	}
	// Unblocked for good: bob may write again.
	bob := available(t, core, "bob@localhost/x")
	routertest.Send(t, core, bob, `<message to="alice@localhost/home" id="m"><body>hi</body></message>`)
	one(t, home)
}

// TestPresenceAfterBlock: a block makes the user unavailable to the
// subscribers it now blocks and to the entities the BlockListChanged
// handlers add; an unblock restores presence both ways (XEP-0191 §3.3,
// §3.4).
func TestPresenceAfterBlock(t *testing.T) {
	core, store := routertest.New(t)
	carol := mustJID(t, "carol@localhost")
	var changed []string
	err := core.Hook(router.BlockListChanged, 0, "test", func(ev *router.EventData) bool {
		changed = append(changed, ev.To.String())
		if ev.Blocked(carol) {
			ev.Audience[carol.String()] = carol
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocking.Register(core, store, blocking.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, item := range []storage.RosterItem{
		{Contact: "bob@localhost", From: true, To: true, InRoster: true},
		{Contact: "dave@localhost", From: true, InRoster: true},
	} {
		if _, err := store.PutRosterItem(ctx, routertest.Host, "alice", item, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	alice := available(t, core, "alice@localhost/home")
	bob := available(t, core, "bob@localhost/phone")
	carolT := available(t, core, "carol@localhost/phone")
	dave := available(t, core, "dave@localhost/phone")

	routertest.Send(t, core, alice, `<iq id="1" type="set"><block xmlns="urn:xmpp:blocking"><item jid="bob@localhost"/><item jid="carol@localhost"/></block></iq>`)
	one(t, alice)
	for _, tg := range []*routertest.Target{bob, carolT} {
		if got := one(t, tg); got != `<presence xmlns="jabber:client" from="alice@localhost/home" to="`+tg.JID().String()+`" type="unavailable"></presence>` {
			t.Errorf("%s got %s, want unavailable from alice", tg.JID(), got)
		}
	}
	none(t, dave)
	if len(changed) != 1 || changed[0] != "alice@localhost" {
		t.Errorf("BlockListChanged fired for %v, want once for alice@localhost", changed)
	}

	routertest.Send(t, core, alice, `<iq id="2" type="set"><unblock xmlns="urn:xmpp:blocking"><item jid="bob@localhost"/></unblock></iq>`)
	// bob's presence (alice is subscribed to bob), then the result.
	if got := all(t, alice); len(got) != 2 || !strings.Contains(got[0], `from="bob@localhost/phone"`) ||
		strings.Contains(got[0], "unavailable") || !strings.Contains(got[1], `type="result"`) {
		t.Errorf("alice got %s, want bob's presence and the result", got)
	}
	if got := one(t, bob); !strings.Contains(got, `from="alice@localhost/home"`) || strings.Contains(got, "unavailable") {
		t.Errorf("bob got %s, want alice's presence", got)
	}
	none(t, carolT)
}

// failingStore fails BlockList.
type failingStore struct{ *sqlite.Store }

func (failingStore) BlockList(context.Context, string, string) ([]string, error) {
	return nil, errors.New("disk on fire")
}

func TestBindRefusedWhenTheListDoesNotLoad(t *testing.T) {
	core, store := routertest.New(t)
	if _, err := blocking.Register(core, failingStore{store}, blocking.Options{}); err != nil {
		t.Fatal(err)
	}
	err := core.Bind(ctx, routertest.NewTarget(t, "alice@localhost/home"))
	var se stanza.Error
	if !errors.As(err, &se) || se.Condition != stanza.InternalServerError || se.Type != stanza.Wait {
		t.Fatalf("Bind = %v, want a wait internal-server-error", err)
	}
	if n := core.Sessions(); n != 0 {
		t.Errorf("%d sessions bound, want 0", n)
	}
}

// TestCacheForgottenWithTheAccount: the list is read from memory while the
// user is online, and from storage again once the account was deleted.
func TestCacheForgottenWithTheAccount(t *testing.T) {
	core, store := setup(t, blocking.Options{})
	alice := available(t, core, "alice@localhost/home")
	bob := available(t, core, "bob@localhost/phone")
	// Behind the module's back: the cached (empty) list still rules.
	block(t, store, "alice", "bob@localhost")
	send := `<message to="alice@localhost/home" id="m"><body>hi</body></message>`
	routertest.Send(t, core, bob, send)
	one(t, alice)
	none(t, bob)
	core.ForgetAccount(ctx, mustJID(t, "alice@localhost"))
	routertest.Send(t, core, bob, send)
	none(t, alice)
	if got := one(t, bob); !strings.Contains(got, "service-unavailable") {
		t.Errorf("bob got %s, want service-unavailable", got)
	}
}

// TestPushesOnlyToBoundAskers: a session that asked for the list and
// ended gets no push; a new session of the same full JID does not
// inherit its interest.
func TestPushesOnlyToBoundAskers(t *testing.T) {
	core, _ := setup(t, blocking.Options{})
	home := available(t, core, "alice@localhost/home")
	old := available(t, core, "alice@localhost/phone")
	routertest.Send(t, core, old, `<iq id="p" type="get"><blocklist xmlns="urn:xmpp:blocking"/></iq>`)
	one(t, old)
	replaced := available(t, core, "alice@localhost/phone") // replaces old
	routertest.Send(t, core, home, `<iq id="1" type="set"><block xmlns="urn:xmpp:blocking"><item jid="bob@localhost"/></block></iq>`)
	one(t, home)
	none(t, old)
	none(t, replaced)
	if closed, _ := old.Closed(); !closed {
		t.Error("the replaced session was not closed")
	}
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
