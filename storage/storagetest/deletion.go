package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// DeletionStore is a store with everything it keeps for a user and the
// record of account deletions: the contract of DeleteAccount beyond the
// account row.
//
// DeleteAccount removes, in one transaction, the account and every row
// stored for it (roster, offline messages, XML documents, block list, last
// activity), downgrades every other user's entry for it (no subscription
// either way, nothing pending or pre-approved, name and groups kept; an
// entry not shown in the roster is removed) bumping their roster
// versions, and records the deletion with those users. The account's own
// roster version is not reset: it goes on increasing.
type DeletionStore interface {
	AccountStore
	RosterStore
	OfflineStore
	XMLStore
	BlockStore
	ActivityStore
	// LastAccountDeletion returns the Seq of the latest deletion
	// recorded, 0 when there is none.
	LastAccountDeletion(ctx context.Context) (int64, error)
	// AccountDeletions returns at most max deletions with a Seq above
	// after, by increasing Seq.
	AccountDeletions(ctx context.Context, after int64, max int) ([]storage.AccountDeletion, error)
	// DeletedContacts returns at most max of the users whose roster held
	// the account of deletion seq, by host then username in byte order,
	// after (afterHost, afterUser).
	DeletedContacts(ctx context.Context, seq int64, afterHost, afterUser string, max int) ([]storage.DeletedContact, error)
	// PurgeDeleted removes the rows stored for a user without an account
	// row and downgrades others' entries for it, as DeleteAccount does
	// but recording nothing, and reports whether it did; it leaves an
	// existing account and others' entries for it alone.
	PurgeDeleted(ctx context.Context, host, username string) (bool, error)
	// MarkDeletionDone records that deletion seq was acted on (the
	// account's sessions ended, what they wrote purged). Until then, and
	// for a bounded while only, CreateAccount and EnsureAccount refuse
	// the account with an error wrapping storage.ErrDeletionPending (a
	// *storage.DeletionPendingError carrying the deletion's time).
	MarkDeletionDone(ctx context.Context, seq int64) error
	// SettleDeletions purges, as PurgeDeleted does, the accounts of the
	// deletions up to Seq through that are not done and have no row, and
	// marks those deletions done, returning how many it marked.
	SettleDeletions(ctx context.Context, through int64) (int, error)
}

// deletionSettler is a store that records deletions.
type deletionSettler interface {
	LastAccountDeletion(ctx context.Context) (int64, error)
	SettleDeletions(ctx context.Context, through int64) (int, error)
}

// settleIfRecorded marks every deletion done if s records deletions, as a
// server does once it has acted on them, so that the accounts can be
// created again.
func settleIfRecorded(t *testing.T, ctx context.Context, s any) {
	t.Helper()
	ds, ok := s.(deletionSettler)
	if !ok {
		return
	}
	last, err := ds.LastAccountDeletion(ctx)
	if err != nil {
		t.Fatalf("LastAccountDeletion: %v", err)
	}
	if _, err := ds.SettleDeletions(ctx, last); err != nil {
		t.Fatalf("SettleDeletions(%d): %v", last, err)
	}
}

// wantPending checks that err is a pending-deletion refusal with the time
// of a deletion made after before.
func wantPending(t *testing.T, what string, err error, before time.Time) {
	t.Helper()
	wantErr(t, what, err, storage.ErrDeletionPending)
	var pe *storage.DeletionPendingError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v is not a *storage.DeletionPendingError", what, err)
	}
	if pe.Deleted.Before(before) || pe.Deleted.After(time.Now().Add(createdSlack)) {
		t.Errorf("%s: deletion time %v, want after %v and not in the future", what, pe.Deleted, before)
	}
}

// TestDeleteAccount runs the account deletion conformance suite; newStore
// is as for TestAccounts.
func TestDeleteAccount(t *testing.T, newStore func(t *testing.T) DeletionStore) {
	t.Helper()
	runSuite(t, newStore, deletionCases)
}

