package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// The IM suites below check the storage the server's IM features consume
// (roster, offline messages, per-user XML, block lists, last activity).
// Each store keeps its rows per user, identified by host and username,
// stored as given and compared byte for byte.
//
// Times are compared with time.Time.Equal and carry at most microseconds,
// the finest precision a PostgreSQL timestamp keeps; a backend may keep
// more.

// RosterStore is the roster storage the suite exercises.
type RosterStore interface {
	// Roster returns all the user's entries, InRoster or not, ordered by
	// contact in byte order, and the roster version (0 for a roster that
	// never changed).
	Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error)
	// RosterItem returns one entry; ok is false when there is none.
	RosterItem(ctx context.Context, host, user, contact string) (item storage.RosterItem, ok bool, err error)
	// PutRosterItem creates or replaces every field of the entry for
	// item.Contact and returns the new version, the previous one plus one,
	// unless that breaks q (see storage.Quota; an entry counts as its
	// Size): then it changes nothing and returns an error wrapping
	// storage.ErrQuota.
	PutRosterItem(ctx context.Context, host, user string, item storage.RosterItem, q storage.Quota) (ver int64, err error)
	// DeleteRosterItem removes the entry and returns the new version, the
	// previous one plus one. Deleting an absent entry is no error and
	// bumps the version all the same: every call is a change as far as
	// versions go, so a client is at worst told to refetch what it has,
	// never left with a stale roster.
	DeleteRosterItem(ctx context.Context, host, user, contact string) (ver int64, err error)
}

// OfflineStore is the offline message storage the suite exercises.
type OfflineStore interface {
	// StoreOffline appends a message unless that breaks q (see
	// storage.Quota; a message counts as the length of its stanza): then it
	// stores nothing and returns an error wrapping storage.ErrQuota.
	// Concurrent calls never take a user past q.
	StoreOffline(ctx context.Context, host, user string, stanza []byte, stored time.Time, q storage.Quota) error
	// OfflineMessages returns the user's messages in the order they were
	// stored (by increasing ID, whatever their Stored times).
	OfflineMessages(ctx context.Context, host, user string) ([]storage.OfflineMessage, error)
	// OfflinePage returns, in the same order, the user's messages with an
	// ID above after: at most maxCount of them and at most maxBytes of
	// stanzas together, but always the first one if there is any.
	OfflinePage(ctx context.Context, host, user string, after int64, maxCount int, maxBytes int64) ([]storage.OfflineMessage, error)
	// DeleteOffline removes the user's messages with the given IDs,
	// ignoring IDs that name none of them.
	DeleteOffline(ctx context.Context, host, user string, ids []int64) error
	// CountOffline returns how many messages the user has stored.
	CountOffline(ctx context.Context, host, user string) (int, error)
}

// XMLStore is the per-user XML document storage the suite exercises.
type XMLStore interface {
	// GetXML returns the document stored under key; ok is false when
	// there is none.
	GetXML(ctx context.Context, host, user, key string) (doc []byte, ok bool, err error)
	// PutXML stores doc under key, replacing any previous one; an empty or
	// nil doc deletes it. q bounds the documents in key's scope (the keys
	// sharing its text up to the first ':', or key alone without one), each
	// counting as its length: a write that breaks q (see storage.Quota)
	// stores nothing and returns an error wrapping storage.ErrQuota.
	PutXML(ctx context.Context, host, user, key string, doc []byte, q storage.Quota) error
}

// BlockStore is the block list storage the suite exercises.
type BlockStore interface {
	// BlockList returns the blocked JIDs sorted in byte order.
	BlockList(ctx context.Context, host, user string) ([]string, error)
	// Block adds JIDs, ignoring those already present or repeated, all or
	// none: when the list would then hold more than max it stores nothing
	// and returns an error wrapping storage.ErrQuota.
	Block(ctx context.Context, host, user string, jids []string, max int) error
	// Unblock removes JIDs, ignoring absent ones; no JIDs (nil or empty)
	// removes all.
	Unblock(ctx context.Context, host, user string, jids []string) error
}

// ActivityStore is the last activity storage the suite exercises.
type ActivityStore interface {
	// SetLastActivity records, replacing any earlier record, the time and
	// status of the user's last logout.
	SetLastActivity(ctx context.Context, host, user string, at time.Time, status string) error
	// LastActivity returns it; ok is false when none was recorded.
	LastActivity(ctx context.Context, host, user string) (at time.Time, status string, ok bool, err error)
}

// AccountExistsStore is an account store that can also tell whether an
// account exists, as the IM features ask.
type AccountExistsStore interface {
	AccountStore
	// AccountExists reports whether the account has a row, with or
	// without a password.
	AccountExists(ctx context.Context, host, username string) (bool, error)
}

// offlineRacers is how many goroutines race to fill a queue of
// offlineRaceMax messages.
const (
	offlineRacers  = 10
	offlineRaceMax = 5
)

// roomy is a quota that the cases not about quotas never reach, and
// roomyCount its count.
var roomy = storage.Quota{Count: roomyCount, Bytes: 1 << 40}

const roomyCount = 1_000_000

// counted is a quota of max entries and no byte bound that matters.
func counted(max int) storage.Quota { return storage.Quota{Count: max, Bytes: roomy.Bytes} }

// suiteCase is one case of a suite over stores of type S; run gets a fresh,
// empty store.
type suiteCase[S any] struct {
	name string
	run  func(t *testing.T, ctx context.Context, s S)
}

// runSuite runs cases one after another, each in its own subtest with a
// store from newStore, which is called from the subtest's goroutine and
// must close the store with t.Cleanup.
func runSuite[S any](t *testing.T, newStore func(t *testing.T) S, cases []suiteCase[S]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, t.Context(), newStore(t))
		})
	}
}

// TestRoster runs the roster conformance suite; newStore is called as by
// [TestAccounts].
func TestRoster(t *testing.T, newStore func(t *testing.T) RosterStore) {
	t.Helper()
	runSuite(t, newStore, rosterCases)
}

// TestOffline runs the offline message conformance suite; newStore is
// called as by [TestAccounts].
func TestOffline(t *testing.T, newStore func(t *testing.T) OfflineStore) {
	t.Helper()
	runSuite(t, newStore, offlineCases)
}

// TestXML runs the per-user XML conformance suite; newStore is called as by
// [TestAccounts].
func TestXML(t *testing.T, newStore func(t *testing.T) XMLStore) {
	t.Helper()
	runSuite(t, newStore, xmlCases)
}

// TestBlock runs the block list conformance suite; newStore is called as by
// [TestAccounts].
func TestBlock(t *testing.T, newStore func(t *testing.T) BlockStore) {
	t.Helper()
	runSuite(t, newStore, blockCases)
}

// TestActivity runs the last activity conformance suite; newStore is
// called as by [TestAccounts].
func TestActivity(t *testing.T, newStore func(t *testing.T) ActivityStore) {
	t.Helper()
	runSuite(t, newStore, activityCases)
}

// TestAccountExists runs the conformance suite of AccountExists; newStore
// is called as by [TestAccounts].
func TestAccountExists(t *testing.T, newStore func(t *testing.T) AccountExistsStore) {
	t.Helper()
	runSuite(t, newStore, accountExistsCases)
}

// fullItem returns an entry for contact with every field set to something
// other than its zero value.
func fullItem(contact string) storage.RosterItem {
	return storage.RosterItem{
		Contact:         contact,
		Name:            "Name of " + contact,
		Groups:          []string{"Friends", "Work"},
		To:              true,
		From:            true,
		PendingOut:      true,
		PendingIn:       true,
		PendingInStanza: []byte(`<presence xmlns="jabber:client" from="` + contact + `" type="subscribe"><status>hi ✓</status></presence>`),
		Approved:        true,
		InRoster:        true,
	}
}

