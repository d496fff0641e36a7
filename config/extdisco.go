package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ExternalService is one STUN or TURN server the hosts tell their users
// about, an [[external_service]] table (XEP-0215, external service
// discovery), so that clients can set up audio and video calls.
type ExternalService struct {
	// Type is "stun", "stuns", "turn" or "turns".
	Type string `toml:"type"`
	// Host is the server's host name or IP address.
	Host string `toml:"host"`
	// Port is the server's port, 1 to 65535. Default 3478 (stun, turn),
	// 5349 (stuns, turns).
	Port int `toml:"port"`
	// Transport is "udp", "tcp" or "" (not said).
	Transport string `toml:"transport"`
	// Secret is the TURN server's shared secret (coturn's
	// static-auth-secret with use-auth-secret): users are handed
	// time-limited credentials made with it. Only for turn and turns;
	// at least 16 characters. Empty: no credentials.
	Secret string `toml:"secret"`
	// Restricted hands the credentials out only on a credentials request
	// (XEP-0215 §3.3) instead of in the list of services. Needs a
	// Secret. Default false.
	Restricted bool `toml:"restricted"`
	// TTL is how long credentials stay valid, 1m to 720h. Default 24h.
	TTL Duration `toml:"ttl"`
	// Name is a human-readable name shown to users. Default "".
	Name string `toml:"name"`
}

// Defaults and bounds of the [[external_service]] settings.
const (
	DefaultExternalServiceTTL = 24 * time.Hour
	minExternalSecret         = 16
)

// applyExternalServiceDefaults fills the ports and TTLs the file left
// out (a zero port or TTL cannot be meant: both are refused otherwise).
func applyExternalServiceDefaults(svcs []ExternalService) {
	for i := range svcs {
		s := &svcs[i]
		if s.Port == 0 {
			s.Port = 3478
			if strings.HasSuffix(s.Type, "s") {
				s.Port = 5349
			}
		}
		if s.TTL.Duration == 0 {
			s.TTL = Duration{DefaultExternalServiceTTL}
		}
	}
}

// validateExternalServices checks every [[external_service]]; each error
// starts with "external_service[i].".
func validateExternalServices(svcs []ExternalService) []error {
	var errs []error
	for i, s := range svcs {
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("external_service[%d].%s", i, fmt.Sprintf(format, args...)))
		}
		turn := s.Type == "turn" || s.Type == "turns"
		if !turn && s.Type != "stun" && s.Type != "stuns" {
			add("type: %q is not one of stun, stuns, turn, turns", s.Type)
		}
		if s.Host == "" || len(s.Host) > 255 || strings.ContainsAny(s.Host, " \t\r\n/[]'\"<>&") {
			add("host: %q is not a host name or IP address", s.Host)
		}
		if s.Port < 1 || s.Port > 65535 {
			add("port: must be between 1 and 65535, got %d", s.Port)
		}
		if !slices.Contains([]string{"", "udp", "tcp"}, s.Transport) {
			add("transport: %q is not udp, tcp or empty", s.Transport)
		}
		switch {
		case s.Secret != "" && !turn:
			add("secret: only a turn or turns server takes credentials")
		case s.Secret != "" && len(s.Secret) < minExternalSecret:
			add("secret: must be at least %d characters", minExternalSecret)
		case s.Restricted && s.Secret == "":
			add("restricted: needs a secret to make the credentials with")
		}
		if d := s.TTL.Duration; d < time.Minute || d > 720*time.Hour {
			add("ttl: must be between 1m and 720h, got %v", d)
		}
		if strings.ContainsAny(s.Name, "\x00") || len(s.Name) > 1024 {
			add("name: at most 1024 characters, no NUL")
		}
	}
	return errs
}

// writeExternalServices writes the [[external_service]] tables for
// Summary, the secrets redacted.
func writeExternalServices(b *strings.Builder, svcs []ExternalService) {
	for _, s := range svcs {
		fmt.Fprintf(b, "[[external_service]]\ntype = %q\nhost = %q\nport = %d\ntransport = %q\nsecret = %s\nrestricted = %t\nttl = %q\nname = %q\n",
			s.Type, s.Host, s.Port, s.Transport, redact(s.Secret), s.Restricted, s.TTL.Duration.String(), s.Name)
	}
}
