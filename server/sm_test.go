package server_test

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

// XEP-0198 stream management over real sockets: a client that counts
// what it handles and answers the server's <r/>, dropped and resumed
// over STARTTLS, direct TLS and WebSocket.

const nsSM = "urn:xmpp:sm:3"

// smConn is one connection of a stream-managed client: raw XMPP over TCP
// (with TLS) or over a WebSocket.
type smConn interface {
	write(s string)
	read() xmpptest.Element
	kill() // the network goes, without a closing tag
}

// tcpConn is an smConn over a TCP connection.
type tcpConn struct{ r *xmpptest.Raw }

func (c tcpConn) write(s string)         { c.r.Write(s) }
func (c tcpConn) read() xmpptest.Element { return c.r.Read() }
func (c tcpConn) kill() {
	if tc, ok := c.r.Conn().(*tls.Conn); ok {
		tc.NetConn().Close() // no close_notify either
		return
	}
	c.r.Close()
}

// wsConn is an smConn over a WebSocket.
type wsConn struct{ r *wsRaw }

func (c wsConn) write(s string) { c.r.send(s) }
func (c wsConn) read() xmpptest.Element {
	_, e := c.r.recv()
	return e
}
func (c wsConn) kill() { c.r.c.CloseNow() }

// smClient is a client with stream management: it counts the stanzas it
// handled since <enable/> (its h) and answers the server's <r/>.
type smClient struct {
	t    *testing.T
	conn smConn
	h    uint32
	id   string // the resumption id
	// silent: <r/> is not answered, so that the test decides what the
	// server learns was handled.
	silent bool
}

// next returns the next stanza or stream management element other than
// <r/>, which it answers.
func (c *smClient) next() xmpptest.Element {
	c.t.Helper()
	for {
		e := c.conn.read()
		switch {
		case e.XMLName.Space == nsSM && e.XMLName.Local == "r":
			if !c.silent {
				c.conn.write(fmt.Sprintf(`<a xmlns='%s' h='%d'/>`, nsSM, c.h))
			}
			continue
		case e.XMLName.Local == "message" || e.XMLName.Local == "presence" || e.XMLName.Local == "iq":
			c.h++
		}
		return e
	}
}

// nextMessage skips to the next message and returns its body.
func (c *smClient) nextMessage() string {
	c.t.Helper()
	for {
		if e := c.next(); e.XMLName.Local == "message" {
			b, _ := e.Child("body")
			return b.Text
		}
	}
}

// enable asks for stream management with resumption.
func (c *smClient) enable(attrs string) xmpptest.Element {
	c.t.Helper()
	c.conn.write(`<enable xmlns='` + nsSM + `' resume='true' ` + attrs + `/>`)
	e := c.conn.read()
	if e.XMLName.Space != nsSM || e.XMLName.Local != "enabled" {
		c.t.Fatalf("enable: %s", e)
	}
	c.id = smAttr(e, "id")
	return e
}

func smAttr(e xmpptest.Element, local string) string { return attr(e, "", local) }

// smLogin logs user in over STARTTLS with resource, enables stream
// management with resumption and, if available, sends initial presence.
func (ts *testServer) smLogin(t *testing.T, user, resource string, available bool) *smClient {
	t.Helper()
	r := xmpptest.DialRaw(t, ts.addr)
	r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", xtokenPayload(ts, t, user), resource)
	c := &smClient{t: t, conn: tcpConn{r}}
	c.enable("")
	if available {
		c.conn.write(`<presence/>`)
		if e := c.next(); e.XMLName.Local != "presence" {
			t.Fatalf("initial presence: got %s", e)
		}
	}
	return c
}

// resumeOn opens a stream over conn, authenticates (auth), opens the next
// and sends <resume/> for previd with h; it returns the answer.
func resumeOn(t *testing.T, conn smConn, open func() xmpptest.Element, auth func() xmpptest.Element, previd string, h uint32) xmpptest.Element {
	t.Helper()
	open()
	if e := auth(); e.XMLName.Local != "success" {
		t.Fatalf("auth: %s", e)
	}
	if f := open(); !hasChild(f, "sm") {
		t.Fatalf("no <sm/> in the features after SASL: %s", f)
	}
	conn.write(fmt.Sprintf(`<resume xmlns='%s' previd='%s' h='%d'/>`, nsSM, previd, h))
	return conn.read()
}

func hasChild(e xmpptest.Element, local string) bool {
	_, ok := e.Child(local)
	return ok
}

