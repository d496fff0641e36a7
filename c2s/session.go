package c2s

import (
	"context"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
)

// Session is one bound client stream: its address, its context, its
// bounded send queue and its single writer. Other goroutines talk to it
// only through Deliver, DeliverThen, DeliverRaw and Close.
//
// A session is separate from its transport, the link: negotiation binds
// the session first and attaches the connection it negotiated once the
// bind result went out. Only the writer goroutine writes to the link.
type Session struct {
	jid    jid.JID
	cfg    *Config
	logger *connLog
	client string // the client's SASL2 user agent, for the operator

	// ctx is the session's context, cancelled when its stream ended.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	idle       sync.Cond // on mu: broadcast when the reader or the writer stops
	link       *link     // the transport written to; nil until attached
	on         *link     // the link whose read loop speaks for the session
	queue      []outbound
	queueBytes int
	closeErr   *stream.Error // set once: the stream error to send, then close
	closing    bool
	peerClosed bool          // the client closed its stream
	writing    bool          // a writer goroutine is running
	reading    bool          // a read loop runs on the link
	finished   bool          // the writer wrote the end of the stream
	done       chan struct{} // closed when the writer has finished
	// sm is the XEP-0198 state once the client enabled stream management.
	sm *smState
	// waiting: the link broke and the session waits for resumption, with
	// no goroutine; over: the session was unbound for good.
	waiting, over bool
}

// outbound is one queued item and what to call once it was written: a
// stanza, or raw bytes (a non-stanza element, or the whitespace of a
// keepalive).
type outbound struct {
	st      *element.Stanza
	raw     []byte
	written func(ok bool)
	// counted: a stanza sent under stream management, which the client
	// must acknowledge; request: the server's <r/>.
	counted, request bool
}

// keepalive is the whitespace that shows a quiet stream is alive.
var keepalive = []byte{' '}

// size is what the item counts against the queue's byte bound.
func (o outbound) size() int {
	switch {
	case o.st == nil:
		return len(o.raw)
	case o.st.Size > 0:
		return o.st.Size
	}
	return 256 + 16*len(o.st.Tokens())
}

