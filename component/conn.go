package component

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
)

// Conn is one component's connection after its handshake: the
// router.Target of its domain.
type Conn struct {
	s      *Server
	name   string
	jid    jid.JID
	conn   net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	logger *slog.Logger

	wake chan struct{} // the writer's signal, capacity 1
	done chan struct{} // closed when the writer is over

	mu         sync.Mutex
	queue      [][]byte
	queueBytes int
	closing    bool
	closeErr   *stream.Error
	pending    map[pendingKey]router.Target // iq requests routed to the component
}

// pendingKey identifies an iq request routed to the component: its
// response comes from its addressee to its sender with the same id.
type pendingKey struct{ id, from, to string }

// JID is the component's domain.
func (c *Conn) JID() jid.JID { return c.jid }

// Deliver queues st to the component without blocking and reports whether
// it was queued; a full queue disconnects the component.
func (c *Conn) Deliver(st *element.Stanza) bool {
	return c.enqueue(st.AppendXML(nil))
}

// Close ends the connection with e (the zero Error for a plain close). It
// does not wait.
func (c *Conn) Close(e stream.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closing = true
	if e.Err != "" {
		c.closeErr = &e
	}
	c.kick()
}

// closeWith closes with err's stream error, or system-shutdown.
func (c *Conn) closeWith(err error) {
	se := stream.SystemShutdown
	errors.As(err, &se)
	c.Close(se)
}

// forward queues a stanza routed to the component by from and remembers
// an iq request so that its response goes back to from.
func (c *Conn) forward(from router.Target, st *element.Stanza) bool {
	if st.IsIQRequest() && from != nil {
		c.mu.Lock()
		if len(c.pending) >= c.s.cfg.MaxPendingIQ {
			for k := range c.pending { // forget one, any
				delete(c.pending, k)
				break
			}
		}
		c.pending[pendingKey{st.ID, st.From.String(), st.To.String()}] = from
		c.mu.Unlock()
	}
	return c.Deliver(st)
}

// asker returns, and forgets, who sent the request st answers.
func (c *Conn) asker(st *element.Stanza) router.Target {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := pendingKey{st.ID, st.To.String(), st.From.String()}
	t := c.pending[k]
	delete(c.pending, k)
	return t
}

// enqueue adds b to the queue and wakes the writer; past the limits the
// component is disconnected.
func (c *Conn) enqueue(b []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if len(c.queue) >= c.s.cfg.QueueLen || c.queueBytes+len(b) > c.s.cfg.QueueBytes {
		c.logger.Warn("component too slow: send queue full")
		c.closing = true
		c.closeErr = &stream.ResourceConstraint
		c.kick()
		return false
	}
	c.queue = append(c.queue, b)
	c.queueBytes += len(b)
	c.kick()
	return true
}

// kick wakes the writer; the caller holds c.mu.
func (c *Conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes the queue in batches until the connection closes, then
// the stream error and the closing tag.
func (c *Conn) writeLoop() {
	defer close(c.done)
	var buf []byte
	for range c.wake {
		c.mu.Lock()
		batch, closing, closeErr := c.queue, c.closing, c.closeErr
		c.queue, c.queueBytes = nil, 0
		c.mu.Unlock()
		buf = buf[:0]
		for _, b := range batch {
			buf = append(buf, b...)
		}
		if closing {
			buf = append(buf, closeBytes(closeErr)...)
		}
		if len(buf) > 0 {
			c.conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			if _, err := c.conn.Write(buf); err != nil {
				c.logger.Debug("write failed", "err", err)
				c.cancel()
				c.conn.Close()
				return
			}
		}
		if closing {
			// The read loop ends when the component closes its stream, or
			// at this deadline.
			c.conn.SetReadDeadline(time.Now().Add(c.s.cfg.CloseGrace))
			return
		}
	}
}

// closeBytes is a stream error (if any) and the stream's end tag.
func closeBytes(e *stream.Error) []byte {
	var b bytes.Buffer
	if e != nil {
		enc := xml.NewEncoder(&b)
		e.WriteXML(enc)
		enc.Flush()
	}
	b.WriteString("</stream:stream>")
	return b.Bytes()
}

// Serve runs one component connection to its end and closes conn. A
// panic while handling it is recovered, logged with its stack, and
// answered with an internal-server-error stream error, as a client
// session's is.
func (s *Server) Serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	logger := s.cfg.Logger.With("conn", s.ids.Add(1), "remote", conn.RemoteAddr().String())
	defer func() {
		if r := recover(); r != nil {
			logger.Error("panic while handling a component", "panic", r, "stack", string(debug.Stack()))
			conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			conn.Write(closeBytes(&stream.InternalServerError))
		}
	}()
	br := bufio.NewReaderSize(conn, 1024)
	conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := s.handshake(ctx, conn, br, logger)
	if err != nil {
		logger.Info("component refused", "err", err)
		se := stream.UndefinedCondition
		if !errors.As(err, &se) {
			se = readError(err)
		}
		if se.Err != "" {
			conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			conn.Write(closeBytes(&se))
		}
		return
	}
	defer s.release(c)
	logger.Info("component connected", "domain", c.name)
	go c.writeLoop()
	end := c.readLoop(br)
	c.cancel()
	c.Close(end)
	<-c.done
	logger.Info("component disconnected", "domain", c.name)
}

