package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Proxy65 holds the SOCKS5 bytestreams proxy's settings, the [proxy65]
// table (XEP-0065): two local users' clients that cannot reach each
// other both connect to Listen, and the proxy relays the file one sends
// to the other once the sender activates the transfer. The proxy's
// address, proxy.<host> unless a host's proxy65 key says otherwise, is
// listed in the host's disco#items. Off unless Listen is set.
type Proxy65 struct {
	// Listen is the host:port the SOCKS5 listener binds. Default "": no
	// proxy (and no proxy.<host> address), because the proxy relays
	// bytes for every local user and its address must be one both
	// clients reach: an operator opens it knowingly, with PublicHost
	// when the listener is not that address.
	Listen string `toml:"listen"`
	// PublicHost is the host name or IP address clients are told to
	// connect to (the streamhost's host). Default "": the host of
	// Listen, which must then be one address (not 0.0.0.0 or ::).
	PublicHost string `toml:"public_host"`
	// PublicPort is the port clients are told to connect to, as behind a
	// NAT that forwards another port, 1 to 65535. Default 0: the port
	// the listener got.
	PublicPort int `toml:"public_port"`
	// TransferBandwidth is the most bytes per second one transfer is
	// relayed at, both directions together, 1 KiB to 10 GiB. Default
	// 10485760 (10 MiB/s).
	TransferBandwidth int `toml:"transfer_bandwidth"`
	// TotalBandwidth is the most bytes per second all transfers together
	// are relayed at, at least TransferBandwidth and at most 100 GiB.
	// Default 104857600 (100 MiB/s).
	TotalBandwidth int `toml:"total_bandwidth"`
	// MaxTransfers is the most activated transfers relayed at once, 1 to
	// 100,000; one more activation gets resource-constraint. Default 100.
	MaxTransfers int `toml:"max_transfers"`
	// TransfersPerUser is the most activated transfers one user (the
	// initiator's bare JID, all resources together) has at once, 1 to
	// 100,000; one more activation gets resource-constraint. Default 10.
	TransfersPerUser int `toml:"transfers_per_user"`
	// MaxPending is the most connections open at once that are not part
	// of an activated transfer (shaking hands, waiting for their peer or
	// for activation), 2 to 100,000; past it a new connection is closed
	// at once. Default 100.
	MaxPending int `toml:"max_pending"`
	// PendingTimeout is how long a connection may take from accept to
	// activation, SOCKS5 handshake included, 1s to 1h. Default 60s.
	PendingTimeout Duration `toml:"pending_timeout"`
	// ConnectionsPerAddress is the most connections open at once from
	// one source address (IPv4 address, IPv6 /64), pending or relaying,
	// 2 to 100,000 (a transfer between two users behind one NAT takes
	// two). Default 10.
	ConnectionsPerAddress int `toml:"connections_per_address"`
	// IdleTimeout ends an activated transfer that relayed nothing either
	// way this long, 1s to 24h. Default 5m.
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Defaults of the [proxy65] settings.
const (
	DefaultProxy65TransferBandwidth = 10 * mib
	DefaultProxy65TotalBandwidth    = 100 * mib
	DefaultProxy65MaxTransfers      = 100
	DefaultProxy65TransfersPerUser  = 10
	DefaultProxy65MaxPending        = 100
	DefaultProxy65PendingTimeout    = 60 * time.Second
	DefaultProxy65PerAddress        = 10
	DefaultProxy65IdleTimeout       = 5 * time.Minute
)

// Enabled reports whether the proxy has a listener.
func (p Proxy65) Enabled() bool { return p.Listen != "" }

// Proxy65Domain returns the domain of the host's SOCKS5 proxy: its
// proxy65 key, "proxy.<name>" when the key is left out, "" when it is
// set to "" (no proxy for this host).
func (h Host) Proxy65Domain() string {
	if h.Proxy65 == nil {
		return "proxy." + strings.ToLower(h.Name)
	}
	return strings.ToLower(*h.Proxy65)
}

func applyProxy65Defaults(p *Proxy65, defined func(key ...string) bool) {
	set := func(key string, f func()) {
		if !defined("proxy65", key) {
			f()
		}
	}
	set("transfer_bandwidth", func() { p.TransferBandwidth = DefaultProxy65TransferBandwidth })
	set("total_bandwidth", func() { p.TotalBandwidth = DefaultProxy65TotalBandwidth })
	set("max_transfers", func() { p.MaxTransfers = DefaultProxy65MaxTransfers })
	set("transfers_per_user", func() { p.TransfersPerUser = DefaultProxy65TransfersPerUser })
	set("max_pending", func() { p.MaxPending = DefaultProxy65MaxPending })
	set("pending_timeout", func() { p.PendingTimeout = Duration{DefaultProxy65PendingTimeout} })
	set("connections_per_address", func() { p.ConnectionsPerAddress = DefaultProxy65PerAddress })
	set("idle_timeout", func() { p.IdleTimeout = Duration{DefaultProxy65IdleTimeout} })
}

// validate checks the [proxy65] keys other than listen's form (which
// Validate checks with the other listeners, for duplicates) and the
// hosts' proxy65 domains; each error starts with the key.
func (p Proxy65) validate(hosts []Host, components []ComponentService) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			add("proxy65.%s: must be between %d and %d, got %d", key, lo, hi, v)
		}
	}
	between("transfer_bandwidth", p.TransferBandwidth, kib, 10<<30)
	between("total_bandwidth", p.TotalBandwidth, max(kib, p.TransferBandwidth), 100<<30)
	between("max_transfers", p.MaxTransfers, 1, 100000)
	between("transfers_per_user", p.TransfersPerUser, 1, 100000)
	between("max_pending", p.MaxPending, 2, 100000)
	between("connections_per_address", p.ConnectionsPerAddress, 2, 100000)
	if d := p.PendingTimeout.Duration; d < time.Second || d > time.Hour {
		add("proxy65.pending_timeout: must be between 1s and 1h, got %v", d)
	}
	if d := p.IdleTimeout.Duration; d < time.Second || d > 24*time.Hour {
		add("proxy65.idle_timeout: must be between 1s and 24h, got %v", d)
	}
	if p.PublicPort < 0 || p.PublicPort > 65535 {
		add("proxy65.public_port: must be between 1 and 65535 (0: the listener's), got %d", p.PublicPort)
	}
	if h := p.PublicHost; h != "" && (strings.ContainsAny(h, " \t\r\n/[]") || len(h) > 255) {
		add("proxy65.public_host: %q is not a host name or IP address", h)
	}
	if p.Enabled() && p.PublicHost == "" {
		if host, _, err := net.SplitHostPort(p.Listen); err == nil {
			if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
				add("proxy65.public_host: required when proxy65.listen (%q) is every interface: clients must be told one address", p.Listen)
			}
		}
	}
	seen := make(map[string]bool)
	for i, h := range hosts {
		if h.Proxy65 == nil || *h.Proxy65 == "" {
			continue
		}
		key := fmt.Sprintf("host[%d].proxy65", i)
		d := h.Proxy65Domain()
		if err := checkDomain(d); err != nil {
			add("%s: %w", key, err)
			continue
		}
		if seen[d] {
			add("%s: %q is another host's proxy too", key, d)
		}
		seen[d] = true
		for _, o := range hosts {
			if strings.EqualFold(o.Name, d) {
				add("%s: %q is a served host", key, d)
			}
		}
		for _, c := range components {
			if strings.EqualFold(c.Name, d) {
				add("%s: %q is a component's domain", key, d)
			}
		}
	}
	return errs
}

