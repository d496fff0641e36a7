package c2s

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"
)

// GuardLimits bound what one client may send before the XML decoder
// buffers it.
type GuardLimits struct {
	// MaxElement is the most bytes of one stream-level element (a stanza,
	// a SASL element, the stream header), attributes included, and of a
	// run of text between elements.
	MaxElement int
	// MaxDepth is the deepest nesting of elements below a stanza.
	MaxDepth int
	// MaxAttributes is the most attributes of one element.
	MaxAttributes int
	// MaxPrebind is MaxElement before a resource is bound (the stream
	// header, SASL and bind elements, whitespace between them), so that
	// an unauthenticated connection holds little memory. 0 or a value
	// above MaxElement means MaxElement.
	MaxPrebind int
}

// prebind returns the limits that apply during negotiation.
func (l GuardLimits) prebind() GuardLimits {
	if l.MaxPrebind > 0 && l.MaxPrebind < l.MaxElement {
		l.MaxElement = l.MaxPrebind
	}
	return l
}

// LimitError is a limit or a restriction of RFC 6120 §11.1 that the
// client's input broke; it carries the stream error to close with.
type LimitError struct {
	Err    stream.Error
	Reason string
}

func (e *LimitError) Error() string { return "c2s: " + e.Reason }

// guard sits between the socket (or the TLS connection) and mellium's XML
// decoder during negotiation and scans every byte the client sends. It
// refuses, before the decoder can buffer them, what an XMPP stream may
// not carry (RFC 6120 §11.1: comments, processing instructions other than
// the XML declaration, DTDs and entity declarations; an encoding other
// than UTF-8, §11.6), text that is not XML at all (such as an HTTP request
// on the c2s port) or that sits between elements, and what exceeds the
// limits (element size, nesting depth, attribute count). Whitespace
// between stream-level elements, which RFC 6120 allows and mellium's
// negotiation does not expect, is counted against the size limit and
// then dropped. The scan is a small state machine over bytes, with no
// allocation. Once a resource is bound the framer reads the guard's
// buffer itself.
type guard struct {
	net.Conn
	lim GuardLimits
	br  *bufio.Reader // over the connection; see ReadByte

	// lastRead is when bytes last arrived, in unix nanoseconds.
	lastRead atomic.Int64
	// park is set once the stream is bound and its reader may park
	// (see relay); nil before, and on transports that cannot.
	park *parking

	state    scanState
	depth    int  // open elements, the stream element included
	declOK   bool // an XML declaration may come now
	quote    byte // the quote of the attribute value being read
	attrs    int  // attributes of the start tag being read
	elemSize int  // bytes of the current stream-level element or text run
	match    int  // progress through a multi-byte token (CDATA, PI, ...)
	prev     byte // the byte before, for "/>" and "?>"
	err      error

	// In the XML declaration: progress through the name "encoding" of
	// the pseudo-attribute being read (-1: another name), whether the
	// value being read is the encoding's, and progress through "utf-8"
	// in it (-1: another value).
	declName, declVal int
	declEnc           bool
}

type scanState uint8

const (
	sText     scanState = iota
	sLT                 // after '<'
	sStart              // in a start tag (name or attributes)
	sAttrVal            // in a quoted attribute value
	sEnd                // in an end tag
	sBang               // after "<!", expecting "[CDATA["
	sCDATA              // in a CDATA section
	sDecl               // after "<?", expecting "xml"
	sDeclBody           // in the XML declaration
)

const cdataOpen = "[CDATA["

// The XML declaration's encoding pseudo-attribute and the only value
// accepted, compared without case as encoding/xml does.
const (
	declEncoding = "encoding"
	declUTF8     = "utf-8"
)

// readBufferSize is the guard's read buffer: decrypted TLS records are
// copied through it, so it sets the size of reads, not of messages.
const readBufferSize = 1024

