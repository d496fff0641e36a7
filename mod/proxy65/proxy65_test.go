package proxy65

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/router"
)

const proxyDomain = "proxy.localhost"

// newProxy registers a proxy on a test core and serves it on a loopback
// listener.
func newProxy(t *testing.T, opts Options) (*router.Router, *Module, string) {
	t.Helper()
	core, _ := routertest.New(t)
	opts.Domains = []string{proxyDomain}
	m, err := Register(core, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(l)
	t.Cleanup(m.Close)
	return core, m, l.Addr().String()
}

func hashOf(sid, initiator, target string) string {
	return Hash(sid, jid.MustParse(initiator), jid.MustParse(target))
}

// dialSocks connects to the proxy and asks for hash; it returns the
// connection and the reply code.
func dialSocks(t *testing.T, addr, hash string) (net.Conn, byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, hash)
	var re ReplyError
	if errors.As(err, &re) {
		return nil, byte(re)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, 0
}

// expectClosed checks that the proxy closes c (or sends nothing more).
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("read %d bytes, %v: want the connection closed", n, err)
	}
}

func TestDiscoAndStreamhost(t *testing.T) {
	core, _, addr := newProxy(t, Options{})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	got := routertest.Ask(t, core, alice, `<iq type='get' id='1' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	for _, want := range []string{`category="proxy"`, `type="bytestreams"`, `var="http://jabber.org/protocol/bytestreams"`} {
		if !strings.Contains(got, want) {
			t.Errorf("disco#info %s lacks %s", got, want)
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	got = routertest.Ask(t, core, alice, `<iq type='get' id='2' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='s1'/></iq>`)
	if want := `<query xmlns="http://jabber.org/protocol/bytestreams" sid="s1"><streamhost jid="proxy.localhost" host="127.0.0.1" port="` + port + `"`; !strings.Contains(got, want) {
		t.Errorf("streamhost answer %s lacks %s", got, want)
	}
	for _, tc := range []struct{ name, iq, want string }{
		{"message", `<message to='proxy.localhost'><body>hi</body></message>`, "service-unavailable"},
		{"unknown payload", `<iq type='get' id='3' to='proxy.localhost'><x xmlns='urn:x'/></iq>`, "service-unavailable"},
		{"no sid", `<iq type='set' id='4' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams'><activate>bob@localhost/b</activate></query></iq>`, "bad-request"},
		{"bad target", `<iq type='set' id='5' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><activate>@@</activate></query></iq>`, "jid-malformed"},
		{"unknown hash", `<iq type='set' id='6' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><activate>bob@localhost/b</activate></query></iq>`, "item-not-found"},
		{"info node", `<iq type='get' id='7' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>`, "item-not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := routertest.Ask(t, core, alice, tc.iq); !strings.Contains(got, tc.want) || !strings.Contains(got, `type="error"`) {
				t.Errorf("answer %s, want %s", got, tc.want)
			}
		})
	}
	// A non-local entity (a component, say) may neither learn the address
	// nor activate.
	stranger := routertest.NewTarget(t, "bot.elsewhere.example")
	for _, iq := range []string{
		`<iq type='get' id='8' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams'/></iq>`,
		`<iq type='set' id='9' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='s'><activate>bob@localhost/b</activate></query></iq>`,
	} {
		if got := routertest.Ask(t, core, stranger, iq); !strings.Contains(got, "forbidden") {
			t.Errorf("non-local %s got %s, want forbidden", iq, got)
		}
	}
}

// transferPair connects the target and the initiator of one transfer.
func transferPair(t *testing.T, addr, sid, initiator, target string) (tc, ic net.Conn) {
	t.Helper()
	h := hashOf(sid, initiator, target)
	tc, code := dialSocks(t, addr, h)
	if code != 0 {
		t.Fatalf("target: reply %d", code)
	}
	ic, code = dialSocks(t, addr, h)
	if code != 0 {
		t.Fatalf("initiator: reply %d", code)
	}
	return tc, ic
}

func activate(sid, target string) string {
	return `<iq type='set' id='act' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='` + sid + `'><activate>` + target + `</activate></query></iq>`
}

