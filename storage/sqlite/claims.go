package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ClaimToken records key (the auth package's key of one accepted token) as
// used until expires and reports whether it was unused at now: absent, or
// recorded with an expiry at or before now. It implements auth.ClaimStore.
//
// In the same transaction it deletes every claim expired at now, so the
// table holds only the tokens that could still verify. The claim is on
// disk when ClaimToken returns (synchronous=FULL), so a token accepted
// just before a crash is refused after it.
func (s *Store) ClaimToken(ctx context.Context, key [16]byte, expires, now time.Time) (fresh bool, err error) {
	exp := ceilUnix(expires)
	at := now.Unix()
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM token_claims WHERE expires <= ?`, at); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO token_claims (claim, expires) VALUES (?, ?)
ON CONFLICT (claim) DO UPDATE SET expires = excluded.expires WHERE token_claims.expires <= ?`, key[:], exp, at)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		fresh = n == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: claim token: %w", err)
	}
	return fresh, nil
}

// TokenClaims returns the number of claims that have not expired at now.
func (s *Store) TokenClaims(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM token_claims WHERE expires > ?`, now.Unix()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count token claims: %w", err)
	}
	return n, nil
}

// ceilUnix returns t in Unix seconds, rounded up: a claim is never
// forgotten before its expiry.
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}
