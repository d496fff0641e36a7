package limit

import (
	"fmt"
	"net/netip"
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

func TestBoundedKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	k := NewKeyed(1, 1, 10)
	for i := 0; i < 10; i++ {
		k.Allow(fmt.Sprint(i), now)
	}
	if k.Allow("new", now) {
		t.Fatal("new key admitted into a full table of limited keys")
	}
	// Once the old buckets are full again they are dropped for new keys.
	later := now.Add(2 * time.Second)
	if !k.Allow("new", later) {
		t.Fatal("new key refused after the old ones refilled")
	}
	if n := k.Len(); n > 10 {
		t.Fatalf("%d keys, bound 10", n)
	}
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