// header is the server's answer to a component's stream header.
func header(from, id string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='` + NS + `' from='` +
		escape(from) + `' id='` + id + `'>`)
	return b.Bytes()
}

// handshake reads the component's stream header and handshake, within
// the pre-bind limits, and returns the connection once its domain is
// claimed. An error is (or wraps) the stream error to close with, sent
// after the server's stream header when one was sent.
func (s *Server) handshake(ctx context.Context, conn net.Conn, br *bufio.Reader, logger *slog.Logger) (*Conn, error) {
	to, err := readHeader(br, s.cfg.Guard.MaxPrebind)
	if err != nil {
		// RFC 6120 §4.9.1.2: the server opens its stream before the error.
		conn.Write(header(to, randid.New()))
		return nil, err
	}
	id := randid.New()
	name := strings.ToLower(to)
	if d, err := jid.New("", to, ""); err == nil {
		name = d.Domainpart()
	}
	if _, err := conn.Write(header(name, id)); err != nil {
		return nil, err
	}
	secret, ok := s.secrets[name]
	if !ok {
		return nil, c2s.StreamError(stream.HostUnknown, "no component is configured for this domain")
	}
	proof, err := readHandshake(br, s.cfg.Guard)
	if err != nil {
		return nil, err
	}
	if !CheckHandshake(id, secret, proof) {
		return nil, c2s.StreamError(stream.NotAuthorized, "")
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &Conn{
		s: s, name: name, jid: jid.MustParse(name), conn: conn, ctx: cctx, cancel: cancel,
		logger: logger.With("domain", name),
		wake:   make(chan struct{}, 1), done: make(chan struct{}),
		pending: make(map[pendingKey]router.Target),
	}
	if !s.claim(c) {
		cancel()
		return nil, c2s.StreamError(stream.Conflict, "this component is connected already")
	}
	conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("<handshake/>")); err != nil {
		s.release(c)
		cancel()
		return nil, err
	}
	return c, nil
}

// Handshake returns a component's proof of secret for a stream id:
// hex(SHA-1(id + secret)), XEP-0114 §3.
func Handshake(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return hex.EncodeToString(sum[:])
}

// CheckHandshake compares proof, a component's handshake, with the
// expected one in constant time (its hex digits in either case).
func CheckHandshake(id, secret, proof string) bool {
	return subtle.ConstantTimeCompare([]byte(Handshake(id, secret)), []byte(strings.ToLower(strings.TrimSpace(proof)))) == 1
}

// byteBudget reads one byte at a time from a bufio.Reader, at most n of
// them: the XML decoder reads the stream header through it and takes no
// byte past the header's '>'.
type byteBudget struct {
	br *bufio.Reader
	n  int
}

func (b *byteBudget) ReadByte() (byte, error) {
	if b.n <= 0 {
		return 0, c2s.StreamError(stream.PolicyViolation, "stream header too large")
	}
	b.n--
	return b.br.ReadByte()
}

func (b *byteBudget) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c, err := b.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

// readHeader reads the component's stream header, at most max bytes with
// the XML declaration, and returns its to. RFC 6120 §11.1's restrictions
// hold: no comment, processing instruction (other than the declaration)
// or DTD.
func readHeader(br *bufio.Reader, max int) (to string, err error) {
	d := xml.NewDecoder(&byteBudget{br: br, n: max})
	for first := true; ; first = false {
		tok, err := d.RawToken()
		if err != nil {
			return "", readErr(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return "", c2s.StreamError(stream.RestrictedXML, "processing instruction")
			}
			if enc := procInstParam(t.Inst, "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return "", c2s.StreamError(stream.UnsupportedEncoding, "")
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return "", c2s.StreamError(stream.BadFormat, "text before the stream header")
			}
		case xml.StartElement:
			return checkHeader(t)
		default:
			return "", c2s.StreamError(stream.RestrictedXML, "comments, DTDs and declarations are not allowed")
		}
	}
}

