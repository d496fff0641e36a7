package pep_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/pep"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

var _ pep.Store = (*sqlite.Store)(nil)

type fixture struct {
	t     *testing.T
	core  *router.Router
	store *sqlite.Store
	m     *pep.Module
}

func newFixture(t *testing.T, opts pep.Options) *fixture {
	t.Helper()
	core, store := routertest.New(t)
	m, err := pep.Register(core, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, core: core, store: store, m: m}
}

// subscribe makes contact subscribed to owner's presence (owner's entry
// from, contact's entry to).
func (f *fixture) subscribe(owner, contact string) {
	f.t.Helper()
	ctx := context.Background()
	q := storage.Quota{Count: 100, Bytes: 1 << 20}
	put := func(user, other string, to, from bool) {
		it, _, _ := f.store.RosterItem(ctx, "localhost", user, other+"@localhost")
		it.Contact, it.InRoster = other+"@localhost", true
		it.To, it.From = it.To || to, it.From || from
		if _, err := f.store.PutRosterItem(ctx, "localhost", user, it, q); err != nil {
			f.t.Fatal(err)
		}
	}
	put(owner, contact, false, true)
	put(contact, owner, true, false)
}

// capsInfo is a client's disco#info with these +notify nodes.
func capsInfo(nodes ...string) caps.Info {
	info := caps.Info{Identities: []caps.Identity{{Category: "client", Type: "pc", Name: "test"}},
		Features: []string{"http://jabber.org/protocol/caps"}}
	for _, n := range nodes {
		info.Features = append(info.Features, n+"+notify")
	}
	return info
}

func queryXML(info caps.Info, node string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<query xmlns='http://jabber.org/protocol/disco#info' node='%s'>`, node)
	for _, id := range info.Identities {
		fmt.Fprintf(&b, `<identity category='%s' type='%s' name='%s'/>`, id.Category, id.Type, id.Name)
	}
	for _, feat := range info.Features {
		fmt.Fprintf(&b, `<feature var='%s'/>`, feat)
	}
	b.WriteString(`</query>`)
	return b.String()
}

// online binds a session for full, makes it available with caps
// advertising ver, answers the server's disco#info query (if any) with
// answer, and returns what else it was sent.
func (f *fixture) online(full string, ver string, answer caps.Info) (*routertest.Target, []*element.Stanza) {
	f.t.Helper()
	tg := routertest.Bind(f.t, f.core, full)
	return tg, f.presence(tg, ver, answer)
}

func (f *fixture) presence(tg *routertest.Target, ver string, answer caps.Info) []*element.Stanza {
	f.t.Helper()
	c := ""
	if ver != "" {
		c = fmt.Sprintf(`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='%s'/>`, ver)
	}
	st := routertest.Stanza(f.t, `<presence>`+c+`</presence>`)
	st.From = tg.JID()
	f.core.SetPresence(tg, st, 0)
	f.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: tg, Stanza: st})
	var rest []*element.Stanza
	for _, got := range tg.Take() {
		if got.Name == "iq" && got.Type == "get" && strings.Contains(routertest.XML(f.t, got), "disco#info") {
			if got.From.String() != "localhost" {
				f.t.Fatalf("caps query from %s", got.From)
			}
			routertest.Send(f.t, f.core, tg, fmt.Sprintf(`<iq type='result' id='%s' to='localhost'>%s</iq>`,
				got.ID, queryXML(answer, "https://example.org#"+ver)))
			continue
		}
		rest = append(rest, got)
	}
	return append(rest, tg.Take()...)
}

// ask sends s from tg and returns the one answer.
func (f *fixture) ask(tg *routertest.Target, s string) string {
	f.t.Helper()
	return routertest.Ask(f.t, f.core, tg, s)
}

func publishXML(node, id, payload, options string) string {
	if options != "" {
		options = `<publish-options><x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
			options + `</x></publish-options>`
	}
	return fmt.Sprintf(`<iq type='set' id='pub'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='%s'>%s</item></publish>%s</pubsub></iq>`,
		node, id, payload, options)
}

