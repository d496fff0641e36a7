package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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

// TestArchiveBatchIsOneByOne appends the same entries to two stores, as
// one batch and one by one: for small quotas of messages and bytes,
// duplicate IDs (one of a message the quota already pushed out), and
// messages over the quota, every entry gets the same error and the
// archives and their usage end the same.
func TestArchiveBatchIsOneByOne(t *testing.T) {
	ctx := t.Context()
	var entries, unique []storage.ArchiveEntry
	for i := range 80 {
		user := []string{"alice", "bob", "carol"}[i%3]
		id := fmt.Sprintf("m%d", i)
		switch i {
		case 20:
			id = "m2" // alice's, trimmed by now: accepted again
		case 33:
			id = "m30" // in the archive: refused
		}
		stanza := strings.Repeat("x", 10+i%7*10)
		if i == 25 {
			stanza = strings.Repeat("x", 1000) // over the bytes quota
		}
		e := storage.ArchiveEntry{Host: "example.com", User: user, Message: storage.ArchivedMessage{
			ID: id, With: "dave@example.net/r", Stanza: []byte(stanza), Stored: time.Unix(int64(i), 0)}}
		entries = append(entries, e)
		e.Message.ID = fmt.Sprintf("u%d", i)
		unique = append(unique, e)
	}
	for _, tc := range []struct {
		q       storage.Quota
		entries []storage.ArchiveEntry
	}{
		{storage.Quota{Count: 4, Bytes: 1 << 20}, entries}, {storage.Quota{Count: 100, Bytes: 150}, entries}, {storage.Quota{Count: 3, Bytes: 100}, entries},
		// Whole INSERTs of many rows, none failing.
		{storage.Quota{Count: 20, Bytes: 1 << 20}, unique}, {storage.Quota{Count: 100, Bytes: 500}, unique},
	} {
		q, entries := tc.q, tc.entries
		t.Run(fmt.Sprintf("%d messages %d bytes %s", q.Count, q.Bytes, entries[0].Message.ID), func(t *testing.T) {
			lim := storage.ArchiveLimits{Quota: q}
			batch, single := newTestStore(t), newTestStore(t)
			errs, err := batch.AppendArchives(ctx, entries, lim)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range entries {
				want := single.AppendArchive(ctx, e.Host, e.User, e.Message, lim)
				if (errs[i] == nil) != (want == nil) || want != nil && (errors.Is(errs[i], storage.ErrQuota) != errors.Is(want, storage.ErrQuota) || errors.Is(errs[i], storage.ErrExists) != errors.Is(want, storage.ErrExists)) {
					t.Errorf("entry %d: batch %v, one by one %v", i, errs[i], want)
				}
			}
			for _, user := range []string{"alice", "bob", "carol"} {
				got, want := archiveState(t, batch, user), archiveState(t, single, user)
				if got != want {
					t.Errorf("%s's archive: batch %s, one by one %s", user, got, want)
				}
				if !strings.Contains(got, " ") || strings.HasSuffix(got, "0 0") {
					t.Errorf("%s's archive is empty: %s", user, got)
				}
			}
		})
	}
}

