package c2s

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"
)

// link is the transport under a session: one client connection once its
// stream is negotiated. The session's read loop reads it through the
// guard's buffer and the session's writer writes to it; a session may
// outlive its link (see Session.attach).
type link struct {
	conn  net.Conn // the socket (or the web transport's virtual one)
	guard *guard   // the stream's input and output, over TLS if any
	relay *relay   // where its reader parks; see readThen
	// lastWrite is when the writer last wrote, in unix nanoseconds.
	lastWrite atomic.Int64
}

// newLink returns the link of a negotiated connection, whose stream goes
// through g, and whose reader parks on r when r can (see relay).
func newLink(conn net.Conn, g *guard, r *relay) *link {
	l := &link{conn: conn, guard: g, relay: r}
	if r.parks() {
		g.park = &parking{}
	}
	l.lastWrite.Store(time.Now().UnixNano())
	return l
}

// newFramer returns the framer of a read loop over l: the reader parks
// only when it is between two elements.
func (l *link) newFramer(lim GuardLimits) *framer {
	fr := &framer{lim: lim}
	if pk := l.guard.park; pk != nil {
		pk.mu.Lock()
		pk.between = fr.between
		pk.mu.Unlock()
	}
	return fr
}

// readThen runs the read loop over l, then then with what it returned.
// When the reader parks, the loop returns early: readThen returns at
// once, leaving the relay to run it again on a new goroutine once input
// came, without the read buffer meanwhile.
func (l *link) readThen(loop func(*link) (stream.Error, bool), then func(end stream.Error, dropped bool)) {
	end, dropped := loop(l)
	if l.guard.parked() {
		l.guard.release()
		l.relay.park(func() {
			l.guard.reacquire()
			l.readThen(loop, then)
		})
		return
	}
	then(end, dropped)
}

// Activity is implemented by a connection whose client can show it is
// alive without sending stream bytes, such as a BOSH client's empty
// polls or a WebSocket pong. Tick counts that as input.
type Activity interface {
	// LastActivity is when the client was last seen alive.
	LastActivity() time.Time
}

// lastInput is when the client was last seen alive: bytes read, or the
// transport's own sign of life.
func (l *link) lastInput() time.Time {
	last := l.guard.lastRead.Load()
	if a, ok := l.conn.(Activity); ok {
		last = max(last, a.LastActivity().UnixNano())
	}
	return time.Unix(0, last)
}

// stall makes a write blocked on a client that does not read fail now.
func (l *link) stall() { l.conn.SetWriteDeadline(time.Now()) }

// writeBuffers recycles the buffers batches are serialized into.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// write serializes a batch and writes it at once, within timeout.
func (l *link) write(batch []outbound, timeout time.Duration) error {
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, it := range batch {
		if it.st == nil {
			buf = append(buf, it.raw...)
		} else {
			buf = it.st.AppendXML(buf)
		}
	}
	l.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := l.guard.Write(buf)
	if cap(buf) <= 64<<10 {
		*bp = buf
		writeBuffers.Put(bp)
	}
	if err != nil {
		return err
	}
	l.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// finish writes the stream error (if any) and the closing tag, then gives
// the client grace to close its side before the socket goes.
func (l *link) finish(e *stream.Error, grace time.Duration, logger *connLog) {
	l.conn.SetWriteDeadline(time.Now().Add(grace))
	var b bytes.Buffer
	if e != nil {
		writeRaw(&b, *e)
	}
	b.WriteString("</stream:stream>")
	if _, err := l.guard.Write(b.Bytes()); err != nil {
		logger.Debug("closing stream failed", "err", err)
	}
	// The read loop ends when the client closes its stream or at this
	// deadline, and then the socket is closed.
	if pk := l.guard.park; pk != nil {
		pk.close(l.conn, time.Now().Add(grace))
		return
	}
	l.conn.SetReadDeadline(time.Now().Add(grace))
}

// between reports whether f is between two top-level elements, holding
// nothing of the next.
func (f *framer) between() bool {
	return f.state == fText && f.depth == 0 && len(f.buf) == 0 && !f.end
}
