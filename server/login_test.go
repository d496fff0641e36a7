package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
	"ottr.im/ottr/storage/sqlite"
)

func TestTokenLogin(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.mustLogin(t, "alice", "")
	if got := c.JID.Bare().String(); got != "alice@localhost" {
		t.Fatalf("bound %s, want alice@localhost/...", c.JID)
	}
	if c.JID.Resourcepart() == "" {
		t.Fatal("server assigned no resource")
	}
	if c.Sess.State()&xmpp.Secure == 0 {
		t.Fatal("session is not encrypted")
	}
	if v := c.Sess.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", v)
	}
	// A chosen resource is kept.
	d := ts.mustLogin(t, "alice", "phone")
	if d.JID.String() != "alice@localhost/phone" {
		t.Fatalf("bound %s", d.JID)
	}
}

func TestTokenLoginUppercaseUser(t *testing.T) {
	ts := startServer(t, nil)
	// The mechanism nodepreps the username: a token minted for dave logs
	// in Dave.
	c, err := ts.login(t, "Dave", "", auth.XToken, ts.token(t, "dave"))
	if err != nil {
		t.Fatal(err)
	}
	if c.JID.Bare().String() != "dave@localhost" {
		t.Fatalf("bound %s", c.JID)
	}
}

func TestDirectTLS(t *testing.T) {
	ts := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := ts.tlsConfig()
	cfg.NextProtos = []string{"xmpp-client"}
	conn, err := tls.Dial("tcp", ts.directTLS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "xmpp-client" {
		t.Errorf("ALPN %q, want xmpp-client", p)
	}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse("carol@localhost"), conn,
		xmpp.SASL("", ts.token(t, "carol"), auth.XToken), xmpptest.BindResource(""))
	if err != nil {
		t.Fatal(err)
	}
	if sess.LocalAddr().Bare().String() != "carol@localhost" {
		t.Fatalf("bound %s", sess.LocalAddr())
	}
	// A clean close: the server's closing tag comes back (with TLS's
	// close_notify, in one write: c2s.corkConn), then the end.
	if _, err := io.WriteString(conn, "</stream:stream>"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(conn)
	if !strings.HasSuffix(string(rest), "</stream:stream>") || err != nil {
		t.Fatalf("after the client's closing tag: %q, %v; want the server's, then EOF", rest, err)
	}
}

func TestTokenReplayRefused(t *testing.T) {
	ts := startServer(t, nil)
	tok := ts.token(t, "alice")
	if _, err := ts.login(t, "alice", "", auth.XToken, tok); err != nil {
		t.Fatalf("first use: %v", err)
	}
	// Another token for alice in between does not make the first usable.
	ts.mustLogin(t, "alice", "")
	_, err := ts.login(t, "alice", "", auth.XToken, tok)
	if err == nil {
		t.Fatal("replayed token logged in")
	}
	if !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("replay refused with %v, want not-authorized", err)
	}
}

func addAccount(t *testing.T, ts *testServer, user, password string) {
	t.Helper()
	// A second handle on the server's database, as `ottr user add` uses.
	store, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h, err := auth.HashPassword(password, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateAccount(context.Background(), testHost, user, h); err != nil {
		t.Fatal(err)
	}
}

func TestPlainLogin(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "bob", "hunter2 is long")
	c, err := ts.login(t, "bob", "laptop", auth.Plain, "hunter2 is long")
	if err != nil {
		t.Fatal(err)
	}
	if c.JID.String() != "bob@localhost/laptop" {
		t.Fatalf("bound %s", c.JID)
	}
	for _, tc := range []struct{ user, pw string }{
		{"bob", "hunter2"},
		{"nobody", "hunter2 is long"},
	} {
		if _, err := ts.login(t, tc.user, "", auth.Plain, tc.pw); err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Errorf("PLAIN %s/%s: err %v, want not-authorized", tc.user, tc.pw, err)
		}
	}
	// A token cannot be used as a PLAIN password, nor a password as a token.
	if _, err := ts.login(t, "bob", "", auth.Plain, ts.token(t, "bob")); err == nil {
		t.Error("token accepted as a PLAIN password")
	}
	if _, err := ts.login(t, "bob", "", auth.XToken, "hunter2 is long"); err == nil {
		t.Error("password accepted as a token")
	}
}

