package auth

import (
	"testing"
	"time"
)

// FuzzXTokenPayload feeds arbitrary SASL payloads through the server-side
// path (framing, nodeprep, token parsing, verification). It must never
// panic, and nothing random may log in.
func FuzzXTokenPayload(f *testing.F) {
	vf := loadVectors(f)
	for _, tc := range vf.Cases {
		f.Add([]byte("\x00" + tc.Username + "\x00" + tc.Token))
	}
	f.Add([]byte("alice@example.org\x00alice\x00"))
	f.Add([]byte("\x00\x00\x00"))
	now := time.Unix(1764387007, 0)
	v, err := NewVerifier(vf.params(), NewMemoryReplayCache(1<<16), func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, user, secret, err := SplitPlain(payload)
		if err != nil {
			return
		}
		tok, perr := ParseToken(secret, vf.OTPDigits)
		verr := v.Verify(user, "example.org", secret)
		if perr != nil && verr == nil {
			t.Fatalf("unparseable token %q verified", secret)
		}
		if perr == nil && len(tok.OTP) != vf.OTPDigits {
			t.Fatalf("OTP %q has %d digits", tok.OTP, len(tok.OTP))
		}
	})
}

// FuzzParseToken checks the token parser alone: no panic, and every token
// it accepts re-assembles from its parts.
func FuzzParseToken(f *testing.F) {
	vf := loadVectors(f)
	for _, tc := range vf.Cases {
		f.Add(tc.Token)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s, 8)
		if err != nil {
			return
		}
		if len(tok.OTP) != 8 || len(tok.MAC) != macLen {
			t.Fatalf("%q parsed to %+v", s, tok)
		}
		code, _, _ := cutCode(s)
		if tok.OTP+tok.Nonce != code {
			t.Fatalf("%q: code %q != %q+%q", s, code, tok.OTP, tok.Nonce)
		}
	})
}
