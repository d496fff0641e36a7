package server_test

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/testfixture/testserver"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/server"
)

// The adversarial suite: one case per abuse the server must survive, each
// over real sockets and followed by a canary (a normal login and message
// still work) and, where the abuse is about memory, an RSS bound.

// canary checks that the server still serves normal users.
func canary(t *testing.T, ts *testServer) {
	t.Helper()
	a := ts.mustLogin(t, "canary-a", "")
	b := ts.mustLogin(t, "canary-b", "")
	a.Send(fmt.Sprintf(`<message to='%s' type='chat'><body>still alive</body></message>`, b.JID))
	if m := b.NextNamed("message", "chat"); m.Body != "still alive" {
		t.Fatalf("canary got %+v", m)
	}
	a.Close()
	b.Close()
}

// checkRSS fails the test when grew exceeds bound MiB, unless the race
// detector (which multiplies memory) is on.
func checkRSS(t *testing.T, grew, bound float64) {
	t.Helper()
	if grew > bound && !raceEnabled {
		t.Fatalf("RSS grew %.1f MiB, bound %.0f MiB", grew, bound)
	}
}

// rssMiB is this process's resident set (server and test clients alike).
func rssMiB(t *testing.T) float64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc: cannot measure RSS")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

const streamHeader = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// TestHostileInput sends one bad stream per case, before and after
// authentication, and checks the stream error the server ends it with.
func TestHostileInput(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		name  string
		auth  bool   // send after logging in (else right after the header)
		input string // sent after the header (or the bind)
		bare  bool   // input replaces the header
		want  string
	}{
		{"comment", false, `<!-- hello -->`, false, "restricted-xml"},
		{"comment in stanza", true, `<message><!-- x --></message>`, false, "restricted-xml"},
		{"processing instruction", true, `<?evil data?>`, false, "restricted-xml"},
		{"doctype", false, `<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY lol "lol">]>`, true, "restricted-xml"},
		{"entity declaration", true, `<message><!ENTITY x "y"></message>`, false, "restricted-xml"},
		{"undefined entity", true, `<message><body>&lol;</body></message>`, false, "not-well-formed"},
		{"invalid utf-8", true, "<message><body>\xff\xfe</body></message>", false, "not-well-formed"},
		{"mismatched tags", true, `<message><body></message>`, false, "not-well-formed"},
		{"too deep", true, `<message>` + strings.Repeat("<a>", 40), false, "policy-violation"},
		{"too many attributes", true, `<message` + manyAttrs(70) + `/>`, false, "policy-violation"},
		{"wrong namespace", false, `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`, true, "invalid-namespace"},
		{"wrong stream namespace", false, `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:not-streams'>`, true, "invalid-namespace"},
		{"unsupported version", false, `<?xml version='1.0'?><stream:stream to='localhost' version='2.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, true, "unsupported-version"},
		{"unknown host", false, `<?xml version='1.0'?><stream:stream to='evil.example' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, true, "host-unknown"},
		{"stanza before auth", false, `<message to='bob@localhost'><body>hi</body></message>`, false, "not-authorized"},
		{"unknown top-level element", true, `<foo xmlns='urn:foo'/>`, false, "unsupported-stanza-type"},
		{"second auth after bind", true, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>`, false, "unsupported-stanza-type"},
		{"stream header after bind", true, `<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, false, "bad-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := xmpptest.DialRaw(t, ts.addr)
			switch {
			case tc.bare:
				r.Write(tc.input)
			case tc.auth:
				r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00attacker\x00"+ts.token(t, "attacker")), "r")
				r.Write(tc.input)
			default:
				r.Write(streamHeader)
				r.Write(tc.input)
			}
			if cond := r.ExpectStreamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
		})
	}
	canary(t, ts)
}