// newGuard returns a guard over c with the pre-bind limits of lim.
func newGuard(c net.Conn, lim GuardLimits) *guard {
	g := &guard{Conn: c, lim: lim.prebind(), declOK: true}
	g.br = bufio.NewReaderSize(activityReader{g}, readBufferSize)
	g.lastRead.Store(time.Now().UnixNano())
	return g
}

// activityReader reads the connection and records when bytes arrived.
type activityReader struct{ g *guard }

func (r activityReader) Read(p []byte) (int, error) {
	for {
		pk := r.g.park
		if pk != nil {
			pk.arm(r.g.Conn)
		}
		n, err := r.g.Conn.Read(p)
		if n > 0 {
			r.g.lastRead.Store(time.Now().UnixNano())
		}
		if n > 0 || pk == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		switch pk.timedOut(r.g.Conn) {
		case parkNow:
			return 0, errParked
		case readOn:
			continue
		}
		return n, err
	}
}

// errParked ends a read loop whose reader parks: the stream goes on (see
// link.readThen).
var errParked = errors.New("c2s: reader parked")

// parking is the state of a bound stream's reader that parks when no
// input came for parkAfter, between two elements: it reads with a read
// deadline at most parkAfter ahead, moved on as input comes, and when it
// passes, the read loop returns and the relay waits for input with a
// small stack. crypto/tls keeps a partial record across a timeout (the
// error is temporary), and a read that timed out has found nothing
// buffered in crypto/tls, so waiting for the socket to be readable loses
// nothing.
type parking struct {
	mu      sync.Mutex
	closing bool // the stream is closing: its read deadline is the close's
	// deadline is the read deadline set by arm, unix ns (0: none); it
	// changes under mu.
	deadline atomic.Int64
	// between reports whether the read loop is between two top-level
	// elements (set with the read loop's framer), where it may park.
	between func() bool
	parked  bool // the last read ended with errParked
}

// What a read that timed out does next.
const (
	failRead = iota // the deadline is not ours: the read fails
	parkNow         // park
	readOn          // in the middle of an element: go on reading
)

// arm moves the read deadline parkAfter ahead when it is less than half
// of that away, so that a busy reader sets it about twice per parkAfter.
func (pk *parking) arm(c net.Conn) {
	now := time.Now().UnixNano()
	if pk.deadline.Load()-now >= int64(parkAfter/2) {
		return
	}
	pk.mu.Lock()
	if !pk.closing {
		pk.deadline.Store(now + int64(parkAfter))
		c.SetReadDeadline(time.Unix(0, now+int64(parkAfter)))
	}
	pk.mu.Unlock()
}

// timedOut decides what a read that timed out does next, and clears the
// deadline unless it was the close's.
func (pk *parking) timedOut(c net.Conn) int {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if pk.closing || pk.deadline.Load() == 0 {
		return failRead
	}
	pk.deadline.Store(0)
	c.SetReadDeadline(time.Time{})
	if pk.between == nil || !pk.between() {
		return readOn
	}
	pk.parked = true
	return parkNow
}

// parked reports whether the read loop ended because its reader parked.
func (g *guard) parked() bool {
	if g.park == nil {
		return false
	}
	g.park.mu.Lock()
	defer g.park.mu.Unlock()
	return g.park.parked
}

// close gives the read deadline to the stream's close: from now on a
// timeout fails the read.
func (pk *parking) close(c net.Conn, deadline time.Time) {
	pk.mu.Lock()
	pk.closing = true
	c.SetReadDeadline(deadline)
	pk.mu.Unlock()
}

// idleReaders keep the read buffers that parked readers gave back: a
// parked stream holds none.
var idleReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// release lets the read loop's framer go and gives the guard's read
// buffer back while its reader is parked, unless the buffer holds input
// (it does not: the reader parks only after a read found nothing). The
// buffer changes under the parking's lock, with which parked is read.
func (g *guard) release() {
	g.park.mu.Lock()
	defer g.park.mu.Unlock()
	g.park.between = nil // the read loop's framer: the next loop has its own
	if g.br.Buffered() > 0 {
		return
	}
	g.br.Reset(nil)
	idleReaders.Put(g.br)
	g.br = nil
}