// TestSASLFailuresKeepStream sends one bad attempt after another on one
// stream; each gets its own failure condition and the stream stays
// usable, so a good attempt at the end logs in.
func TestSASLFailuresKeepStream(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	features := r.StartTLS(ts.tlsConfig(), testHost)
	mechs, ok := features.Child("mechanisms")
	if !ok {
		t.Fatalf("no mechanisms after TLS: %s", features)
	}
	var offered []string
	for _, m := range mechs.Children {
		offered = append(offered, m.Text)
	}
	if want := "SCRAM-SHA-256-PLUS,SCRAM-SHA-1-PLUS,X-TOKEN,SCRAM-SHA-256,SCRAM-SHA-1,PLAIN"; strings.Join(offered, ",") != want {
		t.Fatalf("offered %v, want %s", offered, want)
	}
	for _, tc := range []struct {
		name, mech string
		payload    string
		want       string
	}{
		{"unknown mechanism", "DIGEST-MD5", "x", "invalid-mechanism"},
		{"no separators", "X-TOKEN", "alice", "malformed-request"},
		{"malformed token", "X-TOKEN", "\x00alice\x00not a token", "malformed-request"},
		{"wrong token", "X-TOKEN", "\x00alice\x0012345678 " + strings.Repeat("A", 43) + "=", "not-authorized"},
	} {
		e := r.Auth(tc.mech, []byte(tc.payload))
		if e.XMLName.Local != "failure" {
			t.Fatalf("%s: got %s, want failure", tc.name, e)
		}
		if _, ok := e.Child(tc.want); !ok {
			t.Fatalf("%s: got %s, want <%s/>", tc.name, e, tc.want)
		}
	}
	e := r.Auth("X-TOKEN", []byte("\x00alice\x00"+ts.token(t, "alice")))
	if e.XMLName.Local != "success" {
		t.Fatalf("good token after failures: %s", e)
	}
	features = r.Open(testHost)
	if _, ok := features.Child("bind"); !ok {
		t.Fatalf("no bind after SASL: %s", features)
	}
}

func TestSASLEncodingAbortAndLimit(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	r.StartTLS(ts.tlsConfig(), testHost)
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>`)
	if e := r.Read(); e.XMLName.Local != "failure" {
		t.Fatalf("bad base64: %s", e)
	} else if _, ok := e.Child("incorrect-encoding"); !ok {
		t.Fatalf("bad base64: %s", e)
	}
	// No initial response: an empty challenge, then <abort/>.
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>`)
	if e := r.Read(); e.XMLName.Local != "challenge" {
		t.Fatalf("empty auth: %s, want challenge", e)
	}
	r.Write(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
	if e := r.Read(); e.XMLName.Local != "failure" {
		t.Fatalf("abort: %s", e)
	} else if _, ok := e.Child("aborted"); !ok {
		t.Fatalf("abort: %s", e)
	}
	// Three more failures reach the limit of five attempts.
	for i := 0; i < 3; i++ {
		if e := r.Auth("PLAIN", []byte("\x00alice\x00wrong")); e.XMLName.Local != "failure" {
			t.Fatalf("attempt %d: %s", i, e)
		}
	}
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + "AGFsaWNlAHdyb25n" + `</auth>`)
	if e := r.Read(); e.XMLName.Local != "failure" {
		t.Fatalf("sixth attempt: %s", e)
	}
	if cond := r.ExpectStreamError(); cond != "policy-violation" {
		t.Fatalf("after too many attempts: stream error %q, want policy-violation", cond)
	}
}

