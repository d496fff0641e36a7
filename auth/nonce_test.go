package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// shifted moves the first k digits of user into the end of tok's nonce:
// the MAC's input OTP+NONCE+user@host is unchanged, so the token's MAC
// also fits user[k:] (security review #2).
func shifted(tok, user string, k int) string {
	code, mac, _ := strings.Cut(tok, " ")
	return code + user[:k] + " " + mac
}

// TestNonceDigitsPinTheSplit: with a fixed nonce length (the default, 32),
// a token for 12345 cannot log in 2345 or 45 by moving digits from the
// username into the nonce; the token still logs in 12345.
func TestNonceDigitsPinTheSplit(t *testing.T) {
	vf := loadVectors(t)
	now := time.Unix(1764387007, 0)
	for _, nd := range []int{0, 2, 32} {
		p := vf.params()
		p.NonceDigits = nd
		v, err := NewVerifier(p, NewMemoryReplayCache(64), func() time.Time { return now })
		if err != nil {
			t.Fatal(err)
		}
		want := nd
		if want == 0 {
			want = DefaultNonceDigits
		}
		tok, err := Mint(p, "12345@example.org", now, strings.Repeat("7", want))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []int{1, 3} {
			err := v.Verify("12345"[k:], "example.org", shifted(tok, "12345", k))
			if !errors.Is(err, &Error{Reason: ReasonNonceLength}) {
				t.Errorf("nonce_digits %d: token for 12345 as %s: %v, want nonce length", nd, "12345"[k:], err)
			}
			if (&Error{Reason: ReasonNonceLength}).SASLCondition() != "not-authorized" {
				t.Error("a wrong nonce length is not not-authorized")
			}
		}
		if err := v.Verify("12345", "example.org", tok); err != nil {
			t.Errorf("nonce_digits %d: token for 12345: %v", nd, err)
		}
		// Mint follows the setting.
		if _, err := Mint(p, "alice@example.org", now, strings.Repeat("7", want+1)); err == nil {
			t.Errorf("nonce_digits %d: minted a %d-digit nonce", nd, want+1)
		}
	}
}

// TestAnyNonceLengthRefusesNumericUsers: with nonces of any length
// (nonce_digits = 0 in the config), usernames that start with a digit
// cannot log in with a token, nor get one minted; others can, with any
// nonce length. This is the review's exact attack: a token for 12345 with
// nonce 77, presented as 2345 and 45 (security review #2).
func TestAnyNonceLengthRefusesNumericUsers(t *testing.T) {
	vf := loadVectors(t)
	now := time.Unix(1764387007, 0)
	p := vf.params()
	p.NonceDigits = AnyNonceLength
	v, err := NewVerifier(p, NewMemoryReplayCache(64), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	// The attacker holds a token for 12345 with nonce 77, minted where 2
	// digits are the rule.
	fixed := vf.params()
	fixed.NonceDigits = 2
	tok, err := Mint(fixed, "12345@example.org", now, "77")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user string
		tok  string
	}{
		{"12345", tok},
		{"2345", shifted(tok, "12345", 1)},
		{"45", shifted(tok, "12345", 3)},
	} {
		if err := v.Verify(tc.user, "example.org", tc.tok); !errors.Is(err, &Error{Reason: ReasonNumericUser}) {
			t.Errorf("%s: %v, want numeric user", tc.user, err)
		}
	}
	if _, err := Mint(p, "12345@example.org", now, "77"); err == nil {
		t.Error("minted a token for a numeric username with any nonce length")
	}
	for _, nonce := range []string{"", "7", "77", NewNonce(32), NewNonce(40)} {
		tok, err := Mint(p, "a1@example.org", now, nonce)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify("a1", "example.org", tok); err != nil {
			t.Errorf("a1 with a %d-digit nonce: %v", len(nonce), err)
		}
	}
}

// TestShortNonceVectorsNeedAnyLength: the vectors with a short and an
// empty nonce verify only with any nonce length, not with the default.
func TestShortNonceVectorsNeedAnyLength(t *testing.T) {
	vf := loadVectors(t)
	seen := 0
	for _, tc := range vf.Cases {
		if tc.Name != "short-nonce" && tc.Name != "empty-nonce" {
			continue
		}
		seen++
		v, err := NewVerifier(vf.params(), NewMemoryReplayCache(64), func() time.Time { return time.Unix(tc.VerifyUnix, 0) })
		if err != nil {
			t.Fatal(err)
		}
		user, _ := Nodeprep(tc.Username)
		if err := v.Verify(user, tc.Domain, tc.Token); !errors.Is(err, &Error{Reason: ReasonNonceLength}) {
			t.Errorf("%s with the default nonce_digits: %v, want nonce length", tc.Name, err)
		}
	}
	if seen != 2 {
		t.Fatalf("found %d of the 2 short-nonce vectors", seen)
	}
}

func TestNonceDigitsRange(t *testing.T) {
	vf := loadVectors(t)
	for _, nd := range []int{-2, MaxNonceDigits + 1} {
		p := vf.params()
		p.NonceDigits = nd
		if _, err := NewVerifier(p, NewMemoryReplayCache(1), nil); err == nil {
			t.Errorf("nonce_digits %d accepted", nd)
		}
	}
}
