package randid

import (
	"encoding/hex"
	"testing"
)

func TestNew(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := New()
		if len(id) != Len {
			t.Fatalf("New() = %q: %d characters, want %d", id, len(id), Len)
		}
		if _, err := hex.DecodeString(id); err != nil {
			t.Fatalf("New() = %q: not hex: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q within 1000 calls", id)
		}
		seen[id] = true
	}
}
