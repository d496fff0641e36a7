package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadString writes data to a file and loads it.
func loadString(t *testing.T, data string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func TestProxy65AndExternalServices(t *testing.T) {
	c, err := loadString(t, `
[[host]]
name = "example.com"
[[host]]
name = "example.org"
proxy65 = ""
[[host]]
name = "example.net"
proxy65 = "files.example.net"
[proxy65]
listen = "127.0.0.1:7777"
[[external_service]]
type = "stun"
host = "stun.example.com"
[[external_service]]
type = "turns"
host = "turn.example.com"
transport = "tcp"
secret = "0123456789abcdef"
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{c.Hosts[0].Proxy65Domain(), c.Hosts[1].Proxy65Domain(), c.Hosts[2].Proxy65Domain()}; strings.Join(got, ",") != "proxy.example.com,,files.example.net" {
		t.Errorf("proxy65 domains = %q", got)
	}
	if p := c.Proxy65; !p.Enabled() || p.TransferBandwidth != DefaultProxy65TransferBandwidth || p.PendingTimeout.Duration != DefaultProxy65PendingTimeout {
		t.Errorf("proxy65 = %+v: defaults not applied", p)
	}
	if s := c.ExternalServices; len(s) != 2 || s[0].Port != 3478 || s[1].Port != 5349 || s[1].TTL.Duration != 24*time.Hour {
		t.Errorf("external services = %+v: defaults not applied", s)
	}
	if sum := c.Summary(); strings.Contains(sum, "0123456789abcdef") || !strings.Contains(sum, "serves proxy.example.com, files.example.net") {
		t.Errorf("Summary:\n%s", sum)
	}
	if d := Default(); d.Proxy65.Enabled() || d.Hosts[0].Proxy65Domain() != "proxy.localhost" {
		t.Errorf("default proxy65 enabled=%t domain %q", d.Proxy65.Enabled(), d.Hosts[0].Proxy65Domain())
	}
}

func TestProxy65AndExternalServicesInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"every interface without public_host", "[proxy65]\nlisten = \"0.0.0.0:7777\"\n", "proxy65.public_host"},
		{"empty host", "[proxy65]\nlisten = \":7777\"\n", "proxy65.public_host"},
		{"listen not host:port", "[proxy65]\nlisten = \"7777\"\n", "proxy65.listen"},
		{"listen twice", "[c2s]\nlisten = [\"127.0.0.1:7777\"]\n[proxy65]\nlisten = \"127.0.0.1:7777\"\n", "proxy65.listen"},
		{"total below transfer", "[proxy65]\ntransfer_bandwidth = 2048\ntotal_bandwidth = 1024\n", "proxy65.total_bandwidth"},
		{"zero transfers", "[proxy65]\nmax_transfers = 0\n", "proxy65.max_transfers"},
		{"zero per user", "[proxy65]\ntransfers_per_user = 0\n", "proxy65.transfers_per_user"},
		{"one pending", "[proxy65]\nmax_pending = 1\n", "proxy65.max_pending"},
		{"one per address", "[proxy65]\nconnections_per_address = 1\n", "proxy65.connections_per_address"},
		{"no pending timeout", "[proxy65]\npending_timeout = \"0s\"\n", "proxy65.pending_timeout"},
		{"port too high", "[proxy65]\npublic_port = 70000\n", "proxy65.public_port"},
		{"proxy is a host", "[[host]]\nname = \"a.example\"\nproxy65 = \"b.example\"\n[[host]]\nname = \"b.example\"\n", "host[0].proxy65"},
		{"proxy not a domain", "[[host]]\nname = \"a.example\"\nproxy65 = \"x@y\"\n", "host[0].proxy65"},
		{"unknown type", "[[external_service]]\ntype = \"http\"\nhost = \"h\"\n", "external_service[0].type"},
		{"no host", "[[external_service]]\ntype = \"stun\"\n", "external_service[0].host"},
		{"secret for stun", "[[external_service]]\ntype = \"stun\"\nhost = \"h\"\nsecret = \"0123456789abcdef\"\n", "external_service[0].secret"},
		{"short secret", "[[external_service]]\ntype = \"turn\"\nhost = \"h\"\nsecret = \"short\"\n", "external_service[0].secret"},
		{"restricted without secret", "[[external_service]]\ntype = \"turn\"\nhost = \"h\"\nrestricted = true\n", "external_service[0].restricted"},
		{"bad transport", "[[external_service]]\ntype = \"turn\"\nhost = \"h\"\ntransport = \"sctp\"\n", "external_service[0].transport"},
		{"ttl too short", "[[external_service]]\ntype = \"turn\"\nhost = \"h\"\nttl = \"10s\"\n", "external_service[0].ttl"},
		{"unknown key", "[[external_service]]\ntype = \"turn\"\nhost = \"h\"\nusername = \"u\"\n", "username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadString(t, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