func TestTransfer(t *testing.T) {
	core, m, addr := newProxy(t, Options{})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	bob := routertest.Bind(t, core, "bob@localhost/b")
	tc, ic := transferPair(t, addr, "sid1", "alice@localhost/a", "bob@localhost/b")
	if p, n := m.Counts(); p != 2 || n != 0 {
		t.Fatalf("counts before activation = %d pending, %d transfers", p, n)
	}
	// The target cannot activate: the hash names alice as initiator.
	if got := routertest.Ask(t, core, bob, activate("sid1", "bob@localhost/b")); !strings.Contains(got, "item-not-found") {
		t.Fatalf("activation by the target: %s", got)
	}
	if got := routertest.Ask(t, core, alice, activate("sid1", "bob@localhost/b")); strings.Contains(got, "error") {
		t.Fatalf("activation: %s", got)
	}
	// A second activation finds nothing.
	if got := routertest.Ask(t, core, alice, activate("sid1", "bob@localhost/b")); !strings.Contains(got, "item-not-found") {
		t.Fatalf("second activation: %s", got)
	}
	file := make([]byte, 1<<20)
	rand.Read(file)
	go func() {
		ic.Write(file)
		ic.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(tc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(file))
	}
	// And back, then both close.
	tc.Write([]byte("thanks"))
	tc.(*net.TCPConn).CloseWrite()
	back, err := io.ReadAll(ic)
	if err != nil || string(back) != "thanks" {
		t.Fatalf("back: %q, %v", back, err)
	}
	waitCounts(t, m, 0, 0)
}

// waitCounts waits until the proxy counts what is wanted.
func waitCounts(t *testing.T, m *Module, pending, transfers int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, n := m.Counts()
		if p == pending && n == transfers {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts = %d pending, %d transfers; want %d, %d", p, n, pending, transfers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandshakeAbuse(t *testing.T) {
	core, m, addr := newProxy(t, Options{PendingTimeout: 2 * time.Second, ConnectionsPerAddress: 5, MaxTransfers: 1})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	h := hashOf("s", "alice@localhost/a", "bob@localhost/b")

	t.Run("third connection with a hash", func(t *testing.T) {
		transferPair(t, addr, "s", "alice@localhost/a", "bob@localhost/b")
		if _, code := dialSocks(t, addr, h); code != replyNotAllowed {
			t.Fatalf("third connection: reply %d, want %d", code, replyNotAllowed)
		}
	})
	t.Run("one side only", func(t *testing.T) {
		if _, code := dialSocks(t, addr, hashOf("one", "alice@localhost/a", "bob@localhost/b")); code != 0 {
			t.Fatal(code)
		}
		if got := routertest.Ask(t, core, alice, activate("one", "bob@localhost/b")); !strings.Contains(got, "not-allowed") {
			t.Fatalf("activation with one side: %s", got)
		}
	})
	t.Run("bytes before activation", func(t *testing.T) {
		c, code := dialSocks(t, addr, hashOf("early", "alice@localhost/a", "bob@localhost/b"))
		if code != 0 {
			t.Fatal(code)
		}
		c.Write([]byte("too early"))
		expectClosed(t, c)
	})
	t.Run("not a hash", func(t *testing.T) {
		if _, code := dialSocks(t, addr, "example.org"); code != replyHostUnreachable {
			t.Fatalf("reply %d", code)
		}
	})
	t.Run("slow handshake times out", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{5}) // and nothing more
		expectClosed(t, c)
	})
	t.Run("unpaired connection times out", func(t *testing.T) {
		c, _ := dialSocks(t, addr, hashOf("lonely", "alice@localhost/a", "bob@localhost/b"))
		expectClosed(t, c)
	})
	// Everything above timed out or was closed.
	waitCounts(t, m, 0, 0)
	t.Run("connections per address", func(t *testing.T) {
		var cs []net.Conn
		for i := range 5 {
			c, code := dialSocks(t, addr, hashOf(strconv.Itoa(i), "alice@localhost/a", "x@localhost/x"))
			if code != 0 {
				t.Fatalf("connection %d: reply %d", i, code)
			}
			cs = append(cs, c)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		expectClosed(t, c)
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("the sixth connection was closed after %v: by the pending timeout, not at once", el)
		}
		for _, c := range cs {
			c.Close()
		}
	})
	waitCounts(t, m, 0, 0)
	t.Run("max transfers", func(t *testing.T) {
		transferPair(t, addr, "t1", "alice@localhost/a", "bob@localhost/b")
		transferPair(t, addr, "t2", "alice@localhost/a", "bob@localhost/b")
		if got := routertest.Ask(t, core, alice, activate("t1", "bob@localhost/b")); strings.Contains(got, "error") {
			t.Fatal(got)
		}
		if got := routertest.Ask(t, core, alice, activate("t2", "bob@localhost/b")); !strings.Contains(got, "resource-constraint") {
			t.Fatalf("a second transfer: %s", got)
		}
	})
}

