package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/storagetest"
)

func TestDeleteAccount(t *testing.T) {
	storagetest.TestDeleteAccount(t, func(t *testing.T) storagetest.DeletionStore { return newTestStore(t) })
}

// TestDeletionsPruned: a deletion forgets the records older than a day
// (their contacts too); the sequence goes on from where it was.
func TestDeletionsPruned(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }
	for _, u := range []string{"old", "bob"} {
		if err := s.CreateAccount(ctx, "example.com", u, "hash"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutRosterItem(ctx, "example.com", "bob", storage.RosterItem{Contact: "old@example.com", To: true, InRoster: true}, roomy); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "example.com", "old"); err != nil {
		t.Fatal(err)
	}
	first, err := s.LastAccountDeletion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(deletionKept + time.Second)
	if err := s.DeleteAccount(ctx, "example.com", "bob"); err != nil {
		t.Fatal(err)
	}
	ds, err := s.AccountDeletions(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Username != "bob" || ds[0].Seq <= first {
		t.Fatalf("deletions after pruning: %+v, want bob's only, after %d", ds, first)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM account_deletion_contacts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d contact rows of pruned deletions left", n)
	}
	// A store opened on a pruned file still starts after the last one.
	s2 := openTest(t, filepath.Join(filepath.Dir(dbPath(t, s)), "ottr.db"))
	if last, err := s2.LastAccountDeletion(ctx); err != nil || last != ds[0].Seq {
		t.Errorf("LastAccountDeletion = %d, %v; want %d", last, err, ds[0].Seq)
	}
}

// dbPath returns the file s has open.
func dbPath(t *testing.T, s *Store) string {
	t.Helper()
	var seq int
	var name, file string
	if err := s.db.QueryRowContext(t.Context(), `PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestDeletionPendingBound: a deletion no server marks done (none runs,
// or it is stuck) refuses the account's creation for deletionPending
// only (security review #9).
func TestDeletionPendingBound(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }
	if err := s.CreateAccount(ctx, "example.com", "alice", "hash"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "example.com", "alice"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(deletionPending - time.Second)
	err := s.CreateAccount(ctx, "example.com", "alice", "hash")
	var pe *storage.DeletionPendingError
	if !errors.As(err, &pe) || !pe.Deleted.Equal(now.Add(-deletionPending+time.Second)) {
		t.Fatalf("CreateAccount %v before the bound: %v, want a DeletionPendingError with the deletion's time", deletionPending-time.Second, err)
	}
	now = now.Add(2 * time.Second)
	if _, err := s.EnsureAccount(ctx, "example.com", "alice"); err != nil {
		t.Fatalf("EnsureAccount past the bound: %v", err)
	}
}