// resumeTCP resumes as user over a new connection: STARTTLS, or direct
// TLS when direct is set.
func (ts *testServer) resumeTCP(t *testing.T, user string, direct bool, previd string, h uint32) (*smClient, xmpptest.Element) {
	t.Helper()
	var r *xmpptest.Raw
	open := func() xmpptest.Element { return r.Open(testHost) }
	if direct {
		cfg := ts.tlsConfig()
		cfg.NextProtos = []string{"xmpp-client"}
		r = xmpptest.DialRawTLS(t, ts.directTLS, cfg)
	} else {
		r = xmpptest.DialRaw(t, ts.addr)
		first := true
		open = func() xmpptest.Element {
			if first {
				first = false
				return r.StartTLS(ts.tlsConfig(), testHost)
			}
			return r.Open(testHost)
		}
		r.Open(testHost)
	}
	auth := func() xmpptest.Element { return r.Auth("X-TOKEN", xtokenPayload(ts, t, user)) }
	c := &smClient{t: t, conn: tcpConn{r}, h: h, id: previd}
	return c, resumeOn(t, c.conn, open, auth, previd, h)
}

// wantResumed checks the answer to <resume/>.
func wantResumed(t *testing.T, e xmpptest.Element, previd string) {
	t.Helper()
	if e.XMLName.Space != nsSM || e.XMLName.Local != "resumed" || smAttr(e, "previd") != previd {
		t.Fatalf("resume: %s, want <resumed previd='%s'/>", e, previd)
	}
}

// wantFailed checks that <resume/> was refused with item-not-found.
func wantFailed(t *testing.T, e xmpptest.Element) {
	t.Helper()
	if e.XMLName.Space != nsSM || e.XMLName.Local != "failed" || !hasChild(e, "item-not-found") {
		t.Fatalf("resume: %s, want <failed><item-not-found/></failed>", e)
	}
}

// TestSMResumeMidBurst kills the connection while bob's 100 messages
// arrive; alice resumes over direct TLS and has each exactly once, in
// order.
func TestSMResumeMidBurst(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.smLogin(t, "alice", "phone", true)
	bob := ts.online(t, "bob", "pc")
	go func() {
		for i := range 100 {
			if err := bob.TrySend(fmt.Sprintf(`<message to='alice@localhost/phone' type='chat' id='b%d'><body>%d</body></message>`, i, i)); err != nil {
				return
			}
		}
	}()
	var got []string
	for len(got) < 30 {
		got = append(got, alice.nextMessage())
	}
	alice.conn.kill()

	alice, e := ts.resumeTCP(t, "alice", true, alice.id, alice.h)
	wantResumed(t, e, alice.id)
	for len(got) < 100 {
		got = append(got, alice.nextMessage())
	}
	for i, b := range got {
		if b != strconv.Itoa(i) {
			t.Fatalf("message %d is %q; got %v", i, b, got)
		}
	}
	// Nothing more: no copy of any message.
	alice.conn.write(`<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		e := alice.next()
		if e.XMLName.Local == "message" {
			t.Fatalf("a message after the 100th: %s", e)
		}
		if e.XMLName.Local == "iq" && smAttr(e, "id") == "end" {
			break
		}
	}
	// The stream goes on both ways after resumption.
	alice.conn.write(`<message to='bob@localhost/pc' type='chat'><body>back</body></message>`)
	if m := bob.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" }); m.Body != "back" {
		t.Errorf("bob got %+v", m)
	}
}

// TestSMResumeOtherUser refuses mallory alice's previd and leaves alice's
// session as it was.
func TestSMResumeOtherUser(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.smLogin(t, "alice", "phone", true)
	m, e := ts.resumeTCP(t, "mallory", false, alice.id, 0)
	wantFailed(t, e)
	// Refused, mallory may still bind.
	m.conn.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	if e := m.conn.read(); smAttr(e, "type") != "result" {
		t.Fatalf("bind after a refused resumption: %s", e)
	}
	// An unknown id is not found either.
	_, e = ts.resumeTCP(t, "alice", false, "no-such-id", 0)
	wantFailed(t, e)

	bob := ts.online(t, "bob", "pc")
	bob.Send(`<message to='alice@localhost/phone' type='chat'><body>still yours</body></message>`)
	if b := alice.nextMessage(); b != "still yours" {
		t.Errorf("alice got %q", b)
	}
	// And alice can drop and resume it herself.
	alice.conn.kill()
	alice, e = ts.resumeTCP(t, "alice", false, alice.id, alice.h)
	wantResumed(t, e, alice.id)
	bob.Send(`<message to='alice@localhost/phone' type='chat'><body>after</body></message>`)
	if b := alice.nextMessage(); b != "after" {
		t.Errorf("alice got %q after resuming", b)
	}
}

// TestSMResumptionTimeout: a session not resumed in time ends as a
// dropped one: contacts see it unavailable only then, and the messages
// it did not acknowledge are stored offline and delivered once at the
// next login; the one it acknowledged is not.
func TestSMResumptionTimeout(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.ResumptionTimeout = config.Duration{Duration: time.Second} })
	a := ts.online(t, "alice", "setup")
	bob := ts.online(t, "bob", "pc")
	xmpptest.SubscribeBoth(t, a, bob)
	a.Close()
	bob.PresenceFrom("alice@localhost/setup", "unavailable")

	alice := ts.smLogin(t, "alice", "phone", true)
	bob.PresenceFrom("alice@localhost/phone", "")
	// Only the explicit <a/> below says what alice handled: an answer to
	// the server's <r/> could acknowledge all three messages first.
	alice.silent = true
	for i := range 3 {
		bob.Send(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='t%d'><body>%d</body></message>`, i, i))
	}
	var first uint32 // h once the first message was handled
	for i := range 3 {
		if b := alice.nextMessage(); b != strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, b)
		}
		if i == 0 {
			first = alice.h
		}
	}
	// The first is acknowledged, the other two are not. A presence may
	// come between them (bob's, answering alice's), so h is the count
	// after the first, not the last count less two.
	alice.conn.write(fmt.Sprintf(`<a xmlns='%s' h='%d'/>`, nsSM, first))
	alice.conn.kill()
	bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "presence" && r.Type == "unavailable" })
	bob.Send(`<message to='alice@localhost/phone' type='chat' id='t3'><body>3</body></message>`)
	bob.PresenceFrom("alice@localhost/phone", "unavailable")

	// The messages are routed again after the unavailable presence went
	// out: a login racing with that may get the last ones live, before
	// the stored ones. Each comes once all the same.
	again := ts.online(t, "alice", "pc")
	var got []string
	for len(got) < 3 {
		got = append(got, again.NextNamed("message", "chat").Body)
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("after the timeout: %v, want 1, 2 and 3", got)
	}
	again.NoneWithin(500*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
}

