package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema, one step per file.
//
// To change the schema, add a file named NNNN_what.sql to the migrations
// directory, numbered above the last. Never edit or renumber a file
// that has been released: a database that already applied it will not apply
// it again. A file may hold several statements; each file runs in its own
// transaction, so it applies entirely or not at all.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationDir is the directory of migrationFiles that holds the steps.
const migrationDir = "migrations"

// migration is one schema step.
type migration struct {
	version int64
	name    string // the file name, for error messages
	sql     string
}

// loadMigrations reads the steps in dir of fsys, sorted by version. Every
// entry must be a file named NNNN_name.sql with a version of its own: two
// people adding the same number, or a typo in a name, fail every Open (and
// the tests) instead of being skipped. Versions may have gaps: work done in
// parallel reserves numbers, and migrate applies every version a database
// lacks, so a step that lands after a higher one still runs.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		version, err := migrationVersion(name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		if e.IsDir() {
			return nil, fmt.Errorf("migration %s: is a directory", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("migration %s: empty", name)
		}
		ms = append(ms, migration{version: version, name: name, sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s: the same version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrationVersion parses the version from a file name of the form
// NNNN_name.sql.
func migrationVersion(name string) (int64, error) {
	base, ok := strings.CutSuffix(name, ".sql")
	if !ok {
		return 0, errors.New("name does not end in .sql")
	}
	num, label, ok := strings.Cut(base, "_")
	if !ok || label == "" {
		return 0, errors.New("name is not of the form NNNN_name.sql")
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, errors.New("name does not start with a decimal version")
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad version: %w", err)
	}
	if v < 1 {
		return 0, errors.New("version must be at least 1")
	}
	return v, nil
}

// migrate applies the steps of ms that db lacks, in order, and returns the
// versions it applied.
//
// Each step runs in its own IMMEDIATE transaction (the DSN's _txlock), which
// holds SQLite's write lock from the start; the step's version is checked
// again inside it, so when two processes open a fresh file at once, one
// applies the step and the other finds it done. A database that has applied
// a version newer than any in ms was written by a newer ottr and is refused
// rather than used with a schema this code does not know.
func migrate(ctx context.Context, db *sql.DB, ms []migration, now func() time.Time) ([]int64, error) {
	const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	applied := make(map[int64]bool)
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	var newest int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: read applied versions: %w", err)
		}
		applied[v] = true
		newest = max(newest, v)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	rows.Close()
	if latest := ms[len(ms)-1].version; newest > latest {
		return nil, fmt.Errorf("migrate: database schema version %d is newer than this ottr supports (%d)", newest, latest)
	}

	var done []int64
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		ran, err := applyMigration(ctx, db, m, now)
		if err != nil {
			return done, fmt.Errorf("migrate: %s: %w", m.name, err)
		}
		if ran {
			done = append(done, m.version)
		}
	}
	return done, nil
}

// applyMigration runs m in one transaction unless its version is already
// recorded, and reports whether it ran.
func applyMigration(ctx context.Context, db *sql.DB, m migration, now func() time.Time) (ran bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// The error that matters is err; a failed rollback leaves nothing
			// behind that SQLite will not undo itself.
			_ = tx.Rollback()
		}
	}()

	var exists bool
	err = tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?)`, m.version).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("check version: %w", err)
	}
	if exists {
		// Another connection applied it after we looked.
		if err := tx.Rollback(); err != nil {
			return false, fmt.Errorf("rollback: %w", err)
		}
		return false, nil
	}
	if _, err = tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("apply: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, now().Unix())
	if err != nil {
		return false, fmt.Errorf("record version: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
