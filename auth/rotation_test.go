package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Secret rotation: until PreviousUntil a token minted with the old or the
// new pair verifies, each once; from then on only the new pair.
func TestVerifierRotation(t *testing.T) {
	oldP := TokenParams{OTPSeed: "XVGR73KMZH2M4XMY", TokenSecret: "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"}
	newP := TokenParams{OTPSeed: "MFRGGZDFMZTWQ2LK", TokenSecret: "NBSWY3DPEB3W64TMMQQQ6YTUMRSXG4ZA"}
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := until.Add(-time.Hour)
	clock := func() time.Time { return now }
	rotated := newP
	rotated.PreviousOTPSeed, rotated.PreviousTokenSecret, rotated.PreviousUntil = oldP.OTPSeed, oldP.TokenSecret, until
	v, err := NewVerifier(rotated, NewMemoryReplayCache(1024), clock)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(p TokenParams) string {
		t.Helper()
		tok, err := Mint(p, "alice@example.org", now, NewNonce(DefaultNonceDigits))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name string
		p    TokenParams
	}{{"old pair", oldP}, {"new pair", newP}} {
		tok := mint(tc.p)
		if err := v.Verify("alice", "example.org", tok); err != nil {
			t.Errorf("%s before previous_until: %v", tc.name, err)
		}
		if err := v.Verify("alice", "example.org", tok); !errors.Is(err, &Error{Reason: ReasonReplay}) {
			t.Errorf("%s replayed: %v, want replay", tc.name, err)
		}
	}
	// A token for another user fails with the old pair's MAC as with the
	// new one's.
	forged := mint(oldP)
	if err := v.Verify("bob", "example.org", forged); !errors.Is(err, &Error{Reason: ReasonBadMAC}) {
		t.Errorf("old pair, other user: %v, want bad MAC", err)
	}

	now = until // previous_until is the first instant it is refused
	if err := v.Verify("alice", "example.org", mint(oldP)); !errors.Is(err, &Error{Reason: ReasonExpired}) {
		t.Errorf("old pair at previous_until: %v, want expired (its OTP no longer matches)", err)
	}
	if err := v.Verify("alice", "example.org", mint(newP)); err != nil {
		t.Errorf("new pair at previous_until: %v", err)
	}
}

// SetTokens swaps a host's secrets while the verifier is in use; a bad
// params set changes nothing, and an unknown host is refused.
func TestSetTokens(t *testing.T) {
	oldP := TokenParams{OTPSeed: "XVGR73KMZH2M4XMY", TokenSecret: "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"}
	newP := TokenParams{OTPSeed: "MFRGGZDFMZTWQ2LK", TokenSecret: "NBSWY3DPEB3W64TMMQQQ6YTUMRSXG4ZA"}
	now := time.Now()
	a, err := New(Options{Hosts: map[string]TokenParams{"example.org": oldP, "plain.example": {}}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	login := func(host string, p TokenParams) error {
		tok, err := Mint(p, "alice@"+host, now, NewNonce(DefaultNonceDigits))
		if err != nil {
			t.Fatal(err)
		}
		return a.Authenticate(context.Background(), Attempt{Mechanism: XToken.Name, Host: host, Username: "alice", Secret: tok})
	}
	if err := login("example.org", oldP); err != nil {
		t.Fatalf("before: %v", err)
	}
	if err := login("plain.example", oldP); !errors.Is(err, &Error{Reason: ReasonNoTokens}) {
		t.Fatalf("host without secrets: %v, want tokens disabled", err)
	}
	bad := map[string]TokenParams{"example.org": newP, "plain.example": {OTPSeed: "!!", TokenSecret: "x"}}
	if err := a.SetTokens(bad); err == nil {
		t.Fatal("SetTokens took a bad seed")
	}
	if err := login("example.org", oldP); err != nil {
		t.Fatalf("after a refused SetTokens, the old pair: %v", err)
	}
	if err := a.SetTokens(map[string]TokenParams{"other.example": newP}); err == nil {
		t.Fatal("SetTokens took a host not served")
	}
	if err := a.SetTokens(map[string]TokenParams{"example.org": newP, "plain.example": newP}); err != nil {
		t.Fatal(err)
	}
	if err := login("example.org", oldP); !errors.Is(err, &Error{Reason: ReasonExpired}) {
		t.Errorf("old pair after SetTokens: %v, want expired", err)
	}
	for _, h := range []string{"example.org", "plain.example"} {
		if err := login(h, newP); err != nil {
			t.Errorf("%s, new pair after SetTokens: %v", h, err)
		}
	}
}