// TestSMResumeWebSocket resumes over a new WebSocket a session whose
// WebSocket broke.
func TestSMResumeWebSocket(t *testing.T) {
	ws := startWeb(t, nil)
	dial := func() *wsRaw {
		c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
		if err != nil {
			t.Fatal(err)
		}
		return &wsRaw{t: t, c: c}
	}
	r := dial()
	r.login("X-TOKEN", xtokenPayload(ws.testServer, t, "alice"), "web")
	alice := &smClient{t: t, conn: wsConn{r}}
	alice.enable("max='60'")
	bob := ws.online(t, "bob", "pc")
	for i := range 5 {
		bob.Send(fmt.Sprintf(`<message to='alice@localhost/web' type='chat'><body>%d</body></message>`, i))
	}
	for i := range 3 {
		if b := alice.nextMessage(); b != strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, b)
		}
	}
	alice.conn.kill()

	r2 := dial()
	alice2 := &smClient{t: t, conn: wsConn{r2}, h: alice.h}
	e := resumeOn(t, alice2.conn, r2.open, func() xmpptest.Element {
		r2.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>` + base64.StdEncoding.EncodeToString(xtokenPayload(ws.testServer, t, "alice")) + `</auth>`)
		_, e := r2.recv()
		return e
	}, alice.id, alice.h)
	wantResumed(t, e, alice.id)
	bob.Send(`<message to='alice@localhost/web' type='chat'><body>5</body></message>`)
	for i := 3; i < 6; i++ {
		if b := alice2.nextMessage(); b != strconv.Itoa(i) {
			t.Fatalf("after resumption, message %d: %q", i, b)
		}
	}
}

// TestSMConflictWhileWaiting: a new session bound to the full JID of one
// waiting for resumption replaces it (RFC 6120 §7.7.2.2): the old one
// can no longer be resumed, and what it never got acknowledged reaches
// the new one.
func TestSMConflictWhileWaiting(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.smLogin(t, "alice", "phone", true)
	bob := ts.online(t, "bob", "pc")
	bob.Send(`<message to='alice@localhost/phone' type='chat' id='c0'><body>unacked</body></message>`)
	if b := alice.nextMessage(); b != "unacked" {
		t.Fatalf("alice got %q", b)
	}
	alice.conn.kill()

	again := ts.online(t, "alice", "phone")
	if m := again.NextNamed("message", "chat"); m.Body != "unacked" {
		t.Errorf("the new session got %+v, want the unacknowledged message", m)
	}
	_, e := ts.resumeTCP(t, "alice", false, alice.id, alice.h)
	wantFailed(t, e)
}
