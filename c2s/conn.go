package c2s

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
)

// negotiation is the per-connection state that the stream features share:
// which host the client addressed, who authenticated, and the bound
// session.
type negotiation struct {
	cfg    *Config
	base   context.Context // Serve's: the parent of the session's context
	ctx    context.Context // the negotiation's: base, until NegotiateTimeout
	conn   net.Conn        // the socket
	guard  *guard          // the current stream's input, over the socket or TLS
	logger *connLog

	host     string // domain the client addressed, once accepted
	aborted  bool   // a stream error was sent by abort
	headers  int    // stream headers mellium sent (one per stream)
	restarts int    // streams the client must open: 1 + restarts

	user    string   // authenticated localpart
	sess    *Session // set by bind, or by a resumption
	authErr error    // last credential failure, for the SASL condition
	resumed bool     // sess was resumed (XEP-0198) rather than bound
	previd  string   // the resumption id, when resumed

	// offer is what the SASL feature in use (RFC 6120's or SASL2's)
	// advertised: SCRAM refuses downgrades and hashes it (XEP-0474).
	offer auth.Offer

	// SASL2 (sasl2.go).
	tlsConn      *tls.Conn // the TLS connection under the stream, nil when not here
	cb           []byte    // its tls-server-end-point data, once computed
	agent        userAgent // the client's SASL2 <user-agent/>
	fastRotate   bool      // the login used a FAST token due for replacement
	sasl2Resumed bool      // resumed inside SASL2: <resumed/> went in <success/>
}

// Serve runs one client connection to its end: negotiation, then the
// stanza loop. conn may already be a *tls.Conn (direct TLS). Serve closes
// conn before it returns. A panic while handling the connection is
// recovered, logged with its stack, and answered with an
// internal-server-error stream error; it never takes the process down.
//
// The goroutine that calls Serve only waits: the work runs on goroutines
// of its own, so that an idle session holds no deep stack (see relay).
func Serve(ctx context.Context, conn net.Conn, cfg *Config) {
	cfg = cfg.WithDefaults()
	defer conn.Close()
	r := newRelay(conn, cfg.Logger)
	r.run(func() { serveConn(ctx, conn, cfg, r) })
}

// serveConn is Serve's work, run by r.
func serveConn(ctx context.Context, conn net.Conn, cfg *Config, r *relay) {
	n := &negotiation{
		cfg:    cfg,
		base:   ctx,
		ctx:    ctx,
		conn:   conn,
		guard:  newGuard(streamConn(conn), cfg.Guard),
		logger: &connLog{base: cfg.Logger, attrs: []any{"conn", cfg.connIDs.Add(1), "remote", conn.RemoteAddr().String()}},
	}
	n.tlsConn, _ = conn.(*tls.Conn) // direct TLS
	defer func() {
		if r := recover(); r != nil {
			n.logger.Error("panic during negotiation", "panic", r, "stack", stack())
			writeRaw(conn, streamError(stream.InternalServerError, ""))
		}
	}()
	n.logger.Debug("connected")

	xs, err := n.negotiate(ctx)
	if err != nil {
		n.fail(xs, err)
		if n.sess != nil {
			// Bound but the stream broke before Ready was reported.
			n.sess.leave(stream.Error{})
		}
		return
	}
	s := n.sess
	// From here on the session reads through the framer and writes its
	// own bytes: mellium's session (and its buffers) is no longer needed.
	l := newLink(conn, n.guard, r)
	if n.resumed {
		n.logger.Info("connection resumes a session", "jid", s.jid.String())
		previd := n.previd
		if n.sasl2Resumed {
			previd = "" // <resumed/> went in the SASL2 <success/>
		}
		s.resumeOn(l, previd)
	} else {
		s.logger.Info("session started", "tls", xs.State()&xmpp.Secure != 0)
		s.attach(l)
	}
	xs = nil
	l.readThen(s.readLoop, func(end stream.Error, dropped bool) {
		if s.linkDone(l, dropped) {
			// The session waits for resumption, or goes on over another
			// connection: this one is over.
			return
		}
		s.leave(end)
		<-s.done
		s.rerouteUnacked()
		s.logger.Info("session ended")
	})
}

