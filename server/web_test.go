package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	mws "mellium.im/xmpp/websocket"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

// testOrigin is the browser origin the web test servers allow.
const testOrigin = "https://app.example"

// webServer is a test server with the web transports on, over plain HTTP
// and HTTPS.
type webServer struct {
	*testServer
	http, https string // base URLs
}

func startWeb(t *testing.T, mutate func(*config.Config)) *webServer {
	t.Helper()
	ts := startServer(t, func(c *config.Config) {
		c.HTTP.Listen = []string{"127.0.0.1:0"}
		c.HTTP.TLSListen = []string{"127.0.0.1:0"}
		c.HTTP.Origins = []string{testOrigin}
		if mutate != nil {
			mutate(c)
		}
	})
	plain, secure := ts.srv.HTTPAddrs()
	if len(plain) != 1 || len(secure) != 1 {
		t.Fatalf("HTTPAddrs() = %v, %v", plain, secure)
	}
	return &webServer{testServer: ts, http: "http://" + plain[0].String(), https: "https://" + secure[0].String()}
}

func (ws *webServer) client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: ws.tlsConfig()},
		Timeout:   20 * time.Second,
	}
}

// dialWS opens a WebSocket to base (https://... or http://...) with the
// given Origin (none when empty) and subprotocols.
func (ws *webServer) dialWS(t *testing.T, base, origin string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	u := "ws" + strings.TrimPrefix(base, "http") + "/xmpp-websocket"
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:   ws.client(),
		HTTPHeader:   h,
		Subprotocols: protocols,
	})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// wsLogin logs in over WebSocket with mellium's RFC 7395 client session
// and returns the same test client the TCP tests use.
func (ws *webServer) wsLogin(t *testing.T, user, resource string, mech sasl.Mechanism, secret string) (*xmpptest.Client, error) {
	t.Helper()
	c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		return nil, err
	}
	if c.Subprotocol() != "xmpp" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	conn := websocket.NetConn(context.Background(), c, websocket.MessageText)
	origin, err := jid.New(user, testHost, "")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := xmpp.NewSession(ctx, origin.Domain(), origin, conn, xmpp.Secure,
		mws.Negotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
				xmpp.SASL("", secret, mech),
				xmpptest.BindResource(resource),
			}}
		}))
	if err != nil {
		conn.Close()
		return nil, err
	}
	return xmpptest.NewClient(t, sess), nil
}

// wsRaw speaks RFC 7395 by hand, to check the framing itself.
type wsRaw struct {
	t *testing.T
	c *websocket.Conn
}

func (r *wsRaw) send(s string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		r.t.Fatalf("ws write: %v", err)
	}
}

// recv returns the next message, checking that it is one complete XML
// element and nothing else (RFC 7395 §3.3.3).
func (r *wsRaw) recv() (string, xmpptest.Element) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := r.c.Read(ctx)
	if err != nil {
		r.t.Fatalf("ws read: %v", err)
	}
	if typ != websocket.MessageText {
		r.t.Fatalf("message type %v", typ)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var e xmpptest.Element
	if err := d.Decode(&e); err != nil {
		r.t.Fatalf("message %q is not an element: %v", b, err)
	}
	if off := d.InputOffset(); strings.TrimSpace(string(b[off:])) != "" {
		r.t.Fatalf("message %q holds more than one element", b)
	}
	return string(b), e
}

