package c2s

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
)

// Session is one bound client stream. Other goroutines talk to it only
// through Deliver and Close; its own writer goroutine is the only one that
// writes to the socket once negotiation is over.
type Session struct {
	jid    jid.JID
	conn   net.Conn // the socket (or the web transport's virtual one)
	out    net.Conn // where the stream goes: the guard, over TLS if any
	logger *connLog
	grace  time.Duration

	// guard sees every byte the client sends; lastWrite is when the
	// writer last wrote, in unix nanoseconds.
	guard     *guard
	lastWrite atomic.Int64
	cfg       *Config

	mu         sync.Mutex
	queue      []outbound
	queueBytes int
	maxQueue   int
	closeErr   *stream.Error // set once: the stream error to send, then close
	closing    bool
	started    bool          // negotiation is over: the writer may write
	writing    bool          // a writer goroutine is running
	finished   bool          // the writer wrote the end of the stream
	done       chan struct{} // closed when the writer has finished
}

// outbound is one queued stanza and what to call once it was written; a
// nil stanza is a whitespace keepalive.
type outbound struct {
	st      *element.Stanza
	written func(ok bool)
}

// queuedSize is what a stanza counts against the queue's byte bound.
func queuedSize(st *element.Stanza) int {
	if st == nil {
		return 1
	}
	if st.Size > 0 {
		return st.Size
	}
	return 256 + 16*len(st.Tokens())
}

func newSession(j jid.JID, conn net.Conn, g *guard, cfg *Config, logger *connLog) *Session {
	s := &Session{
		jid:      j,
		conn:     conn,
		guard:    g,
		cfg:      cfg,
		logger:   logger,
		out:      g,
		grace:    cfg.CloseGrace,
		maxQueue: cfg.QueueLen,
		done:     make(chan struct{}),
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return s
}

// JID returns the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Deliver queues st for the client without blocking. It reports false if
// the session is closing, or if its queue is full, in which case the
// session is closed with a policy-violation stream error: a client that
// does not read must not hold memory or slow anyone else down.
func (s *Session) Deliver(st *element.Stanza) bool {
	return s.DeliverThen(st, nil)
}

// DeliverThen is Deliver with a callback: written is called from the
// writer goroutine with true once st was flushed to the socket, or with
// false if it never will be (the session closed first). It is called
// exactly once when DeliverThen returns true, and never when it returns
// false. It must not block.
func (s *Session) DeliverThen(st *element.Stanza, written func(ok bool)) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	size := queuedSize(st)
	if len(s.queue) >= s.maxQueue || s.queueBytes+size > s.cfg.QueueBytes {
		n, b := len(s.queue), s.queueBytes
		s.mu.Unlock()
		s.logger.Warn("send queue full, closing session", "queued", n, "bytes", b)
		s.Close(streamError(stream.PolicyViolation, "send queue full: the client is not reading"))
		// The writer may be stuck in a write the client does not read:
		// make it fail now.
		s.conn.SetWriteDeadline(time.Now())
		return false
	}
	s.queue = append(s.queue, outbound{st: st, written: written})
	s.queueBytes += size
	s.kick()
	s.mu.Unlock()
	return true
}

// start lets the writer write: negotiation is over, so nothing queued
// can overtake the bind result anymore.
func (s *Session) start() {
	s.mu.Lock()
	s.started = true
	if len(s.queue) > 0 || s.closing {
		s.kick()
	}
	s.mu.Unlock()
}

// kick starts the writer unless it runs. The caller holds s.mu. An idle
// session has no writer goroutine: it costs no stack.
func (s *Session) kick() {
	if s.started && !s.writing && !s.finished {
		s.writing = true
		go s.writeLoop()
	}
}

// Close ends the session with the given stream error (the zero Error for a
// plain close): queued stanzas are dropped, the error and the closing
// stream tag are written, and the socket is closed shortly after. It does
// not wait; see Done.
func (s *Session) Close(e stream.Error) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	if e.Err != "" {
		s.closeErr = &e
	}
	dropped := s.queue
	s.queue, s.queueBytes = nil, 0
	s.kick()
	s.mu.Unlock()
	report(dropped, false)
}

