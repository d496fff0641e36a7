package offline_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/offline"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/sqlite"
)

var _ offline.Store = (*sqlite.Store)(nil)

var stored = time.Date(2026, 11, 30, 9, 8, 7, 6e6, time.UTC)

// setup returns a core with the offline module, its store (alice has an
// account and no session) and bob's session.
func setup(t *testing.T, opts offline.Options) (*router.Router, *offline.Module, *sqlite.Store, *routertest.Target) {
	t.Helper()
	core, store := routertest.New(t)
	if opts.Now == nil {
		opts.Now = func() time.Time { return stored }
	}
	m, err := offline.Register(core, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.EnsureAccount(context.Background(), routertest.Host, "alice"); err != nil {
		t.Fatal(err)
	}
	return core, m, store, routertest.Bind(t, core, "bob@localhost/phone")
}

func count(t *testing.T, store *sqlite.Store) int {
	t.Helper()
	n, err := store.CountOffline(context.Background(), routertest.Host, "alice")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// send has bob send alice a chat message with body text, and returns
// what bob got back.
func send(t *testing.T, core *router.Router, bob *routertest.Target, to, text string) []*element.Stanza {
	t.Helper()
	routertest.Send(t, core, bob, `<message to="`+to+`" id="`+text+`" type="chat"><body>`+text+`</body></message>`)
	return bob.Take()
}

// initial fires PresenceInitial for t as the presence module does.
func initial(ctx context.Context, core *router.Router, t router.Target, presence string) {
	st, _ := element.FromBytes([]byte(presence))
	core.Fire(router.PresenceInitial, &router.EventData{Ctx: ctx, Target: t, Stanza: st})
}

func TestStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  offline.Options
		to    string
		sends int
		want  stanza.Condition // of the last send's answer, "" for none
		kept  int
	}{
		{"stored", offline.Options{MaxMessages: 10}, "alice@localhost", 3, "", 3},
		{"to a full JID not bound", offline.Options{MaxMessages: 10}, "alice@localhost/gone", 1, "", 1},
		{"offline storage off", offline.Options{}, "alice@localhost", 1, stanza.ServiceUnavailable, 0},
		{"no such account", offline.Options{MaxMessages: 10}, "nobody@localhost", 1, stanza.ServiceUnavailable, 0},
		{"message quota", offline.Options{MaxMessages: 2}, "alice@localhost", 3, stanza.ResourceConstraint, 2},
		{"byte quota", offline.Options{MaxMessages: 10, MaxBytes: 300}, "alice@localhost", 3, stanza.ResourceConstraint, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, _, store, bob := setup(t, tc.opts)
			var got []*element.Stanza
			for i := range tc.sends {
				got = send(t, core, bob, tc.to, "m"+string(rune('0'+i)))
				if i < tc.sends-1 && len(got) != 0 {
					t.Fatalf("send %d answered %s", i, routertest.XML(t, got[0]))
				}
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("bob got %s, want nothing", routertest.XML(t, got[0]))
			case tc.want != "" && (len(got) != 1 || !strings.Contains(routertest.XML(t, got[0]), "<"+string(tc.want)+" ")):
				t.Errorf("bob got %d stanzas, want one %s error", len(got), tc.want)
			}
			if n := count(t, store); n != tc.kept {
				t.Errorf("%d messages stored, want %d", n, tc.kept)
			}
		})
	}
}

func TestDelivery(t *testing.T) {
	core, m, store, bob := setup(t, offline.Options{MaxMessages: 10})
	for _, text := range []string{"one", "two"} {
		send(t, core, bob, "alice@localhost", text)
	}
	low := routertest.Bind(t, core, "alice@localhost/low")
	initial(context.Background(), core, low, `<presence><priority>-1</priority></presence>`)
	m.Wait()
	if got := low.Take(); len(got) != 0 || count(t, store) != 2 {
		t.Fatalf("negative priority: got %d messages, %d stored; want none, 2", len(got), count(t, store))
	}
	alice := routertest.Bind(t, core, "alice@localhost/home")
	initial(context.Background(), core, alice, `<presence><priority>5</priority></presence>`)
	m.Wait()
	got := alice.Take()
	if len(got) != 2 {
		t.Fatalf("got %d messages, want 2", len(got))
	}
	for i, text := range []string{"one", "two"} {
		want := `<message xmlns="jabber:client" from="bob@localhost/phone" to="alice@localhost/home" id="` + text +
			`" type="chat"><body xmlns="jabber:client">` + text +
			`</body><delay xmlns="urn:xmpp:delay" from="localhost" stamp="2026-11-30T09:08:07.006Z">Offline Storage</delay></message>`
		if x := routertest.XML(t, got[i]); x != want {
			t.Errorf("message %d:\n got %s\nwant %s", i, x, want)
		}
	}
	if n := count(t, store); n != 0 {
		t.Errorf("%d messages stored after delivery, want 0", n)
	}
}