// leave ends a bound session whose stream is over: its context is
// cancelled, the router unbinds it (with a context that is not), and it
// closes with e. It is no longer open to resumption.
func (s *Session) leave(e stream.Error) {
	s.mu.Lock()
	s.over = true
	sm := s.sm
	s.mu.Unlock()
	if sm != nil && sm.id != "" {
		s.cfg.resumable.remove(sm.id)
	}
	s.cancel()
	s.cfg.Router.Unbind(context.WithoutCancel(s.ctx), s)
	s.Close(e)
}

// negotiate runs mellium's receiving-side negotiation with our features,
// within NegotiateTimeout, and aborts when ctx is cancelled.
func (n *negotiation) negotiate(ctx context.Context) (*xmpp.Session, error) {
	features := []xmpp.StreamFeature{
		startTLS(n.cfg.TLS, n.cfg.RequireTLS, n),
		saslFeature(n),
		sasl2Feature(n),
		bindFeature(n),
		sessionFeature(),
		smFeature(n),
	}
	for _, el := range n.cfg.Announce {
		features = append(features, announced(func() xml.StartElement { return el }))
	}
	if n.cfg.Caps != nil {
		features = append(features, announced(n.cfg.Caps))
	}
	negotiator := xmpp.NewNegotiator(func(s *xmpp.Session, _ *xmpp.StreamConfig) xmpp.StreamConfig {
		if s != nil {
			n.streamOpened(s)
		}
		return xmpp.StreamConfig{Features: features}
	})
	// The deadline is ours, on the socket: mellium's own context watcher
	// resets the deadline right after setting it, which can leave a
	// blocked read asleep, so mellium gets a context that never ends. Our
	// features use n.ctx, which ends with ctx or at the deadline.
	deadline := time.Now().Add(n.cfg.NegotiateTimeout)
	n.conn.SetDeadline(deadline)
	var cancel context.CancelFunc
	n.ctx, cancel = context.WithDeadline(ctx, deadline)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { n.conn.SetDeadline(time.Unix(1, 0)) })
	var state xmpp.SessionState
	if _, ok := n.conn.(*tls.Conn); ok || n.cfg.Secure {
		state = xmpp.Secure // direct TLS (XEP-0368), or HTTPS underneath
	}
	xs, err := xmpp.ReceiveSession(context.WithoutCancel(ctx), n.guard, state, negotiator)
	if errors.Is(err, errResumed) {
		err = nil
	}
	stopped := stop()
	if err == nil && n.sess == nil {
		err = errors.New("c2s: negotiation finished without a bound resource")
	}
	switch {
	case err != nil && !stopped:
		err = fmt.Errorf("%w: %w", streamError(stream.SystemShutdown, ""), err)
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: %w", streamError(stream.ConnectionTimeout, "negotiation took too long"), err)
	case err == nil:
		n.conn.SetDeadline(time.Time{})
	}
	return xs, err
}

// streamOpened runs after each stream header exchange. On the first it
// checks the host the client addressed; an unknown host gets
// host-unknown and the connection is closed.
func (n *negotiation) streamOpened(s *xmpp.Session) {
	n.headers++
	if ns := s.In().XMLNS; ns != stanza.NSClient {
		// mellium accepts jabber:server too; this is a client port.
		n.abort(s, streamError(stream.InvalidNamespace, "this port serves jabber:client"))
		return
	}
	to := s.In().To.Domainpart()
	if n.host != "" {
		return
	}
	if to == "" || !n.cfg.Serves(to) {
		n.logger.Info("stream to a host not served", "to", to)
		n.abort(s, streamError(stream.HostUnknown, "this server does not serve "+to))
		return
	}
	n.host = to
}

// abort ends the stream from inside mellium's negotiation, right after our
// stream header went out: the error is written and the socket closed, so
// that mellium's next write fails and negotiation returns.
func (n *negotiation) abort(s *xmpp.Session, e stream.Error) {
	n.aborted = true
	writeRaw(s.Conn(), e)
	io.WriteString(s.Conn(), "</stream:stream>")
	n.conn.Close()
}

