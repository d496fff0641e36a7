package web

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/c2s"
)

// subprotocol is RFC 7395's WebSocket subprotocol.
const subprotocol = "xmpp"

// closeMessage is RFC 7395's <close/>, written exactly as Strophe.js
// compares it.
const closeMessage = `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`

// serveWebSocket upgrades a request to XMPP over WebSocket and runs the
// session until it ends.
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		h.refuseOrigin(w, r, "websocket")
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "this is the XMPP over WebSocket endpoint (RFC 7395): open a WebSocket with the xmpp subprotocol", http.StatusUpgradeRequired)
		return
	}
	if !offersXMPP(r) {
		http.Error(w, "the xmpp WebSocket subprotocol is required (RFC 7395)", http.StatusBadRequest)
		return
	}
	remote := h.clientAddr(r)
	// The connection was admitted when accepted; a client behind a
	// trusted proxy is rated by its own address here.
	if h.proxied(r) && !h.opts.Admit(remote.Addr(), false) {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{subprotocol},
		// The origin was checked above, by our own policy.
		InsecureSkipVerify: true,
	})
	if err != nil {
		h.logger.Debug("websocket upgrade failed", "remote", remote.String(), "err", err)
		return
	}
	// The c2s guard refuses an element over the limit with a stream
	// error while the message streams in, and readMessage a message over
	// the limit of the moment (see wsConn.limit); this is a backstop.
	ws.SetReadLimit(int64(wsMessageLimit(h.opts.MaxStanza)))
	c := h.newWSConn(ws, localAddr(r), tcpAddr(remote))
	h.logger.Debug("websocket session", "remote", remote.String(), "origin", r.Header.Get("Origin"))
	if !h.opts.Serve(c) {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
	}
}

// wsMessageLimit is the largest message read for an element limit of
// max: the element and some whitespace around it.
func wsMessageLimit(max int) int { return max + 4<<10 }

// offersXMPP reports whether the client asked for the xmpp subprotocol.
func offersXMPP(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(p) == subprotocol {
				return true
			}
		}
	}
	return false
}

// wsConn is one XMPP over WebSocket session as the byte stream c2s reads
// and writes. A reader goroutine turns each message into stream bytes (a
// client's <open/> into a stream header, its <close/> into the closing
// tag, anything else as it is, streamed through so that the c2s guard
// sees an oversized element before it is buffered); Write cuts c2s's
// output into top-level elements and sends each as one message, stream
// headers as <open/>, the closing tag as <close/>, and a whitespace
// keepalive as a WebSocket ping.
type wsConn struct {
	ws            *websocket.Conn
	logger        *slog.Logger
	local, remote net.Addr
	rd, wd        *deadline
	pingTimeout   time.Duration

	// limit is the most bytes of one message: small until c2s bound a
	// resource (security review #5), then boundLimit.
	limit      atomic.Int64
	boundLimit int64

	chunks  chan []byte // from the reader goroutine; closed when it ends
	readErr error       // why it ended, set before chunks is closed
	pending []byte      // the rest of the last chunk

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	wmu     sync.Mutex // one Write at a time
	out     *splitter
	pinging atomic.Bool
	alive   atomic.Int64 // when a ping was last answered, unix nanoseconds
}

var (
	_ c2s.Activity = (*wsConn)(nil)
	_ Conn         = (*wsConn)(nil)
)

func (h *Handler) newWSConn(ws *websocket.Conn, local, remote net.Addr) *wsConn {
	c := &wsConn{
		ws:          ws,
		logger:      h.logger,
		local:       local,
		remote:      remote,
		rd:          newDeadline(),
		wd:          newDeadline(),
		pingTimeout: h.opts.WriteTimeout,
		boundLimit:  int64(wsMessageLimit(h.opts.MaxStanza)),
		chunks:      make(chan []byte),
		done:        make(chan struct{}),
		out:         newSplitter(outputLimit(h.opts.MaxStanza)),
	}
	c.limit.Store(int64(wsMessageLimit(h.opts.MaxPrebind)))
	go c.readLoop()
	return c
}

// readLoop reads messages until the connection ends.
func (c *wsConn) readLoop() {
	defer close(c.chunks)
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.readErr = wsReadError(err)
			return
		}
		if typ != websocket.MessageText {
			c.readErr = &c2s.LimitError{Err: stream.UnsupportedEncoding, Reason: "binary WebSocket message (RFC 7395 uses text)"}
			return
		}
		if err := c.readMessage(r); err != nil {
			c.readErr = err
			return
		}
	}
}

// openMax bounds the message read whole to look for <open/> or <close/>.
const openMax = 4 << 10

func (c *wsConn) readMessage(r io.Reader) error {
	// Read one byte past the limit of the moment: a message that has it
	// is refused with policy-violation, after what came before it.
	limit := c.limit.Load()
	r = io.LimitReader(r, limit+1)
	read := int64(0)
	buf := make([]byte, min(openMax, limit+1))
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// The whole message.
		return c.send(translateIn(buf[:n]))
	case err != nil:
		return wsReadError(err)
	}
	if err := c.send(buf); err != nil {
		return err
	}
	read += int64(len(buf))
	for {
		buf := make([]byte, 16<<10)
		n, err := r.Read(buf)
		if read += int64(n); read > limit {
			return &c2s.LimitError{Err: stream.PolicyViolation, Reason: fmt.Sprintf("WebSocket message over %d bytes", limit)}
		}
		if n > 0 {
			if err := c.send(buf[:n]); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return wsReadError(err)
		}
	}
}

