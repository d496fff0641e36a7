package limit

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1, 3, 100) // 1/s, burst 3
	for i := 0; i < 3; i++ {
		if !k.Allow("a", now) {
			t.Fatalf("token %d refused", i)
		}
	}
	if k.Allow("a", now) {
		t.Fatal("fourth token in the same instant allowed")
	}
	if !k.Allow("b", now) {
		t.Fatal("another key is limited too")
	}
	if !k.Allow("a", now.Add(1100*time.Millisecond)) {
		t.Fatal("no refill after a second")
	}
}

func TestHasAndTake(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1.0/60, 2, 100) // 1/min, burst 2
	if !k.Has("x", now) {
		t.Fatal("fresh key has no token")
	}
	k.Take("x", now)
	k.Take("x", now)
	if k.Has("x", now) {
		t.Fatal("empty bucket has a token")
	}
	k.Take("x", now) // debt
	if k.Has("x", now.Add(61*time.Second)) {
		t.Fatal("debt forgotten")
	}
	if !k.Has("x", now.Add(121*time.Second)) {
		t.Fatal("no refill after the debt was paid")
	}
}

// TestBoundedKeys fills a table with limited keys: a new key is still
// admitted with a full bucket (the least recently used key is forgotten),
// the table never grows past its bound, and a key in use is not the one
// forgotten.
func TestBoundedKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1.0/60, 1, 10)
	for i := 0; i < 10; i++ {
		if !k.Allow(fmt.Sprint(i), now) {
			t.Fatalf("key %d refused", i)
		}
	}
	for i := 0; i < 1000; i++ {
		k.Allow("hot", now) // keeps "hot" most recently used
		if !k.Allow(fmt.Sprint("new", i), now) {
			t.Fatalf("new key %d refused by a full table of limited keys", i)
		}
		if n := k.Len(); n > 10 {
			t.Fatalf("%d keys, bound 10", n)
		}
	}
	if k.Has("hot", now) {
		t.Fatal("the key in use was forgotten while others churned")
	}
	// The forgotten keys start over with a full bucket.
	if !k.Allow("0", now) {
		t.Fatal("evicted key still limited")
	}
}

// TestIdleKeysDropped checks that buckets full again leave the table when
// new keys come, so an idle table shrinks back.
func TestIdleKeysDropped(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1, 2, 100)
	for i := 0; i < 50; i++ {
		k.Take(fmt.Sprint(i), now)
	}
	if n := k.Len(); n != 50 {
		t.Fatalf("%d keys, want 50", n)
	}
	k.Take("late", now.Add(10*time.Second))
	if n := k.Len(); n != 1 {
		t.Fatalf("%d keys after the others refilled, want 1", n)
	}
}

// TestLongKeysSmall checks that a key's length costs no memory: the table
// stores a hash.
func TestLongKeysSmall(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1, 1, 1000)
	long := strings.Repeat("x", 1<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		k.Take(long+fmt.Sprint(i), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if k.Len() != 100 {
		t.Fatalf("%d keys, want 100", k.Len())
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("100 keys of 1 MiB grew the heap by %d bytes", grew)
	}
	runtime.KeepAlive(long)
	runtime.KeepAlive(k)
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ff::1":   "2001:db8:1:2::/64",
	} {
		if got := AddressKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