// fail reports a negotiation failure to the client with the fitting
// stream error, and logs it.
func (n *negotiation) fail(xs *xmpp.Session, err error) {
	if n.aborted {
		return
	}
	var se stream.Error
	var limit *LimitError
	switch {
	case errors.As(err, &limit):
		se = limit.Err
	case errors.As(err, &se):
		if se.Err == stream.PolicyViolation.Err && len(se.Text) == 0 {
			// mellium's answer to an element that is no feature on offer,
			// such as a stanza before authentication.
			se = streamError(stream.NotAuthorized, "negotiate the stream first (STARTTLS, SASL, bind)")
		}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		n.logger.Debug("connection closed during negotiation", "err", err)
		return
	case isXMLSyntax(err):
		se = streamError(stream.NotWellFormed, "")
	case isRestricted(err):
		se = streamError(stream.RestrictedXML, "")
	case isOtherEncoding(err):
		se = streamError(stream.UnsupportedEncoding, "only UTF-8 is supported")
	case errors.Is(err, os.ErrDeadlineExceeded):
		se = streamError(stream.ConnectionTimeout, "")
	default:
		se = streamError(stream.UndefinedCondition, "")
	}
	n.logger.Info("negotiation failed", "err", err, "stream_error", se.Err)
	conn := n.conn
	if xs != nil {
		conn = xs.Conn() // the TLS connection after STARTTLS
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if n.headers < 1+n.restarts {
		// Our stream header for this stream was not sent yet: RFC 6120
		// §4.9.1.2 wants one before the error.
		fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='%s'>", randid.New())
	}
	writeRaw(conn, se)
	if xs != nil {
		xs.Close()
	} else {
		io.WriteString(conn, "</stream:stream>")
	}
}

// writeRaw writes a stream error straight to the socket, for the moments
// when mellium's writer is not usable.
func writeRaw(w io.Writer, e stream.Error) {
	enc := xml.NewEncoder(w)
	e.WriteXML(enc)
	enc.Flush()
}

func isXMLSyntax(err error) bool {
	var se *xml.SyntaxError
	return errors.As(err, &se)
}

// isRestricted recognizes mellium's errors for comments, processing
// instructions and directives in the token stream (the guard refuses
// them first; this covers what it lets through, such as a declaration
// mellium does not expect).
func isRestricted(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "disallowed XML") || strings.Contains(msg, "xml.ProcInst") ||
		strings.Contains(msg, "xml.Comment") || strings.Contains(msg, "xml.Directive")
}

// isOtherEncoding recognizes encoding/xml's refusal of a declared
// encoding other than UTF-8 (the guard refuses the usual spellings first;
// this covers what encoding/xml reads differently).
func isOtherEncoding(err error) bool {
	return strings.Contains(err.Error(), "Decoder.CharsetReader is nil")
}

// readLoop reads stanzas from l until the stream ends and returns the
// stream error to close with (zero for a clean close), and whether the
// connection broke (rather than the stream being closed by either side):
// a session that may be resumed then waits.
func (s *Session) readLoop(l *link) (end stream.Error, dropped bool) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("panic while handling the stream", "panic", r, "stack", stack())
			end, dropped = streamError(stream.InternalServerError, ""), false
		}
	}()
	cfg := s.cfg
	fr := l.newFramer(cfg.Guard)
	for {
		el, needsCtx, err := l.nextElement(fr)
		if err != nil {
			return s.readError(err)
		}
		if el == nil {
			// The client closed its stream.
			s.logger.Debug("client closed the stream")
			s.closeGracefully()
			return stream.Error{}, false
		}
		st, err := element.FromBytes(el)
		if needsCtx || errors.Is(err, element.ErrNeedsContext) {
			var name xml.Name
			name, st, err = element.ParseInContext(el, cfg.Limits)
			if err == nil && st == nil {
				if name.Space == stream.NS && name.Local == "error" {
					s.logger.Info("client sent a stream error")
					return stream.Error{}, false
				}
				if end, over := s.other(name, el); over {
					return end, false
				}
				continue
			}
		}
		var addrErr *element.AddrError
		switch {
		case errors.As(err, &addrErr):
			s.handled()
			st.From = s.jid
			s.replyError(st, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
			continue
		case err != nil:
			s.logger.Info("not well-formed stanza", "err", err)
			return streamError(stream.NotWellFormed, ""), false
		}
		if name := (xml.Name{Space: element.NSClient, Local: st.Name}); !element.Is(name) {
			if end, over := s.other(name, el); over {
				return end, false
			}
			continue
		}
		s.handled()
		s.handle(st)
	}
}