// fillUser stores one of everything for user@host: a roster entry for
// contact, an offline message, a vCard, a private XML document, a block
// list entry and a last activity.
func fillUser(t *testing.T, ctx context.Context, s DeletionStore, host, user, contact string, wantVer int64) {
	t.Helper()
	mustPutItem(t, ctx, s, host, user, storage.RosterItem{Contact: contact, Name: "C", To: true, From: true, InRoster: true}, wantVer)
	mustStoreOffline(t, ctx, s, host, user, []byte("<message>kept for "+user+"</message>"), msgTime(1), 10)
	mustPutXML(t, ctx, s, host, user, "vcard", []byte("<vCard xmlns='vcard-temp'><FN>"+user+"</FN></vCard>"))
	mustPutXML(t, ctx, s, host, user, "private:urn:example", []byte("<x xmlns='urn:example'/>"))
	mustBlock(t, ctx, s, host, user, []string{"mallory@example.net"})
	mustSetActivity(t, ctx, s, host, user, msgTime(2), "gone")
}

// wantEmptyUser checks that nothing is stored for user@host.
func wantEmptyUser(t *testing.T, ctx context.Context, s DeletionStore, host, user string) {
	t.Helper()
	if items, _ := mustRoster(t, ctx, s, host, user); len(items) != 0 {
		t.Errorf("Roster(%q, %q) after deletion:%s", host, user, formatItems(items))
	}
	wantCount(t, ctx, s, host, user, 0)
	wantNoXML(t, ctx, s, host, user, "vcard")
	wantNoXML(t, ctx, s, host, user, "private:urn:example")
	wantBlockList(t, ctx, s, host, user, nil)
	wantNoActivity(t, ctx, s, host, user)
}

// wantFullUser checks that fillUser's rows are all there.
func wantFullUser(t *testing.T, ctx context.Context, s DeletionStore, host, user, contact string) {
	t.Helper()
	wantRosterItem(t, ctx, s, host, user, storage.RosterItem{Contact: contact, Name: "C", To: true, From: true, InRoster: true})
	wantCount(t, ctx, s, host, user, 1)
	if doc := mustGetXML(t, ctx, s, host, user, "vcard"); doc == nil {
		t.Errorf("%s@%s lost their vCard", user, host)
	}
	wantBlockList(t, ctx, s, host, user, []string{"mallory@example.net"})
	wantActivity(t, ctx, s, host, user, msgTime(2), "gone")
}

func mustLastDeletion(t *testing.T, ctx context.Context, s DeletionStore) int64 {
	t.Helper()
	seq, err := s.LastAccountDeletion(ctx)
	if err != nil {
		t.Fatalf("LastAccountDeletion: %v", err)
	}
	return seq
}

func mustDeletions(t *testing.T, ctx context.Context, s DeletionStore, after int64, max int) []storage.AccountDeletion {
	t.Helper()
	ds, err := s.AccountDeletions(ctx, after, max)
	if err != nil {
		t.Fatalf("AccountDeletions(%d, %d): %v", after, max, err)
	}
	return ds
}

func mustDeletedContacts(t *testing.T, ctx context.Context, s DeletionStore, seq int64, afterHost, afterUser string, max int) []storage.DeletedContact {
	t.Helper()
	cs, err := s.DeletedContacts(ctx, seq, afterHost, afterUser, max)
	if err != nil {
		t.Fatalf("DeletedContacts(%d, %q, %q, %d): %v", seq, afterHost, afterUser, max, err)
	}
	return cs
}

