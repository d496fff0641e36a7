package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"ottr.im/ottr/storage"
)

// FastStore keeps XEP-0484 FAST tokens (their check values, never the
// tokens), per user and client (agent). Its contract:
//
//   - PutFastToken stores a token issued at its Created time; the same
//     client's tokens not used yet go, and so do the user's expired ones;
//     past maxAgents clients, the tokens of the clients issued one least
//     recently go.
//   - FastTokens lists a client's tokens, the latest to expire first.
//   - UseFastToken marks a token used, keeps the highest count given (0
//     gives none), refuses a count not above the last one with
//     storage.ErrFastReplay, and removes the client's tokens issued
//     before the one used; an unknown token is storage.ErrNotFound.
//   - DeleteFastToken removes one; DeleteFastTokens every one of a user
//     and says how many. A password change (SetPassword) and the
//     account's deletion (DeleteAccount) remove them too.
type FastStore interface {
	AccountStore
	PutFastToken(ctx context.Context, t storage.FastToken, maxAgents int) error
	FastTokens(ctx context.Context, host, user, agent string) ([]storage.FastToken, error)
	UseFastToken(ctx context.Context, host, user, agent string, id []byte, count uint64) error
	DeleteFastToken(ctx context.Context, host, user, agent string, id []byte) error
	DeleteFastTokens(ctx context.Context, host, user string) (int, error)
}

// TestFast runs the FastStore conformance suite; newStore returns a fresh,
// empty store.
func TestFast(t *testing.T, newStore func(t *testing.T) FastStore) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	tok := func(agent string, id byte, expires time.Duration, created time.Time) storage.FastToken {
		return storage.FastToken{
			Host: "example.org", Username: "alice", Agent: agent, Mechanism: "HT-SHA-256-NONE",
			ID: []byte{id, 1, 2, 3}, Responder: []byte{id, 9}, Expires: created.Add(expires), Created: created,
		}
	}
	ids := func(t *testing.T, s FastStore, agent string) []byte {
		t.Helper()
		got, err := s.FastTokens(ctx, "example.org", "alice", agent)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		for _, g := range got {
			out = append(out, g.ID[0])
		}
		return out
	}
	put := func(t *testing.T, s FastStore, ft storage.FastToken, maxAgents int) {
		t.Helper()
		if err := s.PutFastToken(ctx, ft, maxAgents); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("round trip", func(t *testing.T) {
		s := newStore(t)
		want := tok("a", 1, time.Hour, now)
		put(t, s, want, 8)
		got, err := s.FastTokens(ctx, "example.org", "alice", "a")
		if err != nil || len(got) != 1 {
			t.Fatalf("FastTokens = %v, %v; want one", got, err)
		}
		g := got[0]
		if string(g.ID) != string(want.ID) || string(g.Responder) != string(want.Responder) || g.Mechanism != want.Mechanism ||
			!g.Expires.Equal(want.Expires) || !g.Created.Equal(want.Created) || g.Used || g.Count != 0 {
			t.Fatalf("got %+v, want %+v", g, want)
		}
		if other, _ := s.FastTokens(ctx, "example.org", "alice", "b"); len(other) != 0 {
			t.Fatalf("another agent sees %v", other)
		}
	})
	t.Run("unused token replaced, used one kept", func(t *testing.T) {
		s := newStore(t)
		put(t, s, tok("a", 1, time.Hour, now), 8)
		put(t, s, tok("a", 2, 2*time.Hour, now.Add(time.Second)), 8)
		if got := ids(t, s, "a"); string(got) != "\x02" {
			t.Fatalf("after a second issue: %v, want [2]", got)
		}
		if err := s.UseFastToken(ctx, "example.org", "alice", "a", tok("a", 2, 0, now).ID, 0); err != nil {
			t.Fatal(err)
		}
		// Within the same second: issue order still tells them apart.
		put(t, s, tok("a", 3, 3*time.Hour, now.Add(time.Second+time.Millisecond)), 8)
		if got := ids(t, s, "a"); string(got) != "\x03\x02" {
			t.Fatalf("after use and rotation: %v, want [3 2]", got)
		}
		// Using the newer one drops the older.
		if err := s.UseFastToken(ctx, "example.org", "alice", "a", tok("a", 3, 0, now).ID, 0); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, s, "a"); string(got) != "\x03" {
			t.Fatalf("after using the new one: %v, want [3]", got)
		}
	})
	t.Run("count strictly increasing", func(t *testing.T) {
		s := newStore(t)
		ft := tok("a", 1, time.Hour, now)
		put(t, s, ft, 8)
		for _, c := range []struct {
			count uint64
			want  error
		}{{5, nil}, {5, storage.ErrFastReplay}, {4, storage.ErrFastReplay}, {0, nil}, {6, nil}, {6, storage.ErrFastReplay}} {
			err := s.UseFastToken(ctx, "example.org", "alice", "a", ft.ID, c.count)
			if !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
				t.Fatalf("count %d: %v, want %v", c.count, err, c.want)
			}
		}
		got, _ := s.FastTokens(ctx, "example.org", "alice", "a")
		if len(got) != 1 || got[0].Count != 6 || !got[0].Used {
			t.Fatalf("stored %+v, want used with count 6", got)
		}
		if err := s.UseFastToken(ctx, "example.org", "alice", "a", []byte("nope"), 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
	})
	t.Run("expired and surplus agents go", func(t *testing.T) {
		s := newStore(t)
		put(t, s, tok("old", 1, time.Minute, now), 3)
		put(t, s, tok("b", 2, time.Hour, now.Add(2*time.Minute)), 3)
		if got := ids(t, s, "old"); len(got) != 0 {
			t.Fatalf("expired token kept: %v", got)
		}
		put(t, s, tok("c", 3, time.Hour, now.Add(3*time.Minute)), 3)
		put(t, s, tok("d", 4, time.Hour, now.Add(4*time.Minute)), 3)
		put(t, s, tok("e", 5, time.Hour, now.Add(5*time.Minute)), 3)
		if got := ids(t, s, "b"); len(got) != 0 {
			t.Fatalf("oldest agent kept past the cap: %v", got)
		}
		for _, a := range []string{"c", "d", "e"} {
			if got := ids(t, s, a); len(got) != 1 {
				t.Fatalf("agent %s: %v", a, got)
			}
		}
	})
	t.Run("delete, password change, account deletion", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateAccount(ctx, "example.org", "alice", "hash"); err != nil {
			t.Fatal(err)
		}
		put(t, s, tok("a", 1, time.Hour, now), 8)
		put(t, s, tok("b", 2, time.Hour, now), 8)
		if err := s.DeleteFastToken(ctx, "example.org", "alice", "a", tok("a", 1, 0, now).ID); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, s, "a"); len(got) != 0 {
			t.Fatalf("deleted token kept: %v", got)
		}
		n, err := s.DeleteFastTokens(ctx, "example.org", "alice")
		if err != nil || n != 1 {
			t.Fatalf("DeleteFastTokens = %d, %v; want 1", n, err)
		}
		put(t, s, tok("a", 1, time.Hour, now), 8)
		if err := s.SetPassword(ctx, "example.org", "alice", "other"); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, s, "a"); len(got) != 0 {
			t.Fatalf("token kept after a password change: %v", got)
		}
		put(t, s, tok("a", 1, time.Hour, now), 8)
		if err := s.DeleteAccount(ctx, "example.org", "alice"); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, s, "a"); len(got) != 0 {
			t.Fatalf("token kept after the account's deletion: %v", got)
		}
	})
}