// reacquire gives the guard a read buffer again after a park.
func (g *guard) reacquire() {
	g.park.mu.Lock()
	defer g.park.mu.Unlock()
	g.park.parked = false
	if g.br == nil {
		g.br = idleReaders.Get().(*bufio.Reader)
		g.br.Reset(activityReader{g})
	}
}

// ReadByte makes the guard an io.ByteReader, so that mellium's XML
// decoder reads through the guard's buffer byte by byte instead of
// buffering ahead on its own: when negotiation ends, every byte it did
// not consume is still here for the framer. Whitespace between
// stream-level elements is scanned but not returned.
func (g *guard) ReadByte() (byte, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		c, err := g.br.ReadByte()
		if err != nil {
			return 0, err
		}
		drop := g.between(c)
		if serr := g.step(c); serr != nil {
			g.err = serr
			return 0, serr
		}
		if !drop {
			return c, nil
		}
	}
}

// between reports whether c is whitespace between stream-level elements
// (before the stream header or inside the stream element, outside any
// stanza), which the decoder is not given.
func (g *guard) between(c byte) bool {
	return g.state == sText && g.depth <= 1 && isSpace(c)
}

// restart prepares for a new stream on the same connection (after SASL).
func (g *guard) restart() {
	g.state, g.depth, g.declOK, g.elemSize, g.match = sText, 0, true, 0, 0
	g.quote, g.prev = 0, 0
}

// ConnectionState reports the TLS state of the connection underneath.
func (g *guard) ConnectionState() tls.ConnectionState {
	if tc, ok := g.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Read reads from the connection and scans what it got, leaving out
// whitespace between stream-level elements as ReadByte does. A violation
// is returned as a *LimitError, after which every read fails.
func (g *guard) Read(p []byte) (int, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		n, err := g.br.Read(p)
		kept := 0
		for _, c := range p[:n] {
			drop := g.between(c)
			if serr := g.step(c); serr != nil {
				// What came before the violation still reaches the
				// decoder; the next read reports it.
				g.err = serr
				if kept == 0 {
					return 0, serr
				}
				return kept, nil
			}
			if !drop {
				p[kept] = c
				kept++
			}
		}
		if kept > 0 || err != nil || n == 0 {
			return kept, err
		}
	}
}

