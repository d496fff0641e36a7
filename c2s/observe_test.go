package c2s

import (
	"strings"
	"testing"
)

// What the operator is shown of a client's self-description is short and
// printable whatever the client sent.
func TestClientName(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, tc := range []struct{ software, device, want string }{
		{"Conversations", "Pixel 8", "Conversations (Pixel 8)"},
		{"Dino", "", "Dino"},
		{"", "phone", "(phone)"},
		{"", "  ", ""},
		{"bad\x00\nname", "dev\x1b[31m", "badname (dev[31m)"},
		{long, "", strings.Repeat("é", 32)},
	} {
		got := clientName(tc.software, tc.device)
		if got != tc.want {
			t.Errorf("clientName(%q, %q) = %q, want %q", tc.software, tc.device, got, tc.want)
		}
		if len(got) > 2*maxClientName+3 {
			t.Errorf("clientName(%q, %q): %d bytes", tc.software, tc.device, len(got))
		}
	}
}
