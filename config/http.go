package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// HTTP holds the web transports' settings, the [http] table: XMPP over
// WebSocket (RFC 7395) at /xmpp-websocket, BOSH (XEP-0124, XEP-0206) at
// /http-bind and XEP-0156 discovery at /.well-known/host-meta. With no
// address in Listen or TLSListen they are off.
type HTTP struct {
	// Listen are host:port addresses serving plain HTTP, meant for a
	// TLS-terminating reverse proxy in front: their sessions count as
	// encrypted (c2s.require_tls does not refuse them). Default none.
	Listen []string `toml:"listen"`
	// TLSListen are host:port addresses serving HTTPS with the c2s
	// certificate. Default none.
	TLSListen []string `toml:"tls_listen"`
	// Origins are the browser origins ("https://app.example") whose pages
	// may open a WebSocket or make BOSH requests, besides pages of the
	// endpoint's own host, which always may; a request without an Origin
	// header (not from a browser) is always allowed. Default empty:
	// same-origin pages only.
	Origins []string `toml:"origins"`
	// TrustedProxies are the addresses or prefixes ("127.0.0.1",
	// "10.0.0.0/8") of reverse proxies whose X-Forwarded-For header is
	// believed: the client's address, for the per-address limits and the
	// logs, is then the last one in that header that is not itself a
	// trusted proxy. Default empty: the header is ignored.
	TrustedProxies []string `toml:"trusted_proxies"`
	// PublicURL is the base URL clients reach the endpoints at, such as
	// "https://chat.example" or "https://example.com/xmpp", for the links of
	// host-meta. Empty: built from each request's Host header and scheme.
	PublicURL string `toml:"public_url"`
	// BOSHMaxWait caps the time a BOSH request is held waiting for data
	// (the client's wait attribute), 1s to 10m. Default 60s.
	BOSHMaxWait Duration `toml:"bosh_max_wait"`
	// BOSHInactivity is how long a BOSH session may go with no request
	// pending before it is ended, 1s to 1h. Default 60s.
	BOSHInactivity Duration `toml:"bosh_inactivity"`
}

// Defaults and bounds of the [http] settings.
const (
	DefaultBOSHMaxWait    = 60 * time.Second
	DefaultBOSHInactivity = 60 * time.Second
	maxBOSHWait           = 10 * time.Minute
	maxBOSHInactivity     = time.Hour
)

// Enabled reports whether any HTTP listener is configured.
func (h HTTP) Enabled() bool { return len(h.Listen) > 0 || len(h.TLSListen) > 0 }

func applyHTTPDefaults(h *HTTP, defined func(key ...string) bool) {
	if !defined("http", "bosh_max_wait") {
		h.BOSHMaxWait = Duration{DefaultBOSHMaxWait}
	}
	if !defined("http", "bosh_inactivity") {
		h.BOSHInactivity = Duration{DefaultBOSHInactivity}
	}
}

// validate checks the [http] keys other than the listen addresses (which
// Validate checks with the c2s ones, for duplicates).
func (h HTTP) validate() []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	for i, o := range h.Origins {
		if _, err := ParseOrigin(o); err != nil {
			add("http.origins[%d]: %w", i, err)
		}
	}
	for i, p := range h.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			add("http.trusted_proxies[%d]: %w", i, err)
		}
	}
	if h.PublicURL != "" {
		if err := checkPublicURL(h.PublicURL); err != nil {
			add("http.public_url: %w", err)
		}
	}
	if d := h.BOSHMaxWait.Duration; d < time.Second || d > maxBOSHWait {
		add("http.bosh_max_wait: must be between 1s and %v, got %v", maxBOSHWait, d)
	}
	if d := h.BOSHInactivity.Duration; d < time.Second || d > maxBOSHInactivity {
		add("http.bosh_inactivity: must be between 1s and %v, got %v", maxBOSHInactivity, d)
	}
	return errs
}

// ParseOrigin checks that s is a browser origin, scheme://host[:port] with
// the scheme http or https and nothing after, and returns it in the form
// browsers send: lower case, without a default port or a trailing slash.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an origin: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", fmt.Errorf("%q is not an http:// or https:// origin", s)
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return "", fmt.Errorf("%q: an origin has no user information", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%q: an origin is scheme://host[:port], without a path, query or fragment", s)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// ParsePrefix reads a trusted proxy: an IP address (a single host) or a
// CIDR prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a prefix such as 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a prefix such as 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkPublicURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("%q: a base URL has no query, fragment or user information", s)
	}
	return nil
}

// writeHTTP writes the [http] values in force.
func writeHTTP(b *strings.Builder, h HTTP) {
	fmt.Fprintf(b, "listen = %s\n", quoteList(h.Listen))
	fmt.Fprintf(b, "tls_listen = %s\n", quoteList(h.TLSListen))
	fmt.Fprintf(b, "origins = %s", quoteList(h.Origins))
	if len(h.Origins) == 0 {
		b.WriteString("  # same-origin pages only")
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "trusted_proxies = %s\n", quoteList(h.TrustedProxies))
	fmt.Fprintf(b, "public_url = %q", h.PublicURL)
	if h.PublicURL == "" {
		b.WriteString("  # from each request's Host")
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "bosh_max_wait = %q\n", h.BOSHMaxWait.Duration.String())
	fmt.Fprintf(b, "bosh_inactivity = %q\n", h.BOSHInactivity.Duration.String())
	if !h.Enabled() {
		b.WriteString("# no HTTP listener: WebSocket and BOSH are off\n")
	}
}
