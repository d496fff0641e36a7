package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"
)

// LetsEncrypt is the directory URL of Let's Encrypt's production CA, the
// default of ACMEOptions.DirectoryURL.
const LetsEncrypt = acme.LetsEncryptURL

// ALPNProto is the ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737):
// ServerConfig adds it to the protocols of a listener that has some.
const ALPNProto = acme.ALPNProto

// Options configure a Manager.
type Options struct {
	// CertFile and KeyFile are the PEM certificate chain and key to
	// serve, read again when they change (see Files). Both empty: a
	// self-signed certificate for Names is generated into Dir (see
	// LoadOrCreate) and served the same way.
	CertFile, KeyFile string
	// Dir is where the self-signed certificate is kept.
	Dir string
	// Names are the domains served, for the self-signed certificate.
	Names []string
	// CheckInterval is how often, at most, the files are looked at; 0 is
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// ACME, when not nil, obtains certificates for its names from an
	// ACME CA; the files serve every other name, and handshakes without
	// a server name.
	ACME *ACMEOptions
	// Logger receives the certificate events; nil discards them.
	Logger *slog.Logger
}

// ACMEOptions configure the ACME client (RFC 8555) of a Manager. It
// answers the TLS-ALPN-01 challenge (RFC 8737) on the listeners whose
// configuration ServerConfig made with ALPN protocols: the CA connects
// to port 443 of each name, so one of them must be reachable there.
type ACMEOptions struct {
	// Names are the domains to obtain certificates for, one certificate
	// each. A name without a dot, or an IP address, cannot have one.
	Names []string
	// Email is the account's contact, told of problems with its
	// certificates; empty: none.
	Email string
	// DirectoryURL is the CA's directory; empty is LetsEncrypt.
	DirectoryURL string
	// CacheDir keeps the account key and the certificates (created with
	// mode 0700), so that a restart does not ask the CA again.
	CacheDir string
	// RootCAs are trusted for the directory's HTTPS, for a private CA;
	// nil: the system's roots.
	RootCAs *x509.CertPool
	// RenewBefore is how long before its expiry a certificate is renewed;
	// 0 is a third of its lifetime, at most 30 days.
	RenewBefore time.Duration
}

// Manager serves the server's certificates to TLS handshakes: from
// files (configured or generated), and, with ACME, from an ACME CA for
// the names it covers, obtained and renewed without a restart. It is safe
// for concurrent use.
type Manager struct {
	files  *Files
	logger *slog.Logger

	acme      *autocert.Manager // nil without ACME
	acmeNames []string          // ASCII, lower case
	// ready holds the names Start's loop obtained a certificate for:
	// before that a handshake gets the files' certificate and does not
	// reach autocert, which would ask the CA at once (a stranger's
	// handshakes would undo obtain's backoff and spend the CA's
	// failed-validation limits).
	ready     sync.Map
	cache     *closableCache
	stopped   chan struct{} // closed by Close: Start's loops end
	closeOnce sync.Once
}

// New loads or generates the files' certificate and prepares the ACME
// client; it asks the CA for nothing until Start or a handshake.
func New(opts Options) (*Manager, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	certFile, keyFile := opts.CertFile, opts.KeyFile
	if certFile == "" && keyFile == "" {
		if _, err := LoadOrCreate(opts.Dir, opts.Names, logger); err != nil {
			return nil, err
		}
		certFile, keyFile = Paths(opts.Dir)
	}
	files, err := NewFiles(certFile, keyFile, FilesOptions{CheckInterval: opts.CheckInterval, Logger: logger})
	if err != nil {
		return nil, err
	}
	m := &Manager{files: files, logger: logger, stopped: make(chan struct{})}
	if opts.ACME != nil {
		if err := m.setupACME(*opts.ACME); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Paths returns the paths of the certificate and the key that
// LoadOrCreate keeps in dir.
func Paths(dir string) (certFile, keyFile string) {
	return filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
}

// setupACME prepares the autocert manager for o.
func (m *Manager) setupACME(o ACMEOptions) error {
	if len(o.Names) == 0 {
		return errors.New("certs: acme: no names")
	}
	for _, n := range o.Names {
		a, err := ACMEName(n)
		if err != nil {
			return err
		}
		if !slices.Contains(m.acmeNames, a) {
			m.acmeNames = append(m.acmeNames, a)
		}
	}
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return fmt.Errorf("certs: acme cache: %w", err)
	}
	dir := o.DirectoryURL
	if dir == "" {
		dir = LetsEncrypt
	}
	client := &acme.Client{DirectoryURL: dir, UserAgent: "ottr"}
	if o.RootCAs != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: t}
	}
	m.cache = &closableCache{Cache: autocert.DirCache(o.CacheDir)}
	m.acme = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       m.cache,
		HostPolicy:  autocert.HostWhitelist(m.acmeNames...),
		RenewBefore: o.RenewBefore,
		Client:      client,
		Email:       o.Email,
	}
	return nil
}

// ACMEName returns name as an ACME CA wants it (ASCII, lower case), or
// an error if no CA issues a certificate for it: an IP address, a name
// without a dot (such as localhost), a name that is not a valid domain.
func ACMEName(name string) (string, error) {
	if net.ParseIP(name) != nil {
		return "", fmt.Errorf("certs: acme: %q is an IP address: a CA issues certificates to domain names", name)
	}
	a, err := idna.Lookup.ToASCII(strings.TrimSuffix(name, "."))
	if err != nil {
		return "", fmt.Errorf("certs: acme: %q: %w", name, err)
	}
	if !strings.Contains(a, ".") {
		return "", fmt.Errorf("certs: acme: %q has no dot: a CA issues no certificate for it", name)
	}
	return a, nil
}

