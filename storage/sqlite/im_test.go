package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/storagetest"
)

// roomy is a quota the tests here never reach.
var roomy = storage.Quota{Count: 1000, Bytes: 1 << 20}

// newTestStore opens an empty store in the test's temporary directory.
func newTestStore(t *testing.T) *Store {
	return openTest(t, filepath.Join(t.TempDir(), "ottr.db"))
}

func TestRoster(t *testing.T) {
	storagetest.TestRoster(t, func(t *testing.T) storagetest.RosterStore { return newTestStore(t) })
}

func TestOffline(t *testing.T) {
	storagetest.TestOffline(t, func(t *testing.T) storagetest.OfflineStore { return newTestStore(t) })
}

func TestXML(t *testing.T) {
	storagetest.TestXML(t, func(t *testing.T) storagetest.XMLStore { return newTestStore(t) })
}

func TestBlock(t *testing.T) {
	storagetest.TestBlock(t, func(t *testing.T) storagetest.BlockStore { return newTestStore(t) })
}

func TestActivity(t *testing.T) {
	storagetest.TestActivity(t, func(t *testing.T) storagetest.ActivityStore { return newTestStore(t) })
}

func TestAccountExists(t *testing.T) {
	storagetest.TestAccountExists(t, func(t *testing.T) storagetest.AccountExistsStore { return newTestStore(t) })
}

// TestIMReopen writes through one store, closes it, and finds everything
// through a new one on the same file.
func TestIMReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// A time with nanoseconds: SQLite keeps them.
	at := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	item := storage.RosterItem{
		Contact: "bob@example.com", Name: "Bob", Groups: []string{"B", "A"},
		To: true, PendingIn: true, PendingInStanza: []byte(`<presence type="subscribe"/>`), Approved: true,
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err = s.PutRosterItem(ctx, "example.com", "alice", item, roomy)
	must("PutRosterItem", err)
	_, err = s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: "carol@example.com"}, roomy)
	must("PutRosterItem", err)
	_, err = s.DeleteRosterItem(ctx, "example.com", "alice", "carol@example.com")
	must("DeleteRosterItem", err)
	must("StoreOffline", s.StoreOffline(ctx, "example.com", "alice", []byte("<m>1</m>"), at, storage.Quota{Count: 10, Bytes: 1 << 20}))
	must("StoreOffline", s.StoreOffline(ctx, "example.com", "alice", []byte("<m>2</m>"), at.Add(time.Nanosecond), storage.Quota{Count: 10, Bytes: 1 << 20}))
	must("PutXML", s.PutXML(ctx, "example.com", "alice", "vcard", []byte("<vCard/>"), roomy))
	must("Block", s.Block(ctx, "example.com", "alice", []string{"eve@example.com", "mallory@example.com"}, 100))
	must("SetLastActivity", s.SetLastActivity(ctx, "example.com", "alice", at, "bye"))
	_, err = s.EnsureAccount(ctx, "example.com", "alice")
	must("EnsureAccount", err)
	must("Close", s.Close())

	s = openTest(t, path)
	items, ver, err := s.Roster(ctx, "example.com", "alice")
	must("Roster", err)
	if ver != 3 || len(items) != 1 || items[0].Name != "Bob" || !slices.Equal(items[0].Groups, []string{"B", "A"}) ||
		!items[0].To || items[0].From || !items[0].PendingIn || !bytes.Equal(items[0].PendingInStanza, item.PendingInStanza) ||
		!items[0].Approved || items[0].InRoster {
		t.Errorf("Roster after reopen = %+v, version %d; want [%+v], version 3", items, ver, item)
	}
	ver, err = s.PutRosterItem(ctx, "example.com", "alice", item, roomy)
	must("PutRosterItem", err)
	if ver != 4 {
		t.Errorf("PutRosterItem after reopen: version %d, want 4", ver)
	}
	msgs, err := s.OfflineMessages(ctx, "example.com", "alice")
	must("OfflineMessages", err)
	if len(msgs) != 2 || string(msgs[0].Stanza) != "<m>1</m>" || string(msgs[1].Stanza) != "<m>2</m>" ||
		!msgs[0].Stored.Equal(at) || !msgs[1].Stored.Equal(at.Add(time.Nanosecond)) {
		t.Errorf("OfflineMessages after reopen = %+v", msgs)
	}
	doc, ok, err := s.GetXML(ctx, "example.com", "alice", "vcard")
	must("GetXML", err)
	if !ok || string(doc) != "<vCard/>" {
		t.Errorf("GetXML after reopen = %q, %v", doc, ok)
	}
	blocked, err := s.BlockList(ctx, "example.com", "alice")
	must("BlockList", err)
	if !slices.Equal(blocked, []string{"eve@example.com", "mallory@example.com"}) {
		t.Errorf("BlockList after reopen = %q", blocked)
	}
	gotAt, status, ok, err := s.LastActivity(ctx, "example.com", "alice")
	must("LastActivity", err)
	if !ok || !gotAt.Equal(at) || status != "bye" {
		t.Errorf("LastActivity after reopen = %v, %q, %v; want %v, bye, true", gotAt, status, ok, at)
	}
	exists, err := s.AccountExists(ctx, "example.com", "alice")
	must("AccountExists", err)
	if !exists {
		t.Error("AccountExists after reopen = false")
	}
}