var rosterCases = []suiteCase[RosterStore]{
	{"new roster", func(t *testing.T, ctx context.Context, s RosterStore) {
		wantRoster(t, ctx, s, "example.com", "alice", nil, 0)
		wantNoRosterItem(t, ctx, s, "example.com", "alice", "bob@example.com")
	}},
	{"put and get every field", func(t *testing.T, ctx context.Context, s RosterStore) {
		item := fullItem("bob@example.com")
		mustPutItem(t, ctx, s, "example.com", "alice", item, 1)
		wantRosterItem(t, ctx, s, "example.com", "alice", item)
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{item}, 1)
	}},
	{"put replaces every field", func(t *testing.T, ctx context.Context, s RosterStore) {
		mustPutItem(t, ctx, s, "example.com", "alice", fullItem("bob@example.com"), 1)
		// Every field back to its zero value, InRoster false included.
		bare := storage.RosterItem{Contact: "bob@example.com"}
		mustPutItem(t, ctx, s, "example.com", "alice", bare, 2)
		wantRosterItem(t, ctx, s, "example.com", "alice", bare)
		// And every field set again, each to a new value.
		again := fullItem("bob@example.com")
		again.Name = "Bobby"
		again.Groups = []string{"Family"}
		again.PendingInStanza = []byte(`<presence type="subscribe"/>`)
		again.InRoster = false
		mustPutItem(t, ctx, s, "example.com", "alice", again, 3)
		wantRosterItem(t, ctx, s, "example.com", "alice", again)
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{again}, 3)
	}},
	{"each field alone", func(t *testing.T, ctx context.Context, s RosterStore) {
		// One entry per field set, so that no two columns can be swapped
		// unnoticed.
		items := []storage.RosterItem{
			{Contact: "a@x", Name: "only name"},
			{Contact: "b@x", Groups: []string{"only group"}},
			{Contact: "c@x", To: true},
			{Contact: "d@x", From: true},
			{Contact: "e@x", PendingOut: true},
			{Contact: "f@x", PendingIn: true},
			{Contact: "g@x", PendingInStanza: []byte("<presence/>")},
			{Contact: "h@x", Approved: true},
			{Contact: "i@x", InRoster: true},
		}
		for i, item := range items {
			mustPutItem(t, ctx, s, "example.com", "alice", item, int64(i+1))
		}
		for _, item := range items {
			wantRosterItem(t, ctx, s, "example.com", "alice", item)
		}
		wantRoster(t, ctx, s, "example.com", "alice", items, int64(len(items)))
	}},
	{"groups", func(t *testing.T, ctx context.Context, s RosterStore) {
		cases := []struct {
			contact string
			groups  []string
		}{
			{"nil@x", nil},
			{"empty@x", []string{}},
			{"one@x", []string{"Friends"}},
			// Kept in the order given, not sorted.
			{"order@x", []string{"Zeta", "alpha", "Ünïcødé", "Alpha", "用户"}},
			{"odd@x", []string{`quote " backslash \ <tag>&amp;`, "", " spaced ", "comma, [bracket]"}},
		}
		for i, c := range cases {
			mustPutItem(t, ctx, s, "example.com", "alice", storage.RosterItem{Contact: c.contact, Groups: c.groups, InRoster: true}, int64(i+1))
		}
		for _, c := range cases {
			got := mustGetItem(t, ctx, s, "example.com", "alice", c.contact)
			if len(c.groups) == 0 {
				if got.Groups != nil {
					t.Errorf("%s: Groups %q, want nil", c.contact, got.Groups)
				}
				continue
			}
			if !slices.Equal(got.Groups, c.groups) {
				t.Errorf("%s: Groups %q, want %q", c.contact, got.Groups, c.groups)
			}
		}
	}},
	{"versions count changes", func(t *testing.T, ctx context.Context, s RosterStore) {
		steps := []struct {
			del     bool
			contact string
		}{
			{false, "a@x"}, {false, "b@x"}, {false, "a@x"}, {true, "b@x"},
			{false, "c@x"}, {true, "a@x"}, {true, "c@x"}, {false, "a@x"},
		}
		for i, st := range steps {
			want := int64(i + 1)
			if st.del {
				mustDeleteItem(t, ctx, s, "example.com", "alice", st.contact, want)
			} else {
				mustPutItem(t, ctx, s, "example.com", "alice", storage.RosterItem{Contact: st.contact, InRoster: true}, want)
			}
			if _, ver := mustRoster(t, ctx, s, "example.com", "alice"); ver != want {
				t.Fatalf("after step %d: Roster version %d, want %d", i, ver, want)
			}
		}
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{{Contact: "a@x", InRoster: true}}, int64(len(steps)))
	}},
	{"delete", func(t *testing.T, ctx context.Context, s RosterStore) {
		a, b := fullItem("a@example.com"), fullItem("b@example.com")
		mustPutItem(t, ctx, s, "example.com", "alice", a, 1)
		mustPutItem(t, ctx, s, "example.com", "alice", b, 2)
		mustDeleteItem(t, ctx, s, "example.com", "alice", "a@example.com", 3)
		wantNoRosterItem(t, ctx, s, "example.com", "alice", "a@example.com")
		wantRosterItem(t, ctx, s, "example.com", "alice", b)
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{b}, 3)
	}},
	{"delete absent bumps version", func(t *testing.T, ctx context.Context, s RosterStore) {
		mustDeleteItem(t, ctx, s, "example.com", "alice", "nobody@example.com", 1)
		wantRoster(t, ctx, s, "example.com", "alice", nil, 1)
		mustPutItem(t, ctx, s, "example.com", "alice", fullItem("bob@example.com"), 2)
		mustDeleteItem(t, ctx, s, "example.com", "alice", "bob@example.com", 3)
		mustDeleteItem(t, ctx, s, "example.com", "alice", "bob@example.com", 4)
		wantRoster(t, ctx, s, "example.com", "alice", nil, 4)
	}},
	{"version survives an emptied roster", func(t *testing.T, ctx context.Context, s RosterStore) {
		mustPutItem(t, ctx, s, "example.com", "alice", fullItem("bob@example.com"), 1)
		mustDeleteItem(t, ctx, s, "example.com", "alice", "bob@example.com", 2)
		wantRoster(t, ctx, s, "example.com", "alice", nil, 2)
		mustPutItem(t, ctx, s, "example.com", "alice", fullItem("bob@example.com"), 3)
	}},
	{"ordered by contact", func(t *testing.T, ctx context.Context, s RosterStore) {
		contacts := []string{"zed@x", "bob@x", "Bob@x", "ünï@x", "alice@y", "alice@x", "b@x", "😀@x"}
		var want []storage.RosterItem
		for i, c := range contacts {
			// Hidden entries are listed too.
			item := storage.RosterItem{Contact: c, InRoster: i%2 == 0}
			mustPutItem(t, ctx, s, "example.com", "alice", item, int64(i+1))
			want = append(want, item)
		}
		slices.SortFunc(want, func(a, b storage.RosterItem) int { return strings.Compare(a.Contact, b.Contact) })
		wantRoster(t, ctx, s, "example.com", "alice", want, int64(len(contacts)))
	}},
	{"per-user isolation", func(t *testing.T, ctx context.Context, s RosterStore) {
		item := fullItem("carol@example.com")
		mustPutItem(t, ctx, s, "a.example", "alice", item, 1)
		mustPutItem(t, ctx, s, "a.example", "alice", fullItem("dave@example.com"), 2)
		// Bob on the same host, Alice on another host and "Alice" differ.
		for _, u := range []struct{ host, user string }{
			{"a.example", "bob"}, {"b.example", "alice"}, {"a.example", "Alice"},
		} {
			wantRoster(t, ctx, s, u.host, u.user, nil, 0)
			wantNoRosterItem(t, ctx, s, u.host, u.user, "carol@example.com")
			// Their changes have their own versions and touch none of
			// Alice's entries.
			mustDeleteItem(t, ctx, s, u.host, u.user, "carol@example.com", 1)
			other := storage.RosterItem{Contact: "dave@example.com", Name: u.user}
			mustPutItem(t, ctx, s, u.host, u.user, other, 2)
			wantRoster(t, ctx, s, u.host, u.user, []storage.RosterItem{other}, 2)
		}
		wantRosterItem(t, ctx, s, "a.example", "alice", item)
		wantRoster(t, ctx, s, "a.example", "alice", []storage.RosterItem{item, fullItem("dave@example.com")}, 2)
	}},
	{"concurrent changes", func(t *testing.T, ctx context.Context, s RosterStore) {
		vers := make([]int64, concurrency)
		errs := raceN(concurrency, func(i int) error {
			var err error
			if i%2 == 0 {
				vers[i], err = s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: fmt.Sprintf("c%d@x", i), InRoster: true}, roomy)
			} else {
				vers[i], err = s.DeleteRosterItem(ctx, "example.com", "alice", "absent@x")
			}
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("goroutine %d: %v", i, err)
			}
		}
		// Each change got its own version: together 1, 2, … concurrency.
		slices.Sort(vers)
		for i, v := range vers {
			if v != int64(i+1) {
				t.Fatalf("versions returned %v, want 1 to %d once each", vers, concurrency)
			}
		}
		items, ver := mustRoster(t, ctx, s, "example.com", "alice")
		if ver != concurrency || len(items) != (concurrency+1)/2 {
			t.Errorf("Roster: %d items, version %d; want %d items, version %d", len(items), ver, (concurrency+1)/2, concurrency)
		}
	}},
	{"quota counts entries", func(t *testing.T, ctx context.Context, s RosterStore) {
		q := storage.Quota{Count: 3, Bytes: roomy.Bytes}
		// Hidden entries (a pending-in request) count as well.
		items := []storage.RosterItem{
			{Contact: "a@x", InRoster: true},
			{Contact: "b@x", PendingIn: true},
			{Contact: "c@x", Approved: true},
		}
		for i, it := range items {
			mustPutItemQuota(t, ctx, s, "example.com", "alice", it, q, int64(i+1))
		}
		_, err := s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: "d@x", InRoster: true}, q)
		wantErr(t, "PutRosterItem of a new entry beyond the count", err, storage.ErrQuota)
		wantRoster(t, ctx, s, "example.com", "alice", items, 3)
		// Changing an entry adds none.
		items[1] = storage.RosterItem{Contact: "b@x", From: true, InRoster: true}
		mustPutItemQuota(t, ctx, s, "example.com", "alice", items[1], q, 4)
		// Room again after a delete; other users have their own.
		mustDeleteItem(t, ctx, s, "example.com", "alice", "c@x", 5)
		mustPutItemQuota(t, ctx, s, "example.com", "alice", storage.RosterItem{Contact: "d@x"}, q, 6)
		mustPutItemQuota(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: "d@x"}, q, 1)
		_, err = s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: "e@x"}, storage.Quota{Count: 0, Bytes: roomy.Bytes})
		wantErr(t, "PutRosterItem with a count of 0", err, storage.ErrQuota)
	}},
	{"quota counts bytes", func(t *testing.T, ctx context.Context, s RosterStore) {
		a := storage.RosterItem{Contact: "a@x", Name: "0123456789", InRoster: true} // 13 bytes
		if a.Size() != 13 {
			t.Fatalf("Size of %+v = %d, want 13", a, a.Size())
		}
		// Each field counts: contact, name, groups, pending-in stanza.
		b := storage.RosterItem{Contact: "b@x", Name: "ü", Groups: []string{"g1", "用"}, PendingInStanza: []byte("<p/>"), PendingIn: true}
		if b.Size() != 3+2+2+3+4 {
			t.Fatalf("Size of %+v = %d, want 14", b, b.Size())
		}
		q := storage.Quota{Count: 100, Bytes: 27}
		mustPutItemQuota(t, ctx, s, "example.com", "alice", a, q, 1)
		mustPutItemQuota(t, ctx, s, "example.com", "alice", b, q, 2)
		// 27 of 27 bytes: a new entry does not fit, nor does a longer name.
		_, err := s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: "c"}, q)
		wantErr(t, "PutRosterItem of a new entry beyond the bytes", err, storage.ErrQuota)
		longer := a
		longer.Name += "x"
		_, err = s.PutRosterItem(ctx, "example.com", "alice", longer, q)
		wantErr(t, "PutRosterItem growing an entry beyond the bytes", err, storage.ErrQuota)
		bigger := b
		bigger.Groups = append(slices.Clone(b.Groups), "g")
		_, err = s.PutRosterItem(ctx, "example.com", "alice", bigger, q)
		wantErr(t, "PutRosterItem adding a group beyond the bytes", err, storage.ErrQuota)
		bigger = b
		bigger.PendingInStanza = []byte("<p />")
		_, err = s.PutRosterItem(ctx, "example.com", "alice", bigger, q)
		wantErr(t, "PutRosterItem growing the stanza beyond the bytes", err, storage.ErrQuota)
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{a, b}, 2)
		// Under a quota lowered since, a change of the same size or smaller
		// is still allowed, and one that grows is not.
		low := storage.Quota{Count: 1, Bytes: 10}
		b.To = true
		mustPutItemQuota(t, ctx, s, "example.com", "alice", b, low, 3)
		b.PendingIn, b.PendingInStanza = false, nil
		mustPutItemQuota(t, ctx, s, "example.com", "alice", b, low, 4)
		_, err = s.PutRosterItem(ctx, "example.com", "alice", longer, low)
		wantErr(t, "PutRosterItem growing an entry under a lowered quota", err, storage.ErrQuota)
		// The bytes freed make room: 14 + 10 + 3 of 27.
		mustPutItemQuota(t, ctx, s, "example.com", "alice", longer, q, 5)
		mustPutItemQuota(t, ctx, s, "example.com", "alice", storage.RosterItem{Contact: "c@x"}, q, 6)
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{longer, b, {Contact: "c@x"}}, 6)
	}},
	{"concurrent quota", func(t *testing.T, ctx context.Context, s RosterStore) {
		q := storage.Quota{Count: offlineRaceMax, Bytes: roomy.Bytes}
		errs := raceN(offlineRacers, func(i int) error {
			_, err := s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: fmt.Sprintf("c%d@x", i), PendingIn: true}, q)
			return err
		})
		won := quotaWins(t, "PutRosterItem", errs)
		items, ver := mustRoster(t, ctx, s, "example.com", "alice")
		if won != offlineRaceMax || len(items) != offlineRaceMax || ver != offlineRaceMax {
			t.Errorf("%d of %d racing PutRosterItem calls succeeded, roster has %d entries at version %d; want %d each",
				won, offlineRacers, len(items), ver, offlineRaceMax)
		}
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s RosterStore) {
		item := fullItem("bob@example.com")
		mustPutItem(t, ctx, s, "example.com", "alice", item, 1)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"Roster", func() error { _, _, err := s.Roster(cctx, "example.com", "alice"); return err }},
			{"RosterItem", func() error { _, _, err := s.RosterItem(cctx, "example.com", "alice", "bob@example.com"); return err }},
			{"PutRosterItem", func() error {
				_, err := s.PutRosterItem(cctx, "example.com", "alice", fullItem("carol@example.com"), roomy)
				return err
			}},
			{"DeleteRosterItem", func() error {
				_, err := s.DeleteRosterItem(cctx, "example.com", "alice", "bob@example.com")
				return err
			}},
		}
		for _, c := range calls {
			wantErr(t, c.name+" with a cancelled context", c.call(), context.Canceled)
		}
		wantRoster(t, ctx, s, "example.com", "alice", []storage.RosterItem{item}, 1)
	}},
}

