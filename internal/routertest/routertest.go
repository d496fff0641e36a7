// Package routertest holds what the tests of the modules share: a fake
// router.Target that records what it is delivered, and a routing core
// over a real SQLite store in a temporary folder.
package routertest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage/sqlite"
)

// Host is the local domain of the cores New builds.
const Host = "localhost"

// New returns a routing core serving Host over a new SQLite store in
// t.TempDir(), closed when the test ends.
func New(t testing.TB) (*router.Router, *sqlite.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ottr.db"))
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return router.New(router.Options{Hosts: []string{Host}, Accounts: store}), store
}

// Target is a fake router.Target: it records the stanzas it is
// delivered, or refuses them once Refuse was called.
type Target struct {
	jid jid.JID

	mu      sync.Mutex
	got     []*element.Stanza
	refuse  bool
	closed  bool
	closeAs stream.Error
}

// NewTarget returns a target for the full JID s; it fails the test if s
// does not parse.
func NewTarget(t testing.TB, s string) *Target {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return &Target{jid: j}
}

// Bind binds a new target for the full JID s to core, failing the test on
// an error.
func Bind(t testing.TB, core *router.Router, s string) *Target {
	t.Helper()
	tg := NewTarget(t, s)
	if err := core.Bind(context.Background(), tg); err != nil {
		t.Fatalf("binding %s: %v", s, err)
	}
	return tg
}

// JID implements router.Target.
func (t *Target) JID() jid.JID { return t.jid }

// Deliver implements router.Target: it records st unless Refuse was
// called.
func (t *Target) Deliver(st *element.Stanza) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refuse || t.closed {
		return false
	}
	t.got = append(t.got, st)
	return true
}

// Close implements router.Target.
func (t *Target) Close(e stream.Error) {
	t.mu.Lock()
	t.closed, t.closeAs = true, e
	t.mu.Unlock()
}

// Closed reports whether the target was closed, and with what.
func (t *Target) Closed() (bool, stream.Error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed, t.closeAs
}

// Refuse makes every later delivery fail, as a closing session's does.
func (t *Target) Refuse() {
	t.mu.Lock()
	t.refuse = true
	t.mu.Unlock()
}

// Take returns the stanzas delivered since the last call.
func (t *Target) Take() []*element.Stanza {
	t.mu.Lock()
	defer t.mu.Unlock()
	got := t.got
	t.got = nil
	return got
}

// Stanza parses one stanza element, failing the test if it does not.
func Stanza(t testing.TB, s string) *element.Stanza {
	t.Helper()
	st, err := element.FromBytes([]byte(s))
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return st
}

// Send routes the stanza s from tg, its from stamped with tg's JID as a
// client session's is.
func Send(t testing.TB, core *router.Router, tg router.Target, s string) {
	t.Helper()
	st := Stanza(t, s)
	st.From = tg.JID()
	core.Route(context.Background(), tg, st)
}

// XML returns st as XML, failing the test if it does not encode.
func XML(t testing.TB, st *element.Stanza) string {
	t.Helper()
	b, err := st.Marshal()
	if err != nil {
		t.Fatalf("encoding a stanza: %v", err)
	}
	return string(b)
}

// Ask routes s from tg (see Send) and returns, as XML, the one stanza tg
// got back; it fails the test if tg got none or more than one.
func Ask(t testing.TB, core *router.Router, tg *Target, s string) string {
	t.Helper()
	Send(t, core, tg, s)
	got := tg.Take()
	if len(got) != 1 {
		t.Fatalf("%s got %d stanzas in answer to %s, want 1", tg.JID(), len(got), s)
	}
	return XML(t, got[0])
}
