// Package ottrtest runs an ottr XMPP server inside a Go test, as
// net/http/httptest runs an HTTP server: one line starts it on a loopback
// port with a data directory of its own, fresh token secrets and a
// certificate of its own, and the test's end stops it.
//
//	func TestChat(t *testing.T) {
//		srv := ottrtest.New(t)
//		token := srv.Token("alice@" + srv.Domain())
//		// connect to srv.Addr() with STARTTLS and srv.TLSConfig(),
//		// log in as alice with the SASL mechanism X-TOKEN and token
//		// (or with PLAIN, after srv.AddUser).
//	}
//
// The server is the real one (package server), with its storage in the
// temporary directory and every feature on. Options add hosts, change the
// configuration and set the logger. Start and Close do the same outside a
// test (in TestMain, or in an example).
package ottrtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/certs"
	"ottr.im/ottr/config"
	"ottr.im/ottr/server"
	"ottr.im/ottr/storage/sqlite"
)

// DefaultDomain is the host a server serves unless WithHosts says
// otherwise.
const DefaultDomain = "localhost"

// shutdownTimeout bounds Close.
const shutdownTimeout = 10 * time.Second

// Option changes how a server is started.
type Option func(*settings)

type settings struct {
	hosts   []string
	configs []func(*config.Config)
	logger  *slog.Logger
}

// WithHosts serves domains instead of "localhost": the first is Domain().
// Each gets token secrets of its own; the certificate covers them all.
func WithHosts(domains ...string) Option {
	return func(s *settings) { s.hosts = append(s.hosts[:0:0], domains...) }
}

// WithConfig changes the configuration before the server starts, after
// ottrtest filled it in (data_dir, listeners, hosts and their secrets):
// to set limits, add an HTTP listener for WebSocket and BOSH
// (c.HTTP.Listen = []string{"127.0.0.1:0"}), and so on. Several are
// applied in order. The result must be valid (config.Config.Validate).
func WithConfig(change func(c *config.Config)) Option {
	return func(s *settings) { s.configs = append(s.configs, change) }
}

// WithLogger sends the server's logs to l. Without it the server logs its
// warnings and errors to stderr, and everything when the environment
// variable OTTR_TEST_LOG is set.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) { s.logger = l }
}

// Server is a running ottr. Its methods are safe for concurrent use.
type Server struct {
	srv     *server.Server
	cfg     *config.Config
	addr    string
	direct  string
	pool    *x509.CertPool
	tempDir string     // removed by Close when Start made it
	t       testing.TB // nil when made by Start

	mu        sync.Mutex
	store     *sqlite.Store // for AddUser, opened at its first call
	closed    bool
	closeErr  error
	closeOnce sync.Once
}

// New starts a server for the test t (see Start for what it serves) and
// stops it when the test ends. It fails the test if the server does not
// start.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("ottrtest: %v", err)
	}
	s.t = t
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("ottrtest: %v", err)
		}
	})
	return s
}

// Start starts a server outside a test: c2s with STARTTLS and with direct
// TLS (XEP-0368) on 127.0.0.1 ports of the system's choosing, the host
// "localhost" (or those of WithHosts) with freshly generated otp_seed and
// token_secret, a self-signed certificate for the hosts, and the data in
// a new temporary directory. Close stops it and removes the directory.
func Start(opts ...Option) (*Server, error) {
	dir, err := os.MkdirTemp("", "ottrtest-")
	if err != nil {
		return nil, fmt.Errorf("ottrtest: %w", err)
	}
	s, err := start(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ottrtest: %w", err)
	}
	s.tempDir = dir
	return s, nil
}

