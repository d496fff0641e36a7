package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ottr.im/ottr/internal/testclock"

	"ottr.im/ottr/storage/claimlog"
)

type vectorFile struct {
	OTPSeed      string `json:"otp_seed"`
	TokenSecret  string `json:"token_secret"`
	OTPDigits    int    `json:"otp_digits"`
	OTPInterval  int    `json:"otp_interval"`
	OTPDeviation int    `json:"otp_deviation"`
	Cases        []struct {
		Name       string `json:"name"`
		Username   string `json:"username"`
		Domain     string `json:"domain"`
		Token      string `json:"token"`
		VerifyUnix int64  `json:"verify_unix"`
		Valid      bool   `json:"valid"`
		Why        string `json:"why"`
	} `json:"cases"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "x-token.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("no vectors")
	}
	return v
}

func (v vectorFile) params() TokenParams {
	return TokenParams{
		OTPSeed:     v.OTPSeed,
		TokenSecret: v.TokenSecret,
		Digits:      v.OTPDigits,
		Interval:    time.Duration(v.OTPInterval) * time.Second,
		Deviation:   v.OTPDeviation,
	}
}

// caseParams returns the parameters a vector verifies with: the file's,
// with the nonce length of the vector's token when it is not the default
// 32 (two valid vectors use a short and an empty nonce, which
// mod_auth_token accepts; ottr does with nonce_digits = 0, for usernames
// that do not start with a digit).
func (v vectorFile) caseParams(token string) TokenParams {
	p := v.params()
	code, _, ok := cutCode(token)
	if ok && len(code) >= v.OTPDigits && len(code)-v.OTPDigits != DefaultNonceDigits {
		p.NonceDigits = AnyNonceLength
	}
	return p
}

// TestVectors runs every shared vector through the full SASL path the
// server uses (framing, nodeprep, verification) at the vector's clock, with
// a fresh replay cache per case, and checks the verdict.
func TestVectors(t *testing.T) {
	vf := loadVectors(t)
	valid := 0
	for _, tc := range vf.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			clock := testclock.New(time.Unix(tc.VerifyUnix, 0))
			a, err := New(Options{
				Hosts: map[string]TokenParams{
					"example.org": vf.caseParams(tc.Token),
					"example.com": vf.caseParams(tc.Token),
				},
				Now: clock.Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			authzid, user, secret, err := SplitPlain([]byte("\x00" + tc.Username + "\x00" + tc.Token))
			if err == nil {
				err = a.Authenticate(t.Context(), Attempt{Mechanism: "X-TOKEN", Host: tc.Domain, Authzid: authzid, Username: user, Secret: secret})
			}
			if got := err == nil; got != tc.Valid {
				t.Fatalf("valid = %v (err %v), want %v: %s", got, err, tc.Valid, tc.Why)
			}
			if err != nil {
				var ae *Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %v is not an *auth.Error", err)
				}
			}
		})
		if tc.Valid {
			valid++
		}
	}
	if valid == 0 || valid == len(vf.Cases) {
		t.Fatalf("vectors should mix valid (%d) and invalid cases (%d total)", valid, len(vf.Cases))
	}
}

// TestVectorReasons pins why each invalid vector fails.
func TestVectorReasons(t *testing.T) {
	vf := loadVectors(t)
	want := map[string]Reason{
		"two-windows-late":   ReasonExpired,
		"hours-late":         ReasonExpired,
		"wrong-jid":          ReasonBadMAC,
		"wrong-domain":       ReasonBadMAC,
		"wrong-secret":       ReasonBadMAC,
		"wrong-seed":         ReasonExpired,
		"tampered-nonce":     ReasonBadMAC,
		"tampered-signature": ReasonBadMAC,
		"no-space":           ReasonMalformed,
		"non-digit-otp":      ReasonMalformed,
		"bad-base64":         ReasonMalformed,
		"empty":              ReasonMalformed,
		"seven-digits":       ReasonMalformed,
	}
	seen := 0
	for _, tc := range vf.Cases {
		r, ok := want[tc.Name]
		if !ok {
			continue
		}
		seen++
		v, err := NewVerifier(vf.caseParams(tc.Token), NewMemoryReplayCache(64), func() time.Time { return time.Unix(tc.VerifyUnix, 0) })
		if err != nil {
			t.Fatal(err)
		}
		user, _ := Nodeprep(tc.Username)
		err = v.Verify(user, tc.Domain, tc.Token)
		if !errors.Is(err, &Error{Reason: r}) {
			t.Errorf("%s: err = %v, want reason %q", tc.Name, err, r)
		}
	}
	if seen != len(want) {
		t.Fatalf("matched %d of %d named vectors", seen, len(want))
	}
}

// TestReplay checks that every valid vector verifies once, then fails as a
// replay in the same window and the next one, also after other tokens for
// the same JID were accepted in between.
func TestReplay(t *testing.T) {
	vf := loadVectors(t)
	for _, tc := range vf.Cases {
		if !tc.Valid {
			continue
		}
		p := vf.caseParams(tc.Token)
		t.Run(tc.Name, func(t *testing.T) {
			clock := testclock.New(time.Unix(tc.VerifyUnix, 0))
			v, err := NewVerifier(p, NewMemoryReplayCache(1024), clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			user, _ := Nodeprep(tc.Username)
			jid := user + "@" + tc.Domain
			if err := v.Verify(user, tc.Domain, tc.Token); err != nil {
				t.Fatalf("first use: %v", err)
			}
			if err := v.Verify(user, tc.Domain, tc.Token); !errors.Is(err, &Error{Reason: ReasonReplay}) {
				t.Fatalf("second use in the same window: %v, want replay", err)
			}
			// Newer tokens for the same JID are accepted in between.
			for i := 0; i < 3; i++ {
				tok, err := Mint(p, jid, clock.Now(), NewNonce(32))
				if err != nil {
					t.Fatal(err)
				}
				if err := v.Verify(user, tc.Domain, tok); err != nil {
					t.Fatalf("fresh token %d: %v", i, err)
				}
			}
			// Every later moment at which the OTP still verifies, it is
			// refused as a replay; after that, as expired.
			for step := 1; step <= 4; step++ {
				clock.Add(10 * time.Second)
				err := v.Verify(user, tc.Domain, tc.Token)
				if err == nil {
					t.Fatalf("+%ds: replay accepted", step*10)
				}
				if !errors.Is(err, &Error{Reason: ReasonReplay}) && !errors.Is(err, &Error{Reason: ReasonExpired}) {
					t.Fatalf("+%ds: %v", step*10, err)
				}
			}
		})
	}
}

// TestReplayUntilExpiry walks the clock over every second of a token's
// life and checks it never verifies twice, and that the cache is empty once
// the token expired.
func TestReplayUntilExpiry(t *testing.T) {
	vf := loadVectors(t)
	p := vf.params()
	start := time.Unix(1764387000, 0) // the start of a window
	for offset := 0; offset < 30; offset += 7 {
		clock := testclock.New(start.Add(time.Duration(offset) * time.Second))
		cache := NewMemoryReplayCache(1024)
		v, _ := NewVerifier(p, cache, clock.Now)
		tok, err := Mint(p, "alice@example.org", clock.Now(), NewNonce(32))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify("alice", "example.org", tok); err != nil {
			t.Fatalf("offset %d: %v", offset, err)
		}
		lastReplay := time.Time{}
		for s := 0; s < 120; s++ {
			clock.Add(time.Second)
			err := v.Verify("alice", "example.org", tok)
			switch {
			case err == nil:
				t.Fatalf("offset %d: accepted again %ds later", offset, s+1)
			case errors.Is(err, &Error{Reason: ReasonReplay}):
				lastReplay = clock.Now()
			case !errors.Is(err, &Error{Reason: ReasonExpired}):
				t.Fatalf("offset %d: %v", offset, err)
			}
		}
		// Minted in window w, it verifies until the end of window w+1.
		wantLast := start.Add(2*30*time.Second - time.Second)
		if !lastReplay.Equal(wantLast) {
			t.Errorf("offset %d: last refused as replay at %v, want %v", offset, lastReplay.Unix(), wantLast.Unix())
		}
		if n := cache.Len(clock.Now()); n != 0 {
			t.Errorf("offset %d: %d entries left after expiry", offset, n)
		}
	}
}

func TestReplayCacheFullFailsClosed(t *testing.T) {
	vf := loadVectors(t)
	p := vf.params()
	now := time.Unix(1764387007, 0)
	cache := NewMemoryReplayCache(replayShards) // one entry per shard
	v, _ := NewVerifier(p, cache, func() time.Time { return now })
	var full int
	for i := 0; i < 200; i++ {
		tok, _ := Mint(p, "alice@example.org", now, NewNonce(32))
		err := v.Verify("alice", "example.org", tok)
		if errors.Is(err, &Error{Reason: ReasonUnavailable}) {
			full++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Fatal("cache never reported full")
	}
	if n := cache.Len(now); n > replayShards {
		t.Fatalf("cache holds %d entries, bound is %d", n, replayShards)
	}
}

func TestMintMatchesVector(t *testing.T) {
	vf := loadVectors(t)
	for _, tc := range vf.Cases {
		if tc.Name != "fresh" {
			continue
		}
		code, _, _ := cutCode(tc.Token)
		nonce := code[vf.OTPDigits:]
		got, err := Mint(vf.params(), tc.Username+"@"+tc.Domain, time.Unix(tc.VerifyUnix, 0), nonce)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.Token {
			t.Fatalf("Mint = %q, want %q", got, tc.Token)
		}
		return
	}
	t.Fatal("no fresh vector")
}

func cutCode(tok string) (string, string, bool) {
	for i := 0; i < len(tok); i++ {
		if tok[i] == ' ' {
			return tok[:i], tok[i+1:], true
		}
	}
	return tok, "", false
}

func TestSASLConditions(t *testing.T) {
	for _, tc := range []struct {
		r    Reason
		want string
	}{
		{ReasonMalformed, "malformed-request"},
		{ReasonExpired, "not-authorized"},
		{ReasonBadMAC, "not-authorized"},
		{ReasonReplay, "not-authorized"},
		{ReasonBadCredentials, "not-authorized"},
		{ReasonNoTokens, "not-authorized"},
		{ReasonAuthz, "invalid-authzid"},
		{ReasonRateLimited, "temporary-auth-failure"},
		{ReasonUnavailable, "temporary-auth-failure"},
	} {
		if got := (&Error{Reason: tc.r}).SASLCondition(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.r, got, tc.want)
		}
	}
}

func TestRandomBase32(t *testing.T) {
	s := RandomBase32(16)
	if len(s) != 16 {
		t.Fatal(len(s))
	}
	if _, err := DecodeSeed(s); err != nil {
		t.Fatal(err)
	}
	if RandomBase32(32) == RandomBase32(32) {
		t.Fatal("not random")
	}
}

func BenchmarkVerify(b *testing.B) {
	vf := loadVectors(b)
	p := vf.params()
	now := time.Unix(1764387007, 0)
	v, _ := NewVerifier(p, NewMemoryReplayCache(1<<22), func() time.Time { return now })
	toks := make([]string, 4096)
	for i := range toks {
		toks[i], _ = Mint(p, "alice@example.org", now, fmt.Sprintf("%032d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Most iterations are replays after the first round; the work is the
		// same (OTP windows, MAC, cache lookup).
		_ = v.Verify("alice", "example.org", toks[i%len(toks)])
	}
}

func BenchmarkReplayCacheParallel(b *testing.B) {
	c := NewMemoryReplayCache(1 << 24)
	now := time.Unix(1764387007, 0)
	exp := now.Add(time.Minute)
	var seq uint64
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		base := seq
		seq += 1 << 32
		mu.Unlock()
		var k ReplayKey
		for i := base; pb.Next(); i++ {
			for j := 0; j < 8; j++ {
				k[j] = byte(i >> (8 * j))
			}
			_, _ = c.Claim(context.Background(), k, exp, now)
		}
	})
}

// durableVerifier returns a verifier whose claims go to a claim log in a
// temporary directory, and b.N distinct tokens valid at its clock.
func durableVerifier(b *testing.B) (*Verifier, []string) {
	vf := loadVectors(b)
	p := vf.params()
	now := time.Unix(1764387007, 0)
	store, err := claimlog.Open(filepath.Join(b.TempDir(), claimlog.FileName), now, 1<<22)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	v, err := NewVerifier(p, NewDurableReplayCache(NewMemoryReplayCache(1<<22), store), func() time.Time { return now })
	if err != nil {
		b.Fatal(err)
	}
	toks := make([]string, b.N)
	for i := range toks {
		toks[i], _ = Mint(p, "alice@example.org", now, fmt.Sprintf("%032d", i))
	}
	return v, toks
}

// BenchmarkVerifyDurable is BenchmarkVerify with the claims also stored
// in a claim log (security review #8): every token is fresh, so each one
// costs one record appended, one after the other.
func BenchmarkVerifyDurable(b *testing.B) {
	v, toks := durableVerifier(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Verify("alice", "example.org", toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDurableParallel verifies fresh tokens from many
// goroutines with the claims in one claim log, as the server does.
func BenchmarkVerifyDurableParallel(b *testing.B) {
	v, toks := durableVerifier(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := v.Verify("alice", "example.org", toks[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