// msgTime returns a time n minutes into a fixed day, with microseconds, in
// a zone other than UTC.
func msgTime(n int) time.Time {
	return time.Date(2025, 3, 4, 5, n, 7, 123456000, time.FixedZone("UTC+2", 2*60*60)).Add(time.Duration(n) * time.Microsecond)
}

var offlineCases = []suiteCase[OfflineStore]{
	{"empty", func(t *testing.T, ctx context.Context, s OfflineStore) {
		wantOffline(t, ctx, s, "example.com", "alice", nil)
		mustDeleteOffline(t, ctx, s, "example.com", "alice", nil)
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{1, 2, 3})
		wantOffline(t, ctx, s, "example.com", "alice", nil)
	}},
	{"store and read", func(t *testing.T, ctx context.Context, s OfflineStore) {
		stanzas := [][]byte{
			[]byte(`<message xmlns="jabber:client" from="bob@example.com/r" to="alice@example.com"><body>one</body></message>`),
			[]byte(`<message><body>ünïcødé 用户 😀 &lt;&amp;&gt; "'</body></message>`),
			bytes.Repeat([]byte("<x>0123456789abcdef</x>"), 4096), // about 90 KiB
		}
		var want []storage.OfflineMessage
		for i, st := range stanzas {
			mustStoreOffline(t, ctx, s, "example.com", "alice", st, msgTime(i), 10)
			want = append(want, storage.OfflineMessage{Stanza: st, Stored: msgTime(i)})
		}
		wantOffline(t, ctx, s, "example.com", "alice", want)
	}},
	{"oldest first whatever the times", func(t *testing.T, ctx context.Context, s OfflineStore) {
		// Stored times run backwards (a clock step, or callers racing);
		// the order of storing wins.
		var want []storage.OfflineMessage
		for i := range 5 {
			st := fmt.Appendf(nil, "<message><body>%d</body></message>", i)
			at := msgTime(10 - i)
			mustStoreOffline(t, ctx, s, "example.com", "alice", st, at, 10)
			want = append(want, storage.OfflineMessage{Stanza: st, Stored: at})
		}
		wantOffline(t, ctx, s, "example.com", "alice", want)
	}},
	{"delete only given ids", func(t *testing.T, ctx context.Context, s OfflineStore) {
		for i := range 5 {
			mustStoreOffline(t, ctx, s, "example.com", "alice", fmt.Appendf(nil, "<m>%d</m>", i), msgTime(i), 10)
		}
		all := mustOffline(t, ctx, s, "example.com", "alice")
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{all[3].ID, all[1].ID})
		want := []storage.OfflineMessage{all[0], all[2], all[4]}
		wantOffline(t, ctx, s, "example.com", "alice", want)
		// Already deleted and unknown ids are ignored.
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{all[1].ID, all[4].ID + 1000, -1, 0})
		wantOffline(t, ctx, s, "example.com", "alice", want)
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{all[0].ID, all[2].ID, all[4].ID, all[4].ID})
		wantOffline(t, ctx, s, "example.com", "alice", nil)
	}},
	{"ids are not reused", func(t *testing.T, ctx context.Context, s OfflineStore) {
		// A delivery deletes the ids it read; an id given again to a
		// message stored meanwhile would delete that message unread.
		for i := range 3 {
			mustStoreOffline(t, ctx, s, "example.com", "alice", fmt.Appendf(nil, "<m>%d</m>", i), msgTime(i), 10)
		}
		first := mustOffline(t, ctx, s, "example.com", "alice")
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{first[1].ID, first[2].ID})
		mustStoreOffline(t, ctx, s, "example.com", "alice", []byte("<m>new</m>"), msgTime(5), 10)
		got := mustOffline(t, ctx, s, "example.com", "alice")
		if len(got) != 2 || got[1].ID <= first[2].ID {
			t.Errorf("after deleting ids %d and %d and storing again: %+v, want a new id above %d", first[1].ID, first[2].ID, got, first[2].ID)
		}
	}},
	{"quota", func(t *testing.T, ctx context.Context, s OfflineStore) {
		const max = 3
		for i := range max {
			mustStoreOffline(t, ctx, s, "example.com", "alice", fmt.Appendf(nil, "<m>%d</m>", i), msgTime(i), max)
		}
		before := mustOffline(t, ctx, s, "example.com", "alice")
		err := s.StoreOffline(ctx, "example.com", "alice", []byte("<m>over</m>"), msgTime(9), counted(max))
		wantErr(t, "StoreOffline over the quota", err, storage.ErrQuota)
		wantOffline(t, ctx, s, "example.com", "alice", before)
		// A lowered quota refuses too; a raised one lets one more in.
		err = s.StoreOffline(ctx, "example.com", "alice", []byte("<m>over</m>"), msgTime(9), counted(max-1))
		wantErr(t, "StoreOffline over a lowered quota", err, storage.ErrQuota)
		mustStoreOffline(t, ctx, s, "example.com", "alice", []byte("<m>3</m>"), msgTime(3), max+1)
		// Other users have their own quota.
		mustStoreOffline(t, ctx, s, "example.com", "bob", []byte("<m>bob</m>"), msgTime(0), max)
		mustStoreOffline(t, ctx, s, "other.example", "alice", []byte("<m>other</m>"), msgTime(0), max)
		// Delivering frees room.
		all := mustOffline(t, ctx, s, "example.com", "alice")
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{all[0].ID, all[1].ID})
		mustStoreOffline(t, ctx, s, "example.com", "alice", []byte("<m>4</m>"), msgTime(4), max)
		err = s.StoreOffline(ctx, "example.com", "alice", []byte("<m>over</m>"), msgTime(9), counted(max))
		wantErr(t, "StoreOffline over the quota after a delete", err, storage.ErrQuota)
		wantCount(t, ctx, s, "example.com", "alice", max)
	}},
	{"zero quota refuses", func(t *testing.T, ctx context.Context, s OfflineStore) {
		err := s.StoreOffline(ctx, "example.com", "alice", []byte("<m/>"), msgTime(0), counted(0))
		wantErr(t, "StoreOffline with max 0", err, storage.ErrQuota)
		wantOffline(t, ctx, s, "example.com", "alice", nil)
	}},
	{"concurrent quota", func(t *testing.T, ctx context.Context, s OfflineStore) {
		stanza := func(i int) []byte { return fmt.Appendf(nil, "<m>%d</m>", i) }
		errs := raceN(offlineRacers, func(i int) error {
			return s.StoreOffline(ctx, "example.com", "alice", stanza(i), msgTime(i), counted(offlineRaceMax))
		})
		var won [][]byte
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, stanza(i))
			case !errors.Is(err, storage.ErrQuota):
				t.Errorf("StoreOffline in goroutine %d: %v, want nil or storage.ErrQuota", i, err)
			}
		}
		if len(won) != offlineRaceMax {
			t.Errorf("%d of %d racing StoreOffline calls succeeded, want %d", len(won), offlineRacers, offlineRaceMax)
		}
		wantCount(t, ctx, s, "example.com", "alice", offlineRaceMax)
		var got [][]byte
		for _, m := range mustOffline(t, ctx, s, "example.com", "alice") {
			got = append(got, m.Stanza)
		}
		slices.SortFunc(got, bytes.Compare)
		slices.SortFunc(won, bytes.Compare)
		if !slices.EqualFunc(got, won, bytes.Equal) {
			t.Errorf("stored %q, want those of the winners, %q", got, won)
		}
	}},
	{"byte quota", func(t *testing.T, ctx context.Context, s OfflineStore) {
		q := storage.Quota{Count: 100, Bytes: 100}
		sixty, forty := bytes.Repeat([]byte("6"), 60), bytes.Repeat([]byte("4"), 40)
		mustStoreOfflineQuota(t, ctx, s, "example.com", "alice", sixty, msgTime(0), q)
		mustStoreOfflineQuota(t, ctx, s, "example.com", "alice", forty, msgTime(1), q)
		err := s.StoreOffline(ctx, "example.com", "alice", []byte("1"), msgTime(2), q)
		wantErr(t, "StoreOffline beyond the bytes", err, storage.ErrQuota)
		all := mustOffline(t, ctx, s, "example.com", "alice")
		wantOffline(t, ctx, s, "example.com", "alice", []storage.OfflineMessage{
			{Stanza: sixty, Stored: msgTime(0)}, {Stanza: forty, Stored: msgTime(1)},
		})
		// A message larger than the whole quota never fits.
		err = s.StoreOffline(ctx, "example.com", "bob", bytes.Repeat([]byte("x"), 101), msgTime(0), q)
		wantErr(t, "StoreOffline of a message larger than the quota", err, storage.ErrQuota)
		wantOffline(t, ctx, s, "example.com", "bob", nil)
		// Delivering frees bytes.
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{all[0].ID})
		mustStoreOfflineQuota(t, ctx, s, "example.com", "alice", sixty, msgTime(3), q)
		err = s.StoreOffline(ctx, "example.com", "alice", []byte("1"), msgTime(4), q)
		wantErr(t, "StoreOffline beyond the bytes after a delete", err, storage.ErrQuota)
		err = s.StoreOffline(ctx, "example.com", "alice", []byte("<m/>"), msgTime(4), storage.Quota{Count: 100, Bytes: 0})
		wantErr(t, "StoreOffline with 0 bytes allowed", err, storage.ErrQuota)
		wantCount(t, ctx, s, "example.com", "alice", 2)
	}},
	{"concurrent byte quota", func(t *testing.T, ctx context.Context, s OfflineStore) {
		// Room for offlineRaceMax messages by bytes, plenty by count.
		const size = 30
		q := storage.Quota{Count: 1000, Bytes: offlineRaceMax*size + size - 1}
		errs := raceN(offlineRacers, func(i int) error {
			return s.StoreOffline(ctx, "example.com", "alice", bytes.Repeat([]byte{byte('a' + i)}, size), msgTime(i), q)
		})
		won := quotaWins(t, "StoreOffline", errs)
		if won != offlineRaceMax {
			t.Errorf("%d of %d racing StoreOffline calls succeeded, want %d", won, offlineRacers, offlineRaceMax)
		}
		wantCount(t, ctx, s, "example.com", "alice", offlineRaceMax)
	}},
	{"pages", func(t *testing.T, ctx context.Context, s OfflineStore) {
		wantPage(t, ctx, s, "example.com", "alice", 0, 10, 1000, nil)
		var want []storage.OfflineMessage
		for i := range 10 {
			st := bytes.Repeat([]byte{byte('0' + i)}, 10+i) // 10, 11, … 19 bytes
			mustStoreOffline(t, ctx, s, "example.com", "alice", st, msgTime(i), 100)
			want = append(want, storage.OfflineMessage{Stanza: st, Stored: msgTime(i)})
		}
		mustStoreOffline(t, ctx, s, "example.com", "bob", []byte("<bob/>"), msgTime(0), 100)
		all := mustOffline(t, ctx, s, "example.com", "alice")
		for i := range want {
			want[i].ID = all[i].ID
		}
		// By count: 4, 4, 2, then none.
		wantPage(t, ctx, s, "example.com", "alice", 0, 4, 1000, want[:4])
		wantPage(t, ctx, s, "example.com", "alice", want[3].ID, 4, 1000, want[4:8])
		wantPage(t, ctx, s, "example.com", "alice", want[7].ID, 4, 1000, want[8:])
		wantPage(t, ctx, s, "example.com", "alice", want[9].ID, 4, 1000, nil)
		// By bytes: 10+11+12 = 33 fit in 33 or 45, not in 32; the first
		// message comes even when it alone is larger.
		wantPage(t, ctx, s, "example.com", "alice", 0, 100, 33, want[:3])
		wantPage(t, ctx, s, "example.com", "alice", 0, 100, 45, want[:3])
		wantPage(t, ctx, s, "example.com", "alice", 0, 100, 32, want[:2])
		wantPage(t, ctx, s, "example.com", "alice", 0, 100, 1, want[:1])
		wantPage(t, ctx, s, "example.com", "alice", want[8].ID, 100, 1, want[9:])
		// From the middle of a gap left by deleted messages.
		mustDeleteOffline(t, ctx, s, "example.com", "alice", []int64{want[1].ID, want[2].ID})
		wantPage(t, ctx, s, "example.com", "alice", want[0].ID, 2, 1000, []storage.OfflineMessage{want[3], want[4]})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.OfflinePage(cctx, "example.com", "alice", 0, 10, 1000)
		wantErr(t, "OfflinePage with a cancelled context", err, context.Canceled)
	}},
	{"per-user isolation", func(t *testing.T, ctx context.Context, s OfflineStore) {
		users := []struct{ host, user string }{
			{"a.example", "alice"}, {"a.example", "bob"}, {"b.example", "alice"}, {"a.example", "Alice"},
		}
		want := make([][]storage.OfflineMessage, len(users))
		for round := range 2 {
			for i, u := range users {
				st := fmt.Appendf(nil, "<m>%s@%s %d</m>", u.user, u.host, round)
				mustStoreOffline(t, ctx, s, u.host, u.user, st, msgTime(round), 2)
				want[i] = append(want[i], storage.OfflineMessage{Stanza: st, Stored: msgTime(round)})
			}
		}
		for i, u := range users {
			wantOffline(t, ctx, s, u.host, u.user, want[i])
		}
		// Bob cannot delete Alice's messages by their ids.
		alice := mustOffline(t, ctx, s, "a.example", "alice")
		ids := []int64{alice[0].ID, alice[1].ID}
		for _, u := range users[1:] {
			mustDeleteOffline(t, ctx, s, u.host, u.user, ids)
		}
		wantOffline(t, ctx, s, "a.example", "alice", want[0])
		for i, u := range users[1:] {
			wantOffline(t, ctx, s, u.host, u.user, want[i+1])
		}
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s OfflineStore) {
		mustStoreOffline(t, ctx, s, "example.com", "alice", []byte("<m/>"), msgTime(0), 10)
		want := mustOffline(t, ctx, s, "example.com", "alice")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"StoreOffline", func() error {
				return s.StoreOffline(cctx, "example.com", "alice", []byte("<m/>"), msgTime(1), counted(10))
			}},
			{"OfflineMessages", func() error { _, err := s.OfflineMessages(cctx, "example.com", "alice"); return err }},
			{"DeleteOffline", func() error { return s.DeleteOffline(cctx, "example.com", "alice", []int64{want[0].ID}) }},
			{"CountOffline", func() error { _, err := s.CountOffline(cctx, "example.com", "alice"); return err }},
		}
		for _, c := range calls {
			wantErr(t, c.name+" with a cancelled context", c.call(), context.Canceled)
		}
		wantOffline(t, ctx, s, "example.com", "alice", want)
	}},
}