// start builds the configuration in dir and starts the server.
func start(dir string, opts []Option) (*Server, error) {
	st := settings{hosts: []string{DefaultDomain}}
	for _, o := range opts {
		o(&st)
	}
	if len(st.hosts) == 0 {
		return nil, errors.New("WithHosts: no domain")
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.Hosts = nil
	for _, h := range st.hosts {
		cfg.Hosts = append(cfg.Hosts, config.Host{
			Name:        h,
			OTPSeed:     auth.RandomBase32(16),
			TokenSecret: auth.RandomBase32(32),
		})
	}
	// Tests connect from one address, faster than people do.
	cfg.Limits.ConnectionRate = config.Rate{N: 1_000_000, Per: time.Second}
	cfg.Limits.ConnectionBurst = 1_000_000
	cfg.Limits.ConnectionsPerAddress = cfg.Limits.MaxConnections
	for _, c := range st.configs {
		c(cfg)
	}
	logger := st.logger
	if logger == nil {
		level := slog.LevelWarn
		if os.Getenv("OTTR_TEST_LOG") != "" {
			level = slog.LevelDebug
		}
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	srv, err := server.New(server.Options{Config: cfg, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(context.Background()); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		srv.Shutdown(ctx)
		return nil, err
	}
	s := &Server{srv: srv, cfg: cfg}
	if err := s.findAddrs(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// findAddrs reads the listeners' addresses and the certificate to trust.
func (s *Server) findAddrs() error {
	addrs := s.srv.Addrs() // c2s STARTTLS, then direct TLS, then HTTP
	if n := len(s.cfg.C2S.Listen); n > 0 {
		s.addr = addrs[0].String()
	}
	if len(s.cfg.C2S.DirectTLS) > 0 {
		s.direct = addrs[len(s.cfg.C2S.Listen)].String()
	}
	certFile := s.cfg.TLS.Cert
	if certFile == "" {
		certFile, _ = certs.Paths(s.cfg.TLSDir())
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("the server's certificate: %w", err)
	}
	s.pool = x509.NewCertPool()
	if !s.pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", certFile)
	}
	return nil
}

// Close stops the server (sessions get <system-shutdown/>), closes its
// storage and, for a server of Start, removes its directory. New's
// servers are closed when their test ends; Close may be called before.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		st := s.store
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var errs []error
		if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
		if st != nil {
			errs = append(errs, st.Close())
		}
		if s.tempDir != "" {
			errs = append(errs, os.RemoveAll(s.tempDir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Addr is the host:port of the c2s listener with STARTTLS ("" when
// WithConfig removed it).
func (s *Server) Addr() string { return s.addr }

// DirectTLSAddr is the host:port of the direct TLS listener (XEP-0368,
// ALPN "xmpp-client"; "" when WithConfig removed it).
func (s *Server) DirectTLSAddr() string { return s.direct }

// Domain is the first host served: "localhost" unless WithHosts.
func (s *Server) Domain() string { return strings.ToLower(s.cfg.Hosts[0].Name) }

// Domains are all the hosts served, in configuration order.
func (s *Server) Domains() []string {
	var ds []string
	for _, h := range s.cfg.Hosts {
		ds = append(ds, strings.ToLower(h.Name))
	}
	return ds
}

// TLSConfig returns a client configuration that trusts the server's
// certificate, for Domain(); set ServerName on it for another host.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: s.Domain(), MinVersion: tls.VersionTLS12}
}

// Config returns the configuration the server runs with. Do not change
// it.
func (s *Server) Config() *config.Config { return s.cfg }

// Server returns the running server, for what ottrtest does not wrap.
func (s *Server) Server() *server.Server { return s.srv }

// MintToken returns a fresh X-TOKEN for the bare JID user@host, valid now
// and once, or an error when the JID is not one of a served host.
func (s *Server) MintToken(bareJID string) (string, error) {
	h, user, err := s.account(bareJID)
	if err != nil {
		return "", err
	}
	return auth.Mint(h.TokenParams(s.cfg.Token), user+"@"+strings.ToLower(h.Name), time.Now(), auth.NewNonce(h.NonceLength(s.cfg.Token)))
}

// Token is MintToken for a test: an error fails the test of New, and
// panics for a server of Start.
func (s *Server) Token(bareJID string) string {
	tok, err := s.MintToken(bareJID)
	s.must(err)
	return tok
}

// CreateUser creates the password account bareJID (user@host) for PLAIN
// logins, or returns an error (one wrapping storage.ErrExists when it
// exists). Token users need no account.
func (s *Server) CreateUser(bareJID, password string) error {
	h, user, err := s.account(bareJID)
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(password, 0)
	if err != nil {
		return fmt.Errorf("ottrtest: %w", err)
	}
	st, err := s.openStore()
	if err != nil {
		return err
	}
	if err := st.CreateAccount(context.Background(), strings.ToLower(h.Name), user, hash); err != nil {
		return fmt.Errorf("ottrtest: creating %s: %w", bareJID, err)
	}
	return nil
}

// AddUser is CreateUser for a test: an error fails the test of New, and
// panics for a server of Start.
func (s *Server) AddUser(bareJID, password string) {
	s.must(s.CreateUser(bareJID, password))
}

// must reports err to the test, or panics without one.
func (s *Server) must(err error) {
	if err == nil {
		return
	}
	if s.t != nil {
		s.t.Helper()
		s.t.Fatal(err)
	}
	panic(err)
}

// account returns the served host of bareJID and its prepared local part.
func (s *Server) account(bareJID string) (config.Host, string, error) {
	j, err := jid.Parse(bareJID)
	if err != nil {
		return config.Host{}, "", fmt.Errorf("ottrtest: %q: %w", bareJID, err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return config.Host{}, "", fmt.Errorf("ottrtest: %q is not a bare JID user@host", bareJID)
	}
	h, ok := s.cfg.Host(j.Domainpart())
	if !ok {
		return config.Host{}, "", fmt.Errorf("ottrtest: %q: host %s is not served (WithHosts)", bareJID, j.Domainpart())
	}
	return h, j.Localpart(), nil
}

// openStore opens the server's database for account changes, once; the
// CLI does the same next to a running server.
func (s *Server) openStore() (*sqlite.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("ottrtest: server closed")
	}
	if s.store == nil {
		st, err := sqlite.Open(context.Background(), s.cfg.DatabasePath())
		if err != nil {
			return nil, fmt.Errorf("ottrtest: %w", err)
		}
		s.store = st
	}
	return s.store, nil
}