func attr(e xmpptest.Element, space, local string) string {
	for _, a := range e.Attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// open sends <open/> and checks the server's answer and features.
func (r *wsRaw) open() xmpptest.Element {
	r.t.Helper()
	r.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0" xml:lang="en"/>`)
	raw, open := r.recv()
	if !strings.HasPrefix(raw, "<open ") || open.XMLName.Space != "urn:ietf:params:xml:ns:xmpp-framing" {
		r.t.Fatalf("got %s, want <open/>", raw)
	}
	for _, a := range []string{"from", "id", "version"} {
		if attr(open, "", a) == "" {
			r.t.Errorf("<open/> without %s: %s", a, raw)
		}
	}
	if attr(open, "", "from") != testHost || attr(open, "", "version") != "1.0" || attr(open, "http://www.w3.org/XML/1998/namespace", "lang") == "" {
		r.t.Errorf("<open/> attributes: %s", raw)
	}
	raw, f := r.recv()
	if f.XMLName.Local != "features" || f.XMLName.Space != "http://etherx.jabber.org/streams" {
		r.t.Fatalf("got %s, want stream features", raw)
	}
	return f
}

func (r *wsRaw) login(mech string, payload []byte, resource string) string {
	r.t.Helper()
	f := r.open()
	if _, ok := f.Child("starttls"); ok {
		r.t.Errorf("STARTTLS offered over WebSocket: %s", f)
	}
	m, _ := f.Child("mechanisms")
	if !strings.Contains(m.String(), "X-TOKEN") || !strings.Contains(m.String(), "PLAIN") {
		r.t.Fatalf("mechanisms: %s", m)
	}
	r.send(fmt.Sprintf(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>`, mech, base64.StdEncoding.EncodeToString(payload)))
	if raw, e := r.recv(); e.XMLName.Local != "success" {
		r.t.Fatalf("auth: %s", raw)
	}
	if _, ok := r.open().Child("bind"); !ok {
		r.t.Fatal("no bind feature after SASL")
	}
	r.send(fmt.Sprintf(`<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource))
	raw, e := r.recv()
	if e.XMLName.Space != "jabber:client" {
		r.t.Errorf("bind result not qualified by jabber:client: %s", raw)
	}
	b, ok := e.Child("bind")
	if !ok {
		r.t.Fatalf("bind: %s", raw)
	}
	j, _ := b.Child("jid")
	return strings.TrimSpace(j.Text)
}

// expectStreamError reads until <close/> and returns the stream error
// condition sent before it.
func (r *wsRaw) expectStreamError() string {
	r.t.Helper()
	cond := ""
	for {
		raw, e := r.recv()
		switch {
		case raw == `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`:
			return cond
		case e.XMLName.Local == "error" && e.XMLName.Space == "http://etherx.jabber.org/streams":
			for _, c := range e.Children {
				if c.XMLName.Local != "text" {
					cond = c.XMLName.Local
				}
			}
		}
	}
}

func xtokenPayload(ts *testServer, t *testing.T, user string) []byte {
	return []byte("\x00" + user + "\x00" + ts.token(t, user))
}

func TestWebSocketTokenLogin(t *testing.T) {
	ws := startWeb(t, nil)
	c, err := ws.wsLogin(t, "alice", "web", auth.XToken, ws.token(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if c.JID.String() != "alice@localhost/web" {
		t.Fatalf("bound %s", c.JID)
	}
	// The session is a full one: the roster, presence and a ping work.
	c.Online()
	if r := c.IQ(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p1"); r.Type != "result" {
		t.Fatalf("ping: %+v", r)
	}
	// A replayed token is refused here as over TCP.
	tok := ws.token(t, "carol")
	if _, err := ws.wsLogin(t, "carol", "", auth.XToken, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.wsLogin(t, "carol", "", auth.XToken, tok); err == nil || !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("replayed token over WebSocket: %v", err)
	}
}

func TestWebSocketPlainLogin(t *testing.T) {
	ws := startWeb(t, nil)
	addAccount(t, ws.testServer, "bob", "hunter2 is long")
	c, err := ws.wsLogin(t, "bob", "", auth.Plain, "hunter2 is long")
	if err != nil {
		t.Fatal(err)
	}
	if c.JID.Bare().String() != "bob@localhost" {
		t.Fatalf("bound %s", c.JID)
	}
	if _, err := ws.wsLogin(t, "bob", "", auth.Plain, "wrong"); err == nil {
		t.Fatal("wrong password logged in")
	}
}

// TestWebSocketFraming checks RFC 7395 by hand over plain HTTP (the
// reverse proxy deployment): <open/> with its attributes, one element per
// message, stanzas qualified by jabber:client, <close/> answered by
// <close/>.
func TestWebSocketFraming(t *testing.T) {
	ws := startWeb(t, nil)
	c, resp, err := ws.dialWS(t, ws.http, "", "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "xmpp" {
		t.Fatalf("Sec-WebSocket-Protocol: %q", got)
	}
	r := &wsRaw{t: t, c: c}
	full := r.login("X-TOKEN", xtokenPayload(ws.testServer, t, "dave"), "raw")
	if full != "dave@localhost/raw" {
		t.Fatalf("bound %q", full)
	}
	r.send(`<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	raw, e := r.recv()
	if e.XMLName.Local != "iq" || attr(e, "", "id") != "r1" || !strings.Contains(raw, `jabber:client`) {
		t.Fatalf("roster result: %s", raw)
	}
	// A stanza split over two messages is not RFC 7395, but is read.
	r.send(`<iq xmlns='jabber:client' type='get' id='p1' to='localhost'>`)
	r.send(`<ping xmlns='urn:xmpp:ping'/></iq>`)
	if raw, e := r.recv(); attr(e, "", "id") != "p1" || attr(e, "", "type") != "result" {
		t.Fatalf("ping: %s", raw)
	}
	r.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
	if raw, _ := r.recv(); raw != `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />` {
		t.Fatalf("got %s, want <close/>", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = c.Read(ctx)
	if s := websocket.CloseStatus(err); s != websocket.StatusNormalClosure {
		t.Fatalf("after <close/>: %v (status %v), want a normal closure", err, s)
	}
}

// TestWebSocketAndTCP has a WebSocket user and a TCP user subscribe to
// each other, see each other's presence and chat.
func TestWebSocketAndTCP(t *testing.T) {
	ws := startWeb(t, nil)
	a, err := ws.wsLogin(t, "alice", "browser", auth.XToken, ws.token(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	a.Online()
	b := ws.online(t, "bob", "desktop")
	xmpptest.SubscribeBoth(t, a, b)

	a.Send(`<message to='bob@localhost' type='chat' id='m1'><body>hi from the browser</body></message>`)
	if m := b.NextNamed("message", "chat"); m.Body != "hi from the browser" || m.From != "alice@localhost/browser" {
		t.Fatalf("bob got %+v", m)
	}
	b.Send(`<message to='alice@localhost' type='chat' id='m2'><body>hi from the desktop</body></message>`)
	if m := a.NextNamed("message", "chat"); m.Body != "hi from the desktop" || m.From != "bob@localhost/desktop" {
		t.Fatalf("alice got %+v", m)
	}
	// Presence both ways: bob leaves, alice sees it; alice leaves, a new
	// bob session sees her gone.
	b.Close()
	a.PresenceFrom("bob@localhost/desktop", "unavailable")
	b2 := ws.online(t, "bob", "phone")
	b2.PresenceFrom("alice@localhost/browser", "")
	a.Close()
	b2.PresenceFrom("alice@localhost/browser", "unavailable")
}

func TestWebSocketRefused(t *testing.T) {
	ws := startWeb(t, nil)
	// Another page's origin.
	_, resp, err := ws.dialWS(t, ws.https, "https://evil.example", "xmpp")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, %v; want 403", resp, err)
	}
	// Without the xmpp subprotocol.
	_, resp, err = ws.dialWS(t, ws.https, testOrigin)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no subprotocol: %v, %v; want 400", resp, err)
	}
	_, resp, err = ws.dialWS(t, ws.https, testOrigin, "chat")
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("other subprotocol: %v, %v; want 400", resp, err)
	}
	// Not an upgrade at all.
	res, err := ws.client().Get(ws.https + "/xmpp-websocket")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %s", res.Status)
	}
	// The page's own origin is allowed without being listed, and so is no
	// Origin at all.
	host := strings.TrimPrefix(ws.https, "https://")
	if _, _, err := ws.dialWS(t, ws.https, "https://"+host, "xmpp"); err != nil {
		t.Fatalf("same origin: %v", err)
	}
	if _, _, err := ws.dialWS(t, ws.https, "", "xmpp"); err != nil {
		t.Fatalf("no origin: %v", err)
	}
}

func TestWebSocketSameOriginOnly(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) { c.HTTP.Origins = nil })
	if _, resp, err := ws.dialWS(t, ws.https, testOrigin, "xmpp"); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross origin with no list: %v; want 403", err)
	}
	host := strings.TrimPrefix(ws.http, "http://")
	if _, _, err := ws.dialWS(t, ws.http, "http://"+host, "xmpp"); err != nil {
		t.Fatalf("same origin: %v", err)
	}
}

// TestWebSocketLimits: a stanza over max_stanza_bytes gets
// policy-violation, as over TCP, and a client that never authenticates is
// timed out.
func TestWebSocketLimits(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) {
		c.Limits.MaxStanzaBytes = 8 << 10
		c.Limits.AuthTimeout = config.Duration{Duration: time.Second}
	})
	c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	r := &wsRaw{t: t, c: c}
	r.login("X-TOKEN", xtokenPayload(ws.testServer, t, "erin"), "big")
	r.send(`<message xmlns='jabber:client' to='bob@localhost'><body>` + strings.Repeat("x", 16<<10) + `</body></message>`)
	if cond := r.expectStreamError(); cond != "policy-violation" {
		t.Fatalf("oversized stanza: %q, want policy-violation", cond)
	}

	c, _, err = ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	r = &wsRaw{t: t, c: c}
	r.open()
	if cond := r.expectStreamError(); cond != "connection-timeout" {
		t.Fatalf("unauthenticated: %q, want connection-timeout", cond)
	}

	// A comment is restricted XML here too.
	c, _, err = ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	r = &wsRaw{t: t, c: c}
	r.open()
	r.send(`<!-- hello -->`)
	if cond := r.expectStreamError(); cond != "restricted-xml" {
		t.Fatalf("comment: %q, want restricted-xml", cond)
	}
}

// boshClient speaks XEP-0124/0206 by hand.
type boshClient struct {
	t      *testing.T
	ws     *webServer
	url    string
	origin string
	rid    uint64
	sid    string
	hc     *http.Client
}

func (ws *webServer) bosh(t *testing.T, base string) *boshClient {
	return &boshClient{t: t, ws: ws, url: base + "/http-bind", origin: testOrigin, rid: 1_000_000, hc: ws.client()}
}

// do posts a raw body and returns the status, the raw response and the
// parsed <body/>.
func (b *boshClient) do(body string) (int, string, xmpptest.Element) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("bosh post: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	var e xmpptest.Element
	if resp.StatusCode != http.StatusForbidden {
		if err := xml.Unmarshal(data, &e); err != nil {
			b.t.Fatalf("response %q: %v", data, err)
		}
		if e.XMLName.Space != "http://jabber.org/protocol/httpbind" || e.XMLName.Local != "body" {
			b.t.Fatalf("response is not a BOSH body: %s", data)
		}
	}
	return resp.StatusCode, string(data), e
}

// body builds the next request.
func (b *boshClient) body(attrs, payload string) string {
	b.rid++
	return fmt.Sprintf(`<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='%d' sid='%s'%s>%s</body>`,
		b.rid, b.sid, attrs, payload)
}

// send posts the next request and returns the response body.
func (b *boshClient) send(attrs, payload string) (string, xmpptest.Element) {
	b.t.Helper()
	code, raw, e := b.do(b.body(attrs, payload))
	if code != http.StatusOK {
		b.t.Fatalf("status %d: %s", code, raw)
	}
	return raw, e
}

// create starts a session with wait seconds.
func (b *boshClient) create(wait int) xmpptest.Element {
	b.t.Helper()
	b.rid++
	code, raw, e := b.do(fmt.Sprintf(`<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' content='text/xml; charset=utf-8' rid='%d' to='localhost' xml:lang='en' wait='%d' hold='1' ver='1.6' xmpp:version='1.0'/>`, b.rid, wait))
	if code != http.StatusOK || attr(e, "", "type") == "terminate" {
		b.t.Fatalf("create: %d %s", code, raw)
	}
	b.sid = attr(e, "", "sid")
	for _, a := range []string{"sid", "wait", "requests", "hold", "inactivity", "polling", "ver", "from"} {
		if attr(e, "", a) == "" {
			b.t.Errorf("creation response without %s: %s", a, raw)
		}
	}
	if attr(e, "urn:xmpp:xbosh", "version") != "1.0" || attr(e, "urn:xmpp:xbosh", "restartlogic") != "true" {
		b.t.Errorf("creation response without xmpp:version or xmpp:restartlogic: %s", raw)
	}
	if attr(e, "", "requests") != "2" || attr(e, "", "hold") != "1" || attr(e, "", "wait") != fmt.Sprint(wait) {
		b.t.Errorf("creation response attributes: %s", raw)
	}
	return e
}

// login creates a session and logs in with X-TOKEN, restarts and binds.
func (b *boshClient) login(user, resource string, wait int) string {
	b.t.Helper()
	e := b.create(wait)
	f, ok := e.Child("features")
	if !ok {
		b.t.Fatalf("no features in the creation response: %s", e)
	}
	if _, ok := f.Child("starttls"); ok {
		b.t.Errorf("STARTTLS offered over BOSH: %s", f)
	}
	raw, e := b.send("", fmt.Sprintf(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>%s</auth>`,
		base64.StdEncoding.EncodeToString(xtokenPayload(b.ws.testServer, b.t, user))))
	if _, ok := e.Child("success"); !ok {
		b.t.Fatalf("auth: %s", raw)
	}
	raw, e = b.send(" to='localhost' xml:lang='en' xmpp:restart='true'", "")
	f, _ = e.Child("features")
	if _, ok := f.Child("bind"); !ok {
		b.t.Fatalf("restart: %s", raw)
	}
	raw, e = b.send("", fmt.Sprintf(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource))
	iq, _ := e.Child("iq")
	bind, ok := iq.Child("bind")
	if !ok {
		b.t.Fatalf("bind: %s", raw)
	}
	j, _ := bind.Child("jid")
	return strings.TrimSpace(j.Text)
}

// poll sends an empty request in the background; the result arrives on
// the returned channel.
func (b *boshClient) poll() <-chan xmpptest.Element {
	req := b.body("", "")
	ch := make(chan xmpptest.Element, 1)
	go func() {
		_, _, e := b.do(req)
		ch <- e
	}()
	return ch
}

func recvBody(t *testing.T, ch <-chan xmpptest.Element, within time.Duration) xmpptest.Element {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(within):
		t.Fatalf("no BOSH response within %v", within)
	}
	return xmpptest.Element{}
}

// TestBOSHSession logs in over BOSH, holds several long polls, gets a
// message from a TCP user during one and answers it. The polls are held
// longer than write_timeout, which bounds only reading a request and
// writing its response.
func TestBOSHSession(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) { c.Limits.WriteTimeout = config.Duration{Duration: time.Second} })
	b := ws.bosh(t, ws.https)
	if full := b.login("alice", "bosh", 2); full != "alice@localhost/bosh" {
		t.Fatalf("bound %q", full)
	}
	// Long polls with nothing to say come back empty after wait.
	for range 3 {
		start := time.Now()
		e := recvBody(t, b.poll(), 5*time.Second)
		if len(e.Children) != 0 || attr(e, "", "type") != "" {
			t.Fatalf("empty poll: %s", e)
		}
		if d := time.Since(start); d < 1800*time.Millisecond {
			t.Fatalf("empty poll answered after %v, before wait", d)
		}
	}
	bob := ws.online(t, "bob", "tcp")
	raw, e := b.send("", `<presence xmlns='jabber:client'/>`)
	_ = raw
	// A message arrives while a request is held.
	ch := b.poll()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	bob.Send(`<message to='alice@localhost/bosh' type='chat' id='m1'><body>hello BOSH</body></message>`)
	for {
		e = recvBody(t, ch, 5*time.Second)
		if m, ok := e.Child("message"); ok {
			if !strings.Contains(m.String(), "hello BOSH") || attr(m, "", "from") != "bob@localhost/tcp" {
				t.Fatalf("message: %s", m)
			}
			if m.XMLName.Space != "jabber:client" {
				t.Errorf("message not qualified by jabber:client: %s", e)
			}
			break
		}
		ch = b.poll() // the presence echo came first
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("message delivered after %v: not during the hold", d)
	}
	b.send("", `<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>hello TCP</body></message>`)
	if m := bob.NextNamed("message", "chat"); m.Body != "hello TCP" || m.From != "alice@localhost/bosh" {
		t.Fatalf("bob got %+v", m)
	}
}

func TestBOSHRequestIDs(t *testing.T) {
	ws := startWeb(t, nil)
	b := ws.bosh(t, ws.http)
	b.login("carol", "r", 1)
	// A repeated rid gets the same response again.
	req := b.body("", `<iq xmlns='jabber:client' type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>`)
	_, first, e := b.do(req)
	if _, ok := e.Child("iq"); !ok {
		t.Fatalf("version: %s", first)
	}
	_, again, _ := b.do(req)
	if again != first {
		t.Fatalf("repeated rid: %s, want the cached %s", again, first)
	}
	// A rid past the window ends the session.
	b.rid += 5
	raw, e := b.send("", "")
	if attr(e, "", "type") != "terminate" || attr(e, "", "condition") != "item-not-found" {
		t.Fatalf("rid out of window: %s", raw)
	}
	// An unknown sid.
	b2 := ws.bosh(t, ws.http)
	b2.sid = "nosuchsession"
	raw, e = b2.send("", "")
	if attr(e, "", "type") != "terminate" || attr(e, "", "condition") != "item-not-found" {
		t.Fatalf("bad sid: %s", raw)
	}
	// Not a BOSH body.
	code, raw, e := b2.do("<html/>")
	if code != http.StatusBadRequest || attr(e, "", "condition") != "bad-request" {
		t.Fatalf("bad body: %d %s", code, raw)
	}
}

// TestBOSHTerminate: the client's terminate ends the c2s session, with
// its unavailable presence.
func TestBOSHTerminate(t *testing.T) {
	ws := startWeb(t, nil)
	bob := ws.online(t, "bob", "tcp")
	b := ws.bosh(t, ws.https)
	b.login("alice", "bosh", 2)
	before := ws.srv.Router().Sessions()
	_, raw, e := b.do(b.body(" type='terminate'", `<presence xmlns='jabber:client' type='unavailable'/>`))
	if attr(e, "", "type") != "terminate" {
		t.Fatalf("terminate: %s", raw)
	}
	waitFor(t, func() bool { return ws.srv.Router().Sessions() == before-1 })
	_ = bob
	// The session is gone.
	raw, e = b.send("", "")
	if attr(e, "", "type") != "terminate" {
		t.Fatalf("after terminate: %s", raw)
	}
}

func TestBOSHInactivity(t *testing.T) {
	ws := startWeb(t, func(c *config.Config) { c.HTTP.BOSHInactivity = config.Duration{Duration: time.Second} })
	b := ws.bosh(t, ws.https)
	b.login("dave", "idle", 1)
	if ws.srv.Router().Sessions() != 1 {
		t.Fatal("not bound")
	}
	// No request pending for longer than inactivity: the session ends.
	waitFor(t, func() bool { return ws.srv.Router().Sessions() == 0 })
	raw, e := b.send("", "")
	if attr(e, "", "type") != "terminate" {
		t.Fatalf("after inactivity: %s", raw)
	}
	// A client that keeps polling stays.
	b = ws.bosh(t, ws.https)
	b.login("dave", "busy", 1)
	for range 3 {
		recvBody(t, b.poll(), 5*time.Second)
	}
	if ws.srv.Router().Sessions() != 1 {
		t.Fatal("a polling session was ended")
	}
}

func TestBOSHOrigins(t *testing.T) {
	ws := startWeb(t, nil)
	b := ws.bosh(t, ws.https)
	b.origin = "https://evil.example"
	b.rid++
	code, _, _ := b.do(fmt.Sprintf(`<body xmlns='http://jabber.org/protocol/httpbind' rid='%d' to='localhost' wait='1' hold='1'/>`, b.rid))
	if code != http.StatusForbidden {
		t.Fatalf("foreign origin: %d, want 403", code)
	}
	// CORS preflight from the allowed origin.
	req, _ := http.NewRequest(http.MethodOptions, b.url, nil)
	req.Header.Set("Origin", testOrigin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != testOrigin ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Fatalf("preflight: %s %v", resp.Status, h)
	}
	req.Header.Set("Origin", "https://evil.example")
	resp, err = b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %s %v", resp.Status, resp.Header)
	}
	// A session from the allowed origin gets the CORS header on each
	// response; one without Origin (not a browser) works too.
	b = ws.bosh(t, ws.https)
	b.login("erin", "cors", 1)
	b.origin = ""
	recvBody(t, b.poll(), 5*time.Second)
}

func TestHostMeta(t *testing.T) {
	ws := startWeb(t, nil)
	hc := ws.client()
	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %s %v", url, resp.Status, resp.Header)
		}
		return resp, string(b)
	}
	host := strings.TrimPrefix(ws.https, "https://")
	resp, body := get(ws.https + "/.well-known/host-meta")
	if !strings.Contains(resp.Header.Get("Content-Type"), "xrd+xml") {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	var xrd struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"Link"`
	}
	if err := xml.Unmarshal([]byte(body), &xrd); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	want := map[string]string{
		"urn:xmpp:alt-connections:websocket": "wss://" + host + "/xmpp-websocket",
		"urn:xmpp:alt-connections:xbosh":     "https://" + host + "/http-bind",
	}
	got := map[string]string{}
	for _, l := range xrd.Links {
		got[l.Rel] = l.Href
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("host-meta links %v, want %v", got, want)
	}
	resp, body = get(ws.http + "/.well-known/host-meta.json")
	if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	plainHost := strings.TrimPrefix(ws.http, "http://")
	for _, w := range []string{`"rel":"urn:xmpp:alt-connections:websocket","href":"ws://` + plainHost + `/xmpp-websocket"`,
		`"rel":"urn:xmpp:alt-connections:xbosh","href":"http://` + plainHost + `/http-bind"`} {
		if !strings.Contains(body, w) {
			t.Errorf("host-meta.json %s lacks %s", body, w)
		}
	}
	// With a public URL, the links use it.
	ws2 := startWeb(t, func(c *config.Config) { c.HTTP.PublicURL = "https://chat.example/xmpp/" })
	_, body = get(ws2.http + "/.well-known/host-meta.json")
	if !strings.Contains(body, `"wss://chat.example/xmpp/xmpp-websocket"`) || !strings.Contains(body, `"https://chat.example/xmpp/http-bind"`) {
		t.Errorf("host-meta.json with public_url: %s", body)
	}
}

// TestWebShutdown: Shutdown ends a WebSocket and a BOSH session with
// system-shutdown.
func TestWebShutdown(t *testing.T) {
	ws := startWeb(t, nil)
	c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	r := &wsRaw{t: t, c: c}
	r.login("X-TOKEN", xtokenPayload(ws.testServer, t, "alice"), "ws")
	b := ws.bosh(t, ws.https)
	b.login("bob", "bosh", 10)
	held := b.poll()
	time.Sleep(200 * time.Millisecond)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ws.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	if cond := r.expectStreamError(); cond != "system-shutdown" {
		t.Errorf("websocket: %q, want system-shutdown", cond)
	}
	r.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
	// Read on, so that the client answers the server's close frame.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("websocket end: %v", err)
	}
	e := recvBody(t, held, 10*time.Second)
	if attr(e, "", "type") != "terminate" || attr(e, "", "condition") != "system-shutdown" {
		t.Errorf("bosh: %s, want a system-shutdown terminate", e)
	}
	wg.Wait()
}

// forgedCDATA is the body of a chat message an attacker sends to a web
// user: a real CDATA section (which c2s forwards as the client wrote it)
// holding "-->" and whole stanzas, which a splitter that ends CDATA at
// "-->" would hand on as stanzas of their own (security review #1).
const forgedCDATA = `<![CDATA[ --> </body></message>` +
	`<iq xmlns='jabber:client' from='victim@localhost' type='set' id='push'><query xmlns='jabber:iq:roster'><item jid='admin@localhost' subscription='both'/></query></iq>` +
	`<message xmlns='jabber:client' from='admin@localhost'><body>forged</body></message><message><body> ]]>`

// forgedText is the text of forgedCDATA's body.
var forgedText = strings.TrimSuffix(strings.TrimPrefix(forgedCDATA, "<![CDATA["), "]]>")

// TestWebForgedStanza: a TCP user sends a web user a chat message with a
// CDATA section that holds "-->" and stanzas; the WebSocket victim gets
// exactly that one message, body intact, and nothing forged.
func TestWebForgedStanza(t *testing.T) {
	ws := startWeb(t, nil)
	c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	victim := &wsRaw{t: t, c: c}
	if full := victim.login("X-TOKEN", xtokenPayload(ws.testServer, t, "victim"), "web"); full != "victim@localhost/web" {
		t.Fatalf("bound %q", full)
	}
	mallory := xmpptest.DialRaw(t, ws.addr)
	mallory.Bind(ws.tlsConfig(), testHost, "X-TOKEN", xtokenPayload(ws.testServer, t, "mallory"), "x")
	mallory.Write(`<message to='victim@localhost/web' type='chat' id='m1'><body>` + forgedCDATA + `</body></message>`)
	mallory.Write(`<message to='victim@localhost/web' type='chat' id='m2'><body>after</body></message>`)

	raw, m := victim.recv()
	if m.XMLName.Local != "message" || attr(m, "", "id") != "m1" || attr(m, "", "from") != "mallory@localhost/x" {
		t.Fatalf("first message: %s", raw)
	}
	if body, _ := m.Child("body"); body.Text != forgedText {
		t.Fatalf("body %q, want %q (message %s)", body.Text, forgedText, raw)
	}
	if raw, m := victim.recv(); attr(m, "", "id") != "m2" || attr(m, "", "from") != "mallory@localhost/x" {
		t.Fatalf("after the message, got %s, want the next message from mallory", raw)
	}

	// A BOSH victim: the two messages, in bodies, and nothing else.
	b := ws.bosh(t, ws.https)
	if full := b.login("victim", "bosh", 2); full != "victim@localhost/bosh" {
		t.Fatalf("bound %q", full)
	}
	mallory.Write(`<message to='victim@localhost/bosh' type='chat' id='b1'><body>` + forgedCDATA + `</body></message>`)
	mallory.Write(`<message to='victim@localhost/bosh' type='chat' id='b2'><body>after</body></message>`)
	var got []xmpptest.Element
	for len(got) < 2 {
		got = append(got, recvBody(t, b.poll(), 5*time.Second).Children...)
	}
	if len(got) != 2 || attr(got[0], "", "id") != "b1" || attr(got[1], "", "id") != "b2" {
		t.Fatalf("BOSH victim got %v, want messages b1 and b2", got)
	}
	if body, _ := got[0].Child("body"); body.Text != forgedText || attr(got[0], "", "from") != "mallory@localhost/x" {
		t.Fatalf("BOSH victim got %s", got[0])
	}
}

// httpAddr is the plain HTTP listener's address.
func (ws *webServer) httpAddr() string { return strings.TrimPrefix(ws.http, "http://") }

// dialTCP connects to addr; the connection closes when the test ends.
func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWebConnectionLimits: HTTP connections count against
// limits.max_connections together with c2s connections (a WebSocket
// session once), and against the same rate per address (security review
// #5).
func TestWebConnectionLimits(t *testing.T) {
	t.Run("total cap", func(t *testing.T) {
		ws := startWeb(t, func(c *config.Config) { c.Limits.MaxConnections = 5 })
		var conns []net.Conn
		for range 3 {
			conns = append(conns, dialTCP(t, ws.httpAddr()))
		}
		for range 2 {
			conns = append(conns, dialTCP(t, ws.addr))
		}
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 5 })
		if !closedByServer(dialTCP(t, ws.httpAddr())) {
			t.Fatal("HTTP connection over the cap was served")
		}
		if !closedByServer(dialTCP(t, ws.addr)) {
			t.Fatal("c2s connection over the cap was served")
		}
		for _, c := range conns {
			c.Close()
		}
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 0 })
		// A WebSocket session counts once, not as its connection too.
		c, _, err := ws.dialWS(t, ws.http, "", "xmpp")
		if err != nil {
			t.Fatal(err)
		}
		r := &wsRaw{t: t, c: c}
		r.login("X-TOKEN", xtokenPayload(ws.testServer, t, "alice"), "ws")
		if n := ws.srv.OpenConnections(); n != 1 {
			t.Fatalf("%d connections counted for one WebSocket session", n)
		}
	})
	t.Run("rate per address", func(t *testing.T) {
		ws := startWeb(t, func(c *config.Config) {
			c.Limits.ConnectionRate = config.Rate{N: 1, Per: time.Minute}
			c.Limits.ConnectionBurst = 3
		})
		refused := 0
		for i, addr := range []string{ws.httpAddr(), ws.addr, ws.httpAddr(), ws.httpAddr(), ws.addr} {
			c := dialTCP(t, addr)
			if addr == ws.addr {
				c.Write([]byte(streamHeader))
			}
			if closedByServer(c) {
				refused++
				if i < 3 {
					t.Errorf("connection %d refused within the burst", i)
				}
			}
		}
		if refused != 2 {
			t.Fatalf("%d of 5 connections refused, want 2 (burst 3, shared by HTTP and c2s)", refused)
		}
	})
}