var xmlCases = []suiteCase[XMLStore]{
	{"missing", func(t *testing.T, ctx context.Context, s XMLStore) {
		wantNoXML(t, ctx, s, "example.com", "alice", "vcard")
	}},
	{"put and get", func(t *testing.T, ctx context.Context, s XMLStore) {
		doc := []byte(`<vCard xmlns="vcard-temp"><FN>Ålice 用户 😀</FN><PHOTO><BINVAL>` + strings.Repeat("QUJD", 20000) + `</BINVAL></PHOTO></vCard>`)
		mustPutXML(t, ctx, s, "example.com", "alice", "vcard", doc)
		wantXML(t, ctx, s, "example.com", "alice", "vcard", doc)
	}},
	{"replace", func(t *testing.T, ctx context.Context, s XMLStore) {
		mustPutXML(t, ctx, s, "example.com", "alice", "vcard", []byte(`<vCard xmlns="vcard-temp"><FN>Old, and longer than the new one</FN></vCard>`))
		doc := []byte(`<vCard xmlns="vcard-temp"><FN>New</FN></vCard>`)
		mustPutXML(t, ctx, s, "example.com", "alice", "vcard", doc)
		wantXML(t, ctx, s, "example.com", "alice", "vcard", doc)
	}},
	{"empty deletes", func(t *testing.T, ctx context.Context, s XMLStore) {
		for _, empty := range [][]byte{nil, {}} {
			mustPutXML(t, ctx, s, "example.com", "alice", "vcard", []byte(`<vCard xmlns="vcard-temp"/>`))
			mustPutXML(t, ctx, s, "example.com", "alice", "vcard", empty)
			wantNoXML(t, ctx, s, "example.com", "alice", "vcard")
			// Deleting what is not there is no error.
			mustPutXML(t, ctx, s, "example.com", "alice", "vcard", empty)
			wantNoXML(t, ctx, s, "example.com", "alice", "vcard")
		}
	}},
	{"keys are separate", func(t *testing.T, ctx context.Context, s XMLStore) {
		docs := map[string][]byte{
			"vcard":                       []byte(`<vCard xmlns="vcard-temp"/>`),
			"private:storage:bookmarks":   []byte(`<storage xmlns="storage:bookmarks"/>`),
			"private:storage:rosternotes": []byte(`<storage xmlns="storage:rosternotes"/>`),
			"private:":                    []byte(`<x/>`),
		}
		for k, d := range docs {
			mustPutXML(t, ctx, s, "example.com", "alice", k, d)
		}
		wantNoXML(t, ctx, s, "example.com", "alice", "private:storage")
		wantNoXML(t, ctx, s, "example.com", "alice", "VCARD")
		mustPutXML(t, ctx, s, "example.com", "alice", "private:storage:bookmarks", nil)
		delete(docs, "private:storage:bookmarks")
		wantNoXML(t, ctx, s, "example.com", "alice", "private:storage:bookmarks")
		for k, d := range docs {
			wantXML(t, ctx, s, "example.com", "alice", k, d)
		}
	}},
	{"per-user isolation", func(t *testing.T, ctx context.Context, s XMLStore) {
		users := []struct{ host, user string }{
			{"a.example", "alice"}, {"a.example", "bob"}, {"b.example", "alice"}, {"a.example", "Alice"},
		}
		mustPutXML(t, ctx, s, "a.example", "alice", "vcard", []byte("<alice/>"))
		for _, u := range users[1:] {
			wantNoXML(t, ctx, s, u.host, u.user, "vcard")
			// Their deletes do not reach Alice's document.
			mustPutXML(t, ctx, s, u.host, u.user, "vcard", nil)
		}
		for _, u := range users[1:] {
			mustPutXML(t, ctx, s, u.host, u.user, "vcard", []byte("<"+u.user+"@"+u.host+"/>"))
		}
		wantXML(t, ctx, s, "a.example", "alice", "vcard", []byte("<alice/>"))
		for _, u := range users[1:] {
			wantXML(t, ctx, s, u.host, u.user, "vcard", []byte("<"+u.user+"@"+u.host+"/>"))
		}
	}},
	{"quota counts documents in a scope", func(t *testing.T, ctx context.Context, s XMLStore) {
		q := storage.Quota{Count: 2, Bytes: roomy.Bytes}
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:a", []byte("<a/>"), q)
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:b", []byte("<b/>"), q)
		err := s.PutXML(ctx, "example.com", "alice", "private:c", []byte("<c/>"), q)
		wantErr(t, "PutXML of a third document", err, storage.ErrQuota)
		wantNoXML(t, ctx, s, "example.com", "alice", "private:c")
		// Replacing one adds none.
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:a", []byte("<a>again</a>"), q)
		// Keys outside the scope have their own.
		for _, k := range []string{"vcard", "private", "privatex", "private;x", "other:a", "other:b"} {
			mustPutXMLQuota(t, ctx, s, "example.com", "alice", k, []byte("<x/>"), q)
		}
		err = s.PutXML(ctx, "example.com", "alice", "other:c", []byte("<c/>"), q)
		wantErr(t, "PutXML of a third document in another scope", err, storage.ErrQuota)
		mustPutXMLQuota(t, ctx, s, "example.com", "bob", "private:c", []byte("<c/>"), q)
		// A delete always succeeds and makes room.
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:b", nil, storage.Quota{})
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:c", []byte("<c/>"), q)
		wantXML(t, ctx, s, "example.com", "alice", "private:a", []byte("<a>again</a>"))
		wantXML(t, ctx, s, "example.com", "alice", "private:c", []byte("<c/>"))
	}},
	{"quota counts bytes in a scope", func(t *testing.T, ctx context.Context, s XMLStore) {
		q := storage.Quota{Count: 100, Bytes: 10}
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:a", []byte("12345678"), q)
		err := s.PutXML(ctx, "example.com", "alice", "private:b", []byte("abc"), q)
		wantErr(t, "PutXML beyond the bytes", err, storage.ErrQuota)
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:b", []byte("ab"), q)
		err = s.PutXML(ctx, "example.com", "alice", "private:c", []byte("z"), q)
		wantErr(t, "PutXML beyond the bytes", err, storage.ErrQuota)
		err = s.PutXML(ctx, "example.com", "alice", "private:a", []byte("123456789"), q)
		wantErr(t, "PutXML growing a document beyond the bytes", err, storage.ErrQuota)
		wantXML(t, ctx, s, "example.com", "alice", "private:a", []byte("12345678"))
		// Another scope has its own bytes; a smaller replacement makes room.
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "vcard", []byte("0123456789"), q)
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:a", []byte("1234567"), q)
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:c", []byte("z"), q)
		// Under a quota lowered since, the same size is still allowed.
		mustPutXMLQuota(t, ctx, s, "example.com", "alice", "private:a", []byte("7654321"), storage.Quota{Count: 1, Bytes: 1})
		wantXML(t, ctx, s, "example.com", "alice", "private:a", []byte("7654321"))
	}},
	{"concurrent quota", func(t *testing.T, ctx context.Context, s XMLStore) {
		q := storage.Quota{Count: offlineRaceMax, Bytes: roomy.Bytes}
		errs := raceN(offlineRacers, func(i int) error {
			return s.PutXML(ctx, "example.com", "alice", fmt.Sprintf("private:%d", i), []byte("<x/>"), q)
		})
		won := quotaWins(t, "PutXML", errs)
		if won != offlineRaceMax {
			t.Errorf("%d of %d racing PutXML calls succeeded, want %d", won, offlineRacers, offlineRaceMax)
		}
	}},
	{"buffers are not shared", func(t *testing.T, ctx context.Context, s XMLStore) {
		doc := []byte("<a/>")
		mustPutXML(t, ctx, s, "example.com", "alice", "vcard", doc)
		doc[1] = 'b' // the caller reuses its buffer
		got := mustGetXML(t, ctx, s, "example.com", "alice", "vcard")
		got[1] = 'c' // and changes what it was given
		wantXML(t, ctx, s, "example.com", "alice", "vcard", []byte("<a/>"))
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s XMLStore) {
		mustPutXML(t, ctx, s, "example.com", "alice", "vcard", []byte("<a/>"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := s.GetXML(cctx, "example.com", "alice", "vcard")
		wantErr(t, "GetXML with a cancelled context", err, context.Canceled)
		err = s.PutXML(cctx, "example.com", "alice", "vcard", []byte("<b/>"), roomy)
		wantErr(t, "PutXML with a cancelled context", err, context.Canceled)
		err = s.PutXML(cctx, "example.com", "alice", "vcard", nil, roomy)
		wantErr(t, "PutXML (delete) with a cancelled context", err, context.Canceled)
		wantXML(t, ctx, s, "example.com", "alice", "vcard", []byte("<a/>"))
	}},
}

var blockCases = []suiteCase[BlockStore]{
	{"empty", func(t *testing.T, ctx context.Context, s BlockStore) {
		wantBlockList(t, ctx, s, "example.com", "alice", nil)
		mustBlock(t, ctx, s, "example.com", "alice", nil)
		mustBlock(t, ctx, s, "example.com", "alice", []string{})
		mustUnblock(t, ctx, s, "example.com", "alice", nil)
		mustUnblock(t, ctx, s, "example.com", "alice", []string{"bob@example.com"})
		wantBlockList(t, ctx, s, "example.com", "alice", nil)
	}},
	{"sorted", func(t *testing.T, ctx context.Context, s BlockStore) {
		jids := []string{"zed@x", "example.net", "bob@x/phone", "Bob@x", "bob@x", "ünï@x", "😀@x"}
		mustBlock(t, ctx, s, "example.com", "alice", jids)
		want := slices.Clone(jids)
		slices.Sort(want)
		wantBlockList(t, ctx, s, "example.com", "alice", want)
	}},
	{"duplicates ignored", func(t *testing.T, ctx context.Context, s BlockStore) {
		mustBlock(t, ctx, s, "example.com", "alice", []string{"b@x", "a@x", "b@x"})
		mustBlock(t, ctx, s, "example.com", "alice", []string{"a@x", "c@x"})
		mustBlock(t, ctx, s, "example.com", "alice", []string{"c@x"})
		wantBlockList(t, ctx, s, "example.com", "alice", []string{"a@x", "b@x", "c@x"})
	}},
	{"unblock some", func(t *testing.T, ctx context.Context, s BlockStore) {
		mustBlock(t, ctx, s, "example.com", "alice", []string{"a@x", "b@x", "c@x", "d@x"})
		mustUnblock(t, ctx, s, "example.com", "alice", []string{"d@x", "b@x", "absent@x", "b@x"})
		wantBlockList(t, ctx, s, "example.com", "alice", []string{"a@x", "c@x"})
	}},
	{"unblock all", func(t *testing.T, ctx context.Context, s BlockStore) {
		for _, all := range [][]string{nil, {}} {
			mustBlock(t, ctx, s, "example.com", "alice", []string{"a@x", "b@x"})
			mustUnblock(t, ctx, s, "example.com", "alice", all)
			wantBlockList(t, ctx, s, "example.com", "alice", nil)
		}
	}},
	{"quota", func(t *testing.T, ctx context.Context, s BlockStore) {
		mustBlockMax(t, ctx, s, "example.com", "alice", []string{"a@x", "b@x", "a@x"}, 3)
		err := s.Block(ctx, "example.com", "alice", []string{"c@x", "d@x"}, 3)
		wantErr(t, "Block beyond the limit", err, storage.ErrQuota)
		wantBlockList(t, ctx, s, "example.com", "alice", []string{"a@x", "b@x"})
		// JIDs already there add nothing, whatever the limit.
		mustBlockMax(t, ctx, s, "example.com", "alice", []string{"b@x", "a@x"}, 1)
		mustBlockMax(t, ctx, s, "example.com", "alice", []string{"c@x", "a@x", "c@x"}, 3)
		err = s.Block(ctx, "example.com", "alice", []string{"a@x", "d@x"}, 3)
		wantErr(t, "Block beyond the limit", err, storage.ErrQuota)
		err = s.Block(ctx, "example.com", "bob", []string{"a@x"}, 0)
		wantErr(t, "Block with a limit of 0", err, storage.ErrQuota)
		mustBlockMax(t, ctx, s, "example.com", "bob", []string{"a@x", "b@x", "c@x"}, 3)
		mustUnblock(t, ctx, s, "example.com", "alice", []string{"b@x"})
		mustBlockMax(t, ctx, s, "example.com", "alice", []string{"d@x"}, 3)
		wantBlockList(t, ctx, s, "example.com", "alice", []string{"a@x", "c@x", "d@x"})
	}},
	{"concurrent quota", func(t *testing.T, ctx context.Context, s BlockStore) {
		errs := raceN(offlineRacers, func(i int) error {
			return s.Block(ctx, "example.com", "alice", []string{fmt.Sprintf("%d@x", i), fmt.Sprintf("%d@y", i)}, 2*offlineRaceMax)
		})
		won := quotaWins(t, "Block", errs)
		got, err := s.BlockList(ctx, "example.com", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if won != offlineRaceMax || len(got) != 2*offlineRaceMax {
			t.Errorf("%d of %d racing Block calls succeeded, %d JIDs blocked; want %d and %d", won, offlineRacers, len(got), offlineRaceMax, 2*offlineRaceMax)
		}
	}},
	{"per-user isolation", func(t *testing.T, ctx context.Context, s BlockStore) {
		users := []struct{ host, user string }{
			{"a.example", "alice"}, {"a.example", "bob"}, {"b.example", "alice"}, {"a.example", "Alice"},
		}
		mustBlock(t, ctx, s, "a.example", "alice", []string{"a@x", "b@x"})
		for _, u := range users[1:] {
			wantBlockList(t, ctx, s, u.host, u.user, nil)
			mustUnblock(t, ctx, s, u.host, u.user, nil)
			mustUnblock(t, ctx, s, u.host, u.user, []string{"a@x"})
			mustBlock(t, ctx, s, u.host, u.user, []string{u.user + "@" + u.host})
		}
		wantBlockList(t, ctx, s, "a.example", "alice", []string{"a@x", "b@x"})
		for _, u := range users[1:] {
			wantBlockList(t, ctx, s, u.host, u.user, []string{u.user + "@" + u.host})
		}
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s BlockStore) {
		mustBlock(t, ctx, s, "example.com", "alice", []string{"a@x"})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"BlockList", func() error { _, err := s.BlockList(cctx, "example.com", "alice"); return err }},
			{"Block", func() error { return s.Block(cctx, "example.com", "alice", []string{"b@x"}, roomyCount) }},
			{"Unblock", func() error { return s.Unblock(cctx, "example.com", "alice", []string{"a@x"}) }},
			{"Unblock all", func() error { return s.Unblock(cctx, "example.com", "alice", nil) }},
		}
		for _, c := range calls {
			wantErr(t, c.name+" with a cancelled context", c.call(), context.Canceled)
		}
		wantBlockList(t, ctx, s, "example.com", "alice", []string{"a@x"})
	}},
}

