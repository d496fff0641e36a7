package csi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/csi"
	"ottr.im/ottr/router"
)

func setup(t *testing.T, opts csi.Options) (*router.Router, *csi.Module, *routertest.Target) {
	t.Helper()
	core, _ := routertest.New(t)
	mod, err := csi.Register(core, opts)
	if err != nil {
		t.Fatal(err)
	}
	bob := routertest.Bind(t, core, "bob@localhost/phone")
	mod.SetActive(bob, false)
	if mod.Active(bob) {
		t.Fatal("bob still active after SetActive(false)")
	}
	return core, mod, bob
}

// deliver parses each stanza and delivers it to tg through the core.
func deliver(t *testing.T, core *router.Router, tg router.Target, stanzas ...string) {
	t.Helper()
	for _, s := range stanzas {
		core.Deliver(tg, routertest.Stanza(t, s))
	}
}

// got returns what tg was delivered since the last call, one "name
// from type id" per stanza.
func got(tg *routertest.Target) string {
	var out []string
	for _, st := range tg.Take() {
		out = append(out, fmt.Sprintf("%s %s %s %s", st.Name, st.From, st.Type, st.ID))
	}
	return strings.Join(out, "; ")
}

// TestHeldAndFlushed: what is held, what goes through at once (after
// what was held), and the flush on <active/>.
func TestHeldAndFlushed(t *testing.T) {
	const (
		carbonWith  = `<message from="bob@localhost" id="cb" type="chat"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="c1@localhost/x" type="chat"><body>hi</body></message></forwarded></received></message>`
		carbonState = `<message from="bob@localhost" id="cs" type="chat"><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" to="c1@localhost/x" type="chat"><active xmlns="http://jabber.org/protocol/chatstates"/></message></forwarded></sent></message>`
	)
	for _, tc := range []struct {
		name string
		// send are delivered while inactive; through is what arrives at
		// once; after is what <active/> brings.
		send           []string
		through, after string
	}{
		{name: "presence collapsed per full JID, latest last",
			send: []string{
				`<presence from="c1@localhost/x" id="p1"/>`,
				`<presence from="c2@localhost/x" id="p2"/>`,
				`<presence from="c1@localhost/x" id="p3"><show>away</show></presence>`,
				`<presence from="c1@localhost/y" id="p4"/>`,
				`<presence from="c2@localhost/x" id="p5" type="unavailable"/>`,
			},
			after: "presence c1@localhost/x  p3; presence c1@localhost/y  p4; presence c2@localhost/x unavailable p5"},
		{name: "a body goes through after what was held",
			send: []string{
				`<presence from="c1@localhost/x" id="p1"/>`,
				`<message from="c1@localhost/x" id="s1" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`,
				`<message from="c1@localhost/x" id="m1" type="chat"><body>hi</body></message>`,
				`<presence from="c2@localhost/x" id="p2"/>`,
			},
			through: "presence c1@localhost/x  p1; message c1@localhost/x chat s1; message c1@localhost/x chat m1",
			after:   "presence c2@localhost/x  p2"},
		{name: "unimportant messages held in order",
			send: []string{
				`<message from="c1@localhost/x" id="s1" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`,
				`<message from="c1@localhost/x" id="r1"><received xmlns="urn:xmpp:receipts" id="m0"/></message>`,
				`<message from="pubsub.localhost" id="h1" type="headline"><event xmlns="http://jabber.org/protocol/pubsub#event"/></message>`,
				`<message from="c1@localhost/x" id="s2" type="chat"><paused xmlns="http://jabber.org/protocol/chatstates"/></message>`,
			},
			after: "message c1@localhost/x chat s1; message c1@localhost/x  r1; message pubsub.localhost headline h1; message c1@localhost/x chat s2"},
		{name: "iq, errors, subscriptions, subjects, invitations go through",
			send: []string{
				`<iq from="localhost" id="i1" type="set"><query xmlns="jabber:iq:roster"/></iq>`,
				`<message from="c1@localhost/x" id="e1" type="error"><error type="cancel"><gone xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
				`<presence from="c1@localhost/x" id="e2" type="error"/>`,
				`<presence from="c3@localhost" id="sub" type="subscribe"/>`,
				`<message from="room@muc.localhost" id="subj" type="groupchat"><subject>topic</subject></message>`,
				`<message from="room@muc.localhost" id="inv"><x xmlns="http://jabber.org/protocol/muc#user"><invite from="c1@localhost"/></x></message>`,
				`<message from="c1@localhost/x" id="dinv"><x xmlns="jabber:x:conference" jid="room@muc.localhost"/></message>`,
			},
			through: "iq localhost set i1; message c1@localhost/x error e1; presence c1@localhost/x error e2; presence c3@localhost subscribe sub; message room@muc.localhost groupchat subj; message room@muc.localhost  inv; message c1@localhost/x  dinv"},
		{name: "MUC status without invitation is held",
			send: []string{
				`<message from="room@muc.localhost" id="st"><x xmlns="http://jabber.org/protocol/muc#user"><status code="104"/></x></message>`,
			},
			after: "message room@muc.localhost  st"},
		{name: "carbon of a body goes through, carbon of a chat state is held",
			send:    []string{carbonState, carbonWith},
			through: "message bob@localhost chat cs; message bob@localhost chat cb"},
		{name: "carbon of a chat state alone",
			send:  []string{carbonState},
			after: "message bob@localhost chat cs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, mod, bob := setup(t, csi.Options{})
			deliver(t, core, bob, tc.send...)
			if g := got(bob); g != tc.through {
				t.Errorf("through at once:\n got %s\nwant %s", g, tc.through)
			}
			mod.SetActive(bob, true)
			if g := got(bob); g != tc.after {
				t.Errorf("after <active/>:\n got %s\nwant %s", g, tc.after)
			}
			// Active again: nothing held.
			deliver(t, core, bob, `<presence from="c9@localhost/x" id="late"/>`)
			if g := got(bob); g != "presence c9@localhost/x  late" {
				t.Errorf("active: got %s", g)
			}
		})
	}
}

// TestBounds: past MaxStanzas or MaxBytes everything held is delivered.
func TestBounds(t *testing.T) {
	presence := func(i int) string {
		return fmt.Sprintf(`<presence from="c%d@localhost/x" id="p%d"><status>some status text</status></presence>`, i, i)
	}
	size := routertest.Stanza(t, presence(1)).Size
	if size <= 0 {
		t.Fatalf("size %d", size)
	}
	for _, tc := range []struct {
		name string
		opts csi.Options
		n    int // stanzas held before the flush
	}{
		{"stanzas", csi.Options{MaxStanzas: 3}, 4},
		{"bytes", csi.Options{MaxBytes: 2*size + 1}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, _, bob := setup(t, tc.opts)
			for i := 1; i <= tc.n; i++ {
				if g := got(bob); g != "" {
					t.Fatalf("after %d stanzas: got %s", i-1, g)
				}
				deliver(t, core, bob, presence(i))
			}
			if n := len(strings.Split(got(bob), "; ")); n != tc.n {
				t.Errorf("flushed %d stanzas, want %d", n, tc.n)
			}
		})
	}
}

// TestCollapseBounded: one contact changing presence many times holds
// one stanza, not a growing list.
func TestCollapseBounded(t *testing.T) {
	core, mod, bob := setup(t, csi.Options{MaxStanzas: 5})
	for i := range 1000 {
		deliver(t, core, bob, fmt.Sprintf(`<presence from="c1@localhost/x" id="p%d"/>`, i))
		deliver(t, core, bob, fmt.Sprintf(`<presence from="c2@localhost/x" id="q%d"/>`, i))
	}
	if g := got(bob); g != "" {
		t.Fatalf("through at once: %s", g)
	}
	mod.SetActive(bob, true)
	if g, want := got(bob), "presence c1@localhost/x  p999; presence c2@localhost/x  q999"; g != want {
		t.Errorf("got %s\nwant %s", g, want)
	}
}

// TestUnbound: the end of the session delivers what was held and forgets
// it; a session not bound is never recorded inactive.
func TestUnbound(t *testing.T) {
	core, mod, bob := setup(t, csi.Options{})
	deliver(t, core, bob, `<presence from="c1@localhost/x" id="p1"/>`)
	core.Unbind(context.Background(), bob)
	if g := got(bob); g != "presence c1@localhost/x  p1" {
		t.Errorf("at unbind: got %q", g)
	}
	if !mod.Active(bob) {
		t.Error("an unbound session is still held for")
	}
	mod.SetActive(bob, false)
	if !mod.Active(bob) {
		t.Error("an unbound session was recorded inactive")
	}
	other := routertest.NewTarget(t, "bob@localhost/other")
	core.Deliver(other, &element.Stanza{Name: "presence", From: bob.JID()})
	if len(other.Take()) != 1 {
		t.Error("a session never made inactive is held for")
	}
}

// TestConcurrentOrder: deliveries from several goroutines while the
// client turns active and inactive again and again: every stanza arrives
// once, and each sender's in the order it sent them.
func TestConcurrentOrder(t *testing.T) {
	core, mod, bob := setup(t, csi.Options{MaxStanzas: 50})
	const senders, each = 4, 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			mod.SetActive(bob, i%2 == 1)
		}
	}()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				core.Deliver(bob, &element.Stanza{Name: "message", Type: "chat", ID: fmt.Sprintf("%d-%d", s, i)})
			}
		}()
	}
	wg.Wait()
	<-done
	mod.SetActive(bob, true)
	next := make([]int, senders)
	for _, st := range bob.Take() {
		var s, i int
		if _, err := fmt.Sscanf(st.ID, "%d-%d", &s, &i); err != nil {
			t.Fatalf("id %q: %v", st.ID, err)
		}
		if i != next[s] {
			t.Fatalf("sender %d: got %d, want %d", s, i, next[s])
		}
		next[s]++
	}
	for s, n := range next {
		if n != each {
			t.Errorf("sender %d: %d stanzas arrived, want %d", s, n, each)
		}
	}
}
