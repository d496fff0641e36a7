package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/storagetest"
)

// openTest opens a store at path and closes it when the test ends.
func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestAccounts(t *testing.T) {
	storagetest.TestAccounts(t, func(t *testing.T) storagetest.AccountStore {
		return openTest(t, filepath.Join(t.TempDir(), "ottr.db"))
	})
}

// TestPragmas checks that every connection of the pool, not just the first,
// carries the pragmas the DSN sets.
func TestPragmas(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "ottr.db"))
	ctx := t.Context()
	const conns = 4
	want := map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL
		"busy_timeout": "5000",
		"foreign_keys": "1",
	}
	// Hold all the connections at once so the pool has to open distinct ones.
	for i := range conns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		defer c.Close()
		for pragma, v := range want {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, pragma, err)
			}
			if got != v {
				t.Errorf("conn %d: PRAGMA %s = %s, want %s", i, pragma, got, v)
			}
		}
	}
	if got := s.db.Stats().OpenConnections; got < conns {
		t.Errorf("pool opened %d connections, want at least %d", got, conns)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "ottr")
	path := filepath.Join(dir, "ottr.db")
	s := openTest(t, path)
	if err := s.CreateAccount(t.Context(), "example.com", "alice", "hash"); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	// The umask may take bits away, never add them.
	for _, c := range []struct {
		path string
		dir  bool
		perm fs.FileMode
	}{
		{dir, true, 0o700},
		{path, false, 0o600},
		{path + "-wal", false, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if fi.IsDir() != c.dir || fi.Mode().Perm()&^c.perm != 0 {
			t.Errorf("%s: mode %v, want at most %v", c.path, fi.Mode(), c.perm)
		}
	}
}

// TestOpenOddPath checks that a path with characters special in URIs opens
// that very file.
func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "we?ird #dir %41")
	path := filepath.Join(dir, "o&ttr?.db")
	s := openTest(t, path)
	if err := s.CreateAccount(t.Context(), "example.com", "alice", "hash"); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "o&ttr?.db") || !slices.Contains(names, "o&ttr?.db-wal") {
		t.Errorf("files in %q: %q, want the database and its WAL", dir, names)
	}
}

