package router_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// accounts is an AccountStore in memory.
type accounts struct {
	mu      sync.Mutex
	rows    map[string]bool
	pending map[string]bool // deletion pending
}

func (a *accounts) EnsureAccount(_ context.Context, host, user string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[user+"@"+host] {
		return false, storage.ErrDeletionPending
	}
	created := !a.rows[user+"@"+host]
	a.rows[user+"@"+host] = true
	return created, nil
}

func (a *accounts) AccountExists(_ context.Context, host, user string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rows[user+"@"+host], nil
}

func newCore(t *testing.T) (*router.Router, *accounts) {
	t.Helper()
	acc := &accounts{rows: map[string]bool{}, pending: map[string]bool{}}
	core := router.New(router.Options{
		Hosts:    []string{"localhost"},
		Accounts: acc,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return core, acc
}

func bind(t *testing.T, core *router.Router, s string) *target {
	t.Helper()
	return routertest.Bind(t, core, s)
}

// target is the fake Target of the module tests.
type target = routertest.Target

func msg(from, to, typ string) *element.Stanza {
	st := &element.Stanza{Name: "message", Type: typ, ID: "m1", From: jid.MustParse(from)}
	if to != "" {
		st.To = jid.MustParse(to)
	}
	return st
}

// errorCondition returns the defined condition of an error stanza.
func errorCondition(st *element.Stanza) string {
	if st.Type != "error" {
		return ""
	}
	depth := 0
	inError := false
	for _, tok := range st.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if t.Name.Local == "error" {
				inError = true
				continue
			}
			if inError && t.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && t.Name.Local != "text" {
				return t.Name.Local
			}
		case xml.EndElement:
			depth--
		}
	}
	return ""
}

func TestHooksRunByPriorityAndStop(t *testing.T) {
	core, _ := newCore(t)
	var order []string
	add := func(name string, prio int, stop bool) {
		t.Helper()
		if err := core.Hook(router.MessageBare, prio, name, func(*router.EventData) bool {
			order = append(order, name)
			return stop
		}); err != nil {
			t.Fatal(err)
		}
	}
	add("low", -10, false)
	add("high", 10, false)
	add("mid-first", 0, false)
	add("mid-stops", 0, true)
	add("mid-never", 0, false)
	if !core.Fire(router.MessageBare, &router.EventData{}) {
		t.Fatal("Fire: a handler stopped the chain, Fire says it did not")
	}
	if got, want := strings.Join(order, ","), "high,mid-first,mid-stops"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	if core.Fire(router.MessageFull, &router.EventData{}) {
		t.Fatal("an event without handlers stopped")
	}
}

func TestRegistrationErrors(t *testing.T) {
	core, _ := newCore(t)
	h := router.IQHandlerFunc(func(context.Context, router.IQRequest) (xml.TokenReader, error) { return nil, nil })
	name := xml.Name{Space: "urn:test", Local: "q"}
	if err := core.HandleIQ(name, router.AtServer, "urn:test", h); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"second iq handler", core.HandleIQ(name, router.AtServer|router.AtSelf, "", h)},
		{"nil iq handler", core.HandleIQ(xml.Name{Space: "urn:other", Local: "q"}, router.AtSelf, "", nil)},
		{"nil hook", core.Hook(router.StanzaIn, 0, "nil", nil)},
		{"unknown event", core.Hook(router.Event(999), 0, "x", func(*router.EventData) bool { return false })},
		{"local host as a domain", core.AddDomain("LocalHost", domainFunc(nil))},
		{"nil domain handler", core.AddDomain("conference.localhost", nil)},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.what)
		}
	}
	// The failed second registration left the first alone, at AtSelf too.
	if err := core.HandleIQ(name, router.AtSelf, "", h); err != nil {
		t.Fatalf("AtSelf after a refused AtServer|AtSelf: %v", err)
	}
	bind(t, core, "alice@localhost/a")
	if err := core.Hook(router.StanzaIn, 0, "late", func(*router.EventData) bool { return false }); err == nil {
		t.Error("hook after the first bind: no error")
	}
	if err := core.HandleIQ(xml.Name{Space: "urn:late", Local: "q"}, router.AtServer, "", h); err == nil {
		t.Error("iq handler after the first bind: no error")
	}
	if got := core.Features(); len(got) != 1 || got[0] != "urn:test" {
		t.Errorf("features %v", got)
	}
}

