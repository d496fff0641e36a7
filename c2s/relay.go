package c2s

import (
	"log/slog"
	"net"
	"syscall"
	"time"
)

// parkAfter is how long a bound stream's reader waits for input before it
// parks: its goroutine returns, and the connection waits for input on the
// relay's goroutine, whose stack stays small.
const parkAfter = time.Second

// relay runs one client connection's work on goroutines of their own
// while the goroutine that called Serve waits, so that an idle session
// costs a goroutine with the smallest stack instead of a reader parked
// deep in crypto/tls (8 KiB of stack). The work (negotiation, then the
// read loop) runs on a worker goroutine; when the read loop parks, the
// worker hands the relay what comes next and returns, the relay waits
// until the socket is readable (or fails), and a new worker goes on.
//
// A relay over a connection that is not a socket (a WebSocket or BOSH
// session, a pipe in tests) cannot wait for it: its work runs on the
// calling goroutine, as before.
type relay struct {
	raw    syscall.RawConn // the socket under TLS; nil: no parking
	logger *slog.Logger
	next   chan func() // what a worker left to do once it ended; nil: done
	cont   func()      // set by park, read when the worker ends
}

// newRelay returns the relay of conn (a *tls.Conn for direct TLS, or the
// socket itself).
func newRelay(conn net.Conn, logger *slog.Logger) *relay {
	r := &relay{logger: logger}
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = tc.NetConn()
	}
	if sc, ok := conn.(syscall.Conn); ok && canPeek {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw, r.next = raw, make(chan func(), 1)
		}
	}
	return r
}

// parks reports whether the relay's reader may park.
func (r *relay) parks() bool { return r != nil && r.raw != nil }

// run runs f, and what the workers leave to do after it, to the end.
func (r *relay) run(f func()) {
	if !r.parks() {
		f()
		return
	}
	for f != nil {
		go r.work(f)
		if f = <-r.next; f != nil {
			r.waitReadable()
		}
	}
}

// work runs f on a worker goroutine and hands the relay what it left
// (nil when it left nothing: the connection is over). A panic is
// recovered and logged: it must not take the process down, and the
// connection ends.
func (r *relay) work(f func()) {
	var cont func()
	defer func() {
		if p := recover(); p != nil {
			r.logger.Error("panic while serving a connection", "panic", p, "stack", stack())
			cont = nil
		}
		r.next <- cont
	}()
	f()
	cont, r.cont = r.cont, nil
}

// park makes cont what runs next, on a new worker once the socket is
// readable (or failed: closed, past its read deadline). The caller, on the
// worker, returns right after.
func (r *relay) park(cont func()) { r.cont = cont }

// waitReadable waits until the socket has bytes to read, has ended or
// failed, or its read deadline passed; it reads nothing. Whatever woke
// it, the next worker's read finds out.
func (r *relay) waitReadable() {
	var b [1]byte
	r.raw.Read(func(fd uintptr) bool { return peek(fd, b[:]) })
}
