package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMUCDomain: every host has conference.<host> unless its muc key
// names another domain or is "" (off); a domain that is not one, a served
// host, another host's service or a component's domain is refused.
func TestMUCDomain(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []string // each host's MUC domain
		err        string
	}{
		{"default", `[[host]]
name = "Example.com"
`, []string{"conference.example.com"}, ""},
		{"renamed and off", `[[host]]
name = "a.example"
muc = "chat.a.example"
[[host]]
name = "b.example"
muc = ""
`, []string{"chat.a.example", ""}, ""},
		{"not a domain", `[[host]]
name = "a.example"
muc = "not a domain"
`, nil, "host[0].muc:"},
		{"a served host", `[[host]]
name = "a.example"
muc = "b.example"
[[host]]
name = "b.example"
`, nil, `host[0].muc: "b.example" is a served host`},
		{"twice", `[[host]]
name = "a.example"
muc = "chat.example"
[[host]]
name = "b.example"
muc = "chat.example"
`, nil, `host[1].muc: "chat.example" is already host[0]'s`},
		{"a component's", `[[host]]
name = "a.example"
[components]
listen = ["127.0.0.1:0"]
[[components.service]]
name = "conference.a.example"
secret = "a-long-random-secret"
`, nil, "host[0].muc: \"conference.a.example\" is a component's domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Load = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for i, h := range c.Hosts {
				if got := h.MUCDomain(); got != tc.want[i] {
					t.Errorf("host[%d].MUCDomain() = %q, want %q", i, got, tc.want[i])
				}
			}
			if !strings.Contains(c.Summary(), "muc = \""+tc.want[0]+"\"") {
				t.Errorf("Summary() does not show muc = %q:\n%s", tc.want[0], c.Summary())
			}
		})
	}
}