var activityCases = []suiteCase[ActivityStore]{
	{"never", func(t *testing.T, ctx context.Context, s ActivityStore) {
		wantNoActivity(t, ctx, s, "example.com", "alice")
	}},
	{"set and get", func(t *testing.T, ctx context.Context, s ActivityStore) {
		mustSetActivity(t, ctx, s, "example.com", "alice", msgTime(1), "Gone fishing 🎣")
		wantActivity(t, ctx, s, "example.com", "alice", msgTime(1), "Gone fishing 🎣")
	}},
	{"upsert", func(t *testing.T, ctx context.Context, s ActivityStore) {
		mustSetActivity(t, ctx, s, "example.com", "alice", msgTime(1), "first")
		mustSetActivity(t, ctx, s, "example.com", "alice", msgTime(2), "second")
		wantActivity(t, ctx, s, "example.com", "alice", msgTime(2), "second")
		// An empty status replaces the old one; an earlier time is stored
		// as given.
		mustSetActivity(t, ctx, s, "example.com", "alice", msgTime(0), "")
		wantActivity(t, ctx, s, "example.com", "alice", msgTime(0), "")
	}},
	{"per-user isolation", func(t *testing.T, ctx context.Context, s ActivityStore) {
		users := []struct{ host, user string }{
			{"a.example", "alice"}, {"a.example", "bob"}, {"b.example", "alice"}, {"a.example", "Alice"},
		}
		mustSetActivity(t, ctx, s, "a.example", "alice", msgTime(0), "alice")
		for _, u := range users[1:] {
			wantNoActivity(t, ctx, s, u.host, u.user)
		}
		for i, u := range users[1:] {
			mustSetActivity(t, ctx, s, u.host, u.user, msgTime(i+1), u.user+"@"+u.host)
		}
		wantActivity(t, ctx, s, "a.example", "alice", msgTime(0), "alice")
		for i, u := range users[1:] {
			wantActivity(t, ctx, s, u.host, u.user, msgTime(i+1), u.user+"@"+u.host)
		}
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s ActivityStore) {
		mustSetActivity(t, ctx, s, "example.com", "alice", msgTime(1), "away")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.SetLastActivity(cctx, "example.com", "alice", msgTime(2), "back")
		wantErr(t, "SetLastActivity with a cancelled context", err, context.Canceled)
		_, _, _, err = s.LastActivity(cctx, "example.com", "alice")
		wantErr(t, "LastActivity with a cancelled context", err, context.Canceled)
		wantActivity(t, ctx, s, "example.com", "alice", msgTime(1), "away")
	}},
}

