package main

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"ottr.im/ottr/auth"
)

// target is the server under test and how to log in to it.
type target struct {
	addr      string
	host      string
	direct    bool        // direct TLS (XEP-0368) instead of STARTTLS
	tls       *tls.Config // full handshakes: no session cache
	mech      string      // "X-TOKEN" or "PLAIN"
	token     auth.TokenParams
	password  string
	prefix    string // account names: prefix0, prefix1, …
	opTimeout time.Duration

	traceOnce sync.Once
	trace     bool // dump the first connection's bytes to stderr
}

// user is the i-th account name.
func (t *target) user(i int) string { return fmt.Sprintf("%s%d", t.prefix, i) }

// secret returns what user presents: a token minted now or the password.
func (t *target) secret(user string) (string, error) {
	if t.mech == "PLAIN" {
		return t.password, nil
	}
	return auth.Mint(t.token, strings.ToLower(user)+"@"+t.host, time.Now(), auth.NewNonce(32))
}

// client is one lean XMPP client connection: fixed byte templates out,
// markers scanned in.
type client struct {
	conn net.Conn // TLS once negotiated
	sc   *scanner
	wbuf []byte
	jid  string // bound full JID
}

// opError is a failed step, classified for the error counts.
type opError struct {
	Kind string
	Err  error
}

func (e *opError) Error() string { return e.Kind + ": " + e.Err.Error() }
func (e *opError) Unwrap() error { return e.Err }

// classify names the kind of failure of step for the error counts.
func classify(step string, err error) *opError {
	var oe *opError
	if errors.As(err, &oe) {
		return oe
	}
	var se *streamError
	var ae *authError
	var ne net.Error
	kind := step
	switch {
	case errors.As(err, &ae):
		kind = "auth:" + ae.Condition
	case errors.As(err, &se):
		kind = "stream-error:" + se.Condition
	case errors.As(err, &ne) && ne.Timeout():
		kind = step + ":timeout"
	case errors.Is(err, errStreamClosed), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		kind = step + ":closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = "connect:refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		kind = "connect:no-port"
	}
	return &opError{Kind: kind, Err: err}
}

func (c *client) write(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

func (c *client) writeString(s string) error {
	c.wbuf = append(c.wbuf[:0], s...)
	return c.write(c.wbuf)
}

func streamHeader(host string) string {
	return "<?xml version='1.0'?><stream:stream to='" + host +
		"' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
}

// dial connects and negotiates TLS, leaving the client before SASL with
// the server's features read.
func (t *target) dial() (*client, error) {
	deadline := time.Now().Add(t.opTimeout)
	raw, err := net.DialTimeout("tcp", t.addr, t.opTimeout)
	if err != nil {
		return nil, classify("connect", err)
	}
	raw.SetDeadline(deadline)
	tracing := false
	t.traceOnce.Do(func() { tracing = t.trace })
	// wrap shows the plain text of a traced connection.
	wrap := func(c net.Conn) net.Conn {
		if tracing {
			return &traceConn{Conn: c, w: os.Stderr}
		}
		return c
	}
	conn := wrap(raw)
	c := &client{conn: conn, sc: newScanner(conn, 4096)}
	header := streamHeader(t.host)
	if t.direct {
		tc := tls.Client(raw, t.tls)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, classify("tls", err)
		}
		c.conn = wrap(tc)
		c.sc.reset(c.conn)
	} else {
		if err := c.writeString(header); err != nil {
			raw.Close()
			return nil, classify("connect", err)
		}
		if err := c.sc.featuresEnd(); err != nil {
			raw.Close()
			return nil, classify("connect", err)
		}
		if err := c.writeString("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
			raw.Close()
			return nil, classify("starttls", err)
		}
		w, err := c.sc.until([]byte("<proceed"), []byte("<failure"))
		if err == nil && w == 1 {
			err = errors.New("server refused STARTTLS")
		}
		if err != nil {
			raw.Close()
			return nil, classify("starttls", err)
		}
		tc := tls.Client(raw, t.tls)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, classify("tls", err)
		}
		c.conn = wrap(tc)
		c.sc.reset(c.conn)
	}
	if err := c.writeString(header); err != nil {
		c.conn.Close()
		return nil, classify("tls", err)
	}
	if err := c.sc.featuresEnd(); err != nil {
		c.conn.Close()
		return nil, classify("tls", err)
	}
	return c, nil
}

// login connects, authenticates as user with the target's mechanism and
// binds resource; with presence it also sends initial presence and waits
// for the answer to a ping sent after it, so the server has handled the
// presence when login returns. The connection's deadline is cleared.
func (t *target) login(user, resource string, presence bool) (*client, error) {
	secret, err := t.secret(user)
	if err != nil {
		return nil, &opError{Kind: "mint", Err: err}
	}
	c, err := t.dial()
	if err != nil {
		return nil, err
	}
	if err := c.authenticate(t, user, secret, resource, presence); err != nil {
		c.conn.Close()
		return nil, err
	}
	c.conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *client) authenticate(t *target, user, secret, resource string, presence bool) error {
	payload := make([]byte, 0, 2+len(user)+len(secret))
	payload = append(payload, 0)
	payload = append(payload, user...)
	payload = append(payload, 0)
	payload = append(payload, secret...)
	b := c.wbuf[:0]
	b = append(b, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='"...)
	b = append(b, t.mech...)
	b = append(b, "'>"...)
	b = base64.StdEncoding.AppendEncode(b, payload)
	b = append(b, "</auth>"...)
	c.wbuf = b
	if err := c.write(b); err != nil {
		return classify("auth", err)
	}
	if err := c.sc.saslOutcome(); err != nil {
		return classify("auth", err)
	}
	if err := c.writeString(streamHeader(t.host)); err != nil {
		return classify("bind", err)
	}
	if err := c.sc.featuresEnd(); err != nil {
		return classify("bind", err)
	}
	if err := c.writeString("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" +
		resource + "</resource></bind></iq>"); err != nil {
		return classify("bind", err)
	}
	w, err := c.sc.until([]byte("<jid>"), []byte("type='error'"), []byte(`type="error"`))
	if err == nil && w != 0 {
		err = errors.New("bind refused")
	}
	if err != nil {
		return classify("bind", err)
	}
	j, err := c.sc.capture([]byte("</jid>"))
	if err != nil {
		return classify("bind", err)
	}
	c.jid = string(j)
	if presence {
		if err := c.writeString("<presence/><iq type='get' id='sync1' to='" + t.host +
			"'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
			return classify("presence", err)
		}
		// Any answer, result or error, means the presence before it was
		// handled.
		if _, err := c.sc.until(idMarkers("sync1")...); err != nil {
			return classify("presence", err)
		}
	}
	return nil
}

// close ends the stream and the connection without waiting for the
// server's end of stream.
func (c *client) close() {
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.writeString("</stream:stream>")
	c.conn.Close()
}

// traceConn copies a connection's bytes to w, for -trace.
type traceConn struct {
	net.Conn
	w  io.Writer
	mu sync.Mutex
}

func (t *traceConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.mu.Lock()
		fmt.Fprintf(t.w, "S: %q\n", p[:n])
		t.mu.Unlock()
	}
	return n, err
}

func (t *traceConn) Write(p []byte) (int, error) {
	t.mu.Lock()
	fmt.Fprintf(t.w, "C: %q\n", p)
	t.mu.Unlock()
	return t.Conn.Write(p)
}