// TestStateAbuse covers misuse of a valid stream that ends in a stanza
// error, not a stream error.
func TestStateAbuse(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	full := r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00alice\x00"+ts.token(t, "alice")), "r")
	for _, tc := range []struct{ name, send, want string }{
		{"bind twice", `<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>other</resource></bind></iq>`, "not-allowed"},
		{"iq without id", `<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "bad-request"},
		{"iq of unknown type", `<iq type='poke' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "bad-request"},
		{"malformed to", `<message to='a@@b' id='m'><body>x</body></message>`, "jid-malformed"},
		{"malformed from", `<message from='@x' to='alice@localhost' id='m2'><body>x</body></message>`, "jid-malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.Write(tc.send)
			e := r.Read()
			if e.XMLName.Local == "" {
				t.Fatalf("no answer")
			}
			errEl, ok := e.Child("error")
			if !ok {
				t.Fatalf("got %s, want an error", e)
			}
			if _, ok := errEl.Child(tc.want); !ok {
				t.Fatalf("got %s, want %s", e, tc.want)
			}
		})
	}
	// A spoofed from is overwritten with the sender's full JID.
	r.Write(`<iq type='get' id='own' from='bob@localhost/x' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	e := r.Read()
	for _, a := range e.Attrs {
		if a.Name.Local == "to" && a.Value != full {
			t.Fatalf("reply to %q, want %q: the spoofed from was kept", a.Value, full)
		}
	}
	canary(t, ts)
}

func TestHugeStanza(t *testing.T) {
	ts := startServer(t, nil)
	before := rssMiB(t)
	r := xmpptest.DialRaw(t, ts.addr)
	r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00big\x00"+ts.token(t, "big")), "r")
	// 10 MB in one message; the server stops reading at its limit.
	go func() {
		chunk := strings.Repeat("x", 64<<10)
		// TryWrite: this goroutine must not fail the test (it may
		// outlive it).
		if _, err := r.TryWrite(`<message to='big@localhost'><body>`); err != nil {
			return
		}
		for i := 0; i < 160; i++ {
			if _, err := r.TryWrite(chunk); err != nil {
				return
			}
		}
	}()
	if cond := r.ExpectStreamError(); cond != "policy-violation" {
		t.Fatalf("10 MB stanza: %q, want policy-violation", cond)
	}
	grew := rssMiB(t) - before
	t.Logf("RSS grew %.1f MiB for a 10 MB stanza", grew)
	checkRSS(t, grew, 64)
	canary(t, ts)
}

func TestUnauthenticatedTimeout(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.AuthTimeout = config.Duration{Duration: time.Second} })
	r := xmpptest.DialRaw(t, ts.addr)
	r.Write(streamHeader)
	start := time.Now()
	if cond := r.ExpectStreamError(); cond != "connection-timeout" {
		t.Fatalf("got %q, want connection-timeout", cond)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
	canary(t, ts)
}

func TestKeepaliveAndIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.Keepalive = config.Duration{Duration: time.Second}
		c.Limits.IdleTimeout = config.Duration{Duration: 3 * time.Second}
	})
	r := xmpptest.DialRaw(t, ts.addr)
	r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00idle\x00"+ts.token(t, "idle")), "r")
	// Silent client: whitespace keepalives come first, then the close.
	spaces := 0
	for {
		tok, err := r.Token()
		if err != nil {
			t.Fatalf("stream ended without an error element: %v (after %d keepalives)", err, spaces)
		}
		if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) == "" {
			spaces++
			continue
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "error" {
			break
		}
	}
	if spaces == 0 {
		t.Fatal("no whitespace keepalive before the idle timeout")
	}
	canary(t, ts)
}

func TestConnectionLimits(t *testing.T) {
	t.Run("total cap", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) { c.Limits.MaxConnections = 5 })
		var conns []net.Conn
		for i := 0; i < 5; i++ {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		waitFor(t, func() bool { return ts.srv.OpenConnections() == 5 })
		extra, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer extra.Close()
		if !closedByServer(extra) {
			t.Fatal("connection over the cap was served")
		}
		for _, c := range conns {
			c.Close()
		}
		waitFor(t, func() bool { return ts.srv.OpenConnections() == 0 })
		canary(t, ts)
	})
	t.Run("rate per address", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) {
			c.Limits.ConnectionRate = config.Rate{N: 1, Per: time.Minute}
			c.Limits.ConnectionBurst = 3
		})
		refused := 0
		for i := 0; i < 6; i++ {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte(streamHeader))
			if closedByServer(c) {
				refused++
			}
			c.Close()
		}
		if refused != 3 {
			t.Fatalf("%d of 6 connections refused, want 3 (burst 3)", refused)
		}
	})
}

// closedByServer reports whether the server closes c without a word.
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1)
	n, err := c.Read(buf)
	return n == 0 && err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuthFailureRate(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.AuthFailuresAddress = config.Rate{N: 1, Per: time.Minute}
		c.Limits.AuthFailureBurst = 3
	})
	addAccount(t, ts, "victim", "correct horse")
	conds := map[string]int{}
	for i := 0; i < 3; i++ {
		r := xmpptest.DialRaw(t, ts.addr)
		r.Open(testHost)
		r.StartTLS(ts.tlsConfig(), testHost)
		for j := 0; j < 2; j++ {
			e := r.Auth("PLAIN", []byte("\x00victim\x00guess"+strconv.Itoa(i*2+j)))
			for _, c := range e.Children {
				conds[c.XMLName.Local]++
			}
		}
	}
	if conds["not-authorized"] != 3 || conds["temporary-auth-failure"] != 3 {
		t.Fatalf("conditions %v, want 3 not-authorized then temporary-auth-failure", conds)
	}
	// Even the right password is refused from that address for now.
	if _, err := ts.login(t, "victim", "", authPlain, "correct horse"); err == nil || !strings.Contains(err.Error(), "temporary-auth-failure") {
		t.Fatalf("right password while limited: %v", err)
	}
}

func TestSlowReader(t *testing.T) {
	ts := startServer(t, nil)
	before := rssMiB(t)
	// The slow client logs in and then never reads again.
	slow := xmpptest.DialRaw(t, ts.addr)
	slowJID := slow.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00slow\x00"+ts.token(t, "slow")), "r")
	fast := ts.mustLogin(t, "fast", "")
	other := ts.mustLogin(t, "other", "")
	// 50,000 messages of about 1 KB: 50 MB, more than the kernel's socket
	// buffers on loopback can hide.
	const n = 50000
	text := strings.Repeat("lorem ipsum ", 85)
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var b strings.Builder
		for i := 0; i < n; i++ {
			// Headlines: once the slow session is gone they are dropped,
			// not stored or bounced back at the sender.
			fmt.Fprintf(&b, `<message to='%s' type='headline'><body>%d %s</body></message>`, slowJID, i, text)
			if i%500 == 499 {
				select {
				case <-stop:
					return // the test failed: fast.Send must not fail it again
				default:
				}
				fast.Send(b.String())
				b.Reset()
			}
		}
	}()
	// A test that fails below ends the sender before its clients close:
	// a Send failing after the test returned would panic the binary.
	defer func() {
		close(stop)
		<-done
	}()
	// Meanwhile, other traffic is not slowed down.
	for i := 0; i < 20; i++ {
		fast.Send(fmt.Sprintf(`<message to='%s' type='chat'><body>fast %d</body></message>`, other.JID, i))
		if m := other.NextNamed("message", "chat"); m.Body != fmt.Sprintf("fast %d", i) {
			t.Fatalf("other got %+v", m)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("sending 50,000 messages did not finish")
	}
	waitFor(t, func() bool { return ts.srv.Router().Sessions() == 2 })
	grew := rssMiB(t) - before
	t.Logf("RSS grew %.1f MiB after 50,000 messages to a client that never reads", grew)
	checkRSS(t, grew, 96)
	canary(t, ts)
}

func TestManyIdleUnauthenticated(t *testing.T) {
	ts := startServer(t, liftConnectionRate) // all from 127.0.0.1
	before := rssMiB(t)
	const n = 2000
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Each sends a stream header and then nothing.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			c.Write([]byte(streamHeader))
			bufio.NewReader(c).ReadString('>')
		}(c)
	}
	wg.Wait()
	waitFor(t, func() bool { return ts.srv.OpenConnections() >= n })
	grew := rssMiB(t) - before
	t.Logf("RSS grew %.1f MiB for %d idle unauthenticated connections (%.1f KiB each)", grew, n, grew*1024/n)
	checkRSS(t, grew, 80)
	canary(t, ts)
}

// TestPanicIsContained registers a handler that panics: the stream that
// triggered it ends with internal-server-error and everyone else goes on.
func TestPanicIsContained(t *testing.T) {
	ts := startServer(t, nil, func(srv *server.Server) {
		err := srv.HandleIQ("urn:test:boom", "boom", server.AtServer, "", server.IQHandlerFunc(func(context.Context, server.IQRequest) (xml.TokenReader, error) {
			panic("boom")
		}))
		if err != nil {
			t.Fatal(err)
		}
	})
	r := xmpptest.DialRaw(t, ts.addr)
	r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00boom\x00"+ts.token(t, "boom")), "r")
	r.Write(`<iq type='get' id='b' to='localhost'><boom xmlns='urn:test:boom'/></iq>`)
	if cond := r.ExpectStreamError(); cond != "internal-server-error" {
		t.Fatalf("got %q, want internal-server-error", cond)
	}
	canary(t, ts)
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, " a%d='x'", i)
	}
	return b.String()
}

var authPlain = auth.Plain

// TestNegotiationWhitespace logs in with whitespace between every pair of
// elements, as RFC 6120 allows and go-sendxmpp sends it (security review
// #10): before and after each stream header, STARTTLS, SASL and bind.
func TestNegotiationWhitespace(t *testing.T) {
	ts := startServer(t, nil)
	r := xmpptest.DialRaw(t, ts.addr)
	r.Write(" \n")
	r.Open(testHost)
	r.Write("\n")
	r.StartTLS(ts.tlsConfig(), testHost)
	r.Write("\r\n\t ")
	if e := r.Auth("X-TOKEN", []byte("\x00spacey\x00"+ts.token(t, "spacey"))); e.XMLName.Local != "success" {
		t.Fatalf("auth after whitespace: %s", e)
	}
	r.Write("\n")
	r.Open(testHost)
	r.Write("\n \n")
	r.Write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`)
	e := r.Read()
	if _, ok := e.Child("bind"); !ok {
		t.Fatalf("bind after whitespace: %s", e)
	}
	r.Write("\n")
	r.Write(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>` + "\n")
	if e := r.Read(); e.XMLName.Local != "iq" || attr(e, "", "type") != "result" {
		t.Fatalf("ping after whitespace: %s", e)
	}
	canary(t, ts)
}

// TestNegotiationInput sends input that is not an XMPP stream, or breaks
// a rule of one, before authentication (security review #11), over a real
// socket, each followed by the canary: the stream error comes at once,
// never undefined-condition and never after a wait for the auth timeout.
func TestNegotiationInput(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.AuthTimeout = config.Duration{Duration: 30 * time.Second} })
	const bareHeader = `<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	for _, tc := range []struct {
		name  string
		input string
		want  string
	}{
		{"http request", "GET / HTTP/1.1\r\nHost: localhost:5222\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n", "not-well-formed"},
		{"http post", "POST /http-bind HTTP/1.1\r\nContent-Length: 10\r\n\r\n<body/>", "not-well-formed"},
		{"tls hello on the starttls port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "not-well-formed"},
		{"latin-1 declaration", `<?xml version='1.0' encoding='ISO-8859-1'?>` + bareHeader, "unsupported-encoding"},
		{"utf-16 declaration", `<?xml version="1.0" encoding="UTF-16"?>` + bareHeader, "unsupported-encoding"},
		// The guard passes this one; encoding/xml reads it as an encoding.
		{"encoding inside another name", `<?xml version='1.0' xencoding='latin1'?>` + bareHeader, "unsupported-encoding"},
		{"64 KiB of whitespace before starttls", bareHeader + strings.Repeat(" \n", 32<<10) + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, "policy-violation"},
		{"text between elements", bareHeader + `hello<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, "bad-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := xmpptest.DialRaw(t, ts.addr)
			start := time.Now()
			// The server may close before all of it is written.
			go r.TryWrite(tc.input)
			if cond := r.ExpectStreamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("closed after %v, auth_timeout is 30s: the server waited for more", d)
			}
			canary(t, ts)
		})
	}
}

// TestPrebindElementLimit: before a resource is bound an element, the
// stream header included, is cut off at max_prebind_bytes (16 KiB by
// default), over direct TLS, without the server waiting for the rest
// (security review #5). After bind the stanza limit applies.
func TestPrebindElementLimit(t *testing.T) {
	ts := startServer(t, nil)
	if got := ts.cfg.Limits.MaxPrebindBytes; got != 16<<10 {
		t.Fatalf("default max_prebind_bytes %d, want 16384", got)
	}
	for _, tc := range []struct{ name, input string }{
		// Half of a 64 KiB attribute: the error must come before the rest.
		{"64 KiB attribute in the stream header", `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' x='` + strings.Repeat("x", 32<<10)},
		{"unfinished 20 KiB auth", streamHeader + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + strings.Repeat("A", 20<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := xmpptest.DialRawTLS(t, ts.directTLS, ts.tlsConfig())
			go r.TryWrite(tc.input)
			if cond := r.ExpectStreamError(); cond != "policy-violation" {
				t.Fatalf("stream error %q, want policy-violation", cond)
			}
		})
	}
	// After bind, a stanza of 64 KiB is fine.
	r := xmpptest.DialRaw(t, ts.addr)
	full := r.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00large\x00"+ts.token(t, "large")), "r")
	body := strings.Repeat("y", 64<<10)
	r.Write(fmt.Sprintf(`<message to='%s' type='chat'><body>%s</body></message>`, full, body))
	if e := r.Read(); e.XMLName.Local != "message" {
		t.Fatalf("64 KiB message after bind: got %s", e)
	} else if b, _ := e.Child("body"); b.Text != body {
		t.Fatalf("64 KiB message after bind came back with %d bytes", len(b.Text))
	}
	canary(t, ts)
}

// TestManyUnfinishedAuth: 150 unauthenticated direct-TLS connections each
// send 250 KiB of an <auth/> that never ends (under max_stanza_bytes);
// the server holds at most max_prebind_bytes of each and ends them with
// policy-violation (security review #5: it held the whole element, 50 MiB
// for these).
func TestManyUnfinishedAuth(t *testing.T) {
	ts := startServer(t, liftConnectionRate) // all from 127.0.0.1
	before := rssMiB(t)
	const n = 150
	chunk := strings.Repeat("A", 10<<10)
	conns := make([]*xmpptest.Raw, n)
	var wg sync.WaitGroup
	for i := range conns {
		r := xmpptest.DialRawTLS(t, ts.directTLS, ts.tlsConfig())
		conns[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.TryWrite(streamHeader + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>`); err != nil {
				return
			}
			for range 25 { // 250 KiB
				if _, err := r.TryWrite(chunk); err != nil {
					return // closed by the server
				}
			}
		}()
	}
	wg.Wait()
	grew := rssMiB(t) - before
	conds := map[string]int{}
	for _, r := range conns {
		conds[r.ExpectStreamError()]++
	}
	t.Logf("RSS grew %.1f MiB for %d unauthenticated direct-TLS connections sending 250 KiB of <auth/> each (%.1f KiB each); stream errors %v", grew, n, grew*1024/n, conds)
	if conds["policy-violation"] != n {
		t.Fatalf("stream errors %v, want %d policy-violation", conds, n)
	}
	checkRSS(t, grew, 30)
	canary(t, ts)
}

// TestRequireTLSOffWarns: a server that lets clients authenticate without
// TLS says so at start (security review #11).
func TestRequireTLSOffWarns(t *testing.T) {
	for _, require := range []bool{false, true} {
		cfg := testserver.Config(t)
		cfg.C2S.RequireTLS = &require
		var log xmpptest.LogBuffer
		srv, err := server.New(server.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		srv.Shutdown(ctx)
		cancel()
		warned := false
		for _, line := range strings.Split(log.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "require_tls") {
				warned = true
			}
		}
		if warned == require {
			t.Errorf("require_tls = %v: warned %v; log:\n%s", require, warned, log.String())
		}
	}
}
