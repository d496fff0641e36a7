package roster

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

// faultyRosterStore is a real store whose roster item reads fail for one
// user: the storage edge of a read-modify-write.
type faultyRosterStore struct {
	*sqlite.Store
	failFor string // username whose RosterItem reads fail
}

func (f *faultyRosterStore) RosterItem(ctx context.Context, host, user, contact string) (RosterItem, bool, error) {
	if user == f.failFor {
		return RosterItem{}, false, errors.New("disk I/O error (injected)")
	}
	return f.Store.RosterItem(ctx, host, user, contact)
}

// TestSubscriptionReadFailureChangesNothing: when the roster entry a
// subscription change reads cannot be read, the change is dropped and
// logged; the stored entry (and the contact's) stay as they were,
// instead of being replaced by a zero entry with the change applied
// (security review #11).
func TestSubscriptionReadFailureChangesNothing(t *testing.T) {
	alice, bob := jid.MustParse("alice@localhost"), jid.MustParse("bob@localhost")
	stored := RosterItem{Contact: bob.String(), Name: "Bob", Groups: []string{"Friends"}, To: true, From: true, InRoster: true}
	bobs := RosterItem{Contact: alice.String(), Name: "Alice", To: true, From: true, InRoster: true}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, m *Module) error
	}{
		{"inbound subscribe", func(ctx context.Context, m *Module) error {
			m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "subscribe", From: bob, To: alice})
			return nil
		}},
		{"inbound unsubscribe", func(ctx context.Context, m *Module) error {
			m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "unsubscribe", From: bob, To: alice})
			return nil
		}},
		{"inbound unsubscribed", func(ctx context.Context, m *Module) error {
			m.inboundSubscription(ctx, &element.Stanza{Name: "presence", Type: "unsubscribed", From: bob, To: alice})
			return nil
		}},
		{"outbound subscribe", func(ctx context.Context, m *Module) error {
			return m.subscriptionFromUser(ctx, alice, bob, &element.Stanza{Name: "presence", Type: "subscribe", From: alice, To: bob})
		}},
		{"outbound unsubscribe", func(ctx context.Context, m *Module) error {
			return m.subscriptionFromUser(ctx, alice, bob, &element.Stanza{Name: "presence", Type: "unsubscribe", From: alice, To: bob})
		}},
		{"outbound unsubscribed", func(ctx context.Context, m *Module) error {
			return m.subscriptionFromUser(ctx, alice, bob, &element.Stanza{Name: "presence", Type: "unsubscribed", From: alice, To: bob})
		}},
		{"roster set", func(ctx context.Context, m *Module) error {
			st, err := element.Unmarshal([]byte(`<iq xmlns='jabber:client' type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Robert'/></query></iq>`))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.handleRoster(ctx, router.IQRequest{From: jid.MustParse("alice@localhost/a"), To: alice, Stanza: st})
			return err
		}},
		{"roster remove", func(ctx context.Context, m *Module) error {
			found, err := m.removeContact(ctx, alice, bob)
			if found {
				t.Error("removeContact reported the entry found and removed")
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ottr.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			for _, u := range []string{"alice", "bob"} {
				if _, err := st.EnsureAccount(ctx, "localhost", u); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.PutRosterItem(ctx, "localhost", "alice", stored, storage.Quota{Count: 100, Bytes: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.PutRosterItem(ctx, "localhost", "bob", bobs, storage.Quota{Count: 100, Bytes: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			var logs xmpptest.LogBuffer
			core := router.New(router.Options{Hosts: []string{"localhost"}, Accounts: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			m, err := Register(core, &faultyRosterStore{Store: st, failFor: "alice"}, Options{MaxItems: 100})
			if err != nil {
				t.Fatal(err)
			}

			if err := tc.run(ctx, m); tc.name[:7] != "inbound" && err == nil {
				t.Error("no error returned for a failed read")
			}
			if !strings.Contains(logs.String(), "reading a roster item failed") {
				t.Errorf("failure not logged; log:\n%s", logs.String())
			}
			for _, want := range []struct {
				user string
				item RosterItem
			}{{"alice", stored}, {"bob", bobs}} {
				got, ok, err := st.RosterItem(ctx, "localhost", want.user, want.item.Contact)
				if err != nil || !ok || !itemsEqual(got, want.item) {
					t.Errorf("%s's entry after the failed change: %+v (ok %v, err %v), want %+v unchanged", want.user, got, ok, err, want.item)
				}
			}
		})
	}
}
