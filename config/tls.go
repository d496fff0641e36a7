package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultACMEDirectory is the directory of Let's Encrypt's production CA,
// the default of tls.acme_directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// DefaultLogFormat is the default of log.format.
const DefaultLogFormat = "text"

// logFormats lists the accepted values of log.format.
const logFormats = "text, json"

// CertificateNames returns the domains the server's certificates cover:
// every host, then its group chat and upload domains when their services
// are on, each once, in lower case.
func (c *Config) CertificateNames() []string {
	var names []string
	add := func(n string) {
		n = strings.ToLower(n)
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, h := range c.Hosts {
		add(h.Name)
	}
	for _, h := range c.Hosts {
		add(h.MUCDomain())
		add(h.UploadDomain(c.HTTP.Enabled()))
	}
	return names
}

// validateACME checks the tls.acme_* keys when tls.acme is on.
func (c *Config) validateACME() []error {
	if !c.TLS.ACME {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if u, err := url.Parse(c.TLS.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		add("tls.acme_directory: %q is not an https:// URL", c.TLS.ACMEDirectory)
	}
	if e := c.TLS.ACMEEmail; e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			add("tls.acme_email: %q is not a bare e-mail address such as admin@example.com", e)
		}
	}
	if len(c.C2S.DirectTLS) == 0 && len(c.HTTP.TLSListen) == 0 {
		add("tls.acme: the CA checks the domains over TLS-ALPN-01 on port 443, answered by a c2s.direct_tls or http.tls_listen listener: list one")
	}
	for _, n := range c.CertificateNames() {
		if err := acmeName(n); err != nil {
			add("tls.acme: %w", err)
		}
	}
	return errs
}

// acmeName refuses a name no public CA certifies.
func acmeName(name string) error {
	switch {
	case net.ParseIP(name) != nil:
		return fmt.Errorf("%q is an IP address: a CA certifies domain names", name)
	case !strings.Contains(strings.TrimSuffix(name, "."), "."):
		return fmt.Errorf("%q has no dot: no CA certifies it (serve such a name without ACME)", name)
	}
	return nil
}

// writeACME writes the tls.acme_* keys for Summary.
func writeACME(b *strings.Builder, c *Config) {
	fmt.Fprintf(b, "acme = %t\n", c.TLS.ACME)
	if !c.TLS.ACME {
		return
	}
	fmt.Fprintf(b, "acme_email = %q\n", c.TLS.ACMEEmail)
	fmt.Fprintf(b, "acme_directory = %q\n", c.TLS.ACMEDirectory)
	fmt.Fprintf(b, "acme_ca_file = %q\n", c.TLS.ACMECAFile)
}

// ACMEDir is where the ACME account key and certificates are kept.
func (c *Config) ACMEDir() string { return filepath.Join(c.DataDir, "acme") }