// TestOfflineQuotaAcrossStores races two stores on one file, as two
// processes would be: the write lock, not a mutex in the Store, keeps the
// quota.
func TestOfflineQuotaAcrossStores(t *testing.T) {
	const (
		perStore = 6
		max      = 5
	)
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	stores := []*Store{openTest(t, path), openTest(t, path)}
	errs := make([]error, len(stores)*perStore)
	start := make(chan struct{})
	done := make(chan int)
	for i := range errs {
		go func() {
			<-start
			errs[i] = stores[i%len(stores)].StoreOffline(ctx, "example.com", "alice", fmt.Appendf(nil, "<m>%d</m>", i), time.Now(), storage.Quota{Count: max, Bytes: 1 << 20})
			done <- i
		}()
	}
	close(start)
	for range errs {
		<-done
	}
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, storage.ErrQuota):
			t.Errorf("StoreOffline %d: %v", i, err)
		}
	}
	if ok != max {
		t.Errorf("%d stores succeeded, want %d", ok, max)
	}
	if n, err := stores[1].CountOffline(ctx, "example.com", "alice"); err != nil || n != max {
		t.Errorf("CountOffline = %d, %v; want %d", n, err, max)
	}
}

// TestUpgradeFromAccountsOnly opens a database that has only the first
// migration, as left by an ottr before the IM tables: Open adds them and
// keeps the accounts.
func TestUpgradeFromAccountsOnly(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	db, ms := dbBefore(t, path, 2)
	if _, err := db.ExecContext(ctx, `INSERT INTO accounts (host, username, password_hash, created_at) VALUES ('example.com', 'alice', 'hash', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	if got := appliedMigrations(t, s); len(got) != len(ms) {
		t.Errorf("schema_migrations after upgrade = %v, want %d versions", got, len(ms))
	}
	if h, err := s.PasswordHash(ctx, "example.com", "alice"); err != nil || h != "hash" {
		t.Errorf("PasswordHash after upgrade = %q, %v", h, err)
	}
	if _, err := s.PutRosterItem(ctx, "example.com", "alice", storage.RosterItem{Contact: "bob@example.com"}, roomy); err != nil {
		t.Errorf("PutRosterItem after upgrade: %v", err)
	}
}

// TestIMRowsNeedNoAccount checks that a user without an account row (a
// token user before EnsureAccount) can be written to.
func TestIMRowsNeedNoAccount(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	if _, err := s.PutRosterItem(ctx, "example.com", "ghost", storage.RosterItem{Contact: "bob@example.com"}, roomy); err != nil {
		t.Errorf("PutRosterItem: %v", err)
	}
	if err := s.StoreOffline(ctx, "example.com", "ghost", []byte("<m/>"), time.Now(), storage.Quota{Count: 1, Bytes: 1 << 20}); err != nil {
		t.Errorf("StoreOffline: %v", err)
	}
	if err := s.PutXML(ctx, "example.com", "ghost", "vcard", []byte("<vCard/>"), roomy); err != nil {
		t.Errorf("PutXML: %v", err)
	}
	if err := s.Block(ctx, "example.com", "ghost", []string{"eve@example.com"}, 100); err != nil {
		t.Errorf("Block: %v", err)
	}
	if err := s.SetLastActivity(ctx, "example.com", "ghost", time.Now(), ""); err != nil {
		t.Errorf("SetLastActivity: %v", err)
	}
}

func TestArchive(t *testing.T) {
	storagetest.TestArchive(t, func(t *testing.T) storagetest.ArchiveStore { return newTestStore(t) })
}
