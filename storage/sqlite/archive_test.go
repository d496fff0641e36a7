package sqlite

import (
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// TestArchiveGoesWithAccount deletes an account: its archive, usage and
// preferences go, another user's stay, and an account made again under
// the same name starts with an empty archive whose quota counts from 0.
func TestArchiveGoesWithAccount(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	lim := storage.ArchiveLimits{Quota: storage.Quota{Count: 2, Bytes: 1 << 20}}
	for _, user := range []string{"alice", "bob"} {
		if err := s.CreateAccount(ctx, "example.com", user, ""); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			m := storage.ArchivedMessage{ID: id, With: "carol@example.com", Stanza: []byte("<m/>"), Stored: time.Now()}
			if err := s.AppendArchive(ctx, "example.com", user, m, lim); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetArchivePrefs(ctx, "example.com", user, storage.ArchivePrefs{Default: storage.ArchiveNever}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccount(ctx, "example.com", "alice"); err != nil {
		t.Fatal(err)
	}
	count := func(user string) int {
		t.Helper()
		page, err := s.QueryArchive(ctx, "example.com", user, storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return page.Count
	}
	if n := count("alice"); n != 0 {
		t.Errorf("alice's archive after deletion: %d messages", n)
	}
	if n := count("bob"); n != 2 {
		t.Errorf("bob's archive after alice's deletion: %d messages, want 2", n)
	}
	for user, want := range map[string]string{"alice": "", "bob": storage.ArchiveNever} {
		if p, err := s.ArchivePrefs(ctx, "example.com", user); err != nil || p.Default != want {
			t.Errorf("%s's prefs after alice's deletion: %+v, %v; want default %q", user, p, err, want)
		}
	}
	var usage int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM archive_usage WHERE username = 'alice'`).Scan(&usage); err != nil || usage != 0 {
		t.Errorf("alice's usage rows after deletion: %d, %v", usage, err)
	}
	// One new message: had the usage row stayed, the quota of 2 would
	// count 3 and trim it at once.
	m := storage.ArchivedMessage{ID: "c", With: "carol@example.com", Stanza: []byte("<m/>"), Stored: time.Now()}
	if err := s.AppendArchive(ctx, "example.com", "alice", m, lim); err != nil {
		t.Fatal(err)
	}
	if n := count("alice"); n != 1 {
		t.Errorf("a new alice's archive: %d messages, want 1", n)
	}
}