// newSession returns the session of full, with no link yet. Its context
// is derived from parent and lives until the session's stream ended.
func newSession(parent context.Context, full jid.JID, cfg *Config, logger *connLog) *Session {
	ctx, cancel := context.WithCancel(parent)
	s := &Session{
		jid:    full,
		cfg:    cfg,
		logger: logger,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.idle.L = &s.mu
	return s
}

// JID returns the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// UserAgent returns the client's software and device, as its SASL2
// <user-agent/> named them (each cut to 64 bytes), "" when it did not.
func (s *Session) UserAgent() string { return s.client }

// Context returns the session's context: it carries the values of the
// context the connection was served with, and is cancelled when the
// session's stream ended (its read loop is over). Router.Route is called
// with it; work that must outlive the stream takes
// context.WithoutCancel of it, as Router.Unbind is given.
func (s *Session) Context() context.Context { return s.ctx }

// Deliver queues st for the client without blocking. It reports false if
// the session is closing, or if its queue is full, in which case the
// session is closed with a policy-violation stream error: a client that
// does not read must not hold memory or slow anyone else down.
func (s *Session) Deliver(st *element.Stanza) bool {
	return s.enqueue(outbound{st: st})
}

// DeliverThen is Deliver with a callback: written is called from the
// writer goroutine with true once st was flushed to the socket, or with
// false if it never will be (the session closed first). Under stream
// management (XEP-0198) true means the writer took st: it is then the
// session's to resend on resumption or to route again (Router.Reroute),
// even if the write failed. It is called exactly once when DeliverThen
// returns true, and never when it returns false. It must not block.
func (s *Session) DeliverThen(st *element.Stanza, written func(ok bool)) bool {
	return s.enqueue(outbound{st: st, written: written})
}

// DeliverRaw queues one complete top-level element that is not a stanza,
// such as XEP-0198's <a/>, under the same bounds and in the same order as
// Deliver. b must be well-formed XML valid on a jabber:client stream; it
// is written as it is, and must not be modified afterwards.
func (s *Session) DeliverRaw(b []byte) bool {
	return s.enqueue(outbound{raw: b})
}

// enqueue adds it to the queue, or closes the session when the queue is
// full. Under stream management the stanzas sent and not acknowledged
// count against the same bounds; a session waiting for resumption whose
// queue is full ends as a dropped connection does.
func (s *Session) enqueue(it outbound) bool {
	s.mu.Lock()
	if s.closing || s.over {
		s.mu.Unlock()
		return false
	}
	size := it.size()
	n, b := len(s.queue), s.queueBytes
	if s.sm != nil {
		n, b = n+len(s.sm.unacked), b+s.sm.unackedBytes
	}
	if n >= s.cfg.QueueLen || b+size > s.cfg.QueueBytes {
		l, waiting := s.link, s.waiting
		s.mu.Unlock()
		s.cfg.observeQueueFull()
		if waiting {
			// Not on the deliverer's goroutine: ending runs the
			// router's unbind work.
			go s.expire("send queue full")
			return false
		}
		s.logger.Warn("send queue full, closing session", "queued", n, "bytes", b)
		s.Close(streamError(stream.PolicyViolation, "send queue full: the client is not reading"))
		if l != nil {
			// The writer may be stuck in a write the client does not
			// read: make it fail now.
			l.stall()
		}
		return false
	}
	it.counted = s.sm != nil && it.st != nil
	s.queue = append(s.queue, it)
	s.queueBytes += size
	s.kick()
	s.mu.Unlock()
	return true
}

// attach makes l the session's transport, whose read loop is about to
// run, and lets the writer write to it; what was queued before
// (deliveries between bind and the end of negotiation) goes out first,
// after the bind result. Serve attaches the link it negotiated;
// resumption (see resumeOn) attaches a new connection to a session that
// waited after its old one broke.
func (s *Session) attach(l *link) {
	s.mu.Lock()
	s.attachLocked(l)
	s.mu.Unlock()
}

func (s *Session) attachLocked(l *link) {
	s.link, s.on, s.reading = l, l, true
	if len(s.queue) > 0 || s.closing {
		s.kick()
	}
}

// detach takes the session's link away and closes its connection: the
// writer writes to it no more. It is called when the link failed (a
// panic in the writer, a write error of a session that cannot wait for
// resumption), and the session then ends.
func (s *Session) detach() {
	s.mu.Lock()
	l := s.link
	s.link = nil
	s.mu.Unlock()
	if l != nil {
		l.conn.Close()
	}
}

// kick starts the writer unless it runs. The caller holds s.mu. An idle
// session has no writer goroutine: it costs no stack.
func (s *Session) kick() {
	if s.link != nil && !s.writing && !s.finished {
		s.writing = true
		go s.writeLoop()
	}
}

// Close ends the session with the given stream error (the zero Error for a
// plain close): queued stanzas are dropped, the error and the closing
// stream tag are written, and the socket is closed shortly after. It does
// not wait for any of this.
func (s *Session) Close(e stream.Error) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if s.waiting {
		// No connection to write to: the session ends now, as when its
		// wait for resumption is over.
		s.mu.Unlock()
		s.expire("closed: " + e.Err)
		return
	}
	s.closing = true
	if e.Err != "" {
		s.closeErr = &e
	}
	dropped := s.dropQueueLocked()
	s.kick()
	s.mu.Unlock()
	report(dropped, false)
}

// dropQueueLocked empties the queue and returns the items to report as
// never written. Under stream management a stanza without a callback is
// kept with the unacknowledged ones instead, to be routed again when the
// session ends (Router.Reroute); one with a callback is reported (its
// sender, offline delivery, keeps it). The caller holds s.mu.
func (s *Session) dropQueueLocked() []outbound {
	dropped := s.queue
	s.queue, s.queueBytes = nil, 0
	if s.sm == nil {
		return dropped
	}
	kept := dropped[:0]
	for _, it := range dropped {
		if it.counted && it.written == nil {
			s.sm.unacked = append(s.sm.unacked, it.st)
			s.sm.unackedBytes += it.size()
			continue
		}
		kept = append(kept, it)
	}
	return kept
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
	s.closing, s.peerClosed = true, true
	s.kick()
	s.mu.Unlock()
}