// report calls the written callbacks of items.
func report(items []outbound, ok bool) {
	for _, it := range items {
		if it.written != nil {
			it.written(ok)
		}
	}
}

// closeGracefully ends the session after writing what is queued: used when
// the client closed its stream.
func (s *Session) closeGracefully() {
	s.mu.Lock()
	s.closing = true
	s.kick()
	s.mu.Unlock()
}

// writeLoop is the session's single writer while it runs. It writes the
// queue in batches, one write per batch, until the queue is empty (then
// it exits; kick starts it again) or the session is closed.
func (s *Session) writeLoop() {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("panic in the session writer", "panic", r, "stack", stack())
			s.conn.Close()
			s.end()
		}
	}()
	var batch []outbound
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.queueBytes = 0
		closing, closeErr := s.closing, s.closeErr
		if len(batch) == 0 && !closing {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		if len(batch) > 0 {
			err := s.write(batch)
			report(batch, err == nil)
			clear(batch)
			if err != nil {
				s.logger.Debug("write failed", "err", err)
				s.mu.Lock()
				s.closing = true
				rest := s.queue
				s.queue = nil
				s.mu.Unlock()
				report(rest, false)
				s.conn.Close()
				s.end()
				return
			}
			continue // the queue may have grown meanwhile
		}
		s.finish(closeErr)
		s.end()
		return
	}
}

// end marks the writer done for good.
func (s *Session) end() {
	s.mu.Lock()
	s.finished, s.writing = true, false
	s.mu.Unlock()
	close(s.done)
}

// writeBuffers recycles the buffers batches are serialized into.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// write serializes a batch and writes it at once.
func (s *Session) write(batch []outbound) error {
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, it := range batch {
		if it.st == nil {
			buf = append(buf, ' ')
		} else {
			buf = it.st.AppendXML(buf)
		}
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err := s.out.Write(buf)
	if cap(buf) <= 64<<10 {
		*bp = buf
		writeBuffers.Put(bp)
	}
	if err != nil {
		return err
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// Activity is implemented by a connection whose client can show it is
// alive without sending stream bytes, such as a BOSH client's empty
// polls or a WebSocket pong. Tick counts that as input.
type Activity interface {
	// LastActivity is when the client was last seen alive.
	LastActivity() time.Time
}

// Tick runs the session's timers at now: a whitespace keepalive when the
// server has not written for Keepalive, and a connection-timeout close
// when the client has sent nothing for IdleTimeout. The server calls it
// periodically for every session, so a session needs no timer of its own.
func (s *Session) Tick(now time.Time) {
	last := s.guard.lastRead.Load()
	if a, ok := s.conn.(Activity); ok {
		last = max(last, a.LastActivity().UnixNano())
	}
	if now.Sub(time.Unix(0, last)) > s.cfg.IdleTimeout {
		s.logger.Info("idle timeout", "after", s.cfg.IdleTimeout)
		s.Close(streamError(stream.ConnectionTimeout, "idle too long"))
		return
	}
	if now.Sub(time.Unix(0, s.lastWrite.Load())) > s.cfg.Keepalive {
		s.DeliverThen(nil, nil)
	}
}

// finish writes the stream error (if any) and the closing tag, then gives
// the client a moment to close its side before the socket goes.
func (s *Session) finish(e *stream.Error) {
	s.conn.SetWriteDeadline(time.Now().Add(s.grace))
	var b bytes.Buffer
	if e != nil {
		writeRaw(&b, *e)
	}
	b.WriteString("</stream:stream>")
	if _, err := s.out.Write(b.Bytes()); err != nil {
		s.logger.Debug("closing stream failed", "err", err)
	}
	// The read loop ends when the client closes its stream or at this
	// deadline, and then the socket is closed.
	s.conn.SetReadDeadline(time.Now().Add(s.grace))
}
