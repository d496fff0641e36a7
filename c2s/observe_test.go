package c2s

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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

// FuzzClientName: whatever a client names itself, the operator is shown
// valid UTF-8 without control characters, within the bound.
func FuzzClientName(f *testing.F) {
	f.Add("Conversations", "Pixel 8")
	f.Add("bad\x00\n", "\xff\xfe")
	f.Add(strings.Repeat("é", 100), strings.Repeat("\u200b", 40))
	f.Fuzz(func(t *testing.T, software, device string) {
		got := clientName(software, device)
		if !utf8.ValidString(got) {
			t.Fatalf("clientName(%q, %q) = %q: not UTF-8", software, device, got)
		}
		if len(got) > 2*maxClientName+3 {
			t.Fatalf("clientName(%q, %q): %d bytes", software, device, len(got))
		}
		for _, r := range got {
			if unicode.IsControl(r) {
				t.Fatalf("clientName(%q, %q) = %q: a control character", software, device, got)
			}
		}
	})
}