type domainFunc func(ctx context.Context, from router.Target, st *element.Stanza)

func (f domainFunc) HandleStanza(ctx context.Context, from router.Target, st *element.Stanza) {
	f(ctx, from, st)
}

func TestRouteRules(t *testing.T) {
	core, _ := newCore(t)
	var component []*element.Stanza
	if err := core.AddDomain("conference.localhost", domainFunc(func(_ context.Context, _ router.Target, st *element.Stanza) {
		component = append(component, st)
	})); err != nil {
		t.Fatal(err)
	}
	var offline []*element.Stanza
	if err := core.Hook(router.MessageOffline, 0, "test", func(e *router.EventData) bool {
		offline = append(offline, e.Stanza)
		return e.Stanza.Type == "chat" // stores chat only
	}); err != nil {
		t.Fatal(err)
	}
	alice := bind(t, core, "alice@localhost/a")
	bob1 := bind(t, core, "bob@localhost/1")
	bob2 := bind(t, core, "bob@localhost/2")
	available := func(tg *target, prio int) {
		if bound, _ := core.SetPresence(tg, &element.Stanza{Name: "presence"}, prio); !bound {
			t.Fatalf("%s not bound", tg.JID())
		}
	}

	tests := []struct {
		name    string
		setup   func()
		st      *element.Stanza
		to      []*target // who gets it (the sender gets nothing unless listed)
		bounced string    // the condition the sender gets back
		offline bool
		comp    bool
	}{
		{name: "bare, nobody available, stored", st: msg("alice@localhost/a", "bob@localhost", "chat"), offline: true},
		{name: "bare, nobody available, not stored", st: msg("alice@localhost/a", "bob@localhost", "normal"), offline: true, bounced: "service-unavailable"},
		{name: "full, bound", st: msg("alice@localhost/a", "bob@localhost/2", "chat"), to: []*target{bob2}},
		{name: "full, not bound, falls back to bare", st: msg("alice@localhost/a", "bob@localhost/9", "chat"), offline: true},
		{name: "full, groupchat, not bound", st: msg("alice@localhost/a", "bob@localhost/9", "groupchat"), bounced: "service-unavailable"},
		{
			name:  "bare, highest priority wins",
			setup: func() { available(bob1, 5); available(bob2, 1) },
			st:    msg("alice@localhost/a", "bob@localhost", "chat"), to: []*target{bob1},
		},
		{
			name:  "bare, equal priorities all get it",
			setup: func() { available(bob2, 5) },
			st:    msg("alice@localhost/a", "bob@localhost", "chat"), to: []*target{bob1, bob2},
		},
		{
			name:  "headline to all non-negative",
			setup: func() { available(bob2, -1) },
			st:    msg("alice@localhost/a", "bob@localhost", "headline"), to: []*target{bob1},
		},
		{
			name:  "bare, only negative priorities: offline",
			setup: func() { available(bob1, -1) },
			st:    msg("alice@localhost/a", "bob@localhost", "chat"), offline: true,
		},
		{name: "bare, groupchat", st: msg("alice@localhost/a", "bob@localhost", "groupchat"), bounced: "service-unavailable"},
		{name: "another domain", st: msg("alice@localhost/a", "example.net", "chat"), bounced: "remote-server-not-found"},
		{name: "a handled domain", st: msg("alice@localhost/a", "room@conference.localhost", "groupchat"), comp: true},
		{name: "server full JID", st: msg("alice@localhost/a", "localhost/x", "chat"), bounced: "service-unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			offline, component = nil, nil
			for _, tg := range []*target{alice, bob1, bob2} {
				tg.Take()
			}
			if tc.setup != nil {
				tc.setup()
			}
			core.Route(context.Background(), alice, tc.st)
			for _, tg := range []*target{bob1, bob2} {
				want := false
				for _, w := range tc.to {
					want = want || w == tg
				}
				if got := len(tg.Take()); (got == 1) != want || got > 1 {
					t.Errorf("%s got %d stanzas, want it: %v", tg.JID(), got, want)
				}
			}
			back := alice.Take()
			switch {
			case tc.bounced == "" && len(back) > 0:
				t.Errorf("sender got %d stanzas, want none", len(back))
			case tc.bounced != "" && (len(back) != 1 || errorCondition(back[0]) != tc.bounced):
				t.Errorf("sender got %v, want one %s error", back, tc.bounced)
			}
			if (len(offline) > 0) != tc.offline {
				t.Errorf("message/offline fired: %v, want %v", len(offline) > 0, tc.offline)
			}
			if (len(component) > 0) != tc.comp {
				t.Errorf("domain handler called: %v, want %v", len(component) > 0, tc.comp)
			}
		})
	}
}

