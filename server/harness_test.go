package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
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

func startServer(t *testing.T, mutate func(*config.Config)) *testServer {
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
func (ts *testServer) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Mint(auth.TokenParams{OTPSeed: testSeed, TokenSecret: testSecret}, user+"@"+testHost, time.Now(), auth.NewNonce(32))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a mellium client session with a background Serve loop that
// collects what arrives.
type client struct {
	t    *testing.T
	sess *xmpp.Session
	jid  jid.JID
	in   chan received
	done chan error
	// backlog holds what waitFor passed over, oldest first.
	backlog []received
}

// received is one top-level element the client got.
type received struct {
	Name  string
	From  string
	To    string
	Type  string
	ID    string
	Body  string
	Inner string // the children, serialized
}

// login connects over STARTTLS and logs in with mech, secret and
// resource (empty: the server picks).
func (ts *testServer) login(t *testing.T, user, resource string, mech sasl.Mechanism, secret string) (*client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	origin := jid.MustParse(user + "@" + testHost)
	if resource != "" {
		origin, _ = origin.WithResource(resource)
	}
	sess, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(ts.tlsConfig()),
		xmpp.SASL("", secret, mech),
		bindResource(resource),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return newClient(t, sess), nil
}

func newClient(t *testing.T, sess *xmpp.Session) *client {
	c := &client{t: t, sess: sess, jid: sess.LocalAddr(), in: make(chan received, 1024), done: make(chan error, 1)}
	go func() {
		c.done <- sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			var el struct {
				From  string `xml:"from,attr"`
				To    string `xml:"to,attr"`
				Type  string `xml:"type,attr"`
				ID    string `xml:"id,attr"`
				Body  string `xml:"body"`
				Inner []byte `xml:",innerxml"`
			}
			// Re-encode, then decode from bytes: innerxml needs a byte
			// decoder.
			var buf bytes.Buffer
			enc := xml.NewEncoder(&buf)
			if _, err := xmlstream.Copy(noNSDecl{enc}, xmlstream.MultiReader(xmlstream.Token(*start), r)); err != nil {
				return err
			}
			if err := enc.Flush(); err != nil {
				return err
			}
			if err := xml.Unmarshal(buf.Bytes(), &el); err != nil {
				return err
			}
			c.in <- received{Name: start.Name.Local, From: el.From, To: el.To, Type: el.Type, ID: el.ID, Body: el.Body, Inner: string(el.Inner)}
			if start.Name.Local == "iq" && (el.Type == "get" || el.Type == "set") {
				// Answer pings and anything else with an empty result.
				var to jid.JID
				if el.From != "" {
					to = jid.MustParse(el.From)
				}
				_, err := xmlstream.Copy(r, stanza.IQ{ID: el.ID, To: to, Type: stanza.ResultIQ}.Wrap(nil))
				return err
			}
			return nil
		}))
	}()
	t.Cleanup(func() { c.close() })
	return c
}

func (ts *testServer) mustLogin(t *testing.T, user, resource string) *client {
	t.Helper()
	c, err := ts.login(t, user, resource, auth.XToken, ts.token(t, user))
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// send writes raw XML on the client's stream.
func (c *client) send(x string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := xml.NewDecoder(stringsReader(x))
	if err := c.sess.Send(ctx, d); err != nil && err != io.EOF {
		c.t.Fatalf("send %s: %v", x, err)
	}
}

// next waits for the next element the client receives (the oldest put
// aside by waitFor first).
func (c *client) next() received {
	c.t.Helper()
	if len(c.backlog) > 0 {
		r := c.backlog[0]
		c.backlog = c.backlog[1:]
		return r
	}
	return c.receive()
}

func (c *client) receive() received {
	c.t.Helper()
	select {
	case r := <-c.in:
		return r
	case err := <-c.done:
		c.done <- err
		c.t.Fatalf("%s: stream ended while waiting: %v", c.jid, err)
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s: nothing received in 5s", c.jid)
	}
	return received{}
}

// waitFor returns the first element, old or new, that match accepts;
// the others are kept, in order, for later waits.
func (c *client) waitFor(match func(received) bool) received {
	c.t.Helper()
	for i, r := range c.backlog {
		if match(r) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return r
		}
	}
	for {
		r := c.receive()
		if match(r) {
			return r
		}
		c.backlog = append(c.backlog, r)
	}
}

// nextNamed waits for an element with the given name and type ("*": any).
func (c *client) nextNamed(name, typ string) received {
	c.t.Helper()
	return c.waitFor(func(r received) bool { return r.Name == name && (typ == "*" || r.Type == typ) })
}

// quiet asserts nothing arrives for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.in:
		c.t.Fatalf("%s: unexpected %+v", c.jid, r)
	case <-time.After(d):
	}
}

// ended waits for the stream to end and returns Serve's error.
func (c *client) ended() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s: stream did not end", c.jid)
	}
	return nil
}

var closeMu sync.Mutex

func (c *client) close() {
	closeMu.Lock()
	defer closeMu.Unlock()
	c.sess.Close()
	c.sess.Conn().Close()
}

type strReader struct {
	s string
	i int
}

func (r *strReader) Read(p []byte) (int, error) {
	if r.i >= len(r.s) {
		return 0, io.EOF
	}
	n := copy(p, r.s[r.i:])
	r.i += n
	return n, nil
}

func stringsReader(s string) io.Reader { return &strReader{s: s} }

// noNSDecl drops namespace declaration attributes, which the encoder
// writes again from the names.
type noNSDecl struct{ *xml.Encoder }

func (w noNSDecl) EncodeToken(t xml.Token) error {
	if se, ok := t.(xml.StartElement); ok {
		attrs := se.Attr[:0:0]
		for _, a := range se.Attr {
			if !(a.Name.Space == "" && a.Name.Local == "xmlns") && a.Name.Space != "xmlns" {
				attrs = append(attrs, a)
			}
		}
		se.Attr = attrs
		t = se
	}
	return w.Encoder.EncodeToken(t)
}
