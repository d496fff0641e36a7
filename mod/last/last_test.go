package last_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/mod/last"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

var _ last.Store = (*sqlite.Store)(nil)

// offline makes tg's session go unavailable as the presence module does:
// recorded in the core, then PresenceBroadcast.
func offline(core *router.Router, tg router.Target, status string) {
	st := &element.Stanza{Name: "presence", Type: "unavailable", From: tg.JID()}
	if status != "" {
		st = mustStanza(`<presence type='unavailable'><status>` + status + `</status></presence>`)
	}
	core.SetPresence(tg, st, 0)
	core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: tg, Stanza: st})
}

func mustStanza(s string) *element.Stanza {
	st, err := element.FromBytes([]byte(s))
	if err != nil {
		panic(err)
	}
	return st
}

func TestLastActivity(t *testing.T) {
	core, store := routertest.New(t)
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := started
	if err := last.Register(core, store, last.Options{Started: started, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	if fs := core.Features(); len(fs) != 1 || fs[0] != "jabber:iq:last" {
		t.Errorf("features %q, want jabber:iq:last", fs)
	}
	// bob is subscribed to alice's presence; carol is not.
	if _, err := store.PutRosterItem(context.Background(), "localhost", "alice", storage.RosterItem{Contact: "bob@localhost", From: true, InRoster: true}, storage.Quota{Count: 10, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	home := routertest.Bind(t, core, "alice@localhost/home")
	phone := routertest.Bind(t, core, "alice@localhost/phone")
	bob := routertest.Bind(t, core, "bob@localhost/b")
	carol := routertest.Bind(t, core, "carol@localhost/c")
	for _, tg := range []router.Target{home, phone} {
		core.SetPresence(tg, &element.Stanza{Name: "presence"}, 0)
	}

	ask := func(from *routertest.Target, to, typ string, want ...string) {
		t.Helper()
		attr := ""
		if to != "" {
			attr = ` to='` + to + `'`
		}
		routertest.Send(t, core, from, `<iq type='`+typ+`' id='q'`+attr+`><query xmlns='jabber:iq:last'/></iq>`)
		got := from.Take()
		if len(got) != 1 {
			t.Errorf("%s asking %q: %d replies", from.JID(), to, len(got))
			return
		}
		s := routertest.XML(t, got[0])
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("%s asking %q: reply lacks %q:\n%s", from.JID(), to, w, s)
			}
		}
	}

	now = started.Add(90*time.Second + 900*time.Millisecond)
	ask(carol, "localhost", "get", `type="result"`, `<query xmlns="jabber:iq:last" seconds="90">`)
	ask(carol, "localhost", "set", `type="error"`, `<error type="cancel"><bad-request`)
	ask(carol, "alice@localhost", "get", `type="error"`, `<error type="auth"><forbidden`)
	ask(bob, "alice@localhost", "get", `seconds="0"`)
	ask(home, "", "get", `seconds="0"`)

	// One resource leaves: the other is still online, nothing recorded.
	offline(core, phone, "phone off")
	ask(bob, "alice@localhost", "get", `seconds="0"`)
	if _, _, ok, err := store.LastActivity(context.Background(), "localhost", "alice"); ok || err != nil {
		t.Errorf("last activity recorded while a resource is available (err %v)", err)
	}
	// An available presence records nothing either.
	core.Fire(router.PresenceBroadcast, &router.EventData{Ctx: context.Background(), Target: home, Stanza: &element.Stanza{Name: "presence"}})

	// The last one leaves.
	offline(core, home, "gone fishing")
	now = now.Add(time.Hour)
	ask(bob, "alice@localhost", "get", `<query xmlns="jabber:iq:last" seconds="3600">gone fishing</query>`)
	ask(home, "alice@localhost", "get", `seconds="3600"`)
	// Never logged out.
	ask(bob, "", "get", `<error type="cancel"><item-not-found`)
}
