package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

// initiator is a HT client's initial response for token and cb.
func initiator(user, token string, cb []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Initiator"))
	m.Write(cb)
	return append([]byte(user+"\x00"), m.Sum(nil)...)
}

// fastStore opens a store of FAST tokens in the test's directory.
func fastStore(t *testing.T) *sqlite.Store {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ottr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func TestFast(t *testing.T) {
	ctx := context.Background()
	store := fastStore(t)
	now := time.Now()
	f := auth.NewFast(auth.FastOptions{Store: store, Lifetime: time.Hour, Now: func() time.Time { return now }})
	cb := []byte("the certificate's hash")

	none, err := f.Issue(ctx, "example.org", "alice", "agent", auth.FastNone, cb)
	if err != nil {
		t.Fatal(err)
	}
	endp, err := f.Issue(ctx, "example.org", "alice", "agent2", auth.FastEndp, cb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Issue(ctx, "example.org", "alice", "agent", auth.FastEndp, nil); err == nil {
		t.Fatal("an ENDP token without channel binding data was issued")
	}
	if !none.Expires.After(now.Add(59*time.Minute)) || none.Expires.After(now.Add(time.Hour)) {
		t.Fatalf("expires %v, want an hour from now", none.Expires)
	}
	login := func(mech, agent, token string, cb []byte, count uint64) error {
		r, err := f.Verify(ctx, auth.FastLogin{Mechanism: mech, Host: "example.org", Agent: agent,
			Message: initiator("Alice", token, cb), Count: count, ChannelBinding: cb})
		if err == nil {
			m := hmac.New(sha256.New, []byte(token))
			m.Write([]byte("Responder"))
			m.Write(cb)
			if r.Username != "alice" || !hmac.Equal(r.Final, m.Sum(nil)) {
				t.Fatalf("result %+v: want alice and the responder message", r)
			}
		}
		return err
	}
	for _, c := range []struct {
		name        string
		mech, agent string
		token       string
		cb          []byte
		count       uint64
		want        auth.Reason // "" for success
	}{
		{"NONE ignores channel binding", auth.FastNone, "agent", none.Token, nil, 1, ""},
		{"replayed count", auth.FastNone, "agent", none.Token, nil, 1, auth.ReasonReplay},
		{"higher count", auth.FastNone, "agent", none.Token, nil, 2, ""},
		{"no count", auth.FastNone, "agent", none.Token, nil, 0, ""},
		{"other agent", auth.FastNone, "agent2", none.Token, nil, 0, auth.ReasonBadCredentials},
		{"other mechanism", auth.FastEndp, "agent", none.Token, cb, 0, auth.ReasonBadCredentials},
		{"ENDP", auth.FastEndp, "agent2", endp.Token, cb, 0, ""},
		{"ENDP, another certificate", auth.FastEndp, "agent2", endp.Token, []byte("another"), 0, auth.ReasonBadCredentials},
		{"ENDP token with NONE", auth.FastNone, "agent2", endp.Token, nil, 0, auth.ReasonBadCredentials},
		{"wrong token", auth.FastNone, "agent", endp.Token, nil, 0, auth.ReasonBadCredentials},
	} {
		err := login(c.mech, c.agent, c.token, c.cb, c.count)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && !errors.Is(err, &auth.Error{Reason: c.want}):
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	now = now.Add(time.Hour)
	err = login(auth.FastNone, "agent", none.Token, nil, 0)
	var cond interface{ SASLCondition() string }
	if !errors.Is(err, &auth.Error{Reason: auth.ReasonExpired}) || !errors.As(err, &cond) || cond.SASLCondition() != "credentials-expired" {
		t.Fatalf("expired token: %v", err)
	}
	if n, err := f.Revoke(ctx, "example.org", "alice"); err != nil || n != 2 {
		t.Fatalf("Revoke = %d, %v; want 2", n, err)
	}
}

// writeCounter counts the writes a Fast makes to its store.
type writeCounter struct {
	auth.FastStore
	writes int
}

func (w *writeCounter) PutFastToken(ctx context.Context, t storage.FastToken, maxAgents int) error {
	w.writes++
	return w.FastStore.PutFastToken(ctx, t, maxAgents)
}

func (w *writeCounter) UseFastToken(ctx context.Context, host, user, agent string, id []byte, count uint64) error {
	w.writes++
	return w.FastStore.UseFastToken(ctx, host, user, agent, id, count)
}

func (w *writeCounter) DeleteFastToken(ctx context.Context, host, user, agent string, id []byte) error {
	w.writes++
	return w.FastStore.DeleteFastToken(ctx, host, user, agent, id)
}

// TestFastRotation: a token is replaced only once it is Rotation old, and
// a login writes to the store only when it changes something (first use,
// a count, invalidation).
func TestFastRotation(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	w := &writeCounter{FastStore: fastStore(t)}
	f := auth.NewFast(auth.FastOptions{Store: w, Lifetime: 14 * 24 * time.Hour, Rotation: 24 * time.Hour,
		Now: func() time.Time { return now }})
	tok, err := f.Issue(ctx, "example.org", "alice", "agent", auth.FastNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		after      time.Duration // the clock moves on first
		count      uint64
		invalidate bool
		writes     int
		rotate     bool
	}{
		{"first use", time.Minute, 0, false, 1, false},
		{"again", time.Hour, 0, false, 0, false},
		{"again with a count", time.Hour, 5, false, 1, false},
		{"again", time.Hour, 0, false, 0, false},
		{"a day old", 22 * time.Hour, 0, false, 0, true},
		{"invalidated", 0, 0, true, 1, false},
	} {
		now = now.Add(c.after)
		before := w.writes
		r, err := f.Verify(ctx, auth.FastLogin{Mechanism: auth.FastNone, Host: "example.org", Agent: "agent",
			Message: initiator("alice", tok.Token, nil), Count: c.count, Invalidate: c.invalidate})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := w.writes - before; got != c.writes || r.Rotate != c.rotate {
			t.Errorf("%s: %d writes, rotate %v; want %d, %v", c.name, got, r.Rotate, c.writes, c.rotate)
		}
	}
}