func (c *wsConn) send(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	select {
	case c.chunks <- b:
		return nil
	case <-c.done:
		return net.ErrClosed
	}
}

// wsReadError maps the end of the WebSocket to what c2s expects of a
// socket: a close frame is the end of input, a message over the limit a
// policy violation, anything else a broken connection.
func wsReadError(err error) error {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		return &c2s.LimitError{Err: stream.PolicyViolation, Reason: "WebSocket message over the size limit"}
	case websocket.CloseStatus(err) != -1, errors.Is(err, io.EOF):
		return io.EOF
	}
	return fmt.Errorf("websocket: %w: %w", net.ErrClosed, err)
}

// translateIn turns one whole client message into stream bytes: RFC
// 7395's <open/> into a stream header with the same to, from, version and
// xml:lang, <close/> into the closing tag; anything else (stanzas,
// nonces, mistakes) is passed on as it is, for c2s to judge.
func translateIn(msg []byte) []byte {
	t := bytes.TrimLeft(msg, " \t\r\n")
	if bytes.HasPrefix(t, []byte("<?xml")) {
		// An XML declaration before <open/>: dropped, as c2s wants one
		// only at the start of the stream.
		if i := bytes.Index(t, []byte("?>")); i >= 0 {
			t = bytes.TrimLeft(t[i+2:], " \t\r\n")
		}
	}
	if !bytes.HasPrefix(t, []byte("<open")) && !bytes.HasPrefix(t, []byte("<close")) {
		return msg
	}
	tok, err := xml.NewDecoder(bytes.NewReader(t)).Token()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok || start.Name.Space != nsFraming {
		return msg
	}
	switch start.Name.Local {
	case "close":
		return []byte("</stream:stream>")
	case "open":
		var b strings.Builder
		b.WriteString("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'")
		for _, a := range start.Attr {
			name := a.Name.Local
			switch {
			case a.Name.Space == nsXML && name == "lang":
				name = "xml:lang"
			case a.Name.Space != "":
				continue
			case name != "to" && name != "from" && name != "version" && name != "id":
				continue
			}
			fmt.Fprintf(&b, " %s='%s'", name, escapeAttr(a.Value))
		}
		b.WriteString(">")
		return []byte(b.String())
	}
	return msg
}

// openMessage is RFC 7395's <open/> for a stream header c2s wrote.
func openMessage(h streamHeader) []byte {
	var b strings.Builder
	b.WriteString(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"`)
	attr := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, ` %s="%s"`, name, escapeAttr(v))
		}
	}
	attr("from", h.from)
	attr("to", h.to)
	attr("id", h.id)
	attr("version", cmp(h.version, "1.0"))
	attr("xml:lang", cmp(h.lang, "en"))
	b.WriteString("/>")
	return []byte(b.String())
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Read returns stream bytes from the client.
func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		select {
		case b, ok := <-c.chunks:
			if !ok {
				return 0, c.readErr
			}
			c.pending = b
		case <-c.rd.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.done:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write frames c2s's output as messages; it returns once every element
// it completed was sent.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if isClosed(c.done) {
		return 0, net.ErrClosed
	}
	wait := c.wd.wait()
	if isClosed(wait) {
		return 0, os.ErrDeadlineExceeded
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // also ends the watcher below
	go func() {
		select {
		case <-wait:
			cancel()
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := c.out.feed(p, func(ev event, data []byte, h streamHeader) error {
		switch ev {
		case evHeader:
			return c.ws.Write(ctx, websocket.MessageText, openMessage(h))
		case evElement:
			return c.ws.Write(ctx, websocket.MessageText, data)
		case evEnd:
			return c.ws.Write(ctx, websocket.MessageText, []byte(closeMessage))
		case evSpace:
			c.ping()
		}
		return nil
	})
	if errors.Is(err, errOutputTooLarge) || errors.Is(err, errMarkup) {
		// Not the client's fault, and nothing it could parse: the session
		// ends, with the reason in the close frame and the log.
		c.logger.Warn("websocket session ended: server output not sent", "remote", c.remote.String(), "err", err)
		c.closeWith(websocket.StatusInternalError, "server output could not be framed")
		return 0, err
	}
	if err != nil {
		if isClosed(wait) {
			return 0, os.ErrDeadlineExceeded
		}
		return 0, err
	}
	return len(p), nil
}

// ping replaces the whitespace keepalive (RFC 7395 §3.4 wants none): a
// WebSocket ping, whose pong shows the client alive (see LastActivity).
func (c *wsConn) ping() {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.pingTimeout)
		defer cancel()
		if err := c.ws.Ping(ctx); err == nil {
			c.alive.Store(time.Now().UnixNano())
		}
	}()
}

// Bound raises the message limit to the stanza limit: c2s bound a
// resource.
func (c *wsConn) Bound() { c.limit.Store(c.boundLimit) }

// Transport names the transport for the operator ("ottr ctl sessions",
// the ottr_sessions metric).
func (c *wsConn) Transport() string { return "websocket" }

// LastActivity is when the client last answered a ping.
func (c *wsConn) LastActivity() time.Time { return time.Unix(0, c.alive.Load()) }

// Close ends the WebSocket with a normal closure, waiting a few seconds
// at most for the client's close frame.
func (c *wsConn) Close() error {
	c.closeWith(websocket.StatusNormalClosure, "")
	return nil
}

// closeWith ends the WebSocket with a status and a reason, once.
func (c *wsConn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		close(c.done)
		c.ws.Close(code, reason)
	})
}

func (c *wsConn) LocalAddr() net.Addr  { return c.local }
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

func (c *wsConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *wsConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *wsConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }
