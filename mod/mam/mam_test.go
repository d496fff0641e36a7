package mam_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/mam"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

var _ mam.Store = (*sqlite.Store)(nil)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a core with the archive, alice (a1) and bob (b1, b2)
// available, carol's account without a session.
type fixture struct {
	core   *router.Router
	store  *sqlite.Store
	mod    *mam.Module
	clock  *clock
	a1     *routertest.Target
	b1, b2 *routertest.Target
}

func newFixture(t *testing.T, opts mam.Options) *fixture {
	t.Helper()
	core, store := routertest.New(t)
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	mod, err := mam.Register(core, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mod.Close)
	if _, err := store.EnsureAccount(context.Background(), routertest.Host, "carol"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{core: core, store: store, mod: mod, clock: c}
	for _, s := range []struct {
		tg  **routertest.Target
		jid string
	}{{&f.a1, "alice@localhost/a1"}, {&f.b1, "bob@localhost/b1"}, {&f.b2, "bob@localhost/b2"}} {
		tg := routertest.Bind(t, core, s.jid)
		if ok, _ := core.SetPresence(tg, &element.Stanza{Name: "presence"}, 0); !ok {
			t.Fatalf("%s not bound", s.jid)
		}
		*s.tg = tg
	}
	return f
}

// archive returns the messages of user's archive, oldest first.
func (f *fixture) archive(t *testing.T, user string) []storage.ArchivedMessage {
	t.Helper()
	f.mod.Flush()
	page, err := f.store.QueryArchive(context.Background(), routertest.Host, user, storage.ArchiveQuery{Max: 1000, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	return page.Messages
}

// bodies returns the body of each message of user's archive.
func (f *fixture) bodies(t *testing.T, user string) []string {
	t.Helper()
	var out []string
	for _, m := range f.archive(t, user) {
		st, err := element.Unmarshal(m.Stanza)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st.ChildText(element.NSClient, "body"))
	}
	return out
}

var stanzaIDRE = regexp.MustCompile(`<stanza-id xmlns="urn:xmpp:sid:0" by="([^"]*)" id="([^"]*)"/?>`)

// wire returns st as the server writes it.
func wire(st *element.Stanza) string { return string(st.AppendXML(nil)) }

// stanzaIDs returns the by=id pairs of the stanza-ids in x.
func stanzaIDs(x string) []string {
	var out []string
	for _, m := range stanzaIDRE.FindAllStringSubmatch(x, -1) {
		out = append(out, m[1]+"="+m[2])
	}
	return out
}

func TestArchiving(t *testing.T) {
	for _, tc := range []struct {
		name       string
		send       string
		alice, bob []string // archived bodies
	}{
		{"chat", `<message to="bob@localhost" type="chat"><body>hi</body></message>`, []string{"hi"}, []string{"hi"}},
		{"normal", `<message to="bob@localhost"><body>hi</body></message>`, []string{"hi"}, []string{"hi"}},
		{"to a full JID", `<message to="bob@localhost/b2" type="chat"><body>hi</body></message>`, []string{"hi"}, []string{"hi"}},
		{"chat without body", `<message to="bob@localhost" type="chat"><active xmlns="http://jabber.org/protocol/chatstates"/></message>`, nil, nil},
		{"headline", `<message to="bob@localhost" type="headline"><body>hi</body></message>`, nil, nil},
		{"headline with store", `<message to="bob@localhost" type="headline"><body>hi</body><store xmlns="urn:xmpp:hints"/></message>`, []string{"hi"}, []string{"hi"}},
		{"no-store", `<message to="bob@localhost" type="chat"><body>hi</body><no-store xmlns="urn:xmpp:hints"/></message>`, nil, nil},
		{"no-permanent-store", `<message to="bob@localhost" type="chat"><body>hi</body><no-permanent-store xmlns="urn:xmpp:hints"/></message>`, nil, nil},
		{"store wins", `<message to="bob@localhost" type="chat"><body>hi</body><no-store xmlns="urn:xmpp:hints"/><store xmlns="urn:xmpp:hints"/></message>`, []string{"hi"}, []string{"hi"}},
		{"error", `<message to="bob@localhost" type="error"><body>hi</body><store xmlns="urn:xmpp:hints"/></message>`, nil, nil},
		{"to oneself, once", `<message to="alice@localhost" type="chat"><body>me</body></message>`, []string{"me"}, nil},
		{"to one's own other resource, once", `<message to="alice@localhost/gone" type="chat"><body>me</body></message>`, []string{"me"}, nil},
		{"to nobody's account: outgoing only", `<message to="nobody@localhost" type="chat"><body>x</body></message>`, []string{"x"}, nil},
		{"to another server: outgoing", `<message to="dave@example.net" type="chat"><body>x</body></message>`, []string{"x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, mam.Options{})
			routertest.Send(t, f.core, f.a1, tc.send)
			if got := f.bodies(t, "alice"); fmt.Sprint(got) != fmt.Sprint(tc.alice) {
				t.Errorf("alice's archive: %q, want %q", got, tc.alice)
			}
			if got := f.bodies(t, "bob"); fmt.Sprint(got) != fmt.Sprint(tc.bob) {
				t.Errorf("bob's archive: %q, want %q", got, tc.bob)
			}
		})
	}
}

func TestStanzaID(t *testing.T) {
	f := newFixture(t, mam.Options{})
	// A stanza-id by bob from the sender goes; one by someone else stays.
	routertest.Send(t, f.core, f.a1, `<message to="bob@localhost" type="chat" id="m1"><body>hi</body>`+
		`<stanza-id xmlns="urn:xmpp:sid:0" by="bob@localhost" id="fake"/><stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="mine"/>`+
		`<stanza-id xmlns="urn:xmpp:sid:0" by="example.net" id="other"/></message>`)
	got := append(f.b1.Take(), f.b2.Take()...)
	if len(got) != 2 {
		t.Fatalf("bob's resources got %d stanzas, want 2", len(got))
	}
	bobs := f.archive(t, "bob")
	alices := f.archive(t, "alice")
	if len(bobs) != 1 || len(alices) != 1 {
		t.Fatalf("archives: alice %d, bob %d messages; want 1 each", len(alices), len(bobs))
	}
	for _, st := range got {
		x := routertest.XML(t, st)
		want := []string{"example.net=other", "bob@localhost=" + bobs[0].ID}
		if ids := stanzaIDs(x); fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("delivered stanza-ids %q, want %q in %s", ids, want, x)
		}
	}
	// The archived copies: bob's without the id it is stored under, and
	// without the fake; alice's (outgoing) without hers.
	for _, c := range []struct {
		m    storage.ArchivedMessage
		want string
	}{{bobs[0], "[example.net=other]"}, {alices[0], "[bob@localhost=fake example.net=other]"}} {
		if ids := stanzaIDs(string(c.m.Stanza)); fmt.Sprint(ids) != c.want {
			t.Errorf("archived stanza-ids %q in %s, want %s", ids, c.m.Stanza, c.want)
		}
	}
	if alices[0].With != "bob@localhost" || bobs[0].With != "alice@localhost/a1" || alices[0].ID == bobs[0].ID {
		t.Errorf("alice's copy %+v, bob's %+v", alices[0], bobs[0])
	}

	// The same stanza routed again (as stream management does with what
	// a session did not acknowledge) is not archived twice and keeps its
	// id.
	again := got[0]
	again.To = again.To.Bare()
	f.b1.Refuse()
	f.b2.Refuse()
	f.core.MessageToBare(context.Background(), f.a1, again)
	if n := len(f.archive(t, "bob")); n != 1 {
		t.Errorf("bob's archive after routing again: %d messages, want 1", n)
	}
	if ids := stanzaIDs(routertest.XML(t, again)); fmt.Sprint(ids) != fmt.Sprint([]string{"example.net=other", "bob@localhost=" + bobs[0].ID}) {
		t.Errorf("stanza-ids after routing again: %q", ids)
	}
	// Not when another sender copies the id.
	routertest.Send(t, f.core, f.a1, `<message to="carol@localhost" type="chat"><body>x</body></message>`)
	carols := f.archive(t, "carol")
	if len(carols) != 1 {
		t.Fatalf("carol's archive: %d messages", len(carols))
	}
	eve := routertest.Bind(t, f.core, "eve@localhost/e")
	routertest.Send(t, f.core, eve, `<message to="carol@localhost" type="chat"><body>y</body><stanza-id xmlns="urn:xmpp:sid:0" by="carol@localhost" id="`+carols[0].ID+`"/></message>`)
	if got := f.bodies(t, "carol"); fmt.Sprint(got) != "[x y]" {
		t.Errorf("carol's archive after a copied id: %q, want [x y]", got)
	}
}

func TestPrefsDecide(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		prefs storage.ArchivePrefs
		want  []string // of the messages alice and carol send, then of those bob sends them
	}{
		{"none", storage.ArchivePrefs{}, []string{"alice", "carol", "to alice", "to carol"}},
		{"always", storage.ArchivePrefs{Default: storage.ArchiveAlways}, []string{"alice", "carol", "to alice", "to carol"}},
		{"never", storage.ArchivePrefs{Default: storage.ArchiveNever}, nil},
		{"never but always", storage.ArchivePrefs{Default: storage.ArchiveNever, Always: []string{"carol@localhost"}}, []string{"carol", "to carol"}},
		{"always but never", storage.ArchivePrefs{Default: storage.ArchiveAlways, Never: []string{"alice@localhost"}}, []string{"carol", "to carol"}},
		// Bob writes to alice's bare JID: not that resource.
		{"never a full JID", storage.ArchivePrefs{Default: storage.ArchiveAlways, Never: []string{"alice@localhost/a1"}}, []string{"carol", "to alice", "to carol"}},
		{"never another resource", storage.ArchivePrefs{Default: storage.ArchiveAlways, Never: []string{"alice@localhost/a2"}}, []string{"alice", "carol", "to alice", "to carol"}},
		{"roster", storage.ArchivePrefs{Default: storage.ArchiveRoster}, []string{"alice", "to alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, mam.Options{})
			if err := f.store.SetArchivePrefs(ctx, routertest.Host, "bob", tc.prefs); err != nil {
				t.Fatal(err)
			}
			if _, err := f.store.PutRosterItem(ctx, routertest.Host, "bob", storage.RosterItem{Contact: "alice@localhost", InRoster: true}, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			carol := routertest.Bind(t, f.core, "carol@localhost/c")
			routertest.Send(t, f.core, f.a1, `<message to="bob@localhost" type="chat"><body>alice</body></message>`)
			routertest.Send(t, f.core, carol, `<message to="bob@localhost" type="chat"><body>carol</body></message>`)
			// Bob's own messages follow his preferences too.
			routertest.Send(t, f.core, f.b1, `<message to="alice@localhost" type="chat"><body>to alice</body></message>`)
			routertest.Send(t, f.core, f.b1, `<message to="carol@localhost" type="chat"><body>to carol</body></message>`)
			if got := f.bodies(t, "bob"); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("bob's archive: %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQuotaAndRetention(t *testing.T) {
	f := newFixture(t, mam.Options{MaxMessages: 3, Retention: time.Hour})
	for i := range 5 {
		routertest.Send(t, f.core, f.a1, fmt.Sprintf(`<message to="carol@localhost" type="chat"><body>%d</body></message>`, i))
	}
	if got := f.bodies(t, "carol"); fmt.Sprint(got) != "[2 3 4]" {
		t.Errorf("carol's archive: %q, want the 3 newest", got)
	}
	// An hour on, they are not served; a write deletes them.
	f.clock.Add(time.Hour + time.Second)
	if got := query(t, f, f.a1, `<query xmlns="urn:xmpp:mam:2"/>`); len(got.results) != 0 || !strings.Contains(got.fin, `<count>0</count>`) {
		t.Errorf("alice's archive an hour on: %d results, %s", len(got.results), got.fin)
	}
	routertest.Send(t, f.core, f.a1, `<message to="carol@localhost" type="chat"><body>new</body></message>`)
	if got := f.bodies(t, "alice"); fmt.Sprint(got) != "[new]" {
		t.Errorf("alice's archive: %q, want [new]", got)
	}
}

// answer is what a query brought: the result messages and the iq
// answering it, as XML.
type answer struct {
	results []string
	fin     string
}

// query sends an iq set with payload from tg and splits what came back.
func query(t *testing.T, f *fixture, tg *routertest.Target, payload string) answer {
	t.Helper()
	tg.Take()
	routertest.Send(t, f.core, tg, `<iq type="set" id="q">`+payload+`</iq>`)
	var a answer
	got := tg.Take()
	for i, st := range got {
		x := wire(st)
		if st.Name == "iq" {
			if i != len(got)-1 {
				t.Fatalf("the iq answer came before results: %s", x)
			}
			a.fin = x
			continue
		}
		a.results = append(a.results, x)
	}
	if a.fin == "" {
		t.Fatalf("no iq answer to %s", payload)
	}
	return a
}

// resultIDs returns the archive ids of results.
func resultIDs(results []string) []string {
	re := regexp.MustCompile(`<result xmlns="urn:xmpp:mam:2"(?: queryid="[^"]*")? id="([^"]*)"`)
	var out []string
	for _, r := range results {
		if m := re.FindStringSubmatch(r); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

func form(fields ...string) string {
	var b strings.Builder
	b.WriteString(`<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:mam:2</value></field>`)
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, `<field var="%s">`, fields[i])
		for _, v := range strings.Split(fields[i+1], ",") {
			fmt.Fprintf(&b, `<value>%s</value>`, v)
		}
		b.WriteString(`</field>`)
	}
	b.WriteString(`</x>`)
	return b.String()
}

func TestQuery(t *testing.T) {
	f := newFixture(t, mam.Options{MaxPage: 4})
	carol := routertest.Bind(t, f.core, "carol@localhost/c")
	for i := range 10 {
		from := f.b1
		if i%2 == 1 {
			from = carol
		}
		routertest.Send(t, f.core, from, fmt.Sprintf(`<message to="alice@localhost" type="chat" id="m%d"><body>%d</body></message>`, i, i))
		f.clock.Add(time.Second)
	}
	all := f.archive(t, "alice")
	if len(all) != 10 {
		t.Fatalf("alice's archive holds %d messages", len(all))
	}
	id := func(i int) string { return all[i].ID }
	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, id(i))
		}
		return out
	}

	// One result in full.
	a := query(t, f, f.a1, `<query xmlns="urn:xmpp:mam:2" queryid="f27"><set xmlns="http://jabber.org/protocol/rsm"><max>1</max></set></query>`)
	wantResult := `<message from="alice@localhost" to="alice@localhost/a1"><result xmlns="urn:xmpp:mam:2" queryid="f27" id="` + id(0) + `">` +
		`<forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2030-01-02T03:04:05.678901Z"/>` +
		`<message xmlns="jabber:client" from="bob@localhost/b1" to="alice@localhost" id="m0" type="chat"><body>0</body></message></forwarded></result></message>`
	if len(a.results) != 1 || a.results[0] != wantResult {
		t.Errorf("results %q\nwant [%s]", a.results, wantResult)
	}
	wantFin := `<iq from="alice@localhost" to="alice@localhost/a1" id="q" type="result"><fin xmlns="urn:xmpp:mam:2" queryid="f27" complete="false">` +
		`<set xmlns="http://jabber.org/protocol/rsm"><first>` + id(0) + `</first><last>` + id(0) + `</last><count>10</count></set></fin></iq>`
	if a.fin != wantFin {
		t.Errorf("fin %s\nwant %s", a.fin, wantFin)
	}

	for _, tc := range []struct {
		name     string
		payload  string
		want     []string
		complete bool
		count    int
	}{
		{"page size capped", `<set xmlns="http://jabber.org/protocol/rsm"><max>100</max></set>`, ids(0, 1, 2, 3), false, 10},
		{"no set: a capped page", ``, ids(0, 1, 2, 3), false, 10},
		{"after", `<set xmlns="http://jabber.org/protocol/rsm"><max>4</max><after>` + id(7) + `</after></set>`, ids(8, 9), true, 10},
		{"last page", `<set xmlns="http://jabber.org/protocol/rsm"><max>3</max><before/></set>`, ids(7, 8, 9), false, 10},
		{"before", `<set xmlns="http://jabber.org/protocol/rsm"><max>3</max><before>` + id(2) + `</before></set>`, ids(0, 1), true, 10},
		{"with", form("with", "carol@localhost"), ids(1, 3, 5, 7), false, 5},
		{"with a full JID", form("with", "bob@localhost/b1") + `<set xmlns="http://jabber.org/protocol/rsm"><max>2</max><before/></set>`, ids(6, 8), false, 5},
		{"start and end", form("start", "2030-01-02T03:04:07.678901Z", "end", "2030-01-02T03:04:09.678901Z"), ids(2, 3, 4), true, 3},
		{"start with a zone", form("start", "2030-01-02T05:04:13.678901+02:00"), ids(8, 9), true, 2},
		{"after-id and before-id", form("after-id", id(2), "before-id", id(6)), ids(3, 4, 5), true, 3},
		{"ids", form("ids", id(9)+","+id(0)), ids(0, 9), true, 2},
		{"flip-page", `<set xmlns="http://jabber.org/protocol/rsm"><max>3</max><before/></set><flip-page/>`, ids(9, 8, 7), false, 10},
		{"max 0", `<set xmlns="http://jabber.org/protocol/rsm"><max>0</max></set>`, nil, false, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := query(t, f, f.a1, `<query xmlns="urn:xmpp:mam:2">`+tc.payload+`</query>`)
			if got := resultIDs(a.results); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("results %q, want %q", got, tc.want)
			}
			if !strings.Contains(a.fin, fmt.Sprintf(`complete="%v"`, tc.complete)) || !strings.Contains(a.fin, fmt.Sprintf(`<count>%d</count>`, tc.count)) {
				t.Errorf("fin %s, want complete=%v count %d", a.fin, tc.complete, tc.count)
			}
			if len(tc.want) > 0 {
				first, last := tc.want[0], tc.want[len(tc.want)-1]
				if strings.Contains(tc.name, "flip") {
					first, last = last, first
				}
				if !strings.Contains(a.fin, `<first>`+first+`</first><last>`+last+`</last>`) {
					t.Errorf("fin %s, want first %s last %s", a.fin, first, last)
				}
			} else if strings.Contains(a.fin, "<first>") {
				t.Errorf("fin %s has a first with no results", a.fin)
			}
		})
	}

	for _, tc := range []struct {
		name, payload, want string
	}{
		{"unknown after", `<set xmlns="http://jabber.org/protocol/rsm"><after>nope</after></set>`, "item-not-found"},
		{"unknown before", `<set xmlns="http://jabber.org/protocol/rsm"><before>nope</before></set>`, "item-not-found"},
		{"unknown after-id", form("after-id", "nope"), "item-not-found"},
		{"unknown ids", form("ids", id(1)+",nope"), "item-not-found"},
		{"unknown field", form("include-groupchat", "true"), "feature-not-implemented"},
		{"bad start", form("start", "yesterday"), "bad-request"},
		{"bad with", form("with", "@@"), "bad-request"},
		{"bad max", `<set xmlns="http://jabber.org/protocol/rsm"><max>-1</max></set>`, "bad-request"},
		{"other form", `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>urn:example</value></field></x>`, "bad-request"},
		{"pubsub node", ``, "feature-not-implemented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := `<query xmlns="urn:xmpp:mam:2">`
			if tc.name == "pubsub node" {
				q = `<query xmlns="urn:xmpp:mam:2" node="n">`
			}
			a := query(t, f, f.a1, q+tc.payload+`</query>`)
			if len(a.results) != 0 || !strings.Contains(a.fin, `type="error"`) || !strings.Contains(a.fin, "<"+tc.want) {
				t.Errorf("got %d results and %s, want %s", len(a.results), a.fin, tc.want)
			}
		})
	}

	ask := func(tg *routertest.Target, payload string) string {
		t.Helper()
		routertest.Send(t, f.core, tg, payload)
		got := tg.Take()
		if len(got) != 1 {
			t.Fatalf("%d answers to %s", len(got), payload)
		}
		return wire(got[0])
	}
	// Another user's archive is not for alice.
	got := ask(f.a1, `<iq type="set" id="x" to="bob@localhost"><query xmlns="urn:xmpp:mam:2"/></iq>`)
	if !strings.Contains(got, `<error type="auth"><forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>`) {
		t.Errorf("query of bob's archive: %s", got)
	}
	// The form.
	got = ask(f.a1, `<iq type="get" id="f"><query xmlns="urn:xmpp:mam:2"/></iq>`)
	for _, v := range []string{"FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"} {
		if !strings.Contains(got, `var="`+v+`"`) {
			t.Errorf("form lacks %s: %s", v, got)
		}
	}
	if !strings.Contains(got, `<x xmlns="jabber:x:data" type="form">`) || !strings.Contains(got, `<validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="xs:string"><open/></validate>`) {
		t.Errorf("form: %s", got)
	}
	// Metadata.
	got = ask(f.a1, `<iq type="get" id="md"><metadata xmlns="urn:xmpp:mam:2"/></iq>`)
	want := `<metadata xmlns="urn:xmpp:mam:2"><start id="` + id(0) + `" timestamp="2030-01-02T03:04:05.678901Z"/><end id="` + id(9) + `" timestamp="2030-01-02T03:04:14.678901Z"/></metadata>`
	if !strings.Contains(got, want) {
		t.Errorf("metadata: %s\nwant %s", got, want)
	}
	dave := routertest.Bind(t, f.core, "dave@localhost/d")
	got = ask(dave, `<iq type="get" id="md"><metadata xmlns="urn:xmpp:mam:2"/></iq>`)
	if !strings.Contains(got, `<metadata xmlns="urn:xmpp:mam:2"/>`) {
		t.Errorf("metadata of an empty archive: %s", got)
	}
}

