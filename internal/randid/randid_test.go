package randid

import (
	"encoding/hex"
	"testing"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() string
		n    int
	}{{"New", New, Len}, {"Token", Token, TokenLen}} {
		seen := make(map[string]bool)
		for range 1000 {
			id := tc.f()
			if len(id) != tc.n {
				t.Fatalf("%s() = %q: %d characters, want %d", tc.name, id, len(id), tc.n)
			}
			if _, err := hex.DecodeString(id); err != nil {
				t.Fatalf("%s() = %q: not hex: %v", tc.name, id, err)
			}
			if seen[id] {
				t.Fatalf("%s() repeated %q within 1000 calls", tc.name, id)
			}
			seen[id] = true
		}
	}
}
