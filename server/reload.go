package server

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
)

// reloadableLimits are the [limits] keys a reload applies (SIGHUP, "ottr
// ctl reload"); every other changed key is reported as needing a restart.
func reloadableLimits() []string {
	return []string{
		"max_connections", "connections_per_address", "connection_rate", "connection_burst",
		"auth_failures_per_address", "auth_failures_per_address_account",
		"auth_failures_per_account", "auth_failure_burst",
	}
}

// reloadableHostKeys are the [[host]] keys a reload applies.
func reloadableHostKeys() []string {
	return []string{
		"otp_seed", "token_secret", "previous_otp_seed", "previous_token_secret",
		"previous_until", "token",
	}
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Applied lists what the reload applied: "hosts' token secrets and
	// settings", "limits", "certificates".
	Applied []string `json:"applied"`
	// Restart lists the keys whose new values need a restart to take
	// effect (they keep their old values until then).
	Restart []string `json:"restart,omitempty"`
}

// ErrNoReload is returned by Reload when Options.Reload is nil.
var ErrNoReload = errors.New("server: no configuration to reload (Options.Reload is nil)")

// Reload reads the configuration again (Options.Reload) and applies, with
// no session dropped: the hosts' token secrets and settings (otp_seed,
// token_secret, the previous pair of a rotation, [host.token]), the
// connection and login-failure limits (see reloadableLimits), and the
// certificate files. A configuration that does not load or validate, or
// whose secrets do not verify, changes nothing: the error says why, and
// the server goes on with the old one. Other changed keys are listed in
// the result's Restart and logged: they take effect at the next start.
func (s *Server) Reload() (ReloadResult, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	r, err := s.reload()
	s.ops.metrics.Reloaded(err)
	if err != nil {
		s.logger.Error("configuration reload failed: the configuration in force stays", "err", err)
		return r, err
	}
	s.logger.Info("configuration reloaded", "applied", strings.Join(r.Applied, ", "), "restart_needed", strings.Join(r.Restart, ", "))
	return r, nil
}

func (s *Server) reload() (ReloadResult, error) {
	var r ReloadResult
	if s.reloadConfig == nil {
		return r, ErrNoReload
	}
	next, err := s.reloadConfig()
	if err != nil {
		return r, err
	}
	if err := next.Validate(); err != nil {
		return r, err
	}
	prev := s.live
	r.Restart = restartKeys(prev, next)
	hosts := make(map[string]auth.TokenParams)
	for _, h := range next.Hosts {
		if _, ok := prev.Host(h.Name); ok {
			hosts[h.Name] = h.TokenParams(next.Token)
		}
	}
	// The secrets first: they are the part that can still fail, and then
	// nothing has changed.
	if err := s.authn.SetTokens(hosts); err != nil {
		return r, err
	}
	r.Applied = append(r.Applied, "hosts' token secrets and settings")
	lim := next.Limits
	s.authn.SetFailureRates(authFailureLimits(lim, s.ops.metrics))
	s.perIP.SetRate(lim.ConnectionRate.PerSecond(), lim.ConnectionBurst)
	s.mu.Lock()
	s.perAddrMax = min(lim.ConnectionsPerAddress, lim.MaxConnections)
	s.maxConns.Store(int64(lim.MaxConnections))
	s.mu.Unlock()
	r.Applied = append(r.Applied, "limits")
	s.live = withReloaded(prev, next)
	if err := s.ReloadCertificates(); err != nil {
		// The secrets and limits are in force; the certificate in use
		// stays.
		return r, fmt.Errorf("server: certificates: %w", err)
	}
	r.Applied = append(r.Applied, "certificates")
	return r, nil
}

// withReloaded returns prev with what a reload applied taken from next:
// the configuration in force, which the next reload compares with.
func withReloaded(prev, next *config.Config) *config.Config {
	c := *prev
	c.Token = next.Token
	c.Hosts = append([]config.Host(nil), prev.Hosts...)
	for i, h := range c.Hosts {
		if n, ok := next.Host(h.Name); ok {
			copyFields(&c.Hosts[i], &n, reloadableHostKeys())
		}
	}
	copyFields(&c.Limits, &next.Limits, reloadableLimits())
	return &c
}

// restartKeys lists the keys that differ between prev and next and that a
// reload does not apply, dotted as in the file ("c2s.listen",
// "limits.send_queue", "host[1]").
func restartKeys(prev, next *config.Config) []string {
	var out []string
	a, b := reflect.ValueOf(*prev), reflect.ValueOf(*next)
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := tomlKey(f)
		switch key {
		case "token": // applied through the hosts' settings
			continue
		case "limits":
			out = append(out, changedFields("limits.", a.Field(i), b.Field(i), reloadableLimits())...)
			continue
		case "host":
			out = append(out, changedHosts(prev, next)...)
			continue
		case "tls":
			// The files' contents are re-read; other keys need a restart.
		}
		if f.Type.Kind() == reflect.Struct && f.Type.NumField() > 0 && f.Type.Field(0).Tag.Get("toml") != "" {
			out = append(out, changedFields(key+".", a.Field(i), b.Field(i), nil)...)
		} else if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}

// changedHosts lists the hosts added, removed, or changed in keys a
// reload does not apply.
func changedHosts(prev, next *config.Config) []string {
	var out []string
	seen := make(map[string]bool)
	for i, h := range next.Hosts {
		key := fmt.Sprintf("host[%d]", i)
		old, ok := prev.Host(h.Name)
		if !ok {
			out = append(out, key+" (new host "+h.Name+")")
			continue
		}
		seen[strings.ToLower(h.Name)] = true
		out = append(out, changedFields(key+".", reflect.ValueOf(old), reflect.ValueOf(h), reloadableHostKeys())...)
	}
	for _, h := range prev.Hosts {
		if !seen[strings.ToLower(h.Name)] {
			out = append(out, "host "+h.Name+" (removed)")
		}
	}
	return out
}

// changedFields lists, prefixed, the toml keys of the struct values a and
// b that differ, skipping those in skip.
func changedFields(prefix string, a, b reflect.Value, skip []string) []string {
	var out []string
	t := a.Type()
	for i := range t.NumField() {
		key := tomlKey(t.Field(i))
		if key == "" || slices.Contains(skip, key) {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, prefix+key)
		}
	}
	return out
}

// copyFields copies the fields of *src whose toml keys are in keys to
// *dst, both pointers to structs of one type.
func copyFields[T any](dst, src *T, keys []string) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for i := range d.NumField() {
		if slices.Contains(keys, tomlKey(d.Type().Field(i))) {
			d.Field(i).Set(s.Field(i))
		}
	}
}

// tomlKey is the TOML key of a config struct field, "" for none.
func tomlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}