func TestPrefsIQ(t *testing.T) {
	f := newFixture(t, mam.Options{MaxPrefsJIDs: 3})
	ask := func(payload string) string {
		t.Helper()
		routertest.Send(t, f.core, f.a1, payload)
		got := f.a1.Take()
		if len(got) != 1 {
			t.Fatalf("%d answers to %s", len(got), payload)
		}
		return wire(got[0])
	}
	if got := ask(`<iq type="get" id="p"><prefs xmlns="urn:xmpp:mam:2"/></iq>`); !strings.Contains(got, `<prefs xmlns="urn:xmpp:mam:2" default="always"><always/><never/></prefs>`) {
		t.Errorf("default prefs: %s", got)
	}
	set := `<iq type="set" id="p"><prefs xmlns="urn:xmpp:mam:2" default="roster"><always><jid>Bob@Localhost</jid><jid>bob@localhost</jid></always><never><jid>carol@localhost/phone</jid></never></prefs></iq>`
	want := `<prefs xmlns="urn:xmpp:mam:2" default="roster"><always><jid>bob@localhost</jid></always><never><jid>carol@localhost/phone</jid></never></prefs>`
	if got := ask(set); !strings.Contains(got, want) {
		t.Errorf("set prefs: %s\nwant %s", got, want)
	}
	if got := ask(`<iq type="get" id="p"><prefs xmlns="urn:xmpp:mam:2"/></iq>`); !strings.Contains(got, want) {
		t.Errorf("prefs after set: %s\nwant %s", got, want)
	}
	for _, tc := range []struct{ payload, cond string }{
		{`<prefs xmlns="urn:xmpp:mam:2"/>`, "bad-request"},
		{`<prefs xmlns="urn:xmpp:mam:2" default="sometimes"/>`, "bad-request"},
		{`<prefs xmlns="urn:xmpp:mam:2" default="always"><always><jid>@x</jid></always></prefs>`, "jid-malformed"},
		{`<prefs xmlns="urn:xmpp:mam:2" default="always"><always><jid>a@x</jid></always><never><jid>a@x</jid></never></prefs>`, "bad-request"},
		{`<prefs xmlns="urn:xmpp:mam:2" default="always"><always><jid>a@x</jid><jid>b@x</jid></always><never><jid>c@x</jid><jid>d@x</jid></never></prefs>`, "not-acceptable"},
	} {
		if got := ask(`<iq type="set" id="p">` + tc.payload + `</iq>`); !strings.Contains(got, "<"+tc.cond) {
			t.Errorf("%s: %s, want %s", tc.payload, got, tc.cond)
		}
	}
	if got := ask(`<iq type="get" id="p"><prefs xmlns="urn:xmpp:mam:2"/></iq>`); !strings.Contains(got, want) {
		t.Errorf("prefs after refused sets: %s\nwant %s", got, want)
	}
	if got := ask(`<iq type="get" id="p" to="bob@localhost"><prefs xmlns="urn:xmpp:mam:2"/></iq>`); !strings.Contains(got, "<forbidden") {
		t.Errorf("bob's prefs: %s", got)
	}

	// The preferences set decide at once, after messages were archived
	// under the old ones.
	routertest.Send(t, f.core, f.b1, `<message to="alice@localhost" type="chat"><body>1</body></message>`)
	f.a1.Take()
	ask(`<iq type="set" id="p"><prefs xmlns="urn:xmpp:mam:2" default="never"><always><jid>carol@localhost</jid></always></prefs></iq>`)
	routertest.Send(t, f.core, f.b1, `<message to="alice@localhost" type="chat"><body>2</body></message>`)
	carol := routertest.Bind(t, f.core, "carol@localhost/c")
	routertest.Send(t, f.core, carol, `<message to="alice@localhost" type="chat"><body>3</body></message>`)
	if got := f.bodies(t, "alice"); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("alice's archive across a change of prefs: %q, want [1 3]", got)
	}
}