func TestHostUnknown(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	r.Write(`<?xml version='1.0'?><stream:stream to='example.net' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	if cond := r.ExpectStreamError(); cond != "host-unknown" {
		t.Fatalf("stream to example.net: %q, want host-unknown", cond)
	}
}

func TestRequireTLS(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	features := r.Open(testHost)
	st, ok := features.Child("starttls")
	if !ok {
		t.Fatalf("no starttls offered: %s", features)
	}
	if _, ok := st.Child("required"); !ok {
		t.Fatalf("starttls not required: %s", features)
	}
	if _, ok := features.Child("mechanisms"); ok {
		t.Fatalf("SASL offered before TLS: %s", features)
	}
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHg=</auth>`)
	if cond := r.ExpectStreamError(); cond == "" {
		t.Fatal("auth before TLS was not refused with a stream error")
	}
}

func TestTLSOptional(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		no := false
		c.C2S.RequireTLS = &no
	})
	r := xmpptest.DialRaw(t, ts.addr)
	features := r.Open(testHost)
	if _, ok := features.Child("mechanisms"); !ok {
		t.Fatalf("SASL not offered without TLS when TLS is optional: %s", features)
	}
	e := r.Auth("X-TOKEN", []byte("\x00alice\x00"+ts.token(t, "alice")))
	if e.XMLName.Local != "success" {
		t.Fatalf("token login without TLS: %s", e)
	}
}

func TestTLS11Refused(t *testing.T) {
	ts := startServer(t, nil)
	cfg := ts.tlsConfig()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	conn, err := net.Dial("tcp", ts.directTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := tls.Client(conn, cfg).Handshake(); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{l.Addr().String()}
	srv, err := server.New(server.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	// Start leaves nothing listening, but New opened storage.
	defer srv.Shutdown(context.Background())
	err = srv.Start(context.Background())
	if err == nil {
		t.Fatal("started on a port in use")
	}
	if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("error %q does not name the address", err)
	}
}

// loginFrom is ts.login from the local address local (another loopback
// address is another client address to the server's limits).
func (ts *testServer) loginFrom(t *testing.T, local, user string, mech sasl.Mechanism, secret string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.DialContext(ctx, "tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	origin, err := jid.New(user, testHost, "")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(ts.tlsConfig()), xmpp.SASL("", secret, mech), xmpptest.BindResource(""))
	if err != nil {
		return err
	}
	return sess.Close()
}

// Two client addresses: every loopback address reaches the server.
const (
	addrA = "127.0.0.1"
	addrB = "127.0.0.2"
)

// shiftDigits moves the first k digits of user into the end of tok's
// nonce: the MAC's input OTP+NONCE+user@host is unchanged.
func shiftDigits(tok, user string, k int) string {
	code, mac, _ := strings.Cut(tok, " ")
	return code + user[:k] + " " + mac
}

func wantCondition(t *testing.T, what string, err error, cond string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s logged in, want <%s/>", what, cond)
	}
	if !strings.Contains(err.Error(), cond) {
		t.Fatalf("%s: %v, want <%s/>", what, err, cond)
	}
}

// TestTokenDigitsCannotMove is security review #2 over real sockets: a
// token for 12345 must not log in 2345 or 45 with the username's digits
// moved into the nonce. With the default nonce_digits (32) the longer
// nonce is refused and the token still logs in 12345; with
// nonce_digits = 0 (any length) the review's exact attack, a token for
// 12345 with nonce 77, is refused for all three names, and a username
// that starts with a letter still logs in with a short nonce.
func TestTokenDigitsCannotMove(t *testing.T) {
	params := func(nonceDigits int) auth.TokenParams {
		p := testfixture.Params()
		p.NonceDigits = nonceDigits
		return p
	}
	mint := func(t *testing.T, p auth.TokenParams, user, nonce string) string {
		t.Helper()
		tok, err := auth.Mint(p, user+"@"+testHost, time.Now(), nonce)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t.Run("default", func(t *testing.T) {
		ts := startServer(t, nil)
		tok := mint(t, params(0), "12345", auth.NewNonce(32))
		for _, k := range []int{1, 3} {
			_, err := ts.login(t, "12345"[k:], "", auth.XToken, shiftDigits(tok, "12345", k))
			wantCondition(t, "token for 12345 as "+"12345"[k:], err, "not-authorized")
		}
		exact := mint(t, params(2), "12345", "77")
		for _, k := range []int{0, 1, 3} {
			_, err := ts.login(t, "12345"[k:], "", auth.XToken, shiftDigits(exact, "12345", k))
			wantCondition(t, "nonce-77 token for 12345 as "+"12345"[k:], err, "not-authorized")
		}
		c, err := ts.login(t, "12345", "", auth.XToken, tok)
		if err != nil {
			t.Fatalf("token for 12345: %v", err)
		}
		if got := c.JID.Bare().String(); got != "12345@"+testHost {
			t.Fatalf("bound %s", got)
		}
	})
	t.Run("any length", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) {
			anyLength := 0
			c.Token.NonceDigits = &anyLength
		})
		exact := mint(t, params(2), "12345", "77")
		for _, k := range []int{0, 1, 3} {
			_, err := ts.login(t, "12345"[k:], "", auth.XToken, shiftDigits(exact, "12345", k))
			wantCondition(t, "nonce-77 token for 12345 as "+"12345"[k:], err, "not-authorized")
		}
		c, err := ts.login(t, "alice", "", auth.XToken, mint(t, params(auth.AnyNonceLength), "alice", "77"))
		if err != nil {
			t.Fatalf("alice with nonce 77: %v", err)
		}
		if got := c.JID.Bare().String(); got != "alice@"+testHost {
			t.Fatalf("bound %s", got)
		}
	})
}

