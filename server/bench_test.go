package server_test

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"ottr.im/ottr/internal/testfixture/testserver"
	"ottr.im/ottr/internal/xmpptest"
)

// BenchmarkTokenLogin measures one full login over loopback: TCP
// connect, STARTTLS (TLS 1.3, full handshake), X-TOKEN, bind. Client and
// server share the process, so ns/op is both sides' work; use the CPU
// profile (-cpuprofile) to see the server's part, or cmd/ottr-bench for
// the server's CPU alone.
func BenchmarkTokenLogin(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	cfg := ts.tlsConfig()
	cfg.ClientSessionCache = nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		user := fmt.Sprintf("user%d", i%100)
		r := xmpptest.DialRaw(b, ts.addr)
		r.Bind(cfg, testHost, "X-TOKEN", []byte("\x00"+user+"\x00"+ts.token(b, user)), "")
		r.Close()
	}
}

// BenchmarkRouteMessage measures one chat message from one session to
// another over loopback TLS: the sender's bytes in, the router, the
// recipient's bytes out.
func BenchmarkRouteMessage(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	cfg := ts.tlsConfig()
	from := xmpptest.DialRaw(b, ts.addr)
	from.Bind(cfg, testHost, "X-TOKEN", []byte("\x00alice\x00"+ts.token(b, "alice")), "a")
	to := xmpptest.DialRaw(b, ts.addr)
	toJID := to.Bind(cfg, testHost, "X-TOKEN", []byte("\x00bob\x00"+ts.token(b, "bob")), "b")
	msg := fmt.Sprintf(`<message to='%s' type='chat' id='x'><body>Are we still on for lunch at noon? I booked the usual place.</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, toJID)
	// The sender keeps at most window messages in flight, as a real
	// client would; a sender that ignores the recipient overflows its
	// queue and the server disconnects the recipient.
	const batch, window = 64, 512
	chunk := strings.Repeat(msg, batch)
	var delivered atomic.Int64
	done := make(chan int)
	go func() {
		// Count message end tags in the recipient's byte stream.
		buf := make([]byte, 64<<10)
		seen, carry := 0, ""
		for seen < b.N {
			n, err := to.Conn().Read(buf)
			if err != nil {
				break
			}
			s := carry + string(buf[:n])
			seen += strings.Count(s, "</message>")
			delivered.Store(int64(seen))
			if i := strings.LastIndex(s, "</message>"); i >= 0 {
				carry = s[i+len("</message>"):]
			} else {
				carry = s
			}
			if len(carry) > 16 {
				carry = carry[len(carry)-16:]
			}
		}
		done <- seen
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		for int64(sent)-delivered.Load() > window {
			runtime.Gosched()
		}
		n := min(batch, b.N-sent)
		if n == batch {
			io.WriteString(from.Conn(), chunk)
		} else {
			io.WriteString(from.Conn(), strings.Repeat(msg, n))
		}
	}
	if got := <-done; got < b.N {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
}

// liftConnectionRate lets one address open connections as fast and as
// many as a benchmark, or a test of many connections, does.
var liftConnectionRate = testserver.LiftConnectionRate
