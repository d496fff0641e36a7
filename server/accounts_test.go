package server_test

import (
	"context"
	"testing"

	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/storage/sqlite"
)

// TestDeletedAccountWhileOffline deletes an account that has no session
// through a second store on the same file, as `ottr user del` does: its
// online contact gets the server-side unsubscribe (no unavailable: it was
// offline), and the token user logging in again starts from nothing
// (security review #9).
func TestDeletedAccountWhileOffline(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	xmpptest.SubscribeBoth(t, alice, bob)
	alice.Close()
	bob.PresenceFrom("alice@localhost/a", "unavailable")
	drain(t, bob)

	st, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.DeleteAccount(context.Background(), testHost, "alice"); err != nil {
		t.Fatal(err)
	}
	bob.PresenceFrom("alice@localhost", "unsubscribed")
	bob.PresenceFrom("alice@localhost", "unsubscribe")
	if it := bob.RosterPush(); it.JID != "alice@localhost" || it.Subscription != "none" {
		t.Fatalf("bob's push: %+v", it)
	}
	noneOf(t, "bob", drain(t, bob), func(r xmpptest.Received) bool {
		return r.Name == "presence" && r.Type == "unavailable"
	})

	alice = ts.mustLogin(t, "alice", "a")
	if q := alice.Roster(""); len(q.Items) != 0 {
		t.Fatalf("alice's roster after deletion: %+v", q)
	}
	// bob is not subscribed to her any more: her presence does not reach
	// him.
	alice.Send(`<presence><status>new me</status></presence>`)
	alice.PresenceFrom("alice@localhost/a", "")
	drain(t, alice) // her broadcast is over by the answer
	noneOf(t, "bob", drain(t, bob), func(r xmpptest.Received) bool { return r.Name == "presence" })
}
