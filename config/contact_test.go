package config

import (
	"strings"
	"testing"
)

func TestContact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		contact Contact
		wantErr string // "" for valid
	}{
		{"none", Contact{}, ""},
		{"mailto and xmpp", Contact{Abuse: []string{"mailto:abuse@example.org", "xmpp:abuse@example.org"}}, ""},
		{"https", Contact{Support: []string{"https://example.org/help"}}, ""},
		{"no scheme", Contact{Admin: []string{"admin@example.org"}}, "contact.admin"},
		{"scheme only", Contact{Security: []string{"mailto:"}}, "contact.security"},
		{"not a URI", Contact{Status: []string{"%zz:x"}}, "contact.status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Contact = tc.contact
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate: %v, want an error about %s", err, tc.wantErr)
			}
		})
	}
	got := Contact{Abuse: []string{"a:b"}, Sales: []string{"c:d"}}.Addresses()
	if len(got) != 2 || got["abuse"][0] != "a:b" || got["sales"][0] != "c:d" {
		t.Errorf("Addresses() = %v", got)
	}
}
