package c2s

import (
	"bufio"
	"crypto/tls"
	"net"
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
}

// LimitError is a limit or a restriction of RFC 6120 §11.1 that the
// client's input broke; it carries the stream error to close with.
type LimitError struct {
	Err    stream.Error
	Reason string
}

func (e *LimitError) Error() string { return "c2s: " + e.Reason }

// guard sits between the socket (or the TLS connection) and mellium's XML
// decoder and scans every byte the client sends. It refuses, before the
// decoder can buffer them, what an XMPP stream may not carry (RFC 6120
// §11.1: comments, processing instructions other than the XML
// declaration, DTDs and entity declarations) and what exceeds the limits
// (element size, nesting depth, attribute count). The scan is a small
// state machine over bytes, with no allocation.
type guard struct {
	net.Conn
	lim GuardLimits
	br  *bufio.Reader // over the connection; see ReadByte

	// lastRead is when bytes last arrived, in unix nanoseconds.
	lastRead atomic.Int64

	state    scanState
	depth    int  // open elements, the stream element included
	declOK   bool // an XML declaration may come now
	quote    byte // the quote of the attribute value being read
	attrs    int  // attributes of the start tag being read
	elemSize int  // bytes of the current stream-level element or text run
	match    int  // progress through a multi-byte token (CDATA, PI, ...)
	prev     byte // the byte before, for "/>" and "?>"
	err      error
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

// readBufferSize is the guard's read buffer: decrypted TLS records are
// copied through it, so it sets the size of reads, not of messages.
const readBufferSize = 1024

func newGuard(c net.Conn, lim GuardLimits) *guard {
	g := &guard{Conn: c, lim: lim, declOK: true}
	g.br = bufio.NewReaderSize(activityReader{g}, readBufferSize)
	g.lastRead.Store(time.Now().UnixNano())
	return g
}

// activityReader reads the connection and records when bytes arrived.
type activityReader struct{ g *guard }

func (r activityReader) Read(p []byte) (int, error) {
	n, err := r.g.Conn.Read(p)
	if n > 0 {
		r.g.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// ReadByte makes the guard an io.ByteReader, so that mellium's XML
// decoder reads through the guard's buffer byte by byte instead of
// buffering ahead on its own: when negotiation ends, every byte it did
// not consume is still here for the framer.
func (g *guard) ReadByte() (byte, error) {
	if g.err != nil {
		return 0, g.err
	}
	c, err := g.br.ReadByte()
	if err != nil {
		return 0, err
	}
	if serr := g.step(c); serr != nil {
		g.err = serr
		return 0, serr
	}
	return c, nil
}

// restart prepares for a new stream on the same connection (after SASL).
func (g *guard) restart() {
	g.state, g.depth, g.declOK, g.elemSize, g.match = sText, 0, true, 0, 0
}

// ConnectionState reports the TLS state of the connection underneath.
func (g *guard) ConnectionState() tls.ConnectionState {
	if tc, ok := g.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Read reads from the connection and scans what it got. A violation is
// returned as a *LimitError, after which every read fails.
func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.br.Read(p)
	if n > 0 {
		if ok, serr := g.scan(p[:n]); serr != nil {
			// What came before the violation still reaches the decoder;
			// the next read reports it.
			g.err = serr
			if ok == 0 {
				return 0, serr
			}
			return ok, nil
		}
	}
	return n, err
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
			case !isSpace(c):
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
			if c == '>' && g.prev == '?' {
				g.state, g.declOK = sText, false
			}
		}
		g.prev = c
	}
	return nil
}

// closed runs when an element ended; when it was a stream-level one, the
// next element starts its own count.
func (g *guard) closed() {
	if g.depth <= 1 {
		g.elemSize = 0
	}
}
