package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The rotation keys of [[host]] and [admin] listen: parsed from TOML
// (previous_until a date-time), and each mistake reported with its key.
func TestRotationAndAdminKeys(t *testing.T) {
	const base = `
[c2s]
listen = ["127.0.0.1:5222"]
[[host]]
name = "example.org"
otp_seed = "XVGR73KMZH2M4XMY"
token_secret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
`
	for _, tc := range []struct {
		name, host, extra string
		wantErr           []string // empty: valid
	}{
		{"rotation", "previous_otp_seed = \"MFRGGZDFMZTWQ2LK\"\nprevious_token_secret = \"NBSWY3DPEB3W64TMMQQQ6YTUMRSXG4ZA\"\nprevious_until = 2026-12-01T00:00:00Z\n", "[admin]\nlisten = \"127.0.0.1:5290\"\n", nil},
		{"no until", "previous_otp_seed = \"MFRGGZDFMZTWQ2LK\"\nprevious_token_secret = \"NBSWY3DPEB3W64TMMQQQ6YTUMRSXG4ZA\"\n", "", []string{"host[0].previous_until: required"}},
		{"half a pair", "previous_otp_seed = \"MFRGGZDFMZTWQ2LK\"\nprevious_until = 2026-12-01T00:00:00Z\n", "", []string{"host[0].previous_token_secret: required"}},
		{"bad seed, short secret", "previous_otp_seed = \"!!\"\nprevious_token_secret = \"short\"\nprevious_until = 2026-12-01T00:00:00Z\n", "", []string{"host[0].previous_otp_seed", "host[0].previous_token_secret: too short"}},
		{"until alone", "previous_until = 2026-12-01T00:00:00Z\n", "", []string{"host[0].previous_until: set without"}},
		{"admin on a c2s address", "", "[admin]\nlisten = \"127.0.0.1:5222\"\n", []string{"admin.listen[0]: address \"127.0.0.1:5222\" is already listed as c2s.listen[0]"}},
		{"admin not host:port", "", "[admin]\nlisten = \"5290\"\n", []string{"admin.listen[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(base+tc.host+tc.extra), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				h := c.Hosts[0]
				if want := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC); !h.PreviousUntil.Equal(want) || !h.PreviousActive(want.Add(-time.Second)) || h.PreviousActive(want) {
					t.Errorf("previous_until %v, want %v, active only before it", h.PreviousUntil, want)
				}
				if !c.Admin.OnLoopback() || !strings.Contains(c.Summary(), "previous_otp_seed = <set>") {
					t.Errorf("admin %+v, summary:\n%s", c.Admin, c.Summary())
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	for addr, want := range map[string]bool{"127.0.0.1:5290": true, "[::1]:5290": true, "localhost:5290": true, "0.0.0.0:5290": false, ":5290": false} {
		if got := (Admin{Listen: addr}).OnLoopback(); got != want {
			t.Errorf("OnLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