// archiveState is a user's archive's IDs in order and its usage row.
func archiveState(t *testing.T, s *Store, user string) string {
	t.Helper()
	page, err := s.QueryArchive(t.Context(), "example.com", user, storage.ArchiveQuery{Max: 1000, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var size int
	for _, m := range page.Messages {
		ids = append(ids, m.ID)
		size += len(m.Stanza)
	}
	var n, bytes int
	if err := s.db.QueryRowContext(t.Context(), `SELECT messages, bytes FROM archive_usage WHERE host = 'example.com' AND username = ?`, user).Scan(&n, &bytes); err != nil {
		t.Fatal(err)
	}
	if n != len(ids) || bytes != size {
		t.Errorf("%s's usage row says %d messages, %d bytes; the archive holds %d, %d", user, n, bytes, len(ids), size)
	}
	return fmt.Sprintf("%v %d %d", ids, n, bytes)
}

// TestArchiveExpiryBySeq: expiry goes by seq, with no index on stored,
// and still deletes only messages stored before the cut-off, also when
// stored does not grow with seq; one stored later than those after it
// holds them back only until it expires itself.
func TestArchiveExpiryBySeq(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t)
	roomy := storage.ArchiveLimits{Quota: storage.Quota{Count: 1000, Bytes: 1 << 20}}
	for i, at := range []int64{5, 1, 2, 100, 3, 200} {
		m := storage.ArchivedMessage{ID: fmt.Sprint(i), With: "bob@example.com", Stanza: []byte("<m/>"), Stored: time.Unix(at, 0)}
		if err := s.AppendArchive(ctx, "example.com", "alice", m, roomy); err != nil {
			t.Fatal(err)
		}
	}
	add := func(id string, expire int64) {
		t.Helper()
		lim := roomy
		lim.Expire = time.Unix(expire, 0)
		m := storage.ArchivedMessage{ID: id, With: "alice@example.com", Stanza: []byte("<m/>"), Stored: time.Unix(1000, 0)}
		if err := s.AppendArchive(ctx, "example.com", "bob", m, lim); err != nil {
			t.Fatal(err)
		}
	}
	add("a", 10)
	if got := archiveState(t, s, "alice"); got != "[3 5] 2 8" {
		t.Errorf("alice's archive after expiry at 10: %s, want [3 5]", got)
	}
	add("b", 150)
	if got := archiveState(t, s, "alice"); got != "[5] 1 4" {
		t.Errorf("alice's archive after expiry at 150: %s, want [5]", got)
	}
	if got := archiveState(t, s, "bob"); got != "[a b] 2 8" {
		t.Errorf("bob's archive: %s, want [a b]", got)
	}
}

// TestArchiveLeanMigration fills the archive of the schema before 0011,
// then migrates: every message is there in its order, with its fields,
// the next one comes after them, and the table lost its AUTOINCREMENT and
// its index on stored.
func TestArchiveLeanMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	db, _ := dbBefore(t, path, 11)
	// seqs with gaps, and a user whose archive interleaves another's.
	for _, r := range []struct {
		seq        int
		user, id   string
		storedUnix int64
	}{{3, "alice", "a1", 10}, {7, "bob", "b1", 11}, {9, "alice", "a2", 12}, {12, "alice", "a3", 13}} {
		if _, err := db.ExecContext(ctx,
			`INSERT INTO archive (seq, host, username, id, with_jid, with_bare, stored, stanza) VALUES (?, 'example.com', ?, ?, 'carol@example.com/r', 'carol@example.com', ?, ?)`,
			r.seq, r.user, r.id, time.Unix(r.storedUnix, 0).UnixNano(), []byte("<m id='"+r.id+"'/>")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO archive_usage VALUES ('example.com', 'alice', 3, 36), ('example.com', 'bob', 1, 12)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openTest(t, path)
	lim := storage.ArchiveLimits{Quota: storage.Quota{Count: 3, Bytes: 1 << 20}}
	m := storage.ArchivedMessage{ID: "a4", With: "carol@example.com", Stanza: []byte("<m id='a4'/>"), Stored: time.Unix(5, 0)}
	if err := s.AppendArchive(ctx, "example.com", "alice", m, lim); err != nil {
		t.Fatal(err)
	}
	if got := archiveState(t, s, "alice"); got != "[a2 a3 a4] 3 36" {
		t.Errorf("alice's archive after the migration and one more: %s, want [a2 a3 a4] 3 36", got)
	}
	page, err := s.QueryArchive(ctx, "example.com", "bob", storage.ArchiveQuery{With: "carol@example.com", Max: 10, MaxBytes: 1 << 20})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].With != "carol@example.com/r" ||
		string(page.Messages[0].Stanza) != "<m id='b1'/>" || !page.Messages[0].Stored.Equal(time.Unix(11, 0)) {
		t.Errorf("bob's archive after the migration: %+v, %v", page, err)
	}
	var schema string
	if err := s.db.QueryRowContext(ctx, `SELECT group_concat(sql, ';') FROM sqlite_schema WHERE tbl_name = 'archive'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(schema, "AUTOINCREMENT") || strings.Contains(schema, "archive_stored") || !strings.Contains(schema, "archive_with") {
		t.Errorf("the archive's schema after the migration: %s", schema)
	}
	var seqs int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_sequence WHERE name = 'archive'`).Scan(&seqs); err != nil || seqs != 0 {
		t.Errorf("sqlite_sequence rows of the archive after the migration: %d, %v", seqs, err)
	}
}

// dbBefore creates a database at path with the embedded migrations below
// version applied, and returns it and all the embedded migrations.
func dbBefore(t *testing.T, path string, version int64) (*sql.DB, []migration) {
	t.Helper()
	if err := createFile(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(driverName, dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(migrationFiles, migrationDir)
	if err != nil {
		t.Fatal(err)
	}
	before := slices.DeleteFunc(slices.Clone(ms), func(m migration) bool { return m.version >= version })
	if _, err := migrate(t.Context(), db, before, time.Now); err != nil {
		t.Fatal(err)
	}
	return db, ms
}
