package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// write runs f in a transaction that holds the write lock from its start
// (BEGIN IMMEDIATE, from the DSN's _txlock) and commits it if f returns nil;
// otherwise it rolls it back and returns f's error. Reads made in f see every
// write committed before it, and no other writer can change them until the
// commit, so a check and the write that depends on it cannot be interleaved
// with another connection's, in this process or another.
func (s *Store) write(ctx context.Context, f func(tx *sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.inTx(ctx, nil, f)
}

// exec runs one writing statement outside a transaction, after this
// process's other writers (see Store.writeMu).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.db.ExecContext(ctx, query, args...)
}

// read runs f in a read-only (deferred) transaction: its reads see one
// snapshot of the database and take no write lock, so they wait for no
// writer.
func (s *Store) read(ctx context.Context, f func(tx *sql.Tx) error) error {
	return s.inTx(ctx, &sql.TxOptions{ReadOnly: true}, f)
}

func (s *Store) inTx(ctx context.Context, opts *sql.TxOptions, f func(tx *sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// The error that matters is err; SQLite undoes whatever a
			// failed rollback leaves behind itself.
			_ = tx.Rollback()
		}
	}()
	if err = f(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