func TestAccountFeatures(t *testing.T) {
	f := newFixture(t, mam.Options{})
	got := f.core.AccountFeatures()
	for _, want := range []string{mam.NS, mam.NSExtended, mam.NSSID} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("account features %q lack %s", got, want)
		}
	}
	if fs := f.core.Features(); strings.Contains(fmt.Sprint(fs), mam.NS) {
		t.Errorf("server features %q hold the archive's", fs)
	}
}

// BenchmarkRouteMessage routes a chat message between two local users,
// with and without the archive: its cost is two archive entries (the
// sender's and the addressee's), written in batches, and the stanza-id.
func BenchmarkRouteMessage(b *testing.B) {
	for _, archive := range []bool{false, true} {
		b.Run(fmt.Sprintf("archive=%v", archive), func(b *testing.B) {
			core, store := routertest.New(b)
			flush := func() {}
			if archive {
				mod, err := mam.Register(core, store, mam.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(mod.Close)
				flush = mod.Flush
			}
			alice := routertest.Bind(b, core, "alice@localhost/a")
			bob := routertest.Bind(b, core, "bob@localhost/b")
			core.SetPresence(bob, &element.Stanza{Name: "presence"}, 0)
			const msg = `<message to="bob@localhost" type="chat" id="x"><body>Are we still on for lunch at noon? I booked the usual place.</body></message>`
			b.ReportAllocs()
			for b.Loop() {
				routertest.Send(b, core, alice, msg)
				bob.Take()
			}
			// The writes the loop queued count too.
			flush()
		})
	}
}

// TestCloseWritesTheQueue archives from many senders at once, closes the
// module and finds every message written; one archived after Close is
// dropped, and the message still goes through.
func TestCloseWritesTheQueue(t *testing.T) {
	core, store := routertest.New(t)
	mod, err := mam.Register(core, store, mam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 8, 50
	var wg sync.WaitGroup
	for i := range senders {
		tg := routertest.Bind(t, core, fmt.Sprintf("s%d@localhost/r", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				routertest.Send(t, core, tg, fmt.Sprintf(`<message to="dave@example.net" type="chat"><body>%d</body></message>`, j))
			}
		}()
	}
	wg.Wait()
	mod.Close()
	for i := range senders {
		page, err := store.QueryArchive(context.Background(), routertest.Host, fmt.Sprintf("s%d", i), storage.ArchiveQuery{})
		if err != nil || page.Count != each {
			t.Errorf("s%d's archive after Close: %d messages, %v; want %d", i, page.Count, err, each)
		}
	}
	late := routertest.Bind(t, core, "late@localhost/r")
	routertest.Send(t, core, late, `<message to="dave@example.net" type="chat"><body>late</body></message>`)
	if page, err := store.QueryArchive(context.Background(), routertest.Host, "late", storage.ArchiveQuery{}); err != nil || page.Count != 0 {
		t.Errorf("archive after Close: %d messages, %v; want none", page.Count, err)
	}
}

// TestPageFitsTheSendQueue: a page holds at most half the send queue, in
// count and in bytes, whatever <max/> asks.
func TestPageFitsTheSendQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts mam.Options
		want int
	}{
		{"count", mam.Options{SendQueue: 6}, 3},
		{"bytes", mam.Options{SendQueueBytes: 500}, 2}, // each message is stored in about 105 bytes
		{"page size", mam.Options{MaxPage: 4}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			for i := range 10 {
				routertest.Send(t, f.core, f.b1, fmt.Sprintf(`<message to="alice@localhost" type="chat"><body>%d</body></message>`, i))
			}
			a := query(t, f, f.a1, `<query xmlns="urn:xmpp:mam:2"><set xmlns="http://jabber.org/protocol/rsm"><max>100</max></set></query>`)
			if len(a.results) != tc.want || !strings.Contains(a.fin, `complete="false"`) {
				t.Errorf("%d results, %s; want %d, not complete", len(a.results), a.fin, tc.want)
			}
		})
	}
}