var accountExistsCases = []suiteCase[AccountExistsStore]{
	{"exists", func(t *testing.T, ctx context.Context, s AccountExistsStore) {
		wantExists(t, ctx, s, "example.com", "alice", false)
		mustCreate(t, ctx, s, "example.com", "alice", "hash")
		mustEnsure(t, ctx, s, "example.com", "bob", true)
		wantExists(t, ctx, s, "example.com", "alice", true)
		wantExists(t, ctx, s, "example.com", "bob", true)
		wantExists(t, ctx, s, "example.com", "Alice", false)
		wantExists(t, ctx, s, "other.example", "alice", false)
		mustDelete(t, ctx, s, "example.com", "alice")
		wantExists(t, ctx, s, "example.com", "alice", false)
		wantExists(t, ctx, s, "example.com", "bob", true)
	}},
	{"cancelled context", func(t *testing.T, ctx context.Context, s AccountExistsStore) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.AccountExists(cctx, "example.com", "alice")
		wantErr(t, "AccountExists with a cancelled context", err, context.Canceled)
	}},
}

// raceN runs f in n goroutines released at the same moment and returns
// their errors, indexed like the goroutines.
func raceN(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// quotaWins returns how many of the racing calls named call succeeded,
// and fails the test for any that failed with another error than
// storage.ErrQuota.
func quotaWins(t *testing.T, call string, errs []error) int {
	t.Helper()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrQuota):
			t.Errorf("%s in goroutine %d: %v, want nil or storage.ErrQuota", call, i, err)
		}
	}
	return won
}