func TestStanzaInRefusesDelivery(t *testing.T) {
	core, _ := newCore(t)
	if err := core.Hook(router.StanzaIn, 100, "refuse mallory", func(e *router.EventData) bool {
		if e.Stanza.From.Localpart() != "mallory" {
			return false
		}
		core.Bounce(e.From, e.Stanza, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return true
	}); err != nil {
		t.Fatal(err)
	}
	var delivered int
	if err := core.Hook(router.MessageDelivered, 0, "count", func(*router.EventData) bool { delivered++; return false }); err != nil {
		t.Fatal(err)
	}
	bob := bind(t, core, "bob@localhost/b")
	mallory := bind(t, core, "mallory@localhost/m")
	alice := bind(t, core, "alice@localhost/a")
	core.Route(context.Background(), mallory, msg("mallory@localhost/m", "bob@localhost/b", "chat"))
	if got := bob.Take(); len(got) != 0 {
		t.Fatalf("bob got %d stanzas from mallory", len(got))
	}
	if back := mallory.Take(); len(back) != 1 || errorCondition(back[0]) != "service-unavailable" {
		t.Fatalf("mallory got %v", back)
	}
	core.Route(context.Background(), alice, msg("alice@localhost/a", "bob@localhost/b", "chat"))
	if got := bob.Take(); len(got) != 1 {
		t.Fatalf("bob got %d stanzas from alice", len(got))
	}
	if delivered != 1 {
		t.Fatalf("message/delivered fired %d times, want 1", delivered)
	}
}

func TestIQMux(t *testing.T) {
	core, _ := newCore(t)
	name := xml.Name{Space: "urn:test", Local: "q"}
	var gotTo []string
	err := core.HandleIQ(name, router.AtServer|router.AtSelf, "", router.IQHandlerFunc(func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
		gotTo = append(gotTo, req.To.String())
		if req.Stanza.Type == "set" {
			return nil, errors.Join(errors.New("wrapped"), stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden})
		}
		if req.Stanza.ID == "boom" {
			return nil, errors.New("storage on fire")
		}
		return element.Empty("urn:test", "q"), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	alice := bind(t, core, "alice@localhost/a")
	iq := func(typ, id, to string) *element.Stanza {
		st, err := element.New("iq", typ, alice.JID(), jid.JID{}, id, element.Empty("urn:test", "q"))
		if err != nil {
			t.Fatal(err)
		}
		if to != "" {
			st.To = jid.MustParse(to)
		}
		return st
	}
	for _, tc := range []struct {
		st        *element.Stanza
		wantType  string
		condition string
	}{
		{iq("get", "1", "localhost"), "result", ""},
		{iq("get", "2", ""), "result", ""},
		{iq("set", "3", "localhost"), "error", "forbidden"},
		{iq("get", "boom", "localhost"), "error", "internal-server-error"},
		{iq("get", "4", "bob@localhost"), "error", "service-unavailable"}, // not AtAccount
	} {
		core.Route(context.Background(), alice, tc.st)
		got := alice.Take()
		if len(got) != 1 || got[0].Type != tc.wantType || got[0].ID != tc.st.ID || errorCondition(got[0]) != tc.condition {
			t.Errorf("iq %s to %q: got %v, want one %s %s", tc.st.ID, tc.st.To, got, tc.wantType, tc.condition)
		}
	}
	if got := strings.Join(gotTo, " "); got != "localhost alice@localhost localhost localhost" {
		t.Errorf("handler saw to %q", got)
	}
}

func TestBindRules(t *testing.T) {
	core, acc := newCore(t)
	if err := core.Hook(router.SessionBind, 0, "refuse eve", func(e *router.EventData) bool {
		if e.Target.JID().Localpart() != "eve" {
			return false
		}
		e.Err = errors.New("eve's list did not load")
		return true
	}); err != nil {
		t.Fatal(err)
	}
	var unbound []string
	if err := core.Hook(router.SessionUnbound, 0, "record", func(e *router.EventData) bool {
		unbound = append(unbound, e.Target.JID().String())
		return false
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := bind(t, core, "alice@localhost/a")
	if !core.AccountExists(ctx, jid.MustParse("alice@localhost")) {
		t.Fatal("bind did not create the account")
	}
	replacement := bind(t, core, "alice@localhost/a")
	if closed, e := old.Closed(); !closed || e.Err != stream.Conflict.Err {
		t.Fatalf("the replaced session was closed: %v, with %v, want conflict", closed, e)
	}
	core.Unbind(ctx, old) // its transport ends later: no effect
	if core.Session(jid.MustParse("alice@localhost/a")) != replacement || core.Sessions() != 1 {
		t.Fatal("unbinding the replaced session removed its replacement")
	}
	var se stanza.Error
	if err := core.Bind(ctx, routertest.NewTarget(t, "eve@localhost/e")); !errors.As(err, &se) || se.Condition != stanza.InternalServerError {
		t.Fatalf("refused bind: %v", err)
	}
	acc.pending["zed@localhost"] = true
	if err := core.Bind(ctx, routertest.NewTarget(t, "zed@localhost/z")); !errors.As(err, &se) || se.Condition != stanza.ResourceConstraint {
		t.Fatalf("bind while the deletion is pending: %v", err)
	}
	for i := 0; i < router.DefaultMaxResources-1; i++ {
		bind(t, core, "alice@localhost/r"+string(rune('A'+i%26))+string(rune('a'+i/26)))
	}
	if err := core.Bind(ctx, routertest.NewTarget(t, "alice@localhost/one-too-many")); !errors.As(err, &se) || se.Condition != stanza.ResourceConstraint {
		t.Fatalf("bind past the resource cap: %v", err)
	}
	core.Unbind(ctx, replacement)
	if got := strings.Join(unbound, " "); got != "alice@localhost/a alice@localhost/a" {
		t.Fatalf("session/unbound fired for %q", got)
	}
	if core.Session(jid.MustParse("alice@localhost/a")) != nil {
		t.Fatal("still bound after Unbind")
	}
}

// countingAccounts is accounts counting AccountExists calls.
type countingAccounts struct {
	*accounts
	asked int
}

func (c *countingAccounts) AccountExists(ctx context.Context, host, user string) (bool, error) {
	c.asked++
	return c.accounts.AccountExists(ctx, host, user)
}

// TestBindKnownAccount: a bind of an account known to have a row does
// not ask the store again; an account forgotten (deleted by another
// process) between that check and the session's registration is asked
// about again, so a deletion that is pending refuses the bind instead of
// leaving a session the deletion did not see.
func TestBindKnownAccount(t *testing.T) {
	acc := &countingAccounts{accounts: &accounts{rows: map[string]bool{}, pending: map[string]bool{}}}
	core := router.New(router.Options{
		Hosts:    []string{"localhost"},
		Accounts: acc,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx := context.Background()
	alice := jid.MustParse("alice@localhost")
	// deleteNow makes the deletion loop run while a bind is between its
	// check and its registration (a SessionBind hook stands for that
	// moment).
	deleteNow := false
	if err := core.Hook(router.SessionBind, 0, "delete meanwhile", func(e *router.EventData) bool {
		if deleteNow {
			deleteNow = false
			acc.mu.Lock()
			delete(acc.rows, "alice@localhost")
			acc.pending["alice@localhost"] = true
			acc.mu.Unlock()
			core.ForgetAccount(ctx, alice)
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	core.Unbind(ctx, bind(t, core, "alice@localhost/a"))
	asked := acc.asked
	core.Unbind(ctx, bind(t, core, "alice@localhost/b"))
	if acc.asked != asked {
		t.Fatalf("a bind of a known account asked the store %d times", acc.asked-asked)
	}
	// The deletion loop runs while the next bind is between its check
	// and its registration (a SessionBind hook stands for that moment).
	deleteNow = true
	var se stanza.Error
	if err := core.Bind(ctx, routertest.NewTarget(t, "alice@localhost/c")); !errors.As(err, &se) || se.Condition != stanza.ResourceConstraint {
		t.Fatalf("bind across the account's deletion: %v, want resource-constraint", err)
	}
	if n := len(core.Resources(alice)); n != 0 {
		t.Fatalf("%d sessions of the deleted account", n)
	}
}