// other handles a top-level element that is not a stanza with its
// handler in Config.Elements. It returns the stream error to close with
// and true when the stream ends: always without a handler
// (unsupported-stanza-type), else when the handler failed.
func (s *Session) other(name xml.Name, raw []byte) (stream.Error, bool) {
	if name.Space == nsSM {
		return s.smElement(name.Local, raw)
	}
	h, ok := s.cfg.Elements[name]
	if !ok {
		s.logger.Info("unsupported top-level element", "name", name.Local, "ns", name.Space)
		return streamError(stream.UnsupportedStanzaType, ""), true
	}
	err := h.HandleElement(s.ctx, s, Element{Name: name, Raw: raw})
	if err == nil {
		return stream.Error{}, false
	}
	se := streamError(stream.UndefinedCondition, "")
	errors.As(err, &se)
	s.logger.Info("element handler ended the stream", "name", name.Local, "ns", name.Space, "err", err, "stream_error", se.Err)
	return se, true
}

// nextElement returns the next complete top-level element from the
// client, as a copy the stanza may keep, or nil when the client closed
// the stream.
func (l *link) nextElement(fr *framer) ([]byte, bool, error) {
	return readElement(l.guard.br, fr)
}

// handled counts a stanza read from the client for stream management
// (XEP-0198's h, wrapping at 2^32). Only the read loop calls it.
func (s *Session) handled() {
	if s.sm != nil {
		s.sm.inH++
	}
}

// handle stamps st and passes it on.
func (s *Session) handle(st *element.Stanza) {
	// RFC 6120 §8.1.2.1: the server stamps the full JID, whatever the
	// client wrote.
	st.From = s.jid
	if st.Name == "iq" {
		switch {
		case st.ID == "":
			if st.IsIQRequest() {
				s.replyError(st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			}
			return
		case st.Type != "get" && st.Type != "set" && st.Type != "result" && st.Type != "error":
			s.replyError(st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
			return
		}
		if st.Type == "set" && isToServer(st, s.jid) {
			// The legacy session establishment (RFC 3921) is a no-op.
			if _, ok := st.Child(nsSession, "session"); ok {
				s.Deliver(st.Reply(st.To, nil))
				return
			}
			// One resource per stream (RFC 6120 §7.7.2.1).
			if _, ok := st.Child(nsBind, "bind"); ok {
				s.replyError(st, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed})
				return
			}
		}
	}
	s.cfg.Router.Route(s.ctx, s, st)
}

func isToServer(st *element.Stanza, self jid.JID) bool {
	return st.To.Equal(jid.JID{}) || st.To.Equal(self.Domain())
}

// replyError answers st with a stanza error from its addressee (or the
// server), unless st is itself an error.
func (s *Session) replyError(st *element.Stanza, e stanza.Error) {
	if st.Type == "error" {
		return
	}
	from := st.To
	if from.Equal(jid.JID{}) {
		from = s.jid.Domain()
	}
	reply := st.ErrorReply(from, e)
	reply.To = s.jid
	s.Deliver(reply)
}

// readError maps a read failure to the stream error that ends the stream,
// and reports whether the connection broke.
func (s *Session) readError(err error) (stream.Error, bool) {
	var se stream.Error
	var limit *LimitError
	switch {
	case errors.Is(err, errParked):
		return stream.Error{}, false
	case errors.As(err, &limit):
		s.logger.Info("input refused", "reason", limit.Reason)
		return limit.Err, false
	case errors.Is(err, io.EOF):
		if s.resumable() {
			// No closing tag: the connection broke, and the session
			// waits for resumption.
			s.logger.Debug("connection closed without closing the stream")
			return stream.Error{}, true
		}
		s.logger.Debug("client closed the stream")
		s.closeGracefully()
		return stream.Error{}, false
	case errors.As(err, &se):
		s.logger.Info("client sent a stream error", "condition", se.Err)
		return stream.Error{}, false
	case isXMLSyntax(err):
		s.logger.Info("not well-formed input", "err", err)
		return streamError(stream.NotWellFormed, ""), false
	case isRestricted(err):
		s.logger.Info("restricted XML", "err", err)
		return streamError(stream.RestrictedXML, ""), false
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		s.logger.Debug("connection ended", "err", err)
		return stream.Error{}, true
	default:
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, xmpp.ErrInputStreamClosed) {
			s.logger.Debug("connection ended", "err", err)
			return stream.Error{}, true
		}
		s.logger.Info("stream read failed", "err", err)
		return streamError(stream.BadFormat, ""), false
	}
}
