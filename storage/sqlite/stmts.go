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

// stmtFor returns query's statement prepared once, for use in tx (nil:
// outside a transaction), or nil when it does not prepare: the caller
// then runs it unprepared, which reports the error.
func (s *Store) stmtFor(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	st, err := s.prepared(ctx, query)
	switch {
	case err != nil:
		return nil
	case tx != nil:
		return tx.StmtContext(ctx, st) // closed with tx
	}
	return st
}

// querier runs a statement from its text: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// in is tx, or the database when tx is nil.
func (s *Store) in(tx *sql.Tx) querier {
	if tx != nil {
		return tx
	}
	return s.db
}

// queryRow runs query, prepared once, in tx (nil: outside a transaction).
func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := s.stmtFor(ctx, tx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.in(tx).QueryRowContext(ctx, query, args...)
}

// query is queryRow's for several rows.
func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if st := s.stmtFor(ctx, tx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.in(tx).QueryContext(ctx, query, args...)
}

// txExec runs the writing statement query, prepared once, in tx.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.stmtFor(ctx, tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}
