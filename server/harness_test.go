package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/sasl"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
)

// The shared vectors' seed and secret: public, test only.
const (
	testSeed   = "XVGR73KMZH2M4XMY"
	testSecret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
	testHost   = "localhost"
)

// testServer is a real ottr on loopback ports with its own data dir.
type testServer struct {
	srv       *server.Server
	cfg       *config.Config
	addr      string // STARTTLS
	directTLS string
	pool      *x509.CertPool
}

// startServer starts ottr with the test config changed by mutate (may be
// nil), after running hooks on the server before Start.
func startServer(t testing.TB, mutate func(*config.Config), hooks ...func(*server.Server)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLS = []string{"127.0.0.1:0"}
	cfg.Hosts = []config.Host{{Name: testHost, OTPSeed: testSeed, TokenSecret: testSecret}}
	if mutate != nil {
		mutate(cfg)
	}
	level := slog.LevelWarn
	if os.Getenv("OTTR_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(server.Options{Config: cfg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		h(srv)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("shutdown: %v", err)
		}
	})
	ts := &testServer{srv: srv, cfg: cfg}
	addrs := srv.Addrs()
	ts.addr = addrs[0].String()
	if len(addrs) > 1 {
		ts.directTLS = addrs[1].String()
	}
	pem, err := os.ReadFile(filepath.Join(cfg.TLSDir(), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts.pool = x509.NewCertPool()
	if !ts.pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	return ts
}

func (ts *testServer) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: ts.pool, ServerName: testHost, MinVersion: tls.VersionTLS12}
}

// token mints a token for user valid now.
func (ts *testServer) token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint(auth.TokenParams{OTPSeed: testSeed, TokenSecret: testSecret}, user+"@"+testHost, time.Now(), auth.NewNonce(32))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// login connects over STARTTLS and logs in with mech, secret and
// resource (empty: the server picks).
func (ts *testServer) login(t *testing.T, user, resource string, mech sasl.Mechanism, secret string) (*xmpptest.Client, error) {
	t.Helper()
	return xmpptest.Login(t, ts.addr, ts.tlsConfig(), user, testHost, resource, mech, secret)
}

func (ts *testServer) mustLogin(t *testing.T, user, resource string) *xmpptest.Client {
	t.Helper()
	c, err := ts.login(t, user, resource, auth.XToken, ts.token(t, user))
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// online logs in, requests the roster and sends initial presence.
func (ts *testServer) online(t *testing.T, user, resource string) *xmpptest.Client {
	t.Helper()
	return ts.mustLogin(t, user, resource).Online()
}