func field(v, value string) string {
	return fmt.Sprintf(`<field var='%s'><value>%s</value></field>`, v, value)
}

// events returns the pubsub events among got, as XML.
func events(t *testing.T, got []*element.Stanza) []string {
	var out []string
	for _, st := range got {
		if s := routertest.XML(t, st); st.Name == "message" && strings.Contains(s, "pubsub#event") {
			out = append(out, s)
		}
	}
	return out
}

const tune = `<tune xmlns='http://jabber.org/protocol/tune'><artist>Yes</artist></tune>`

func mustContain(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("%s: %s lacks %q", what, s, p)
		}
	}
}

// Who gets the event, by access model: the owner's resources and
// subscribed contacts with +notify; never a contact without +notify or
// without subscription; only the owner for whitelist. Reading follows
// the access model with XEP-0060's errors.
func TestAccessModels(t *testing.T) {
	const node = "http://jabber.org/protocol/tune"
	for _, tc := range []struct {
		access    string
		bobGets   bool
		daveReads string // the condition dave gets reading, "" for the items
		bobReads  string
	}{
		{"open", true, "", ""},
		{"presence", true, "presence-subscription-required", ""},
		{"whitelist", false, "closed-node", "closed-node"},
	} {
		t.Run(tc.access, func(t *testing.T) {
			f := newFixture(t, pep.Options{})
			f.subscribe("alice", "bob")
			f.subscribe("alice", "carol")
			notify := capsInfo(node)
			alice, _ := f.online("alice@localhost/a", notify.Ver(), notify)
			alice2, _ := f.online("alice@localhost/b", "", caps.Info{}) // no caps
			bob, _ := f.online("bob@localhost/b", notify.Ver(), notify)
			plain := capsInfo()
			carol, _ := f.online("carol@localhost/c", plain.Ver(), plain)
			dave, _ := f.online("dave@localhost/d", notify.Ver(), notify)

			routertest.Send(t, f.core, alice, publishXML(node, "t1", tune, field("pubsub#access_model", tc.access)))
			all := alice.Take()
			mustContain(t, "publish result", routertest.XML(t, all[0]), `type="result"`, `<item id="t1">`)
			if ev := events(t, all); len(ev) != 1 {
				t.Fatalf("alice got %d events", len(ev))
			} else {
				mustContain(t, "event", ev[0], `from="alice@localhost"`, `node="`+node+`"`, `Yes</artist>`, `type="headline"`)
			}
			if ev := events(t, bob.Take()); (len(ev) == 1) != tc.bobGets || len(ev) > 1 {
				t.Fatalf("bob got %d events, want %v", len(ev), tc.bobGets)
			}
			for _, tg := range []*routertest.Target{alice2, carol, dave} {
				if ev := events(t, tg.Take()); len(ev) != 0 {
					t.Fatalf("%s got %v", tg.JID(), ev)
				}
			}
			items := `<iq type='get' id='items' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'/></pubsub></iq>`
			for _, c := range []struct {
				tg   *routertest.Target
				cond string
			}{{dave, tc.daveReads}, {bob, tc.bobReads}} {
				got := f.ask(c.tg, items)
				if c.cond == "" {
					mustContain(t, "items", got, `type="result"`, `<item id="t1">`, `Yes</artist>`)
				} else {
					mustContain(t, "items refused", got, `type="error"`, c.cond, "pubsub#errors")
				}
			}
		})
	}
}