// TestConnectionsPerAddress: limits.connections_per_address caps the
// connections one address holds open at once, c2s (STARTTLS and direct
// TLS) and HTTP together, a WebSocket session counting once; the one over
// the cap is closed at once while another address still logs in, and
// closing one lets a new one in (red-team finding, security review #5).
func TestConnectionsPerAddress(t *testing.T) {
	t.Run("one address", func(t *testing.T) {
		ws := startWeb(t, func(c *config.Config) {
			c.Limits.ConnectionsPerAddress = 5
			c.Limits.MaxConnections = 50
		})
		c, _, err := ws.dialWS(t, ws.http, "", "xmpp")
		if err != nil {
			t.Fatal(err)
		}
		(&wsRaw{t: t, c: c}).login("X-TOKEN", xtokenPayload(ws.testServer, t, "alice"), "ws")
		conns := []net.Conn{
			dialTCP(t, ws.httpAddr()),
			dialTCP(t, ws.httpAddr()),
			dialTCP(t, ws.addr),
			dialTCP(t, ws.directTLS),
		}
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 5 })
		if !closedByServer(dialTCP(t, ws.httpAddr())) {
			t.Fatal("6th connection from one address (HTTP) was served")
		}
		extra := dialTCP(t, ws.addr)
		extra.Write([]byte(streamHeader))
		if !closedByServer(extra) {
			t.Fatal("6th connection from one address (c2s) was served")
		}
		if !closedByServer(dialTCP(t, ws.directTLS)) {
			t.Fatal("6th connection from one address (direct TLS) was served")
		}
		if n := ws.srv.OpenConnections(); n != 5 {
			t.Fatalf("%d connections open, want 5", n)
		}
		// Another address is not held back by the first.
		if err := ws.loginFrom(t, addrB, "bob", auth.XToken, ws.token(t, "bob")); err != nil {
			t.Fatalf("login from %s with %s at its cap: %v", addrB, addrA, err)
		}
		// Closing one lets a new one in.
		conns[2].Close()
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 4 })
		again := dialTCP(t, ws.addr)
		again.Write([]byte(streamHeader))
		if closedByServer(again) {
			t.Fatal("a new connection was refused after one closed")
		}
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 5 })
		// Every count is given back when the connections close.
		for _, c := range append(conns, again) {
			c.Close()
		}
		c.CloseNow()
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 0 })
		for range 5 {
			conns = append(conns, dialTCP(t, ws.httpAddr()))
		}
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 5 })
	})
	t.Run("trusted proxy", func(t *testing.T) {
		ws := startWeb(t, func(c *config.Config) {
			c.Limits.ConnectionsPerAddress = 2
			c.HTTP.TrustedProxies = []string{"127.0.0.1/32"}
		})
		// The proxy's connections carry many clients: not counted per
		// address.
		for range 4 {
			dialTCP(t, ws.httpAddr())
		}
		waitFor(t, func() bool { return ws.srv.OpenConnections() == 4 })
		// Its clients' sessions count for their own address.
		for i := range 2 {
			if got := wsThrough(t, ws, "192.0.2.7"); got != http.StatusSwitchingProtocols {
				t.Fatalf("WebSocket %d for one client behind the proxy: HTTP %d, want 101", i+1, got)
			}
			waitFor(t, func() bool { return ws.srv.OpenConnections() == 5+i })
		}
		if got := wsThrough(t, ws, "192.0.2.7"); got != http.StatusServiceUnavailable {
			t.Fatalf("WebSocket 3 for one client behind the proxy: HTTP %d, want 503", got)
		}
		if got := wsThrough(t, ws, "192.0.2.8"); got != http.StatusSwitchingProtocols {
			t.Fatalf("WebSocket for another client behind the proxy: HTTP %d, want 101", got)
		}
	})
}