// checkHeader checks a stream header read raw (prefixes unresolved) and
// returns its to.
func checkHeader(t xml.StartElement) (string, error) {
	var to, def, prefixNS string
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			to = a.Value
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			def = a.Value
		case a.Name.Space == "xmlns" && a.Name.Local == t.Name.Space:
			prefixNS = a.Value
		}
	}
	switch {
	case t.Name.Local != "stream":
		return to, c2s.StreamError(stream.InvalidNamespace, "not a stream header")
	case t.Name.Space == "" && def != stream.NS, t.Name.Space != "" && prefixNS != stream.NS:
		return to, c2s.StreamError(stream.InvalidNamespace, "")
	case t.Name.Space != "" && def != NS:
		return to, c2s.StreamError(stream.InvalidNamespace, "the default namespace must be "+NS)
	case to == "":
		return to, c2s.StreamError(stream.HostUnknown, "the stream header has no to")
	}
	return to, nil
}

// procInstParam returns the value of a pseudo-attribute of a processing
// instruction, as the xml package does for the declaration's encoding.
func procInstParam(inst []byte, name string) string {
	s := string(inst)
	i := strings.Index(s, name)
	if i < 0 {
		return ""
	}
	s = strings.TrimLeft(s[i+len(name):], " \t\r\n")
	if !strings.HasPrefix(s, "=") {
		return ""
	}
	s = strings.TrimLeft(s[1:], " \t\r\n")
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		return ""
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return ""
	}
	return s[1 : end+1]
}

// readHandshake reads the component's <handshake/> with the pre-bind
// limits and returns its text. Anything else first is not-authorized
// (XEP-0114 §3: the handshake comes first).
func readHandshake(br *bufio.Reader, lim c2s.GuardLimits) (string, error) {
	lim.MaxElement = lim.MaxPrebind
	el, _, err := c2s.NewFramer(lim).Next(br)
	switch {
	case err != nil:
		return "", err
	case el == nil:
		return "", io.EOF
	}
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamContext), bytes.NewReader(el)))
	if _, err := d.Token(); err != nil {
		return "", readErr(err)
	}
	tok, err := d.Token()
	if err != nil {
		return "", readErr(err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name != (xml.Name{Space: NS, Local: "handshake"}) {
		return "", c2s.StreamError(stream.NotAuthorized, "the handshake comes first")
	}
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", readErr(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			return text.String(), nil
		default:
			return "", c2s.StreamError(stream.NotAuthorized, "a handshake holds text only")
		}
	}
}

// streamContext is the declarations of a component's stream header, in
// scope of the elements it sends.
const streamContext = `<stream:stream xmlns='` + NS + `' xmlns:stream='http://etherx.jabber.org/streams'>`

// readErr maps an XML error of the component's input to a stream error.
func readErr(err error) error {
	var se stream.Error
	var limit *c2s.LimitError
	var syntax *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		return err
	case errors.As(err, &limit):
		return limit.Err
	case errors.As(err, &syntax):
		if strings.Contains(syntax.Msg, "CharsetReader") {
			return c2s.StreamError(stream.UnsupportedEncoding, "")
		}
		return c2s.StreamError(stream.NotWellFormed, "")
	case strings.Contains(err.Error(), "CharsetReader"):
		return c2s.StreamError(stream.UnsupportedEncoding, "")
	}
	return err
}

// readError is the stream error a read failure ends the stream with:
// none when the connection just ended.
func readError(err error) stream.Error {
	var se stream.Error
	if errors.As(readErr(err), &se) {
		return se
	}
	return stream.Error{}
}