// rosterItemEqual compares every field; nil and empty slices are equal
// (the "groups" case checks that empty groups read back as nil).
func rosterItemEqual(a, b storage.RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) &&
		a.To == b.To && a.From == b.From && a.PendingOut == b.PendingOut &&
		a.PendingIn == b.PendingIn && bytes.Equal(a.PendingInStanza, b.PendingInStanza) &&
		a.Approved == b.Approved && a.InRoster == b.InRoster
}

func formatItems(items []storage.RosterItem) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "\n\t%+v (PendingInStanza %q)", it, it.PendingInStanza)
	}
	return b.String()
}

func mustRoster(t *testing.T, ctx context.Context, s RosterStore, host, user string) ([]storage.RosterItem, int64) {
	t.Helper()
	items, ver, err := s.Roster(ctx, host, user)
	if err != nil {
		t.Fatalf("Roster(%q, %q): %v", host, user, err)
	}
	return items, ver
}

func wantRoster(t *testing.T, ctx context.Context, s RosterStore, host, user string, want []storage.RosterItem, wantVer int64) {
	t.Helper()
	items, ver := mustRoster(t, ctx, s, host, user)
	if ver != wantVer {
		t.Errorf("Roster(%q, %q): version %d, want %d", host, user, ver, wantVer)
	}
	if !slices.EqualFunc(items, want, rosterItemEqual) {
		t.Errorf("Roster(%q, %q):\n got%s\nwant%s", host, user, formatItems(items), formatItems(want))
	}
}

func mustGetItem(t *testing.T, ctx context.Context, s RosterStore, host, user, contact string) storage.RosterItem {
	t.Helper()
	item, ok, err := s.RosterItem(ctx, host, user, contact)
	if err != nil {
		t.Fatalf("RosterItem(%q, %q, %q): %v", host, user, contact, err)
	}
	if !ok {
		t.Fatalf("RosterItem(%q, %q, %q): not found", host, user, contact)
	}
	return item
}

func wantRosterItem(t *testing.T, ctx context.Context, s RosterStore, host, user string, want storage.RosterItem) {
	t.Helper()
	got := mustGetItem(t, ctx, s, host, user, want.Contact)
	if !rosterItemEqual(got, want) {
		t.Errorf("RosterItem(%q, %q, %q):\n got%s\nwant%s", host, user, want.Contact,
			formatItems([]storage.RosterItem{got}), formatItems([]storage.RosterItem{want}))
	}
}

func wantNoRosterItem(t *testing.T, ctx context.Context, s RosterStore, host, user, contact string) {
	t.Helper()
	item, ok, err := s.RosterItem(ctx, host, user, contact)
	if err != nil {
		t.Fatalf("RosterItem(%q, %q, %q): %v", host, user, contact, err)
	}
	if ok {
		t.Errorf("RosterItem(%q, %q, %q) = %+v, want none", host, user, contact, item)
	}
}

func mustPutItem(t *testing.T, ctx context.Context, s RosterStore, host, user string, item storage.RosterItem, wantVer int64) {
	t.Helper()
	ver, err := s.PutRosterItem(ctx, host, user, item, roomy)
	if err != nil {
		t.Fatalf("PutRosterItem(%q, %q, %q): %v", host, user, item.Contact, err)
	}
	if ver != wantVer {
		t.Fatalf("PutRosterItem(%q, %q, %q): version %d, want %d", host, user, item.Contact, ver, wantVer)
	}
}

func mustDeleteItem(t *testing.T, ctx context.Context, s RosterStore, host, user, contact string, wantVer int64) {
	t.Helper()
	ver, err := s.DeleteRosterItem(ctx, host, user, contact)
	if err != nil {
		t.Fatalf("DeleteRosterItem(%q, %q, %q): %v", host, user, contact, err)
	}
	if ver != wantVer {
		t.Fatalf("DeleteRosterItem(%q, %q, %q): version %d, want %d", host, user, contact, ver, wantVer)
	}
}

func mustStoreOffline(t *testing.T, ctx context.Context, s OfflineStore, host, user string, stanza []byte, at time.Time, max int) {
	t.Helper()
	if err := s.StoreOffline(ctx, host, user, stanza, at, counted(max)); err != nil {
		t.Fatalf("StoreOffline(%q, %q, max %d): %v", host, user, max, err)
	}
}