// writeProxy65 writes the [proxy65] settings for Summary.
func writeProxy65(b *strings.Builder, p Proxy65, hosts []Host) {
	fmt.Fprintf(b, "[proxy65]\nlisten = %q", p.Listen)
	if !p.Enabled() {
		b.WriteString("  # off")
	} else {
		var ds []string
		for _, h := range hosts {
			if d := h.Proxy65Domain(); d != "" {
				ds = append(ds, d)
			}
		}
		fmt.Fprintf(b, "  # serves %s", strings.Join(ds, ", "))
	}
	fmt.Fprintf(b, "\npublic_host = %q\npublic_port = %d\n", p.PublicHost, p.PublicPort)
	fmt.Fprintf(b, "transfer_bandwidth = %d\ntotal_bandwidth = %d\n", p.TransferBandwidth, p.TotalBandwidth)
	fmt.Fprintf(b, "max_transfers = %d\ntransfers_per_user = %d\nmax_pending = %d\nconnections_per_address = %d\n", p.MaxTransfers, p.TransfersPerUser, p.MaxPending, p.ConnectionsPerAddress)
	fmt.Fprintf(b, "pending_timeout = %q\nidle_timeout = %q\n", p.PendingTimeout.Duration.String(), p.IdleTimeout.Duration.String())
}