// A ver is shared between users only once its hash verified: a client
// that answers with other features than its ver hashes serves itself
// only, and the next user with that ver is asked again.
func TestCapsPoisoning(t *testing.T) {
	const node = "urn:example:n"
	f := newFixture(t, pep.Options{})
	real := capsInfo(node)
	forged := capsInfo("urn:example:other")
	f.subscribe("alice", "mallory")
	f.subscribe("alice", "bob")
	mallory, _ := f.online("mallory@localhost/m", real.Ver(), forged)
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	asked := false
	st := routertest.Stanza(t, `<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='x' ver='`+real.Ver()+`'/></presence>`)
	st.From = bob.JID()
	f.core.SetPresence(bob, st, 0)
	f.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: bob, Stanza: st})
	for _, got := range bob.Take() {
		if got.Name == "iq" {
			asked = true
			routertest.Send(t, f.core, bob, fmt.Sprintf(`<iq type='result' id='%s' to='localhost'>%s</iq>`, got.ID, queryXML(real, "x#"+real.Ver())))
		}
	}
	if !asked {
		t.Fatal("bob was not asked: a forged answer was shared")
	}
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	f.ask(alice, publishXML(node, "1", tune, ""))
	if ev := events(t, bob.Take()); len(ev) != 1 {
		t.Fatalf("bob got %d events", len(ev))
	}
	if ev := events(t, mallory.Take()); len(ev) != 0 {
		t.Fatalf("mallory got %v for a node her answer did not name", ev)
	}
	// A third user with the verified ver is not asked again.
	carol, _ := f.online("carol@localhost/c", real.Ver(), caps.Info{})
	if got := carol.Take(); len(got) != 0 {
		t.Fatalf("carol was sent %d stanzas", len(got))
	}
	// A caps answer from another session than the one asked is ignored:
	// mallory answering bob's query id changes nothing (checked by
	// TestAnswerFromOther below through the public behaviour).
}

// An answer to a capability query from another session than the one
// asked does not count.
func TestAnswerFromOther(t *testing.T) {
	const node = "urn:example:n"
	f := newFixture(t, pep.Options{})
	info := capsInfo(node)
	f.subscribe("alice", "bob")
	bob := routertest.Bind(t, f.core, "bob@localhost/b")
	mallory := routertest.Bind(t, f.core, "mallory@localhost/m")
	st := routertest.Stanza(t, `<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='x' ver='`+info.Ver()+`'/></presence>`)
	st.From = bob.JID()
	f.core.SetPresence(bob, st, 0)
	f.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: bob, Stanza: st})
	got := bob.Take()
	if len(got) != 1 || got[0].Name != "iq" {
		t.Fatalf("bob got %d stanzas", len(got))
	}
	routertest.Send(t, f.core, mallory, fmt.Sprintf(`<iq type='result' id='%s' to='localhost'>%s</iq>`, got[0].ID, queryXML(info, "x#"+info.Ver())))
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	f.ask(alice, publishXML(node, "1", tune, ""))
	if ev := events(t, bob.Take()); len(ev) != 0 {
		t.Fatalf("bob got %v through mallory's answer", ev)
	}
}

