package auth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"ottr.im/ottr/internal/testclock"
)

// limitedAuth is an authenticator for example.org with the vectors' token
// settings, the given failure limits, and password accounts: alice, bob
// and carol with password "right", at a settable clock. Every other
// username exists too, with a one-iteration hash of "right", so that a
// wrong password for a random name fails without PBKDF2's full cost.
func limitedAuth(t testing.TB, f FailureLimits) (*Authenticator, *testclock.Clock) {
	t.Helper()
	vf := loadVectors(t)
	cheap, err := HashPassword("right", 1)
	if err != nil {
		t.Fatal(err)
	}
	clock := testclock.New(time.Unix(1764387007, 0))
	a, err := New(Options{
		Hosts:    map[string]TokenParams{"example.org": vf.params()},
		Accounts: anyAccount(cheap),
		Now:      clock.Now,
		Failures: f,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, clock
}

// anyAccount has every account, with the same password hash.
type anyAccount string

func (h anyAccount) PasswordHash(context.Context, string, string) (string, error) {
	return string(h), nil
}

func tokenFor(t testing.TB, user string, now time.Time) string {
	t.Helper()
	tok, err := Mint(loadVectors(t).params(), user+"@example.org", now, NewNonce(DefaultNonceDigits))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The defaults of config.DefaultLimits, per second.
var defaultFailures = FailureLimits{PerAddress: 30.0 / 60, PerPair: 10.0 / 60, PerAccount: 10.0 / 60, Burst: 10, Delay: 150 * time.Millisecond}

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("198.51.100.7")
)

// TestBadTokensNeverLockOut: any number of bad tokens for a username, from
// one address or many, never stops that user's valid token, from the same
// address or another (security review #4).
func TestBadTokensNeverLockOut(t *testing.T) {
	a, clock := limitedAuth(t, defaultFailures)
	ctx := context.Background()
	good := tokenFor(t, "alice", clock.Now())
	bad := good[:len(good)-4] + "AAA="
	for i := 0; i < 50; i++ {
		err := a.Authenticate(ctx, Attempt{Mechanism: "X-TOKEN", Host: "example.org", Username: "alice", Secret: bad, Remote: addrA})
		if !errors.Is(err, &Error{Reason: ReasonBadMAC}) {
			t.Fatalf("bad token %d: %v, want bad MAC (a token is always checked)", i, err)
		}
	}
	for _, from := range []netip.Addr{addrA, addrB} {
		tok := tokenFor(t, "alice", clock.Now())
		if err := a.Authenticate(ctx, Attempt{Mechanism: "X-TOKEN", Host: "example.org", Username: "alice", Secret: tok, Remote: from}); err != nil {
			t.Fatalf("valid token from %s after 50 bad ones: %v", from, err)
		}
	}
	// The bad tokens did count against address A: its password logins
	// are refused for a while, B's are not.
	pw := func(from netip.Addr) error {
		return a.Authenticate(ctx, Attempt{Mechanism: "PLAIN", Host: "example.org", Username: "alice", Secret: "right", Remote: from})
	}
	if err := pw(addrA); !errors.Is(err, &Error{Reason: ReasonRateLimited}) {
		t.Fatalf("password from A after 50 bad tokens: %v, want rate limited", err)
	}
	if err := pw(addrB); err != nil {
		t.Fatalf("password from B: %v", err)
	}
}

// TestPasswordFailuresLimitAddressNotAccount: wrong passwords for bob
// from A refuse A (for bob, then for anyone), never B: bob's right
// password from B logs in at once, undelayed, while wrong ones for bob
// from B are answered late (security review #4).
func TestPasswordFailuresLimitAddressNotAccount(t *testing.T) {
	f := defaultFailures
	a, clock := limitedAuth(t, f)
	ctx := context.Background()
	pw := func(user, secret string, from netip.Addr) error {
		return a.Authenticate(ctx, Attempt{Mechanism: "PLAIN", Host: "example.org", Username: user, Secret: secret, Remote: from})
	}
	refused := 0
	for i := 0; i < 20; i++ {
		err := pw("bob", "wrong", addrA)
		switch {
		case errors.Is(err, &Error{Reason: ReasonRateLimited}):
			refused++
		case !errors.Is(err, &Error{Reason: ReasonBadCredentials}):
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if refused != 20-f.Burst {
		t.Fatalf("%d of 20 refused, want %d (past the pair's burst)", refused, 20-f.Burst)
	}
	if err := pw("bob", "right", addrA); !errors.Is(err, &Error{Reason: ReasonRateLimited}) {
		t.Fatalf("right password from A: %v, want rate limited", err)
	}
	start := time.Now()
	if err := pw("bob", "right", addrB); err != nil {
		t.Fatalf("right password from B: %v", err)
	}
	if d := time.Since(start); d >= f.Delay {
		t.Fatalf("right password from B took %v: delayed", d)
	}
	// The account's bucket is empty: a wrong password from B is answered
	// only after the delay, and still not refused.
	start = time.Now()
	if err := pw("bob", "wrong", addrB); !errors.Is(err, &Error{Reason: ReasonBadCredentials}) {
		t.Fatalf("wrong password from B: %v", err)
	}
	if d := time.Since(start); d < f.Delay {
		t.Fatalf("wrong password from B answered after %v, want at least %v", d, f.Delay)
	}
	// A's failures were all for bob, but they emptied A's own bucket
	// too: A is refused for others as well.
	if err := pw("carol", "right", addrA); !errors.Is(err, &Error{Reason: ReasonRateLimited}) {
		t.Fatalf("carol from A after A's failures: %v, want rate limited", err)
	}
	// A token is still checked from A, and a valid one logs in.
	if err := a.Authenticate(ctx, Attempt{Mechanism: "X-TOKEN", Host: "example.org", Username: "bob", Secret: tokenFor(t, "bob", clock.Now()), Remote: addrA}); err != nil {
		t.Fatalf("bob's valid token from A while A is limited: %v", err)
	}
	// A refills: a minute later the pair has a token again.
	clock.Add(time.Minute)
	if err := pw("bob", "right", addrA); err != nil {
		t.Fatalf("bob from A a minute later: %v", err)
	}
}

// TestFullTablesRefuseNoOne fills every failure table with 200,000
// failures for random names from random addresses (IPv4 and IPv6 /64s),
// then an untouched user's valid token and right password log in, from
// an untouched address and from one of the flood's (security review #4).
func TestFullTablesRefuseNoOne(t *testing.T) {
	f := defaultFailures
	f.Delay = 0 // the flood is not about the delay
	a, clock := limitedAuth(t, f)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	var first netip.Addr
	for i := 0; i < n; i++ {
		var from netip.Addr
		if i%2 == 0 {
			from = netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		} else {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			for j := 2; j < 8; j++ {
				b[j] = byte(rng.IntN(256))
			}
			from = netip.AddrFrom16(b)
		}
		if i == 0 {
			first = from
		}
		mech, secret := "PLAIN", "wrong"
		if i%10 == 0 {
			mech, secret = "X-TOKEN", "1234567812345678123456781234567812345678 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		}
		user := fmt.Sprintf("r%d", rng.Uint64())
		if err := a.Authenticate(ctx, Attempt{Mechanism: mech, Host: "example.org", Username: user, Secret: secret, Remote: from}); err == nil {
			t.Fatalf("random failure %d logged in", i)
		}
	}
	for name, k := range map[string]interface{ Len() int }{"address": a.byAddress, "pair": a.byPair, "account": a.byAccount} {
		if got := k.Len(); got > maxLimitKeys {
			t.Errorf("%s table holds %d keys, bound %d", name, got, maxLimitKeys)
		}
	}
	for _, from := range []netip.Addr{addrB, first} {
		tok := tokenFor(t, "carol", clock.Now())
		if err := a.Authenticate(ctx, Attempt{Mechanism: "X-TOKEN", Host: "example.org", Username: "carol", Secret: tok, Remote: from}); err != nil {
			t.Errorf("carol's token from %s after the flood: %v", from, err)
		}
		if err := a.Authenticate(ctx, Attempt{Mechanism: "PLAIN", Host: "example.org", Username: "carol", Secret: "right", Remote: from}); err != nil {
			t.Errorf("carol's password from %s after the flood: %v", from, err)
		}
	}
}

// TestDelayHonoursContext: a delayed answer ends when the login's context
// does (the connection closed or timed out).
func TestDelayHonoursContext(t *testing.T) {
	f := defaultFailures
	f.Delay = time.Hour
	f.Burst = 1
	a, _ := limitedAuth(t, f)
	try := func(ctx context.Context) error {
		return a.Authenticate(ctx, Attempt{Mechanism: "PLAIN", Host: "example.org", Username: "dave", Secret: "wrong"})
	}
	_ = try(context.Background()) // takes the one token
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := try(ctx); !errors.Is(err, &Error{Reason: ReasonBadCredentials}) {
		t.Fatalf("delayed failure: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("delay outlived the context: %v", d)
	}
}