func TestDroppedOnDelivery(t *testing.T) {
	core, store := routertest.New(t)
	refuse := false
	if err := core.Hook(router.StanzaIn, 100, "test", func(ev *router.EventData) bool {
		return refuse && ev.Stanza.From.Localpart() == "bob"
	}); err != nil {
		t.Fatal(err)
	}
	m, err := offline.Register(core, store, offline.Options{MaxMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.EnsureAccount(context.Background(), routertest.Host, "alice"); err != nil {
		t.Fatal(err)
	}
	bob := routertest.Bind(t, core, "bob@localhost/phone")
	send(t, core, bob, "alice@localhost", "hi")
	refuse = true // alice blocks bob since
	alice := routertest.Bind(t, core, "alice@localhost/home")
	initial(context.Background(), core, alice, `<presence/>`)
	m.Wait()
	if got := alice.Take(); len(got) != 0 {
		t.Errorf("alice got %s, want nothing", routertest.XML(t, got[0]))
	}
	if n, _ := store.CountOffline(context.Background(), routertest.Host, "alice"); n != 0 {
		t.Errorf("%d messages stored, want the refused one deleted", n)
	}
}

// paced is a target that says when it wrote: the test writes by calling
// write.
type paced struct {
	*routertest.Target
	mu      sync.Mutex
	pending []func(bool)
	queued  chan struct{}
}

func (p *paced) DeliverThen(st *element.Stanza, written func(ok bool)) bool {
	if !p.Deliver(st) {
		return false
	}
	p.mu.Lock()
	p.pending = append(p.pending, written)
	p.mu.Unlock()
	p.queued <- struct{}{}
	return true
}

// write calls the written callbacks of what is queued, with ok.
func (p *paced) write(ok bool) int {
	p.mu.Lock()
	fs := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, f := range fs {
		f(ok)
	}
	return len(fs)
}

// TestPaced: at most half the send queue is in flight; what was written
// is deleted, what the session could not write stays stored.
func TestPaced(t *testing.T) {
	core, m, store, bob := setup(t, offline.Options{MaxMessages: 10, SendQueue: 4})
	for i := range 7 {
		send(t, core, bob, "alice@localhost", "m"+string(rune('0'+i)))
	}
	alice := &paced{Target: routertest.NewTarget(t, "alice@localhost/home"), queued: make(chan struct{}, 10)}
	if err := core.Bind(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	initial(context.Background(), core, alice, `<presence/>`)
	waitQueued := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-alice.queued:
			case <-time.After(10 * time.Second):
				t.Fatal("no message queued")
			}
		}
		select {
		case <-alice.queued:
			t.Fatalf("more than %d messages in flight", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
	waitQueued(2)
	if n := alice.write(true); n != 2 {
		t.Fatalf("wrote %d, want 2", n)
	}
	waitQueued(2)
	alice.write(true)
	waitQueued(2)
	// The session ends: these two were not written.
	alice.write(false)
	m.Wait()
	if got := len(alice.Take()); got != 6 {
		t.Errorf("%d messages queued, want 6", got)
	}
	if n := count(t, store); n != 3 {
		t.Errorf("%d messages stored, want the 3 not written", n)
	}
}

// TestSessionEnded: a delivery under the context of a session that ended
// sends nothing and deletes nothing.
func TestSessionEnded(t *testing.T) {
	core, m, store, bob := setup(t, offline.Options{MaxMessages: 10})
	send(t, core, bob, "alice@localhost", "hi")
	alice := routertest.Bind(t, core, "alice@localhost/home")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	initial(ctx, core, alice, `<presence/>`)
	m.Wait()
	if got := alice.Take(); len(got) != 0 {
		t.Errorf("alice got %d messages, want none", len(got))
	}
	if n := count(t, store); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

// TestRefusedDelivery: a target that refuses the first message stops
// the delivery; everything stays stored.
func TestRefusedDelivery(t *testing.T) {
	core, m, store, bob := setup(t, offline.Options{MaxMessages: 10})
	send(t, core, bob, "alice@localhost", "a")
	send(t, core, bob, "alice@localhost", "b")
	alice := routertest.Bind(t, core, "alice@localhost/home")
	alice.Refuse()
	initial(context.Background(), core, alice, `<presence/>`)
	m.Wait()
	if n := count(t, store); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

// TestStoredDuringLogin: a message the core found no resource for, but
// stored only after a resource came online and its initial delivery had
// read the queue, still reaches that resource now, not at the next
// login.
func TestStoredDuringLogin(t *testing.T) {
	core, m, store, _ := setup(t, offline.Options{MaxMessages: 10})
	alice := routertest.Bind(t, core, "alice@localhost/home")
	presence := routertest.Stanza(t, `<presence/>`)
	core.SetPresence(alice, presence, 0)
	core.Fire(router.PresenceInitial, &router.EventData{Ctx: context.Background(), Target: alice, Stanza: presence})
	m.Wait()
	// The core's deliverBest ran before SetPresence; the insert after it.
	msg := routertest.Stanza(t, `<message from="bob@localhost/phone" to="alice@localhost" type="chat"><body>late</body></message>`)
	if !core.Fire(router.MessageOffline, &router.EventData{Ctx: context.Background(), Stanza: msg, To: msg.To}) {
		t.Fatal("MessageOffline not taken")
	}
	m.Wait()
	got := alice.Take()
	if len(got) != 1 || got[0].ChildText(element.NSClient, "body") != "late" {
		t.Fatalf("alice got %d stanzas, want the late message", len(got))
	}
	if n := count(t, store); n != 0 {
		t.Errorf("%d messages stored after delivery, want 0", n)
	}
}

// TestFeature: msgoffline is in the server's features when messages are
// stored (XEP-0160 §5), not when offline storage is off.
func TestFeature(t *testing.T) {
	for _, max := range []int{0, 10} {
		core, _ := routertest.New(t)
		if _, err := offline.Register(core, nil, offline.Options{MaxMessages: max}); err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(core.Features(), "msgoffline"); got != (max > 0) {
			t.Errorf("offline_messages %d: msgoffline listed %v", max, got)
		}
	}
}
