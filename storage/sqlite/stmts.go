package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// preparedStmts holds the statements of the hot paths (a bind, a FAST
// login), each prepared once for the Store's life: parsing and planning a
// query costs SQLite more than running a small one. database/sql prepares
// each again, once, on every pooled connection it runs on, and closes them
// with the database. Only constant query strings of this package go in, so
// the map is bounded by the code.
type preparedStmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns query prepared on s's database, preparing it on first
// use.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	p := &s.stmts
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.m[query]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if p.m == nil {
		p.m = make(map[string]*sql.Stmt)
	}
	p.m[query] = st
	return st, nil
}

// queryRow runs query, prepared once, in tx (nil: outside a
// transaction). A statement that does not prepare is run unprepared,
// which reports its error.
func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, query)
	switch {
	case err != nil && tx != nil:
		return tx.QueryRowContext(ctx, query, args...)
	case err != nil:
		return s.db.QueryRowContext(ctx, query, args...)
	case tx != nil:
		st = tx.StmtContext(ctx, st) // closed with tx
	}
	return st.QueryRowContext(ctx, args...)
}

// query is queryRow's for several rows.
func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, query)
	switch {
	case err != nil && tx != nil:
		return tx.QueryContext(ctx, query, args...)
	case err != nil:
		return s.db.QueryContext(ctx, query, args...)
	case tx != nil:
		st = tx.StmtContext(ctx, st)
	}
	return st.QueryContext(ctx, args...)
}

// txExec runs the writing statement query, prepared once, in tx.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}
