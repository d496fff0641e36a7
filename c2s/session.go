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

	// ctx is the session's context, cancelled when its stream ended.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	link       *link // the transport written to; nil until attached
	queue      []outbound
	queueBytes int
	closeErr   *stream.Error // set once: the stream error to send, then close
	closing    bool
	writing    bool          // a writer goroutine is running
	finished   bool          // the writer wrote the end of the stream
	done       chan struct{} // closed when the writer has finished
}

// outbound is one queued item and what to call once it was written: a
// stanza, or raw bytes (a non-stanza element, or the whitespace of a
// keepalive).
type outbound struct {
	st      *element.Stanza
	raw     []byte
	written func(ok bool)
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
	return &Session{
		jid:    full,
		cfg:    cfg,
		logger: logger,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// JID returns the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

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
// false if it never will be (the session closed first). It is called
// exactly once when DeliverThen returns true, and never when it returns
// false. It must not block.
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
// full.
func (s *Session) enqueue(it outbound) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	size := it.size()
	if len(s.queue) >= s.cfg.QueueLen || s.queueBytes+size > s.cfg.QueueBytes {
		n, b, l := len(s.queue), s.queueBytes, s.link
		s.mu.Unlock()
		s.logger.Warn("send queue full, closing session", "queued", n, "bytes", b)
		s.Close(streamError(stream.PolicyViolation, "send queue full: the client is not reading"))
		if l != nil {
			// The writer may be stuck in a write the client does not
			// read: make it fail now.
			l.stall()
		}
		return false
	}
	s.queue = append(s.queue, it)
	s.queueBytes += size
	s.kick()
	s.mu.Unlock()
	return true
}

// attach makes l the session's transport and lets the writer write to
// it; what was queued before (deliveries between bind and the end of
// negotiation) goes out first, after the bind result. Serve attaches the
// link it negotiated. It is also where XEP-0198 resumption will attach a
// new connection to a session that waits after its old one broke.
func (s *Session) attach(l *link) {
	s.mu.Lock()
	s.link = l
	if len(s.queue) > 0 || s.closing {
		s.kick()
	}
	s.mu.Unlock()
}

// detach takes the session's link away and closes its connection: the
// writer writes to it no more. It is called when the link failed (a write
// error, a panic in the writer); today the session then ends, and
// XEP-0198 will instead keep it, with its queue, waiting for attach.
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
			s.writing = false
			s.mu.Unlock()
			return
		}
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
			err := l.write(batch, s.cfg.WriteTimeout)
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
				s.detach()
				s.end()
				return
			}
			continue // the queue may have grown meanwhile
		}
		l.finish(closeErr, s.cfg.CloseGrace, s.logger)
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
		s.Close(streamError(stream.ConnectionTimeout, "idle too long"))
		return
	}
	if now.Sub(time.Unix(0, l.lastWrite.Load())) > s.cfg.Keepalive {
		s.enqueue(outbound{raw: keepalive})
	}
}