// readLoop reads stanzas from the component until its stream ends, and
// returns the stream error to close with (zero for a clean close).
func (c *Conn) readLoop(br *bufio.Reader) stream.Error {
	fr := c2s.NewFramer(c.s.cfg.Guard)
	for {
		el, needsCtx, err := fr.Next(br)
		if err != nil {
			if se := readError(err); se.Err != "" {
				c.logger.Info("input refused", "err", err)
				return se
			}
			c.logger.Debug("connection ended", "err", err)
			return stream.Error{}
		}
		if el == nil {
			return stream.Error{} // the component closed its stream
		}
		st, name, err := parse(el, needsCtx, c.s.cfg.Limits)
		var addrErr *element.AddrError
		switch {
		case errors.As(err, &addrErr):
			c.reply(st, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
			continue
		case err != nil:
			c.logger.Info("not well-formed stanza", "err", err)
			return c2s.StreamError(stream.NotWellFormed, "")
		case st == nil && name == xml.Name{Space: stream.NS, Local: "error"}:
			c.logger.Info("component sent a stream error")
			return stream.Error{}
		case st == nil:
			return c2s.StreamError(stream.UnsupportedStanzaType, "")
		}
		if end, over := c.handle(st); over {
			return end
		}
	}
}

// handle checks one stanza from the component and routes it. It returns
// a stream error and true when the stream must end.
func (c *Conn) handle(st *element.Stanza) (stream.Error, bool) {
	switch {
	case st.From.Equal(jid.JID{}):
		st.From = c.jid // Prosody's leniency: the component's domain
	case st.From.Domainpart() != c.name:
		c.logger.Info("stanza from outside the component's domain", "from", st.From.String())
		return c2s.StreamError(stream.InvalidFrom, "stanzas must come from "+c.name+" or its JIDs"), true
	}
	if st.Name == "iq" && (st.ID == "" || st.Type != "get" && st.Type != "set" && st.Type != "result" && st.Type != "error") {
		if st.IsIQRequest() || st.Type != "result" && st.Type != "error" {
			c.reply(st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		}
		return stream.Error{}, false
	}
	if st.To.Equal(jid.JID{}) {
		c.reply(st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": "a component's stanzas need a to"}})
		return stream.Error{}, false
	}
	p := &peer{c: c, addr: st.From}
	if st.Name == "iq" && (st.Type == "result" || st.Type == "error") {
		if t := c.asker(st); t != nil {
			c.s.cfg.Core.Deliver(t, st)
			return stream.Error{}, false
		}
	}
	c.s.cfg.Core.RouteInbound(c.ctx, p, st)
	return stream.Error{}, false
}

// reply answers st from its addressee (or the server) with e, unless st
// is an error or an iq response.
func (c *Conn) reply(st *element.Stanza, e stanza.Error) {
	if st.Type == "error" || st.Name == "iq" && st.Type == "result" {
		return
	}
	from := st.To
	if from.Equal(jid.JID{}) {
		from = c.jid
	}
	r := st.ErrorReply(from, e)
	r.To = st.From
	if r.To.Equal(jid.JID{}) {
		r.To = c.jid
	}
	c.Deliver(r)
}

// parse reads one top-level element from the component: a stanza, or the
// name of another element (st nil). A stanza may carry xmlns='jabber:
// component:accept' or inherit it: either way it is read as a client
// stanza is, the namespaces of the two streams being the same for what
// routing does.
func parse(el []byte, needsCtx bool, lim element.Limits) (*element.Stanza, xml.Name, error) {
	if !needsCtx {
		st, err := element.FromBytes(el)
		switch {
		case errors.Is(err, element.ErrNeedsContext):
		case st == nil:
			return nil, xml.Name{}, err
		case !element.Is(xml.Name{Local: st.Name}):
			return nil, xml.Name{Space: NS, Local: st.Name}, nil
		default:
			return st, xml.Name{Space: NS, Local: st.Name}, err
		}
	}
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamContext), bytes.NewReader(el)))
	if _, err := d.Token(); err != nil {
		return nil, xml.Name{}, err
	}
	r := nsMap{d}
	for {
		tok, err := r.Token()
		if err != nil {
			return nil, xml.Name{}, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !element.Is(start.Name) {
			return nil, start.Name, nil
		}
		st, err := element.Read(start, r, lim)
		return st, start.Name, err
	}
}

// nsMap reads a component's elements as a client's: the namespace
// jabber:component:accept becomes jabber:client, and its declarations go.
type nsMap struct{ d *xml.Decoder }

func (m nsMap) Token() (xml.Token, error) {
	tok, err := m.d.Token()
	switch t := tok.(type) {
	case xml.StartElement:
		t = t.Copy()
		if t.Name.Space == NS {
			t.Name.Space = element.NSClient
		}
		attrs := t.Attr[:0]
		for _, a := range t.Attr {
			if a.Value == NS && (a.Name.Space == "" && a.Name.Local == "xmlns" || a.Name.Space == "xmlns") {
				continue
			}
			attrs = append(attrs, a)
		}
		t.Attr = attrs
		return t, err
	case xml.EndElement:
		if t.Name.Space == NS {
			t.Name.Space = element.NSClient
		}
		return t, err
	}
	return tok, err
}

// peer is the component seen as the sender of one stanza: its JID is the
// stanza's from, so that replies and bounces go back to that address.
type peer struct {
	c    *Conn
	addr jid.JID
}

// JID is the sender's address.
func (p *peer) JID() jid.JID { return p.addr }

// Deliver queues st to the component.
func (p *peer) Deliver(st *element.Stanza) bool { return p.c.Deliver(st) }

// Close ends the component's connection.
func (p *peer) Close(e stream.Error) { p.c.Close(e) }