// writeLoop is the session's single writer while it runs. It writes the
// queue in batches, one write per batch to the current link, until the
// queue is empty (then it exits; kick starts it again) or the session is
// closed.
func (s *Session) writeLoop() {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("panic in the session writer", "panic", r, "stack", stack())
			s.detach()
			s.end()
		}
	}()
	var batch []outbound
	for {
		s.mu.Lock()
		l := s.link
		if l == nil {
			// Detached: the queue waits for the next link.
			s.stopWriting()
			s.mu.Unlock()
			return
		}
		batch, s.queue = s.queue, batch[:0]
		s.queueBytes = 0
		closing, closeErr, peerClosed := s.closing, s.closeErr, s.peerClosed
		if len(batch) == 0 && !closing {
			s.stopWriting()
			s.mu.Unlock()
			return
		}
		if s.sm != nil {
			// Counted as sent before the write: the client may read and
			// acknowledge the first stanzas before the write returns.
			if s.sm.wantRequest(batch) {
				batch = append(batch, outbound{raw: ackRequest, request: true})
			}
			s.sm.sent(batch)
		}
		s.mu.Unlock()

		if len(batch) > 0 {
			err := l.write(batch, s.cfg.WriteTimeout)
			for _, it := range batch {
				if it.written != nil {
					// A counted stanza is stream management's from
					// here: resent on resumption, or routed again.
					it.written(err == nil || it.counted)
				}
			}
			clear(batch)
			if err != nil {
				s.logger.Debug("write failed", "err", err)
				s.writeFailed(l)
				return
			}
			continue // the queue may have grown meanwhile
		}
		if peerClosed {
			// Nothing more to read or wait for: the closing tag can
			// leave with the connection's last bytes.
			corkUnder(l.conn)
		}
		l.finish(closeErr, s.cfg.CloseGrace, s.logger)
		s.end()
		return
	}
}

// writeFailed ends the writer after a write to l failed. A session that
// may wait for resumption keeps its queue and lets its read loop, which
// the closed connection ends, decide; any other ends.
func (s *Session) writeFailed(l *link) {
	s.mu.Lock()
	if s.resumableLocked() && !s.closing {
		if s.link == l {
			s.link = nil
		}
		s.stopWriting()
		s.mu.Unlock()
		l.conn.Close()
		return
	}
	s.closing = true
	rest := s.dropQueueLocked()
	s.mu.Unlock()
	report(rest, false)
	s.detach()
	s.end()
}

// stopWriting records that the writer stopped. The caller holds s.mu.
func (s *Session) stopWriting() {
	s.writing = false
	s.idle.Broadcast()
}

// end marks the writer done for good.
func (s *Session) end() {
	s.mu.Lock()
	s.finished, s.writing = true, false
	s.idle.Broadcast()
	s.mu.Unlock()
	close(s.done)
}

// Tick runs the session's timers at now: a whitespace keepalive when the
// server has not written for Keepalive, and a connection-timeout close
// when the client has sent nothing for IdleTimeout. The server calls it
// periodically for every session, so a session needs no timer of its own.
// A session without a link (not attached yet) has no timers.
func (s *Session) Tick(now time.Time) {
	s.mu.Lock()
	l := s.link
	s.mu.Unlock()
	if l == nil {
		return
	}
	if now.Sub(l.lastInput()) > s.cfg.IdleTimeout {
		s.logger.Info("idle timeout", "after", s.cfg.IdleTimeout)
		if s.resumable() {
			// The network is likely gone: the session waits for its
			// client to resume on a new connection.
			l.stall()
			l.conn.Close()
			return
		}
		s.Close(streamError(stream.ConnectionTimeout, "idle too long"))
		return
	}
	quiet := now.Sub(time.Unix(0, l.lastWrite.Load()))
	if s.ackDue(quiet) {
		s.enqueue(outbound{raw: ackRequest, request: true})
		return
	}
	if quiet > s.cfg.Keepalive {
		s.enqueue(outbound{raw: keepalive})
	}
}