// wsThrough opens a WebSocket over plain HTTP as a proxy would for client
// (in X-Forwarded-For) and returns the HTTP status; a session opened is
// served (it answered <open/>) and stays open until the test ends.
func wsThrough(t *testing.T, ws *webServer, client string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("X-Forwarded-For", client)
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ws.http, "http")+"/xmpp-websocket", &websocket.DialOptions{
		HTTPClient:   ws.client(),
		HTTPHeader:   h,
		Subprotocols: []string{"xmpp"},
	})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
		(&wsRaw{t: t, c: c}).open()
	}
	if resp == nil {
		t.Fatalf("WebSocket for %s: %v", client, err)
	}
	return resp.StatusCode
}

// boshCreateStart is the start of a session creation request.
const boshCreateStart = `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='localhost' wait='10' hold='1' xmpp:version='1.0'>`

// postHead is the head of a request to the BOSH endpoint announcing a body
// of n bytes.
func postHead(n int) string {
	return fmt.Sprintf("POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n\r\n", n)
}

// TestBOSHPrebindBody: a request head is limited to max_prebind_bytes;
// before a resource is bound, a request body over
// max_prebind_bytes (and the <body/> wrapper) is refused with 413 and
// policy-violation as soon as that much arrived, without waiting for the
// rest (security review #5); once bound, a body holds a stanza up to
// max_stanza_bytes.
func TestBOSHPrebindBody(t *testing.T) {
	ws := startWeb(t, nil)

	// A request head over the limit.
	req, _ := http.NewRequest(http.MethodGet, ws.http+"/http-bind", nil)
	req.Header.Set("X-Padding", strings.Repeat("p", 24<<10))
	resp, err := ws.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("24 KiB of headers: %s, want 431", resp.Status)
	}

	// A creation request announcing 300 KiB, of which 32 KiB are sent.
	c := dialTCP(t, ws.httpAddr())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, postHead(300<<10)+boshCreateStart+strings.Repeat(" ", 32<<10)); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer while the body is unfinished: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(data), "policy-violation") {
		t.Fatalf("unfinished 300 KiB body: %d %s, want 413 with policy-violation", resp.StatusCode, data)
	}

	// A session not bound yet: a 20 KiB <auth/> ends it.
	b := ws.bosh(t, ws.https)
	b.create(10)
	code, raw, e := b.do(b.body("", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>`+strings.Repeat("A", 20<<10)+`</auth>`))
	if code != http.StatusRequestEntityTooLarge || attr(e, "", "condition") != "policy-violation" {
		t.Fatalf("20 KiB before bind: %d %s", code, raw)
	}
	if _, e := b.send("", ""); attr(e, "", "type") != "terminate" {
		t.Fatalf("the session goes on after an oversized request: %s", e)
	}

	// Bound: a 64 KiB message goes through.
	bob := ws.online(t, "bob", "tcp")
	b = ws.bosh(t, ws.https)
	b.login("alice", "bosh", 2)
	text := strings.Repeat("x", 64<<10)
	b.send("", `<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>`+text+`</body></message>`)
	if m := bob.NextNamed("message", "chat"); m.Body != text {
		t.Fatalf("bob got a body of %d bytes, want %d", len(m.Body), len(text))
	}
}

// TestWebSocketPrebindLimit: before a resource is bound a 64 KiB message
// ends the stream with policy-violation (security review #5); once
// bound, a 64 KiB stanza goes through.
func TestWebSocketPrebindLimit(t *testing.T) {
	ws := startWeb(t, nil)
	for _, msg := range []string{
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + strings.Repeat("A", 64<<10) + `</auth>`,
		strings.Repeat(" ", 64<<10),
	} {
		c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
		if err != nil {
			t.Fatal(err)
		}
		r := &wsRaw{t: t, c: c}
		r.open()
		r.send(msg)
		if cond := r.expectStreamError(); cond != "policy-violation" {
			t.Fatalf("64 KiB message %.20q... before bind: %q, want policy-violation", msg, cond)
		}
	}

	bob := ws.online(t, "bob", "tcp")
	c, _, err := ws.dialWS(t, ws.https, testOrigin, "xmpp")
	if err != nil {
		t.Fatal(err)
	}
	r := &wsRaw{t: t, c: c}
	r.login("X-TOKEN", xtokenPayload(ws.testServer, t, "alice"), "ws")
	text := strings.Repeat("x", 64<<10)
	r.send(`<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'><body>` + text + `</body></message>`)
	if m := bob.NextNamed("message", "chat"); m.Body != text {
		t.Fatalf("bob got a body of %d bytes, want %d", len(m.Body), len(text))
	}
}

// TestManyUnfinishedBOSHBodies: 300 HTTP connections each send 250 KiB of
// a 320 KiB session creation request and stall, and 300 more send 15 KiB
// of one and stall. Before a resource is bound a body is read only to the
// pre-bind limit: the first are answered 413 and closed at once, the
// others hold what fits under the limit, so memory stays bounded
// (security review #5: 113 MiB for the first 300 before).
func TestManyUnfinishedBOSHBodies(t *testing.T) {
	ws := startWeb(t, liftConnectionRate) // all from 127.0.0.1
	before := rssMiB(t)
	const n = 300
	big := []byte(postHead(320<<10) + boshCreateStart + strings.Repeat("x", 250<<10))
	small := []byte(postHead(320<<10) + boshCreateStart + strings.Repeat("x", 15<<10))
	var wg sync.WaitGroup
	for _, req := range [][]byte{big, small} {
		for range n {
			c := dialTCP(t, ws.httpAddr())
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetWriteDeadline(time.Now().Add(20 * time.Second))
				c.Write(req) // the big ones are refused early: the write may fail
			}()
		}
	}
	wg.Wait()
	// The big ones closed, the small ones held.
	waitFor(t, func() bool { return ws.srv.OpenConnections() == n })
	time.Sleep(200 * time.Millisecond) // let the last reads land
	grew := rssMiB(t) - before
	t.Logf("RSS grew %.1f MiB for %d HTTP connections with unfinished BOSH bodies (%.1f KiB each)", grew, 2*n, grew*1024/(2*n))
	checkRSS(t, grew, 40)
	canary(t, ws.testServer)
}