func (g *guard) fail(e stream.Error, reason string) error {
	return &LimitError{Err: e, Reason: reason}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// scan advances the state machine over b. On a violation it returns how
// many bytes came before it, and the error.
func (g *guard) scan(b []byte) (int, error) {
	for i, c := range b {
		if err := g.step(c); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

func (g *guard) step(c byte) error {
	{
		// Count the bytes of the stream-level element being read (depth 1
		// is inside the stream, so a stanza is what sits at depth >= 2),
		// and of text runs between elements.
		g.elemSize++
		if g.elemSize > g.lim.MaxElement {
			return g.fail(streamError(stream.PolicyViolation, "element too large"), "element over the size limit")
		}
		switch g.state {
		case sText:
			switch {
			case c == '<':
				g.state = sLT
			case isSpace(c):
			case g.depth == 0:
				// Before the stream header only whitespace may come: this
				// is not XML (an HTTP request, a TLS hello on the
				// STARTTLS port), and waiting for more would not help.
				return g.fail(streamError(stream.NotWellFormed, "not an XML stream"), "not XML")
			case g.depth == 1:
				return g.fail(streamError(stream.BadFormat, "text outside a stanza"), "text at stream level")
			default:
				g.declOK = false
			}
		case sLT:
			switch {
			case c == '/':
				g.state = sEnd
			case c == '!':
				g.state, g.match = sBang, 0
			case c == '?':
				if !g.declOK {
					return g.fail(streamError(stream.RestrictedXML, "processing instructions are not allowed"), "processing instruction")
				}
				g.state, g.match = sDecl, 0
				g.quote, g.declName, g.declVal, g.declEnc = 0, 0, 0, false
			default:
				g.declOK = false
				g.state, g.attrs, g.quote = sStart, 0, 0
				if g.depth <= 1 {
					// A new stream-level element: the text before it was
					// counted on its own.
					g.elemSize = 2
				}
				if g.depth-1 > g.lim.MaxDepth {
					return g.fail(streamError(stream.PolicyViolation, "elements nested too deep"), "nesting over the depth limit")
				}
			}
		case sStart:
			switch {
			case c == '"' || c == '\'':
				g.state, g.quote = sAttrVal, c
			case c == '=':
				g.attrs++
				if g.attrs > g.lim.MaxAttributes {
					return g.fail(streamError(stream.PolicyViolation, "too many attributes"), "attributes over the limit")
				}
			case c == '>' && g.prev == '/':
				// An empty element: it opened and closed.
				g.state = sText
				g.closed()
			case c == '>':
				g.state = sText
				if g.depth++; g.depth == 1 {
					// The stream header is complete.
					g.elemSize = 0
				}
			}
		case sAttrVal:
			if c == g.quote {
				g.state = sStart
			}
		case sEnd:
			if c == '>' {
				g.state = sText
				g.depth--
				g.closed()
			}
		case sBang:
			// Only CDATA sections may start with "<!"; comments, DTDs and
			// entity declarations may not.
			if g.depth < 2 || c != cdataOpen[g.match] {
				return g.fail(streamError(stream.RestrictedXML, "comments, DTDs and entity declarations are not allowed"), "comment, DTD or declaration")
			}
			if g.match++; g.match == len(cdataOpen) {
				g.state, g.match = sCDATA, 0
			}
		case sCDATA:
			switch {
			case c == ']':
				if g.match < 2 {
					g.match++
				}
			case c == '>' && g.match == 2:
				g.state, g.match = sText, 0
			default:
				g.match = 0
			}
		case sDecl:
			const xmlName = "xml"
			switch {
			case g.match < len(xmlName) && c == xmlName[g.match]:
				g.match++
			case g.match == len(xmlName) && isSpace(c):
				g.state = sDeclBody
			default:
				return g.fail(streamError(stream.RestrictedXML, "processing instructions are not allowed"), "processing instruction")
			}
		case sDeclBody:
			if err := g.declStep(c); err != nil {
				return err
			}
		}
		g.prev = c
	}
	return nil
}

// declStep scans one byte of the XML declaration after "<?xml ", and
// refuses an encoding other than UTF-8 (RFC 6120 §11.6) when its value
// ends, before the decoder sees it.
func (g *guard) declStep(c byte) error {
	switch {
	case c == '>' && g.prev == '?':
		// Like encoding/xml, the first "?>" ends the declaration, in a
		// quoted value or not.
		g.state, g.declOK = sText, false
	case g.quote != 0 && c == g.quote:
		g.quote = 0
		if g.declEnc && g.declVal != len(declUTF8) {
			return g.fail(streamError(stream.UnsupportedEncoding, "only UTF-8 is supported"), "encoding other than UTF-8")
		}
		g.declName, g.declEnc = 0, false
	case g.quote != 0:
		if g.declEnc && g.declVal >= 0 {
			if g.declVal < len(declUTF8) && lower(c) == declUTF8[g.declVal] {
				g.declVal++
			} else {
				g.declVal = -1
			}
		}
	case c == '"' || c == '\'':
		g.quote = c
		g.declEnc, g.declVal = g.declName == len(declEncoding), 0
	case isSpace(c) || c == '=':
		// Around the name and the '=': the name read so far stands.
	case g.declName >= 0 && g.declName < len(declEncoding) && c == declEncoding[g.declName]:
		g.declName++
	default:
		g.declName = -1
	}
	return nil
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// closed runs when an element ended; when it was a stream-level one, the
// next element starts its own count.
func (g *guard) closed() {
	if g.depth <= 1 {
		g.elemSize = 0
	}
}
