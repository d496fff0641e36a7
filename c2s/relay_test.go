package c2s

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/certs"
	"ottr.im/ottr/internal/xmpptest"
)

// tcpServer serves c2s with STARTTLS on a loopback TCP port, where readers
// park (net.Pipe's do not).
type tcpServer struct {
	router *fakeRouter
	addr   string
	logs   *xmpptest.LogBuffer
	served sync.WaitGroup // one per connection, done when Serve returned
}

// serveTCP starts a tcpServer; a quiet one logs nothing and drops what
// is routed, keeping nothing per session besides the sessions.
func serveTCP(t testing.TB, quiet bool) *tcpServer {
	t.Helper()
	cert, err := certs.LoadOrCreate(t.TempDir(), []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := &tcpServer{router: newFakeRouter(), logs: new(xmpptest.LogBuffer)}
	ts.router.routed = make(chan routed, 1024)
	ts.router.unbindCalls = make(chan struct{}, 1024)
	logger := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if quiet {
		logger = slog.New(slog.DiscardHandler)
		go func() {
			for range ts.router.routed {
			}
		}()
		go func() {
			for range ts.router.unbindCalls {
			}
		}()
	}
	cfg := (&Config{
		Serves:           func(d string) bool { return d == "localhost" },
		TLS:              certs.ServerConfig(cert),
		RequireTLS:       true,
		Mechanisms:       []sasl.Mechanism{sasl.Plain},
		Auth:             fakeAuth{},
		Router:           ts.router,
		Logger:           logger,
		NegotiateTimeout: 10 * time.Second,
		CloseGrace:       100 * time.Millisecond,
	}).WithDefaults()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var conns sync.Map
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			ts.served.Add(1)
			go func() {
				defer ts.served.Done()
				Serve(ctx, c, cfg)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		cancel()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		ts.served.Wait()
	})
	return ts
}

// splitConn is a client's TCP connection that, when split is set, writes
// the first half of one write, waits, then the rest: a TLS record that
// arrives in two parts.
type splitConn struct {
	net.Conn
	split atomic.Bool
	pause time.Duration
}

func (c *splitConn) Write(p []byte) (int, error) {
	if !c.split.CompareAndSwap(true, false) || len(p) < 2 {
		return c.Conn.Write(p)
	}
	n, err := c.Conn.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(c.pause)
	m, err := c.Conn.Write(p[len(p)/2:])
	return n + m, err
}

// dial logs alice in with resource, over STARTTLS.
func (ts *tcpServer) dial(t testing.TB, resource string) (*xmpptest.Raw, *splitConn) {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc := &splitConn{Conn: c, pause: parkAfter + parkAfter/2}
	r := xmpptest.NewRaw(t, sc)
	r.Bind(&tls.Config{ServerName: "localhost", InsecureSkipVerify: true}, "localhost", "PLAIN", []byte("\x00alice\x00"+goodSecret), resource)
	if e := r.Read(); body(e) != welcome {
		t.Fatalf("after bind: %s, want the welcome message", e)
	}
	return r, sc
}

// parkedState reports whether s's reader is parked and whether its guard
// holds a read buffer.
func parkedState(s *Session) (parked, buffered bool) {
	s.mu.Lock()
	l := s.link
	s.mu.Unlock()
	if l == nil || l.guard.park == nil {
		return false, true
	}
	pk := l.guard.park
	pk.mu.Lock()
	defer pk.mu.Unlock()
	return pk.parked, l.guard.br != nil
}

// waitParked waits until s's reader parked, without its read buffer.
func waitParked(t testing.TB, s *Session) {
	t.Helper()
	deadline := time.Now().Add(parkAfter + xmpptest.Timeout)
	for time.Now().Before(deadline) {
		if parked, buffered := parkedState(s); parked && !buffered {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	parked, buffered := parkedState(s)
	t.Fatalf("reader parked %v, holds its buffer %v; want parked without", parked, buffered)
}

// TestIdleReaderParks: over TCP and TLS, a bound stream's reader parks
// after parkAfter without input, and what comes next is read whole: a
// stanza, one whose bytes straddle the park in the framer, one whose TLS
// record straddles it in crypto/tls. A stream closed by the server while
// its reader is parked ends as any other.
func TestIdleReaderParks(t *testing.T) {
	ts := serveTCP(t, false)
	r, sc := ts.dial(t, "phone")
	s := ts.router.sessions[0]

	routedBody := func(text string) {
		t.Helper()
		rt := ts.router.nextRouted(t)
		if got := string(rt.st.AppendXML(nil)); rt.st.Name != "message" || !strings.Contains(got, "<body>"+text+"</body>") {
			t.Fatalf("routed %s, want body %q", got, text)
		}
	}

	waitParked(t, s)
	r.Write(`<message to='bob@localhost' type='chat'><body>one</body></message>`)
	routedBody("one")

	waitParked(t, s)
	r.Write(`<message to='bob@localhost' type='chat'><bo`)
	time.Sleep(parkAfter + parkAfter/2)
	if parked, _ := parkedState(s); parked {
		t.Fatal("the reader parked in the middle of an element")
	}
	r.Write(`dy>two</body></message>`)
	routedBody("two")

	waitParked(t, s)
	sc.split.Store(true)
	r.Write(`<message to='bob@localhost' type='chat'><body>three</body></message>`)
	routedBody("three")

	waitParked(t, s)
	s.Close(streamError(stream.ConnectionTimeout, "idle too long"))
	if cond := r.ExpectStreamError(); cond != "connection-timeout" {
		t.Fatalf("stream error %q, want connection-timeout", cond)
	}
	r.Write(`</stream:stream>`)
	done := make(chan struct{})
	go func() { ts.served.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(xmpptest.Timeout):
		t.Fatal("Serve did not return after the stream closed")
	}
}