// TestBadTokensDoNotLockOut is security review #4 over real sockets: a
// dozen bad tokens for alice from address A do not stop alice's valid
// token, from A or from B.
func TestBadTokensDoNotLockOut(t *testing.T) {
	ts := startServer(t, nil)
	good := ts.token(t, "alice")
	bad := good[:len(good)-4] + "AAA="
	for i := 0; i < 12; i++ {
		wantCondition(t, fmt.Sprint("bad token ", i), ts.loginFrom(t, addrA, "alice", auth.XToken, bad), "not-authorized")
	}
	for _, from := range []string{addrA, addrB} {
		if err := ts.loginFrom(t, from, "alice", auth.XToken, ts.token(t, "alice")); err != nil {
			t.Fatalf("alice's valid token from %s after 12 bad ones: %v", from, err)
		}
	}
}

// TestBadPasswordsDoNotLockOut is security review #4 over real sockets:
// 20 wrong passwords for bob from address A refuse bob's right password
// from A, but from B it logs in at once; a wrong one from B is answered
// only after auth_failure_delay.
func TestBadPasswordsDoNotLockOut(t *testing.T) {
	ts := startServer(t, nil)
	delay := ts.cfg.Limits.AuthFailureDelay.Duration
	addAccount(t, ts, "bob", "the right password")
	refused := 0
	for i := 0; i < 20; i++ {
		err := ts.loginFrom(t, addrA, "bob", auth.Plain, "wrong")
		if err == nil {
			t.Fatalf("wrong password %d logged in", i)
		}
		if strings.Contains(err.Error(), "temporary-auth-failure") {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("20 wrong passwords from one address were never refused")
	}
	wantCondition(t, "bob's right password from A", ts.loginFrom(t, addrA, "bob", auth.Plain, "the right password"), "temporary-auth-failure")
	start := time.Now()
	if err := ts.loginFrom(t, addrB, "bob", auth.Plain, "the right password"); err != nil {
		t.Fatalf("bob's right password from B: %v", err)
	}
	if d := time.Since(start); d >= delay {
		t.Fatalf("bob's right password from B took %v (auth_failure_delay %v)", d, delay)
	}
	start = time.Now()
	wantCondition(t, "a wrong password for bob from B", ts.loginFrom(t, addrB, "bob", auth.Plain, "wrong"), "not-authorized")
	if d := time.Since(start); d < delay {
		t.Fatalf("a wrong password for bob from B answered after %v, want at least %v", d, delay)
	}
}
