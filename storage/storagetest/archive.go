package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"ottr.im/ottr/storage"
)

// ArchiveStore is the message archive storage (XEP-0313) the suite
// exercises.
type ArchiveStore interface {
	// AppendArchive adds msg to the end of the user's archive, then
	// deletes the user's oldest messages until the archive is within
	// lim.Quota, and a few messages of any user stored before
	// lim.Expire. A message larger than lim.Quota.Bytes alone is refused
	// with an error wrapping storage.ErrQuota, an ID already in the
	// archive with one wrapping storage.ErrExists.
	AppendArchive(ctx context.Context, host, user string, msg storage.ArchivedMessage, lim storage.ArchiveLimits) error
	// AppendArchives appends entries in order, each as AppendArchive
	// does, all in one transaction; the error of each entry refused
	// (ErrQuota, ErrExists) is at its index, and any other failure
	// stores none of them.
	AppendArchives(ctx context.Context, entries []storage.ArchiveEntry, lim storage.ArchiveLimits) ([]error, error)
	// QueryArchive returns one page of the user's archive (see
	// storage.ArchiveQuery); an unknown ID fails with an error wrapping
	// storage.ErrNotFound.
	QueryArchive(ctx context.Context, host, user string, q storage.ArchiveQuery) (storage.ArchivePage, error)
	// ArchivePrefs returns the user's archiving preferences, the zero
	// value when none were set.
	ArchivePrefs(ctx context.Context, host, user string) (storage.ArchivePrefs, error)
	// SetArchivePrefs replaces them.
	SetArchivePrefs(ctx context.Context, host, user string, p storage.ArchivePrefs) error
}

// TestArchive runs the message archive conformance suite; newStore is
// called as by [TestAccounts].
func TestArchive(t *testing.T, newStore func(t *testing.T) ArchiveStore) {
	t.Helper()
	runSuite(t, newStore, archiveCases)
}

// archiveRoomy never trims an archive, never expires anything.
var archiveRoomy = storage.ArchiveLimits{Quota: roomy}

// archived returns the n-th message of a test archive: with bob, carol's
// phone and bob's laptop in turn, one second apart.
func archived(n int) storage.ArchivedMessage {
	with := []string{"bob@example.com", "carol@example.com/phone", "bob@example.com/laptop"}[n%3]
	return storage.ArchivedMessage{
		ID:     fmt.Sprintf("id-%03d", n),
		With:   with,
		Stanza: fmt.Appendf(nil, `<message xmlns="jabber:client" from="%s" type="chat"><body>%d ü</body></message>`, with, n),
		Stored: msgTime(n),
	}
}

// fillArchive appends archived(0) to archived(n-1) to alice's archive.
func fillArchive(t *testing.T, ctx context.Context, s ArchiveStore, n int) []storage.ArchivedMessage {
	t.Helper()
	var all []storage.ArchivedMessage
	for i := range n {
		m := archived(i)
		if err := s.AppendArchive(ctx, "example.com", "alice", m, archiveRoomy); err != nil {
			t.Fatalf("AppendArchive %d: %v", i, err)
		}
		all = append(all, m)
	}
	return all
}

// wantArchivePage runs q on alice's archive and checks the messages (by ID),
// Complete and Count.
func wantArchivePage(t *testing.T, ctx context.Context, s ArchiveStore, q storage.ArchiveQuery, ids []string, complete bool, count int) {
	t.Helper()
	page, err := s.QueryArchive(ctx, "example.com", "alice", q)
	if err != nil {
		t.Fatalf("QueryArchive(%+v): %v", q, err)
	}
	var got []string
	for _, m := range page.Messages {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, ids) || page.Complete != complete || page.Count != count {
		t.Errorf("QueryArchive(%+v) = %q complete %v count %d; want %q complete %v count %d",
			q, got, page.Complete, page.Count, ids, complete, count)
	}
}

// archiveIDs returns the IDs of archived(from) to archived(to-1).
func archiveIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, archived(i).ID)
	}
	return out
}

