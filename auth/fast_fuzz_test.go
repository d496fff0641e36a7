package auth

import (
	"crypto/sha256"
	"testing"
)

// FuzzHTMessage feeds arbitrary initial responses to the HT mechanisms'
// parser: it never panics, and what it accepts has a prepared, non-empty
// username and a 32-byte HMAC.
func FuzzHTMessage(f *testing.F) {
	f.Add([]byte("alice\x00" + string(make([]byte, 32))))
	f.Add([]byte("Alice\x00short"))
	f.Add([]byte("\x00"))
	f.Add([]byte("a\x00b\x00" + string(make([]byte, 30))))
	f.Fuzz(func(t *testing.T, msg []byte) {
		user, sum, err := splitHT(msg)
		if err != nil {
			return
		}
		if len(sum) != sha256.Size || user == "" {
			t.Fatalf("accepted %q: user %q, %d-byte HMAC", msg, user, len(sum))
		}
		if again, err := Nodeprep(user); err != nil || again != user {
			t.Fatalf("username %q not prepared (%q, %v)", user, again, err)
		}
	})
}