func TestOpenEmptyPath(t *testing.T) {
	if s, err := Open(t.Context(), ""); err == nil {
		s.Close()
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestCreatedUsesClock(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "ottr.db"))
	at := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	s.now = func() time.Time { return at }
	if err := s.CreateAccount(t.Context(), "example.com", "alice", "hash"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureAccount(t.Context(), "example.com", "bob"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAccounts(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Account{
		{Host: "example.com", Username: "alice", HasPassword: true, Created: at.Truncate(time.Second)},
		{Host: "example.com", Username: "bob", Created: at.Truncate(time.Second)},
	}
	if !slices.EqualFunc(got, want, func(a, b Account) bool {
		return a.Host == b.Host && a.Username == b.Username && a.HasPassword == b.HasPassword && a.Created.Equal(b.Created)
	}) {
		t.Errorf("ListAccounts:\n got %+v\nwant %+v", got, want)
	}
}

// TestTwoStores opens the same file twice, as the CLI and a running server
// do, and checks that each sees the other's writes and that both can write
// at full tilt without SQLITE_BUSY.
func TestTwoStores(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	a := openTest(t, path)
	b := openTest(t, path)

	if err := a.CreateAccount(ctx, "example.com", "alice", "hash-a"); err != nil {
		t.Fatal(err)
	}
	if h, err := b.PasswordHash(ctx, "example.com", "alice"); err != nil || h != "hash-a" {
		t.Fatalf("b.PasswordHash = %q, %v; want hash-a", h, err)
	}
	if err := b.SetPassword(ctx, "example.com", "alice", "hash-b"); err != nil {
		t.Fatal(err)
	}
	if h, err := a.PasswordHash(ctx, "example.com", "alice"); err != nil || h != "hash-b" {
		t.Fatalf("a.PasswordHash = %q, %v; want hash-b", h, err)
	}
	if err := b.DeleteAccount(ctx, "example.com", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PasswordHash(ctx, "example.com", "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a.PasswordHash after b deleted: %v, want ErrNotFound", err)
	}

	const (
		workers = 4
		writes  = 50
	)
	stores := []*Store{a, b}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := make(chan struct{})
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range writes {
					user := fmt.Sprintf("u%d-%d-%d", si, w, i)
					err := s.CreateAccount(ctx, "example.com", user, "h1")
					if err == nil {
						err = s.SetPassword(ctx, "example.com", user, "h2")
					}
					if err == nil {
						// The shared account every worker fights over.
						_, err = s.EnsureAccount(ctx, "example.com", "shared")
					}
					if err == nil {
						// Read what the other store's workers wrote.
						other := fmt.Sprintf("u%d-%d-%d", 1-si, w, i/2)
						_, err = s.PasswordHash(ctx, "example.com", other)
						if errors.Is(err, storage.ErrNotFound) {
							err = nil
						}
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	want := len(stores)*workers*writes + 1
	for i, s := range stores {
		got, err := s.ListAccounts(ctx, "example.com")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("store %d lists %d accounts, want %d", i, len(got), want)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, "example.com", "alice", "hash-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, "example.com", "alice", "hash-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureAccount(ctx, "example.com", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path)
	if h, err := s.PasswordHash(ctx, "example.com", "alice"); err != nil || h != "hash-2" {
		t.Errorf("PasswordHash after reopen = %q, %v; want hash-2", h, err)
	}
	got, err := s.ListAccounts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Username != "alice" || got[1].Username != "bob" || got[1].HasPassword {
		t.Errorf("ListAccounts after reopen = %+v", got)
	}
}

// appliedMigrations returns schema_migrations as version → applied_at.
func appliedMigrations(t *testing.T, s *Store) map[int64]int64 {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := make(map[int64]int64)
	for rows.Next() {
		var v, at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		m[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReopenAppliesNoMigrationTwice(t *testing.T) {
	ctx := t.Context()
	ms, err := loadMigrations(migrationFiles, migrationDir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ottr.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first := appliedMigrations(t, s)
	if len(first) != len(ms) {
		t.Fatalf("after first Open: %d migrations recorded, want %d", len(first), len(ms))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path)
	if again := appliedMigrations(t, s); !mapsEqual(again, first) {
		t.Errorf("after reopening: schema_migrations = %v, want %v", again, first)
	}
	later := func() time.Time { return time.Unix(4_000_000_000, 0) }
	done, err := migrate(ctx, s.db, ms, later)
	if err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if len(done) != 0 {
		t.Errorf("migrate again applied %v, want nothing", done)
	}
	if again := appliedMigrations(t, s); !mapsEqual(again, first) {
		t.Errorf("after migrating again: schema_migrations = %v, want %v", again, first)
	}
}

func mapsEqual(a, b map[int64]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestConcurrentOpen starts several stores on a fresh file at the same
// moment, as when the CLI runs while the server starts: every Open succeeds
// and each migration is recorded once.
func TestConcurrentOpen(t *testing.T) {
	const (
		rounds  = 5
		openers = 4
	)
	ms, err := loadMigrations(migrationFiles, migrationDir)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("round%d", r), "ottr.db")
		stores := make([]*Store, openers)
		errs := make([]error, openers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range openers {
			wg.Go(func() {
				<-start
				stores[i], errs[i] = Open(t.Context(), path)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: Open %d: %v", r, i, err)
			}
		}
		for _, s := range stores {
			if s != nil {
				t.Cleanup(func() { s.Close() })
			}
		}
		if t.Failed() {
			return
		}
		if got := appliedMigrations(t, stores[0]); len(got) != len(ms) {
			t.Errorf("round %d: schema_migrations = %v, want %d rows", r, got, len(ms))
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer ottr succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open: %v, want an error about a newer schema", err)
	}
}

// TestMigrateRollsBack checks that a failing step leaves nothing behind and
// is applied, whole, once fixed; and that a step may hold several
// statements.
func TestMigrateRollsBack(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "ottr.db"))
	fsys := fstest.MapFS{
		"m/0001_one.sql": {Data: []byte("CREATE TABLE one (x INTEGER);")},
		"m/0002_two.sql": {Data: []byte("CREATE TABLE two (x INTEGER);\nINSERT INTO missing VALUES (1);")},
	}
	// Forget the embedded migrations' versions so that this test's set,
	// which also starts at 1, applies.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	done, err := migrate(ctx, s.db, ms, time.Now)
	if err == nil {
		t.Fatal("migrate with a broken step succeeded")
	}
	if !slices.Equal(done, []int64{1}) {
		t.Errorf("migrate applied %v before failing, want [1]", done)
	}
	if tableExists(t, s, "two") {
		t.Error("table two exists after its migration failed")
	}
	if got := appliedMigrations(t, s); len(got) != 1 {
		t.Errorf("schema_migrations = %v, want only version 1", got)
	}

	fsys["m/0002_two.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE two (x INTEGER);\nINSERT INTO two VALUES (1);\nCREATE INDEX two_x ON two (x);")}
	ms, err = loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	done, err = migrate(ctx, s.db, ms, time.Now)
	if err != nil {
		t.Fatalf("migrate after the fix: %v", err)
	}
	if !slices.Equal(done, []int64{2}) {
		t.Errorf("migrate applied %v, want [2]", done)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM two`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows in two = %d, %v; want 1", n, err)
	}
	if !tableExists(t, s, "one") {
		t.Error("table one missing")
	}
}

// TestMigrateLateLowerVersion: a step that lands after a higher one (work
// done in parallel) is applied all the same.
func TestMigrateLateLowerVersion(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "ottr.db"))
	if _, err := s.db.ExecContext(ctx, `DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"m/0001_one.sql":   {Data: []byte("CREATE TABLE one (x INTEGER);")},
		"m/0003_three.sql": {Data: []byte("CREATE TABLE three (x INTEGER);")},
	}
	for i, want := range [][]int64{{1, 3}, {2}} {
		if i == 1 {
			fsys["m/0002_two.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE two (x INTEGER);")}
		}
		ms, err := loadMigrations(fsys, "m")
		if err != nil {
			t.Fatal(err)
		}
		done, err := migrate(ctx, s.db, ms, time.Now)
		if err != nil || !slices.Equal(done, want) {
			t.Fatalf("round %d: migrate applied %v, %v; want %v", i, done, err, want)
		}
	}
	if !tableExists(t, s, "two") {
		t.Error("table two missing")
	}
}

func tableExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	var n int
	err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestLoadMigrations(t *testing.T) {
	file := func(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }
	tests := []struct {
		name  string
		files map[string]string
		want  []int64 // nil: an error is expected
	}{
		{"one", map[string]string{"0001_a.sql": "SELECT 1;"}, []int64{1}},
		{"sorted by number", map[string]string{"10_j.sql": "SELECT 1;", "0002_b.sql": "SELECT 1;", "1_a.sql": "SELECT 1;",
			"3_c.sql": "x", "4_d.sql": "x", "5_e.sql": "x", "6_f.sql": "x", "7_g.sql": "x", "8_h.sql": "x", "9_i.sql": "x"},
			[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"none", map[string]string{}, nil},
		{"gap", map[string]string{"0001_a.sql": "x", "0003_c.sql": "x"}, []int64{1, 3}},
		{"not from one", map[string]string{"0002_b.sql": "x"}, []int64{2}},
		{"repeat", map[string]string{"0001_a.sql": "x", "1_b.sql": "x"}, nil},
		{"zero", map[string]string{"0000_a.sql": "x", "0001_b.sql": "x"}, nil},
		{"no label", map[string]string{"0001_.sql": "x"}, nil},
		{"no number", map[string]string{"abc_x.sql": "x"}, nil},
		{"no underscore", map[string]string{"0001.sql": "x"}, nil},
		{"signed", map[string]string{"+1_a.sql": "x"}, nil},
		{"wrong extension", map[string]string{"0001_a.sql": "x", "0002_b.sq": "x"}, nil},
		{"empty file", map[string]string{"0001_a.sql": " \n"}, nil},
		{"huge number", map[string]string{"99999999999999999999_a.sql": "x"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m": &fstest.MapFile{Mode: fs.ModeDir | 0o755}}
			for name, sql := range tc.files {
				fsys["m/"+name] = file(sql)
			}
			ms, err := loadMigrations(fsys, "m")
			if tc.want == nil {
				if err == nil {
					t.Fatalf("loadMigrations succeeded with %d steps, want an error", len(ms))
				}
				return
			}
			if err != nil {
				t.Fatalf("loadMigrations: %v", err)
			}
			var got []int64
			for _, m := range ms {
				got = append(got, m.version)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("versions %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("embedded", func(t *testing.T) {
		ms, err := loadMigrations(migrationFiles, migrationDir)
		if err != nil {
			t.Fatalf("the embedded migrations do not load: %v", err)
		}
		if ms[0].version != 1 || !strings.Contains(ms[0].sql, "CREATE TABLE accounts") {
			t.Errorf("first embedded migration is %s", ms[0].name)
		}
	})
}

// TestDurableWithoutClose checks that a write is visible to a new
// connection pool the moment the method returns, before the writer closes.
func TestDurableWithoutClose(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ottr.db")
	w := openTest(t, path)
	if err := w.CreateAccount(ctx, "example.com", "alice", "hash"); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, path)
	if h, err := r.PasswordHash(ctx, "example.com", "alice"); err != nil || h != "hash" {
		t.Errorf("PasswordHash from a second store = %q, %v; want hash", h, err)
	}
}
