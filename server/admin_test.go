package server_test

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
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
	"ottr.im/ottr/storage"
	"ottr.im/ottr/storage/sqlite"
)

// opsServer is a server started from a configuration file, as "ottr
// serve -c FILE" runs one, so that a reload reads the file again; its
// token clock is the test's.
type opsServer struct {
	srv   *server.Server
	cfg   *config.Config
	file  string
	addr  string
	tls   *tls.Config
	clock atomic.Int64 // unix nanoseconds; 0 is the real time
}

// opsConfig is the TOML of an ops test's configuration: the test host
// with hostExtra in its [[host]] table, and extra at the end.
func opsConfig(dir, hostExtra, extra string) string {
	return fmt.Sprintf(`data_dir = %q
[c2s]
listen = ["127.0.0.1:0"]
[[host]]
name = %q
otp_seed = %q
token_secret = %q
%s
%s
`, dir, testHost, testSeed, testSecret, hostExtra, extra)
}

// startOps writes the configuration toml (see opsConfig) to a file, and
// starts a server from it.
func startOps(t *testing.T, toml func(dir string) string) *opsServer {
	t.Helper()
	dir := t.TempDir()
	o := &opsServer{file: filepath.Join(dir, "ottr.toml")}
	o.write(t, toml(filepath.Join(dir, "data")))
	cfg, err := config.Load(o.file)
	if err != nil {
		t.Fatal(err)
	}
	o.cfg = cfg
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o.srv, err = server.New(server.Options{
		Config: cfg,
		Logger: logger,
		Now:    o.now,
		Reload: func() (*config.Config, error) { return config.Load(o.file) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.srv.Shutdown(ctx); err != nil && !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("shutdown: %v", err)
		}
	})
	o.addr = o.srv.Addrs()[0].String()
	pem, err := os.ReadFile(filepath.Join(cfg.TLSDir(), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	o.tls = &tls.Config{RootCAs: pool, ServerName: testHost, MinVersion: tls.VersionTLS12}
	return o
}

func (o *opsServer) now() time.Time {
	if n := o.clock.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Now()
}

func (o *opsServer) write(t *testing.T, toml string) {
	t.Helper()
	if err := os.WriteFile(o.file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// call sends one admin command over the data_dir's socket.
func (o *opsServer) call(t *testing.T, req server.AdminRequest) (server.AdminResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return server.AdminCall(ctx, o.cfg.AdminSocketPath(), req)
}

// tokenLogin logs user in with a token minted with seed and secret at the
// server's token clock.
func (o *opsServer) tokenLogin(t *testing.T, user, seed, secret string) (*xmpptest.Client, error) {
	t.Helper()
	p := testfixture.Params()
	p.OTPSeed, p.TokenSecret = seed, secret
	tok, err := auth.Mint(p, user+"@"+testHost, o.now(), auth.NewNonce(auth.DefaultNonceDigits))
	if err != nil {
		t.Fatal(err)
	}
	return xmpptest.Login(t, o.addr, o.tls, user, testHost, "", auth.XToken, tok)
}

// ping checks that c's session still answers.
func ping(t *testing.T, c *xmpptest.Client) {
	t.Helper()
	id := fmt.Sprintf("ping-%d", time.Now().UnixNano())
	if r := c.IQ(`<iq type='get' id='`+id+`' to='`+testHost+`'><ping xmlns='urn:xmpp:ping'/></iq>`, id); r.Type != "result" {
		t.Fatalf("ping: %+v", r)
	}
}

// The admin socket lists a session a client opened, with its transport,
// address and start; kick ends it with a stream error; a kick of a bare
// JID ends every resource.
func TestAdminSessionsAndKick(t *testing.T) {
	o := startOps(t, func(dir string) string { return opsConfig(dir, "", "") })
	info, err := os.Stat(o.cfg.AdminSocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin socket mode %v, want 0600", perm)
	}
	before := time.Now().Add(-time.Second)
	alice, err := o.tokenLogin(t, "alice", testSeed, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := o.call(t, server.AdminRequest{Command: "sessions"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Sessions) != 1 {
		t.Fatalf("sessions: %+v, want alice's only", resp.Sessions)
	}
	s := resp.Sessions[0]
	local := alice.Sess.Conn().LocalAddr().String()
	if s.JID != alice.JID.String() || s.Transport != "tcp" || s.Address != local || s.Since.Before(before) || s.Since.After(time.Now()) {
		t.Errorf("session %+v, want %s over tcp from %s since the login", s, alice.JID, local)
	}

	if _, err := o.call(t, server.AdminRequest{Command: "kick", JID: "nobody@" + testHost}); err == nil || !strings.Contains(err.Error(), "no session") {
		t.Errorf("kick of a user without sessions: %v", err)
	}
	resp, err = o.call(t, server.AdminRequest{Command: "kick", JID: alice.JID.String(), Reason: "maintenance"})
	if err != nil || resp.Kicked != 1 {
		t.Fatalf("kick: %+v, %v", resp, err)
	}
	if err := alice.Ended(); !errors.Is(err, stream.NotAuthorized) {
		t.Fatalf("kicked session ended with %v, want a not-authorized stream error", err)
	}

	// Two resources of bob: the bare JID kicks both.
	var bobs []*xmpptest.Client
	for range 2 {
		c, err := o.tokenLogin(t, "bob", testSeed, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		bobs = append(bobs, c)
	}
	resp, err = o.call(t, server.AdminRequest{Command: "kick", JID: "bob@" + testHost})
	if err != nil || resp.Kicked != 2 {
		t.Fatalf("kick bob: %+v, %v", resp, err)
	}
	for _, c := range bobs {
		if err := c.Ended(); !errors.Is(err, stream.NotAuthorized) {
			t.Errorf("%s ended with %v, want not-authorized", c.JID, err)
		}
	}
	waitFor(t, func() bool {
		resp, err := o.call(t, server.AdminRequest{Command: "sessions"})
		return err == nil && len(resp.Sessions) == 0
	})

	resp, err = o.call(t, server.AdminRequest{Command: "stats"})
	if err != nil || resp.Stats == nil {
		t.Fatalf("stats: %+v, %v", resp, err)
	}
	if got := resp.Stats.Logins["success"]; got != 3 {
		t.Errorf("stats: %d successful logins, want 3", got)
	}
	if _, err := o.call(t, server.AdminRequest{Command: "frobnicate"}); err == nil {
		t.Error("an unknown command was accepted")
	}
}

// A reload after the configuration file changed takes the new token
// secrets with the session still open; a broken file changes nothing.
// Rotation: the old and the new pair both log in until previous_until,
// then only the new one.
func TestReloadRotation(t *testing.T) {
	o := startOps(t, func(dir string) string { return opsConfig(dir, "", "") })
	alice, err := o.tokenLogin(t, "alice", testSeed, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	const newSeed, newSecret = "MFRGGZDFMZTWQ2LKNNWG23TP", "NBSWY3DPEB3W64TMMQQQ6YTUMRSXG4ZA"
	if _, err := o.tokenLogin(t, "carol", newSeed, newSecret); err == nil {
		t.Fatal("the new pair logged in before the reload")
	}

	// A broken file: the reload fails, the configuration in force stays.
	dataDir := o.cfg.DataDir
	o.write(t, opsConfig(dataDir, "", "[limits]\nsend_queue = 1\n"))
	if _, err := o.call(t, server.AdminRequest{Command: "reload"}); err == nil || !strings.Contains(err.Error(), "send_queue") {
		t.Fatalf("reload of a bad file: %v, want the send_queue error", err)
	}
	if _, err := o.tokenLogin(t, "carol", testSeed, testSecret); err != nil {
		t.Fatalf("after a failed reload the old secrets: %v", err)
	}

	// The new pair, the old one as previous until an hour from now, and
	// a key that needs a restart.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rotated := strings.Replace(opsConfig(dataDir, fmt.Sprintf("previous_otp_seed = %q\nprevious_token_secret = %q\nprevious_until = %s\n",
		testSeed, testSecret, until.Format(time.RFC3339)), "[limits]\nsend_queue = 64\n"), testSeed, newSeed, 1)
	rotated = strings.Replace(rotated, fmt.Sprintf("token_secret = %q", testSecret), fmt.Sprintf("token_secret = %q", newSecret), 1)
	o.write(t, rotated)
	resp, err := o.call(t, server.AdminRequest{Command: "reload"})
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r := resp.Reload; r == nil || !strings.Contains(strings.Join(r.Restart, " "), "limits.send_queue") {
		t.Errorf("reload result %+v: want limits.send_queue listed as needing a restart", r)
	}
	ping(t, alice)
	for _, pair := range [][2]string{{newSeed, newSecret}, {testSeed, testSecret}} {
		c, err := o.tokenLogin(t, "carol", pair[0], pair[1])
		if err != nil {
			t.Fatalf("before previous_until, pair %s: %v", pair[0], err)
		}
		c.Close()
	}
	// From previous_until on, only the new pair.
	o.clock.Store(until.UnixNano())
	if _, err := o.tokenLogin(t, "carol", testSeed, testSecret); err == nil {
		t.Fatal("the previous pair logged in at previous_until")
	}
	if _, err := o.tokenLogin(t, "carol", newSeed, newSecret); err != nil {
		t.Fatalf("the new pair at previous_until: %v", err)
	}
	o.clock.Store(0)
	ping(t, alice)
}

// SIGHUP's work, Server.Reload, repeated with a session open keeps it;
// reloadable limits are not reported as needing a restart.
func TestReloadKeepsSessions(t *testing.T) {
	o := startOps(t, func(dir string) string { return opsConfig(dir, "", "[limits]\nconnection_rate = \"50/s\"\n") })
	alice, err := o.tokenLogin(t, "alice", testSeed, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	o.write(t, opsConfig(o.cfg.DataDir, "", "[limits]\nconnection_rate = \"60/s\"\nmax_connections = 500\n"))
	for range 3 {
		r, err := o.srv.Reload()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Restart) != 0 {
			t.Errorf("reload of reloadable keys: %v listed as needing a restart", r.Restart)
		}
	}
	ping(t, alice)
	sessions := o.srv.Sessions()
	if len(sessions) != 1 || sessions[0].JID != alice.JID.String() {
		t.Fatalf("sessions after the reloads: %+v", sessions)
	}
	if _, err := o.srv.Kick(jid.MustParse("alice@other.example"), ""); err == nil {
		t.Error("kick of a JID of another domain was accepted")
	}
}

// Revocation ("ottr user kick" through the admin socket): the user's
// sessions end with not-authorized and its FAST tokens are deleted,
// another user's stay.
func TestAdminRevoke(t *testing.T) {
	o := startOps(t, func(dir string) string { return opsConfig(dir, "", "") })
	alice, err := o.tokenLogin(t, "alice", testSeed, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	// FAST tokens as a SASL2 login would have stored them, written by
	// another process on the same database as "ottr user" does.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, o.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for i, user := range []string{"alice", "alice", "bob"} {
		err := st.PutFastToken(ctx, storage.FastToken{
			Host: testHost, Username: user, Agent: fmt.Sprintf("agent-%d", i), Mechanism: "HT-SHA-256-NONE",
			ID: []byte(fmt.Sprintf("id-%d", i)), Responder: []byte("r"), Expires: now.Add(time.Hour), Created: now,
		}, 8)
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := o.call(t, server.AdminRequest{Command: "revoke", JID: "alice@" + testHost})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Kicked != 1 || resp.Revoked != 2 {
		t.Errorf("revoke: %d sessions ended and %d tokens revoked, want 1 and 2", resp.Kicked, resp.Revoked)
	}
	if err := alice.Ended(); !errors.Is(err, stream.NotAuthorized) {
		t.Errorf("revoked session ended with %v, want not-authorized", err)
	}
	for i, user := range []string{"alice", "alice", "bob"} {
		toks, err := st.FastTokens(ctx, testHost, user, fmt.Sprintf("agent-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"alice": 0, "bob": 1}[user]; len(toks) != want {
			t.Errorf("%s's FAST tokens of agent-%d after revoking alice: %d, want %d", user, i, len(toks), want)
		}
	}
	// Nothing to end is not an error for a revocation.
	waitFor(t, func() bool { return len(o.srv.Sessions()) == 0 })
	if resp, err := o.call(t, server.AdminRequest{Command: "revoke", JID: "alice@" + testHost}); err != nil || resp.Kicked != 0 {
		t.Errorf("second revoke: %+v, %v", resp, err)
	}
}

// A client that names itself in its SASL2 <user-agent/> is listed with
// its software and device; one over plain SASL without.
func TestSessionsClient(t *testing.T) {
	ts := startServer(t, nil)
	plain := ts.online(t, "bob", "b")
	c := dialSASL2(t, ts)
	c.mechanisms()
	success := c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
		userAgent("0b7c8d43-5f0e-4f55-9d36-2a1f1c9d6f21")+`<bind xmlns='urn:xmpp:bind:0'><tag>ottr-test</tag></bind>`)
	full := identifier(t, success)
	clients := map[string]string{}
	for _, s := range ts.srv.Sessions() {
		clients[s.JID] = s.Client
	}
	if got, want := clients[full], "ottr-test (ci)"; got != want {
		t.Errorf("client of %s: %q, want %q (sessions %v)", full, got, want, clients)
	}
	if got, ok := clients[plain.JID.String()]; !ok || got != "" {
		t.Errorf("client of the SASL session %s: %q, %v; want listed, without a name", plain.JID, got, ok)
	}
}

// Revocation end to end: a client that got a FAST token at an X-TOKEN
// login is kicked by RevokeUser (what "ottr user kick" asks the server),
// and its token no longer logs in; before the revocation it did.
func TestRevokeFAST(t *testing.T) {
	ts := startServer(t, nil)
	const agent = "2f6f5d1e-9a7b-4c3d-8e2f-1a0b9c8d7e6f"
	c := dialSASL2(t, ts)
	success := c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
		userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`)
	tok := fastToken(t, success, 14*24*time.Hour)
	if tok == "" {
		t.Fatalf("no FAST token in %s", success)
	}
	c.bindAfter("phone")
	fast := func(token string, count int) xmpptest.Element {
		t.Helper()
		c := dialSASL2(t, ts)
		defer c.Close()
		return c.fastLogin(auth.FastNone, "alice", token, nil, agent, fmt.Sprintf(`<fast xmlns='urn:xmpp:fast:0' count='%d'/>`, count))
	}
	success = fast(tok, 1)
	if success.XMLName.Local != "success" {
		t.Fatalf("FAST login before the revocation: %s", success)
	}
	next := fastToken(t, success, 14*24*time.Hour)

	sessions, tokens, err := ts.srv.RevokeUser(context.Background(), jid.MustParse("alice@"+testHost))
	if err != nil {
		t.Fatal(err)
	}
	if sessions != 1 || tokens < 1 {
		t.Errorf("RevokeUser: %d sessions, %d tokens; want the bound session and the tokens", sessions, tokens)
	}
	if got := c.ExpectStreamError(); got != "not-authorized" {
		t.Errorf("the bound session ended with %q, want not-authorized", got)
	}
	for i, token := range []string{tok, next} {
		if got := condition(t, fast(token, 10+i)); got != "not-authorized" {
			t.Errorf("FAST token %d after the revocation: %s, want not-authorized", i, got)
		}
	}
}