func mustOffline(t *testing.T, ctx context.Context, s OfflineStore, host, user string) []storage.OfflineMessage {
	t.Helper()
	msgs, err := s.OfflineMessages(ctx, host, user)
	if err != nil {
		t.Fatalf("OfflineMessages(%q, %q): %v", host, user, err)
	}
	return msgs
}

func mustDeleteOffline(t *testing.T, ctx context.Context, s OfflineStore, host, user string, ids []int64) {
	t.Helper()
	if err := s.DeleteOffline(ctx, host, user, ids); err != nil {
		t.Fatalf("DeleteOffline(%q, %q, %v): %v", host, user, ids, err)
	}
}

func wantCount(t *testing.T, ctx context.Context, s OfflineStore, host, user string, want int) {
	t.Helper()
	n, err := s.CountOffline(ctx, host, user)
	if err != nil {
		t.Fatalf("CountOffline(%q, %q): %v", host, user, err)
	}
	if n != want {
		t.Errorf("CountOffline(%q, %q) = %d, want %d", host, user, n, want)
	}
}

// wantOffline checks the user's messages and count against want. The IDs of
// want are checked only where they are not zero; those of the messages must
// increase.
func wantOffline(t *testing.T, ctx context.Context, s OfflineStore, host, user string, want []storage.OfflineMessage) {
	t.Helper()
	got := mustOffline(t, ctx, s, host, user)
	eq := func(g, w storage.OfflineMessage) bool {
		return (w.ID == 0 || g.ID == w.ID) && bytes.Equal(g.Stanza, w.Stanza) && g.Stored.Equal(w.Stored)
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("OfflineMessages(%q, %q):\n got %s\nwant %s", host, user, formatMsgs(got), formatMsgs(want))
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Errorf("OfflineMessages(%q, %q): ids %d then %d, want increasing", host, user, got[i-1].ID, got[i].ID)
		}
	}
	wantCount(t, ctx, s, host, user, len(want))
}

func formatMsgs(msgs []storage.OfflineMessage) string {
	var parts []string
	for _, m := range msgs {
		st := m.Stanza
		if len(st) > 60 {
			st = append(st[:60:60], "…"...)
		}
		parts = append(parts, fmt.Sprintf("{%d %q %v}", m.ID, st, m.Stored))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func mustPutXML(t *testing.T, ctx context.Context, s XMLStore, host, user, key string, doc []byte) {
	t.Helper()
	if err := s.PutXML(ctx, host, user, key, doc, roomy); err != nil {
		t.Fatalf("PutXML(%q, %q, %q): %v", host, user, key, err)
	}
}

func mustGetXML(t *testing.T, ctx context.Context, s XMLStore, host, user, key string) []byte {
	t.Helper()
	doc, ok, err := s.GetXML(ctx, host, user, key)
	if err != nil {
		t.Fatalf("GetXML(%q, %q, %q): %v", host, user, key, err)
	}
	if !ok {
		t.Fatalf("GetXML(%q, %q, %q): not found", host, user, key)
	}
	return doc
}

func wantXML(t *testing.T, ctx context.Context, s XMLStore, host, user, key string, want []byte) {
	t.Helper()
	if got := mustGetXML(t, ctx, s, host, user, key); !bytes.Equal(got, want) {
		t.Errorf("GetXML(%q, %q, %q) = %.80q, want %.80q", host, user, key, got, want)
	}
}

func wantNoXML(t *testing.T, ctx context.Context, s XMLStore, host, user, key string) {
	t.Helper()
	doc, ok, err := s.GetXML(ctx, host, user, key)
	if err != nil {
		t.Fatalf("GetXML(%q, %q, %q): %v", host, user, key, err)
	}
	if ok || doc != nil {
		t.Errorf("GetXML(%q, %q, %q) = %q, %v; want nil, false", host, user, key, doc, ok)
	}
}

func mustBlock(t *testing.T, ctx context.Context, s BlockStore, host, user string, jids []string) {
	t.Helper()
	if err := s.Block(ctx, host, user, jids, roomyCount); err != nil {
		t.Fatalf("Block(%q, %q, %q): %v", host, user, jids, err)
	}
}

func mustUnblock(t *testing.T, ctx context.Context, s BlockStore, host, user string, jids []string) {
	t.Helper()
	if err := s.Unblock(ctx, host, user, jids); err != nil {
		t.Fatalf("Unblock(%q, %q, %q): %v", host, user, jids, err)
	}
}

func wantBlockList(t *testing.T, ctx context.Context, s BlockStore, host, user string, want []string) {
	t.Helper()
	got, err := s.BlockList(ctx, host, user)
	if err != nil {
		t.Fatalf("BlockList(%q, %q): %v", host, user, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("BlockList(%q, %q) = %q, want %q", host, user, got, want)
	}
}

func mustSetActivity(t *testing.T, ctx context.Context, s ActivityStore, host, user string, at time.Time, status string) {
	t.Helper()
	if err := s.SetLastActivity(ctx, host, user, at, status); err != nil {
		t.Fatalf("SetLastActivity(%q, %q): %v", host, user, err)
	}
}

func wantActivity(t *testing.T, ctx context.Context, s ActivityStore, host, user string, wantAt time.Time, wantStatus string) {
	t.Helper()
	at, status, ok, err := s.LastActivity(ctx, host, user)
	if err != nil {
		t.Fatalf("LastActivity(%q, %q): %v", host, user, err)
	}
	if !ok || !at.Equal(wantAt) || status != wantStatus {
		t.Errorf("LastActivity(%q, %q) = %v, %q, %v; want %v, %q, true", host, user, at, status, ok, wantAt, wantStatus)
	}
}

func wantNoActivity(t *testing.T, ctx context.Context, s ActivityStore, host, user string) {
	t.Helper()
	at, status, ok, err := s.LastActivity(ctx, host, user)
	if err != nil {
		t.Fatalf("LastActivity(%q, %q): %v", host, user, err)
	}
	if ok {
		t.Errorf("LastActivity(%q, %q) = %v, %q, true; want none", host, user, at, status)
	}
}

func wantExists(t *testing.T, ctx context.Context, s AccountExistsStore, host, user string, want bool) {
	t.Helper()
	got, err := s.AccountExists(ctx, host, user)
	if err != nil {
		t.Fatalf("AccountExists(%q, %q): %v", host, user, err)
	}
	if got != want {
		t.Errorf("AccountExists(%q, %q) = %v, want %v", host, user, got, want)
	}
}

func mustPutItemQuota(t *testing.T, ctx context.Context, s RosterStore, host, user string, item storage.RosterItem, q storage.Quota, wantVer int64) {
	t.Helper()
	ver, err := s.PutRosterItem(ctx, host, user, item, q)
	if err != nil {
		t.Fatalf("PutRosterItem(%q, %q, %q, %+v): %v", host, user, item.Contact, q, err)
	}
	if ver != wantVer {
		t.Fatalf("PutRosterItem(%q, %q, %q): version %d, want %d", host, user, item.Contact, ver, wantVer)
	}
}

func mustStoreOfflineQuota(t *testing.T, ctx context.Context, s OfflineStore, host, user string, stanza []byte, at time.Time, q storage.Quota) {
	t.Helper()
	if err := s.StoreOffline(ctx, host, user, stanza, at, q); err != nil {
		t.Fatalf("StoreOffline(%q, %q, %+v): %v", host, user, q, err)
	}
}

// wantPage checks one OfflinePage against want, IDs included.
func wantPage(t *testing.T, ctx context.Context, s OfflineStore, host, user string, after int64, maxCount int, maxBytes int64, want []storage.OfflineMessage) {
	t.Helper()
	got, err := s.OfflinePage(ctx, host, user, after, maxCount, maxBytes)
	if err != nil {
		t.Fatalf("OfflinePage(%q, %q, %d, %d, %d): %v", host, user, after, maxCount, maxBytes, err)
	}
	eq := func(g, w storage.OfflineMessage) bool {
		return g.ID == w.ID && bytes.Equal(g.Stanza, w.Stanza) && g.Stored.Equal(w.Stored)
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("OfflinePage(%q, %q, %d, %d, %d):\n got %s\nwant %s", host, user, after, maxCount, maxBytes, formatMsgs(got), formatMsgs(want))
	}
}

func mustPutXMLQuota(t *testing.T, ctx context.Context, s XMLStore, host, user, key string, doc []byte, q storage.Quota) {
	t.Helper()
	if err := s.PutXML(ctx, host, user, key, doc, q); err != nil {
		t.Fatalf("PutXML(%q, %q, %q, %+v): %v", host, user, key, q, err)
	}
}

func mustBlockMax(t *testing.T, ctx context.Context, s BlockStore, host, user string, jids []string, max int) {
	t.Helper()
	if err := s.Block(ctx, host, user, jids, max); err != nil {
		t.Fatalf("Block(%q, %q, %q, %d): %v", host, user, jids, max, err)
	}
}
