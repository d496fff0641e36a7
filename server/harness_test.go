package server_test

import (
	"crypto/tls"
	"testing"

	"mellium.im/sasl"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/testfixture/testserver"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
)

// The fixture's host, seed and secret, under the names these tests use.
const (
	testSeed   = testfixture.Seed
	testSecret = testfixture.Secret
	testHost   = testfixture.Host
)

// testServer is a real ottr on loopback ports with its own data dir.
type testServer struct {
	srv       *server.Server
	cfg       *config.Config
	addr      string // STARTTLS
	directTLS string
	started   *testserver.Server
}

// startServer starts ottr with the test config changed by mutate (may be
// nil), after running hooks on the server before Start.
func startServer(t testing.TB, mutate func(*config.Config), hooks ...func(*server.Server)) *testServer {
	t.Helper()
	cfg := testserver.Config(t)
	if mutate != nil {
		mutate(cfg)
	}
	s := testserver.Start(t, cfg, hooks...)
	return &testServer{srv: s.Server, cfg: s.Config, addr: s.Addr, directTLS: s.DirectTLS, started: s}
}

func (ts *testServer) tlsConfig() *tls.Config { return ts.started.TLSConfig() }

// token mints a token for user valid now.
func (ts *testServer) token(t testing.TB, user string) string {
	t.Helper()
	return testfixture.Token(t, user+"@"+testHost)
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