var archiveCases = []suiteCase[ArchiveStore]{
	{"empty", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, nil, true, 0)
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20, Last: true}, nil, true, 0)
		_, err := s.QueryArchive(ctx, "example.com", "alice", storage.ArchiveQuery{After: "nope", Max: 10, MaxBytes: 1 << 20})
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryArchive after an unknown id: %v, want ErrNotFound", err)
		}
	}},
	{"append and read every field", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		all := fillArchive(t, ctx, s, 3)
		// A message stored earlier than the others still comes last: the
		// archive keeps the order of the appends.
		late := storage.ArchivedMessage{ID: "late", With: "dave@example.net", Stanza: []byte(`<message><body>&lt;&amp;&gt; 😀</body></message>`), Stored: msgTime(-5)}
		if err := s.AppendArchive(ctx, "example.com", "alice", late, archiveRoomy); err != nil {
			t.Fatal(err)
		}
		all = append(all, late)
		page, err := s.QueryArchive(ctx, "example.com", "alice", storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) != len(all) || !page.Complete || page.Count != len(all) {
			t.Fatalf("QueryArchive = %+v, want %d messages, complete", page, len(all))
		}
		for i, m := range page.Messages {
			w := all[i]
			if m.ID != w.ID || m.With != w.With || !bytes.Equal(m.Stanza, w.Stanza) || !m.Stored.Equal(w.Stored) {
				t.Errorf("message %d = %+v, want %+v", i, m, w)
			}
		}
	}},
	{"ids are unique within an archive only", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		fillArchive(t, ctx, s, 1)
		err := s.AppendArchive(ctx, "example.com", "alice", archived(0), archiveRoomy)
		if !errors.Is(err, storage.ErrExists) {
			t.Errorf("AppendArchive of a known id: %v, want ErrExists", err)
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(0, 1), true, 1)
		if err := s.AppendArchive(ctx, "example.com", "bob", archived(0), archiveRoomy); err != nil {
			t.Errorf("AppendArchive of alice's id to bob's archive: %v", err)
		}
		if err := s.AppendArchive(ctx, "example.net", "alice", archived(0), archiveRoomy); err != nil {
			t.Errorf("AppendArchive of alice's id to another host's alice: %v", err)
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(0, 1), true, 1)
	}},
	{"batch", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		big := archived(3)
		big.Stanza = bytes.Repeat([]byte("x"), 2000)
		lim := storage.ArchiveLimits{Quota: storage.Quota{Count: 10, Bytes: 1000}}
		errs, err := s.AppendArchives(ctx, []storage.ArchiveEntry{
			{Host: "example.com", User: "alice", Message: archived(0)},
			{Host: "example.com", User: "bob", Message: archived(0)},
			{Host: "example.com", User: "alice", Message: archived(1)},
			{Host: "example.com", User: "alice", Message: archived(0)}, // the same id again
			{Host: "example.com", User: "alice", Message: big},
			{Host: "example.com", User: "alice", Message: archived(2)},
		}, lim)
		if err != nil {
			t.Fatal(err)
		}
		if len(errs) != 6 || errs[0] != nil || errs[1] != nil || errs[2] != nil ||
			!errors.Is(errs[3], storage.ErrExists) || !errors.Is(errs[4], storage.ErrQuota) || errs[5] != nil {
			t.Errorf("AppendArchives errors %v, want nil, nil, nil, ErrExists, ErrQuota, nil", errs)
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(0, 3), true, 3)
		page, err := s.QueryArchive(ctx, "example.com", "bob", storage.ArchiveQuery{})
		if err != nil || page.Count != 1 {
			t.Errorf("bob's archive: %d messages, %v; want 1", page.Count, err)
		}
	}},
	{"paging forward and back", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		fillArchive(t, ctx, s, 10)
		all := storage.ArchiveQuery{Max: 4, MaxBytes: 1 << 20}
		wantArchivePage(t, ctx, s, all, archiveIDs(0, 4), false, 10)
		next := all
		next.After = archived(3).ID
		wantArchivePage(t, ctx, s, next, archiveIDs(4, 8), false, 10)
		next.After = archived(7).ID
		wantArchivePage(t, ctx, s, next, archiveIDs(8, 10), true, 10)
		next.After = archived(9).ID
		wantArchivePage(t, ctx, s, next, nil, true, 10)
		// Backwards from the end (RSM <before/>), then before the first
		// of each page.
		back := all
		back.Last = true
		wantArchivePage(t, ctx, s, back, archiveIDs(6, 10), false, 10)
		back.Before = archived(6).ID
		wantArchivePage(t, ctx, s, back, archiveIDs(2, 6), false, 10)
		back.Before = archived(2).ID
		wantArchivePage(t, ctx, s, back, archiveIDs(0, 2), true, 10)
		back.Before = archived(0).ID
		wantArchivePage(t, ctx, s, back, nil, true, 10)
		// A page exactly at the end is complete.
		exact := all
		exact.After = archived(5).ID
		wantArchivePage(t, ctx, s, exact, archiveIDs(6, 10), true, 10)
		// Max 0 counts.
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{}, nil, false, 10)
		// Another user's id is unknown here.
		if err := s.AppendArchive(ctx, "example.com", "bob", storage.ArchivedMessage{ID: "bobs", With: "alice@example.com", Stanza: []byte("<m/>"), Stored: msgTime(0)}, archiveRoomy); err != nil {
			t.Fatal(err)
		}
		for _, q := range []storage.ArchiveQuery{{After: "bobs", Max: 1}, {Before: "bobs", Max: 1}, {AfterID: "bobs"}, {BeforeID: "bobs"}, {IDs: []string{"bobs"}}} {
			if _, err := s.QueryArchive(ctx, "example.com", "alice", q); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("QueryArchive(%+v) with bob's id: %v, want ErrNotFound", q, err)
			}
		}
	}},
	{"filters", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		fillArchive(t, ctx, s, 9)
		page := func(q storage.ArchiveQuery) storage.ArchiveQuery {
			q.Max, q.MaxBytes = 100, 1<<20
			return q
		}
		pick := func(ns ...int) []string {
			var out []string
			for _, n := range ns {
				out = append(out, archived(n).ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			q    storage.ArchiveQuery
			want []string
		}{
			{"bare with matches every resource", page(storage.ArchiveQuery{With: "bob@example.com"}), pick(0, 2, 3, 5, 6, 8)},
			{"full with matches that resource", page(storage.ArchiveQuery{With: "bob@example.com/laptop"}), pick(2, 5, 8)},
			{"full with for a bare message", page(storage.ArchiveQuery{With: "carol@example.com/phone"}), pick(1, 4, 7)},
			{"other resource", page(storage.ArchiveQuery{With: "carol@example.com/tablet"}), nil},
			{"start and end are inclusive", page(storage.ArchiveQuery{Start: msgTime(2), End: msgTime(4)}), pick(2, 3, 4)},
			{"after-id and before-id", page(storage.ArchiveQuery{AfterID: archived(1).ID, BeforeID: archived(5).ID}), pick(2, 3, 4)},
			{"ids", page(storage.ArchiveQuery{IDs: pick(7, 1, 4)}), pick(1, 4, 7)},
			{"filters together", page(storage.ArchiveQuery{With: "bob@example.com", Start: msgTime(1), AfterID: archived(2).ID, IDs: pick(2, 3, 4, 5)}), pick(3, 5)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantArchivePage(t, ctx, s, tc.q, tc.want, true, len(tc.want))
			})
		}
		// Paging within a filtered set: the count is the set's.
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{With: "bob@example.com", Max: 2, MaxBytes: 1 << 20, After: archived(2).ID}, pick(3, 5), false, 6)
		_, err := s.QueryArchive(ctx, "example.com", "alice", page(storage.ArchiveQuery{IDs: []string{archived(1).ID, "nope"}}))
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryArchive with an unknown id among ids: %v, want ErrNotFound", err)
		}
	}},
	{"max bytes", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		all := fillArchive(t, ctx, s, 5)
		size := int64(len(all[0].Stanza))
		// Two messages fit, not three.
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 3*size - 1}, archiveIDs(0, 2), false, 5)
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 3*size - 1, Last: true}, archiveIDs(3, 5), false, 5)
		// One message always comes, however large.
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1}, archiveIDs(0, 1), false, 5)
	}},
	{"quota drops the oldest", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		q := storage.ArchiveLimits{Quota: counted(3)}
		for i := range 5 {
			if err := s.AppendArchive(ctx, "example.com", "alice", archived(i), q); err != nil {
				t.Fatalf("AppendArchive %d: %v", i, err)
			}
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(2, 5), true, 3)
		// The ids of messages gone are unknown.
		if _, err := s.QueryArchive(ctx, "example.com", "alice", storage.ArchiveQuery{After: archived(0).ID, Max: 1}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryArchive after a trimmed id: %v, want ErrNotFound", err)
		}
		// Bytes: room for two messages of this size.
		size := int64(len(archived(5).Stanza))
		q = storage.ArchiveLimits{Quota: storage.Quota{Count: 100, Bytes: 2*size + 1}}
		for i := 5; i < 8; i++ {
			if err := s.AppendArchive(ctx, "example.com", "alice", archived(i), q); err != nil {
				t.Fatalf("AppendArchive %d: %v", i, err)
			}
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(6, 8), true, 2)
		// A message larger than the whole quota is refused and deletes
		// nothing.
		big := storage.ArchivedMessage{ID: "big", With: "bob@example.com", Stanza: bytes.Repeat([]byte("x"), int(2*size+2)), Stored: msgTime(9)}
		if err := s.AppendArchive(ctx, "example.com", "alice", big, q); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("AppendArchive of a message over the quota: %v, want ErrQuota", err)
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(6, 8), true, 2)
		// Other users keep theirs.
		if err := s.AppendArchive(ctx, "example.com", "bob", archived(0), storage.ArchiveLimits{Quota: counted(1)}); err != nil {
			t.Fatal(err)
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(6, 8), true, 2)
	}},
	{"expiry", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		fillArchive(t, ctx, s, 5)
		// Hidden from queries at once.
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20, Expire: msgTime(2)}, archiveIDs(2, 5), true, 3)
		if _, err := s.QueryArchive(ctx, "example.com", "alice", storage.ArchiveQuery{After: archived(1).ID, Max: 1, Expire: msgTime(2)}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryArchive after an expired id: %v, want ErrNotFound", err)
		}
		// Deleted by a write to any archive; the quota counts what is
		// left.
		lim := storage.ArchiveLimits{Quota: counted(4), Expire: msgTime(2)}
		m := storage.ArchivedMessage{ID: "b1", With: "alice@example.com", Stanza: []byte("<m/>"), Stored: msgTime(10)}
		if err := s.AppendArchive(ctx, "example.com", "bob", m, lim); err != nil {
			t.Fatal(err)
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(2, 5), true, 3)
		for i := 5; i < 7; i++ {
			if err := s.AppendArchive(ctx, "example.com", "alice", archived(i), lim); err != nil {
				t.Fatal(err)
			}
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 10, MaxBytes: 1 << 20}, archiveIDs(3, 7), true, 4)
	}},
	{"many expired messages go a few at a time", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		fillArchive(t, ctx, s, 100)
		lim := storage.ArchiveLimits{Quota: roomy, Expire: msgTime(1000)}
		m := storage.ArchivedMessage{ID: "new", With: "bob@example.com", Stanza: []byte("<m/>"), Stored: msgTime(1001)}
		if err := s.AppendArchive(ctx, "example.com", "alice", m, lim); err != nil {
			t.Fatal(err)
		}
		page, err := s.QueryArchive(ctx, "example.com", "alice", storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		// Some went, not all, and the new one stays.
		if page.Count < 2 || page.Count > 100 {
			t.Errorf("after one write expiring 100 messages, %d are left, want some gone, not all", page.Count)
		}
		for range 100 {
			m.ID += "x"
			if err := s.AppendArchive(ctx, "example.com", "alice", m, lim); err != nil {
				t.Fatal(err)
			}
		}
		wantArchivePage(t, ctx, s, storage.ArchiveQuery{Max: 1, MaxBytes: 1 << 20}, []string{"new"}, false, 101)
	}},
	{"prefs", func(t *testing.T, ctx context.Context, s ArchiveStore) {
		if p, err := s.ArchivePrefs(ctx, "example.com", "alice"); err != nil || p.Default != "" || p.Always != nil || p.Never != nil {
			t.Errorf("ArchivePrefs of a new user = %+v, %v; want the zero value", p, err)
		}
		for _, p := range []storage.ArchivePrefs{
			{Default: storage.ArchiveRoster, Always: []string{"bob@example.com", "carol@example.com"}, Never: []string{"eve@example.com"}},
			{Default: storage.ArchiveNever},
			{Default: storage.ArchiveAlways, Never: []string{"ü@example.com"}},
		} {
			if err := s.SetArchivePrefs(ctx, "example.com", "alice", p); err != nil {
				t.Fatal(err)
			}
			got, err := s.ArchivePrefs(ctx, "example.com", "alice")
			if err != nil || got.Default != p.Default || !slices.Equal(got.Always, p.Always) || !slices.Equal(got.Never, p.Never) {
				t.Errorf("ArchivePrefs after setting %+v = %+v, %v", p, got, err)
			}
		}
		if p, err := s.ArchivePrefs(ctx, "example.com", "bob"); err != nil || p.Default != "" {
			t.Errorf("ArchivePrefs of another user = %+v, %v; want the zero value", p, err)
		}
	}},
}
