package limit

import (
	"testing"
	"time"
)

// OnRefuse is told of every refusal by Allow and Has, and only of those;
// SetRate changes the rate and the bucket size of a table in use.
func TestOnRefuseAndSetRate(t *testing.T) {
	k := NewKeyed(1, 2, 16)
	refused := 0
	k.OnRefuse(func() { refused++ })
	now := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false, false} {
		if got := k.Allow("a", now); got != want {
			t.Fatalf("Allow #%d = %v, want %v", i, got, want)
		}
	}
	if k.Has("a", now) || !k.Has("b", now) {
		t.Fatal("Has: a should be empty, b full")
	}
	if refused != 3 {
		t.Fatalf("refusals counted %d, want 3 (two Allow, one Has)", refused)
	}
	// A larger bucket and a faster rate: after one second, 10 tokens.
	k.SetRate(10, 5)
	now = now.Add(time.Second)
	n := 0
	for k.Allow("a", now) {
		n++
	}
	if n != 5 {
		t.Fatalf("after SetRate(10, 5) and 1 s: %d tokens, want 5 (the new burst)", n)
	}
	k.OnRefuse(nil)
	k.Allow("a", now)
	if refused != 4 {
		t.Fatalf("refusals %d, want 4: the one before OnRefuse(nil) only", refused)
	}
}
