package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestClaimToken(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ottr.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1764387007, 0)
	exp := time.Unix(1764387060, 0)
	k1, k2 := [16]byte{1}, [16]byte{2}
	claim := func(s *Store, k [16]byte, exp, now time.Time) bool {
		t.Helper()
		fresh, err := s.ClaimToken(ctx, k, exp, now)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if !claim(s, k1, exp, now) {
		t.Fatal("first claim not fresh")
	}
	if claim(s, k1, exp, now.Add(time.Second)) {
		t.Fatal("second claim fresh")
	}
	if !claim(s, k2, exp, now) {
		t.Fatal("another key not fresh")
	}
	// Reopened (a restart), the claim is still there.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if claim(s, k1, exp, exp.Add(-time.Second)) {
		t.Fatal("claim forgotten across reopening")
	}
	// At its expiry it is forgotten, and pruned.
	if n, _ := s.TokenClaims(ctx, now); n != 2 {
		t.Fatalf("%d live claims, want 2", n)
	}
	if !claim(s, k1, exp.Add(time.Minute), exp) {
		t.Fatal("expired claim not fresh")
	}
	var rows int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM token_claims`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("%d rows after pruning, want 1", rows)
	}
	// A fractional expiry rounds up: still claimed in its last second.
	k3 := [16]byte{3}
	claim(s, k3, exp.Add(500*time.Millisecond), now)
	if claim(s, k3, exp.Add(time.Minute), exp.Add(600*time.Millisecond)) {
		t.Fatal("claim forgotten before its expiry")
	}
}

// TestClaimTokenConcurrent: of many concurrent claims of one key, from two
// handles on the file, exactly one is fresh.
func TestClaimTokenConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ottr.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	now := time.Unix(1764387007, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := stores[i%2].ClaimToken(ctx, [16]byte{9}, now.Add(time.Minute), now)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d fresh claims of one key, want 1", fresh)
	}
}

// TestTokenClaimsGrouped: many concurrent claims through TokenClaims, each
// key claimed twice, are each fresh exactly once and durable (a second
// handle sees them).
func TestTokenClaimsGrouped(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ottr.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewTokenClaims(s)
	now := time.Unix(1764387007, 0)
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := make(map[byte]int)
	for i := 0; i < 2*n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := [16]byte{byte(i % n), byte(i % n >> 8), 7}
			ok, err := c.ClaimToken(ctx, k, now.Add(time.Minute), now)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				fresh[k[0]]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(fresh) != n {
		t.Fatalf("%d keys fresh, want %d", len(fresh), n)
	}
	for k, f := range fresh {
		if f != 1 {
			t.Fatalf("key %d fresh %d times", k, f)
		}
	}
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, _ := other.TokenClaims(ctx, now); got != n {
		t.Fatalf("another handle sees %d claims, want %d", got, n)
	}
	// A cancelled context returns at once with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.ClaimToken(cctx, [16]byte{1, 2, 3}, now.Add(time.Minute), now); err == nil {
		t.Fatal("claim with a cancelled context succeeded")
	}
}

// TestTokenClaimsPrune: TokenClaims deletes expired claims, at most every
// claimPruneEvery seconds, and an expired claim not yet pruned is fresh.
func TestTokenClaimsPrune(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "ottr.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewTokenClaims(s)
	rows := func() int {
		t.Helper()
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM token_claims`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	now := time.Unix(1764387000, 0)
	for i := 0; i < 10; i++ {
		if ok, err := c.ClaimToken(ctx, [16]byte{byte(i)}, now.Add(3*time.Second), now); err != nil || !ok {
			t.Fatalf("claim %d: %v %v", i, ok, err)
		}
	}
	// Expired, but the last prune was less than claimPruneEvery ago: the
	// rows stay, and an expired key is fresh again all the same.
	soon := now.Add(5 * time.Second)
	if ok, err := c.ClaimToken(ctx, [16]byte{0}, soon.Add(time.Minute), soon); err != nil || !ok {
		t.Fatalf("expired key: %v %v, want fresh", ok, err)
	}
	if n := rows(); n != 10 {
		t.Fatalf("%d rows, want 10 (no prune yet)", n)
	}
	// claimPruneEvery after the first prune, the next commit prunes.
	later := now.Add(claimPruneEvery * time.Second)
	if _, err := c.ClaimToken(ctx, [16]byte{99}, later.Add(time.Minute), later); err != nil {
		t.Fatal(err)
	}
	if n := rows(); n != 2 {
		t.Fatalf("%d rows after pruning, want 2", n)
	}
}
