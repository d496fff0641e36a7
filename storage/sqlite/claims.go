package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// ClaimToken records key (the auth package's key of one accepted token) as
// used until expires and reports whether it was unused at now: absent, or
// recorded with an expiry at or before now. It implements auth.ClaimStore
// with one transaction per claim; a server uses [NewTokenClaims], which
// commits concurrent claims together and prunes less often.
//
// In the same transaction it deletes every claim expired at now, so the
// table holds only the tokens that could still verify. The claim is on
// disk when ClaimToken returns (synchronous=FULL), so a token accepted
// just before a crash is refused after it.
func (s *Store) ClaimToken(ctx context.Context, key [16]byte, expires, now time.Time) (fresh bool, err error) {
	r := &claimRequest{key: key, expires: ceilUnix(expires), now: now.Unix()}
	if err := s.claimBatch(ctx, []*claimRequest{r}, true); err != nil {
		return false, err
	}
	return r.fresh, nil
}

// claimRequest is one claim in a batch, with its answer.
type claimRequest struct {
	key     [16]byte
	expires int64 // Unix seconds
	now     int64 // Unix seconds
	fresh   bool
	err     error
	done    chan struct{} // closed when answered (TokenClaims only)
}

// claimBatch records every claim of batch in one transaction, in order,
// and sets each one's fresh. With prune, it first deletes the claims
// expired at the earliest now of the batch.
func (s *Store) claimBatch(ctx context.Context, batch []*claimRequest, prune bool) error {
	earliest := batch[0].now
	for _, r := range batch {
		earliest = min(earliest, r.now)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		// Without prune, expired claims stay a little longer; the insert's
		// conflict clause still overwrites them.
		if prune {
			if _, err := tx.ExecContext(ctx, `DELETE FROM token_claims WHERE expires <= ?`, earliest); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO token_claims (claim, expires) VALUES (?, ?)
ON CONFLICT (claim) DO UPDATE SET expires = excluded.expires WHERE token_claims.expires <= ?`)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		defer stmt.Close()
		for _, r := range batch {
			res, err := stmt.ExecContext(ctx, r.key[:], r.expires, r.now)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			r.fresh = n == 1
		}
		return nil
	})
	if err != nil {
		for _, r := range batch {
			r.fresh = false
		}
		return fmt.Errorf("sqlite: claim token: %w", err)
	}
	return nil
}

// maxClaimBatch bounds the claims committed in one transaction.
const maxClaimBatch = 1024

// claimTimeout bounds one batch's transaction; the claims' own contexts
// are not used for it, since one login's end must not fail the others'.
const claimTimeout = 2 * busyTimeout

// claimPruneEvery is how often TokenClaims deletes expired claims: a
// DELETE in every commit doubled its cost, and claims live 90 s by
// default, so the table holds at most that much longer than needed.
const claimPruneEvery = 10 // seconds

// TokenClaims is an auth.ClaimStore over a Store that commits the claims
// that arrive while a commit is under way together, in the next
// transaction (group commit): each claim is still on disk before it is
// answered, and concurrent logins share one fsync instead of queueing for
// one each. It is safe for concurrent use; it runs a goroutine only while
// claims are waiting.
type TokenClaims struct {
	s *Store

	mu      sync.Mutex
	queue   []*claimRequest
	running bool
	pruneAt int64 // Unix seconds; only run touches it
}

// NewTokenClaims returns group-committed claims in s.
func NewTokenClaims(s *Store) *TokenClaims { return &TokenClaims{s: s} }

// ClaimToken implements auth.ClaimStore, as Store.ClaimToken does. When
// ctx ends first it returns ctx's error; the claim may still be recorded
// (the token is refused either way).
func (c *TokenClaims) ClaimToken(ctx context.Context, key [16]byte, expires, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("sqlite: claim token: %w", err)
	}
	r := &claimRequest{key: key, expires: ceilUnix(expires), now: now.Unix(), done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.fresh, r.err
	case <-ctx.Done():
		return false, fmt.Errorf("sqlite: claim token: %w", ctx.Err())
	}
}

// run commits batches until the queue is empty.
func (c *TokenClaims) run() {
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxClaimBatch)
		if n == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		c.mu.Unlock()
		prune := batch[0].now >= c.pruneAt
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		err := c.s.claimBatch(ctx, batch, prune)
		cancel()
		if prune && err == nil {
			c.pruneAt = batch[0].now + claimPruneEvery
		}
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
	}
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