var deletionCases = []suiteCase[DeletionStore]{
	{"removes everything the user owns", func(t *testing.T, ctx context.Context, s DeletionStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash")
		mustCreate(t, ctx, s, "example.com", "bob", "hash")
		mustCreate(t, ctx, s, "other.example", "alice", "hash")
		fillUser(t, ctx, s, "example.com", "alice", "bob@example.com", 1)
		fillUser(t, ctx, s, "example.com", "bob", "carol@example.com", 1)
		fillUser(t, ctx, s, "other.example", "alice", "bob@example.com", 1)
		mustDelete(t, ctx, s, "example.com", "alice")
		wantHashErr(t, ctx, s, "example.com", "alice", storage.ErrNotFound)
		wantEmptyUser(t, ctx, s, "example.com", "alice")
		// Others keep theirs: another user, the same name on another host.
		wantFullUser(t, ctx, s, "example.com", "bob", "carol@example.com")
		wantFullUser(t, ctx, s, "other.example", "alice", "bob@example.com")
		// A new account of the same name (once the deletion is done)
		// starts empty, its roster version past the old one's.
		settleIfRecorded(t, ctx, s)
		mustCreate(t, ctx, s, "example.com", "alice", "hash-2")
		wantEmptyUser(t, ctx, s, "example.com", "alice")
		if _, ver := mustRoster(t, ctx, s, "example.com", "alice"); ver <= 1 {
			t.Errorf("roster version of the new account %d, want above the old one's (1)", ver)
		}
	}},
	{"token-only account", func(t *testing.T, ctx context.Context, s DeletionStore) {
		mustEnsure(t, ctx, s, "example.com", "erin", true)
		fillUser(t, ctx, s, "example.com", "erin", "bob@example.com", 1)
		mustDelete(t, ctx, s, "example.com", "erin")
		wantEmptyUser(t, ctx, s, "example.com", "erin")
		settleIfRecorded(t, ctx, s)
		mustEnsure(t, ctx, s, "example.com", "erin", true)
	}},
	{"missing account changes nothing", func(t *testing.T, ctx context.Context, s DeletionStore) {
		mustCreate(t, ctx, s, "example.com", "bob", "hash")
		mustPutItem(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: "zed@example.com", To: true, InRoster: true}, 1)
		fillUser(t, ctx, s, "example.com", "zed", "bob@example.com", 1) // rows without an account row
		err := s.DeleteAccount(ctx, "example.com", "zed")
		wantErr(t, "DeleteAccount of a missing account", err, storage.ErrNotFound)
		wantRoster(t, ctx, s, "example.com", "bob", []storage.RosterItem{{Contact: "zed@example.com", To: true, InRoster: true}}, 1)
		wantFullUser(t, ctx, s, "example.com", "zed", "bob@example.com")
		if seq := mustLastDeletion(t, ctx, s); seq != 0 {
			t.Errorf("LastAccountDeletion = %d after a failed deletion, want 0", seq)
		}
	}},
	{"others' entries are unsubscribed", func(t *testing.T, ctx context.Context, s DeletionStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash")
		const alice = "alice@example.com"
		// bob: both ways, named and grouped; carol: a pending request
		// from alice only (not shown); dave: asked alice and pre-approved
		// her; erin on another host: from.
		mustPutItem(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: alice, Name: "Al", Groups: []string{"Friends"}, To: true, From: true, InRoster: true}, 1)
		mustPutItem(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: "carol@example.com", To: true, InRoster: true}, 2)
		mustPutItem(t, ctx, s, "example.com", "carol", storage.RosterItem{Contact: alice, PendingIn: true, PendingInStanza: []byte("<presence type='subscribe'/>")}, 1)
		mustPutItem(t, ctx, s, "example.com", "dave", storage.RosterItem{Contact: alice, PendingOut: true, Approved: true, InRoster: true}, 1)
		mustPutItem(t, ctx, s, "other.example", "erin", storage.RosterItem{Contact: alice, From: true, InRoster: true}, 1)
		before := time.Now().Add(-createdSlack)
		mustDelete(t, ctx, s, "example.com", "alice")

		wantRoster(t, ctx, s, "example.com", "bob", []storage.RosterItem{
			{Contact: alice, Name: "Al", Groups: []string{"Friends"}, InRoster: true},
			{Contact: "carol@example.com", To: true, InRoster: true},
		}, 3)
		wantRoster(t, ctx, s, "example.com", "carol", nil, 2)
		wantRoster(t, ctx, s, "example.com", "dave", []storage.RosterItem{{Contact: alice, InRoster: true}}, 2)
		wantRoster(t, ctx, s, "other.example", "erin", []storage.RosterItem{{Contact: alice, InRoster: true}}, 2)

		seq := mustLastDeletion(t, ctx, s)
		ds := mustDeletions(t, ctx, s, 0, 10)
		if len(ds) != 1 || ds[0].Seq != seq || ds[0].Host != "example.com" || ds[0].Username != "alice" ||
			ds[0].Deleted.Before(before) || ds[0].Deleted.After(time.Now().Add(createdSlack)) {
			t.Fatalf("AccountDeletions = %+v, want alice@example.com's (seq %d)", ds, seq)
		}
		want := []storage.DeletedContact{
			{Host: "example.com", Username: "bob", To: true, From: true, InRoster: true, Version: 3},
			{Host: "example.com", Username: "carol", PendingIn: true, Version: 2},
			{Host: "example.com", Username: "dave", PendingOut: true, InRoster: true, Version: 2},
			{Host: "other.example", Username: "erin", From: true, InRoster: true, Version: 2},
		}
		if got := mustDeletedContacts(t, ctx, s, seq, "", "", 10); !slices.Equal(got, want) {
			t.Errorf("DeletedContacts:\n got %+v\nwant %+v", got, want)
		}
		// Paged.
		var paged []storage.DeletedContact
		host, user := "", ""
		for {
			page := mustDeletedContacts(t, ctx, s, seq, host, user, 3)
			paged = append(paged, page...)
			if len(page) < 3 {
				break
			}
			host, user = page[len(page)-1].Host, page[len(page)-1].Username
		}
		if !slices.Equal(paged, want) {
			t.Errorf("DeletedContacts by pages of 3:\n got %+v\nwant %+v", paged, want)
		}
	}},
	{"deletions in order", func(t *testing.T, ctx context.Context, s DeletionStore) {
		if seq := mustLastDeletion(t, ctx, s); seq != 0 {
			t.Fatalf("LastAccountDeletion of an empty store = %d, want 0", seq)
		}
		for _, u := range []string{"a", "b", "c"} {
			mustCreate(t, ctx, s, "example.com", u, "hash")
			mustDelete(t, ctx, s, "example.com", u)
		}
		all := mustDeletions(t, ctx, s, 0, 10)
		if len(all) != 3 || all[0].Username != "a" || all[1].Username != "b" || all[2].Username != "c" ||
			!(all[0].Seq < all[1].Seq && all[1].Seq < all[2].Seq) {
			t.Fatalf("AccountDeletions = %+v, want a, b, c by increasing Seq", all)
		}
		if last := mustLastDeletion(t, ctx, s); last != all[2].Seq {
			t.Errorf("LastAccountDeletion = %d, want %d", last, all[2].Seq)
		}
		if got := mustDeletions(t, ctx, s, all[0].Seq, 1); len(got) != 1 || got[0].Seq != all[1].Seq {
			t.Errorf("AccountDeletions(after a, 1) = %+v, want b's", got)
		}
		if got := mustDeletions(t, ctx, s, all[2].Seq, 10); len(got) != 0 {
			t.Errorf("AccountDeletions(after the last) = %+v, want none", got)
		}
		// A name deleted, created and deleted again is recorded twice.
		settleIfRecorded(t, ctx, s)
		mustCreate(t, ctx, s, "example.com", "a", "hash")
		mustDelete(t, ctx, s, "example.com", "a")
		if got := mustDeletions(t, ctx, s, all[2].Seq, 10); len(got) != 1 || got[0].Username != "a" {
			t.Errorf("AccountDeletions after deleting a again = %+v", got)
		}
	}},
	{"creation waits for a pending deletion", func(t *testing.T, ctx context.Context, s DeletionStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash")
		mustCreate(t, ctx, s, "example.com", "bob", "hash")
		before := time.Now().Add(-createdSlack)
		mustDelete(t, ctx, s, "example.com", "alice")
		seq := mustLastDeletion(t, ctx, s)
		if ds := mustDeletions(t, ctx, s, 0, 10); len(ds) != 1 || ds[0].Done {
			t.Fatalf("AccountDeletions = %+v, want alice's, not done", ds)
		}
		wantPending(t, "CreateAccount while the deletion is pending", s.CreateAccount(ctx, "example.com", "alice", "hash-2"), before)
		created, err := s.EnsureAccount(ctx, "example.com", "alice")
		wantPending(t, "EnsureAccount while the deletion is pending", err, before)
		if created {
			t.Errorf("EnsureAccount refused reported created")
		}
		wantHashErr(t, ctx, s, "example.com", "alice", storage.ErrNotFound)
		// Other accounts are not held up: the same name on another host,
		// another name; an existing account is still reported as such.
		mustCreate(t, ctx, s, "other.example", "alice", "hash")
		mustEnsure(t, ctx, s, "example.com", "carol", true)
		wantErr(t, "CreateAccount of an existing account", s.CreateAccount(ctx, "example.com", "bob", "x"), storage.ErrExists)
		mustEnsure(t, ctx, s, "example.com", "bob", false)

		if err := s.MarkDeletionDone(ctx, seq); err != nil {
			t.Fatalf("MarkDeletionDone(%d): %v", seq, err)
		}
		if ds := mustDeletions(t, ctx, s, 0, 10); len(ds) != 1 || !ds[0].Done {
			t.Fatalf("AccountDeletions after MarkDeletionDone = %+v, want alice's, done", ds)
		}
		if err := s.MarkDeletionDone(ctx, seq); err != nil {
			t.Fatalf("MarkDeletionDone twice: %v", err)
		}
		mustCreate(t, ctx, s, "example.com", "alice", "hash-2")
		wantHash(t, ctx, s, "example.com", "alice", "hash-2")
	}},
	{"settle deletions", func(t *testing.T, ctx context.Context, s DeletionStore) {
		for _, u := range []string{"alice", "erin", "zed"} {
			mustCreate(t, ctx, s, "example.com", u, "hash")
		}
		before := time.Now().Add(-createdSlack)
		mustDelete(t, ctx, s, "example.com", "alice")
		mustDelete(t, ctx, s, "example.com", "erin")
		through := mustLastDeletion(t, ctx, s)
		mustDelete(t, ctx, s, "example.com", "zed")
		// alice's session wrote after the deletion.
		fillUser(t, ctx, s, "example.com", "alice", "bob@example.com", 1)
		n, err := s.SettleDeletions(ctx, through)
		if err != nil || n != 2 {
			t.Fatalf("SettleDeletions(%d) = %d, %v; want 2", through, n, err)
		}
		wantEmptyUser(t, ctx, s, "example.com", "alice")
		ds := mustDeletions(t, ctx, s, 0, 10)
		if len(ds) != 3 || !ds[0].Done || !ds[1].Done || ds[2].Done {
			t.Fatalf("AccountDeletions after settling through erin's = %+v, want alice's and erin's done only", ds)
		}
		mustCreate(t, ctx, s, "example.com", "alice", "hash-2")
		mustEnsure(t, ctx, s, "example.com", "erin", true)
		_, err = s.EnsureAccount(ctx, "example.com", "zed")
		wantPending(t, "EnsureAccount of zed, not settled", err, before)
		if n, err := s.SettleDeletions(ctx, through); err != nil || n != 0 {
			t.Errorf("SettleDeletions again = %d, %v; want 0", n, err)
		}
	}},
	{"purge after deletion", func(t *testing.T, ctx context.Context, s DeletionStore) {
		mustCreate(t, ctx, s, "example.com", "alice", "hash")
		mustDelete(t, ctx, s, "example.com", "alice")
		// A session ending after the deletion writes again.
		fillUser(t, ctx, s, "example.com", "alice", "bob@example.com", 1)
		// And subscribes to bob, who had her in his roster.
		mustPutItem(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: "alice@example.com", Name: "A", PendingIn: true, InRoster: true}, 1)
		mustPutItem(t, ctx, s, "example.com", "carol", storage.RosterItem{Contact: "alice@example.com", PendingIn: true}, 1)
		mustPutItem(t, ctx, s, "example.com", "dave", storage.RosterItem{Contact: "alice@example.com", Name: "A", InRoster: true}, 1)
		purged, err := s.PurgeDeleted(ctx, "example.com", "alice")
		if err != nil || !purged {
			t.Fatalf("PurgeDeleted = %v, %v; want true", purged, err)
		}
		wantEmptyUser(t, ctx, s, "example.com", "alice")
		wantRoster(t, ctx, s, "example.com", "bob", []storage.RosterItem{{Contact: "alice@example.com", Name: "A", InRoster: true}}, 2)
		wantRoster(t, ctx, s, "example.com", "carol", nil, 2)
		// An entry with nothing to downgrade keeps its version.
		wantRoster(t, ctx, s, "example.com", "dave", []storage.RosterItem{{Contact: "alice@example.com", Name: "A", InRoster: true}}, 1)
		// An account created again is left alone, and others' entries for
		// it too (once the deletion is done).
		if err := s.MarkDeletionDone(ctx, mustLastDeletion(t, ctx, s)); err != nil {
			t.Fatalf("MarkDeletionDone: %v", err)
		}
		mustCreate(t, ctx, s, "example.com", "alice", "hash")
		fillUser(t, ctx, s, "example.com", "alice", "bob@example.com", 3) // the purge bumped it to 2
		mustPutItem(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: "alice@example.com", To: true, InRoster: true}, 3)
		purged, err = s.PurgeDeleted(ctx, "example.com", "alice")
		if err != nil || purged {
			t.Fatalf("PurgeDeleted of an existing account = %v, %v; want false", purged, err)
		}
		wantFullUser(t, ctx, s, "example.com", "alice", "bob@example.com")
		wantRosterItem(t, ctx, s, "example.com", "bob", storage.RosterItem{Contact: "alice@example.com", To: true, InRoster: true})
	}},
}
