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
	n, err := r.g.Conn.Read(p)
	if n > 0 {
		r.g.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
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