// GetCertificate implements tls.Config.GetCertificate: a TLS-ALPN-01
// challenge gets its token certificate, a name covered by ACME its ACME
// certificate (obtained now if there is none yet: the handshake waits),
// anything else the files' certificate. If the CA cannot be reached for
// a first certificate, the files' certificate is served meanwhile.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.acme == nil || hello.ServerName == "" {
		return m.files.Certificate(), nil
	}
	if slices.Equal(hello.SupportedProtos, []string{ALPNProto}) {
		return m.acme.GetCertificate(hello) // a challenge: nothing else will do
	}
	name, err := idna.Lookup.ToASCII(strings.TrimSuffix(hello.ServerName, "."))
	if err != nil || !slices.Contains(m.acmeNames, name) {
		return m.files.Certificate(), nil
	}
	if _, ok := m.ready.Load(name); !ok {
		return m.files.Certificate(), nil
	}
	cert, err := m.acme.GetCertificate(hello)
	if err != nil {
		m.logger.Debug("no ACME certificate yet: serving the files' certificate", "name", name, "err", err)
		return m.files.Certificate(), nil
	}
	return cert, nil
}

// Reload reads the certificate files again now (see Files.Reload). The
// ACME certificates renew themselves.
func (m *Manager) Reload() error { return m.files.Reload() }

// ServerConfig returns a TLS configuration (TLS 1.2 at the least) that
// takes its certificate from m at each handshake, with the ALPN
// protocols given; with ACME, a listener with protocols also offers
// ALPNProto, so that it answers the CA's TLS-ALPN-01 challenges.
func (m *Manager) ServerConfig(nextProtos ...string) *tls.Config {
	protos := slices.Clone(nextProtos)
	if m.acme != nil && len(protos) > 0 {
		protos = append(protos, ALPNProto)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.GetCertificate,
		NextProtos:     protos,
		// Full-size records from the start: the stream features after
		// TLS (about 1.3 kB) go out in one record and one write instead
		// of crypto/tls's first small records (issue 14's login cost).
		DynamicRecordSizingDisabled: true,
	}
}

// ACMENames returns the names m obtains ACME certificates for, nil
// without ACME.
func (m *Manager) ACMENames() []string { return slices.Clone(m.acmeNames) }

// Start obtains, in the background, a certificate for every ACME name
// that has none in the cache yet, so that the first client does not wait
// for it; a name that fails is tried again after about a minute, then
// ever more rarely, up to every hour. The CA must be able to reach a listener
// when Start is called. Renewal runs by itself once a certificate is
// there. Without ACME, Start does nothing.
func (m *Manager) Start() {
	if m.acme == nil {
		return
	}
	for _, name := range m.acmeNames {
		go m.obtain(name)
	}
}

// First retry and longest wait of Start's loop. autocert remembers a
// failed attempt for a minute (answering at once with that failure), so
// the first retry comes a little later.
const (
	obtainRetry    = time.Minute + 10*time.Second
	obtainMaxRetry = time.Hour
)

// obtain gets a certificate for name, retrying until it has one or Close.
func (m *Manager) obtain(name string) {
	wait := obtainRetry
	for {
		// A hello as a modern client sends it: ECDSA, the certificate
		// autocert asks for by default.
		hello := &tls.ClientHelloInfo{
			ServerName:       name,
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
		}
		start := time.Now()
		cert, err := m.acme.GetCertificate(hello)
		if err == nil {
			attrs := []any{"name", name, "took", time.Since(start).Round(time.Millisecond)}
			if cert.Leaf != nil {
				attrs = append(attrs, "not_after", cert.Leaf.NotAfter.Format(time.RFC3339), "issuer", cert.Leaf.Issuer.CommonName)
			}
			m.logger.Info("ACME certificate ready", attrs...)
			m.ready.Store(name, struct{}{})
			return
		}
		m.logger.Error("ACME: could not obtain a certificate; trying again later", "name", name, "err", err, "retry_in", wait)
		select {
		case <-m.stopped:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, obtainMaxRetry)
	}
}

// Close stops Start's loops (one waiting for the CA ends when the CA
// answers, within five minutes) and keeps the ACME client from writing
// to the cache from then on: renewals still scheduled fail.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		close(m.stopped)
		if m.cache != nil {
			m.cache.close()
		}
	})
	return nil
}

// errClosed is returned by the cache after Close.
var errClosed = errors.New("certs: closed")

// closableCache is the ACME cache, which refuses writes after close: the
// autocert manager has no way to stop its renewal timers, and a renewal
// after shutdown must not write into a data directory the server no
// longer owns.
type closableCache struct {
	autocert.Cache
	closed atomic.Bool
}

func (c *closableCache) close() { c.closed.Store(true) }

func (c *closableCache) Put(ctx context.Context, name string, data []byte) error {
	if c.closed.Load() {
		return errClosed
	}
	return c.Cache.Put(ctx, name, data)
}

func (c *closableCache) Delete(ctx context.Context, name string) error {
	if c.closed.Load() {
		return errClosed
	}
	return c.Cache.Delete(ctx, name)
}
