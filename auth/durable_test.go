package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"ottr.im/ottr/storage/claimlog"
)

// failingClaims is a ClaimStore that is down.
type failingClaims struct{}

func (failingClaims) ClaimToken(context.Context, [16]byte, time.Time, time.Time) (bool, error) {
	return false, errors.New("disk on fire")
}

// TestDurableReplayAcrossRestart: a token verified with one durable cache
// is refused as a replay by a fresh memory cache on the claim log reopened
// (a restarted server), and a failing store refuses the token as unavailable
// without remembering it, so it verifies once the store works (security
// review #8).
func TestDurableReplayAcrossRestart(t *testing.T) {
	vf := loadVectors(t)
	p := vf.params()
	now := time.Unix(1764387007, 0)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), claimlog.FileName)
	store, err := claimlog.Open(path, now, 64)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(p, "alice@example.org", now, NewNonce(32))
	if err != nil {
		t.Fatal(err)
	}

	mem := NewMemoryReplayCache(64)
	down, _ := NewVerifier(p, NewDurableReplayCache(mem, failingClaims{}), clock)
	if err := down.Verify("alice", "example.org", tok); !errors.Is(err, &Error{Reason: ReasonUnavailable}) {
		t.Fatalf("store down: %v, want unavailable", err)
	}
	if n := mem.Len(now); n != 0 {
		t.Fatalf("memory kept %d claims the store refused", n)
	}
	up, _ := NewVerifier(p, NewDurableReplayCache(mem, store), clock)
	if err := up.Verify("alice", "example.org", tok); err != nil {
		t.Fatalf("store up again: %v", err)
	}
	if err := up.Verify("alice", "example.org", tok); !errors.Is(err, &Error{Reason: ReasonReplay}) {
		t.Fatalf("second use: %v, want replay", err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = claimlog.Open(path, now, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	restarted, _ := NewVerifier(p, NewDurableReplayCache(NewMemoryReplayCache(64), store), clock)
	if err := restarted.Verify("alice", "example.org", tok); !errors.Is(err, &Error{Reason: ReasonReplay}) {
		t.Fatalf("after a restart: %v, want replay", err)
	}
	// Through New with Options.Claims, as the server does.
	a, err := New(Options{Hosts: map[string]TokenParams{"example.org": p}, Claims: store, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Authenticate(context.Background(), Attempt{Mechanism: "X-TOKEN", Host: "example.org", Username: "alice", Secret: tok})
	if !errors.Is(err, &Error{Reason: ReasonReplay}) {
		t.Fatalf("Authenticator with Claims: %v, want replay", err)
	}
}
