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