func TestTransfersPerUser(t *testing.T) {
	core, m, addr := newProxy(t, Options{TransfersPerUser: 1})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	alice2 := routertest.Bind(t, core, "alice@localhost/other")
	carol := routertest.Bind(t, core, "carol@localhost/c")
	transferPair(t, addr, "t1", "alice@localhost/a", "bob@localhost/b")
	transferPair(t, addr, "t2", "alice@localhost/other", "bob@localhost/b")
	transferPair(t, addr, "t3", "carol@localhost/c", "bob@localhost/b")
	if got := routertest.Ask(t, core, alice, activate("t1", "bob@localhost/b")); strings.Contains(got, "error") {
		t.Fatal(got)
	}
	// Another resource of the same user: her second transfer.
	if got := routertest.Ask(t, core, alice2, activate("t2", "bob@localhost/b")); !strings.Contains(got, "resource-constraint") {
		t.Fatalf("alice's second transfer: %s", got)
	}
	if got := routertest.Ask(t, core, carol, activate("t3", "bob@localhost/b")); strings.Contains(got, "error") {
		t.Fatalf("carol's transfer: %s", got)
	}
	waitCounts(t, m, 2, 2) // t2's connections wait on
}

func TestMaxPending(t *testing.T) {
	_, _, addr := newProxy(t, Options{MaxPending: 3, ConnectionsPerAddress: 100})
	for i := range 3 {
		if _, code := dialSocks(t, addr, hashOf(string(rune('a'+i)), "a@localhost/a", "b@localhost/b")); code != 0 {
			t.Fatal(code)
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c)
}

func TestBandwidth(t *testing.T) {
	const rate = 128 << 10
	core, _, addr := newProxy(t, Options{TransferBandwidth: rate})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	tc, ic := transferPair(t, addr, "bw", "alice@localhost/a", "bob@localhost/b")
	if got := routertest.Ask(t, core, alice, activate("bw", "bob@localhost/b")); strings.Contains(got, "error") {
		t.Fatal(got)
	}
	file := make([]byte, 2*rate)
	start := time.Now()
	go func() {
		ic.Write(file)
		ic.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(tc)
	if err != nil || len(got) != len(file) {
		t.Fatalf("received %d bytes, %v", len(got), err)
	}
	// 256 KiB at 128 KiB/s: 2 s, less the first chunk, which goes at once.
	if el := time.Since(start); el < 1800*time.Millisecond {
		t.Errorf("256 KiB went through in %v at %d bytes/s", el, rate)
	}
}

func TestTotalBandwidth(t *testing.T) {
	const rate = 128 << 10
	core, _, addr := newProxy(t, Options{TransferBandwidth: rate, TotalBandwidth: rate})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	start := time.Now()
	done := make(chan error, 2)
	for _, sid := range []string{"x", "y"} {
		tc, ic := transferPair(t, addr, sid, "alice@localhost/a", "bob@localhost/b")
		if got := routertest.Ask(t, core, alice, activate(sid, "bob@localhost/b")); strings.Contains(got, "error") {
			t.Fatal(got)
		}
		go func() {
			ic.Write(make([]byte, rate))
			ic.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			got, err := io.ReadAll(tc)
			if err == nil && len(got) != rate {
				err = fmt.Errorf("received %d bytes", len(got))
			}
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// 2 × 128 KiB at 128 KiB/s in total: 2 s, less a first chunk each.
	if el := time.Since(start); el < 1700*time.Millisecond {
		t.Errorf("two transfers of 128 KiB went through in %v at %d bytes/s in total", el, rate)
	}
}

// TestPendingCost: a connection waiting for activation costs one
// goroutine (no timer or reader besides), whatever it does.
func TestPendingCost(t *testing.T) {
	const n = 200
	_, m, addr := newProxy(t, Options{MaxPending: n, ConnectionsPerAddress: n})
	before := runtime.NumGoroutine()
	for i := range n {
		if _, code := dialSocks(t, addr, hashOf(strconv.Itoa(i), "a@localhost/a", "b@localhost/b")); code != 0 {
			t.Fatal(code)
		}
	}
	waitCounts(t, m, n, 0)
	if grew := runtime.NumGoroutine() - before; grew > n+10 {
		t.Errorf("%d pending connections added %d goroutines", n, grew)
	}
}

func TestIdleTransferEnds(t *testing.T) {
	core, m, addr := newProxy(t, Options{IdleTimeout: time.Second})
	alice := routertest.Bind(t, core, "alice@localhost/a")
	tc, ic := transferPair(t, addr, "idle", "alice@localhost/a", "bob@localhost/b")
	if got := routertest.Ask(t, core, alice, activate("idle", "bob@localhost/b")); strings.Contains(got, "error") {
		t.Fatal(got)
	}
	expectClosed(t, tc)
	expectClosed(t, ic)
	waitCounts(t, m, 0, 0)
}

func TestReadRequest(t *testing.T) {
	hash := hashOf("s", "a@b/c", "d@e/f")
	req := func(greeting []byte, cmd, atyp byte, addr string) []byte {
		b := append([]byte{}, greeting...)
		b = append(b, 5, cmd, 0, atyp, byte(len(addr)))
		b = append(b, addr...)
		return append(b, 0, 0)
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		reply []byte // what the proxy writes
		ok    bool
	}{
		{"good", req([]byte{5, 2, 2, 0}, 1, 3, hash), []byte{5, 0}, true},
		{"upper-case hash", req([]byte{5, 1, 0}, 1, 3, strings.ToUpper(hash)), []byte{5, 0}, true},
		{"socks4", []byte{4, 1, 0, 80}, nil, false},
		{"no methods", []byte{5, 0}, nil, false},
		{"authentication only", []byte{5, 1, 2}, []byte{5, 0xff}, false},
		{"bind", req([]byte{5, 1, 0}, 2, 3, hash), []byte{5, 0, 5, replyBadCommand, 0, 3, 0, 0, 0}, false},
		{"ipv4", req([]byte{5, 1, 0}, 1, 1, "abcd"), []byte{5, 0, 5, replyBadAddressType, 0, 3, 0, 0, 0}, false},
		{"short hash", req([]byte{5, 1, 0}, 1, 3, hash[:39]), []byte{5, 0, 5, replyHostUnreachable, 0, 3, 0, 0, 0}, false},
		{"truncated", req([]byte{5, 1, 0}, 1, 3, hash)[:20], []byte{5, 0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := readRequest(struct {
				io.Reader
				io.Writer
			}{bytes.NewReader(tc.in), &out})
			if tc.ok != (err == nil) || tc.ok && got != hash {
				t.Errorf("readRequest = %q, %v", got, err)
			}
			if !bytes.Equal(out.Bytes(), tc.reply) {
				t.Errorf("wrote %v, want %v", out.Bytes(), tc.reply)
			}
		})
	}
}

// FuzzReadRequest feeds the SOCKS5 handshake parser arbitrary bytes: it
// returns a 40-digit lowercase hex hash or an error, never reads past
// the request, and writes only replies of the protocol.
func FuzzReadRequest(f *testing.F) {
	hash := hashOf("s", "a@b/c", "d@e/f")
	f.Add(append(append([]byte{5, 1, 0, 5, 1, 0, 3, 40}, hash...), 0, 0, 'x'))
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 255})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var out bytes.Buffer
		got, err := readRequest(struct {
			io.Reader
			io.Writer
		}{r, &out})
		if err == nil {
			if !isHash(got) || strings.ToLower(got) != got {
				t.Fatalf("accepted %q", got)
			}
			// The request ends with the port: what follows is unread.
			consumed := len(in) - r.Len()
			if consumed != 3+4+1+40+2 && !(in[1] > 1 && consumed == 2+int(in[1])+4+1+40+2) {
				t.Fatalf("consumed %d bytes of a request", consumed)
			}
		} else if !errors.Is(err, errSocks) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error %v", err)
		}
		if w := out.Bytes(); len(w) > 2+7 || len(w) > 0 && w[0] != 5 {
			t.Fatalf("wrote %v", w)
		}
	})
}