func TestPublishOptions(t *testing.T) {
	f := newFixture(t, pep.Options{MaxItems: 10})
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	opts := field("pubsub#access_model", "open") + field("pubsub#persist_items", "true") + field("pubsub#max_items", "max")
	mustContain(t, "create with options", f.ask(alice, publishXML("n", "1", tune, opts)), `type="result"`)
	// The same options hold; others do not.
	mustContain(t, "same options", f.ask(alice, publishXML("n", "2", tune, opts)), `type="result"`)
	for _, bad := range []string{
		field("pubsub#access_model", "whitelist"),
		field("pubsub#max_items", "5"),
		field("pubsub#unknown", "1"),
		field("pubsub#max_items", "11"),
	} {
		got := f.ask(alice, publishXML("n", "3", tune, bad))
		mustContain(t, "precondition "+bad, got, `type="error"`, "<conflict", "precondition-not-met")
	}
	// max is the limit: the node holds 10.
	cfg := f.ask(alice, `<iq type='get' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'/></pubsub></iq>`)
	mustContain(t, "configuration", cfg, `var="pubsub#max_items"`, `<value>10</value>`, `<value>open</value>`)
	// Configure, then the options hold.
	set := `<iq type='set' id='s'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='submit'>` +
		field("FORM_TYPE", "http://jabber.org/protocol/pubsub#node_config") + `%s</x></configure></pubsub></iq>`
	mustContain(t, "configure", f.ask(alice, fmt.Sprintf(set, field("pubsub#access_model", "whitelist"))), `type="result"`)
	mustContain(t, "after configure", f.ask(alice, publishXML("n", "3", tune, field("pubsub#access_model", "whitelist"))), `type="result"`)
	// Configuring past the limit: not-acceptable.
	mustContain(t, "max_items past the limit", f.ask(alice, fmt.Sprintf(set, field("pubsub#max_items", "11"))), `type="error"`, "not-acceptable")
	items := f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n' max_items='2'/></pubsub></iq>`)
	mustContain(t, "max_items 2", items, `<item id="2">`, `<item id="3">`)
	if strings.Contains(items, `<item id="1">`) {
		t.Fatalf("max_items 2 returned item 1: %s", items)
	}
	byID := f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'><item id='1'/></items></pubsub></iq>`)
	mustContain(t, "by id", byID, `<item id="1">`)
	// Retract, purge, delete.
	mustContain(t, "retract", f.ask(alice, `<iq type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n'><item id='1'/></retract></pubsub></iq>`), `type="result"`)
	mustContain(t, "retract again", f.ask(alice, `<iq type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n'><item id='1'/></retract></pubsub></iq>`), "item-not-found")
	mustContain(t, "purge", f.ask(alice, `<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='n'/></pubsub></iq>`), `type="result"`)
	if got := f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'/></pubsub></iq>`); strings.Contains(got, "<item ") {
		t.Fatalf("items after purge: %s", got)
	}
	mustContain(t, "delete", f.ask(alice, `<iq type='set' id='d'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub></iq>`), `type="result"`)
	mustContain(t, "items of a deleted node", f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n'/></pubsub></iq>`), "item-not-found")
	// Someone else's service: no publishing.
	bob, _ := f.online("bob@localhost/b", "", caps.Info{})
	mustContain(t, "publish to alice's", f.ask(bob, strings.Replace(publishXML("n", "1", tune, ""), "<iq ", "<iq to='alice@localhost' ", 1)), "forbidden")
}

func TestLimits(t *testing.T) {
	f := newFixture(t, pep.Options{MaxNodes: 2, MaxItemBytes: 200, MaxBytes: 400, MaxItems: 5})
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	big := `<x xmlns='urn:example'>` + strings.Repeat("a", 200) + `</x>`
	mustContain(t, "item too big", f.ask(alice, publishXML("n1", "1", big, "")), `type="error"`, "not-acceptable", "payload-too-big")
	small := `<x xmlns='urn:example'>` + strings.Repeat("a", 100) + `</x>`
	for _, n := range []string{"n1", "n2"} {
		mustContain(t, "publish", f.ask(alice, publishXML(n, "1", small, "")), `type="result"`)
	}
	mustContain(t, "third node", f.ask(alice, publishXML("n3", "1", small, "")), `type="error"`, "resource-constraint")
	long := strings.Repeat("x", pep.MaxNameBytes+1)
	mustContain(t, "a long item id", f.ask(alice, publishXML("n1", long, small, "")), `type="error"`, "not-acceptable")
	mustContain(t, "a long node name", f.ask(alice, `<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='`+long+`'/></pubsub></iq>`), "not-acceptable")
	mustContain(t, "third node by create", f.ask(alice, `<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='n3'/></pubsub></iq>`), "resource-constraint")
	cfg := `<iq type='set' id='s'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n1'><x xmlns='jabber:x:data' type='submit'>` + field("pubsub#max_items", "5") + `</x></configure></pubsub></iq>`
	mustContain(t, "configure", f.ask(alice, cfg), `type="result"`)
	mustContain(t, "publish", f.ask(alice, publishXML("n1", "2", small, "")), `type="result"`)
	mustContain(t, "past the bytes", f.ask(alice, publishXML("n1", "3", small, "")), `type="error"`, "resource-constraint")
}

