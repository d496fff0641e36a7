// Package sqlite is ottr's embedded storage backend: a single SQLite file,
// reached through the pure-Go driver modernc.org/sqlite (no cgo).
//
// Every pooled connection is opened with the same pragmas: write-ahead
// logging, synchronous=FULL (a write is on disk once the method that made it
// returns), a busy timeout so that several connections and several processes
// can share one file (the ottr CLI and a running server do), and foreign key
// enforcement. Transactions begin IMMEDIATE, taking the write lock up front,
// so a transaction never fails half-way because another writer got there
// first.
//
// The schema is kept in numbered SQL files embedded from the migrations
// directory and applied by [Open]; see migrate.go.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"ottr.im/ottr/storage"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// driverName is the database/sql name modernc.org/sqlite registers.
const driverName = "sqlite"

// busyTimeout is how long a connection waits for another connection's lock
// before giving up with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Account is the account summary returned by [Store.ListAccounts]; it is the
// backend-neutral [storage.Account].
type Account = storage.Account

// Store is an open SQLite database holding ottr's state. It is safe for
// concurrent use by several goroutines, and several Stores (in this process
// or in others) may have the same file open at once.
type Store struct {
	db *sql.DB
	// writeMu lets this process's writers take SQLite's write lock one at
	// a time, in about the order they asked (sync.Mutex hands over in
	// order once a waiter has waited 1 ms). SQLite admits one writer
	// anyway; without it, a writer that commits and begins again at once
	// (the archive's batches) could win the lock over and over while
	// another's busy handler sleeps, past busy_timeout.
	writeMu sync.Mutex
	// now is the clock used for created_at and applied_at; time.Now outside
	// tests.
	now func() time.Time
	// stmts are the statements of the hot paths, prepared once.
	stmts preparedStmts
}

// Open opens (creating if needed) the database file at path, creating its
// parent directory with mode 0700 and the file itself with mode 0600 if they
// are missing, then applies any migrations the file lacks.
//
// Open is safe to call from two processes on the same file at the same time:
// migrations are applied under SQLite's write lock and re-checked there, so
// each runs once.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: create directory: %w", path, err)
	}
	if err := createFile(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	if err := setWAL(ctx, abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db, err := sql.Open(driverName, dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ms, err := loadMigrations(migrationFiles, migrationDir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if _, err := migrate(ctx, db, ms, s.now); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database. Every write already returned is on disk; Close
// does not flush anything further.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// createFile creates the database file with mode 0600 if it does not exist.
// SQLite gives the -wal and -shm files it creates later the same mode as the
// database file, so password hashes never land in a world-readable file.
// SQLite treats an empty file as an empty database.
func createFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return nil
}

// dsn returns the data source name for the database at the absolute path.
//
// It is a file: URI, so that a path containing '?', '#' or '%' is escaped
// rather than cut short. The _pragma parameters are run by the driver on
// every new connection in the pool (busy_timeout first), and _txlock makes
// every transaction BEGIN IMMEDIATE.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	u := url.URL{
		Scheme:   "file",
		Path:     filepath.ToSlash(path),
		RawQuery: q.Encode(),
	}
	return u.String()
}

// setWAL switches the database file at path to write-ahead logging, once,
// before the pool opens: SQLite answers PRAGMA journal_mode=WAL with
// SQLITE_BUSY at once, without waiting out busy_timeout, when another
// connection is switching the same fresh file, as when the CLI and the
// server open it together. So it retries for up to busyTimeout. Once the
// file is in WAL mode, the pragma every pooled connection runs is a no-op.
func setWAL(ctx context.Context, path string) error {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	db, err := sql.Open(driverName, u.String())
	if err != nil {
		return fmt.Errorf("set journal mode: %w", err)
	}
	defer db.Close()
	deadline := time.Now().Add(busyTimeout)
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode(WAL)`).Scan(&mode)
		if err == nil {
			if mode != "wal" {
				return fmt.Errorf("set journal mode: got %q, want wal", mode)
			}
			return nil
		}
		var serr *sqlitedrv.Error
		if !errors.As(err, &serr) || serr.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return fmt.Errorf("set journal mode: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set journal mode: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
