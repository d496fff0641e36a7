// Package testserver builds the configuration the tests run ottr with and
// starts ottr in process on loopback ports, for the tests of every package
// that needs a real server.
package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"ottr.im/ottr/certs"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/server"
)

// LogEnv names the environment variable that, when set, makes the
// servers log at debug level instead of warnings only.
const LogEnv = "OTTR_TEST_LOG"

// shutdownTimeout bounds the shutdown at the end of a test.
const shutdownTimeout = 10 * time.Second

// Config returns a valid configuration for a test: the defaults, data_dir
// in a directory of the test's own, c2s STARTTLS and direct TLS on
// 127.0.0.1:0, and the one host testfixture.Host with testfixture.Seed
// and testfixture.Secret.
func Config(t testing.TB) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.Hosts = []config.Host{{Name: testfixture.Host, OTPSeed: testfixture.Seed, TokenSecret: testfixture.Secret}}
	return cfg
}

// LiftConnectionRate lifts the per-address connection limits, for load
// that comes from one address faster than a client would.
func LiftConnectionRate(c *config.Config) {
	c.Limits.ConnectionRate = config.Rate{N: 1_000_000, Per: time.Second}
	c.Limits.ConnectionBurst = 1_000_000
	c.Limits.ConnectionsPerAddress = c.Limits.MaxConnections
}

// Server is an ottr that Start started; it shuts down when the test ends.
type Server struct {
	*server.Server
	Config    *config.Config
	Addr      string         // the first c2s listener (STARTTLS)
	DirectTLS string         // the first direct TLS listener, "" without
	CertFile  string         // the server's certificate (PEM)
	Pool      *x509.CertPool // trusts CertFile
}

// Start creates ottr with cfg, runs hooks on it, starts it, and shuts it
// down when the test ends (failing the test if that fails). It logs to
// stderr, warnings only unless LogEnv is set.
func Start(t testing.TB, cfg *config.Config, hooks ...func(*server.Server)) *Server {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv(LogEnv) != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(server.Options{Config: cfg, Logger: logger})
	if err != nil {
		t.Fatalf("creating the server: %v", err)
	}
	for _, h := range hooks {
		h(srv)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("starting the server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("shutdown: %v", err)
		}
	})
	// The configured certificate, else the generated one.
	certFile := cfg.TLS.Cert
	if certFile == "" {
		certFile, _ = certs.Paths(cfg.TLSDir())
	}
	s := &Server{Server: srv, Config: cfg, CertFile: certFile}
	// Addrs lists c2s STARTTLS, then direct TLS, then HTTP.
	addrs := srv.Addrs()
	s.Addr = addrs[0].String()
	if len(cfg.C2S.DirectTLS) > 0 {
		s.DirectTLS = addrs[len(cfg.C2S.Listen)].String()
	}
	pem, err := os.ReadFile(s.CertFile)
	if err != nil {
		t.Fatalf("reading the server's certificate: %v", err)
	}
	s.Pool = x509.NewCertPool()
	if !s.Pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", s.CertFile)
	}
	return s
}

// TLSConfig trusts the server's certificate for testfixture.Host.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.Pool, ServerName: testfixture.Host, MinVersion: tls.VersionTLS12}
}