// The last item reaches a contact's resource once its capabilities are
// known, with a delay stamp; and a new subscriber when the owner
// approves.
func TestLastItem(t *testing.T) {
	const node = "urn:xmpp:avatar:metadata"
	f := newFixture(t, pep.Options{})
	f.subscribe("alice", "bob")
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	f.ask(alice, publishXML(node, "av1", `<metadata xmlns='urn:xmpp:avatar:metadata'/>`, ""))
	f.ask(alice, publishXML("urn:example:never", "x", tune, field("pubsub#send_last_published_item", "never")))
	notify := capsInfo(node, "urn:example:never")
	_, got := f.online("bob@localhost/b", notify.Ver(), notify)
	ev := events(t, got)
	if len(ev) != 1 {
		t.Fatalf("bob got %d events: %v", len(ev), ev)
	}
	mustContain(t, "last item", ev[0], `<item id="av1">`, `urn:xmpp:delay`, `stamp="`)
	// Alice's own second resource gets her last items too.
	_, got = f.online("alice@localhost/b", notify.Ver(), notify)
	if ev := events(t, got); len(ev) != 1 {
		t.Fatalf("alice's second resource got %d events", len(ev))
	}
}

func TestBookmarksView(t *testing.T) {
	f := newFixture(t, pep.Options{})
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	user := alice.JID().Bare()
	b := f.m.Bookmarks()
	ctx := context.Background()
	doc := `<storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' name='Room' autojoin='1'><nick>al</nick></conference>` +
		`<conference jid='other@conference.localhost'/></storage>`
	if err := b.SetPrivate(ctx, user, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	items := f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`)
	mustContain(t, "XEP-0402 items", items, `<item id="room@conference.localhost">`, `autojoin="true"`, `al</nick>`, `<item id="other@conference.localhost">`)
	// Through XEP-0402, then read through XEP-0048.
	f.ask(alice, publishXML("urn:xmpp:bookmarks:1", "new@conference.localhost", `<conference xmlns='urn:xmpp:bookmarks:1' name='New'/>`, ""))
	f.ask(alice, `<iq type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:xmpp:bookmarks:1'><item id='other@conference.localhost'/></retract></pubsub></iq>`)
	got, err := b.GetPrivate(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "XEP-0048 view", string(got), `jid="room@conference.localhost"`, `jid="new@conference.localhost"`, `name="New"`)
	if strings.Contains(string(got), "other@") {
		t.Fatalf("retracted bookmark in %s", got)
	}
	// A set through XEP-0048 without a room removes its item.
	if err := b.SetPrivate(ctx, user, []byte(`<storage xmlns='storage:bookmarks'/>`)); err != nil {
		t.Fatal(err)
	}
	if items := f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`); strings.Contains(items, "<item ") {
		t.Fatalf("items left: %s", items)
	}
}

func TestDisco(t *testing.T) {
	f := newFixture(t, pep.Options{})
	found := false
	for _, id := range f.core.AccountIdentities() {
		found = found || id == [2]string{"pubsub", "pep"}
	}
	if !found {
		t.Fatal("no pubsub/pep identity")
	}
	feats := strings.Join(f.core.AccountFeatures(), " ")
	mustContain(t, "features", feats, "pubsub#publish", "pubsub#publish-options", "pubsub#access-whitelist")
}

// A contact whose subscription request the owner approves gets the
// owner's last items at once.
func TestLastItemOnSubscription(t *testing.T) {
	const node = "urn:xmpp:avatar:metadata"
	f := newFixture(t, pep.Options{})
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	f.ask(alice, publishXML(node, "av1", `<metadata xmlns='urn:xmpp:avatar:metadata'/>`, ""))
	notify := capsInfo(node)
	bob, got := f.online("bob@localhost/b", notify.Ver(), notify)
	if ev := events(t, got); len(ev) != 0 {
		t.Fatalf("bob got %v before subscribing", ev)
	}
	// Approving without a request changes nothing.
	routertest.Send(t, f.core, alice, `<presence to='bob@localhost' type='subscribed'/>`)
	if ev := events(t, bob.Take()); len(ev) != 0 {
		t.Fatalf("bob got %v without a request", ev)
	}
	q := storage.Quota{Count: 100, Bytes: 1 << 20}
	if _, err := f.store.PutRosterItem(context.Background(), "localhost", "alice",
		storage.RosterItem{Contact: "bob@localhost", PendingIn: true}, q); err != nil {
		t.Fatal(err)
	}
	routertest.Send(t, f.core, alice, `<presence to='bob@localhost' type='subscribed'/>`)
	ev := events(t, bob.Take())
	if len(ev) != 1 {
		t.Fatalf("bob got %d events on approval", len(ev))
	}
	mustContain(t, "last item on subscription", ev[0], `<item id="av1">`, "urn:xmpp:delay")
}

// A client may submit the configuration form it got back whole, with one
// value changed (as Conversations does after precondition-not-met).
func TestConfigureRoundTrip(t *testing.T) {
	f := newFixture(t, pep.Options{})
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	f.ask(alice, publishXML("urn:xmpp:omemo:2:devices", "current", `<devices xmlns='urn:xmpp:omemo:2'/>`, ""))
	got := f.ask(alice, `<iq type='get' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:omemo:2:devices'/></pubsub></iq>`)
	i, j := strings.Index(got, "<x "), strings.LastIndex(got, "</x>")
	if i < 0 || j < 0 {
		t.Fatalf("no form in %s", got)
	}
	form := strings.Replace(got[i:j+4], `type="form"`, `type="submit"`, 1)
	form = strings.Replace(form, `<value>presence</value>`, `<value>open</value>`, 1)
	set := `<iq type='set' id='s'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:omemo:2:devices'>` + form + `</configure></pubsub></iq>`
	mustContain(t, "the form sent back", f.ask(alice, set), `type="result"`)
	mustContain(t, "publish-options open after", f.ask(alice, publishXML("urn:xmpp:omemo:2:devices", "current",
		`<devices xmlns='urn:xmpp:omemo:2'/>`, field("pubsub#access_model", "open"))), `type="result"`)
}

// One session that changes its caps ver again and again and never
// answers holds at most one capability query: it cannot fill the table
// of queries awaiting an answer, which would leave every other session
// without notifications.
func TestCapsQueriesPerSession(t *testing.T) {
	const node = "urn:example:n"
	f := newFixture(t, pep.Options{CapsQueries: 4})
	mallory := routertest.Bind(t, f.core, "mallory@localhost/m")
	for i := range 10 {
		st := routertest.Stanza(t, fmt.Sprintf(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='x' ver='v%d'/></presence>`, i))
		st.From = mallory.JID()
		f.core.SetPresence(mallory, st, 0)
		f.core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: mallory, Stanza: st})
	}
	mallory.Take()
	info := capsInfo(node)
	f.subscribe("alice", "bob")
	bob, _ := f.online("bob@localhost/b", info.Ver(), info)
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	f.ask(alice, publishXML(node, "1", tune, ""))
	if ev := events(t, bob.Take()); len(ev) != 1 {
		t.Fatalf("bob got %d events: mallory's unanswered queries kept his from being sent", len(ev))
	}
}

// TestBookmarksWithoutOptions: bookmarks published without
// publish-options start as XEP-0402 §5 asks: a contact cannot read them
// (room passwords), and every room is kept, not only the last.
func TestBookmarksWithoutOptions(t *testing.T) {
	f := newFixture(t, pep.Options{})
	f.subscribe("alice", "bob")
	alice, _ := f.online("alice@localhost/a", "", caps.Info{})
	bob, _ := f.online("bob@localhost/b", "", caps.Info{})
	for _, room := range []string{"one", "two"} {
		got := f.ask(alice, publishXML(pep.NodeBookmarks, room+"@conference.localhost", `<conference xmlns='urn:xmpp:bookmarks:1'><password>secret</password></conference>`, ""))
		mustContain(t, "publish", got, `type="result"`)
	}
	items := f.ask(alice, `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`)
	mustContain(t, "alice's bookmarks", items, `one@conference.localhost`, `two@conference.localhost`)
	got := f.ask(bob, `<iq to='alice@localhost' type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`)
	if strings.Contains(got, "secret") || !strings.Contains(got, `type="error"`) {
		t.Errorf("a contact read alice's bookmarks: %s", got)
	}
}
