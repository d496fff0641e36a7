package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"time"
)

// Admin holds the operator's HTTP endpoint, the [admin] table: Prometheus
// metrics at /metrics, /healthz and /readyz. Off unless Listen is set.
// (The admin commands of "ottr ctl" need no setting: they go over a Unix
// socket in data_dir.)
type Admin struct {
	// Listen is the host:port of the admin HTTP endpoint, such as
	// "127.0.0.1:5290"; plain HTTP without authentication, so keep it on
	// loopback or a private network. Default "": off.
	Listen string `toml:"listen"`
}

// AdminSocketFile is the name of the admin socket inside data_dir.
const AdminSocketFile = "ottr.sock"

// OnLoopback reports whether the admin endpoint listens on a loopback
// address only (the server warns when it does not).
func (a Admin) OnLoopback() bool {
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// validateRotation checks a host's previous token pair (secret rotation):
// both or neither, well formed, with previous_until, and only beside a
// current pair. p is the host's key prefix ("host[0].").
func (h Host) validateRotation(p string) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	switch {
	case h.PreviousOTPSeed == "" && h.PreviousTokenSecret == "":
		if !h.PreviousUntil.IsZero() {
			add("%sprevious_until: set without previous_otp_seed and previous_token_secret", p)
		}
		return errs
	case h.PreviousOTPSeed == "":
		add("%sprevious_otp_seed: required when previous_token_secret is set", p)
	case h.PreviousTokenSecret == "":
		add("%sprevious_token_secret: required when previous_otp_seed is set", p)
	}
	if h.PreviousOTPSeed != "" {
		if err := checkSeed(h.PreviousOTPSeed); err != nil {
			add("%sprevious_otp_seed: %w", p, err)
		}
	}
	if s := h.PreviousTokenSecret; s != "" && len(s) < minSecretBytes {
		add("%sprevious_token_secret: too short: %d bytes, need at least %d", p, len(s), minSecretBytes)
	}
	if h.OTPSeed == "" {
		add("%sprevious_otp_seed: set without a current otp_seed and token_secret to rotate to", p)
	}
	if h.PreviousUntil.IsZero() {
		add("%sprevious_until: required with a previous pair: the time until which it is accepted, such as 2026-12-01T00:00:00Z", p)
	}
	return errs
}

// PreviousActive reports whether h's previous token pair is still
// accepted at now.
func (h Host) PreviousActive(now time.Time) bool {
	return h.PreviousOTPSeed != "" && now.Before(h.PreviousUntil)
}

// AdminSocketPath is where the running server listens for "ottr ctl":
// a Unix socket in data_dir, mode 0600.
func (c *Config) AdminSocketPath() string { return filepath.Join(c.DataDir, AdminSocketFile) }
